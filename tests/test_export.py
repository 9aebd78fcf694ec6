"""Exports (ONNX, TorchScript, int8) checked against PyTorch, and the ONNX Runtime backend on real stores."""

import json
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import zarr

from bigseg import checkpoint
from bigseg.checkpoint import BUNDLED, file_digest
from bigseg.classes import CONCRETE
from bigseg.errors import BigsegError
from bigseg.export import export
from bigseg.infer import InferOptions, infer
from bigseg.ingest import ingest
from bigseg.modelfile import read_onnx_meta
from bigseg.models import ARCHITECTURES, build
from bigseg.synth import SynthParams, synthesize
from tests.helpers import run_cli

QUIET = {"echo": lambda *_: None}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Two small slabs with truth: one to calibrate int8 on, one held out to measure it on."""
    d = tmp_path_factory.mktemp("export")
    out = []
    for name, seed in (("calib", 31), ("held", 32)):
        s = synthesize(d / f"{name}.png", SynthParams(900, 700, seed=seed, pixel_size_um=12))
        ingest(s["image"], d / f"{name}.zarr", truth=s["truth"], chunk=256)
        out.append(d / f"{name}.zarr")
    return out


def _ort(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


# torch's dynamo exporter takes 20-30 s per torchvision model: the default suite runs it on the bundled model
# and the legacy exporter on every model; -m slow runs the dynamo exporter on the torchvision models too
ROUND_TRIPS = [
    ("light_unet", "dynamo"), ("light_unet", "legacy"), ("lraspp_mobilenet_v3_large", "legacy"),
    ("deeplabv3_mobilenet_v3_large", "legacy"), ("deeplabv3_resnet50", "legacy"),
    pytest.param("fcn_resnet50", "legacy", marks=pytest.mark.slow),  # deeplabv3_resnet50's backbone, a plainer head
    ("deeplabv3plus_mobilenet_v3_large", "legacy"), ("linknet_resnet18", "legacy"),
    pytest.param("unet_resnet34", "legacy", marks=pytest.mark.slow),  # LinkNet's encoder path, deeper
    pytest.param("lraspp_mobilenet_v3_large", "dynamo", marks=pytest.mark.slow),
    pytest.param("deeplabv3_mobilenet_v3_large", "dynamo", marks=pytest.mark.slow),
    pytest.param("deeplabv3_resnet50", "dynamo", marks=pytest.mark.slow),
    # ResNet-101 variants: the ResNet-50 ones with more blocks (the same export path), heavier to run
    pytest.param("deeplabv3_resnet101", "legacy", marks=pytest.mark.slow),
    pytest.param("fcn_resnet101", "legacy", marks=pytest.mark.slow),
]
assert {tuple(getattr(p, "values", p)) for p in ROUND_TRIPS} >= {(a, "legacy") for a in ARCHITECTURES}


@pytest.mark.parametrize("arch,exporter", ROUND_TRIPS)
def test_each_registry_model_round_trips_through_onnx_and_torchscript(tmp_path, arch, exporter):
    torch.manual_seed(1)
    model = build(arch, 4).eval()
    classes = (*CONCRETE, CONCRETE[0].__class__(3, "crack", (255, 0, 0)))
    ckpt = tmp_path / "m.pt"
    checkpoint.save(ckpt, model, arch=arch, classes=classes, extra_meta={"window": 320})
    x = torch.rand(1, 3, 96, 136)  # a size neither the tracer nor the export's own check used
    with torch.no_grad():
        ref = model(x).numpy()

    r = export(ckpt, tmp_path / "m.onnx", "onnx", exporter=exporter, **QUIET)
    meta = read_onnx_meta(tmp_path / "m.onnx")
    assert meta["arch"] == arch and meta["precision"] == "fp32" and meta["window"] == 320
    assert meta["exporter"] == exporter
    assert meta["normalisation"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert [c["name"] for c in meta["classes"]] == ["paste", "stone", "void", "crack"]
    assert meta["source_checkpoint_sha256"] == file_digest(ckpt)
    assert r["verified"]["fp32_max_abs_logit_diff"] <= 1e-3
    got = _ort(tmp_path / "m.onnx").run(None, {"image": x.numpy()})[0]
    assert got.shape == ref.shape == (1, 4, 96, 136)
    np.testing.assert_allclose(got, ref, atol=1e-3, rtol=0)

    export(ckpt, tmp_path / "m.ts", "torchscript", **QUIET)
    extra = {"bigseg.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated; libtorch users still load it
        loaded = torch.jit.load(str(tmp_path / "m.ts"), _extra_files=extra)
    assert json.loads(extra["bigseg.json"])["arch"] == arch
    with torch.no_grad():
        np.testing.assert_allclose(loaded(x).numpy(), ref, atol=1e-5, rtol=0)


def test_an_export_beyond_the_tolerance_is_not_written(tmp_path):
    with pytest.raises(BigsegError, match="differs from PyTorch"):
        export(BUNDLED, tmp_path / "b.onnx", tolerance=0.0, **QUIET)  # fp32 ONNX differs by ~1e-6, never 0
    assert list(tmp_path.iterdir()) == []  # no file, no temporary folder


def test_onnxruntime_backend_from_a_checkpoint_matches_torch(tmp_path, stores):
    """--backend onnxruntime with a user's checkpoint (no export beside it) exports it once into the export cache
    and gives torch's labels; the next run, without --backend, finds the cached export and runs it by default."""
    import shutil

    from bigseg.infer.backend import cache_dir

    mine = tmp_path / "mine.pt"
    shutil.copy(BUNDLED, mine)
    opts = dict(window=256, overlap=64, workers=0)
    a, b = tmp_path / "a.zarr", tmp_path / "b.zarr"
    for s in (a, b):
        ingest(stores[1].with_suffix(".png"), s, chunk=256)
    infer(a, model=str(mine), options=InferOptions(backend="torch", **opts), **QUIET)
    r = infer(b, model=str(mine), options=InferOptions(backend="onnxruntime", **opts), **QUIET)
    exported = cache_dir() / "exports" / f"{file_digest(mine)[:16]}.onnx"
    assert read_onnx_meta(exported)["source_checkpoint_sha256"] == file_digest(mine)
    assert r.run["backend"] == "onnxruntime"
    la, lb = (zarr.open_group(str(s), mode="r")["labels"][:] for s in (a, b))
    assert (la == lb).mean() >= 0.999
    # a rerun reuses the export; without --backend it is the default now that it is there
    mtime = exported.stat().st_mtime_ns
    r = infer(b, model=str(mine), options=InferOptions(overwrite=True, **opts), **QUIET)
    assert exported.stat().st_mtime_ns == mtime and r.run["backend"] == "onnxruntime"


