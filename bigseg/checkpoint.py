"""Checkpoints: weights plus the metadata needed to use them, saved with torch.save and loaded safely.

A checkpoint is a dict ``{"format": "bigseg-checkpoint", "version": 1, "meta": {...}, "state_dict": {...},
"train_state": {...} (optional)}`` holding only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)``: a file carrying a pickled object (code) is refused, never executed.

``meta`` holds: ``arch``, ``arch_kwargs``, ``classes`` (the class table), ``window`` (training crop size),
and free-form provenance (``trained_on``, ``config``...).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from bigseg.classes import ClassInfo, table_from_attrs, table_to_attrs
from bigseg.errors import BigsegError

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions that need it: a ``bigseg infer`` client only hashes checkpoints (its
# workers load them), and importing torch costs a process ~470 MB.

FORMAT = "bigseg-checkpoint"
WEIGHTS = Path(__file__).parent / "weights"
BUNDLED = WEIGHTS / "concrete-light-unet.pt"
BUNDLED_MODELS = {
    "light_unet": BUNDLED,  # the default: real-time on a CPU
    "deeplabv3": WEIGHTS / "concrete-deeplabv3-mobilenet.pt",  # DeepLabV3, MobileNetV3-Large backbone
}
"""Models shipped with bigseg, by the name ``--model`` takes (a file of that name in the current folder wins)."""


def model_path(model: str | os.PathLike | None) -> Path:
    """The model file for ``--model``: None is the bundled default, a bundled model's name its file (unless a
    file of that name exists here), anything else a path."""
    if model is None:
        return BUNDLED
    p = Path(model)
    if str(model) in BUNDLED_MODELS and not p.exists():
        path = BUNDLED_MODELS[str(model)]
        if not path.is_file():
            raise BigsegError(f"the bundled model {model!r} is not installed ({path} is missing)")
        return path
    return p


def save(path: str | os.PathLike, model: torch.nn.Module, *, arch: str, classes, arch_kwargs=None,
         extra_meta=None, train_state=None, half: bool = False) -> None:
    """Write atomically (temporary file + rename), so an interrupted save never leaves a broken checkpoint.

    ``half``: floating-point tensors stored as float16 (half the file; loading casts them back to float32)."""
    import torch

    path = Path(path)
    meta = {"arch": arch, "arch_kwargs": dict(arch_kwargs or {}), "classes": table_to_attrs(classes),
            **(extra_meta or {})}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        meta["stored_as"] = "float16"
    blob = {"format": FORMAT, "version": 1, "meta": meta, "state_dict": state}
    if train_state is not None:
        blob["train_state"] = train_state
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def file_head(path: Path, what: str) -> bytes:
    """The first 4 bytes of a model file (its format's signature); BigsegError if there is no such file."""
    if not path.is_file():
        raise BigsegError(f"{path}: no such {what} file")
    with open(path, "rb") as f:
        return f.read(4)


def read(path: str | os.PathLike) -> dict:
    """The raw checkpoint dict, loaded with weights_only=True; BigsegError for anything else."""
    import torch

    path = Path(path)
    head = file_head(path, "checkpoint")
    if head[:2] != b"PK" and head[:1] != b"\x80":  # torch's zip format, or a bare pickle (refused below)
        raise BigsegError(f"{path}: not a checkpoint file (neither torch's zip format nor a pickle); "
                          "train one with 'bigseg train'")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before refusing
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text or "Unsupported operand" in text:
            raise BigsegError(
                f"{path}: refused: the file holds pickled Python objects (which could run code), not just "
                "tensors; bigseg loads weights only"
            ) from exc
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise BigsegError(f"{path}: not a readable checkpoint ({first})") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise BigsegError(
            f"{path}: not a bigseg checkpoint (no 'format: {FORMAT}' entry); train one with 'bigseg train'"
        )
    return blob


def load(path: str | os.PathLike) -> tuple[torch.nn.Module, dict]:
    """(model in eval mode on CPU, meta) from a checkpoint; errors name what does not fit."""
    from bigseg.models import build

    blob = read(path)
    meta = blob["meta"]
    classes = table_from_attrs(meta.get("classes", []))
    model = build(meta["arch"], len(classes), **meta.get("arch_kwargs", {}))
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        raise BigsegError(f"{path}: weights do not fit architecture {meta['arch']} with {len(classes)} classes "
                          f"({str(exc).splitlines()[0]})") from exc
    model.eval()
    return model, meta


def classes_of(meta: dict) -> tuple[ClassInfo, ...]:
    return table_from_attrs(meta["classes"])


def file_digest(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
