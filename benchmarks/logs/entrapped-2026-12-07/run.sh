#!/bin/bash
# #29 item 3's second bar, never measured since the issue was filed: entrapped voids (>= 1 mm across) found on large
# classic sections. Four classic slabs of 8192² (10 um pixels; seeds 300-303, used by no rule), the bundled light
# U-Net on core 0 and the shipped DeepLabV3+ (deeplabv3plus-adapt, the epoxy candidate, calibrated) on core 1.
cd "$(dirname "$0")/../../.."
L=benchmarks/logs/entrapped-2026-12-07
export OMP_NUM_THREADS=1
G=".venv/bin/python benchmarks/generalization.py --styles classic --seeds 4 --first-seed 300 --size 8192 --workdir benchmarks/work/classic-8192"
date
# the slabs first (one process makes them; the second reuses them)
taskset -c 0 $G --models light_unet --out $L/light-unet.json > $L/light-unet.log 2>&1
date
taskset -c 1 $G --models deeplabv3plus-adapt --out $L/dlv3p.json > $L/dlv3p.log 2>&1 &
wait
date
