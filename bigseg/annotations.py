"""The ``annotations`` layer of a slab store: strokes a person painted (or a sparse mask imported), the input of
``bigseg adapt``.

``STORE/annotations`` is (y, x) uint8 holding class ids of the store's class table, 255 where nothing is painted;
chunked like the image; sparse (a chunk never painted is not stored and reads as 255, so the array does not carry
``all_chunks_written``). Its pyramid ``STORE/preview-annotations/xF`` (the image preview's factors) holds, per
block, the most frequent painted class (255 where the block holds no painted pixel), so that strokes stay visible
in the viewer at every zoom; it is updated with every stroke, only over the stroke's box.

Attributes of the array: ``complete`` (always true: an annotation layer is valid at every moment), ``painted``
(pixels per class name), ``strokes`` (how many strokes or imports changed it), ``history`` (the last
:data:`HISTORY` changes: when, what, by which command), ``created``, ``updated``.

Writes take ``STORE/.bigseg/annotations.lock`` (an exclusive ``flock``) for the whole read-modify-write of a
stroke, so two browser tabs, or a tab and ``bigseg import annotations``, never interleave inside a chunk; zarr
writes each chunk file atomically (temporary file + rename), so a killed writer loses at most the stroke it was
writing. ``truth`` and ``labels`` are never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bigseg import pyramid
from bigseg import store as st
from bigseg.classes import IGNORE_LABEL, ClassInfo
from bigseg.errors import BigsegError
from bigseg.ingest import mask_strips
from bigseg.results import AnnotationsImportResult
from bigseg.store import files

LAYER = "annotations"
PYRAMID = "preview-annotations"
NONE = IGNORE_LABEL
HISTORY = 50
MAX_RADIUS = 512
"""Largest brush radius (image px) a stroke may have."""
MAX_POINTS = 20000
MAX_STROKE_BOX = 4096
"""Largest side (px) of the box a single stroke may cover: a stroke is one read-modify-write of that box (memory:
a few bytes per pixel of it)."""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@contextlib.contextmanager
def write_lock(store: str | os.PathLike):
    """The store's annotation lock (``flock``: released by the kernel when its holder dies, never stale)."""
    path = Path(store) / ".bigseg" / "annotations.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def has_layer(store: str | os.PathLike) -> bool:
    return files.exists(st.join(store, LAYER, "zarr.json"))


def _factors(store: str | os.PathLike, height: int, width: int, chunk: int) -> list[int]:
    """The image preview's factors (the annotations' pyramid has the same levels)."""
    return st.level_factors(st.open_store(store), "preview") or pyramid.factors_for(height, width, chunk)[0]


