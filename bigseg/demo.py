"""The main job on a bundled default: synthesize a concrete slab, ingest it, infer, print statistics."""

from __future__ import annotations

import os
from pathlib import Path

from bigseg.ingest import ingest
from bigseg.synth import SynthParams, synthesize


def run_demo(out_dir: str | os.PathLike = "demo-output", size=(3000, 2000), seed=1, workers: int = 2,
             echo=print) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    image = out / "slab.jpg"
    s = synthesize(image, SynthParams(size[0], size[1], seed=seed))
    f = s["fractions"]
    echo(f"1/2 synthesized {image} ({size[0]}x{size[1]}); truth fractions: paste {f['paste']:.4f}, "
         f"stone {f['stone']:.4f}, void {f['void']:.4f}")
    store = out / "slab.zarr"
    ingest(image, store, truth=s["truth"], overwrite=True)
    echo(f"2/2 ingested into {store}")
    return {"image": str(image), "store": str(store), "truth_fractions": f}
