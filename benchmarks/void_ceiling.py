"""How far a store's void labels are from the truth, and how much two kinds of fix could give back at most.

    python benchmarks/void_ceiling.py STORE [STORE ...] [--alphas 0.5 0.7 0.85] [--reach 2]

For each store (labels and an exact truth, e.g. the development slabs ``benchmarks/adapt.py`` leaves in
benchmarks/work/adapt/), with the labels that are in it now:

- where the missed void pixels are: in true voids the labels miss wholly, or in voids they find too small (found
  share by void size);
- **an oracle for the false void objects**: every labelled void object that is mostly not a true void removed
  (what a perfect object rule would do);
- **a boundary step on the image**: each labelled void object grown by up to ``--reach`` px into pixels whose grey
  level lies nearer its core (the 10th percentile of grey inside it) than ``alpha`` of the way to its
  surroundings (the median grey of a ring 3-6 px outside it) -- at alpha 0.5 the half-way level where a blurred
  step edge lies; on its own, and after the oracle;
- the same after a realistic removal: objects darker-cored than every void the strokes painted by 15 grey levels
  or more (one-sided; needs the store's annotations).

Development slabs only: it reads the truth. Nothing here is applied by bigseg; it measures what a fix could buy.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def _iou(a, t) -> float:
    return float((a & t).sum() / max((a | t).sum(), 1))


def _cores_and_surroundings(voids: np.ndarray, grey: np.ndarray):
    """Per void object (8-connected): its ids, the owner of every pixel (the nearest object), and per object id its
    core grey (10th percentile inside) and its surroundings' (median of a ring 3-6 px out, each ring pixel counted
    for its nearest object); None where there is no object."""
    from scipy import ndimage

    ids, n = ndimage.label(voids, structure=np.ones((3, 3)))
    if not n:
        return None
    ring = ndimage.binary_dilation(voids, iterations=6) & ~ndimage.binary_dilation(voids, iterations=3)
    _, (iy, ix) = ndimage.distance_transform_edt(~voids, return_indices=True)
    owner = ids[iy, ix]
    index = np.arange(1, n + 1)
    core = np.zeros(n + 1)
    core[1:] = ndimage.labeled_comprehension(grey, ids, index, lambda v: np.percentile(v, 10), float, 0)
    around = np.full(n + 1, np.nan)
    around[1:] = ndimage.labeled_comprehension(grey, np.where(ring, owner, 0), index, np.median, float, np.nan)
    return ids, owner, core, around


def _fraction(grey: np.ndarray, c: np.ndarray, r: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (grey - c) / (r - c)


def grow_to_edges(voids: np.ndarray, grey: np.ndarray, alpha: float, reach: int, min_contrast: float = 8.0):
    """``voids`` grown by up to ``reach`` px into pixels nearer each object's core grey than ``alpha`` of the way to
    its surroundings' (either direction: dark or light voids)."""
    from scipy import ndimage

    found = _cores_and_surroundings(voids, grey)
    if found is None:
        return voids.copy()
    _, owner, core, around = found
    zone = ndimage.binary_dilation(voids, iterations=reach) & ~voids
    c, r = core[owner], around[owner]
    return voids | (zone & (np.abs(r - c) > min_contrast) & (_fraction(grey, c, r) < alpha))


def snap_to_edges(voids: np.ndarray, grey: np.ndarray, alpha: float, reach: int, min_contrast: float = 8.0):
    """``voids`` moved to each object's ``alpha`` grey level both ways: grown by up to ``reach`` px into pixels nearer
    its core than ``alpha`` of the way to its surroundings (as :func:`grow_to_edges`), and its own pixels within
    ``reach`` px of its edge given up where they lie farther than that (an edge drawn past a void's rim)."""
    from scipy import ndimage

    grown = grow_to_edges(voids, grey, alpha, reach, min_contrast)
    found = _cores_and_surroundings(voids, grey)
    if found is None:
        return grown
    ids, _, core, around = found
    edge = voids & ~ndimage.binary_erosion(voids, iterations=reach, border_value=1)
    c, r = core[ids], around[ids]
    return grown & ~(edge & (np.abs(r - c) > min_contrast) & (_fraction(grey, c, r) > alpha))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stores", nargs="+")
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.5, 0.7, 0.85])
    ap.add_argument("--reach", type=int, default=2)
    args = ap.parse_args(argv)

    from scipy import ndimage

    from bigseg import annotations as ann
    from bigseg import object_rule as orule
    from bigseg import store as st
    from bigseg.classes import concrete_ids

    for store in args.stores:
        group = st.open_store(store)
        void = (concrete_ids(st.class_table(group)) or {}).get("void", 2)
        labels = np.asarray(st.open_array(store, "labels")[:])
        truth = np.asarray(st.open_array(store, "truth")[:])
        image = np.asarray(st.open_array(store, "image")[:])
        grey = orule.grey(image)
        lv, tv = labels == void, truth == void
        ids, n = ndimage.label(tv, structure=np.ones((3, 3)))
        area = np.bincount(ids.ravel(), minlength=n + 1)[1:]
        found = np.bincount(ids.ravel(), weights=lv.ravel(), minlength=n + 1)[1:]
        print(f"{store}: air truth {100 * tv.mean():.2f} %, labels {100 * lv.mean():.2f} %, "
              f"void IoU {_iou(lv, tv):.3f}")
        whole = found == 0
        missed = (tv & ~lv).sum()
        print(f"  missed void px {missed}: {int(area[whole].sum())} in {int(whole.sum())} voids missed wholly, "
              f"{int((area - found)[~whole].sum())} in voids found too small")
        for lo, hi in ((0, 30), (30, 100), (100, 400), (400, None)):
            sel = (area >= lo) & ((area < hi) if hi else True)
            print(f"    voids of {lo}-{hi or ''} px: {int(sel.sum())}, found share "
                  f"{found[sel].sum() / max(area[sel].sum(), 1):.2f}")
        objs, m = ndimage.label(lv, structure=np.ones((3, 3)))
        oarea = np.bincount(objs.ravel(), minlength=m + 1)
        true_share = np.bincount(objs.ravel(), weights=tv.ravel(), minlength=m + 1) / np.maximum(oarea, 1)
        keep = true_share > 0.5
        keep[0] = False
        oracle = keep[objs]
        variants = {"labels": lv, "false objects removed (oracle)": oracle}
        if ann.has_layer(store):
            painted = np.asarray(st.open_array(store, ann.LAYER)[:])
            found_objs = orule.find(labels, image, void)
            sides = orule.painted_sides(found_objs, painted, void)
            if (sides == 1).any():
                limit = found_objs.features[sides == 1, 0].max() + 15
                drop = (found_objs.features[:, 0] > limit) & found_objs.judged()
                variants[f"darker-cored than painted voids +15 removed ({int(drop.sum())} objects)"] = (
                    lv & ~np.isin(found_objs.ids, np.flatnonzero(drop) + 1))
        for name, v in variants.items():
            line = f"  {name}: air {100 * v.mean():.2f} %, void IoU {_iou(v, tv):.3f}"
            for a in args.alphas:
                g = grow_to_edges(v, grey, a, args.reach)
                line += f" | grown (alpha {a:g}): air {100 * g.mean():.2f} %, IoU {_iou(g, tv):.3f}"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
