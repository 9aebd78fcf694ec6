"""Deep Zoom tiles of a slab store's layers, rendered on request from its pyramids (memory bounded whatever the
image's size).

Deep Zoom (DZI): level L holds the image scaled by 2^(L - max), max = ceil(log2(longer side)); tiles are TILE px
squares without overlap, addressed (column, row). A tile of level L covers 256 x 2^(max - L) pixels of the full
image a side; it is drawn from the finest pyramid level at least that coarse (the image's ``preview/xF``, the
masks' ``preview-labels/xF`` and ``preview-truth/xF``, or the full-resolution array) and reduced the rest of the
way (block means for the picture, the top-left pixel of each block for masks). No tile reads more than
(2 x 256)^2 pixels of any array, except where a pyramid stops short of the zoom (then a level's pixels are read
with a stride).

Layers: ``image`` (JPEG), ``labels``, ``truth`` and ``annotations`` (PNG, class colours, unlabelled / unpainted
transparent; the painted strokes from their own pyramid, so they show at every zoom, with a dark outline),
``errors`` (PNG: labels that differ from the truth, red; transparent elsewhere), ``confidence`` (PNG, a colour
scale of the model's confidence), ``progress`` (PNG: the label chunks a running ``bigseg infer`` has finished,
green, and those it has not, grey).
"""

from __future__ import annotations

import io
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bigseg import annotations as ann
from bigseg import store as st
from bigseg.errors import BigsegError
from bigseg.pyramid import LABEL_PYRAMIDS
from bigseg.store import files

TILE = 256
LAYERS = ("image", "labels", "truth", "errors", "confidence", "progress", "annotations")
FORMAT = {"image": "jpg", "labels": "png", "truth": "png", "errors": "png", "confidence": "png", "progress": "png",
          "annotations": "png"}
MASK_PYRAMIDS = {**LABEL_PYRAMIDS, "annotations": ann.PYRAMID}
"""The pyramid each mask layer is drawn from when zoomed out."""


class NotFound(Exception):
    """A store, layer, level or tile that does not exist (an HTTP 404)."""


def max_level(width: int, height: int) -> int:
    return max(0, math.ceil(math.log2(max(width, height, 1))))


def level_size(width: int, height: int, level: int) -> tuple[int, int]:
    scale = 2 ** (max_level(width, height) - level)
    return max(1, math.ceil(width / scale)), max(1, math.ceil(height / scale))


