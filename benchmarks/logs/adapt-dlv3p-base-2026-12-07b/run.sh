#!/bin/bash
# #28: the epoxy DeepLabV3+ (calibrated averaged weights) as the base of bigseg adapt beside the bundled light U-Net,
# each alone on both cores (2 threads), one after the other, with what a lab runs: --minutes 10, the suggested
# protocol, --tta flip4, hand 11; on the development styles gravel and contrast and the validation look random-7000119.
cd "$(dirname "$0")/../../.."
O=benchmarks/logs/adapt-dlv3p-base-2026-12-07b
B=benchmarks/candidates/deeplabv3plus-mobilenet-2026-12-07-epoxy.pt
A=".venv/bin/python benchmarks/adapt.py --stroke-seed 11 --adapt-seed 11 --minutes 10 --protocol suggested --tta flip4 --out $O"
for look in random-7000119 gravel contrast; do
  date
  $A --styles $look --base $B --tag=_dlv3p --work benchmarks/work/adapt-dlv3p-base > $O/$look-dlv3p.log 2>&1
  date
  $A --styles $look --tag=_bundled --work benchmarks/work/adapt-bundled-base > $O/$look-bundled.log 2>&1
done
date
