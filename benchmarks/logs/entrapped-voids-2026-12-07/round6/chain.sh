#!/bin/bash
# Entrapped round six, unattended (RESULTS.md, "Round six"): waits for the session's CI run to end (never beside it),
# trains, then the round's evaluation (benchmarks/entrapped_round.sh) and its three-part rule. What follows a pass
# (fresh slabs 308-311, part two, the held-out half) is for the next session.
cd "$(dirname "$0")/../../../.."
L=benchmarks/logs/entrapped-voids-2026-12-07/round6; N=dlv3p-entrapped6
while ! grep -q "^rc=" /tmp/ci.log 2>/dev/null; do sleep 15; done
date
(time .venv/bin/bigseg train --config generalization-deeplabv3plus-mobilenet-cpu-entrapped6) > $L/train.out 2>&1
bash benchmarks/entrapped_round.sh $L runs/generalization-deeplabv3plus-mobilenet-cpu-entrapped6 $N > $L/eval.out 2>&1
.venv/bin/python benchmarks/shipping_rule.py entrapped $L $N > $L/rule.out 2>&1
date
