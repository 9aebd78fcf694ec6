"""bigseg end to end vs the model's own forward speed over exactly the windows the job needs (one run).

    python benchmarks/throughput.py --arch light_unet --size 6000x6000            # CPU, bundled model
    python benchmarks/throughput.py --arch deeplabv3_resnet50 --device cuda --size 16384x16384 --batch 16

The limit: the same windows (count from the job's grid), the same batch, threads, channels_last, inference
mode (and bf16 autocast on CUDA), fed from memory: nothing but the model. End to end: ``bigseg infer`` on a
store of the same size (ingested from a synthetic slab replicated to the size), with its workers. Efficiency
= limit time / end-to-end time. Prints one JSON line; the figures in RESULTS.md come from it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def model_limit(ckpt: str, n_windows: int, window: tuple[int, int], batch: int, device: str, threads: int) -> dict:
    import numpy as np
    import torch

    from bigseg.infer.predictor import ModelSpec, get_model, predict

    spec = ModelSpec(ckpt, "bench", device, threads if device == "cpu" else 0, True, True)
    get_model(spec)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, window[0], window[1], 3), dtype=np.uint8)
    for _ in range(3 if device == "cuda" else 1):  # warm-up (cuDNN autotuning, allocator)
        predict(spec, x)
    if device == "cuda":
        torch.cuda.synchronize()
    n_batches = -(-n_windows // batch)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        predict(spec, x)  # includes host->device copy and the float16 logits back to host, as in the job
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "windows": n_batches * batch, "windows_per_second": n_batches * batch / seconds}


class PeakRSS:
    """Samples RSS of this process and of every descendant (the dask nannies and workers) every 50 ms."""

    def __init__(self):
        import threading

        import psutil

        self.me = psutil.Process()
        self.peak_self = 0
        self.peak_child = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        while not self._stop.is_set():
            try:
                self.peak_self = max(self.peak_self, self.me.memory_info().rss)
                for c in self.me.children(recursive=True):
                    self.peak_child = max(self.peak_child, c.memory_info().rss)
            except psutil.Error:
                pass
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def make_store(size: tuple[int, int], workdir: Path) -> Path:
    import pyvips

    from bigseg.ingest import ingest
    from bigseg.synth import SynthParams, synthesize

    tile = min(2048, size[0]), min(2048, size[1])
    s = synthesize(workdir / "tile.png", SynthParams(tile[0], tile[1], seed=7))
    big = pyvips.Image.new_from_file(s["image"]).replicate(-(-size[0] // tile[0]), -(-size[1] // tile[1]))
    big = big.crop(0, 0, size[0], size[1])
    big.tiffsave(str(workdir / "big.tif"), tile=True, bigtiff=True, compression="deflate")
    store = workdir / "big.zarr"
    ingest(workdir / "big.tif", store)
    return store


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="light_unet")
    ap.add_argument("--checkpoint", help="default: the bundled model for light_unet, random weights otherwise")
    ap.add_argument("--size", default="6000x6000")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--window", type=int, default=900)
    ap.add_argument("--overlap", type=int, default=128)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--store", default=None, help="reuse (or make once) the test store here")
    args = ap.parse_args(argv)

    import torch

    from bigseg import checkpoint
    from bigseg.classes import CONCRETE
    from bigseg.infer import InferOptions, infer
    from bigseg.infer.cluster import cpu_count
    from bigseg.infer.graph import default_workers
    from bigseg.infer.windows import Grid
    from bigseg.models import build

    w, h = (int(v) for v in args.size.lower().split("x"))
    batch = args.batch or (8 if args.device == "cuda" else 2)
    workers = args.workers if args.workers is not None else default_workers(args.device)
    threads = max(1, cpu_count() // max(workers, 1))
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        ckpt = args.checkpoint
        if ckpt is None:
            if args.arch == "light_unet":
                ckpt = str(checkpoint.BUNDLED)
            else:
                torch.manual_seed(0)
                ckpt = str(tmp / f"{args.arch}.pt")
                checkpoint.save(ckpt, build(args.arch, 3), arch=args.arch, classes=CONCRETE)
        t0 = time.perf_counter()
        if args.store and Path(args.store).exists():
            store = Path(args.store)
        else:
            store = make_store((w, h), tmp)
            if args.store:
                os.replace(store, args.store)
                store = Path(args.store)
        prep = time.perf_counter() - t0
        grid = Grid(h, w, args.window, args.overlap)
        n_windows = len(grid.windows())
        # the limit is measured in this process with the per-worker thread count a worker gets
        limit = model_limit(ckpt, n_windows, (grid.win_h, grid.win_w), batch, args.device,
                            threads if args.device == "cpu" else 0)
        # and rescaled to the job's worker count (workers run in parallel on their share of the cores)
        limit_seconds = limit["seconds"] / (workers if args.device == "cpu" else 1)
        with PeakRSS() as rss:
            r = infer(store, model=ckpt, options=InferOptions(window=args.window, overlap=args.overlap,
                                                              batch=batch, device=args.device, workers=workers,
                                                              overwrite=True), echo=lambda *a: None)
    mpx = w * h / 1e6
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else None
    result = {
        "arch": args.arch, "device": args.device, "gpu": gpu, "cpu_cores": cpu_count(), "size": [w, h],
        "megapixels": mpx, "window": args.window, "overlap": args.overlap, "batch": batch, "workers": workers,
        "threads_per_worker": threads, "windows": n_windows,
        "limit_seconds": limit_seconds, "limit_mpx_per_s": mpx / limit_seconds,
        "end_to_end_seconds": r["seconds"], "end_to_end_mpx_per_s": mpx / r["seconds"],
        "efficiency": limit_seconds / r["seconds"], "cluster_startup_seconds": r["startup_seconds"],
        "prep_seconds": prep, "peak_worker_rss_mb": rss.peak_child / 2**20,
        "peak_client_rss_mb": rss.peak_self / 2**20,
        "python": sys.version.split()[0], "torch": torch.__version__, "machine": platform.machine(),
        "command": "python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(json.dumps(result))
    out = os.environ.get("BENCH_OUT")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(result) + "\n")
    return result


if __name__ == "__main__":
    main()
