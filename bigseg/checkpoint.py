"""Checkpoints: weights plus the metadata needed to use them, saved with torch.save and loaded safely.

A checkpoint is a dict ``{"format": "bigseg-checkpoint", "version": 1, "meta": {...}, "state_dict": {...},
"train_state": {...} (optional)}`` holding only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)``: a file carrying a pickled object (code) is refused, never executed.

``meta`` holds: ``arch``, ``arch_kwargs``, ``classes`` (the class table), ``window`` (training crop size),
and free-form provenance (``trained_on``, ``config``...).
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from bigseg import store as st
from bigseg.classes import ClassInfo, table_from_attrs, table_to_attrs
from bigseg.errors import BigsegError
from bigseg.paths import cache_dir
from bigseg.store import files

if TYPE_CHECKING:
    import torch

    from bigseg.models import Normalized

# torch is imported inside the functions that need it: a ``bigseg infer`` client only hashes checkpoints (its
# workers load them), and importing torch costs a process ~470 MB.

FORMAT = "bigseg-checkpoint"
WEIGHTS = Path(__file__).parent / "weights"
BUNDLED = WEIGHTS / "concrete-light-unet.pt"
BUNDLED_MODELS = {
    "light_unet": BUNDLED,  # the default: real-time on a CPU
    "deeplabv3": WEIGHTS / "concrete-deeplabv3-mobilenet.pt",  # DeepLabV3(+), MobileNetV3-Large backbone
    "deeplabv3plus-adapt": WEIGHTS / "deeplabv3plus-mobilenet-adapt-base.pt",  # a base for bigseg adapt
}
"""Models shipped with bigseg, by the name ``--model`` takes (a file of that name in the current folder wins)."""

ADAPT_BASES = {
    "deeplabv3plus-adapt": "shipped as a base for 'bigseg adapt' (README, 'A larger base for adapting'); read as it "
                           "is, it failed the held-out check models ship by (UV-fluorescent sections read as void "
                           "wholesale, every such slab flagged): adapt it to your concrete before using its figures",
}
"""Bundled models meant to be adapted, not run as they are, and what infer and a report say when one is run as it is."""


def bundled_name(digest: str | None) -> str | None:
    """The name of the bundled model whose file has this sha256 (None for any other file): a copy of a shipped
    model, or a store read after bigseg moved, is known by what it holds, not by where it lies."""
    if not digest:
        return None
    for name, path in BUNDLED_MODELS.items():
        if path.is_file() and _cached_digest(path) == digest:
            return name
    return None


_DIGESTS: dict[tuple[str, int, int], str] = {}


def _cached_digest(path: Path) -> str:
    """``file_digest`` of a bundled file, hashed once a process (keyed by its size and modification time)."""
    info = path.stat()
    key = (str(path.resolve()), info.st_size, info.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_digest(path)
    return _DIGESTS[key]


def adapt_base_note(digest: str | None) -> str | None:
    """What ``infer`` and a report say of labels read by a bundled adapt base as it is (None for any other model),
    from the model file's sha256: a copy of the base is the base, an adapted model is not."""
    name = bundled_name(digest)
    return f"{name} is {ADAPT_BASES[name]}" if name in ADAPT_BASES else None


RECIPES = {"deeplabv3": "bigseg train --config generalization-deeplabv3plus-mobilenet-cpu (~100 min on 2 cores; "
                        "that first round reads classic voids at IoU ~0.5, the rounds from its weights in "
                        "configs/generalization-deeplabv3plus-mobilenet-cpu-*.yaml bring it to 0.85-0.89) && python "
                        "benchmarks/pack_checkpoint.py runs/generalization-deeplabv3plus-mobilenet-cpu/model.pt "
                        f"{BUNDLED_MODELS['deeplabv3']} --half && bigseg calibrate deeplabv3. No round has yet met "
                        "the rule for shipping it (README, 'Classes and the bundled model'): the last three passed its "
                        "classic and random-style parts and failed the held-out veto (the latest on UV-fluorescent "
                        "sections alone, read as void wholesale); a source checkout keeps the candidates in "
                        "benchmarks/candidates/, which --model PATH runs"}
"""How to make a named model that a release does not ship (README, "Classes and the bundled model")."""


def model_path(model: str | os.PathLike | None) -> Path:
    """The model file for ``--model``: None is the bundled default, a bundled model's name its file (unless a
    file of that name exists here), an fsspec URL the copy :func:`fetched` keeps, anything else a path."""
    if model is None:
        return BUNDLED
    if st.is_url(model):
        return fetched(str(model))
    p = Path(model)
    if str(model) in BUNDLED_MODELS and not p.exists():
        path = BUNDLED_MODELS[str(model)]
        if not path.is_file():
            how = RECIPES.get(str(model))
            raise BigsegError(f"the model {model!r} is not shipped with this bigseg ({path} is missing)"
                              + (f"; make it with: {how}" if how else ""))
        return path
    return p


