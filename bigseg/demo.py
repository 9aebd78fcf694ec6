"""The main job on a bundled default: synthesize a concrete slab, infer with the bundled model, report."""

from __future__ import annotations

import os
from pathlib import Path

from bigseg.infer import InferOptions, infer
from bigseg.ingest import ingest
from bigseg.report.report import format_summary, make_report
from bigseg.results import DemoResult
from bigseg.synth import SynthParams, synthesize


def run_demo(out_dir: str | os.PathLike = "demo-output", size=(3000, 2000), seed=1, workers: int | None = None,
             echo=print, progress: bool = False) -> DemoResult:
    """Synthesize ``OUT/slab.jpg`` with its truth, ingest it, segment it on a local dask cluster, write the
    report (``OUT/report/``) and print the predicted air-void figures beside the truth's. Reruns start from
    scratch (everything is overwritten)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    image = out / "slab.jpg"
    s = synthesize(image, SynthParams(size[0], size[1], seed=seed))
    echo(f"[1/4] synthesized {image} ({size[0]}x{size[1]} px, 10 um/px) with its truth {s['truth']}")
    store = out / "slab.zarr"
    ingest(image, store, truth=s["truth"], overwrite=True)
    echo(f"[2/4] ingested into {store}")
    r = infer(store, options=InferOptions(workers=workers, overwrite=True, progress=progress), echo=echo)
    echo(f"[3/4] segmented {r.windows_computed} window{'s' if r.windows_computed != 1 else ''} in {r.seconds:.1f} s "
         f"({r.megapixels_per_second:.2f} Mpx/s)")
    doc = make_report(store, out / "report", truth=True, overwrite=True, echo=lambda *_: None)
    echo(f"[4/4] report written to {doc['output']}/report.html (stats.json, stats.csv, quicklook.png)")
    echo("")
    echo("predicted (bundled model) vs truth:")
    echo(format_summary(doc))
    return DemoResult(str(image), str(store), doc["output"], r.stats, doc["truth"]["areas"])
