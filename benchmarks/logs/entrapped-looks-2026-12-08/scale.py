"""Large truth voids: fraction labelled void by the model at several scales (window 640 around each)."""

import sys

import numpy as np
import torch
import zarr
from scipy import ndimage as ndi

from bigseg import checkpoint
from bigseg.train.window_predict import predict

torch.set_num_threads(2)
name = sys.argv[1]
model, meta = checkpoint.load(checkpoint.model_path(name))
scales = [1.0, 0.75, 0.5]
VOID = 2
tot = {s: [] for s in scales}
for seed in (300, 301, 302, 303):
    g = zarr.open_group(f"benchmarks/work/classic-8192/classic-{seed}-8192.zarr", mode="r")
    px = g.attrs["pixel_size_um"] / 1000.0
    t = g["truth"][:]
    ids, n = ndi.label(t == VOID)
    area = np.bincount(ids.ravel())
    d = 2 * np.sqrt(area * px * px / np.pi)
    d[0] = 0
    for k in np.flatnonzero(d > 1.0):
        cy, cx = ndi.center_of_mass(ids == k)
        y0 = int(max(0, min(8192 - 640, cy - 320)))
        x0 = int(max(0, min(8192 - 640, cx - 320)))
        img = g["image"][y0 : y0 + 640, x0 : x0 + 640]
        m = ids[y0 : y0 + 640, x0 : x0 + 640] == k
        out = []
        for s in scales:
            x = img
            if s != 1.0:
                xt = torch.from_numpy(img).permute(2, 0, 1).float()[None]
                hs = int(round(640 * s / 32)) * 32
                xt = torch.nn.functional.interpolate(
                    xt, size=(hs, hs), mode="bilinear", antialias=True, align_corners=False
                )
                x = xt[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
            p = predict(model, x)
            if s != 1.0:
                p = torch.nn.functional.interpolate(p[None], size=(640, 640), mode="bilinear", align_corners=False)[0]
            lab = p.argmax(0).numpy()
            f = float((lab[m] == VOID).mean())
            # labelled void component covering the void: its eq. diameter
            lid, _ = ndi.label(lab == VOID)
            c = np.bincount(lid[m][lid[m] > 0]).argmax() if (lid[m] > 0).any() else 0
            dd = 2 * np.sqrt((lid == c).sum() * px * px / np.pi) if c else 0
            out.append(f"{f:.2f}/{dd:.2f}mm")
            tot[s].append(dd > 1.0)
        print(seed, k, f"d={d[k]:.2f}", " ".join(out), flush=True)
print({s: int(sum(v)) for s, v in tot.items()})
