"""Each truth void >= 1 mm across on the 8192² classic slabs: what the labels say there."""

import sys

import numpy as np
import zarr
from scipy import ndimage as ndi

VOID, STONE, PASTE = 2, 1, 0
for seed in map(int, sys.argv[1:]):
    g = zarr.open_group(f"benchmarks/work/classic-8192/classic-{seed}-8192.zarr", mode="r")
    px = g.attrs["pixel_size_um"] / 1000.0
    t = g["truth"][:]
    lab = g["labels"][:]
    ids, n = ndi.label(t == VOID, structure=np.ones((3, 3)))
    area = ndi.sum_labels(np.ones_like(ids), ids, index=np.arange(1, n + 1))
    d = 2 * np.sqrt(area * px * px / np.pi)
    big = np.flatnonzero(d > 1.0) + 1
    sl = ndi.find_objects(ids)
    lv = lab == VOID
    filled = ndi.binary_fill_holes(lv)
    lids, ln = ndi.label(lv, structure=np.ones((3, 3)))
    for k in big:
        s = sl[k - 1]
        m = ids[s] == k
        L = lab[s][m]
        frac = [float((c == L).mean()) for c in (PASTE, STONE, VOID)]
        fill_void = float(filled[s][m].mean())
        # the largest label void component overlapping it
        comp = lids[s][m]
        comp = comp[comp > 0]
        if comp.size:
            c = np.bincount(comp).argmax()
            carea = int((lids == c).sum()) if False else None
        img = g["image"][s[0].start : s[0].stop, s[1].start : s[1].stop].mean(-1)
        # grey inside the truth void where labelled stone, against where labelled void
        gs = img[m & (lab[s] == STONE)]
        gv = img[m & (lab[s] == VOID)]
        print(
            f"seed {seed} void {k} d={d[k - 1]:.2f} mm at {s[0].start},{s[1].start}: labels paste/stone/void "
            f"{frac[0]:.2f}/{frac[1]:.2f}/{frac[2]:.2f}; void after hole fill {fill_void:.2f}; grey stone-labelled "
            f"{gs.mean() if gs.size else float('nan'):.0f} void-labelled {gv.mean() if gv.size else float('nan'):.0f}"
        )