def fetched(url: str) -> Path:
    """A model file at an fsspec URL (``s3://bucket/models/mine.pt``), copied once into bigseg's cache and kept
    under a name made from the URL and the object's size and modification time (a changed object is fetched
    again); written whole or not at all. What it holds is checked as any local file is, when it is loaded."""
    fs, path, info = files.remote_file(url, "model file")
    key = hashlib.sha256(f"{url}|{info.get('size')}|{files.modified(info)}".encode()).hexdigest()[:16]
    local = cache_dir() / "models" / key / st.name_of(url)
    if not local.is_file():
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{os.getpid()}.partial")
        try:
            fs.get_file(path, str(tmp))
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)
    return local


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
    try:
        torch.save(blob, tmp)
    except (OSError, RuntimeError) as exc:  # torch's zip writer reports a refused write as a RuntimeError
        tmp.unlink(missing_ok=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BigsegError(f"{path}: the file system refused to write the checkpoint ({first}); disk full or a "
                          "file size limit? The previous checkpoint is intact") from exc
    os.replace(tmp, path)


def file_head(path: Path, what: str) -> bytes:
    """The first 4 bytes of a model file (its format's signature); BigsegError if there is no such file."""
    if not path.is_file():
        raise BigsegError(f"{path}: no such {what} file")
    with open(path, "rb") as f:
        return f.read(4)


def check_archive(path: Path) -> None:
    """Refuse a torch zip file whose entries expand far beyond its size (a zip bomb) before torch unpacks it.

    torch.save stores tensors uncompressed, so a real checkpoint expands to about its own size; the limit leaves
    room for compressed files written by other tools (4 x the file, and at least 256 MB more)."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as z:
            expanded = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise BigsegError(f"{path}: a damaged zip archive ({exc})") from exc
    size = path.stat().st_size
    if expanded > max(4 * size, size + 256 * 2**20):
        raise BigsegError(f"{path}: refused: its {size / 2**20:.1f} MB expand to {expanded / 2**30:.1f} GB "
                          "(a checkpoint is stored uncompressed; this looks like a zip bomb)")


def read(path: str | os.PathLike) -> dict:
    """The raw checkpoint dict, loaded with weights_only=True; BigsegError for anything else."""
    import torch

    path = Path(path)
    head = file_head(path, "checkpoint")
    if head[:2] != b"PK" and head[:1] != b"\x80":  # torch's zip format, or a bare pickle (refused below)
        raise BigsegError(f"{path}: not a checkpoint file (neither torch's zip format nor a pickle); "
                          "train one with 'bigseg train'")
    check_archive(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before refusing
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text or "Unsupported operand" in text:
            raise BigsegError(
                f"{path}: refused: the file holds pickled Python objects (which could run code), not just "
                "tensors; bigseg loads weights only (for a whole model saved with torch.save(net), save "
                "net.state_dict() instead and import it with 'bigseg import weights')"
            ) from exc
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise BigsegError(f"{path}: not a readable checkpoint ({first})") from exc
    if isinstance(blob, dict) and blob and all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise BigsegError(f"{path}: a plain state dict (weights without bigseg's metadata); import it with "
                          f"'bigseg import weights {path} -o MODEL.pt'")
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise BigsegError(
            f"{path}: not a bigseg checkpoint (no 'format: {FORMAT}' entry); train one with 'bigseg train'"
        )
    _check_structure(path, blob)
    return blob


def _check_structure(path, blob: dict) -> None:
    """The checkpoint's parts have the types bigseg writes (a safely loadable file can still hold anything)."""
    import torch

    meta, state = blob.get("meta"), blob.get("state_dict")
    if not isinstance(meta, dict) or not isinstance(meta.get("arch"), str):
        raise BigsegError(f"{path}: malformed bigseg checkpoint: 'meta' lacks the architecture ('arch')")
    if not isinstance(meta.get("arch_kwargs", {}), dict):
        raise BigsegError(f"{path}: malformed bigseg checkpoint: 'meta.arch_kwargs' is not a mapping")
    if not isinstance(meta.get("classes"), list):
        raise BigsegError(f"{path}: malformed bigseg checkpoint: 'meta.classes' (the class table) is missing")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BigsegError(f"{path}: malformed bigseg checkpoint: 'state_dict' is not a mapping of names to tensors")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise BigsegError(f"{path}: {len(bad)} weight tensors hold NaN or inf (first: {bad[0]}); a diverged "
                          "training? Use an earlier checkpoint")


LOGIT_OFFSET = "logit_offset"
"""Metadata key: a constant added to each class's logit after the network (``bigseg adapt``'s void shift)."""


def load(path: str | os.PathLike) -> tuple[Normalized, dict]:
    """(model in eval mode on CPU, meta) from a checkpoint, with the logit offset its metadata names; errors name
    what does not fit."""
    from bigseg.models import build

    blob = read(path)
    meta = blob["meta"]
    classes = table_from_attrs(meta.get("classes", []))
    try:
        model = build(meta["arch"], len(classes), **meta.get("arch_kwargs", {}))
    except (TypeError, ValueError) as exc:
        raise BigsegError(f"{path}: its arch_kwargs {meta.get('arch_kwargs')} do not build {meta['arch']} "
                          f"({str(exc).splitlines()[0]})") from exc
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        raise BigsegError(f"{path}: weights do not fit architecture {meta['arch']} with {len(classes)} classes "
                          f"({str(exc).splitlines()[0]})") from exc
    offset = meta.get(LOGIT_OFFSET)
    if offset is not None:
        if not (isinstance(offset, list) and len(offset) == len(classes) and all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in offset)):
            raise BigsegError(f"{path}: malformed bigseg checkpoint: '{LOGIT_OFFSET}' needs one finite number per "
                              f"class ({len(classes)}), got {offset!r}")
        model.set_logit_offset(offset)
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
