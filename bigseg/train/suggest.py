"""Where to paint next: windows spread over each slab, ranked by how much a model disagrees with itself under flips
and how unsure it is there (:func:`suggest_regions`), and the list written into a store's annotation attributes for
the viewer (:func:`store_suggestions`). ``bigseg adapt`` lists them for the model it made."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np

from bigseg import annotations as ann
from bigseg import store as st
from bigseg.classes import concrete_ids
from bigseg.train.window_predict import predict


def window_origins(h: int, w: int, size: int, per_store: int = 24):
    """(y, x) origins of the grid of ``size`` windows that :func:`suggest_regions` scores on an h x w image: at most
    ``per_store``, neighbours at least half a window apart."""
    cols = max(1, round(math.sqrt(per_store * w / max(h, 1))))
    rows = max(1, per_store // cols)
    cols = min(cols, max(1, int(2 * (w - size) / size)))  # neighbours' origins (w - size) / cols apart
    rows = min(rows, max(1, int(2 * (h - size) / size)))
    for gy in range(rows):
        for gx in range(cols):
            yield (int((h - size) * (gy + 0.5) / rows) if rows > 1 else (h - size) // 2,
                   int((w - size) * (gx + 0.5) / cols) if cols > 1 else (w - size) // 2)


def suggest_regions(model, stores: list[str], classes, n: int = 5, window: int = 512, per_store: int = 24) -> list:
    """Windows where the model is least sure of itself: the share of pixels whose class changes when the window
    is seen mirrored (left-right, up-down), plus the share whose chosen class has a probability below 0.7.
    With the concrete class table each window also records its doubt about voids (``void_score``: pixels where a
    view says void and not every view agrees, plus unsure pixels with a void probability over 0.15), which is not
    used to rank: it lists the windows of most void mistakes (Spearman 0.94-0.96 on development slabs, against
    0.41-0.76), but end to end a second round painted there read the figures no better (one hand of three read air
    1.1-1.8 points low; benchmarks/RESULTS.md, "The list ranked by the doubt about voids"); it is kept so that the
    list's choice can be replayed.
    A grid of at most ``per_store`` windows per store, neighbours at least half a window apart (a small slab gets
    fewer windows, not the same pixels seen many times); the ``n`` highest, with (x, y, width, height). ``n`` 0:
    none, and nothing is computed."""
    if n <= 0:
        return []
    ids = concrete_ids(classes)
    void = None if ids is None else ids["void"]
    found = []
    for store in stores:
        image = st.open_array(store, "image")
        h, w = image.shape[:2]
        size = min(window, h, w)
        for y0, x0 in window_origins(h, w, size, per_store):
            win = np.asarray(st.read(image, slice(y0, y0 + size), slice(x0, x0 + size)))
            row, mean, _ = window_doubt(model, win, void)
            found.append({"store": str(store), "x": x0, "y": y0, "width": size, "height": size, **row,
                          "classes": {c.name: round(float(mean[c.id]), 3) for c in classes}})
    return best_windows(found, n)


def window_doubt(model, win: np.ndarray, void: int | None):
    """One window's doubt as :func:`suggest_regions` scores it: (the record's figures -- ``score``,
    ``flip_disagreement``, ``unsure`` and, given a void class id, ``void_score`` --, the mean probability per class
    over the three views, the labels of the unmirrored view)."""
    p = predict(model, win)
    pl = predict(model, np.ascontiguousarray(win[:, ::-1])).flip(-1)
    pu = predict(model, np.ascontiguousarray(win[::-1])).flip(-2)
    lab, lab_l, lab_u = p.argmax(0), pl.argmax(0), pu.argmax(0)
    changed = (lab_l != lab) | (lab_u != lab)
    low = p.max(0).values < 0.7
    flips, unsure = changed.float().mean().item(), low.float().mean().item()
    row = {"score": round(flips + unsure, 4), "flip_disagreement": round(flips, 4), "unsure": round(unsure, 4)}
    if void is not None:
        said = (lab == void) | (lab_l == void) | (lab_u == void)
        doubt = (said & changed).float().mean().item() + (low & (p[void] > 0.15)).float().mean().item()
        row["void_score"] = round(doubt, 4)
    return row, ((p + pl + pu) / 3).mean((1, 2)), lab.numpy()


def best_windows(found: list[dict], n: int, key: str = "score") -> list[dict]:
    """The ``n`` windows highest in ``key``, the best first, none overlapping a better one of its store by more than
    a quarter of its area."""
    chosen: list[dict] = []
    for r in sorted(found, key=lambda r: -r[key]):
        if all(r.get("store") != c.get("store") or overlap(r, c) <= 0.25 * r["width"] * r["height"]
               for c in chosen):
            chosen.append(r)
        if len(chosen) == n:
            break
    return chosen


def overlap(a: dict, b: dict) -> int:
    """Pixels two windows (dicts with x, y, width, height) share."""
    w = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
    h = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
    return max(0, w) * max(0, h)


def store_suggestions(store: str, regions: list, model: Path) -> None:
    """The suggested regions of ``store`` into its annotation attributes, for the viewer."""
    with ann.write_lock(store):
        a = st.open_array(store, ann.LAYER, "r+")
        a.attrs["suggestions"] = {"model": os.path.abspath(model), "regions": regions,
                                  "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    st.consolidate(store)
