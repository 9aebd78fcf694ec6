"""Bring your own trained model: a torchvision segmentation state dict made into a bigseg checkpoint.

``bigseg import weights FILE -o MODEL.pt`` reads FILE safely (``torch.load(weights_only=True)``): a plain state
dict, or a training checkpoint holding one under ``state_dict``, ``model``, ``model_state_dict`` or ``net`` (its
optimizer state is left behind). Prefixes of wrapped models (``module.`` of DataParallel, ``model.``) are
removed; an auxiliary head (``aux_classifier.*``, used in training only) is dropped.

The architecture is found by building every candidate of the registry (deeplabv3_resnet50/101,
deeplabv3_mobilenet_v3_large, lraspp_mobilenet_v3_large, fcn_resnet50/101) for the file's number of classes and
keeping those whose parameter names and shapes are exactly the file's; the number of classes comes from the
classifier's last layer. The input convention travels with the weights: ``mean``/``std`` (one value or three,
in the network's channel order) and ``bgr`` (trained on OpenCV's BGR crops) are stored in the checkpoint, and the
model applies them itself, so ``infer``, ``export`` (inside the ONNX graph), ``evaluate`` and fine-tuning
(``model.init``) all see the same network the original trainer did.

The original air-void trainer: ``deeplabv3_resnet50`` without aux head, ``classifier[4] = Conv2d(256, 3, 1)``,
BGR crops, ``Normalize(0.35, 0.18)`` on every channel, classes 0 paste, 1 stone, 2 void::

    bigseg import weights 600.pth -o airvoid.pt --mean 0.35 --std 0.18 --bgr
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bigseg import checkpoint
from bigseg.checkpoint import FORMAT, check_archive, file_head
from bigseg.classes import CONCRETE, ClassInfo
from bigseg.datasets import read_colour_table
from bigseg.errors import BigsegError
from bigseg.paths import refuse_overlap
from bigseg.results import ImportResult

CANDIDATES = ("deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large",
              "lraspp_mobilenet_v3_large", "fcn_resnet50", "fcn_resnet101")
_NESTED = ("state_dict", "model", "model_state_dict", "net", "weights")
_PREFIXES = ("module.", "model.", "net.")


def read_state_dict(path: Path) -> dict:
    """The state dict in FILE (plain, or nested in a training checkpoint), with wrapper prefixes removed."""
    import warnings

    import torch

    head = file_head(path, "weights")
    if head[:2] != b"PK" and head[:1] != b"\x80":
        raise BigsegError(f"{path}: not a PyTorch file (neither torch's zip format nor a pickle)")
    check_archive(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text:
            raise BigsegError(f"{path}: refused: a whole pickled model (torch.save(net)), which could run code; in "
                              "the script that trained it, save net.state_dict() instead and import that") from exc
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise BigsegError(f"{path}: not a readable PyTorch file ({first})") from exc
    if isinstance(blob, dict) and blob.get("format") == FORMAT:
        raise BigsegError(f"{path}: already a bigseg checkpoint; use it as it is")
    if isinstance(blob, dict):
        for key in _NESTED:
            if isinstance(blob.get(key), dict) and blob[key] and all(
                    isinstance(v, torch.Tensor) for v in blob[key].values()):
                blob = blob[key]
                break
    if not isinstance(blob, dict) or not blob or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise BigsegError(f"{path}: holds no state dict (a mapping of parameter names to tensors)")
    state = dict(blob)
    changed = True
    while changed:  # DataParallel(model) -> "module.", wrappers -> "model." / "net."
        changed = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return state


def n_classes_of(state: dict) -> int | None:
    for key in ("classifier.4.weight", "classifier.low_classifier.weight"):
        if key in state and state[key].ndim == 4:
            return int(state[key].shape[0])
    return None


def candidates(state: dict, n_classes: int) -> dict[str, int]:
    """Architectures whose parameters are exactly the state dict's -> 0; others -> how many names or shapes
    differ (for the error message)."""
    from bigseg.models import _torchvision

    out = {}
    for arch in CANDIDATES:
        own = _torchvision(arch, n_classes, pretrained_backbone=False).state_dict()
        differ = len(set(own) ^ set(state)) + sum(own[k].shape != state[k].shape for k in set(own) & set(state))
        out[arch] = differ
    return out


def import_weights(path: str | os.PathLike, out: str | os.PathLike, arch: str = "auto", classes=None,
                   mean=None, std=None, bgr: bool = False, window: int = 900, overwrite: bool = False,
                   echo=print) -> ImportResult:
    """Import a torchvision segmentation state dict (see the module doc); returns what was written.

    ``classes``: None (the concrete table, for 3 classes), "concrete", or a colour-table file (R G B name per
    line). The import is checked: the bigseg model and the bare network (with the normalisation and channel
    order applied by hand) give the same logits on a random image."""
    if not 32 <= int(window) <= 16384:
        raise BigsegError(f"--window must be between 32 and 16384 px (the crop size the network was trained on), "
                          f"got {window}")

    from bigseg.models import ARCHITECTURES, build
    path, out = Path(path), Path(out)
    refuse_overlap(out, "-o", ("weights file", path))
    if out.exists() and not overwrite:
        raise BigsegError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise BigsegError(f"{out.parent}: no such folder")
    state = read_state_dict(path)
    bad = next((k for k, v in state.items() if hasattr(v, "is_floating_point") and v.is_floating_point()
                and not bool(v.isfinite().all())), None)
    if bad is not None:  # infer would refuse the checkpoint later; say it now, naming the tensor
        raise BigsegError(f"{path}: the tensor {bad!r} holds inf or NaN; these weights cannot be used")
    aux = [k for k in state if k.startswith("aux_classifier.")]
    state = {k: v for k, v in state.items() if not k.startswith("aux_classifier.")}
    n = n_classes_of(state)
    if n is None:
        raise BigsegError(f"{path}: no torchvision segmentation classifier in it (classifier.4 or "
                          "classifier.low_classifier); candidates: " + ", ".join(CANDIDATES))
    if arch == "auto":
        scores = candidates(state, n)
        exact = [a for a, d in scores.items() if d == 0]
        if not exact:
            best = min(scores, key=lambda a: scores[a])
            raise BigsegError(f"{path}: the weights fit none of {', '.join(CANDIDATES)} (closest: {best}, "
                              f"{scores[best]} names or shapes differ); pass --arch if it is one of them")
        if len(exact) > 1:
            raise BigsegError(f"{path}: the weights fit several architectures ({', '.join(exact)}); choose one "
                              "with --arch")
        arch = exact[0]
    elif arch not in ARCHITECTURES or arch == "light_unet":
        raise BigsegError(f"--arch {arch}: choose auto or one of {', '.join(CANDIDATES)}")
    table: tuple[ClassInfo, ...]
    if classes is None or classes == "concrete":
        if classes is None and n != 3:
            raise BigsegError(f"{path}: {n} classes; pass --classes FILE (R G B name per line) to name them")
        table = CONCRETE
    else:
        table = tuple(ClassInfo(i, name, colour) for i, (name, colour) in enumerate(read_colour_table(classes)))
    if len(table) != n:
        raise BigsegError(f"{path}: the classifier has {n} classes but the class table names {len(table)}")
    kwargs: dict[str, Any] = {"bgr": bool(bgr)}
    if mean is not None:
        kwargs["mean"] = list(mean) if isinstance(mean, list | tuple) else [float(mean)]
    if std is not None:
        kwargs["std"] = list(std) if isinstance(std, list | tuple) else [float(std)]
    model = build(arch, n, **kwargs)
    try:
        model.net.load_state_dict(state)
    except RuntimeError as exc:
        raise BigsegError(f"{path}: the weights do not fit {arch} with {n} classes "
                          f"({str(exc).splitlines()[0]})") from exc
    model.eval()
    check = _check(model)
    digest = checkpoint.file_digest(path)
    checkpoint.save(out, model, arch=arch, classes=table, arch_kwargs=kwargs, extra_meta={
        "window": int(window), "imported_from": str(path.resolve()), "imported_sha256": digest,
        "trained_on": [f"imported weights ({path.name}); what they were trained on is not recorded in the file"],
        "description": f"{arch} imported from {path.name}"})
    echo(f"{path.name}: {arch}, {n} classes ({', '.join(c.name for c in table)})"
         + (f", auxiliary head dropped ({len(aux)} tensors)" if aux else "")
         + f"; input {'BGR' if bgr else 'RGB'}, mean {list(model.mean.flatten().tolist())}, "
           f"std {list(model.std.flatten().tolist())}; checked: max |logit difference| {check:.1e}")
    return ImportResult(path=str(out), arch=arch, classes=[c.name for c in table], bgr=bool(bgr),
                        aux_dropped=len(aux), max_abs_diff=float(check))


def _check(model) -> float:
    """The bigseg model against its bare network fed as the original trainer fed it (channels reordered,
    normalised by hand): the largest logit difference on a random image."""
    import torch

    torch.manual_seed(0)
    x = torch.rand(1, 3, 96, 128)
    with torch.inference_mode():
        ours = model(x)
        raw = x.flip(1) if model.bgr else x
        theirs = model.net((raw - model.mean) / model.std)["out"]
    diff = float((ours - theirs).abs().max())
    if not diff <= 1e-5:
        raise BigsegError(f"the imported model differs from the bare network by {diff:.3g}; not written")
    return diff
