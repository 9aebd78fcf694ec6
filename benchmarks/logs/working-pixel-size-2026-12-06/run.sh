#!/bin/bash
# usage: run.sh CORE SEED... -- the marathon candidate on copies of validation slabs SEED (finer than 7 um) at
# scale 1, px/7 and 0.5, pinned to CORE (benchmarks/scale_sweep.py; the copies' labels are overwritten).
cd /work/main
L=benchmarks/logs/working-pixel-size-2026-12-06
M=benchmarks/candidates/deeplabv3plus-mobilenet-2026-12-06-marathon.pt
CORE=$1; shift
export OMP_NUM_THREADS=1
for seed in "$@"; do
  S=benchmarks/work/scale/random-$seed-2048.zarr
  W=$(.venv/bin/python -c "from bigseg import store as st; print(round(st.pixel_size_um(st.open_store('$S'))/7, 3))")
  taskset -c $CORE .venv/bin/python benchmarks/scale_sweep.py $S --model $M --scales 1 $W 0.5 --json $L/scales.jsonl
done