def _create_in(group, store, height: int, width: int, chunk: int, classes, source: str) -> None:
    """The empty layer and its pyramid in ``group`` (the store, or a staging group)."""
    arr = st.create_array(group, LAYER, (height, width), (chunk, chunk), ("y", "x"), fill_value=NONE,
                          attrs={st.ALL_CHUNKS: False, "encoding": "class ids; 255 = not annotated",
                                 "painted": {c.name: 0 for c in classes}, "strokes": 0, "history": [],
                                 "created": _now(), "updated": _now(), "created_by": source})
    if PYRAMID in group:
        del group[PYRAMID]
    levels_group = group.create_group(PYRAMID)
    levels = {}
    for f in _factors(store, height, width, chunk):
        ph, pw = -(-height // f), -(-width // f)
        levels[f] = st.create_array(levels_group, f"x{f}", (ph, pw), (min(ph, 1024), min(pw, 1024)), ("y", "x"),
                                    fill_value=NONE, attrs={st.ALL_CHUNKS: False, "factor": f,
                                                            "reduction": "most frequent painted class below"})
    for a in (arr, *levels.values()):
        st.set_complete(a)


def ensure_layer(store: str | os.PathLike, source: str = "bigseg") -> None:
    """Create an empty annotation layer (and its pyramid) in ``store`` unless it has one."""
    with write_lock(store):
        if has_layer(store):
            return
        group = st.open_store(store, mode="r+")
        image = st.array(group, "image")
        h, w = image.shape[:2]
        _create_in(group, store, h, w, int(image.chunks[0]), st.class_table(group), source)
        st.consolidate(store)


@dataclass(frozen=True)
class Stroke:
    """A brush stroke in image pixels: a polyline of ``points`` (x, y) drawn with a round brush of ``radius``;
    ``class_id`` 255 erases."""

    class_id: int
    radius: float
    points: tuple[tuple[float, float], ...]

    @classmethod
    def parse(cls, data: dict, n_classes: int) -> Stroke:
        """From JSON (the viewer's): {"class": id or 255 (eraser), "radius": px, "points": [[x, y], ...]}; a
        BigsegError names what is wrong."""
        if not isinstance(data, dict):
            raise BigsegError("a stroke is an object with class, radius and points")
        cid, radius, points = data.get("class"), data.get("radius"), data.get("points")
        if not isinstance(cid, int) or isinstance(cid, bool) or not (0 <= cid < n_classes or cid == NONE):
            raise BigsegError(f"stroke class must be a class id (0..{n_classes - 1}) or 255 (eraser), got {cid!r}")
        if not isinstance(radius, int | float) or isinstance(radius, bool) or not (
                math.isfinite(radius) and 0.5 <= radius <= MAX_RADIUS):
            raise BigsegError(f"stroke radius must be between 0.5 and {MAX_RADIUS} px, got {radius!r}")
        if not isinstance(points, list) or not 1 <= len(points) <= MAX_POINTS:
            raise BigsegError(f"a stroke has 1..{MAX_POINTS} points")
        pts = []
        for p in points:
            if (not isinstance(p, list | tuple) or len(p) != 2
                    or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in p)):
                raise BigsegError("stroke points are [x, y] pairs of finite numbers")
            pts.append((float(p[0]), float(p[1])))
        return cls(int(cid), float(radius), tuple(pts))

    def box(self, height: int, width: int) -> tuple[int, int, int, int] | None:
        """(y0, y1, x0, x1) of the pixels the stroke may cover, clipped to the image (None: entirely outside)."""
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        r = self.radius
        x0, x1 = max(0, math.floor(min(xs) - r)), min(width, math.ceil(max(xs) + r) + 1)
        y0, y1 = max(0, math.floor(min(ys) - r)), min(height, math.ceil(max(ys) + r) + 1)
        if x0 >= x1 or y0 >= y1:
            return None
        if y1 - y0 > MAX_STROKE_BOX or x1 - x0 > MAX_STROKE_BOX:
            raise BigsegError(f"a stroke may cover at most {MAX_STROKE_BOX} px a side; paint it as several")
        return y0, y1, x0, x1

    def raster(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """Bool mask over ``box`` of the pixels whose centres lie within ``radius`` of the polyline."""
        y0, y1, x0, x1 = box
        inside = np.zeros((y1 - y0, x1 - x0), bool)
        r = self.radius
        pts = self.points if len(self.points) > 1 else self.points * 2
        for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:], strict=True):
            sx0, sx1 = max(x0, math.floor(min(ax, bx) - r)), min(x1, math.ceil(max(ax, bx) + r) + 1)
            sy0, sy1 = max(y0, math.floor(min(ay, by) - r)), min(y1, math.ceil(max(ay, by) + r) + 1)
            if sx0 >= sx1 or sy0 >= sy1:
                continue
            px = np.arange(sx0, sx1, dtype=np.float64)[None, :] + 0.5
            py = np.arange(sy0, sy1, dtype=np.float64)[:, None] + 0.5
            dx, dy = bx - ax, by - ay
            length2 = dx * dx + dy * dy
            t = np.zeros((1, 1)) if length2 == 0 else np.clip(((px - ax) * dx + (py - ay) * dy) / length2, 0, 1)
            d2 = (px - (ax + t * dx)) ** 2 + (py - (ay + t * dy)) ** 2
            inside[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] |= d2 <= r * r
        return inside


@dataclass
class Change:
    """What one stroke changed, for undo: the box, the changed pixels (flat indices in the box), their values
    before and the value written."""

    box: tuple[int, int, int, int]
    where: np.ndarray
    before: np.ndarray
    value: int

    @property
    def pixels(self) -> int:
        return int(self.where.size)


