#!/bin/bash
# The deeplabv3 shipping rule for entrapped round three (run only if it met its round's rule),
# as decided beforehand in RESULTS: parts one and two, then -- if they pass -- the held-out half once.
cd "$(dirname "$0")/../../../.."
L=benchmarks/logs/entrapped-voids-2026-12-07/round3
date
bash benchmarks/shipping_rule_eval.sh dlv3p-entrapped3 runs/generalization-deeplabv3plus-mobilenet-cpu-entrapped3/model.pt both e3 $L
.venv/bin/python benchmarks/shipping_rule.py judge $L dlv3p-entrapped3 | tee $L/judge.out
[ "$(tail -1 $L/judge.out)" = dlv3p-entrapped3 ] || { echo "parts one and two not passed: no held-out look"; exit 0; }
bash benchmarks/shipping_rule_heldout.sh $L runs/candidates/dlv3p-entrapped3-cal.pt
date
