"""Stores on object storage: a real S3 API (moto's server mode on 127.0.0.1, started and stopped here), reached
through fsspec/s3fs the way a lab's bucket is, credentials from the environment. ingest, infer on a local cluster
of worker processes, evaluate and report on ``s3://`` stores give what a store on disk gives, a killed run
resumes to the same labels, and the refusals hold."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import moto.server as moto_server  # the test extra installs it (and s3fs): a missing one fails, never skips
import numpy as np
import pytest
import s3fs  # noqa: F401
import zarr
from helpers import error_line, run_cli

from bigseg.synth import SynthParams, synthesize

ARGS = ("--workers", "1", "--backend", "torch", "--window", "256", "--overlap", "64")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A bucket on a local S3 server; yields the environment a bigseg process needs to reach it."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server._port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "BIGSEG_PROGRESS": "0"}
    saved = {k: os.environ.get(k) for k in env if k.startswith("AWS_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})  # for this process's checks

    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem().mkdir("slabs")
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


@pytest.fixture(scope="module")
def slab(tmp_path_factory):
    d = tmp_path_factory.mktemp("s3slab")
    synthesize(d / "slab.png", SynthParams(900, 700, seed=3))
    return d


def _objects(prefix: str) -> list[str]:

    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    return fs.find(prefix) if fs.exists(prefix) else []


def test_ingest_infer_report_on_s3_match_the_disk(s3, slab, tmp_path):
    local = tmp_path / "local.zarr"
    assert run_cli("ingest", slab / "slab.png", local, "--truth", slab / "slab.truth.png", "--chunk", "256",
                   env=s3).returncode == 0
    assert run_cli("infer", local, *ARGS, env=s3).returncode == 0
    url = "s3://slabs/a.zarr"
    p = run_cli("ingest", slab / "slab.png", url, "--truth", slab / "slab.truth.png", "--chunk", "256", env=s3)
    assert p.returncode == 0, p.stderr
    p = run_cli("infer", url, *ARGS, env=s3)
    assert p.returncode == 0, p.stderr
    disk, remote = zarr.open_group(str(local), mode="r"), zarr.open_group(url, mode="r")
    for name in ("image", "truth", "labels", "confidence", "preview/x4", "preview-labels/x4"):
        assert np.array_equal(disk[name][:], remote[name][:]), name
    assert remote["labels"].attrs["complete"] and remote["labels"].attrs["stats"] == disk["labels"].attrs["stats"]
    left = [k for k in _objects("slabs/a.zarr/.bigseg")]
    assert left == [], left  # no stage, markers, spill or lock object left behind
    assert not _objects("slabs/.a.zarr.lock")
    p = run_cli("evaluate", url, "--json", tmp_path / "e.json", env=s3)
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "e.json").read_text())["mean_iou"] > 0.5
    p = run_cli("report", url, cwd=tmp_path, env=s3)  # the default output: a-report/ in the current folder
    assert p.returncode == 0, p.stderr
    assert run_cli("report", local, "-o", tmp_path / "local-report", env=s3).returncode == 0
    doc = json.loads((tmp_path / "a-report" / "stats.json").read_text())
    on_disk = json.loads((tmp_path / "local-report" / "stats.json").read_text())
    assert doc["store"] == url
    assert doc["labels"]["areas"] == on_disk["labels"]["areas"]
    assert doc["labels"]["airvoid"] == on_disk["labels"]["airvoid"]
    _served_read_only(url, s3)
    from bigseg.train.sampler import CropDataset  # training crops from the bucket: the same as from disk

    by_url, by_path = CropDataset([url], 64, None, seed=1), CropDataset([str(local)], 64, None, seed=1)
    for i in range(3):
        for a, b in zip(by_url[i], by_path[i], strict=True):
            assert np.array_equal(np.asarray(a), np.asarray(b))
    # refusals: an existing store without --overwrite; finished labels without --overwrite
    assert "exists; pass --overwrite" in error_line(run_cli("ingest", slab / "slab.png", url, env=s3))
    assert "already complete" in error_line(run_cli("infer", url, *ARGS, env=s3))
    assert "no slab store there" in error_line(run_cli("infer", "s3://slabs/none.zarr", *ARGS, env=s3))


def test_kill_9_mid_run_on_s3_then_rerun_gives_the_same_labels(s3, slab, tmp_path):
    url = "s3://slabs/k.zarr"
    assert run_cli("ingest", slab / "slab.png", url, "--chunk", "128", env=s3).returncode == 0
    ref = "s3://slabs/ref.zarr"
    assert run_cli("ingest", slab / "slab.png", ref, "--chunk", "128", env=s3).returncode == 0
    assert run_cli("infer", ref, *ARGS, env=s3).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "bigseg", "infer", url, *ARGS], env=s3, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and len(_objects("slabs/k.zarr/.bigseg/labels-done")) < 3:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the command and its worker processes, mid-run
    proc.wait(timeout=60)
    done = len(_objects("slabs/k.zarr/.bigseg/labels-done"))
    assert 3 <= done < 6 * 8, done  # killed with some chunks done and others not
    assert "labels" not in zarr.open_group(url, mode="r")  # nothing looks finished
    p = run_cli("infer", url, *ARGS, env=s3)  # the lock object of the killed run (same host, pid gone) is taken
    assert p.returncode == 0, p.stderr
    assert "resuming" in p.stdout, p.stdout
    assert np.array_equal(zarr.open_group(url, mode="r")["labels"][:], zarr.open_group(ref, mode="r")["labels"][:])
    assert _objects("slabs/k.zarr/.bigseg") == []


def test_a_second_run_is_refused_while_the_lock_object_is_held(s3, slab):
    url = "s3://slabs/l.zarr"
    assert run_cli("ingest", slab / "slab.png", url, "--chunk", "256", env=s3).returncode == 0

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # a live pid on this host
    try:
        s3fs.S3FileSystem().pipe_file("slabs/l.zarr/.bigseg/infer.lock", json.dumps(
            {"pid": holder.pid, "host": socket.gethostname(), "since": time.time()}).encode())
        line = error_line(run_cli("infer", url, *ARGS, env=s3))
        assert "another 'bigseg infer' is running" in line and f"pid {holder.pid}" in line
        assert "labels" not in zarr.open_group(url, mode="r")
    finally:
        holder.kill()
        holder.wait()


def _served_read_only(url: str, env: dict) -> None:
    """``bigseg serve URL``: the viewer's API and tiles from the bucket; painting there refused."""
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "bigseg", "serve", url, "--port", "0"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
        assert "serving 1 store" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        base = line.split(" at ")[1].split()[0].rstrip("/")
        stores = json.loads(urllib.request.urlopen(f"{base}/api/stores", timeout=30).read())
        assert stores[0]["name"] == "a.zarr" and "labels" in stores[0]["layers"]
        tile = urllib.request.urlopen(f"{base}/dzi/a/labels_files/8/0_0.png", timeout=30)
        assert tile.status == 200 and tile.read()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "served read-only" in error_line(run_cli("serve", url, "--annotate", "--port", "0", env=env))