def test_int8_export_is_calibrated_checked_and_runs(tmp_path, stores):
    calib, held = stores
    proc = run_cli("export", BUNDLED, "-o", tmp_path / "q.onnx", "--int8", "--calibrate", calib, "--exporter", "legacy")
    assert proc.returncode == 0, proc.stderr
    assert "int8 model: labels agree with PyTorch fp32 on" in proc.stdout and "int8" in proc.stdout
    meta = read_onnx_meta(tmp_path / "q.onnx")
    assert meta["precision"] == "int8" and meta["verified"]["int8_label_agreement"] >= 0.99
    assert meta["verified"]["calibration_stores"] == [str(calib)]
    from bigseg.infer.backend import int8_refusal
    from bigseg.modelfile import graph_digest

    assert meta["verified"]["graph_sha256"] == graph_digest(tmp_path / "q.onnx")  # the claims name their graph
    assert int8_refusal(meta, tmp_path / "q.onnx") is None
    ops = {n.op_type for n in __import__("onnx").load(str(tmp_path / "q.onnx")).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert (tmp_path / "q.onnx").stat().st_size < BUNDLED.stat().st_size / 2  # int8 weights

    # infer on the held-out slab with fp32 torch and with int8 onnxruntime
    fp, q = tmp_path / "fp.zarr", tmp_path / "q.zarr"
    for s in (fp, q):
        ingest(held.with_suffix(".png"), s, truth=held.with_suffix(".truth.png"), chunk=256)
    infer(fp, options=InferOptions(window=256, overlap=64, workers=0), **QUIET)
    r = infer(q, model=tmp_path / "q.onnx", options=InferOptions(window=256, overlap=64, workers=1), **QUIET)
    assert r.run["backend"] == "onnxruntime"
    g_fp, g_q = zarr.open_group(str(fp), mode="r"), zarr.open_group(str(q), mode="r")
    assert (g_fp["labels"][:] == g_q["labels"][:]).mean() >= 0.99
    # int8 costs the model at most 0.01 IoU on stone and void against the truth (the model's own fp32 IoU on this
    # small 12 um classic slab, void ~0.67, is its business: README's model section; here it must be sane)
    truth = g_q["truth"][:]

    def iou(labels, k):
        return ((labels == k) & (truth == k)).sum() / ((labels == k) | (truth == k)).sum()

    for k in (1, 2):
        fp32, int8 = iou(g_fp["labels"][:], k), iou(g_q["labels"][:], k)
        assert int8 >= fp32 - 0.01 and fp32 > 0.6, (k, fp32, int8)


def test_cli_export_and_infer_an_onnx_file(tmp_path, stores):
    proc = run_cli("export", BUNDLED, "-o", tmp_path / "m.onnx")
    assert proc.returncode == 0, proc.stderr
    assert "ONNX export matches PyTorch: max abs logit difference" in proc.stdout
    assert "wrote" in proc.stdout and "fp32" in proc.stdout
    store = tmp_path / "s.zarr"
    ingest(stores[1].with_suffix(".png"), store, chunk=256)
    proc = run_cli("infer", store, "--model", tmp_path / "m.onnx", "--workers", "0", "--window", "256",
                   "--overlap", "64")
    assert proc.returncode == 0, proc.stderr
    run = zarr.open_group(str(store), mode="r")["labels"].attrs["run"]
    assert run["backend"] == "onnxruntime" and run["checkpoint_sha256"] == file_digest(tmp_path / "m.onnx")
    assert Path(tmp_path / "m.onnx").exists()


def test_fp16_storage_halves_the_file_and_keeps_the_labels(tmp_path, stores):
    """--fp16-storage: the weights stored as float16 behind casts; the file is half the size, checked against
    PyTorch like any export, and its labels equal the fp32 export's."""
    import onnx

    _, held = stores
    full, half = tmp_path / "full.onnx", tmp_path / "half.onnx"
    assert run_cli("export", BUNDLED, "-o", full, "--exporter", "legacy").returncode == 0
    proc = run_cli("export", BUNDLED, "-o", half, "--exporter", "legacy", "--fp16-storage", "--tolerance", "0.05")
    assert proc.returncode == 0, proc.stderr
    assert half.stat().st_size < 0.6 * full.stat().st_size
    meta = read_onnx_meta(half)
    assert meta["weights_stored_as"].startswith("float16") and meta["verified"]["fp32_max_abs_logit_diff"] < 0.05
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in onnx.load(str(half)).graph.initializer)
    labels = {}
    for name, path in (("full", full), ("half", half)):
        s = tmp_path / f"{name}.zarr"
        ingest(held.with_suffix(".png"), s, chunk=256)
        infer(s, model=path, options=InferOptions(window=256, overlap=64, workers=0), **QUIET)
        labels[name] = zarr.open_group(str(s), mode="r")["labels"][:]
    assert (labels["full"] == labels["half"]).mean() > 0.999
    refused = run_cli("export", BUNDLED, "-o", tmp_path / "q.onnx", "--fp16-storage", "--int8", "--calibrate", held)
    assert refused.returncode == 2 and "--fp16-storage applies to fp32 ONNX exports" in refused.stderr


