"""Both models on the slabs probe.py made: IoU, air content and spacing factor against the truth.

    python benchmarks/logs/router-2026-12-04/accuracy.py     # appends to benchmarks/work/router/acc.jsonl
"""

import json
import time
from pathlib import Path

from bigseg.trust import measure_slab

WORK = Path("benchmarks/work/router")
MODELS = {"old": "/tmp/router/old-light-unet.pt", "new": "bigseg/weights/concrete-light-unet.pt"}
SLABS = ([("crushed", 4200), ("gravel", 4200)] + [("classic", s) for s in range(100, 108)]
         + [("random", 7000000 + k) for k in (2, 11, 0, 8, 15)])

with open(WORK / "acc.jsonl", "a") as out:
    for style, seed in SLABS:
        store = WORK / f"{style}-{seed}-2048.zarr"
        for name, model in MODELS.items():
            t = time.time()
            measured = measure_slab(store, model)
            row = {"style": style, "seed": seed, "model": name, "s": round(time.time() - t, 1),
                   **{k: v for k, v in measured.items() if k != "confidence"}}
            print(json.dumps(row, default=str)[:400], flush=True)
            out.write(json.dumps(row, default=str) + "\n")
