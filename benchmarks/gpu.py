"""GPU figures in one run: the model alone (batch sweep, eager and torch.compile), bigseg end to end, MFU.

    python benchmarks/gpu.py --size 16384x16384 --out gpu.json [--archs ...] [--compile deeplabv3_resnet50]

For each architecture (random weights for torchvision models, the bundled weights for light_unet):

* FLOPs of one 900 x 900 window's forward pass (``torch.utils.flop_counter``), per megapixel;
* the model alone over the job's windows, for each ``--batches`` size (bf16 autocast, channels_last, cuDNN
  benchmark), and for the ``--compile`` archs once compiled (``torch.compile``, best eager batch, compile time
  apart);
* ``bigseg infer --device cuda`` end to end on the test store (a synthetic tile repeated over the size, written
  straight to zarr), with 1 and 2 workers on the one GPU, at the best eager batch: efficiency = model-alone time /
  end-to-end time (both over the same windows);
* MFU = achieved FLOP/s / the GPU's dense bf16 peak (``--peak-tflops``, 989 for an H100/H200 SXM).

Each figure is printed as a JSON line as soon as it is measured, and all of them are written to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_store(path: Path, width: int, height: int, chunk: int = 1024) -> Path:
    """A slab store of ``width`` x ``height``: a 2048 px classic synthetic tile repeated, written to zarr directly
    (no image file, no libvips: the GPU machine has neither)."""
    from bigseg import store as st
    from bigseg.classes import CONCRETE
    from bigseg.synth import SynthParams, render_region

    tile, _ = render_region(SynthParams(2048, 2048, seed=7), 0, 0, 2048, 2048)
    group = st.zarr_open_new(path)
    st.init_root_attrs(group, source={"path": "benchmarks/gpu.py", "synthetic": True}, pixel_size=10.0,
                       classes=CONCRETE)
    image = st.create_array(group, "image", (height, width, 3), (chunk, chunk, 3), ("y", "x", "band"))
    reps_x = -(-width // 2048)
    for y0 in range(0, height, chunk):
        h = min(chunk, height - y0)
        rows = np.take(tile, np.arange(y0, y0 + h) % 2048, axis=0)
        image[y0 : y0 + h] = np.tile(rows, (1, reps_x, 1))[:, :width]
    st.set_complete(image)
    st.consolidate(path)
    return path


def flops_per_mpx(ckpt: str, window: int = 900) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from bigseg.checkpoint import load

    model, _ = load(ckpt)
    model = model.cuda().eval() if torch.cuda.is_available() else model.eval()
    x = torch.rand(1, 3, window, window, device=next(model.parameters()).device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / (window * window / 1e6)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="16384x16384")
    ap.add_argument("--archs", nargs="+", default=["deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large", "light_unet"])
    ap.add_argument("--batches", nargs="+", type=int, default=[8, 16, 32])
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--compile", nargs="*", default=["deeplabv3_resnet50"], help="archs also measured compiled")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", default="gpu.json")
    args = ap.parse_args(argv)

    from bigseg import bench
    from bigseg.checkpoint import BUNDLED
    from bigseg.infer import InferOptions, infer
    from bigseg.infer.windows import Grid

    w, h = (int(v) for v in args.size.lower().split("x"))
    results = {"size": [w, h], "megapixels": w * h / 1e6, "peak_tflops": args.peak_tflops, "archs": {}}

    def emit(record):
        print(json.dumps(record), flush=True)
        Path(args.out).write_text(json.dumps(results, indent=2))

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        store = make_store(tmp / "big.zarr", w, h)
        results["store_seconds"] = time.perf_counter() - t0
        emit({"store": str(store), "seconds": results["store_seconds"]})
        grid = Grid(h, w, 900, 128)
        n_windows = len(grid.windows())
        mpx = w * h / 1e6
        for arch in args.archs:
            r = results["archs"][arch] = {"windows": n_windows}
            ckpt = str(BUNDLED) if arch == "light_unet" else bench.random_checkpoint(arch, str(tmp / f"{arch}.pt"))[
                "path"]
            try:
                r["gflop_per_mpx"] = flops_per_mpx(ckpt) / 1e9
            except Exception as exc:  # a measurement, not the benchmark's point
                r["gflop_per_mpx_error"] = str(exc)[:200]
            emit({"arch": arch, "gflop_per_mpx": r.get("gflop_per_mpx")})
            r["limit"] = {}
            for b in args.batches:
                lim = bench.model_limit(ckpt, n_windows, (900, 900), b, args.device, 0)
                lim["mpx_per_s"] = mpx / lim["seconds"]
                r["limit"][str(b)] = lim
                emit({"arch": arch, "limit_batch": b, "mpx_per_s": lim["mpx_per_s"], "gpu": lim["gpu"]})
            best = max(args.batches, key=lambda b: r["limit"][str(b)]["mpx_per_s"])
            r["best_batch"] = best
            if arch in args.compile:
                try:
                    lim = bench.model_limit(ckpt, n_windows, (900, 900), best, args.device, 0, compile=True)
                    lim["mpx_per_s"] = mpx / lim["seconds"]
                    r["limit_compiled"] = lim
                    emit({"arch": arch, "compiled_batch": best, "mpx_per_s": lim["mpx_per_s"],
                          "compile_and_warmup_seconds": lim["warmup_seconds"]})
                except Exception as exc:
                    r["limit_compiled_error"] = str(exc)[:300]
                    emit({"arch": arch, "compile_error": r["limit_compiled_error"]})
            limit_s = r["limit"][str(best)]["seconds"]
            r["end_to_end"] = {}
            for workers in args.workers:
                res = infer(store, model=ckpt, options=InferOptions(device=args.device, workers=workers, batch=best,
                                                                    overwrite=True), echo=lambda *a: None)
                e = {"seconds": res.seconds, "mpx_per_s": mpx / res.seconds, "efficiency": limit_s / res.seconds,
                     "startup_seconds": res.startup_seconds}
                if r.get("gflop_per_mpx"):
                    e["mfu"] = e["mpx_per_s"] * r["gflop_per_mpx"] / 1e3 / args.peak_tflops
                    e["model_alone_mfu"] = mpx / limit_s * r["gflop_per_mpx"] / 1e3 / args.peak_tflops
                r["end_to_end"][str(workers)] = e
                emit({"arch": arch, "workers": workers, **e})
    Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
