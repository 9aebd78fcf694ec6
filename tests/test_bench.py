"""`bigseg bench` runs its three measurements on a small image (figures are for benchmarks/, not asserted)."""

import json

from tests.helpers import run_cli


def test_bench_with_monai_beside(tmp_path):
    proc = run_cli("bench", "--size", "700x500", "--window", "256", "--overlap", "64", "--workers", "1", "--monai",
                   "--json", "--store", tmp_path / "b.zarr")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["windows"] == 12 and r["megapixels"] == 0.35
    for k in ("limit_mpx_per_s", "end_to_end_mpx_per_s", "monai_mpx_per_s", "peak_worker_rss_mb",
              "monai_peak_rss_mb"):
        assert r[k] > 0, k
    # same model, window, overlap and Gaussian-like blending: the two tilings agree almost everywhere
    assert r["label_agreement_with_monai"] > 0.99
    assert (tmp_path / "b.zarr" / "labels").is_dir()


def test_bench_with_the_onnxruntime_backend(tmp_path):
    """The limit and the job both run the ONNX export; the job's labels say which backend made them."""
    import zarr

    proc = run_cli("bench", "--size", "600x400", "--window", "256", "--overlap", "64", "--workers", "0",
                   "--backend", "onnxruntime", "--json", "--store", tmp_path / "b.zarr")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["backend"] == "onnxruntime" and r["limit_mpx_per_s"] > 0 and r["end_to_end_mpx_per_s"] > 0
    assert zarr.open_group(str(tmp_path / "b.zarr"), mode="r")["labels"].attrs["run"]["backend"] == "onnxruntime"
    # the store now holds labels: a rerun replaces them only with --overwrite, and measures the store's own size
    again = run_cli("bench", "--size", "4000x4000", "--window", "256", "--overlap", "64", "--workers", "0",
                    "--json", "--store", tmp_path / "b.zarr", "--overwrite")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["megapixels"] == 0.24 and "measuring the store as it is, 600x400" in again.stderr


def test_bench_with_precision_int8_runs_the_int8_export(tmp_path):
    """``--precision int8``: the limit and the job run the shipped int8 export (its labels say so)."""
    import zarr

    proc = run_cli("bench", "--size", "600x400", "--window", "256", "--overlap", "64", "--workers", "0",
                   "--precision", "int8", "--json", "--store", tmp_path / "b.zarr")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["precision"] == "int8" and r["backend"] == "onnxruntime" and r["end_to_end_mpx_per_s"] > 0
    assert zarr.open_group(str(tmp_path / "b.zarr"), mode="r")["labels"].attrs["model"]["precision"] == "int8"
    refused = run_cli("bench", "--size", "600x400", "--precision", "int8", "--backend", "torch")
    assert refused.returncode == 2 and "--precision int8 runs on ONNX Runtime" in refused.stderr
