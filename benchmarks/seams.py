"""Seam disagreement vs cost for a range of overlaps: the measurement behind the default overlap (one run).

    python benchmarks/seams.py --size 2700x2700 --overlaps 0 32 64 128 192 256

For each overlap, the bundled model segments a synthetic slab tiled (900 px windows) and in one shot (the whole
slab in one forward pass). Reported: windows computed (the cost), disagreement with the one-shot labels
overall and within 8 px of a window border (where seams would show).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import zarr

from bigseg import checkpoint
from bigseg.infer import InferOptions, infer
from bigseg.infer.windows import Grid
from bigseg.ingest import ingest
from bigseg.synth import SynthParams, synthesize


def border_band(grid: Grid, shape, half: int = 8) -> np.ndarray:
    band = np.zeros(shape, bool)
    for y in grid.ys:
        for e in (y, y + grid.win_h):
            band[max(e - half, 0) : e + half] = True
    for x in grid.xs:
        for e in (x, x + grid.win_w):
            band[:, max(e - half, 0) : e + half] = True
    band[:half], band[-half:], band[:, :half], band[:, -half:] = False, False, False, False
    return band


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="2700x2700")
    ap.add_argument("--window", type=int, default=900)
    ap.add_argument("--overlaps", type=int, nargs="+", default=[0, 32, 64, 128, 192, 256])
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        s = synthesize(Path(tmp) / "slab.png", SynthParams(w, h, seed=args.seed))
        store = Path(tmp) / "slab.zarr"
        ingest(s["image"], store)
        image = zarr.open_group(str(store), mode="r")["image"][:]
        model, _ = checkpoint.load(checkpoint.BUNDLED)
        with torch.inference_mode():
            x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
            one_shot = model(x).argmax(1)[0].numpy().astype(np.uint8)
        for overlap in args.overlaps:
            r = infer(store, options=InferOptions(window=args.window, overlap=overlap, workers=0, overwrite=True),
                      echo=lambda *a: None)
            labels = zarr.open_group(str(store), mode="r")["labels"][:]
            diff = labels != one_shot
            band = border_band(Grid(h, w, args.window, overlap), labels.shape)
            print(json.dumps({"overlap": overlap, "windows": r.windows, "seconds": round(r.seconds, 2),
                              "disagreement": float(diff.mean()), "near_borders": float(diff[band].mean()),
                              "elsewhere": float(diff[~band].mean())}), flush=True)


if __name__ == "__main__":
    main()
