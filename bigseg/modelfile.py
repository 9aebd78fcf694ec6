"""What a model file is, read without loading it: a bigseg checkpoint, an ONNX export, a TorchScript export.

Used by every verb that takes a model (infer, export, bench); needs neither torch nor an export.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bigseg.checkpoint import file_head
from bigseg.classes import table_from_attrs
from bigseg.errors import BigsegError

META_KEY = "bigseg"
EXPORT_FORMAT = "bigseg-export"


def onnx_available() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise BigsegError(f"ONNX support needs onnx and onnxruntime ({exc}); pip install onnx onnxruntime "
                          "onnxscript") from exc


def model_kind(path: str | os.PathLike) -> str:
    """'checkpoint', 'onnx' or 'torchscript' by content; BigsegError for a missing or unknown file."""
    import zipfile

    path = Path(path)
    head = file_head(path, "model")
    if head[:2] == b"PK":
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except zipfile.BadZipFile:
            return "checkpoint"  # checkpoint.read names the problem
        if any(n.endswith("/code/") or "/code/__torch__" in n for n in names) or \
                any(n.endswith("extra/bigseg.json") for n in names):
            return "torchscript"
        return "checkpoint"
    if head[:1] == b"\x80":
        return "checkpoint"
    if path.suffix.lower() == ".onnx" or head[:1] == b"\x08":  # ONNX: protobuf, field 1 (ir_version) first
        return "onnx"
    return "checkpoint"


def read_onnx_meta(path: str | os.PathLike) -> dict:
    """The bigseg metadata of an ONNX export; BigsegError naming what is missing for any other file."""
    onnx_available()
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise BigsegError(f"{path}: not a readable ONNX file ({str(exc).splitlines()[0] if str(exc) else exc!r})"
                          ) from exc
    props = {p.key: p.value for p in model.metadata_props}
    if META_KEY not in props:
        raise BigsegError(f"{path}: not a bigseg export: the ONNX file has no '{META_KEY}' metadata property "
                          "(class table, architecture, window); export models with 'bigseg export'")
    try:
        meta = json.loads(props[META_KEY])
    except ValueError as exc:
        raise BigsegError(f"{path}: the '{META_KEY}' metadata property is not JSON ({exc})") from exc
    missing = [k for k in ("format", "arch", "classes") if k not in meta]
    if meta.get("format") != EXPORT_FORMAT or missing:
        raise BigsegError(f"{path}: the '{META_KEY}' metadata property is not a bigseg export's "
                          f"(missing: {', '.join(missing) or 'format ' + EXPORT_FORMAT})")
    table_from_attrs(meta["classes"])  # validates
    names = [i.name for i in model.graph.input]
    if len(names) != 1:
        raise BigsegError(f"{path}: a bigseg export has one input (the image), this file has {len(names)}")
    _check_runnable(path, model)
    return meta


STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"}
"""Operator domains ONNX Runtime runs without custom-op libraries (bigseg exports use the first and the last)."""


def _check_runnable(path: str | os.PathLike, model) -> None:
    """What ONNX Runtime would refuse with a page of C++ error, said in one line before a session is made: operators
    of a custom domain (they need a library bigseg does not load), weights in external files that are missing or
    lie outside the model's folder (bigseg reads nothing a model file points at elsewhere on the disk)."""
    import onnx

    custom = sorted({n.domain for n in model.graph.node} - STANDARD_DOMAINS)
    if custom:
        raise BigsegError(f"{path}: uses operators of the custom domain {custom[0]!r} that ONNX Runtime does not "
                          "have (a custom-op library bigseg does not load); export the model with 'bigseg export'")
    folder = Path(path).resolve().parent
    for t in model.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        where = {e.key: e.value for e in t.external_data}.get("location", "")
        target = (folder / where).resolve()
        if not where or os.path.isabs(where) or not target.is_relative_to(folder):
            raise BigsegError(f"{path}: its weights {t.name!r} point outside its folder ({where or 'no location'}); "
                              "bigseg reads external weights only from files beside the model")
        if not target.is_file():
            raise BigsegError(f"{path}: its weights file {where} (external data) is missing beside it")


def ort_session(path: str | os.PathLike, threads: int = 0, providers=("CPUExecutionProvider",)):
    """An ONNX Runtime session for an export: quiet, one inter-op thread, ``threads`` intra-op (0: ORT's)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.inter_op_num_threads = 1
    if threads > 0:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=list(providers))


def graph_digest(path: str | os.PathLike) -> str:
    """sha256 of an ONNX file's graph (its nodes and weights), not of its metadata: what an accuracy claim in the
    metadata was measured on. Editing the metadata keeps it; editing a weight changes it."""
    import hashlib

    onnx_available()
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return hashlib.sha256(model.graph.SerializeToString(deterministic=True)).hexdigest()
