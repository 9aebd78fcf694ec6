#!/usr/bin/env bash
# The GPU session of benchmarks/RESULTS.md, run through the device tool from the repository root:
#   bash benchmarks/gpu_session.sh train   # ~6 min: light_unet and DeepLabV3-MobileNet trained side by side
#   bash benchmarks/gpu_session.sh bench   # ~3 min: benchmarks/gpu.py (model alone, end to end, MFU)
# The GPU image has torch but not dask/zarr/pydantic/pyvips: they travel as wheels in .whl/ (see the device
# tool's README). Results land in $OUT (the tool brings them back). DRY=1 runs it on a CPU for seconds.
set -u
stage=${1:-train}
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
if ! python3 -c "import zarr, distributed, pydantic" 2>/dev/null && \
   ! python3 -c "import sys; sys.path.insert(0, '/tmp/site'); import zarr, distributed, pydantic" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 BIGSEG_PROGRESS_INTERVAL=30
python3 -c "import torch, zarr, dask, distributed, pydantic, bigseg; print('torch', torch.__version__, 'cuda',
torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-', 'zarr', zarr.__version__)"
limit=${TIME_LIMIT:-330}
device_args=()
if [ "${DRY:-0}" = 1 ]; then limit=25; fi
if [ "$stage" = train ]; then
  python3 -m bigseg --progress train --config configs/generalization-light-unet-gpu.yaml --time-limit "$limit" \
    > "$OUT/train-light-unet.log" 2>&1 &
  p1=$!
  python3 -m bigseg --progress train --config configs/generalization-deeplabv3-mobilenet.yaml --time-limit "$limit" \
    > "$OUT/train-deeplabv3.log" 2>&1 &
  p2=$!
  wait $p1; echo "light_unet training exit $?"
  wait $p2; echo "deeplabv3 training exit $?"
  for run in generalization-light-unet-gpu generalization-deeplabv3-mobilenet; do
    src=runs/$run/model.pt; [ -f "$src" ] || src=runs/$run/last.pt
    half=(); [ "$run" = generalization-deeplabv3-mobilenet ] && half=(--half)
    python3 benchmarks/pack_checkpoint.py "$src" "/tmp/$run.pt" "${half[@]}" && \
      split -b 15M -d "/tmp/$run.pt" "$OUT/$run.pt.part"
    cp "runs/$run/log.jsonl" "/tmp/$run.log.jsonl"
  done
  tar -C /tmp -cf "$OUT/train-logs.tar" generalization-light-unet-gpu.log.jsonl generalization-deeplabv3-mobilenet.log.jsonl
  tail -n 3 "$OUT"/train-*.log
elif [ "$stage" = bench ]; then
  if [ "${DRY:-0}" = 1 ]; then device_args=(--device cpu --size 2048x1024 --batches 2 --workers 1 --compile --archs light_unet); fi
  python3 benchmarks/gpu.py --out "$OUT/gpu.json" "${device_args[@]}" 2>&1 | tee "$OUT/gpu-bench.log"
fi
