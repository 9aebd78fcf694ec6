#!/bin/bash
# #28's final table with the larger base: the DeepLabV3+ epoxy candidate as the base of bigseg adapt on the eight
# held-out styles, alone on both cores (2 threads), one style after the other, with what a lab runs: --minutes 10,
# the suggested protocol, --tta flip4, today's defaults and default seeds (the same slabs and first strokes as the light U-Net's
# held-out table of 2026-12-06). The held-out set's fifteenth look; written before it ran, chooses nothing.
cd "$(dirname "$0")/../../.."
O=benchmarks/logs/adapt-heldout-dlv3p-2026-12-07
B=benchmarks/candidates/deeplabv3plus-mobilenet-2026-12-07-epoxy.pt
for style in probe-angular granite-fine basalt-dark limestone-pastelike mosaic-scan contrast-ink blue-epoxy uv-fluorescent; do
  date
  .venv/bin/python benchmarks/adapt.py --styles $style --minutes 10 --protocol suggested --tta flip4 --base $B \
    --tag=_dlv3p --work benchmarks/work/adapt-heldout-dlv3p --out $O > $O/$style.log 2>&1
done
date
