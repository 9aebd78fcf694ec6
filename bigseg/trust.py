"""How far to trust a model: measured on synthetic slabs with exact truth, and a confidence reference.

- :func:`measure_slab`: one model on one synthetic slab (made once per style and seed, kept in a work folder):
  per-class IoU, air content and spacing factor from the labels and from the truth (same traverse), and the
  confidence figures the inference pass recorded.
- :func:`calibrate`: the model on slabs of **validation styles** (random styles drawn from seeds no training
  config uses, never a held-out style) -> ``confidence_reference`` in the checkpoint: for each candidate figure
  of doubt, its range on those slabs and its rank correlation with the air-content error there; the figure that
  tracks the error best is the one ``bigseg report`` checks. A slab whose figure lies above everything the
  model showed on its validation slabs gets the warning.
- :func:`doubt`: that check, for a store's confidence summary and a model's reference.

Nothing here is tuned on the held-out styles (benchmarks/generalization.py only reports on them).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from bigseg import checkpoint
from bigseg import store as st
from bigseg.checkpoint import classes_of
from bigseg.errors import BigsegError
from bigseg.export import _set_onnx_meta
from bigseg.infer import InferOptions, infer
from bigseg.ingest import ingest
from bigseg.metrics import scores
from bigseg.modelfile import model_kind, read_onnx_meta
from bigseg.records import ACCURATE_POINTS, ConfidenceReference, FigureRange, UnfamiliarGate

# the check itself (figures, gates, messages) lives with the report that carries it; re-exported here
from bigseg.report.doubt import (
    ADAPTED_MIN_ACCURACY,
    FIGURES,
    NOT_RANKED,
    SECOND_OPINION_POINTS,
    UNFAMILIAR_FIGURES,
    UNFAMILIAR_MARGIN,
    adapted_doubt,
    doubt,
    figures,
)
from bigseg.report.evaluate import confusion_matrix
from bigseg.report.report import analyse
from bigseg.synth import SynthParams, synthesize

CALIBRATION_SEED = 7_000_000
"""Seeds of the validation slabs (random styles drawn from them); far from every seed a config draws from."""

__all__ = ["ACCURATE_POINTS", "ADAPTED_MIN_ACCURACY", "CALIBRATION_SEED", "FIGURES", "NOT_RANKED",
           "SECOND_OPINION_POINTS", "UNFAMILIAR_FIGURES", "UNFAMILIAR_MARGIN", "adapted_doubt", "calibrate", "doubt",
           "figures", "measure_slab", "spearman", "synthetic_store"]


def synthetic_store(workdir: Path, style: str, seed: int, size: int) -> Path:
    """A slab of ``style`` (seed ``seed``, ``size`` px square) written as the JPEG a lab would have (at the
    style's JPEG quality) and ingested with its truth; made once, reused."""
    store = workdir / f"{style}-{seed}-{size}.zarr"
    if store.exists():
        return store
    workdir.mkdir(parents=True, exist_ok=True)
    params = SynthParams(size, size, seed=seed, style=style)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        s = synthesize(Path(tmp) / "slab.jpg", params)
        ingest(s["image"], store, truth=s["truth"], pixel_size=params.pixel_size)
    return store


def measure_slab(store: Path, model: str | None, workers: int = 0, backend: str | None = None, tta: str = "none",
                 object_rule: bool = True) -> dict:
    """``model`` (None: the bundled one) on ``store``: IoU per class, air content and spacing factor (labels and
    truth), confidence. Overwrites the store's labels."""
    r = infer(store, model=model, options=InferOptions(workers=workers, overwrite=True, backend=backend, tta=tta,
                                                       object_rule=object_rule), echo=lambda *a: None)
    cm, names = confusion_matrix(store)
    group = st.open_store(store)
    classes, px = st.class_table(group), st.pixel_size_um(group)
    got = {s: analyse(store, s, classes, px, 1.0, 1.0)["parameters"] for s in ("labels", "truth")}

    def both(key):
        return got["labels"][key]["value"], got["truth"][key]["value"]

    air, air_truth = both("air_content")
    sf, sf_truth = both("spacing_factor")
    return {
        "store": str(store), "confusion": cm.tolist(), "iou": scores(cm, names)["iou"],
        "air_content": air, "air_content_truth": air_truth, "air_error_points": air - air_truth,
        "spacing_factor": sf, "spacing_factor_truth": sf_truth,
        "spacing_factor_error": (sf - sf_truth) / sf_truth if sf is not None and sf_truth else None,
        "entrapped_voids": both("entrapped_void_count")[0], "entrapped_voids_truth": both("entrapped_void_count")[1],
        "entrapped_air": both("entrapped_air_content")[0], "entrapped_air_truth": both("entrapped_air_content")[1],
        "confidence": r.confidence, "figures": figures(r.confidence) if r.confidence else {},
        "megapixels_per_second": r.megapixels_per_second, "object_rule": r.stats.get("object_rule"),
    }


def spearman(a, b) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None for fewer than three pairs."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3:
        return None

    def ranks(v):
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for value in np.unique(v):  # ties share their mean rank
            tie = v == value
            r[tie] = r[tie].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def calibrate(model: str | os.PathLike, out: str | os.PathLike | None = None, slabs: int = 16, size: int = 2048,
              workdir: str | os.PathLike | None = None, workers: int = 0, overwrite: bool = False,
              echo=print) -> ConfidenceReference:
    """Measure ``model`` on ``slabs`` validation-style slabs and write it with ``confidence_reference`` in its
    metadata to ``out`` (default: in place). Returns the reference."""
    model = Path(model)
    if model_kind(model) != "checkpoint":
        raise BigsegError(f"{model}: calibrate a bigseg checkpoint (exports take the reference from it)")
    out = Path(out) if out else model
    if out.exists() and out != model and not overwrite:
        raise BigsegError(f"{out} exists; pass --overwrite to replace it")
    if slabs < 3:
        raise BigsegError(f"--slabs must be at least 3 (a range and a correlation need several), got {slabs}")
    if not 256 <= size <= 16384:
        raise BigsegError(f"--size must be between 256 and 16384 px, got {size}: a validation slab must hold "
                          "1 mm traverse lines (2048, the default, holds several)")
    blob = checkpoint.read(model)  # refuses anything but a safe bigseg checkpoint, before hours of work
    old_digest = checkpoint.file_digest(model)
    own_tmp = workdir is None
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="bigseg-calibrate-"))
    rows = []
    try:
        for k in range(slabs):
            store = synthetic_store(work, "random", CALIBRATION_SEED + k, size)
            row = measure_slab(store, str(model), workers)
            rows.append(row)
            echo(f"validation slab {k + 1}/{slabs} ({store.name}): air {row['air_content']:.2f} % vs truth "
                 f"{row['air_content_truth']:.2f} %, uncertain {row['figures'].get('uncertain_fraction', 0):.4f}")
    finally:
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)
    errors = [abs(r["air_error_points"]) for r in rows]
    sf_errors = [abs(r["spacing_factor_error"] or 0.0) for r in rows]
    seeds = f"{CALIBRATION_SEED}..{CALIBRATION_SEED + slabs - 1}"
    ranges: dict[str, FigureRange] = {}
    for name, text in FIGURES.items():
        values = [r["figures"][name] for r in rows if name in r["figures"]]
        if len(values) != len(rows):
            continue
        ranges[name] = FigureRange(text, float(np.median(values)), float(np.max(values)), spearman(values, errors),
                                   spearman(values, sf_errors))
    usable = {k: v for k, v in ranges.items() if v.spearman_with_air_error is not None and k not in NOT_RANKED}
    if not usable:
        raise BigsegError("no confidence figure varied over the validation slabs; use more --slabs")
    best = max(usable, key=lambda k: usable[k].rank)
    gate = None
    shift = next((k for k in UNFAMILIAR_FIGURES if k in ranges), None)
    if shift:  # the gate for images unlike any the model was trained on
        gate = UnfamiliarGate(shift, UNFAMILIAR_MARGIN * ranges[shift].max,
                              f"{UNFAMILIAR_MARGIN:g} x the largest {shift} on the {slabs} validation slabs")
    # the range the model showed where it was right: the largest value of the figure on the validation slabs whose
    # air content was within ACCURATE_POINTS of the truth (the whole range when fewer than three were)
    right = [r["figures"][best] for r, e in zip(rows, errors, strict=True) if e <= ACCURATE_POINTS]
    if len(right) >= 3:
        threshold = float(np.max(right))
        rule = (f"the largest {best} on the {len(right)} of {slabs} validation slabs whose air content "
                f"was within {ACCURATE_POINTS} points of the truth")
    else:  # right too rarely for a range of its own: as doubtful as any slab where it was wrong is doubtful
        wrong = [r["figures"][best] for r, e in zip(rows, errors, strict=True) if e > ACCURATE_POINTS]
        threshold = float(np.nextafter(np.min(wrong), -np.inf))  # flagged from the least doubtful on
        rule = (f"the smallest {best} of the {len(wrong)} validation slabs whose air content was more "
                f"than {ACCURATE_POINTS} points off (only {len(right)} of {slabs} were within: too few "
                "for a range where it was right, so anything as doubtful as a slab where it was wrong "
                "is flagged)")
    per_slab = [{"seed": CALIBRATION_SEED + k, "air_error_points": _sig(r["air_error_points"]),
                 "spacing_factor_error": None if r["spacing_factor_error"] is None else _sig(r["spacing_factor_error"]),
                 "figures": {n: _sig(r["figures"][n]) for n in ranges}} for k, r in enumerate(rows)]
    ref = ConfidenceReference(slabs=slabs, size=size, styles=f"random, seeds {seeds}",
                              air_error_median=float(np.median(errors)), air_error_max=float(np.max(errors)),
                              figures=ranges, figure=best, threshold=threshold, rule=rule, unfamiliar=gate,
                              per_slab=per_slab)
    reference = ref.to_attrs()
    meta = dict(blob["meta"])
    meta["confidence_reference"] = reference
    from bigseg.models import build

    net = build(meta["arch"], len(classes_of(meta)), **meta.get("arch_kwargs", {}))
    net.load_state_dict(blob["state_dict"])
    extra = {k: v for k, v in meta.items() if k not in ("arch", "arch_kwargs", "classes", "stored_as")}
    checkpoint.save(out, net, arch=meta["arch"], classes=classes_of(meta), arch_kwargs=meta.get("arch_kwargs"),
                    extra_meta=extra, half=meta.get("stored_as") == "float16")
    if out.resolve() == model.resolve():
        _refresh_exports(model, old_digest, reference, echo)
    echo(f"confidence reference: {best} (Spearman {usable[best].spearman_with_air_error:.2f} with the air-content "
         f"error on {slabs} validation slabs); warn above {threshold:.4g}"
         + (f"; unfamiliar images above {gate.figure} {gate.threshold:.3g}" if gate else "") + f"; written to {out}")
    return ref


def _sig(x: float) -> float:
    """``x`` to 5 significant digits: what a per-slab record needs, and it reads back from JSON as written."""
    return float(f"{float(x):.5g}")


def _refresh_exports(model: Path, old_digest: str, reference: dict, echo) -> None:
    """Exports shipped beside a checkpoint calibrated in place (``NAME.onnx``, ``NAME.int8.onnx``) carry its
    metadata: when they were exports of it before (same weights: only the reference changed), they get the new
    reference and the new checkpoint digest; their graphs, and the accuracy claims tied to them, are untouched."""
    digest = checkpoint.file_digest(model)
    for suffix in (".onnx", ".int8.onnx"):
        path = model.with_suffix(suffix)
        if not path.is_file():
            continue
        meta = read_onnx_meta(path)
        if meta.get("source_checkpoint_sha256") != old_digest:
            continue
        meta.update(confidence_reference=reference, source_checkpoint_sha256=digest)
        _set_onnx_meta(path, meta)
        echo(f"{path.name}: the same weights; its metadata now carries the new reference")
