"""The shipped models: the ONNX export beside each checkpoint is an export of exactly that checkpoint, it is what
`bigseg infer` runs by default on a CPU, and its labels are the checkpoint's."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import zarr
from helpers import run_cli

from bigseg.checkpoint import ADAPT_BASES, BUNDLED, BUNDLED_MODELS, file_digest, read
from bigseg.modelfile import read_onnx_meta
from bigseg.synth import SynthParams, synthesize


@pytest.mark.parametrize("name", sorted(set(BUNDLED_MODELS) - set(ADAPT_BASES)))  # adapt bases: no export shipped
def test_shipped_onnx_is_the_checkpoints_export(name):
    ckpt = BUNDLED_MODELS[name]
    if not ckpt.is_file():
        pytest.skip(f"{name} is not shipped in this release (bigseg infer --model {name} says how to make it)")
    onnx = ckpt.with_suffix(".onnx")
    if name != "light_unet" and not onnx.exists():
        pytest.skip(f"{name}: no export shipped (made once per machine, then cached)")
    meta = read_onnx_meta(onnx)
    assert meta["source_checkpoint_sha256"] == file_digest(ckpt), (
        f"{onnx.name} is not an export of {ckpt.name}: after changing the checkpoint, run bigseg export {ckpt} "
        f"-o {onnx} --exporter legacy --overwrite")
    own = read(ckpt)["meta"]
    assert meta["classes"] == own["classes"] and meta["arch"] == own["arch"]
    assert meta.get("confidence_reference") == own.get("confidence_reference")  # the report's warning travels
    stored_half = str(meta.get("weights_stored_as", "")).startswith("float16")  # --fp16-storage: rounded weights
    assert meta["verified"]["fp32_max_abs_logit_diff"] < (0.05 if stored_half else 1e-3)


def test_the_shipped_deeplabv3_runs_by_name_and_its_export_keeps_the_checkpoints_labels(tmp_path):
    """``bigseg infer --model deeplabv3`` runs the shipped trained DeepLabV3 (its export by default on a CPU); the
    checkpoint under torch labels the same pixels; the file is within the size the package allows."""
    ckpt = BUNDLED_MODELS["deeplabv3"]
    if not ckpt.is_file():
        pytest.skip("deeplabv3 is not shipped in this release")
    assert ckpt.stat().st_size <= 25e6 and read(ckpt)["meta"]["stored_as"] == "float16"
    synthesize(tmp_path / "s.png", SynthParams(700, 500, seed=4))
    proc = run_cli("infer", tmp_path / "s.png", "--workers", "0", "--model", "deeplabv3", "--window", "512")
    assert proc.returncode == 0, proc.stderr
    assert "backend: onnxruntime, with the shipped export" in proc.stdout
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    ort_labels = g["labels"][:]
    assert g["labels"].attrs["model"]["sha256"] == file_digest(ckpt)
    proc = run_cli("infer", tmp_path / "s.zarr", "--workers", "0", "--model", "deeplabv3", "--window", "512",
                   "--backend", "torch", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    torch_labels = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["labels"][:]
    assert (ort_labels == torch_labels).mean() >= 0.999 and np.unique(ort_labels).size >= 2


def test_the_shipped_adapt_base_adapts_by_name_and_is_not_read_as_it_is_without_a_warning(tmp_path):
    """``bigseg adapt --model deeplabv3plus-adapt`` fine-tunes the shipped DeepLabV3+ (fp16 storage, within the size
    the package allows, calibrated); the adapted model records that base; ``bigseg infer`` with the base itself warns
    that it is meant to be adapted, and with the adapted model does not."""
    from bigseg import annotations as ann
    from bigseg import store as st
    from bigseg.classes import CONCRETE
    from bigseg.ingest import ingest
    from bigseg.synth.strokes import simulate_strokes
    from bigseg.train.adapt import adapt
    from bigseg.train.adapt_options import AdaptOptions

    base = BUNDLED_MODELS["deeplabv3plus-adapt"]
    meta = read(base)["meta"]
    assert base.stat().st_size <= 25e6 and meta["stored_as"] == "float16"
    assert meta["arch"] == "deeplabv3plus_mobilenet_v3_large" and meta.get("confidence_reference")
    assert [c["name"] for c in meta["classes"]] == [c.name for c in CONCRETE]
    synthesize(tmp_path / "slab.png", SynthParams(512, 384, seed=3))
    store = tmp_path / "slab.zarr"
    ingest(tmp_path / "slab.png", store, truth=tmp_path / "slab.truth.png", chunk=256)
    for s in simulate_strokes(np.asarray(st.open_array(store, "truth")[:]), 3, 6, np.random.default_rng(0)):
        ann.paint(store, s)
    r = adapt([store], tmp_path / "mine.pt", base="deeplabv3plus-adapt", echo=lambda *a: None, progress=False,
              options=AdaptOptions(steps=2, minutes=5, crop=128, batch=2, export=False, suggestions=0))
    assert r.steps == 2
    record = read(tmp_path / "mine.pt")["meta"]["adapted"]
    assert record["base"]["sha256"] == file_digest(base) and record["base"]["arch"] == meta["arch"]
    warning = "warning: deeplabv3plus-adapt is shipped as a base for 'bigseg adapt'"
    proc = run_cli("infer", store, "--workers", "0", "--model", "deeplabv3plus-adapt", "--backend", "torch")
    assert proc.returncode == 0 and warning in proc.stdout, proc.stdout + proc.stderr
    proc = run_cli("report", store, "-o", tmp_path / "rep")  # a report of those labels says it too
    assert proc.returncode == 0, proc.stderr
    said = "labels read without adapting: deeplabv3plus-adapt is shipped as a base for 'bigseg adapt'"
    assert said in (tmp_path / "rep" / "report.html").read_text().replace("&#x27;", "'").replace("&#39;", "'")
    proc = run_cli("infer", store, "--workers", "0", "--model", tmp_path / "mine.pt", "--backend", "torch",
                   "--overwrite")
    assert proc.returncode == 0 and warning not in proc.stdout, proc.stdout + proc.stderr
    copy = tmp_path / "elsewhere" / "base.pt"  # a copy of the base is known by its content, not where it lies
    copy.parent.mkdir()
    shutil.copyfile(base, copy)
    proc = run_cli("infer", store, "--workers", "0", "--model", copy, "--backend", "torch", "--overwrite")
    assert proc.returncode == 0 and warning in proc.stdout, proc.stdout + proc.stderr
    assert "a copy" in proc.stdout
    proc = run_cli("report", store, "-o", tmp_path / "rep2")
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "rep2" / "report.html").read_text().replace("&#x27;", "'").replace("&#39;", "'")
    assert said in html and "labels from the bundled model deeplabv3plus-mobilenet-adapt-base.pt, trained on" in html
    assert "found none of the 11 entrapped voids" in html  # measured on this very file (its digest)


def test_default_on_cpu_is_onnxruntime_with_the_shipped_export(tmp_path):
    synthesize(tmp_path / "s.png", SynthParams(640, 480, seed=4))
    proc = run_cli("infer", tmp_path / "s.png", "--workers", "0")
    assert proc.returncode == 0, proc.stderr
    assert f"backend: onnxruntime, with the shipped export of this checkpoint ({BUNDLED.with_suffix('.onnx').name}" \
        in proc.stdout
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    ort_labels = g["labels"][:]
    run = json.loads(json.dumps(g["labels"].attrs.asdict()))
    assert run["model"]["sha256"] == file_digest(BUNDLED)  # provenance names the checkpoint, not the export
    proc = run_cli("infer", tmp_path / "s.zarr", "--workers", "0", "--backend", "torch", "--overwrite")
    assert proc.returncode == 0 and "backend: onnxruntime" not in proc.stdout, proc.stderr
    torch_labels = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["labels"][:]
    assert (ort_labels == torch_labels).mean() >= 0.999
    assert np.unique(ort_labels).size >= 2


def test_the_shipped_int8_export_passed_its_validation_and_runs_with_precision_int8(tmp_path):
    """``--precision int8`` runs the int8 export shipped beside the bundled checkpoint: an export of exactly that
    checkpoint, whose validation (benchmarks/ship_int8.py) allowed it; labels close to fp32's; the run and the
    provenance say int8."""
    from bigseg.infer.backend import int8_refusal

    int8 = BUNDLED.with_suffix(".int8.onnx")
    meta = read_onnx_meta(int8)
    assert meta["source_checkpoint_sha256"] == file_digest(BUNDLED), (
        f"{int8.name} is not an int8 export of {BUNDLED.name}: after changing the checkpoint, run "
        "python benchmarks/ship_int8.py")
    assert meta["precision"] == "int8" and int8_refusal(meta, int8) is None  # its claims are of this very graph
    assert meta["validation"]["allowed"] and meta["validation"]["label_agreement"] >= 0.99
    assert meta.get("confidence_reference") == read(BUNDLED)["meta"].get("confidence_reference")

    synthesize(tmp_path / "s.png", SynthParams(640, 480, seed=4))
    proc = run_cli("infer", tmp_path / "s.png", "--workers", "0", "--precision", "int8")
    assert proc.returncode == 0, proc.stderr
    assert f"precision: int8 (opt-in), the shipped int8 export of this checkpoint ({int8.name})" in proc.stdout
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    q = g["labels"][:]
    assert g["labels"].attrs["run"]["precision"] == "int8" and g["labels"].attrs["model"]["precision"] == "int8"
    info = run_cli("info", tmp_path / "s.zarr")  # says what made the labels, and lists their pyramid
    assert info.returncode == 0, info.stderr
    assert f"labels made by {BUNDLED.name} (sha256 {file_digest(BUNDLED)[:12]}, light_unet; onnxruntime, int8;" \
        in info.stdout
    assert "preview-labels/x4" in info.stdout
    proc = run_cli("infer", tmp_path / "s.zarr", "--workers", "0", "--overwrite")
    assert proc.returncode == 0 and "precision: int8" not in proc.stdout, proc.stderr
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    assert "precision" not in g["labels"].attrs["run"]
    assert (q == g["labels"][:]).mean() >= 0.98
