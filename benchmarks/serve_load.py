"""Load test of ``bigseg serve``: N tile requests (every layer, random levels and tiles) from C concurrent clients;
latency percentiles, errors and the server's peak RSS.

    python benchmarks/serve_load.py                 # builds a 1.2-gigapixel store (40000 x 30000) in benchmarks/out
    python benchmarks/serve_load.py --store S.zarr  # an existing store

Writes benchmarks/out/serve_load.json; the RESULTS.md row comes from it. tests/test_serve.py runs load_test() on
its small store (no errors, bounded memory) in the default suite.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def _tiles(info: dict, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    w, h, top = info["width"], info["height"], info["max_level"]
    layers = [lay for lay in info["layers"] if lay != "progress"]
    out = []
    for _ in range(n):
        layer = rng.choice(layers)
        level = rng.randint(max(0, top - 10), top)  # the levels a viewer asks for (coarsest ones are single tiles)
        scale = 2 ** (top - level)
        cols, rows = -(-w // scale // 256) or 1, -(-h // scale // 256) or 1
        ext = "jpg" if layer == "image" else "png"
        out.append(f"/dzi/{info['id']}/{layer}_files/{level}/{rng.randrange(cols)}_{rng.randrange(rows)}.{ext}")
    return out


def load_test(url: str, store_id: str, requests: int = 2000, clients: int = 16, pid: int | None = None,
              seed: int = 0) -> dict:
    import psutil

    with urllib.request.urlopen(f"{url}/api/stores", timeout=30) as r:
        info = next(s for s in json.loads(r.read()) if s["id"] == store_id)
    paths = _tiles(info, requests, seed)
    peak = [0.0]
    stop = threading.Event()

    def watch():
        proc = psutil.Process(pid) if pid else None
        while proc and not stop.is_set():
            try:
                peak[0] = max(peak[0], proc.memory_info().rss / 2**20)
            except psutil.Error:
                return
            time.sleep(0.02)

    def fetch(path: str):
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(url + path, timeout=120) as r:
                r.read()
                ok = r.status == 200
        except (urllib.error.URLError, OSError):
            ok = False
        return ok, time.perf_counter() - t0

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(fetch, paths))
    wall = time.perf_counter() - t0
    stop.set()
    watcher.join()
    lat = np.array([t for _, t in results]) * 1000
    ok = sum(1 for good, _ in results if good)
    return {"requests": requests, "clients": clients, "ok": ok, "errors": requests - ok,
            "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
            "max_ms": float(lat.max()), "tiles_per_s": requests / wall, "peak_rss_mb": peak[0],
            "store": {k: info[k] for k in ("width", "height", "layers")}}


def build_large_store(out: Path, width: int, height: int) -> Path:
    """A gigapixel store the way users get one: a synthetic slab tiled by libvips into a big JPEG (and its truth
    PNG), ``bigseg ingest``; labels = the truth with every 7th chunk row shifted (errors to show), label pyramid."""
    import pyvips

    from bigseg import pyramid
    from bigseg import store as st
    from bigseg.classes import CONCRETE
    from bigseg.synth import SynthParams, synthesize

    out.mkdir(parents=True, exist_ok=True)
    store = out / f"large-{width}x{height}.zarr"
    if st.is_store(store) and "preview-labels" in st.open_store(store):
        return store
    synthesize(out / "tile.png", SynthParams(4000, 3000, seed=11))
    img, truth = pyvips.Image.new_from_file(str(out / "tile.png")), pyvips.Image.new_from_file(
        str(out / "tile.truth.png"))
    nx, ny = -(-width // 4000), -(-height // 3000)
    img.replicate(nx, ny).crop(0, 0, width, height).write_to_file(str(out / "large.jpg"), Q=90)
    truth.replicate(nx, ny).crop(0, 0, width, height).write_to_file(str(out / "large.truth.png"))
    subprocess.run([sys.executable, "-m", "bigseg", "ingest", str(out / "large.jpg"), str(store), "--truth",
                    str(out / "large.truth.png"), "--overwrite"], check=True)
    group = st.open_store(store, mode="r+")
    t = st.array(group, "truth")
    labels = st.create_array(group, "labels", t.shape, t.chunks, ("y", "x"))
    ch = t.chunks[0]
    for y0 in range(0, height, ch):
        block = np.asarray(t[y0 : y0 + ch])
        if (y0 // ch) % 7 == 3:
            block = np.roll(block, 5, axis=1)
        labels[y0 : y0 + ch] = block
    st.set_complete(labels)
    st.consolidate(store)
    pyramid.build(store, "labels", len(CONCRETE))
    return store


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path)
    ap.add_argument("--size", default="40000x30000")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    a = ap.parse_args()
    w, h = map(int, a.size.split("x"))
    store = a.store or build_large_store(a.out, w, h)
    proc = subprocess.Popen([sys.executable, "-m", "bigseg", "serve", str(store), "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split(" at ")[1].split()[0].rstrip("/")
        key = store.name[:-5] if store.name.endswith(".zarr") else store.name
        cold = load_test(url, key, a.requests, a.clients, proc.pid, seed=1)
        warm = load_test(url, key, a.requests, a.clients, proc.pid, seed=1)  # the same tiles again: the cache
    finally:
        proc.terminate()
        proc.wait()
    result = {"store": str(store), "cold": cold, "warm": warm}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "serve_load.json").write_text(json.dumps(result, indent=2))
    for name, r in (("cold", cold), ("warm", warm)):
        print(f"{name}: {r['ok']}/{r['requests']} ok from {r['clients']} clients; p50 {r['p50_ms']:.0f} ms, "
              f"p95 {r['p95_ms']:.0f} ms, max {r['max_ms']:.0f} ms; {r['tiles_per_s']:.0f} tiles/s; "
              f"server peak RSS {r['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
