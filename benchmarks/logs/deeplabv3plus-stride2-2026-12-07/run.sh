#!/bin/bash
# The stride-2 decoder round's evaluation (RESULTS.md, "The decoder taken on to stride 2"), unattended: waits for
# training; packs model.pt to half precision and reads classic 100/101 (core 0) beside the calibration (core 1);
# then the round's own bar (classic stone and void IoU >= 0.90), the shipping rule's parts one and two, and only if
# both pass, the held-out parts once.
cd "$(dirname "$0")/../../.."
L=benchmarks/logs/deeplabv3plus-stride2-2026-12-07
N=dlv3p-stride2
while ! grep -q "^real" $L/train.out; do sleep 15; done
date
bash benchmarks/shipping_rule_eval.sh $N runs/generalization-deeplabv3plus-mobilenet-cpu-stride2/model.pt both s2 $L
date
.venv/bin/python benchmarks/shipping_rule.py classic $L $N --min 0.90 | tee $L/classic.out || { echo "below 0.90: the rule stops"; exit 0; }
.venv/bin/python benchmarks/shipping_rule.py judge $L $N | tee $L/judge.out
[ "$(tail -1 $L/judge.out)" = "$N" ] || { echo "fails parts one and two: no held-out look"; exit 0; }
bash benchmarks/shipping_rule_heldout.sh $L runs/candidates/$N-cal.pt
date
