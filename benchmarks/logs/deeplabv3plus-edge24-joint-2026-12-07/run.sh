#!/bin/bash
# The edge24-joint round's evaluation (RESULTS.md, "The wider head trained with the network"): waits for training, packs model.pt to
# half precision, reads classic slabs 100/101 (core 0) and calibrates on the 16 validation slabs (core 1).
cd "$(dirname "$0")/../../.."
L=benchmarks/logs/deeplabv3plus-edge24-joint-2026-12-07
N=dlv3p-edge24-joint
while ! grep -q "^real" $L/train.out; do sleep 15; done
date
.venv/bin/python benchmarks/pack_checkpoint.py runs/generalization-deeplabv3plus-mobilenet-cpu-edge24-joint/model.pt runs/candidates/$N.pt --half
export OMP_NUM_THREADS=1
taskset -c 0 .venv/bin/python benchmarks/generalization.py --models runs/candidates/$N.pt --styles classic --seeds 2 --first-seed 100 --size 2048 --workdir benchmarks/work/classic-2048-a --out $L/classic-$N.json > $L/classic-$N.log 2>&1 &
taskset -c 1 .venv/bin/bigseg calibrate runs/candidates/$N.pt -o runs/candidates/$N-cal.pt --workdir benchmarks/work/calibration-b > $L/calibrate-$N.log 2>&1 &
wait
date
.venv/bin/python benchmarks/shipping_rule.py judge $L $N
