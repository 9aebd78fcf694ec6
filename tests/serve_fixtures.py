"""A store with a known layout for the viewer's tests, made by the real ingest (image, truth and their pyramids),
with labels, confidence and the label pyramid written as a finished ``bigseg infer`` leaves them.

3000 x 2000 px, pixel size 10 um. Quadrants: top-left paste (0), top-right stone (1), bottom-left void (2),
bottom-right unlabelled (255) in the truth. The labels are the truth but for a square of void at (x 500..700,
y 500..700) in the paste quadrant: the only errors. Confidence rises from 0.5 at the left edge to 1.0 at the right.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bigseg import pyramid
from bigseg import store as st
from bigseg.classes import CONCRETE
from bigseg.ingest import ingest
from bigseg.report.stats import class_statistics

W, H = 3000, 2000
WRONG = (500, 700)  # the square (x and y range) labelled void in the paste quadrant
IMAGE_COLOURS = {0: (200, 60, 60), 1: (60, 200, 60), 2: (60, 60, 200), 255: (230, 230, 230)}


def quadrants() -> np.ndarray:
    truth = np.full((H, W), 255, np.uint8)
    truth[: H // 2, : W // 2] = 0
    truth[: H // 2, W // 2 :] = 1
    truth[H // 2 :, : W // 2] = 2
    return truth


def make_quad_store(folder: Path) -> Path:
    truth = quadrants()
    rgb = np.zeros((H, W, 3), np.uint8)
    for k, c in IMAGE_COLOURS.items():
        rgb[truth == k] = c
    Image.fromarray(rgb).save(folder / "quad.png")
    Image.fromarray(truth).save(folder / "quad.truth.png")
    store = folder / "quad.zarr"
    ingest(folder / "quad.png", store, truth=folder / "quad.truth.png", pixel_size=10.0, chunk=512)
    labels = truth.copy()
    labels[WRONG[0] : WRONG[1], WRONG[0] : WRONG[1]] = 2
    group = st.open_store(store, mode="r+")
    arr = st.create_array(group, "labels", (H, W), (512, 512), ("y", "x"))
    arr[...] = labels
    conf = np.tile(np.linspace(128, 255, -(-W // 16)).astype(np.uint8), (-(-H // 16), 1))
    carr = st.create_array(group, "confidence", conf.shape, conf.shape, ("cy", "cx"), attrs={"factor": 16})
    carr[...] = conf
    for a in (arr, carr):
        st.set_complete(a)
    arr.attrs["stats"] = class_statistics(store)
    st.consolidate(store)
    pyramid.build(store, "labels", len(CONCRETE))
    return store


class Server:
    """``bigseg serve`` in a subprocess on a free port."""

    def __init__(self, *paths, args=()):
        self.proc = subprocess.Popen([sys.executable, "-m", "bigseg", "serve", *map(str, paths), "--port", "0",
                                      *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "serving" not in line:
            self.proc.kill()
            raise AssertionError(f"bigseg serve did not start: {line} {self.proc.stderr.read()}")
        self.url = line.split(" at ")[1].split()[0].rstrip("/")
        self.first_line = line

    def get(self, path: str, timeout=30):
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
                return r.status, r.headers.get("Content-Type"), r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type"), e.read()

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc.poll() is not None else ""


def wait_until(predicate, timeout=120, step=0.1):
    t0 = time.time()
    while time.time() - t0 < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out")
