#!/bin/bash
# #29: is the DeepLabV3+ epoxy candidate's classic void shortfall (IoU 0.885; its voids read ~5 % small, most errors
# within 1 px of the true edges) a constant bias of the void logit? Copies of the calibrated candidate with a void
# logit offset (checkpoint metadata logit_offset, as bigseg adapt's void shift) read classic slabs of seeds 200/201
# (2048², used by no rule); the offset is chosen there, then read once on the rule's slabs 100/101. Nothing ships.
cd "$(dirname "$0")/../../.."
L=benchmarks/logs/dlv3p-void-offset-2026-12-07
.venv/bin/python - <<'P'
import torch
src = "runs/candidates/dlv3p-epoxy-cal.pt"
blob = torch.load(src, map_location="cpu", weights_only=True)
for b in (0.25, 0.5, 1.0):
    blob["meta"]["logit_offset"] = [0.0, 0.0, b]
    torch.save(blob, f"runs/offsets/dlv3p-epoxy-void{b:+g}.pt")
P
export OMP_NUM_THREADS=1
G=".venv/bin/python benchmarks/generalization.py --styles classic --seeds 2 --first-seed 200 --size 2048"
date
taskset -c 0 $G --models runs/candidates/dlv3p-epoxy-cal.pt runs/offsets/dlv3p-epoxy-void+0.25.pt --workdir benchmarks/work/offset-a --out $L/fit-a.json > $L/fit-a.log 2>&1 &
taskset -c 1 $G --models runs/offsets/dlv3p-epoxy-void+0.5.pt runs/offsets/dlv3p-epoxy-void+1.pt --workdir benchmarks/work/offset-b --out $L/fit-b.json > $L/fit-b.log 2>&1 &
wait
date
