"""Faults: processes killed mid-write, a file system that refuses writes, and the guarantees of security.

The faults of inference itself (a dask worker killed mid-run, `kill -9` of `infer` and its rerun, two runs on one
store) are tested in tests/test_infer.py and listed in the same reliability table.
"""

import ast
import hashlib
import json
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
import zarr
from PIL import Image

from bigseg import checkpoint
from bigseg.ingest import ingest
from tests.helpers import error_line, run_cli


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def noise_png(tmp_path_factory) -> Path:
    """A 2400 x 1800 PNG of noise: slow to decode, incompressible (chunk files of ~3 MB)."""
    d = tmp_path_factory.mktemp("noise")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (1800, 2400, 3), dtype=np.uint8)).save(
        d / "noise.png", compress_level=1)
    return d / "noise.png"


def _bigseg(*args):
    return subprocess.Popen([sys.executable, "-m", "bigseg", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _kill_when(proc, folder: Path, pattern: str, timeout: float) -> None:
    """SIGKILL ``proc`` as soon as a file matching ``pattern`` appears under ``folder`` (it is mid-write then)."""
    deadline = time.time() + timeout
    while time.time() < deadline and not list(folder.glob(pattern)):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"{proc.args[3]} finished before it could be killed"


def test_ingest_killed_then_rerun(tmp_path, noise_png, record_property):
    record_property("reliability", ("fault", "`ingest` killed (SIGKILL) while writing",
                                    "no store under the final name; the rerun cleans up and is byte-identical"))
    out = tmp_path / "s.zarr"
    _kill_when(_bigseg("ingest", noise_png, out, "--chunk", "256"), tmp_path, ".s.zarr.partial-*/image/c/1", 60)
    assert not out.exists() and list(tmp_path.glob(".s.zarr.partial-*"))
    assert run_cli("ingest", noise_png, out, "--chunk", "256").returncode == 0
    assert not list(tmp_path.glob(".s.zarr.partial-*"))  # the killed run's leftovers are gone
    clean = tmp_path / "clean" / "s.zarr"
    clean.parent.mkdir()
    ingest(noise_png, clean, chunk=256)
    assert _tree(out) == _tree(clean)


def test_export_tiff_killed_then_rerun(tmp_path, noise_png, record_property):
    record_property("reliability", ("fault", "`export-tiff` killed (SIGKILL) while writing its levels",
                                    "no TIFF under the final name; the rerun removes the killed run's working "
                                    "files and writes the same TIFF"))
    store = tmp_path / "s.zarr"
    ingest(noise_png, store, chunk=512)
    out = tmp_path / "image.tif"
    _kill_when(_bigseg("export-tiff", store, "-o", out, "--layer", "image"), tmp_path, ".image.tif.levels-*/1/c/*",
               120)
    assert not out.exists() and list(tmp_path.glob(".image.tif.levels-*"))
    assert run_cli("export-tiff", store, "-o", out, "--layer", "image").returncode == 0
    assert not list(tmp_path.glob(".image.tif.*-*"))  # neither .partial-PID nor .levels-PID is left
    clean = tmp_path / "clean.tif"
    assert run_cli("export-tiff", store, "-o", clean, "--layer", "image").returncode == 0
    import tifffile

    with tifffile.TiffFile(out) as a, tifffile.TiffFile(clean) as b:
        assert len(a.pages) == len(b.pages)
        assert all(np.array_equal(p.asarray(), q.asarray()) for p, q in zip(a.pages, b.pages, strict=True))


def _limited(nbytes):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return apply


def test_full_disk_during_ingest_and_infer(tmp_path, noise_png, record_property):
    record_property("reliability", ("fault", "file system refuses writes (file size limit) during `ingest` "
                                             "and `infer`", "one line with the system's error; nothing marked "
                                                            "complete; the old store intact; a rerun completes"))
    out = tmp_path / "s.zarr"
    proc = subprocess.run([sys.executable, "-m", "bigseg", "ingest", noise_png, out], capture_output=True,
                          text=True, preexec_fn=_limited(1_000_000))
    line = error_line(proc)
    assert "File too large" in line, line
    assert not out.exists() and not list(tmp_path.glob(".s.zarr.partial-*"))

    assert run_cli("ingest", noise_png, out, "--chunk", "512").returncode == 0
    before = _tree(out)
    proc = subprocess.run([sys.executable, "-m", "bigseg", "infer", out, "--workers", "0", "--window", "512",
                           "--overlap", "64"], capture_output=True, text=True, preexec_fn=_limited(4_000))
    line = error_line(proc)
    assert "File too large" in line, line
    group = zarr.open_group(str(out), mode="r")
    assert "labels" not in group or group["labels"].attrs["complete"] is False
    assert {k: v for k, v in _tree(out).items() if k in before and not k.startswith("zarr.json")} == {
        k: v for k, v in before.items() if not k.startswith("zarr.json")}  # image, preview untouched
    proc = run_cli("infer", out, "--workers", "0", "--window", "512", "--overlap", "64")
    assert proc.returncode == 0, proc.stderr
    assert zarr.open_group(str(out), mode="r")["labels"].attrs["complete"] is True


def test_full_disk_during_report_and_train_checkpoints(tmp_path, slab_png, record_property):
    record_property("reliability", ("fault", "file system refuses writes (file size limit) during `report` and "
                                             "`train` checkpointing",
                                    "one line with the system's error; the previous report and last.pt intact"))
    store = tmp_path / "t.zarr"
    ingest(slab_png, store, truth=slab_png.with_name("slab.truth.png"), chunk=256)
    assert run_cli("infer", store, "--workers", "0", "--window", "256", "--overlap", "64").returncode == 0
    assert run_cli("report", store, "-o", tmp_path / "rep").returncode == 0
    before = _tree(tmp_path / "rep")
    proc = subprocess.run([sys.executable, "-m", "bigseg", "report", store, "-o", tmp_path / "rep", "--overwrite"],
                          capture_output=True, text=True, preexec_fn=_limited(20_000))
    assert "File too large" in error_line(proc)
    assert _tree(tmp_path / "rep") == before and not list(tmp_path.glob(".rep.*"))

    cfg = _train_config(tmp_path, [str(store)], "full", 10)
    assert run_cli("train", "--config", cfg, "--stop-at", "5").returncode == 0
    last = tmp_path / "full" / "last.pt"
    saved = last.read_bytes()
    proc = subprocess.run([sys.executable, "-m", "bigseg", "train", "--config", cfg, "--resume"],
                          capture_output=True, text=True, preexec_fn=_limited(len(saved) // 2))
    assert "refused to write the checkpoint" in error_line(proc)
    assert last.read_bytes() == saved and not list(last.parent.glob(".last.pt.tmp-*"))


def _train_config(tmp_path, stores, name, iterations):
    cfg = {"train": stores, "model": {"arch": "light_unet", "width": 4}, "crop": 64, "batch_size": 2,
           "iterations": iterations, "checkpoint_every": 5, "num_workers": 0, "device": "cpu",
           "deterministic": True, "seed": 2, "out": str(tmp_path / name), "optimizer": {"name": "sgd", "lr": 0.01}}
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / f"{name}.yaml"


def test_training_killed_between_checkpoints(tmp_path, slab_png, record_property):
    record_property("reliability", ("fault", "`train` killed (SIGKILL) between checkpoints",
                                    "`--resume` loses at most one checkpoint interval and ends with the weights "
                                    "of an uninterrupted run"))
    ingest(slab_png, tmp_path / "t.zarr", truth=slab_png.with_name("slab.truth.png"), chunk=128)
    stores = [str(tmp_path / "t.zarr")]
    n = 80  # the run is killed at step 13 or soon after; 80 leaves room on a fast machine
    proc = _bigseg("train", "--config", _train_config(tmp_path, stores, "killed", n))
    log = tmp_path / "killed" / "log.jsonl"
    deadline, step = time.time() + 120, 0
    while time.time() < deadline and step < 13:
        if log.exists():
            lines = log.read_text().splitlines()
            step = json.loads(lines[-1])["step"] if lines else 0
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    saved = checkpoint.read(tmp_path / "killed" / "last.pt")["train_state"]["step"]
    lines = log.read_text().splitlines()
    reached = json.loads(lines[-1])["step"]
    assert reached - saved <= 5 and saved % 5 == 0 and reached < n, (reached, saved)
    resumed = run_cli("train", "--config", tmp_path / "killed.yaml", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    whole = run_cli("train", "--config", _train_config(tmp_path, stores, "whole", n))
    assert whole.returncode == 0, whole.stderr
    a = checkpoint.read(tmp_path / "killed" / "last.pt")["state_dict"]
    b = checkpoint.read(tmp_path / "whole" / "last.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in b)


# -----------------------------------------------------------------------------------------------------------
# security


def test_no_shell_commands_from_user_strings(record_property):
    record_property(
        "reliability", ("security", "shell commands built from strings (static scan of bigseg/)",
                        "no os.system/os.popen, no shell=True, every subprocess call takes an argument list"))
    package = Path(__file__).resolve().parents[2] / "bigseg"
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
                assert node.attr not in ("system", "popen"), f"{path}:{node.lineno}"
            if isinstance(node, ast.keyword) and node.arg == "shell":
                assert isinstance(node.value, ast.Constant) and node.value.value is False, f"{path}:{node.lineno}"


def test_local_cluster_listens_on_localhost_only(record_property):
    record_property("reliability", ("security", "the dask cluster bigseg starts",
                                    "scheduler, workers and dashboard bound to 127.0.0.1"))
    from bigseg.cluster import dask_client

    with dask_client(1, None, echo=lambda *_: None) as client:
        info = client.scheduler_info()
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        assert all(addr.startswith("tcp://127.0.0.1:") for addr in info["workers"])
        assert "127.0.0.1" in client.dashboard_link


def test_imported_names_stay_inside_outdir(tmp_path, record_property):
    record_property("reliability", ("security", "importer file names with dots, spaces, non-ASCII; hidden files",
                                    "every store lands inside OUTDIR; hidden files are skipped"))
    from bigseg.datasets import import_pairs

    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    for name in ("x..y", "a b", "ü", ".hidden"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "img" / f"{name}.png")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "msk" / f"{name}.png")
    out = tmp_path / "deep" / "out"
    r = import_pairs(tmp_path / "img", tmp_path / "msk", out, echo=lambda *_: None)
    assert len(r.stores) == 3
    for s in r.stores:
        assert s.resolve().parent == out.resolve(), s
