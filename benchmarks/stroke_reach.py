"""How far an adapted model carries its strokes: the share of true void labelled void where it was painted, near a
stroke, and far from every stroke.

For each recorded adapt run (its JSON from ``benchmarks/adapt.py``) the painted slab is labelled by the adapted
model's argmax under ``--tta flip4`` (probabilities cached by ``benchmarks/outline_shift.py``; no void shift, no
object rule: the network's own reading), and its true void is split three ways by the slab's annotations: painted
void; unpainted within ``--near`` px of any painted pixel (where stroke growth labels and crops always reach); and
farther. Each part is split again into the void brighter than the paste's median grey (deposits, fillings) and the
rest. ``--sizes``: the true voids by their equivalent diameter, those a stroke touched and those none did. A
network that generalises labels the far part about as well as the painted one; one that fits its strokes'
neighbourhoods does not.

    python benchmarks/stroke_reach.py benchmarks/logs/adapt-random-filled-2026-12-05/*.json \\
        --work benchmarks/work/adapt-random --sizes

The painted store holds the strokes of the last run that painted it: give each hand's own work folder.
Development slabs only: it reads the truth.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from outline_shift import HERE, model_path, probabilities  # benchmarks/outline_shift.py
from scipy import ndimage

from bigseg import store as st
from bigseg.annotations import LAYER, NONE


def reach(labels: np.ndarray, image: np.ndarray, truth: np.ndarray, painted: np.ndarray, near: int,
          void: int = 2) -> dict[str, tuple[float, int]]:
    """(share labelled void, pixels) of the true void in each part: painted / near / far, x deposit / rest."""
    grey = image.mean(2)
    bright = grey > float(np.median(grey[truth == 0]))
    close = ndimage.binary_dilation(painted != NONE, iterations=near)
    t = truth == void
    where = {"painted": t & (painted == void), "near": t & close & (painted == NONE), "far": t & ~close}
    out = {}
    for name, m in where.items():
        for part, p in (("deposit", m & bright), ("rest", m & ~bright)):
            n = int(p.sum())
            out[f"{name} {part}"] = (float((labels[p] == void).mean()) if n else float("nan"), n)
    return out


SIZES = (0, 10, 20, 40, 80)
"""Bins of a true void's equivalent diameter (px) for ``--sizes``."""


def by_size(labels: np.ndarray, truth: np.ndarray, painted: np.ndarray, void: int = 2) -> list[str]:
    """Per bin of true void size, for the voids a stroke touched and those none did: the share of their pixels
    labelled void and how many voids."""
    ids, n = ndimage.label(truth == void, structure=np.ones((3, 3), bool))
    area = np.bincount(ids.ravel(), minlength=n + 1)
    hit = np.bincount(ids[(labels == void) & (ids > 0)], minlength=n + 1)
    touched = np.bincount(ids[(painted != NONE) & (ids > 0)], minlength=n + 1) > 0
    diameter = 2 * np.sqrt(area / np.pi)
    rows = []
    for lo, hi in zip(SIZES, (*SIZES[1:], np.inf), strict=True):
        for was, name in ((True, "painted"), (False, "unpainted")):
            m = (diameter >= lo) & (diameter < hi) & (touched == was)
            m[0] = False
            if m.any():
                rows.append(f"{lo}-{hi:g} px {name}: {hit[m].sum() / area[m].sum():.2f} of {area[m].sum()} px "
                            f"({m.sum()} voids)")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--work", default=str(HERE / "work" / "adapt"))
    ap.add_argument("--cache", default=str(HERE / "work" / "outline-shift"))
    ap.add_argument("--near", type=int, default=12, help="px from a painted pixel counted as near (adapt's --grow)")
    ap.add_argument("--sizes", action="store_true", help="also: by the size of each true void, painted or not")
    a = ap.parse_args(argv)
    work, cache = Path(a.work), Path(a.cache)
    for path in a.runs:
        run = json.loads(Path(path).read_text())
        store = work / f"{run['style']}-{run['seed']}.zarr"
        labels = probabilities(model_path(run, work), store, "flip4", cache).argmax(0)
        image = np.asarray(st.open_array(store, "image")[:])
        truth = np.asarray(st.open_array(store, "truth")[:])
        painted = np.asarray(st.open_array(store, LAYER)[:])
        parts = reach(labels, image, truth, painted, a.near)
        print(f"{run['style']} hand {run['stroke_seed']} seed {run['adapt_seed']}: true void labelled void -- "
              + "; ".join(f"{k} {v:.2f} ({n} px)" for k, (v, n) in parts.items()), flush=True)
        if a.sizes:
            print("\n".join("    " + row for row in by_size(labels, truth, painted)), flush=True)


if __name__ == "__main__":
    main()
