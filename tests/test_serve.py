"""bigseg serve: the Deep Zoom tiles of every layer against the store they come from, the JSON API, 404s for
everything that is not there (path traversal included), read-only, a running infer's progress, and a load test."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from helpers import error_line, run_cli
from PIL import Image
from serve_fixtures import IMAGE_COLOURS, WRONG, H, Server, W, make_quad_store, quadrants, wait_until

from bigseg import pyramid
from bigseg.classes import CONCRETE

COLOURS = {c.id: tuple(c.color) for c in CONCRETE}
TOP = 12  # ceil(log2(3000))


@pytest.fixture(scope="module")
def quad(tmp_path_factory) -> Path:
    return make_quad_store(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def server(quad):
    s = Server(quad.parent)
    yield s
    s.stop()


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_stores_and_deep_zoom_descriptors(server, quad):
    assert "127.0.0.1" in server.first_line  # localhost unless told otherwise
    status, ctype, body = server.get("/api/stores")
    assert status == 200 and ctype.startswith("application/json")
    (s,) = json.loads(body)
    assert s["id"] == "quad" and (s["width"], s["height"]) == (W, H) and s["pixel_size_um"] == 10.0
    assert s["layers"] == ["image", "labels", "truth", "errors", "confidence"] and s["max_level"] == TOP
    assert not s["running"]
    status, ctype, body = server.get("/dzi/quad/labels.dzi")
    assert status == 200 and b'TileSize="256"' in body and b'Width="3000" Height="2000"' in body
    assert b'Format="png"' in body and b'Format="jpg"' in server.get("/dzi/quad/image.dzi")[2]
    stats = json.loads(server.get("/api/stores/quad/stats")[2])
    frac = stats["stats"]["classes"]
    wrong = (WRONG[1] - WRONG[0]) ** 2
    assert frac["void"]["pixels"] == W * H // 4 + wrong and frac["paste"]["pixels"] == W * H // 4 - wrong


def test_full_resolution_tiles_are_the_store(server, quad):
    g = zarr.open_group(str(quad), mode="r")
    labels, truth = g["labels"][:], g["truth"][:]
    for col, row in ((0, 0), (2, 2), (11, 7)):  # (11, 7): the bottom-right edge tile, cut to 184 x 208
        y, x = row * 256, col * 256
        tile = _png(server.get(f"/dzi/quad/labels_files/{TOP}/{col}_{row}.png")[2])
        want = labels[y : y + 256, x : x + 256]
        assert tile.shape[:2] == want.shape
        rgba = np.array([(*COLOURS.get(int(v), (0, 0, 0)), 255 if v != 255 else 0) for v in range(256)], np.uint8)
        assert (tile == rgba[want]).all()
        errors = _png(server.get(f"/dzi/quad/errors_files/{TOP}/{col}_{row}.png")[2])
        assert ((errors[..., 3] > 0) == ((want != truth[y : y + 256, x : x + 256]) & (truth[y : y + 256, x : x + 256]
                                                                                     != 255))).all()
        jpg = np.asarray(Image.open(io.BytesIO(server.get(f"/dzi/quad/image_files/{TOP}/{col}_{row}.jpg")[2])))
        assert np.abs(jpg.astype(int) - g["image"][y : y + 256, x : x + 256].astype(int)).mean() < 3


@pytest.mark.parametrize("level", [TOP - 2, TOP - 4, TOP - 6, 3])
def test_coarse_tiles_show_each_quadrant(server, level):
    """Every level, from pyramids or strided reads, puts each class where it is (sampled inside the quadrants)."""
    scale = 2 ** (TOP - level)
    truth = quadrants()
    points = [(1200, 800), (3 * W // 4, H // 4), (W // 4, 3 * H // 4), (3 * W // 4, 3 * H // 4)]
    for layer in ("labels", "truth", "image"):
        for x, y in points:
            col, row = x // scale // 256, y // scale // 256
            ext = "jpg" if layer == "image" else "png"
            tile = _png(server.get(f"/dzi/quad/{layer}_files/{level}/{col}_{row}.{ext}")[2])
            px = tile[y // scale - row * 256, x // scale - col * 256]
            cls = int(truth[y, x])
            if layer == "image":
                if level < TOP - 6:  # a 6 x 4 px picture: block means and JPEG's chroma blur the quadrants
                    continue
                assert np.abs(px[:3].astype(int) - IMAGE_COLOURS[cls]).max() < 12, (level, x, y, px)
            elif cls == 255:
                assert px[3] == 0
            else:
                assert tuple(px[:3]) == COLOURS[cls] and px[3] == 255, (layer, level, x, y, px)


def test_confidence_tiles_and_the_pixel_api(server):
    left = _png(server.get(f"/dzi/quad/confidence_files/{TOP - 4}/0_0.png")[2])  # 16 px per tile px: all of it
    assert left.shape == (125, 188, 4) and (left[..., 3] == 255).all()
    assert np.abs(left[5, 0, :3].astype(int) - (68, 1, 84)).max() < 10  # viridis' dark end at 0.5
    assert np.abs(left[5, -1, :3].astype(int) - (253, 231, 37)).max() < 10  # its yellow at 1.0
    v = json.loads(server.get("/api/stores/quad/pixel?x=600&y=600")[2])
    assert v == {"x": 600, "y": 600, "labels": "void", "truth": "paste", "confidence": v["confidence"],
                 "mm": [6.0, 6.0]}
    assert v["confidence"] == round(int(np.linspace(128, 255, 188)[600 // 16]) / 255, 3)
    assert json.loads(server.get("/api/stores/quad/pixel?x=2999&y=1999")[2])["truth"] == "unlabelled"


BAD = [
    "/dzi/nope/labels.dzi", "/dzi/quad/nolayer.dzi", "/dzi/quad/labels_files/13/0_0.png",
    "/dzi/quad/labels_files/12/12_0.png", "/dzi/quad/labels_files/12/0_8.png", "/dzi/quad/labels_files/-1/0_0.png",
    "/dzi/quad/labels_files/12/0_0.jpg", "/dzi/quad/labels_files/12/a_b.png", "/dzi/quad/progress.dzi",
    "/dzi/quad/labels_files/12/0_0.png/../../../zarr.json", "/dzi/..%2f..%2fetc/passwd.dzi",
    "/dzi/quad/..%2f..%2fquad.png", "/static/..%2fapp.py", "/static/../tiles.py", "/static/%2e%2e%2fapp.py",
    "/quad.zarr/zarr.json", "/..%2fquad.png", "/api/stores/quad/pixel?x=3000&y=0", "/api/stores/quad/pixel?x=a&y=1",
    "/api/stores/quad/pixel", "/api/stores/nope/stats", "/report/quad/", "/report/..%2f..%2fetc%2fpasswd",
    "/%2e%2e/%2e%2e/etc/passwd", "/dzi/quad/labels_files/99999999999/0_0.png",
]


def test_anything_not_there_is_a_json_404(server, quad):
    before = _digest(quad.parent)
    for path in BAD:
        status, ctype, body = server.get(path)
        assert status == 404, (path, status, body[:200])
        assert ctype.startswith("application/json"), path
        doc = json.loads(body)
        assert doc["status"] == 404 and doc["error"] and "Traceback" not in doc["error"], path
    for method in ("POST", "PUT", "DELETE"):
        import urllib.request

        req = urllib.request.Request(server.url + "/api/stores", method=method, data=b"x")
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError(f"{method} accepted")
        except urllib.error.HTTPError as e:
            assert e.code in (404, 405)
    assert server.get("/api/stores")[0] == 200  # still up
    for layer in ("image", "labels", "truth", "errors", "confidence"):  # every layer, every level once
        for level in range(0, TOP + 1, 3):
            assert server.get(f"/dzi/quad/{layer}_files/{level}/0_0.{'jpg' if layer == 'image' else 'png'}")[0] == 200
    assert _digest(quad.parent) == before  # read-only: not a byte or a timestamp changed


def test_the_viewer_page_and_the_report(tmp_path, quad):
    import shutil

    store = tmp_path / "quad.zarr"
    shutil.copytree(quad, store)
    s = Server(store)
    try:
        status, ctype, body = s.get("/")
        assert status == 200 and ctype.startswith("text/html") and b"openseadragon.min.js" in body
        for name in ("openseadragon.min.js", "viewer.js", "viewer.css", "openseadragon-LICENSE.txt"):
            assert s.get(f"/static/{name}")[0] == 200, name
        assert "report_url" not in json.loads(s.get("/api/stores/quad/stats")[2])
        assert run_cli("report", store).returncode == 0  # quad-report/ beside the store: found while serving
        stats = json.loads(s.get("/api/stores/quad/stats")[2])
        assert stats["report_url"] == "/report/quad/"
        assert abs(stats["report"]["air_content"]["value"] - 100 * (W * H / 4 + 200 * 200) / (W * H * 3 / 4)) < 0.01
        status, ctype, body = s.get("/report/quad/")
        assert status == 200 and ctype.startswith("text/html") and b"Air-void" in body
    finally:
        s.stop()


def test_bad_arguments_are_one_line(tmp_path, quad):
    assert "neither a slab store nor a folder" in error_line(run_cli("serve", tmp_path))
    (tmp_path / "broken.zarr").mkdir()
    (tmp_path / "broken.zarr" / "zarr.json").write_text("{not json")
    assert "broken.zarr" in error_line(run_cli("serve", tmp_path / "broken.zarr"))
    s = Server(quad)
    try:
        port = s.url.rsplit(":", 1)[1]
        assert "cannot listen on 127.0.0.1:" + port in error_line(run_cli("serve", quad, "--port", port,
                                                                          timeout=60))
    finally:
        s.stop()


def test_a_running_infer_shows_its_progress_then_its_labels(tmp_path, slab_png):
    """A store being inferred is served while it runs: the progress layer has finished (green) and pending (grey)
    chunks, labels only where finished; when the run ends, the final labels and the errors appear."""
    store = tmp_path / "run.zarr"
    assert run_cli("ingest", slab_png, store, "--truth", slab_png.with_name("slab.truth.png"), "--chunk",
                   "128").returncode == 0
    s = Server(store)
    proc = subprocess.Popen([sys.executable, "-m", "bigseg", "infer", str(store), "--workers", "0", "--window",
                             "256", "--overlap", "32", "--batch", "1", "--stripe", "256"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        done = store / ".bigseg" / "labels-done"
        wait_until(lambda: done.is_dir() and len(list(done.iterdir())) >= 3 or proc.poll() is not None)
        assert proc.poll() is None, "finished before it could be watched"
        info = json.loads(s.get("/api/stores")[2])[0]
        assert info["running"] and "progress" in info["layers"] and "labels" in info["layers"]
        level = info["max_level"] - 3  # 8 px per tile pixel: 16 tile px per 128 px chunk
        status, _, body = s.get(f"/dzi/run/progress_files/{level}/0_0.png")
        assert status == 200, body
        tile = _png(body)
        green = (tile[..., 1] == 170).sum()
        grey = (tile[..., 0] == 120).sum()
        assert green > 0 and grey > 0, (green, grey)
        status, _, body = s.get(f"/dzi/run/labels_files/{info['max_level']}/0_0.png")
        assert status == 200, body
        labels = _png(body)
        assert (labels[..., 3] == 255).any()  # the first chunk is finished
        assert proc.wait(timeout=600) == 0, proc.stderr.read()
        info = wait_until(lambda: (i := json.loads(s.get("/api/stores")[2])[0]) and not i["running"] and i)
        assert info["layers"] == ["image", "labels", "truth", "errors", "confidence"]
        tile = _png(s.get(f"/dzi/run/labels_files/{info['max_level'] - 3}/0_0.png")[2])
        assert (tile[..., 3] == 255).all()
        g = zarr.open_group(str(store), mode="r")  # infer left the label pyramid the viewers draw from
        assert g["preview-labels/x4"].shape == (-(-1300 // 4), -(-700 // 4))
        assert (g["preview-labels/x4"][:] == pyramid.majority(g["labels"][:], 4, 3)).mean() > 0.97
    finally:
        proc.kill()
        s.stop()


def test_load_2000_tiles_from_16_clients(quad, record_property):
    """No errors under 16 concurrent clients; the service's memory stays bounded (benchmarks/serve_load.py runs
    the same against a gigapixel store and reports p95 latency and peak RSS)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from serve_load import load_test

    s = Server(quad, args=("--cache-mb", "16"))
    try:
        r = load_test(s.url, "quad", requests=2000, clients=16, pid=s.proc.pid)
    finally:
        s.stop()
    assert r["errors"] == 0 and r["ok"] == 2000, r
    assert r["peak_rss_mb"] < 600, r
    record_property("reliability", ("load", "2000 tile requests from 16 concurrent clients (all layers, all levels)",
                                    f"no error; p95 {r['p95_ms']:.0f} ms; server peak RSS {r['peak_rss_mb']:.0f} MB"))


