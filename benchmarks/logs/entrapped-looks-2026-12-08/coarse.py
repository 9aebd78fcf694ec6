"""Labels of a whole store at one view scale (tiles of 1024 with 128 px of context), saved as .npy."""

import sys
import time

import numpy as np
import torch
import zarr

from bigseg import checkpoint
from bigseg.train.window_predict import predict

torch.set_num_threads(1)
name, scale, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
stores = sys.argv[4:]
model, meta = checkpoint.load(checkpoint.model_path(name))
T, M = 1024, 128
for path in stores:
    t0 = time.time()
    g = zarr.open_group(path, mode="r")
    H, W = g["labels"].shape
    lab = np.zeros((H, W), np.uint8)
    for y in range(0, H, T):
        for x in range(0, W, T):
            y0, x0 = max(0, y - M), max(0, x - M)
            y1, x1 = min(H, y + T + M), min(W, x + T + M)
            img = g["image"][y0:y1, x0:x1]
            h, w = img.shape[:2]
            xt = torch.from_numpy(img).permute(2, 0, 1).float()[None]
            hs, ws = max(32, int(round(h * scale))), max(32, int(round(w * scale)))
            if scale != 1.0:
                xt = torch.nn.functional.interpolate(
                    xt, size=(hs, ws), mode="bilinear", antialias=True, align_corners=False
                )
            x_ = xt[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
            p = predict(model, x_)
            if scale != 1.0:
                p = torch.nn.functional.interpolate(p[None], size=(h, w), mode="bilinear", align_corners=False)[0]
            l = p.argmax(0).numpy().astype(np.uint8)
            lab[y : y + T, x : x + T] = l[y - y0 : y - y0 + T, x - x0 : x - x0 + T][: min(T, H - y), : min(T, W - x)]
    name_ = path.rstrip("/").split("/")[-1].replace(".zarr", "")
    np.save(f"{out}/{name_}-s{scale}.npy", lab)
    print(path, scale, f"{time.time() - t0:.0f}s", flush=True)
