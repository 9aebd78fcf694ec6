"""The main job on a bundled default: synthesize a concrete slab, infer with the bundled model, print stats."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bigseg.infer import InferOptions, infer
from bigseg.ingest import ingest
from bigseg.report.stats import class_statistics, format_table
from bigseg.synth import SynthParams, synthesize


def run_demo(out_dir: str | os.PathLike = "demo-output", size=(3000, 2000), seed=1, workers: int | None = None,
             echo=print, progress: bool = False) -> dict:
    """Synthesize ``OUT/slab.jpg`` with its truth, ingest it, segment it on a local dask cluster, and print
    the predicted statistics beside the truth's. Reruns start from scratch (everything is overwritten)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    image = out / "slab.jpg"
    s = synthesize(image, SynthParams(size[0], size[1], seed=seed))
    echo(f"[1/3] synthesized {image} ({size[0]}x{size[1]} px, 10 um/px) with its truth {s['truth']}")
    store = out / "slab.zarr"
    ingest(image, store, truth=s["truth"], overwrite=True)
    echo(f"[2/3] ingested into {store}")
    r = infer(store, options=InferOptions(workers=workers, overwrite=True, progress=progress), echo=echo)
    echo(f"[3/3] segmented {r['windows_computed']} windows in {r['seconds']:.1f} s "
         f"({r['megapixels_per_second']:.2f} Mpx/s)")
    echo("")
    echo("predicted:")
    echo(format_table(r["stats"]))
    truth = class_statistics(store, array="truth")
    echo("truth:")
    echo(format_table(truth))
    (out / "stats.json").write_text(json.dumps({"predicted": r["stats"], "truth": truth}, indent=2))
    echo(f"\nstatistics written to {out / 'stats.json'}")
    return {"image": str(image), "store": str(store), "stats": r["stats"], "truth": truth}
