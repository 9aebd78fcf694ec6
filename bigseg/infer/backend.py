"""Which model file runs, on which runtime: a checkpoint on torch, an ONNX export on ONNX Runtime, or a checkpoint
exported once to ONNX for ONNX Runtime (kept in the store's ``.bigseg/models/``). Everything here that needs torch
runs where the model runs (a worker), so the client process never imports it.
"""

from __future__ import annotations

from pathlib import Path

from bigseg.checkpoint import file_digest, load
from bigseg.errors import BigsegError
from bigseg.infer.options import InferOptions


def model_and_backend(ckpt: Path, o: InferOptions) -> tuple[str, str, dict | None]:
    """(file kind, backend, metadata or None for a checkpoint) for a model file; errors for combinations that
    cannot run. Needs no torch."""
    from bigseg.modelfile import model_kind, onnx_available, read_onnx_meta

    kind = model_kind(ckpt)
    backend = o.backend or ("onnxruntime" if kind == "onnx" else "torch")
    if kind == "torchscript":
        raise BigsegError(f"{ckpt}: a TorchScript export (for libtorch / torch.jit.load); bigseg infer runs a "
                          "checkpoint, or an ONNX export with --backend onnxruntime")
    if kind == "onnx" and backend != "onnxruntime":
        raise BigsegError(f"{ckpt}: an ONNX file runs with --backend onnxruntime, not {backend}")
    if backend == "onnxruntime":
        onnx_available()
        if o.device == "cuda":
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BigsegError("--backend onnxruntime --device cuda needs the onnxruntime-gpu package "
                                  "(this onnxruntime has no CUDA provider); or use --backend torch")
    if kind == "onnx":
        return kind, backend, read_onnx_meta(ckpt)
    return kind, backend, None  # a checkpoint: checkpoint_meta loads it where torch is (a worker)


def checkpoint_meta(ckpt: Path) -> dict:
    """The checkpoint's metadata, after a full safe load (weights only, and they must fit the architecture)."""
    _, meta = load(ckpt)
    return meta


def export_onnx(ckpt: Path, path: Path) -> dict:
    from bigseg.export import export

    return export(ckpt, path, "onnx", overwrite=True, echo=lambda *_: None)


def cache_dir() -> Path:
    """Where exports of users' checkpoints are kept: ``$BIGSEG_CACHE``, else ``$XDG_CACHE_HOME/bigseg``, else
    ``~/.cache/bigseg``."""
    import os

    if os.environ.get("BIGSEG_CACHE"):
        return Path(os.environ["BIGSEG_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bigseg"


def _usable_export(path: Path, digest: str) -> bool:
    """An export in the cache is used only if it reads as a bigseg export of exactly this checkpoint (a truncated
    or foreign file is made again)."""
    from bigseg.modelfile import read_onnx_meta

    if not path.is_file():
        return False
    try:
        return read_onnx_meta(path).get("source_checkpoint_sha256") == digest
    except BigsegError:
        return False


def onnx_export(ckpt: Path, digest: str, folder: Path, on_worker, echo, wait: float = 900.0) -> Path:
    """The checkpoint's verified ONNX export, made once per checkpoint (by its sha256, on a worker: it needs
    torch) in ``folder``. Concurrent runs wait for the one that makes it."""
    import time

    from bigseg import store as st

    path = folder / f"{digest[:16]}.onnx"
    lock = folder / f".{path.name}.lock"
    deadline = time.monotonic() + wait
    while lock.exists() and time.monotonic() < deadline:  # another run is exporting it
        try:
            pid = int(lock.read_text().strip() or "-1")
        except (OSError, ValueError):
            pid = -1
        if pid <= 0 or not st.pid_alive(pid):
            break
        time.sleep(0.5)
    if _usable_export(path, digest):
        return path
    folder.mkdir(parents=True, exist_ok=True)
    echo(f"exporting {ckpt.name} to ONNX for onnxruntime ({path})")
    r = on_worker(export_onnx, ckpt, path)
    echo(f"  checked against PyTorch: max |logit difference| {r['verified']['fp32_max_abs_logit_diff']:.1e}")
    return path


def model_file(ckpt: Path, digest: str, kind: str, backend: str, folder: Path, on_worker, echo) -> tuple[Path, str]:
    """(the file the workers load, its sha256); ``digest``: the model file's own sha256; ``folder``: where an
    export for ONNX Runtime is kept."""
    if backend == "onnxruntime" and kind == "checkpoint":
        path = onnx_export(ckpt, digest, folder, on_worker, echo)
        return path, file_digest(path)
    return ckpt.resolve(), digest
