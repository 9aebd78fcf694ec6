"""Which model file runs, on which runtime: a checkpoint on torch, an ONNX export on ONNX Runtime, or a checkpoint
exported once to ONNX for ONNX Runtime (kept in the store's ``.bigseg/models/``). Everything here that needs torch
runs where the model runs (a worker), so the client process never imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bigseg import store as st
from bigseg.checkpoint import file_digest, load
from bigseg.errors import BigsegError
from bigseg.export import export
from bigseg.infer.options import InferOptions
from bigseg.modelfile import graph_digest, model_kind, onnx_available, read_onnx_meta
from bigseg.paths import cache_dir
from bigseg.results import ExportResult


@dataclass
class Choice:
    """What runs: the model file's kind, the backend, the metadata (None: a checkpoint, read where torch is), and
    a verified ONNX export of the checkpoint that is ready to use (shipped beside it or cached), if any."""

    kind: str
    backend: str
    meta: dict | None
    ready: Path | None = None


INT8_MIN_AGREEMENT = 0.99
"""An int8 export runs only if its labels equal PyTorch fp32's on at least this share of the pixels its export
checked (``bigseg export --int8`` refuses to write one below it; a file edited since is refused here)."""


def ready_export(ckpt: Path, digest: str, cache: Path | None, precision: str = "fp32") -> tuple[Path, dict] | None:
    """(path, metadata) of an ONNX export of exactly this checkpoint (its metadata names the checkpoint's sha256)
    at ``precision`` that needs no exporting: shipped beside it (``NAME.onnx``, ``NAME.int8.onnx``, as the bundled
    model's are) or in the export cache (``DIGEST.onnx``, ``DIGEST.int8.onnx``)."""
    suffix = ".onnx" if precision == "fp32" else f".{precision}.onnx"
    for path in (ckpt.with_suffix(suffix), *([cache / f"{digest[:16]}{suffix}"] if cache else [])):
        meta = _export_meta(path, digest, precision)
        if meta is not None:
            return path, meta
    return None


def int8_refusal(meta: dict, path: Path | None = None) -> str | None:
    """Why an export may not run as ``--precision int8`` (None: it may): not int8, its accuracy claims are not of
    this file's graph (``path`` given: the digest they name differs), or its measured accuracy does not allow it
    (its export check, and the validation rule when it has one: benchmarks/ship_int8.py)."""
    if meta.get("precision") != "int8":
        return f"it is a {meta.get('precision', 'fp32')} export, not an int8 one"
    if path is not None:
        claimed = (meta.get("verified") or {}).get("graph_sha256")
        if claimed is None:
            return ("its accuracy figures name no graph digest (an export older than 2026-12-02), so they cannot be "
                    "checked against this file: export it again with bigseg export --int8")
        if claimed != graph_digest(path):
            return ("its graph is not the one its accuracy figures were measured on (the file was changed after "
                    "export): export it again with bigseg export --int8")
    agreement = (meta.get("verified") or {}).get("int8_label_agreement")
    if agreement is None or agreement < INT8_MIN_AGREEMENT:
        share = "an unrecorded share" if agreement is None else f"{agreement:.2%}"
        return f"its labels equal PyTorch fp32's on {share} of its check windows ({INT8_MIN_AGREEMENT:.0%} needed)"
    validation = meta.get("validation")
    if validation is not None and not validation.get("allowed"):
        failed = [k for k, ok in (validation.get("checks") or {}).items() if not ok]
        return f"it failed its validation rule ({', '.join(failed) or 'not allowed'})"
    return None


def _int8_choice(ckpt: Path, kind: str, o: InferOptions, digest: str | None) -> Choice:
    """``--precision int8``: the checkpoint's int8 export (beside it or cached), or the int8 ONNX file given, if its
    measured accuracy allows; else one line saying why and how to make one."""
    onnx_available()
    ready: Path | None
    if kind == "onnx":
        path, ready, meta = ckpt, None, read_onnx_meta(ckpt)
    else:
        found = ready_export(ckpt, digest, export_folder(o, None), "int8") if digest else None
        if found is None:
            raise BigsegError(f"--precision int8: {ckpt.name} has no int8 export (none beside it as "
                              f"{ckpt.with_suffix('.int8.onnx').name}, none in the cache); make one calibrated on "
                              f"images like yours: bigseg export {ckpt} -o {ckpt.with_suffix('.int8.onnx')} --int8 "
                              f"--calibrate STORE")
        path, meta = found
        ready = path
    why = int8_refusal(meta, path)
    if why:
        raise BigsegError(f"{path}: --precision int8: {why}")
    return Choice(kind, "onnxruntime", meta, ready)


def export_folder(o: InferOptions, store: Path | str | None) -> Path | None:
    """Where exports of checkpoints are kept: ``--cache-dir``, else the cache (a local cluster), else the store's
    ``.bigseg/models`` (an external cluster's workers may not see this machine's cache, but they see the store)."""
    if o.cache_dir:
        return Path(o.cache_dir)
    if o.scheduler:
        if store is not None and st.is_url(store):
            raise BigsegError(f"{store}: with --scheduler and a store on object storage, pass --cache-dir on a path "
                              "every worker sees (model exports are files the workers open)")
        return Path(store) / ".bigseg" / "models" if store is not None else None
    return cache_dir() / "exports"


def model_and_backend(ckpt: Path, o: InferOptions, digest: str | None = None) -> Choice:
    """What runs for a model file; errors for combinations that cannot run. Needs no torch.

    The default backend on a CPU is ONNX Runtime whenever a verified export of the checkpoint is ready (the
    bundled models ship one; a user's checkpoint has one after its first ``--backend onnxruntime`` run): it
    forwards 1.35x faster and its workers never import torch. Otherwise torch, which needs no export."""
    kind = model_kind(ckpt)
    if kind == "torchscript":
        raise BigsegError(f"{ckpt}: a TorchScript export (for libtorch / torch.jit.load); bigseg infer runs a "
                          "checkpoint, or an ONNX export with --backend onnxruntime")
    if o.precision == "int8":
        return _int8_choice(ckpt, kind, o, digest)
    wants_onnx = o.backend == "onnxruntime" or (o.backend is None and o.device == "cpu")
    found = (ready_export(ckpt, digest, export_folder(o, None))
             if kind == "checkpoint" and digest is not None and wants_onnx else None)
    backend = "onnxruntime" if found is not None else o.backend or ("onnxruntime" if kind == "onnx" else "torch")
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
        meta = read_onnx_meta(ckpt)
        if o.precision == "fp32" and meta.get("precision") == "int8":
            raise BigsegError(f"{ckpt}: an int8 export; --precision fp32 runs its checkpoint or an fp32 export")
        return Choice(kind, backend, meta)
    # a checkpoint: with a ready export its metadata is the export's; without, checkpoint_meta loads it where
    # torch is (a worker)
    if found is None:
        return Choice(kind, backend, None)
    path, meta = found
    return Choice(kind, backend, meta, path)


def describe(choice: Choice, ckpt: Path, asked_backend: str | None) -> str | None:
    """The line ``infer`` prints about what runs, when it is not simply the file given on the backend asked for:
    an int8 export (and how close to fp32 it was measured), or a ready ONNX export chosen by default."""
    meta = choice.meta or {}
    whose = "" if choice.ready is None else ("the shipped" if choice.ready.parent == ckpt.parent else "a cached")
    if meta.get("precision") == "int8":
        validation = meta.get("validation") or {}  # benchmarks/ship_int8.py's slabs, else the export's windows
        agreement = validation.get("label_agreement") or (meta.get("verified") or {}).get("int8_label_agreement", 0)
        where = f"{whose} int8 export of this checkpoint ({choice.ready.name})" if choice.ready else ckpt.name
        return (f"precision: int8 (opt-in), {where}: labels equal to fp32's on {100 * agreement:.2f} % of its checked "
                "pixels; see README before reporting figures from it")
    if choice.ready is not None and asked_backend is None:
        return (f"backend: onnxruntime, with {whose} export of this checkpoint ({choice.ready.name}; --backend torch "
                "to run it on torch)")
    return None


def checkpoint_meta(ckpt: Path) -> dict:
    """The checkpoint's metadata, after a full safe load (weights only, and they must fit the architecture)."""
    _, meta = load(ckpt)
    return meta


def export_onnx(ckpt: Path, path: Path) -> ExportResult:
    return export(ckpt, path, "onnx", overwrite=True, echo=lambda *_: None)


def _export_meta(path: Path, digest: str, precision: str = "fp32") -> dict | None:
    """The metadata of ``path`` if it reads as a bigseg export of exactly this checkpoint at this precision, else
    None (a truncated or foreign file in the cache is made again)."""
    if not path.is_file():
        return None
    try:
        meta = read_onnx_meta(path)
    except BigsegError:
        return None
    ok = meta.get("source_checkpoint_sha256") == digest and meta.get("precision", "fp32") == precision
    return meta if ok else None


def onnx_export(ckpt: Path, digest: str, folder: Path, on_worker, echo, wait: float = 900.0) -> Path:
    """The checkpoint's verified ONNX export, made once per checkpoint (by its sha256, on a worker: it needs
    torch) in ``folder``. Concurrent runs wait for the one that makes it."""
    path = folder / f"{digest[:16]}.onnx"
    st.wait_for_lock(st.output_lock_path(path), wait)  # another run exporting it: its export is ours too
    if _export_meta(path, digest) is not None:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    echo(f"exporting {ckpt.name} to ONNX for onnxruntime ({path})")
    r = on_worker(export_onnx, ckpt, path)
    echo(f"  checked against PyTorch: max |logit difference| {r['verified']['fp32_max_abs_logit_diff']:.1e}")
    return path


def model_file(ckpt: Path, digest: str, choice: Choice, folder: Path, on_worker, echo) -> tuple[Path, str]:
    """(the file the workers load, its sha256); ``digest``: the model file's own sha256; ``folder``: where an
    export for ONNX Runtime is kept."""
    if choice.ready is not None:
        return choice.ready.resolve(), file_digest(choice.ready)
    if choice.backend == "onnxruntime" and choice.kind == "checkpoint":
        path = onnx_export(ckpt, digest, folder, on_worker, echo)
        return path, file_digest(path)
    return ckpt.resolve(), digest