def test_the_int8_simulation_computes_as_the_int8_export(tmp_path, stores):
    """--qat trains through a simulation of the int8 export's rounding: its first layer must give ONNX Runtime's
    int8 values (same calibrated range, same weight grid), its logits must stray from fp32 by as much as the
    export's do, and it must leave the weights on the int8 grid that the export then uses."""
    import onnx

    from bigseg.export import _export_onnx, _quantize_int8, _store_windows
    from bigseg.export.qat import WEIGHT_LEVELS, Int8Simulation, _fold_scale

    calib, held = stores
    model, _ = checkpoint.load(BUNDLED)
    windows = _store_windows([calib], 8, 256) + _store_windows([held], 4, 256, seed=5)
    _export_onnx(model, tmp_path / "fp32.onnx", "legacy")
    _quantize_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", windows[:8], tmp_path)
    graph = onnx.load(str(tmp_path / "int8.onnx"))
    first = next(n.output[0] for n in graph.graph.node  # the first layer's rounded output, as the export has it
                 if n.op_type == "DequantizeLinear" and "stem.0" in n.output[0] and "Relu" in n.output[0])
    graph.graph.output.append(onnx.helper.make_tensor_value_info(first, onnx.TensorProto.FLOAT, None))
    onnx.save(graph, str(tmp_path / "int8-first.onnx"))
    session = _ort(tmp_path / "int8-first.onnx")
    sim = Int8Simulation(model, windows[:8])
    seen = {}
    sim.roundings[0].register_forward_hook(lambda m, a, out: seen.update(first=out.detach().numpy()))
    off_export = off_sim = 0.0
    for x in windows[8:]:
        logits, layer = session.run(None, {"image": x})
        with torch.no_grad():
            fp32 = model(torch.from_numpy(x)).numpy()
            simulated = sim.model(torch.from_numpy(x)).numpy()
        step = (layer.max() - layer.min()) / 255
        assert np.abs(seen["first"] - layer).mean() < 0.01 * step  # the same rounding, value for value
        off_export += float(np.abs(logits - fp32).mean())
        off_sim += float(np.abs(simulated - fp32).mean())
    assert 0.5 < off_sim / off_export < 2, (off_sim, off_export)  # rounding noise of the export's size
    assert len(sim.pairs) == 15 and sum(bn is not None for _, bn in sim.pairs) == 14  # the bundled model's

    trained = sim.finish()
    for conv, bn in sim.pairs:
        folded = conv.weight.detach() * (_fold_scale(bn).view(-1, 1, 1, 1) if bn is not None else 1)
        step = folded.abs().amax(dim=(1, 2, 3), keepdim=True) / WEIGHT_LEVELS
        steps = folded / step
        assert torch.allclose(steps, steps.round(), atol=1e-3)  # on the grid: the export rounds to these integers
    assert trained is not sim.model and not any(hasattr(c, "parametrizations") for c, _ in sim.pairs)


def test_qat_export_fine_tunes_checks_against_the_original_and_says_what_it_gained(tmp_path, stores):
    calib, held = stores
    proc = run_cli("export", BUNDLED, "-o", tmp_path / "q.onnx", "--int8", "--calibrate", calib, "--qat", held,
                   "--qat-steps", "12", "--exporter", "legacy", "--calibration-windows", "8")
    assert proc.returncode == 0, proc.stderr
    assert "quantization-aware fine-tune: step 12/12" in proc.stdout
    assert "post-training quantization alone:" in proc.stdout
    meta = read_onnx_meta(tmp_path / "q.onnx")
    v = meta["verified"]
    assert v["qat"]["steps"] == 12 and v["qat"]["stores"] == [str(held)] and v["qat"]["convolutions"] == 15
    assert v["calibration_windows"] == 8 and v["int8_check_windows"] == 8
    assert v["int8_label_agreement"] >= 0.99 and 0.9 <= v["int8_label_agreement_without_qat"] <= 1
    assert meta["source_checkpoint_sha256"] == file_digest(BUNDLED)  # the fp32 model it answers to
    from bigseg.infer.backend import int8_refusal

    assert int8_refusal(meta, tmp_path / "q.onnx") is None
