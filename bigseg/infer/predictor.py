"""Per-process model cache and batched forward passes (runs inside dask workers).

A model is loaded once per worker process, keyed by model file digest, backend and device, and reused by every
task that worker runs. CPU workers pin torch's (or ONNX Runtime's) intra-op threads so that N workers on C cores
don't oversubscribe; CUDA workers run in bf16 autocast with channels_last memory layout.

Backends: ``torch`` runs a bigseg checkpoint; ``onnxruntime`` runs an ONNX export (see :mod:`bigseg.export`)
on ONNX Runtime's CPU provider (or CUDA's, with the onnxruntime-gpu package).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from bigseg.checkpoint import load
from bigseg.errors import BigsegError
from bigseg.modelfile import ort_session, read_onnx_meta

# torch is imported on first use: a worker running an ONNX export never needs it (~470 MB less per process)

_CACHE: dict = {}
_LOCK = threading.Lock()
_CPU_FORWARD = threading.Lock()  # one CPU forward pass at a time per process: it already uses all its threads


@dataclass(frozen=True)
class ModelSpec:
    checkpoint: str
    digest: str
    device: str = "cpu"
    threads: int = 0  # torch intra-op threads on CPU; 0 leaves torch's default
    amp: bool = True  # bf16 autocast on CUDA
    channels_last: bool = True
    backend: str = "torch"  # or "onnxruntime" (``checkpoint`` is then an ONNX export)
    compile: bool = False  # torch.compile the model (CUDA; compiles on the first batch of each worker)
    tta: str = "none"  # test-time augmentation (bigseg.infer.options.TTA, the views in TTA_VIEWS)
    scale: float = 1.0  # every view resized by this too: a scan finer than the model's working pixel size


def working_scale(meta: dict, pixel_size_um: float | None) -> float:
    """How much a window of a scan at ``pixel_size_um`` is resized before a model that records a working pixel
    size (``working_pixel_size_um``: trained on no pixel finer) sees it: pixel / working for a finer scan, else 1
    (a coarser scan, a model without one, or a store that does not know its pixel size)."""
    working = meta.get("working_pixel_size_um")
    if not working or not pixel_size_um or pixel_size_um >= float(working):
        return 1.0
    return float(pixel_size_um) / float(working)


def _device_for_worker(kind: str):
    import torch

    if kind != "cuda":
        return torch.device("cpu")
    n = torch.cuda.device_count()
    index = 0
    try:  # one worker per GPU: bigseg's own cluster names its workers 0..N-1; dask-jobqueue's job JOB with N
        # processes names them NAME-JOB-0..NAME-JOB-(N-1) (bigseg.hpc): the last number is the GPU on the node
        from distributed import get_worker

        index = int(str(get_worker().name).rsplit("-", 1)[-1]) % n
    except (ImportError, ValueError, TypeError):
        pass
    return torch.device("cuda", index)


def get_model(spec: ModelSpec):
    """(model, meta, device) for this process, loaded on first use."""
    with _LOCK:
        hit = _CACHE.get(spec)
        if hit is None and spec.backend == "onnxruntime":
            hit = _CACHE[spec] = _ort_session(spec)
        if hit is None:
            import torch

            if spec.device == "cpu" and spec.threads > 0:
                torch.set_num_threads(spec.threads)
            model, meta = load(spec.checkpoint)
            device = _device_for_worker(spec.device)
            model = model.to(device)
            if spec.channels_last:
                model = model.to(memory_format=torch.channels_last)
            if device.type == "cuda":
                torch.backends.cudnn.benchmark = True  # fixed window shapes: pick the fastest kernels once
            if spec.compile:
                model = cast(Any, torch.compile(model, dynamic=False))
            hit = _CACHE[spec] = (model, meta, device)
        return hit


def _ort_session(spec: ModelSpec):
    meta = read_onnx_meta(spec.checkpoint)
    providers: list[Any] = ["CPUExecutionProvider"]
    if spec.device == "cuda":
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": _device_for_worker("cuda").index}))
    return ort_session(spec.checkpoint, spec.threads, providers), meta, "cpu"


_WEIGHTS: dict = {}


def weight_on(weight: np.ndarray, device):
    """``weight`` as a float32 tensor on ``device``, made once per process."""
    import torch

    key = (hashlib.sha1(weight.tobytes()).hexdigest(), str(device))
    if key not in _WEIGHTS:
        _WEIGHTS[key] = torch.from_numpy(weight).to(device)
    return _WEIGHTS[key]


View = tuple[tuple[int, ...], float]
"""One view of a window: the image axes flipped (batch, y, x, channel) and the scale it is resized by."""

SCALES = (0.75, 1.0, 1.25)
"""The window's scales under ``--tta multiscale`` (pytorch-segmentation's multi-scale inference, the range voids
and stones vary by between sections)."""

TTA_VIEWS: dict[str, tuple[View, ...]] = {
    "none": (((), 1.0),),
    "flip": (((), 1.0), ((2,), 1.0)),  # the window and its left-right mirror
    "flip4": (((), 1.0), ((2,), 1.0), ((1,), 1.0), ((1, 2), 1.0)),  # and the up-down mirror, and both (a half turn)
    "multiscale": tuple(((), s) for s in SCALES),
    "flip-multiscale": tuple((axes, s) for s in SCALES for axes in ((), (2,))),
}
"""The views of each window per ``--tta`` mode: mirrored and/or resized (bilinear), run through the model, their
logits resized and mirrored back to the window and averaged before the blend, so the same windows and memory serve
every mode (a view at scale 1.25 holds 1.56x the window's pixels while it runs)."""


def _resize_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) bilinear interpolation weights, half-pixel centres (torch's ``align_corners=False``)."""
    pos = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (pos - lo).astype(np.float32)
    m = np.zeros((n_out, n_in), np.float32)
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m


def resize_nchw(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of (B, C, H, W) float32 to (B, C, h, w) with numpy (an ONNX Runtime worker imports no
    torch): two small matrix products, separable."""
    if x.shape[2:] == (h, w):
        return x
    ry, rx = _resize_matrix(h, x.shape[2]), _resize_matrix(w, x.shape[3])
    return np.einsum("yi,bcij,xj->bcyx", ry, x, rx, optimize=True).astype(np.float32)


def scaled_size(n: int, scale: float) -> int:
    """A side of ``n`` pixels at ``scale`` (a view of --tta multiscale)."""
    return max(8, round(n * scale))


def predict(spec: ModelSpec, images: np.ndarray, weight: np.ndarray | None = None):
    """Logits (B, C, h, w) as float16 for uint8 RGB windows (B, h, w, 3), times ``weight`` (h, w) if given;
    with ``spec.tta`` the mean of the logits of the window's mirrored views (:data:`TTA_VIEWS`).

    Weighting here, on the device and in float32 before the cast, leaves the blend a single add per window. The
    torch backend returns a torch tensor on the model's device (a GPU's logits stay there: the blend runs there
    too, :func:`bigseg.infer.tasks.blend_block`); ONNX Runtime returns a numpy array."""
    model, meta, device = get_model(spec)
    n = len(meta["classes"])
    try:
        views = TTA_VIEWS[spec.tta]
        if spec.scale != 1.0:
            views = tuple((axes, scale * spec.scale) for axes, scale in views)
        if spec.backend == "onnxruntime":
            out = None
            h, w = images.shape[1:3]
            for axes, scale in views:
                x = np.ascontiguousarray((np.flip(images, axes) if axes else images).transpose(0, 3, 1, 2),
                                         dtype=np.float32)
                x /= np.float32(255)
                if scale != 1.0:
                    x = np.ascontiguousarray(resize_nchw(x, scaled_size(h, scale), scaled_size(w, scale)))
                with _CPU_FORWARD:
                    y = model.run(None, {model.get_inputs()[0].name: x})[0]
                if scale != 1.0:
                    y = resize_nchw(np.asarray(y, np.float32), h, w)
                y = np.flip(y, tuple(a + 1 for a in axes)) if axes else y  # (B, C, h, w): y, x are axes 2, 3
                out = y if out is None else out + y
            assert out is not None
            if len(views) > 1:
                out = out / np.float32(len(views))
        else:
            import torch

            with torch.inference_mode():
                out = _predict_torch(spec, model, device, images, weight, views)
    except BigsegError:
        raise
    except Exception as exc:  # a model that does not take bigseg's input (an export of another shape, ...)
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise BigsegError(f"{spec.checkpoint}: the model failed on a batch of windows ({first})") from None
    if tuple(out.shape) != (len(images), n, *images.shape[1:3]):
        raise BigsegError(f"{spec.checkpoint}: the model gave logits of shape {tuple(out.shape)} for "
                          f"{len(images)} windows of {images.shape[1]}x{images.shape[2]} and {n} classes")
    if spec.backend == "onnxruntime":
        if weight is not None:
            out *= weight
        return out.astype(np.float16)
    return out


def _predict_torch(spec: ModelSpec, model, device, images: np.ndarray, weight: np.ndarray | None,
                   views: tuple[View, ...] = (((), 1.0),)):
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    if device.type == "cuda":
        x = x.pin_memory().to(device, non_blocking=True)
    x = x.float().div_(255.0)
    if spec.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = None
    h, w = images.shape[1:3]
    for axes, scale in views:
        dims = tuple(a + 1 for a in axes)  # (B, 3, h, w): the image's y, x are axes 2, 3
        xv = x.flip(dims) if dims else x
        if scale != 1.0:
            size = (scaled_size(h, scale), scaled_size(w, scale))
            xv = torch.nn.functional.interpolate(xv, size=size, mode="bilinear", align_corners=False)
        if device.type == "cuda" and spec.amp:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                y = model(xv)
        else:
            with _CPU_FORWARD:
                y = model(xv)
        y = y.float()
        if scale != 1.0:
            y = torch.nn.functional.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        y = y.flip(dims) if dims else y
        out = y if out is None else out.add_(y)
    assert out is not None
    if len(views) > 1:
        out.div_(len(views))
    if weight is not None:
        out.mul_(weight_on(weight, device))
    return out.to(torch.float16)