def test_images_and_models_at_urls(s3, slab, tmp_path):
    """An image in the bucket is streamed into a store (the same pixels as from disk, a tiled TIFF too); a model
    in the bucket is fetched once into the cache and runs as the same file on disk does; missing ones are one
    line."""
    import pyvips

    from bigseg.checkpoint import BUNDLED

    fs = s3fs.S3FileSystem()
    pyvips.Image.new_from_file(str(slab / "slab.png")).tiffsave(str(tmp_path / "slab.tif"), tile=True,
                                                                  compression="deflate")
    fs.put_file(str(slab / "slab.png"), "slabs/in/slab.png")
    fs.put_file(str(tmp_path / "slab.tif"), "slabs/in/slab.tif")
    fs.put_file(str(BUNDLED), "slabs/models/mine.pt")
    assert run_cli("ingest", slab / "slab.png", tmp_path / "disk.zarr", "--chunk", "256", env=s3).returncode == 0
    disk = zarr.open_group(str(tmp_path / "disk.zarr"), mode="r")["image"][:]
    for name in ("slab.png", "slab.tif"):
        p = run_cli("ingest", f"s3://slabs/in/{name}", tmp_path / f"{name}.zarr", "--chunk", "256", env=s3)
        assert p.returncode == 0, p.stderr
        g = zarr.open_group(str(tmp_path / f"{name}.zarr"), mode="r")
        assert np.array_equal(g["image"][:], disk), name
        assert g.attrs["source"]["path"] == f"s3://slabs/in/{name}"
    env = {**s3, "BIGSEG_CACHE": str(tmp_path / "cache")}
    assert run_cli("infer", tmp_path / "disk.zarr", "--workers", "0", "--backend", "torch", env=env).returncode == 0
    p = run_cli("infer", tmp_path / "slab.png.zarr", "--model", "s3://slabs/models/mine.pt", "--workers", "0",
                "--backend", "torch", env=env)
    assert p.returncode == 0, p.stderr
    assert list((tmp_path / "cache" / "models").glob("*/mine.pt"))
    assert np.array_equal(zarr.open_group(str(tmp_path / "slab.png.zarr"), mode="r")["labels"][:],
                          zarr.open_group(str(tmp_path / "disk.zarr"), mode="r")["labels"][:])
    assert "no such image file" in error_line(run_cli("ingest", "s3://slabs/in/none.png", tmp_path / "x.zarr", env=s3))
    assert "no such model file" in error_line(run_cli("infer", tmp_path / "disk.zarr", "--overwrite", "--model",
                                                      "s3://slabs/models/none.pt", env=s3))
