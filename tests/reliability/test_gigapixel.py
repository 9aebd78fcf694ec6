"""A long image: a 1-gigapixel slab through synth -> ingest -> infer -> report, peak memory recorded (slow).

    BIGSEG_GIGAPIXEL_DIR=/big/disk pytest -m slow tests/reliability/test_gigapixel.py -s

About 25 minutes on a 2-core CPU and ~3 GB of disk. Each step runs as the real command in its own process; peak
RSS is sampled over the process and its children (dask workers included), as in benchmarks/memory.py.
"""

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("bench_memory",
                                               Path(__file__).resolve().parents[2] / "benchmarks" / "memory.py")
bench_memory = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_memory)

WIDTH, HEIGHT = 40000, 25000
# infer: 1.52 GB measured with column stripes (benchmarks/scaling.py, same size, 1 worker), 2.76 GB before them
LIMITS_MB = {"synth": 500, "ingest": 1500, "infer": 2500, "report": 1000}


@pytest.mark.slow
def test_gigapixel_slab_end_to_end(tmp_path, record_property):
    work = Path(os.environ.get("BIGSEG_GIGAPIXEL_DIR", tmp_path))
    work.mkdir(parents=True, exist_ok=True)
    bigseg = [sys.executable, "-m", "bigseg"]
    img, store = work / "giga.tif", work / "giga.zarr"
    steps = {
        "synth": [*bigseg, "synth", img, "--size", f"{WIDTH}x{HEIGHT}", "--seed", "7"],
        "ingest": [*bigseg, "ingest", img, store, "--truth", work / "giga.truth.tif", "--overwrite"],
        "infer": [*bigseg, "infer", store, "--overwrite"],
        "report": [*bigseg, "report", store, "--truth", "-o", work / "giga-report", "--overwrite"],
    }
    results = {}
    for name, cmd in steps.items():
        results[name] = bench_memory.measure([str(c) for c in cmd])
        print(json.dumps({"step": name, "megapixels": WIDTH * HEIGHT / 1e6, **results[name]}), flush=True)
    summary = ", ".join(f"{k} {v['peak_rss_mb']:.0f} MB / {v['seconds']:.0f} s" for k, v in results.items())
    record_property("reliability", ("fault", f"a {WIDTH}x{HEIGHT} (1 Gpx) slab: synth, ingest, infer, report",
                                    f"completes with bounded memory: {summary}"))
    for name, limit in LIMITS_MB.items():
        assert results[name]["peak_rss_mb"] < limit, (name, results[name])
    doc = json.loads((work / "giga-report" / "stats.json").read_text())
    pred, truth = doc["labels"]["parameters"], doc["truth"]["parameters"]
    assert abs(pred["air_content"]["value"] - truth["air_content"]["value"]) < 1.0
    assert doc["width"] == WIDTH and doc["height"] == HEIGHT
