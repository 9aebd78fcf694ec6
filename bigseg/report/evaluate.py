"""Compare predicted ``labels`` with ``truth`` (or with the strokes painted in ``annotations``) in slab stores:
confusion matrix, per-class IoU and accuracy.

The confusion matrix is a dask reduction over matching chunks of the two arrays (memory bounded by chunks);
reference pixels equal to 255 (unlabelled, not painted) are left out. Against strokes, IoU means little (only
painted pixels count, so a class's false positives are only those on other classes' strokes): the per-class
accuracy -- the share of each class's painted pixels labelled as that class -- is the figure.
"""

from __future__ import annotations

import os

import numpy as np

from bigseg import store as st
from bigseg.classes import IGNORE_LABEL
from bigseg.cluster import compute
from bigseg.errors import BigsegError
from bigseg.metrics import confusion, scores
from bigseg.results import EvaluationResult


def _chunk_confusion(labels: np.ndarray, truth: np.ndarray, n: int) -> np.ndarray:
    return confusion(truth, labels, n, IGNORE_LABEL)[None, None]


HOW_TO_MAKE = {"labels": " (run 'bigseg infer' first)", "truth": " (ingest with --truth)",
               "annotations": " (paint strokes with 'bigseg serve STORE --annotate' or 'bigseg import annotations')"}


def confusion_matrix(store: str | os.PathLike, client=None, reference: str = "truth") -> tuple[np.ndarray, list[str]]:
    import dask.array as da

    group = st.open_store(store)
    for name in ("labels", reference):
        if name not in group or not st.is_complete(group[name]):
            raise BigsegError(f"{store}: no complete {name} array to evaluate" + HOW_TO_MAKE.get(name, ""))
    names = [c.name for c in st.class_table(group)]
    n = len(names)
    labels = st.dask_array(store, "labels")
    truth = st.dask_array(store, reference).rechunk(labels.chunks)
    cm = da.map_blocks(_chunk_confusion, labels, truth, n, dtype=np.int64, new_axis=[2, 3],
                       chunks=((1,) * labels.numblocks[0], (1,) * labels.numblocks[1], (n,), (n,))).sum(axis=(0, 1))
    cm = compute(cm, client)
    return np.asarray(cm, np.int64), names


def evaluate(stores: list[str | os.PathLike], reference: str = "truth") -> EvaluationResult:
    """Summed confusion matrix and scores over ``stores`` (class tables must agree), against ``reference``
    (``truth`` or ``annotations``)."""
    if reference not in ("truth", "annotations"):
        raise BigsegError(f"labels are scored against truth or annotations, not {reference!r}")
    if not stores:
        raise BigsegError("evaluate: no stores given")
    total: np.ndarray | None = None
    names: list[str] | None = None
    per_store = {}
    for s in stores:
        cm, n = confusion_matrix(s, reference=reference)
        if names is not None and n != names:
            raise BigsegError(f"{s}: classes {n} differ from {names}")
        names = n
        total = cm if total is None else total + cm
        per_store[str(s)] = scores(cm, n)
    assert total is not None and names is not None  # at least one store was scored
    return EvaluationResult(names, reference, total.tolist(), scores(total, names), per_store)


def format_confusion(result: EvaluationResult | dict) -> str:
    names = result["classes"]
    w = max(10, *(len(n) + 2 for n in names))
    lines = ["confusion matrix (rows: truth, columns: predicted)", " " * w + "".join(f"{n:>{w}s}" for n in names)]
    for n, row in zip(names, result["confusion"], strict=True):
        lines.append(f"{n:<{w}s}" + "".join(f"{v:>{w}d}" for v in row))
    if result.get("reference") == "annotations":
        lines[0] = "confusion matrix on the painted pixels (rows: strokes, columns: predicted)"
        lines.append("accuracy on the strokes: " + ", ".join(
            f"{k} {v:.4f}" if v is not None else f"{k} not painted" for k, v in result["accuracy"].items())
                     + f"; all painted pixels {result['pixel_accuracy']:.4f}")
        return "\n".join(lines)
    lines.append("IoU: " + ", ".join(f"{k} {v:.4f}" if v is not None else f"{k} n/a" for k, v in result["iou"].items())
                 + f"; mean IoU {result['mean_iou']:.4f}; pixel accuracy {result['pixel_accuracy']:.4f}")
    return "\n".join(lines)