def test_a_store_moved_away_while_served(tmp_path, quad, record_property):
    """Two stores served, one moved away: the other stays listed and viewable, the moved one answers 404 with a
    JSON reason (not a 500 that leaves the viewer with neither), and it is back when it is back."""
    import shutil

    record_property("reliability", ("fault", "serve: one of two stores moved away while served",
                                    "the other stays listed and viewable; the moved one is a JSON 404 until back"))
    a = tmp_path / "a.zarr"
    b = tmp_path / "b.zarr"
    shutil.copytree(quad, a)
    shutil.copytree(quad, b)
    s = Server(a, b)
    try:
        assert [x["id"] for x in json.loads(s.get("/api/stores")[2])] == ["a", "b"]
        b.rename(tmp_path / "elsewhere.zarr")
        status, _, body = s.get("/api/stores")
        assert status == 200 and [x["id"] for x in json.loads(body)] == ["a"]
        status, ctype, body = s.get("/api/stores/b/stats")
        assert status == 404 and ctype.startswith("application/json") and b"not available" in body
        assert s.get("/dzi/b/labels_files/12/0_0.png")[0] == 404
        assert s.get("/dzi/a/labels_files/12/0_0.png")[0] == 200
        (tmp_path / "elsewhere.zarr").rename(b)
        assert [x["id"] for x in json.loads(s.get("/api/stores")[2])] == ["a", "b"]
        assert s.get("/api/stores/b/stats")[0] == 200
    finally:
        s.stop()
