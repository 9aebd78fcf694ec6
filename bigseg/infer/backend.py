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

    return export(ckpt, path, "onnx", echo=lambda *_: None)


def onnx_export_in_store(ckpt: Path, digest: str, store: Path, on_worker, echo) -> Path:
    """The checkpoint's verified ONNX export, made once (on a worker: it needs torch) and kept in the store's
    .bigseg/models/."""
    path = store / ".bigseg" / "models" / f"{digest[:16]}.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        echo(f"exporting {ckpt.name} to ONNX for onnxruntime ({path})")
        r = on_worker(export_onnx, ckpt, path)
        echo(f"  checked against PyTorch: max |logit difference| {r['verified']['fp32_max_abs_logit_diff']:.1e}")
    return path


def model_file(ckpt: Path, digest: str, kind: str, backend: str, store: Path, on_worker, echo) -> tuple[Path, str]:
    """(the file the workers load, its sha256); ``digest``: the model file's own sha256."""
    if backend == "onnxruntime" and kind == "checkpoint":
        path = onnx_export_in_store(ckpt, digest, store, on_worker, echo)
        return path, file_digest(path)
    return ckpt.resolve(), digest
