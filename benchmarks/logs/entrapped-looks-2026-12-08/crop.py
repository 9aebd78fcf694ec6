import sys

import numpy as np
import zarr
from PIL import Image

PAL = np.array([[200, 200, 200], [60, 120, 220], [230, 40, 40]], np.uint8)
out = []
for spec in sys.argv[2:]:
    seed, y, x = map(int, spec.split(","))
    g = zarr.open_group(f"benchmarks/work/classic-8192/classic-{seed}-8192.zarr", mode="r")
    s = (slice(max(0, y - 60), y + 200), slice(max(0, x - 60), x + 200))
    im = g["image"][s]
    t = PAL[g["truth"][s]]
    l = PAL[g["labels"][s]]
    out.append(np.concatenate([im, t, l], 1))
h = max(o.shape[0] for o in out)
w = max(o.shape[1] for o in out)
canvas = np.zeros((h * len(out), w, 3), np.uint8)
for i, o in enumerate(out):
    canvas[i * h : i * h + o.shape[0], : o.shape[1]] = o
Image.fromarray(canvas).resize((canvas.shape[1] * 2 // 2, canvas.shape[0] * 2 // 2)).save(sys.argv[1])
