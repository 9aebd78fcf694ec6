#!/bin/bash
# The shipped DeepLabV3+ (deeplabv3plus-adapt, the epoxy candidate) on the four 8192² classic slabs 300-303 (11
# entrapped voids in the truth), one core each half; then the looks (RESULTS.md, "What the missed entrapped voids
# are"): look.py (what the labels say inside each), crop.py (missed-voids.png), scale.py (the same windows at 1, 0.75,
# 0.5), coarse.py + merge.py (whole slabs at 0.5 / 0.75, their large void objects added to the labels), replay.py
# (void holes filled).
cd "$(dirname "$0")/../../.."
L=benchmarks/logs/entrapped-looks-2026-12-08
export OMP_NUM_THREADS=1
G=".venv/bin/python benchmarks/generalization.py --styles classic --size 8192 --workdir benchmarks/work/classic-8192 --models deeplabv3plus-adapt"
taskset -c 0 $G --seeds 2 --first-seed 300 --out $L/a.json > $L/a.log 2>&1 &
taskset -c 1 $G --seeds 2 --first-seed 302 --out $L/b.json > $L/b.log 2>&1 &
wait