@dataclass
class Slab:
    """One store the service shows: what it has, read once (and again when the store changes)."""

    id: str
    path: Path | str  # a store on disk, or its fsspec URL (read-only there)
    width: int = 0
    height: int = 0
    pixel_size_um: float | None = None
    classes: list = field(default_factory=list)
    layers: list = field(default_factory=list)
    image_levels: list = field(default_factory=list)
    mask_levels: dict = field(default_factory=dict)
    labels_array: str | None = None
    conf_array: str | None = None
    conf_factor: int = 16
    chunk: tuple = (1024, 1024)
    stamp: float = 0.0

    def refresh(self) -> None:
        """Re-read the store's layout when it has changed (an infer finishing swaps its labels in)."""
        if st.is_url(self.path):  # object storage has no cheap change time: its layout is read again every 10 s
            stamp = float(int(time.time() // 10))
        else:
            stamp = max((p.stat().st_mtime for p in (Path(self.path) / "zarr.json", Path(self.path) / ".bigseg")
                         if p.exists()), default=0.0)
        if stamp == self.stamp and self.layers:
            return
        group = st.open_store(self.path)
        image = st.array(group, "image")
        self.height, self.width = image.shape[:2]
        self.chunk = tuple(image.chunks[:2])
        self.pixel_size_um = st.pixel_size_um(group)
        self.classes = [c.to_dict() for c in st.class_table(group)]
        self.image_levels = st.level_factors(group)
        self.mask_levels = {}
        for name, pyramid in MASK_PYRAMIDS.items():
            if pyramid in group:
                self.mask_levels[name] = sorted(int(k[1:]) for k in st.subgroup(group, pyramid).array_keys())
        layers = ["image"]
        if "labels" in group and st.is_complete(st.array(group, "labels")):
            self.labels_array = "labels"
        elif files.exists(st.join(self.path, st.staged("labels"), "zarr.json")):
            self.labels_array = st.staged("labels")  # a run in progress: the chunks it has finished
        else:
            self.labels_array = None
        if self.labels_array:
            layers.append("labels")
        if "truth" in group and st.is_complete(st.array(group, "truth")):
            layers.append("truth")
            if self.labels_array == "labels":
                layers.append("errors")
        conf = "confidence" if "confidence" in group and self.labels_array == "labels" else None
        if conf is None and files.exists(st.join(self.path, st.staged("confidence"), "zarr.json")):
            conf = st.staged("confidence")
        self.conf_array = conf
        if conf:
            self.conf_factor = int(st.attr(st.open_array(self.path, conf), "factor", 16))
            layers.append("confidence")
        if self.labels_array and self.labels_array != "labels":
            layers.append("progress")
        if ann.has_layer(self.path):
            layers.append("annotations")
        self.layers = layers
        self.stamp = stamp

    @property
    def name(self) -> str:
        """The store's folder name (the last part of its URL)."""
        return st.name_of(self.path)

    def info(self) -> dict:
        self.refresh()
        return {"id": self.id, "name": self.name, "width": self.width, "height": self.height,
                "pixel_size_um": self.pixel_size_um, "classes": self.classes, "layers": self.layers,
                "running": self.labels_array not in (None, "labels"), "max_level": max_level(self.width, self.height)}


def _colours(classes: list) -> np.ndarray:
    table = np.zeros((256, 4), np.uint8)
    for c in classes:
        table[c["id"], :3] = c["color"]
        table[c["id"], 3] = 255
    return table


def _region(slab: Slab, scale: int, col: int, row: int) -> tuple[int, int, int, int]:
    """Full-resolution bounds (y0, y1, x0, x1) of a tile at ``scale`` (full px per tile px)."""
    x0, y0 = col * TILE * scale, row * TILE * scale
    if x0 >= slab.width or y0 >= slab.height or col < 0 or row < 0:
        raise NotFound("no such tile")
    return y0, min(y0 + TILE * scale, slab.height), x0, min(x0 + TILE * scale, slab.width)


def _source(levels: list[int], scale: int) -> int:
    """The coarsest pyramid factor that is at most ``scale`` (1: the full-resolution array)."""
    usable = [f for f in levels if f <= scale]
    return max(usable) if usable else 1


def _read(store: Path | str, array: str, f: int, bounds, scale: int, picture: bool) -> np.ndarray:
    """The tile's pixels from ``array`` (a level of factor ``f``), reduced to 1 px per ``scale`` full px."""
    y0, y1, x0, x1 = bounds
    a = st.open_array(store, array)
    ry0, rx0 = y0 // f, x0 // f
    ry1, rx1 = min(-(-y1 // f), a.shape[0]), min(-(-x1 // f), a.shape[1])
    k = scale // f  # level pixels per tile pixel
    if k > 2 and not picture:  # a mask: the top-left pixel of each block, read with a stride (one chunk at a time)
        return np.asarray(a[ry0:ry1:k, rx0:rx1:k])
    if array.startswith(st.STAGED):  # a running job's staged output: chunks not written yet read as fill values
        data = np.asarray(a[ry0:ry1, rx0:rx1])
    else:
        data = np.asarray(st.read(a, slice(ry0, ry1), slice(rx0, rx1)))
    if k <= 1:
        return data
    if not picture:
        return data[::k, ::k]
    ph, pw = -data.shape[0] % k, -data.shape[1] % k  # partial blocks at the edges: replicated to whole ones
    if ph or pw:
        data = np.pad(data, [(0, ph), (0, pw)] + [(0, 0)] * (data.ndim - 2), mode="edge")
    h, w = data.shape[:2]
    blocks = data.reshape(h // k, k, w // k, k, *data.shape[2:]).mean(axis=(1, 3))
    return np.rint(blocks).astype(np.uint8)


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    if fmt == "jpg":
        Image.fromarray(pixels[..., :3]).save(buf, format="JPEG", quality=85)
    else:
        Image.fromarray(pixels).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def _mask_at(slab: Slab, name: str, scale: int, bounds) -> np.ndarray:
    array = slab.labels_array if name == "labels" else name
    assert array is not None, "the labels layer is offered only when the store has labels"
    levels = slab.mask_levels.get(name, []) if array in MASK_PYRAMIDS else []
    f = _source(levels, scale)
    pyramid = MASK_PYRAMIDS.get(name)
    return _read(slab.path, array if f == 1 else f"{pyramid}/x{f}", f, bounds, scale, picture=False)


def _done_chunks(slab: Slab) -> set:
    try:
        return {tuple(int(v) for v in n.split(".")) for n in files.names(st.join(slab.path, st.LABELS_DONE))
                if not n.endswith(".tmp")}
    except ValueError:
        return set()


VIRIDIS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], float)


def render(slab: Slab, layer: str, level: int, col: int, row: int) -> tuple[bytes, str]:
    """The tile's bytes and format; NotFound for anything that is not there."""
    slab.refresh()
    if layer not in slab.layers:
        raise NotFound(f"no layer {layer!r} in this store")
    top = max_level(slab.width, slab.height)
    if not 0 <= level <= top:
        raise NotFound(f"no level {level} (0..{top})")
    scale = 2 ** (top - level)
    bounds = _region(slab, scale, col, row)
    fmt = FORMAT[layer]
    if layer == "image":
        f = _source(slab.image_levels, scale)
        pixels = _read(slab.path, "image" if f == 1 else f"preview/x{f}", f, bounds, scale, picture=True)
        return _encode(pixels, fmt), fmt
    colours = _colours(slab.classes)
    if layer in ("labels", "truth", "annotations"):
        if layer == "labels" and slab.labels_array != "labels" and scale > 8:
            return render(slab, "progress", level, col, row)  # a running job: the grid of finished chunks
        mask = _mask_at(slab, layer, scale, bounds)
        if layer == "labels" and slab.labels_array != "labels":
            mask = _only_finished(slab, mask, bounds, scale)
        pixels = colours[mask]
        if layer == "annotations":
            pixels[_halo(mask != 255)] = (15, 15, 15, 230)  # strokes stay visible over labels of their colour
        return _encode(pixels, fmt), fmt
    if layer == "errors":
        lab, tru = _mask_at(slab, "labels", scale, bounds), _mask_at(slab, "truth", scale, bounds)
        h, w = min(lab.shape[0], tru.shape[0]), min(lab.shape[1], tru.shape[1])
        out = np.zeros((h, w, 4), np.uint8)
        wrong = (lab[:h, :w] != tru[:h, :w]) & (tru[:h, :w] != 255)
        out[wrong] = (230, 30, 30, 255)
        return _encode(out, fmt), fmt
    if layer == "confidence":
        cf = slab.conf_factor
        assert slab.conf_array is not None, "the confidence layer is offered only when the store has one"
        values = _read(slab.path, slab.conf_array, cf, bounds, max(scale, cf), picture=True).astype(float) / 255
        if scale < cf:  # finer than the confidence array: each of its pixels drawn as a block
            rep = cf // scale
            values = np.repeat(np.repeat(values, rep, axis=0), rep, axis=1)
            y0, y1, x0, x1 = bounds
            oy, ox = (y0 % cf) // scale, (x0 % cf) // scale
            values = values[oy : oy + -(-(y1 - y0) // scale), ox : ox + -(-(x1 - x0) // scale)]
        t = np.clip((values - 0.5) / 0.5, 0, 1) * (len(VIRIDIS) - 1)
        i = np.minimum(t.astype(int), len(VIRIDIS) - 2)
        rgb = VIRIDIS[i] + (VIRIDIS[i + 1] - VIRIDIS[i]) * (t - i)[..., None]
        out = np.concatenate([rgb, np.full(values.shape + (1,), 255.0)], axis=-1)
        return _encode(np.rint(out).astype(np.uint8), fmt), fmt
    # progress: the label chunks of a running job
    y0, y1, x0, x1 = bounds
    ch, cw = slab.chunk
    done = _done_chunks(slab)
    ys = np.arange(y0, y1, scale) // ch
    xs = np.arange(x0, x1, scale) // cw
    grid = np.array([[(int(a), int(b)) in done for b in xs] for a in ys], bool)
    out = np.zeros(grid.shape + (4,), np.uint8)
    out[grid] = (40, 170, 70, 120)
    out[~grid] = (120, 120, 120, 150)
    return _encode(out, "png"), "png"


def _halo(painted: np.ndarray) -> np.ndarray:
    """The unpainted pixels next to painted ones (4-neighbours): a dark outline drawn around strokes."""
    near = np.zeros_like(painted)
    near[1:] |= painted[:-1]
    near[:-1] |= painted[1:]
    near[:, 1:] |= painted[:, :-1]
    near[:, :-1] |= painted[:, 1:]
    return near & ~painted


def _only_finished(slab: Slab, mask: np.ndarray, bounds, scale: int) -> np.ndarray:
    """Pixels of unfinished chunks (a running job) made unlabelled (transparent)."""
    y0, _, x0, _ = bounds
    ch, cw = slab.chunk
    done = _done_chunks(slab)
    ys = (y0 + np.arange(mask.shape[0]) * scale) // ch
    xs = (x0 + np.arange(mask.shape[1]) * scale) // cw
    ok = np.array([[(int(a), int(b)) in done for b in xs] for a in ys], bool)
    return np.where(ok, mask, 255).astype(np.uint8)


def value_at(slab: Slab, x: int, y: int) -> dict:
    """The class of the labels (and truth) at a full-resolution pixel, and the confidence there."""
    slab.refresh()
    if not (0 <= x < slab.width and 0 <= y < slab.height):
        raise NotFound("outside the image")
    out: dict = {"x": x, "y": y}
    names = {c["id"]: c["name"] for c in slab.classes}
    for layer, array in (("labels", slab.labels_array), ("truth", "truth" if "truth" in slab.layers else None)):
        running = bool(array and array.startswith(".bigseg/"))
        if running and (y // slab.chunk[0], x // slab.chunk[1]) not in _done_chunks(slab):
            out[layer] = "not yet"  # a running job: only finished chunks have labels
            continue
        if array:
            a = st.open_array(slab.path, array)
            v = int(np.asarray(a[y, x] if array.startswith(".bigseg/") else st.read(a, slice(y, y + 1),
                                                                                  slice(x, x + 1))[0, 0]))
            out[layer] = names.get(v, "unlabelled" if v == 255 else str(v))
    if slab.conf_array:
        f = slab.conf_factor
        c = st.open_array(slab.path, slab.conf_array)
        value = c[y // f, x // f] if slab.conf_array.startswith(".bigseg/") else \
            st.read(c, slice(y // f, y // f + 1), slice(x // f, x // f + 1))[0, 0]
        if out.get("labels") != "not yet":
            out["confidence"] = round(float(np.asarray(value)) / 255, 3)
    if slab.pixel_size_um:
        out["mm"] = [round(x * slab.pixel_size_um / 1000, 3), round(y * slab.pixel_size_um / 1000, 3)]
    return out


class TileCache:
    """The most recently used tiles (bytes), up to ``max_bytes`` together; thread-safe."""

    def __init__(self, max_bytes: int = 128 * 2**20):
        self.max_bytes = max_bytes
        self.items: OrderedDict = OrderedDict()
        self.size = 0
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            hit = self.items.get(key)
            if hit is not None:
                self.items.move_to_end(key)
            return hit

    def put(self, key, value) -> None:
        with self.lock:
            if key in self.items:
                return
            self.items[key] = value
            self.size += len(value[0])
            while self.size > self.max_bytes and self.items:
                _, old = self.items.popitem(last=False)
                self.size -= len(old[0])


def slab_stamp(slab: Slab, layer: str = "") -> float:
    """A value that changes when a running job finishes chunks (tiles of running jobs are not cached) and, for the
    annotations, with every stroke (each one rewrites the layer's attributes)."""
    if layer == "annotations":
        try:
            return (Path(slab.path) / ann.LAYER / "zarr.json").stat().st_mtime_ns
        except OSError:
            return 0.0
    return time.time() if slab.labels_array not in (None, "labels") else slab.stamp


def discover(paths: list) -> dict[str, Slab]:
    """The stores to serve: each path a store, or a folder whose stores (one level down) are served."""
    found: dict[str, Slab] = {}
    for given in map(str, paths):
        if st.is_url(given):  # a store on object storage (one store per URL)
            if not st.is_store(given):
                raise BigsegError(f"{given}: no slab store there")
            candidates: list[Path | str] = [given.rstrip("/")]
        else:
            p = Path(given)
            candidates = ([p] if st.is_store(p) else sorted(q for q in p.iterdir() if st.is_store(q))
                          if p.is_dir() else [])
        if not candidates:
            raise BigsegError(f"{given}: neither a slab store nor a folder holding stores")
        for c in candidates:
            st.open_store(c)  # a clear error for a broken store, before the service starts
            name = st.name_of(c)
            base = name[:-5] if name.endswith(".zarr") else name
            key, k = base, 2
            while key in found:
                key, k = f"{base}-{k}", k + 1
            found[key] = Slab(key, c if isinstance(c, str) else c.resolve())
    return found

