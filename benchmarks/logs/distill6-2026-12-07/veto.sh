#!/bin/bash
# (d), once, only after (a)-(c) passed: the held-out veto's eight styles and the two UV looks of 2026-12-07, five
# styles a core, with the candidate's 16-slab calibration; the bundled's figures on the UV looks are those of
# benchmarks/logs/deeplabv3plus-uv-2026-12-07/uv-light-unet-{a,b}.log (the same slabs, seeds 3000-3003, 3072²).
cd "$(dirname "$0")/../../.."
L=benchmarks/logs/distill6-2026-12-07
C=runs/candidates/light-unet-distill6-cal.pt
export OMP_NUM_THREADS=1
G=".venv/bin/python benchmarks/generalization.py --seeds 4 --first-seed 3000 --size 3072"
date
taskset -c 0 $G --models $C --styles probe-angular granite-fine basalt-dark limestone-pastelike uv-yellow-dim --out $L/heldout-a.json > $L/heldout-a.log 2>&1 &
taskset -c 1 $G --models $C --styles mosaic-scan contrast-ink blue-epoxy uv-fluorescent uv-green-mosaic --out $L/heldout-b.json > $L/heldout-b.log 2>&1 &
wait
date
U=benchmarks/logs/deeplabv3plus-uv-2026-12-07
.venv/bin/python benchmarks/shipping_rule.py veto $L/heldout-a.log $L/heldout-b.log > $L/veto.out
.venv/bin/python benchmarks/shipping_rule.py uv $L/heldout-a.log $L/heldout-b.log --light-unet $U/uv-light-unet-a.log $U/uv-light-unet-b.log > $L/uv.out
cat $L/veto.out $L/uv.out
