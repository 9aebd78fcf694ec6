"""Fine labels + the coarse view's large void objects: IoU, air, entrapped count."""

import argparse

import numpy as np
import zarr
from scipy import ndimage as ndi

VOID = 2
ap = argparse.ArgumentParser()
ap.add_argument("--scale", default="0.5")
ap.add_argument("--d0", type=float, nargs="+", default=[0.6, 0.8, 1.0])
ap.add_argument("--overlap", type=float, default=0.2)
ap.add_argument("--labdir", default="benchmarks/work/entrapped-looks")
ap.add_argument("stores", nargs="+")
a = ap.parse_args()


def figures(lab, t, px):
    iou = [float(((lab == c) & (t == c)).sum() / max(((lab == c) | (t == c)).sum(), 1)) for c in range(3)]
    air = 100 * float((lab == VOID).mean())
    ids, n = ndi.label(lab == VOID)
    d = 2 * np.sqrt(np.bincount(ids.ravel())[1:] * px**2 / np.pi)
    return iou, air, int((d > 1.0).sum())


def merge(fine, coarse, px, d0, overlap):
    ids, n = ndi.label(coarse == VOID)
    area = np.bincount(ids.ravel(), minlength=n + 1)
    both = np.bincount(ids.ravel(), weights=(fine == VOID).ravel(), minlength=n + 1)
    d = 2 * np.sqrt(area * px**2 / np.pi)
    keep = (d >= d0) & (both >= overlap * area)
    keep[0] = False
    out = fine.copy()
    out[keep[ids]] = VOID
    return out, int(keep.sum())


acc = {}
for path in a.stores:
    g = zarr.open_group(path, mode="r")
    px = g.attrs["pixel_size_um"] / 1000
    t = g["truth"][:]
    fine = g["labels"][:]
    nm = path.rstrip("/").split("/")[-1].replace(".zarr", "")
    coarse = np.load(f"{a.labdir}/{nm}-s{a.scale}.npy")
    _, air_t, ent_t = figures(t, t, px)
    for d0 in [None, "coarse"] + a.d0:
        if d0 is None:
            lab, k = fine, 0
        elif d0 == "coarse":
            lab, k = coarse, 0
        else:
            lab, k = merge(fine, coarse, px, d0, a.overlap)
        iou, air, ent = figures(lab, t, px)
        s = acc.setdefault(str(d0), {"ent": 0, "truth": 0, "err": [], "void": [], "stone": []})
        s["ent"] += ent
        s["truth"] += ent_t
        s["err"].append(air - air_t)
        s["void"].append(iou[2])
        s["stone"].append(iou[1])
        print(nm, d0, k, [round(x, 4) for x in iou], f"air {air - air_t:+.3f}", f"entrapped {ent}/{ent_t}", flush=True)
for d0, s in acc.items():
    print(
        f"{d0:>7}: entrapped {s['ent']} of {s['truth']}; air err mean {np.mean(s['err']):+.3f} "
        f"[{np.min(s['err']):+.2f}, {np.max(s['err']):+.2f}]; void IoU {np.mean(s['void']):.4f}; "
        f"stone {np.mean(s['stone']):.4f}"
    )
