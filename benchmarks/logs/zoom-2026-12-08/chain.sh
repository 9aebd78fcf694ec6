#!/bin/bash
# The zoom round, unattended (RESULTS.md, "A round that teaches the size"): trains, then the round's evaluation
# (benchmarks/entrapped_round.sh) and round six's three-part rule.
cd "$(dirname "$0")/../../.."
L=benchmarks/logs/zoom-2026-12-08; N=dlv3p-zoom
date
(time .venv/bin/bigseg train --config generalization-deeplabv3plus-mobilenet-cpu-zoom) > $L/train.out 2>&1
bash benchmarks/entrapped_round.sh $L runs/generalization-deeplabv3plus-mobilenet-cpu-zoom $N > $L/eval.out 2>&1
.venv/bin/python benchmarks/shipping_rule.py entrapped $L $N > $L/rule.out 2>&1
date
