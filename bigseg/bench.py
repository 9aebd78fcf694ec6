"""``bigseg bench``: bigseg end to end against the model's own forward speed, and against MONAI (one run).

* **limit** -- the model alone over exactly the windows the job needs (count from the job's grid), same batch,
  threads per worker, channels_last, inference mode (bf16 autocast on CUDA), fed from memory;
* **bigseg** -- ``bigseg infer`` on a store of the requested size (a synthetic slab tile replicated), with its
  workers; efficiency = limit time / end-to-end time;
* **MONAI** (``monai=True``, needs ``pip install monai``) -- ``monai.inferers.sliding_window_inference`` with
  Gaussian blending, the same model, window, overlap and batch, on the same image, in its own process (MONAI
  holds the whole image and the logits in memory): throughput ratio, peak RSS ratio and label agreement.

Peak RSS is sampled every 50 ms over a process and its descendants (the dask workers included).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import cast

import numpy as np

from bigseg import checkpoint as ckpt_mod
from bigseg import store as st
from bigseg.checkpoint import file_digest, load
from bigseg.classes import CONCRETE
from bigseg.cluster import cpu_count
from bigseg.errors import BigsegError
from bigseg.export import export
from bigseg.infer import InferOptions, infer
from bigseg.infer import backend as be
from bigseg.infer.options import default_workers
from bigseg.infer.predictor import ModelSpec, get_model, predict
from bigseg.infer.windows import Grid
from bigseg.ingest import ingest
from bigseg.results import BenchResult
from bigseg.synth import SynthParams, synthesize


def model_limit(ckpt: str, n_windows: int, window: tuple[int, int], batch: int, device: str, threads: int,
                backend: str = "torch", compile: bool = False) -> dict:
    """Seconds for the model alone to predict ``n_windows`` random windows in batches of ``batch`` (after a
    warm-up: cuDNN autotuning, the allocator, and torch.compile's compilation, timed apart)."""
    import torch

    spec = ModelSpec(ckpt, "bench", device, threads if device == "cpu" else 0, True, True, backend, compile)
    get_model(spec)
    x = np.random.default_rng(0).integers(0, 256, (batch, window[0], window[1], 3), dtype=np.uint8)
    t_warm = time.perf_counter()
    for _ in range(3 if device == "cuda" else 1):  # warm-up (cuDNN autotuning, allocator, compilation)
        predict(spec, x)
    if device == "cuda":
        torch.cuda.synchronize()
    warmup = time.perf_counter() - t_warm
    if device == "cuda":
        torch.cuda.synchronize()
    n_batches = -(-n_windows // batch)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        predict(spec, x)  # includes the host->device copy; the float16 logits stay where the job keeps them
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "windows": n_batches * batch, "windows_per_second": n_batches * batch / seconds,
            "warmup_seconds": warmup, "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
            "torch": torch.__version__}


def random_checkpoint(arch: str, path: str) -> dict:
    """A checkpoint of ``arch`` with random weights (seed 0), for speed measurements of untrained models."""
    import torch

    from bigseg.models import build

    torch.manual_seed(0)
    ckpt_mod.save(path, build(arch, 3), arch=arch, classes=CONCRETE)
    return {"path": path}


def export_onnx(ckpt: str, path: str) -> dict:
    export(ckpt, path, echo=lambda *a: None)
    return {"path": path}


class PeakRSS:
    """Peak RSS of a process (default: this one) and, separately, of its largest descendant, every 50 ms."""

    def __init__(self, pid: int | None = None):
        import psutil

        self.proc = psutil.Process(pid)
        self.peak_self = self.peak_child = self.peak_tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        while not self._stop.is_set():
            try:
                own = self.proc.memory_info().rss
                children = [c.memory_info().rss for c in self.proc.children(recursive=True)]
                self.peak_self = max(self.peak_self, own)
                self.peak_child = max([self.peak_child, *children])
                self.peak_tree = max(self.peak_tree, own + sum(children))
            except psutil.Error:
                pass
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def measure_command(cmd: list[str]) -> dict:
    """Run ``cmd``: its wall time, stdout, and the peak RSS of it and its children together (every 50 ms).
    A failure raises SystemExit with its stderr."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakRSS(proc.pid) as rss:
        out, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {err.strip()}")
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": rss.peak_tree / 2**20, "stdout": out}


def make_store(size: tuple[int, int], workdir: Path) -> Path:
    """A store of ``size`` (width, height): a 2048 px synthetic slab tile replicated, ingested."""
    import pyvips

    tile = min(2048, size[0]), min(2048, size[1])
    s = synthesize(workdir / "tile.png", SynthParams(tile[0], tile[1], seed=7))
    big = pyvips.Image.new_from_file(s["image"]).replicate(-(-size[0] // tile[0]), -(-size[1] // tile[1]))
    big = big.crop(0, 0, size[0], size[1])
    big.tiffsave(str(workdir / "big.tif"), tile=True, bigtiff=True, compression="deflate")
    store = workdir / "big.zarr"
    ingest(workdir / "big.tif", store)
    (workdir / "big.tif").unlink()
    return store


def make_store_in(width: int, height: int, workdir: str) -> dict:
    return {"path": str(make_store((width, height), Path(workdir)))}


def _in_subprocess(function: str, args: list) -> dict:
    """Call ``bigseg.bench.<function>(*args)`` in a fresh Python process (keeps this one's memory lean, as a
    real ``bigseg infer`` client is); returns its dict result."""
    code = ("import json, sys; from bigseg import bench; "
            f"print(json.dumps(bench.{function}(*json.loads(sys.argv[1]))))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True)
    if proc.returncode:
        raise BigsegError(f"{function} failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _monai_child(args: dict) -> None:
    """Runs in its own process: MONAI's sliding window over the whole image in memory; writes labels .npy."""
    import torch
    import zarr
    from monai.inferers import sliding_window_inference

    torch.set_num_threads(args["threads"])
    model, _ = load(args["checkpoint"])
    model = model.eval().to(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    image = zarr.open_array(os.path.join(args["store"], "image"), mode="r")[:]  # MONAI's way: all of it
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div_(255.0)
    del image
    load_s = time.perf_counter() - t0
    win = args["window"]
    t0 = time.perf_counter()
    with torch.inference_mode():
        logits = sliding_window_inference(x, roi_size=(win, win), sw_batch_size=args["batch"],
                                          predictor=lambda b: model(b.contiguous(
                                              memory_format=torch.channels_last)),
                                          overlap=args["overlap"] / win, mode="gaussian")
        labels = cast(torch.Tensor, logits).argmax(1)[0].to(torch.uint8).numpy()  # MONAI types a union
    seconds = time.perf_counter() - t0
    np.save(args["labels_out"], labels)
    print(json.dumps({"seconds": seconds, "load_seconds": load_s}))


def monai_run(ckpt: str, store: Path, window: int, overlap: int, batch: int, threads: int, workdir: Path) -> dict:
    try:
        import monai  # noqa: F401
    except ImportError as exc:
        raise BigsegError("the MONAI comparison needs MONAI: pip install monai") from exc
    args = {"checkpoint": ckpt, "store": str(store), "window": window, "overlap": overlap, "batch": batch,
            "threads": threads, "labels_out": str(workdir / "monai-labels.npy")}
    code = "import json, sys; from bigseg.bench import _monai_child; _monai_child(json.loads(sys.argv[1]))"
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    with PeakRSS(proc.pid) as rss:
        out, err = proc.communicate()
    if proc.returncode:
        raise BigsegError(f"the MONAI run failed: {err.strip().splitlines()[-1] if err.strip() else proc.returncode}")
    r = json.loads(out.strip().splitlines()[-1])
    r["peak_rss_mb"] = rss.peak_tree / 2**20
    return r


def label_agreement(store: Path, labels_npy: Path) -> float:
    """Share of pixels where MONAI's labels equal bigseg's, compared chunk row by chunk row."""
    import zarr

    ours = zarr.open_array(os.path.join(str(store), "labels"), mode="r")
    theirs = np.load(labels_npy, mmap_mode="r")
    same, step = 0, ours.chunks[0]
    for y in range(0, ours.shape[0], step):
        same += int((ours[y: y + step] == theirs[y: y + step]).sum())
    return same / (ours.shape[0] * ours.shape[1])


def _test_store(store, w: int, h: int, tmp: Path, echo) -> Path:
    """``store`` if it exists, else a new synthetic one of w x h (made in a subprocess: this process stays lean),
    at ``store`` or in ``tmp``."""
    if store and Path(store).exists():
        return Path(store)
    echo(f"making a {w}x{h} test store")
    made = Path(_in_subprocess("make_store_in", [w, h, str(tmp)])["path"])
    if store:
        os.replace(made, store)
        return Path(store)
    return made


def _model_to_run(ckpt: str, backend: str | None, device: str, workers: int, precision: str | None,
                  tmp: Path) -> tuple[str, str]:
    """(model file, backend) as ``bigseg infer`` would choose them: a ready ONNX export (or the int8 one) by
    default on a CPU; an export made here when ONNX Runtime is asked for a checkpoint without one, so that the
    limit and the job run the same file."""
    model_file = ckpt
    if backend is None or precision is not None:
        options = InferOptions(device=device, workers=workers, backend=backend, precision=precision)
        options.check()
        choice = be.model_and_backend(Path(ckpt), options, file_digest(ckpt))
        backend = choice.backend
        if choice.ready is not None:
            model_file = str(choice.ready)
    if backend == "onnxruntime" and model_file == ckpt and not str(ckpt).endswith(".onnx"):
        model_file = _in_subprocess("export_onnx", [str(ckpt), str(tmp / "model.onnx")])["path"]
    return model_file, backend


def _versus_monai(m: dict, seconds: float, whole: float, mpx: float, rss_mb: float, agreement: float) -> dict:
    return {
        "monai_seconds": m["seconds"], "monai_load_seconds": m["load_seconds"],
        "monai_mpx_per_s": mpx / m["seconds"], "monai_peak_rss_mb": m["peak_rss_mb"],
        "speed_vs_monai": m["seconds"] / seconds,
        "monai_whole_seconds": m["seconds"] + m["load_seconds"],
        "whole_speed_vs_monai": (m["seconds"] + m["load_seconds"]) / whole,
        "rss_vs_monai": rss_mb / m["peak_rss_mb"],
        "label_agreement_with_monai": agreement,
    }


def bench(arch: str = "light_unet", checkpoint: str | None = None, size=(6000, 6000), device: str = "cpu",
          window: int = 900, overlap: int = 128, batch: int | None = None, workers: int | None = None,
          workdir=None, store=None, monai: bool = False, backend: str | None = None, stripe: int | None = None,
          precision: str | None = None, overwrite: bool = False, echo=print) -> BenchResult:
    """Measure the limit, bigseg end to end (and MONAI); returns the figures (see the module doc).

    ``store``: an existing store is measured at its own size (``size`` is ignored, and said so); one holding
    labels is refused unless ``overwrite`` (the run replaces them with the benchmarked model's).

    This process runs bigseg's client as ``bigseg infer`` does, without importing torch (the model runs in the
    workers; the limit, random checkpoints and exports run in subprocesses), so its memory counts as a real
    client's."""
    w, h = size
    if store and Path(store).exists():
        group = st.open_store(store)
        h, w = st.array(group, "image").shape[:2]
        if "labels" in group and not overwrite:
            raise BigsegError(f"{store}: already holds labels, which the benchmark would replace with its model's; "
                              "pass --overwrite, or bench on a copy")
        if (w, h) != tuple(size):
            echo(f"{store}: measuring the store as it is, {w}x{h} (--size is for a new test store)")
    batch = batch or (8 if device == "cuda" else 2)
    workers = workers if workers is not None else default_workers(device)
    threads = max(1, cpu_count() // max(workers, 1))
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        ckpt = checkpoint
        if ckpt is None:
            if arch == "light_unet":
                ckpt = str(ckpt_mod.BUNDLED)
            else:
                ckpt = _in_subprocess("random_checkpoint", [arch, str(tmp / f"{arch}.pt")])["path"]
        t0 = time.perf_counter()
        store = _test_store(store, w, h, tmp, echo)
        prep = time.perf_counter() - t0
        model_file, backend = _model_to_run(ckpt, backend, device, workers, precision, tmp)
        grid = Grid(h, w, window, overlap)
        n_windows = len(grid.windows())
        echo(f"the limit: the model alone over the job's {n_windows} windows")
        limit = _in_subprocess("model_limit", [model_file, n_windows, [grid.win_h, grid.win_w], batch, device,
                                               threads if device == "cpu" else 0, backend])
        # rescaled to the job's worker count (CPU workers run in parallel on their share of the cores)
        limit_seconds = limit["seconds"] / (max(workers, 1) if device == "cpu" else 1)
        echo(f"bigseg infer with {workers} workers")
        t_call = time.perf_counter()
        with PeakRSS() as rss:
            r = infer(store, model=model_file, options=InferOptions(window=window, overlap=overlap, batch=batch,
                                                                    device=device, workers=workers, overwrite=True,
                                                                    backend=backend, stripe=stripe),
                      echo=lambda *a: None)
        whole = time.perf_counter() - t_call  # cluster start, model load, the job, finishing (pyramid, stats)
        mpx = w * h / 1e6
        result = {
            "arch": arch, "backend": backend, "precision": precision or "fp32", "device": device,
            "gpu": limit["gpu"],
            "cpu_cores": cpu_count(), "size": [w, h], "megapixels": mpx, "window": window, "overlap": overlap,
            "batch": batch, "stripe": stripe, "workers": workers, "threads_per_worker": threads, "windows": n_windows,
            "limit_seconds": limit_seconds, "limit_mpx_per_s": mpx / limit_seconds,
            "end_to_end_seconds": r.seconds, "end_to_end_mpx_per_s": mpx / r.seconds,
            "efficiency": limit_seconds / r.seconds, "cluster_startup_seconds": r.startup_seconds,
            "whole_seconds": whole, "whole_mpx_per_s": mpx / whole,
            "prep_seconds": prep, "peak_worker_rss_mb": rss.peak_child / 2**20,
            "peak_client_rss_mb": rss.peak_self / 2**20, "peak_total_rss_mb": rss.peak_tree / 2**20,
            "python": sys.version.split()[0], "torch": limit["torch"], "machine": platform.machine(),
        }
        if monai:
            if device != "cpu":
                raise BigsegError("the MONAI comparison runs on the CPU only (--device cpu)")
            echo("MONAI sliding_window_inference (gaussian) on the same image")
            m = monai_run(ckpt, store, window, overlap, batch, cpu_count(), tmp)
            result.update(_versus_monai(m, r.seconds, whole, mpx, result["peak_total_rss_mb"],
                                        label_agreement(store, tmp / "monai-labels.npy")))
    return BenchResult(**result)
