"""The old classic-only model's and the default's feature shifts on classic, validation and development slabs.

    git show 53413e1:bigseg/weights/concrete-light-unet.pt > /tmp/router/old-light-unet.pt
    python benchmarks/logs/router-2026-12-04/probe.py        # appends to benchmarks/work/router/probe.jsonl
"""

import json
import time
from pathlib import Path

import zarr

from bigseg.infer import stability
from bigseg.infer.windows import Grid
from bigseg.trust import synthetic_store

WORK = Path("benchmarks/work/router")
MODELS = {"old": "/tmp/router/old-light-unet.pt", "new": "bigseg/weights/concrete-light-unet.pt"}
JOBS = ([("classic", s) for s in range(100, 108)] + [("random", 7000000 + k) for k in range(16)]
        + [(style, 4200) for style in ("crushed", "gravel", "contrast")])

with open(WORK / "probe.jsonl", "a") as out:
    for style, seed in JOBS:
        t = time.time()
        store = synthetic_store(WORK, style, seed, 2048)
        h, w = zarr.open_group(str(store), mode="r")["image"].shape[:2]
        grid = Grid(h, w, 900, 128)
        origins = stability.sample_origins(grid)
        row: dict = {"style": style, "seed": seed}
        for name, model in MODELS.items():
            sums = stability.measure(model, str(store), origins, grid, threads=2)
            row[name] = {"early": sums["early_feature_shift"], "all": sums["feature_shift"]}
        row["s"] = round(time.time() - t, 1)
        print(json.dumps(row), flush=True)
        out.write(json.dumps(row) + "\n")
        out.flush()
