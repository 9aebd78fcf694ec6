#!/bin/bash
# #29 item 3, the fifth distillation round's evaluation by the default's rule (RESULTS.md, "A fifth round"):
# waits for training, packs the averaged... (light U-Net rounds keep no average: model.pt), exports ONNX, then
# (a)+(c) on core 0 and (b) on core 1. (d), the held-out veto, is run by hand only if (a)-(c) pass (veto.sh).
cd "$(dirname "$0")/../../.."
L=benchmarks/logs/distill5-2026-12-07
C=runs/candidates/light-unet-distill5
while ! grep -q "^real" $L/train.out; do sleep 20; done
date
.venv/bin/python benchmarks/pack_checkpoint.py runs/generalization-light-unet-distill5/model.pt $C.pt
.venv/bin/bigseg export $C.pt -o $C.onnx
export OMP_NUM_THREADS=1
taskset -c 0 .venv/bin/python benchmarks/edge_head.py --models light_unet $C.pt --classic 100 101 --size 2048 \
    --stores benchmarks/work/distill5-dev/{crushed,gravel}-{4100,4101}.zarr --repeat 1 \
    --workdir benchmarks/work/distill5-classic --out $L/slabs.json > $L/slabs.log 2>&1 &
taskset -c 1 .venv/bin/bigseg calibrate $C.pt -o $C-cal.pt --workdir benchmarks/work/calibration-b > $L/calibrate.log 2>&1 &
wait
date
