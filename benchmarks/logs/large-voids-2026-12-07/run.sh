#!/bin/bash
# The large-voids round's evaluation (RESULTS.md, "Entrapped voids"): waits for training, packs model.pt to half
# precision; core 0: classic 100/101 (2048²) then the 8192² slabs 300/301; core 1: the 8192² slabs 302/303.
cd "$(dirname "$0")/../../.."
L=benchmarks/logs/large-voids-2026-12-07
N=dlv3p-large-voids
while ! grep -q "^real" $L/train.out; do sleep 15; done
date
.venv/bin/python benchmarks/pack_checkpoint.py runs/generalization-deeplabv3plus-mobilenet-cpu-large-voids/model.pt runs/candidates/$N.pt --half
export OMP_NUM_THREADS=1
G=".venv/bin/python benchmarks/generalization.py --models runs/candidates/$N.pt --styles classic"
(taskset -c 0 $G --seeds 2 --first-seed 100 --size 2048 --workdir benchmarks/work/classic-2048-a --out $L/classic-$N.json > $L/classic-$N.log 2>&1
 taskset -c 0 $G --seeds 2 --first-seed 300 --size 8192 --workdir benchmarks/work/classic-8192 --out $L/large-a.json > $L/large-a.log 2>&1) &
taskset -c 1 $G --seeds 2 --first-seed 302 --size 8192 --workdir benchmarks/work/classic-8192 --out $L/large-b.json > $L/large-b.log 2>&1 &
wait
date
grep "entrapped" $L/large-a.log $L/large-b.log
.venv/bin/python benchmarks/shipping_rule.py classic $L $N --min 0.875