def _counts(values: np.ndarray, n: int) -> np.ndarray:
    v = values[values < n]
    return np.bincount(v, minlength=n)[:n].astype(np.int64)


def _update_pyramid(store, box, n_classes: int) -> None:
    """The pyramid levels over ``box`` recomputed from the level below (the same mode of modes as a full build)."""
    y0, y1, x0, x1 = box
    factors = st.level_factors(st.open_store(store), PYRAMID)
    below, prev = st.open_array(store, LAYER), 1
    for f in factors:
        level = st.open_array(store, f"{PYRAMID}/x{f}", "r+")
        ly0, ly1 = y0 // f, min(level.shape[0], -(-y1 // f))
        lx0, lx1 = x0 // f, min(level.shape[1], -(-x1 // f))
        k = f // prev
        src = np.asarray(below[ly0 * k : min(ly1 * k, below.shape[0]), lx0 * k : min(lx1 * k, below.shape[1])])
        out = pyramid.majority(src, k, n_classes)
        level[ly0 : ly0 + out.shape[0], lx0 : lx0 + out.shape[1]] = out
        below, prev = level, f


def _record(arr, classes, delta: np.ndarray, what: str, source: str, strokes: int) -> None:
    attrs = dict(arr.attrs)
    painted = dict(attrs.get("painted") or {})
    for c in classes:
        painted[c.name] = int(painted.get(c.name, 0)) + int(delta[c.id])
    history = list(attrs.get("history") or [])[-(HISTORY - 1):] + [{"when": _now(), "what": what, "by": source}]
    arr.attrs.update({"painted": painted, "strokes": int(attrs.get("strokes", 0)) + strokes, "history": history,
                      "updated": _now()})


def _rewrite(store, box, select, what: str, source: str, strokes: int):
    """Under the lock: read ``box`` of the annotations, set the pixels ``select(flat region)`` names ((flat
    indices, new values), both empty for none), write the box back, update the pyramid over it, the painted
    counts and the history (``what`` with ``{n}`` for the pixels changed). Returns (indices, old values)."""
    classes = st.class_table(st.open_store(store))
    n = len(classes)
    arr = st.open_array(store, LAYER, "r+")
    y0, y1, x0, x1 = box
    region = np.asarray(arr[y0:y1, x0:x1])
    flat = region.ravel()
    where, values = select(flat)
    before = flat[where].copy()
    if where.size:
        flat[where] = values
        arr[y0:y1, x0:x1] = region
        _update_pyramid(store, box, n)
        _record(arr, classes, _counts(flat[where], n) - _counts(before, n), what.format(n=where.size), source,
                strokes)
    return where, before


def paint(store: str | os.PathLike, stroke: Stroke, source: str = "bigseg serve --annotate") -> Change | None:
    """Draw ``stroke`` into the store's annotations (created if missing); returns what changed (None: nothing)."""
    ensure_layer(store, source)
    with write_lock(store):
        classes = st.class_table(st.open_store(store))
        box = stroke.box(*st.open_array(store, LAYER).shape)
        if box is None:
            return None
        hit = stroke.raster(box).ravel()
        cid = stroke.class_id
        name = classes[cid].name if cid < len(classes) else "eraser"

        def select(flat):  # every pixel under the brush not already of its class (a box is at most 4096^2 px)
            return np.flatnonzero(hit & (flat != cid)).astype(np.int32), cid

        where, before = _rewrite(store, box, select, f"stroke ({name}, {{n}} px)", source, 1)
        return Change(box, where, before, cid) if where.size else None


def undo(store: str | os.PathLike, change: Change, source: str = "bigseg serve --annotate") -> int:
    """Put back what ``change`` overwrote, where its value is still there (a later stroke over it stays);
    returns the pixels restored."""

    def select(flat):
        still = flat[change.where] == change.value
        return change.where[still], change.before[still]

    with write_lock(store):
        where, _ = _rewrite(store, change.box, select, "undo ({n} px)", source, 0)
    return int(where.size)


