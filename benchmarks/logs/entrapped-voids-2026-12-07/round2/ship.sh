#!/bin/bash
# The deeplabv3 shipping rule for entrapped round two (it met its round's rule: 11 of 11, classic 0.892, air +0.07),
# as decided beforehand in RESULTS: parts one and two, then -- if they pass -- the held-out half once.
cd "$(dirname "$0")/../../../.."
L=benchmarks/logs/entrapped-voids-2026-12-07/round2
date
bash benchmarks/shipping_rule_eval.sh dlv3p-entrapped2 runs/generalization-deeplabv3plus-mobilenet-cpu-entrapped2/model.pt both e2 $L
.venv/bin/python benchmarks/shipping_rule.py judge $L dlv3p-entrapped2 | tee $L/judge.out
[ "$(tail -1 $L/judge.out)" = dlv3p-entrapped2 ] || { echo "parts one and two not passed: no held-out look"; exit 0; }
bash benchmarks/shipping_rule_heldout.sh $L runs/candidates/dlv3p-entrapped2-cal.pt
date
