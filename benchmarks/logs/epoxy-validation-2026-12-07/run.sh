#!/bin/bash
# #29: does the epoxy round's DeepLabV3+ read its own generator's epoxy looks? random-epoxy on the validation seeds
# 7000000-7000007 (six under UV, two under white light; no held-out style), 2048², one pinned core per four slabs.
cd "$(dirname "$0")/../../.."
O=benchmarks/logs/epoxy-validation-2026-12-07
M=benchmarks/candidates/deeplabv3plus-mobilenet-2026-12-07-epoxy.pt
export OMP_NUM_THREADS=1
C=".venv/bin/python benchmarks/confidence_figures.py --model $M --styles random-epoxy --slabs 4 --size 2048 --workdir benchmarks/work/epoxy-validation"
taskset -c 0 $C --first-seed 7000000 --out $O/a.json > $O/a.log 2>&1 &
taskset -c 1 $C --first-seed 7000004 --out $O/b.json > $O/b.log 2>&1 &
wait
date
