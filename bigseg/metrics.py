"""Confusion matrices and the metrics derived from them (ignore label excluded)."""

from __future__ import annotations

import numpy as np

from bigseg.results import Scores


def confusion(truth: np.ndarray, pred: np.ndarray, n: int, ignore: int = 255) -> np.ndarray:
    """(n, n) counts, rows = truth, columns = prediction; pixels with truth == ignore are left out."""
    t = truth.ravel().astype(np.int64)
    p = pred.ravel().astype(np.int64)
    keep = (t != ignore) & (t < n)
    return np.bincount(t[keep] * n + np.clip(p[keep], 0, n - 1), minlength=n * n).reshape(n, n)


def scores(cm: np.ndarray, names: list[str]) -> Scores:
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    total = cm.sum()
    rows = cm.sum(1)
    return Scores(
        iou={n: (None if np.isnan(v) else float(v)) for n, v in zip(names, iou, strict=True)},
        accuracy={n: (float(tp[k] / rows[k]) if rows[k] else None) for k, n in enumerate(names)},
        mean_iou=float(np.nanmean(iou)) if np.isfinite(iou).any() else None,
        pixel_accuracy=float(tp.sum() / total) if total else None,
        pixels=int(total),
    )
