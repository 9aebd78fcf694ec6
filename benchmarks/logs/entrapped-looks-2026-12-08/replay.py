"""Replay a void-hole fill on recorded labels: IoU, air, entrapped count before/after."""

import argparse
import json

import numpy as np
import zarr
from scipy import ndimage as ndi
from skimage.morphology import disk

VOID = 2
ap = argparse.ArgumentParser()
ap.add_argument("stores", nargs="+")
ap.add_argument("--r", type=int, nargs="+", default=[0, 2, 4])
ap.add_argument("--max-mm", type=float, default=4.0)
ap.add_argument("--only-stone", action="store_true")
args = ap.parse_args()


def fill(lab, r, max_px, only_stone):
    v = lab == VOID
    c = ndi.binary_closing(v, structure=disk(r)) | v if r else v
    holes = ndi.binary_fill_holes(c) & ~c
    ids, n = ndi.label(holes)
    if n == 0:
        return lab.copy(), 0
    area = np.bincount(ids.ravel())
    keep = area <= max_px
    keep[0] = False
    if only_stone:
        stone = np.bincount(ids.ravel(), weights=(lab == 1).ravel(), minlength=n + 1)
        keep &= stone >= 0.5 * area
    out = lab.copy()
    m = keep[ids]
    out[m] = VOID
    return out, int(keep.sum())


def figures(lab, t, px_mm):
    iou = []
    for c in range(3):
        a, b = lab == c, t == c
        iou.append(float((a & b).sum() / max((a | b).sum(), 1)))
    air = 100 * float((lab == VOID).mean())
    ids, n = ndi.label(lab == VOID)
    area = np.bincount(ids.ravel())[1:]
    d = 2 * np.sqrt(area * px_mm**2 / np.pi)
    return iou, air, int((d > 1.0).sum())


tot = {}
for path in args.stores:
    g = zarr.open_group(path, mode="r")
    px = g.attrs["pixel_size_um"] / 1000
    t = g["truth"][:]
    lab = g["labels"][:]
    _, air_t, ent_t = figures(t, t, px)
    max_px = np.pi * (args.max_mm / px / 2) ** 2
    for r in args.r:
        out, nfill = fill(lab, r, max_px, args.only_stone)
        iou, air, ent = figures(out, t, px)
        row = {
            "store": path.split("/")[-1],
            "r": r,
            "filled": nfill,
            "iou": [round(x, 4) for x in iou],
            "air_err": round(air - air_t, 3),
            "entrapped": ent,
            "truth": ent_t,
        }
        print(json.dumps(row), flush=True)
        s = tot.setdefault(r, {"ent": 0, "truth": 0, "err": [], "void": []})
        s["ent"] += ent
        s["truth"] += ent_t
        s["err"].append(air - air_t)
        s["void"].append(iou[2])
for r, s in tot.items():
    print(
        f"r={r}: entrapped {s['ent']} of {s['truth']}; air err mean {np.mean(s['err']):+.3f} "
        f"(max abs {np.max(np.abs(s['err'])):.3f}); void IoU mean {np.mean(s['void']):.4f}"
    )
