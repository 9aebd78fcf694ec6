"""Models side by side on slabs with an exact truth: IoU, air content, spacing factor, entrapped voids, and speed.

    python benchmarks/edge_head.py --models light_unet runs/x/model.pt --stores STORE.zarr [STORE.zarr ...]
    python benchmarks/edge_head.py --models light_unet CAND.pt --classic 100 101 --size 2048

Each model labels each store (``bigseg infer``, one process, no TTA, the default backend -- give a candidate its
ONNX export beside it, ``bigseg export CAND.pt -o CAND.onnx``, so that both run as the default does), the models
alternating, ``--repeat`` times; the figures are those of the last pass (the labels are the same every pass), the
speed the median megapixels a second of the passes, as a ratio to the first model's (one run: this machine is
shared). ``--classic SEEDS``: classic slabs of these seeds are made (``--size``) in ``--workdir`` and added.
The stores' labels are overwritten; nothing else in them changes. Slabs with a truth only: not the held-out table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from adapt import make_slab  # benchmarks/adapt.py: a synthetic slab ingested with its exact truth

from bigseg.trust import measure_slab


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", required=True, help="light_unet (the bundled model) or checkpoint paths")
    ap.add_argument("--stores", nargs="*", default=[])
    ap.add_argument("--classic", nargs="*", type=int, default=[])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--workdir", default="benchmarks/work/edge-head")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", help="JSON of every row")
    a = ap.parse_args(argv)
    workdir = Path(a.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    stores = [Path(s) for s in a.stores] + [make_slab(workdir, "classic", s, (a.size, a.size)) for s in a.classic]
    rows = []
    print("| slab | model | IoU stone | IoU void | air error (points) | spacing factor error | entrapped voids "
          "(truth) | speed (x the first model's) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for store in stores:
        speed: dict[str, list[float]] = {m: [] for m in a.models}
        last: dict[str, dict] = {}
        for _ in range(a.repeat):
            for m in a.models:
                r = measure_slab(store, None if m == "light_unet" else m)
                speed[m].append(r["megapixels_per_second"])
                last[m] = r
        base = float(np.median(speed[a.models[0]]))
        for m in a.models:
            r = last[m]
            mps = float(np.median(speed[m]))
            row = {"slab": store.name, "model": m, "iou": r["iou"], "air_error": r["air_error_points"],
                   "sf_error": r["spacing_factor_error"], "entrapped": r["entrapped_voids"],
                   "entrapped_truth": r["entrapped_voids_truth"], "megapixels_per_second": mps,
                   "speed_ratio": mps / base}
            rows.append(row)
            sf = "" if row["sf_error"] is None else f"{100 * row['sf_error']:+.1f} %"
            print(f"| {store.name} | {Path(m).name} | {r['iou']['stone']:.3f} | {r['iou']['void']:.3f} | "
                  f"{row['air_error']:+.2f} | {sf} | {row['entrapped']} ({row['entrapped_truth']}) | "
                  f"{row['speed_ratio']:.2f} ({mps:.2f} MP/s) |", flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
