"""Inference options, their defaults and their checks (one home for each default)."""

from __future__ import annotations

from dataclasses import dataclass

from bigseg.cluster import cpu_count
from bigseg.errors import BigsegError

BACKENDS = ("torch", "onnxruntime")
PRECISIONS = ("fp32", "int8")
TTA = ("none", "flip", "flip4", "multiscale", "flip-multiscale")
"""Test-time augmentation: each window alone, with its left-right mirror (2 forward passes), with all three mirrors
(4), at scales 0.75, 1 and 1.25 (3 passes, ~3.1x the pixels), or those scales each with its mirror (6); the views'
logits are averaged inside the window (bigseg.infer.predictor.TTA_VIEWS)."""
DEVICES = ("cpu", "cuda")
MAX_WINDOW = 4096
MIN_WINDOW = 32
DEFAULT_WINDOW = 900
DEFAULT_OVERLAP = 128
MAX_WORKERS = 256
"""Local worker processes at most: each holds a model (0.5-1.5 GB with torch) and dask opens a dozen files per
worker; far beyond any machine's cores it only ends in 'Too many open files'."""

STRIPE_PX = 8192
"""Default width of the column stripes the image is processed in (rounded up to whole chunks, and to at least four
batches of windows). Memory holds a few window rows of one stripe, so it is bounded by the stripe's width, not the
image's; the windows on a stripe's right border are also needed by the next stripe and are kept on disk
(``.bigseg/spill``) for it, trimmed to the columns it needs."""


def default_batch(device: str) -> int:
    """Windows per forward pass: 2 on a CPU (two task threads already overlap reads with the model), 8 on CUDA."""
    return 8 if device == "cuda" else 2


def default_workers(device: str) -> int:
    """Local workers: one per GPU with cuda; on a CPU half the cores (each worker runs two task threads and
    sets its torch threads to cores / workers) -- or 0, this process, where that would be a single worker: one
    worker process adds only start-up and copies (48 Mpx on 2 cores, whole command 13.5 s with one worker
    process, 11.0 s in this process; benchmarks/startup.py)."""
    if device == "cuda":
        import torch

        return max(1, torch.cuda.device_count())
    n = cpu_count() // 2
    return n if n >= 2 else 0


@dataclass
class InferOptions:
    window: int = DEFAULT_WINDOW
    overlap: int = DEFAULT_OVERLAP
    batch: int | None = None  # None: default_batch(device)
    device: str = "cpu"
    workers: int | None = None  # None: default_workers(device); 0: in this process
    scheduler: str | None = None
    threads: int | None = None  # torch threads per CPU worker; None: cores // workers
    stripe: int | None = None  # width (px) of the column stripes processed at a time; None: STRIPE_PX
    probabilities: bool = False
    overwrite: bool = False
    progress: bool | None = False
    amp: bool = True
    backend: str | None = None  # "torch" or "onnxruntime"; None: onnxruntime for an ONNX file, else torch
    compile: bool = False  # torch.compile the model in each worker (pays off on large jobs on a GPU)
    cache_dir: str | None = None  # ONNX exports of checkpoints; None: bigseg.infer.backend.cache_dir()
    precision: str | None = None  # "int8": the checkpoint's validated int8 export (opt-in); None: the model file's
    tta: str = "none"  # mirrored and/or rescaled views of every window averaged (TTA)
    object_rule: bool = True  # apply an adapted model's void-object rule (bigseg.object_rule), when it has one
    grow_void_edges: bool = True  # False: the rule's edge growth (when it has one) is not applied in this run

    def check(self) -> None:
        """Every option in range, before anything is started or touched (parameter names as in the CLI)."""
        if not MIN_WINDOW <= self.window <= MAX_WINDOW:
            raise BigsegError(f"--window must be between {MIN_WINDOW} and {MAX_WINDOW} pixels, got {self.window}")
        if not 0 <= self.overlap <= self.window // 2:
            raise BigsegError(f"--overlap must be between 0 and half the window ({self.window // 2}), "
                              f"got {self.overlap}")
        if self.stripe is not None and self.stripe < 1:
            raise BigsegError(f"--stripe must be a positive width in pixels, got {self.stripe}")
        if self.device not in DEVICES:
            raise BigsegError(f"unknown device {self.device!r}; use cpu or cuda")
        if self.batch is not None and self.batch < 1:
            raise BigsegError(f"--batch must be at least 1, got {self.batch}")
        if self.threads is not None and self.threads < 1:
            raise BigsegError(f"--threads must be at least 1, got {self.threads}")
        if self.workers is not None and not 0 <= self.workers <= MAX_WORKERS:
            raise BigsegError(f"--workers must be between 0 and {MAX_WORKERS}, got {self.workers}")
        if self.backend is not None and self.backend not in BACKENDS:
            raise BigsegError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise BigsegError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.tta not in TTA:
            raise BigsegError(f"unknown --tta {self.tta!r}; choose one of {', '.join(TTA)}")
        if self.precision == "int8" and self.backend == "torch":
            raise BigsegError("--precision int8 runs on ONNX Runtime (a calibrated int8 export); drop --backend torch")
        if self.precision == "int8" and self.device == "cuda":
            raise BigsegError("--precision int8 is for CPUs (ONNX Runtime int8 kernels); on a GPU torch runs bf16")

    def batch_size(self) -> int:
        return self.batch or default_batch(self.device)

    def worker_count(self) -> int:
        return self.workers if self.workers is not None else default_workers(self.device)

