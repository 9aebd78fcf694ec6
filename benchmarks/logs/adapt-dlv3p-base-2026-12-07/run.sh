#!/bin/bash
# #28 / #29: the best DeepLabV3+ (the epoxy round's averaged weights, calibrated) as the base of bigseg adapt, beside
# the bundled light U-Net, with what a lab runs: --minutes 10, the suggested protocol, --tta flip4, hand 11 -- one
# core each (1 thread), on the fresh validation look random-7000118, then the development style crushed.
cd /work/main
O=benchmarks/logs/adapt-dlv3p-base-2026-12-07
B=benchmarks/candidates/deeplabv3plus-mobilenet-2026-12-07-epoxy.pt
export OMP_NUM_THREADS=1
A=".venv/bin/python benchmarks/adapt.py --stroke-seed 11 --adapt-seed 11 --minutes 10 --protocol suggested --tta flip4 --out $O"
for look in random-7000118 crushed; do
  taskset -c 0 $A --styles $look --base $B --tag=_dlv3p --work benchmarks/work/adapt-dlv3p-base > $O/$look-dlv3p.log 2>&1 &
  taskset -c 1 $A --styles $look --tag=_bundled --work benchmarks/work/adapt-bundled-base > $O/$look-bundled.log 2>&1 &
  wait
  date
done
