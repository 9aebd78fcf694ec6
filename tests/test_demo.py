"""The README's main job, small: synthetic slab -> ingest -> infer on a local cluster -> report."""

import json

from tests.helpers import run_cli


def test_demo_runs_the_whole_job(tmp_path):
    out = tmp_path / "demo"
    proc = run_cli("demo", "--out", out, "--size", "900x600", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert "[4/4] report written to" in proc.stdout and "Spacing factor L (Procedure B)" in proc.stdout
    doc = json.loads((out / "report" / "stats.json").read_text())
    pred, truth = doc["labels"]["parameters"], doc["truth"]["parameters"]
    assert abs(pred["air_content"]["value"] - truth["air_content"]["value"]) < 1.0
    assert (out / "report" / "report.html").stat().st_size > 10_000