def import_mask(store: str | os.PathLike, mask: str | os.PathLike, overwrite: bool = False,
                none_colour: tuple[int, int, int] | None = (0, 0, 0), echo=print) -> AnnotationsImportResult:
    """A sparse mask file (grey/indexed: class ids, 255 = none; RGB: the class colours, ``none_colour`` for none)
    as the store's annotations, all or nothing: written beside the store and moved in only when every strip
    decoded and passed the checks. An existing layer with painted pixels is refused unless ``overwrite``."""
    store = Path(store)
    group = st.open_store(store)
    classes = st.class_table(group)
    if has_layer(store) and not overwrite:
        painted = sum((st.attr(st.open_array(store, LAYER), "painted") or {}).values())
        if painted:
            raise BigsegError(f"{store}: already holds annotations ({painted} painted pixels); pass --overwrite to "
                              "replace them")
    colour_ids: dict[tuple[int, int, int], int] | None = None
    if none_colour is not None:
        none = (int(none_colour[0]), int(none_colour[1]), int(none_colour[2]))
        colour_ids = {c.color: c.id for c in classes}
        if none in colour_ids:
            raise BigsegError(f"--none-colour {none} is the colour of class {classes[colour_ids[none]].name}; choose "
                              "another")
        colour_ids[none] = NONE
    image = st.array(group, "image")
    h, w = image.shape[:2]
    chunk = int(image.chunks[0])

    n = len(classes)
    counts = np.zeros(n, np.int64)
    with st.staged_swap(store, (LAYER, PYRAMID), lock=write_lock(store)) as stage:
        _create_in(stage, store, h, w, chunk, classes, "bigseg import annotations")
        arr = st.array(stage, LAYER)
        factors = st.level_factors(stage, PYRAMID)
        levels = {f: st.array(stage, f"{PYRAMID}/x{f}") for f in factors}
        strip_h = pyramid.strip_for(chunk, factors)
        for y0, ids in mask_strips(mask, h, w, classes, strip_h, colour_ids, "annotation mask"):
            arr[y0 : y0 + ids.shape[0]] = ids
            pyramid.write_strip(levels, factors, y0, ids, n)
            counts += _counts(ids, n)
        if not counts.sum():
            raise BigsegError(f"{mask}: no annotated pixel (every value is 255 / the none colour)")
        _record(arr, classes, counts, f"import of {os.path.basename(str(mask))}", "bigseg import annotations", 1)
    painted = {c.name: int(counts[c.id]) for c in classes}
    echo(f"annotations of {store}: " + ", ".join(f"{k} {v} px" for k, v in painted.items()))
    return AnnotationsImportResult(str(store), str(mask), painted)


def summary(store: str | os.PathLike) -> dict | None:
    """Painted pixels per class, strokes, when (None: no annotation layer)."""
    if not has_layer(store):
        return None
    a = st.open_array(store, LAYER)
    return {"painted": dict(st.attr(a, "painted") or {}), "strokes": int(st.attr(a, "strokes", 0)),
            "created": st.attr(a, "created"), "updated": st.attr(a, "updated")}


def require(store: str | os.PathLike) -> dict:
    """The summary of a store's annotations; a BigsegError naming the store when it has none painted."""
    s = summary(store)
    if s is None or not sum(s["painted"].values()):
        raise BigsegError(f"{store}: no annotations; paint strokes with 'bigseg serve {store} --annotate' or import "
                          f"a mask with 'bigseg import annotations {store} MASK'")
    return s


def chunk_boxes(shape, chunks):
    for y0 in range(0, shape[0], chunks[0]):
        for x0 in range(0, shape[1], chunks[1]):
            yield y0, min(y0 + chunks[0], shape[0]), x0, min(x0 + chunks[1], shape[1])


def read_painted(store: str | os.PathLike):
    """Yield ((y0, x0), block) for every stored chunk of the annotations holding a painted pixel (chunks never
    painted are skipped without being read)."""
    arr = st.open_array(store, LAYER)
    for y0, y1, x0, x1 in chunk_boxes(arr.shape, arr.chunks):
        key = st.chunk_file(arr, (y0 // arr.chunks[0], x0 // arr.chunks[1]))
        if key is not None and not os.path.exists(key):
            continue
        block = np.asarray(arr[y0:y1, x0:x1])
        if (block != NONE).any():
            yield (y0, x0), block


def classes_of(store) -> tuple[ClassInfo, ...]:
    return st.class_table(st.open_store(store))
