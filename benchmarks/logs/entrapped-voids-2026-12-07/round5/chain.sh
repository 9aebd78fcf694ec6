#!/bin/bash
# Entrapped round five, unattended (RESULTS.md, "Entrapped voids as a second population", round five): training
# (launched beside this), then the round's evaluation (benchmarks/entrapped_round.sh), its three-part rule
# (shipping_rule.py entrapped), and only if that holds, the deeplabv3 shipping rule once
# (benchmarks/shipping_rule_single.sh: parts one and two; the held-out half only if both pass).
cd "$(dirname "$0")/../../../.."
L=benchmarks/logs/entrapped-voids-2026-12-07/round5; N=dlv3p-entrapped5
bash benchmarks/entrapped_round.sh $L runs/generalization-deeplabv3plus-mobilenet-cpu-entrapped5 $N > $L/eval.out 2>&1
.venv/bin/python benchmarks/shipping_rule.py entrapped $L $N > $L/rule.out 2>&1 || { echo "round rule not met: no shipping judge" >> $L/rule.out; exit 0; }
bash benchmarks/shipping_rule_single.sh $L runs/generalization-deeplabv3plus-mobilenet-cpu-entrapped5/model.pt $N e2 > $L/ship.out 2>&1
