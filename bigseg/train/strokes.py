"""A store's painted strokes as ``bigseg adapt`` trains on them: read chunk by chunk, a fifth of each class's strokes
held back (by a hash of their position, so a stroke held back once stays held back), and windows of the image and
the training labels read through a bounded cache of decoded chunks."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from bigseg import annotations as ann
from bigseg import store as st
from bigseg.classes import IGNORE_LABEL

MAX_COORDS = 400_000
"""Painted pixels kept per class and store to draw crop centres from (a uniform subsample above it)."""


@dataclass
class Strokes:
    """One store's painted pixels, split: crop centres to draw from (per class) and the held-back strokes."""

    store: str
    shape: tuple[int, int]
    train: dict[int, np.ndarray]  # class id -> (n, 2) int32 (y, x) of painted pixels used for training
    held: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # chunk origin -> flat held indices
    held_strokes: list[dict] = field(default_factory=list)  # {class, box (y0, y1, x0, x1)}
    n_strokes: dict[int, int] = field(default_factory=dict)
    painted: dict[int, int] = field(default_factory=dict)
    chunk: tuple[int, int] = (1024, 1024)
    grown: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # origin -> idx, ids


def _held_back(c: int, firsts: list[tuple[int, int]], share: float, seed: int) -> set[int]:
    """Which of a class's strokes are held back: those whose position (first pixel) and ``seed`` hash below
    ``share``, at least one of two or more and never all. A stroke's fate depends on where it is, not on which
    other strokes exist: painting more and adapting again (from the adapted model, say) never trains on a stroke
    an earlier round held back."""
    import hashlib

    u = [int.from_bytes(hashlib.blake2b(f"{seed}:{c}:{y}:{x}".encode(), digest_size=8).digest(), "big") / 2**64
         for y, x in firsts]
    held = {k for k, v in enumerate(u) if v < share}
    if len(u) >= 2 and not held:
        held = {int(np.argmin(u))}
    if len(held) == len(u) and len(u) >= 2:
        held.discard(int(np.argmax(u)))
    return held if len(u) >= 2 else set()


def read_strokes(store: str, n_classes: int, held_back: float, rng: np.random.Generator, seed: int = 0) -> Strokes:
    """The store's strokes, a share of each class's held back (see the module's docstring)."""
    from scipy import ndimage

    arr = st.open_array(store, ann.LAYER)
    out = Strokes(store, (int(arr.shape[0]), int(arr.shape[1])), {}, chunk=(int(arr.chunks[0]), int(arr.chunks[1])))
    pieces: dict[int, list] = {c: [] for c in range(n_classes)}  # class -> [(origin, block index, flat indices)]
    blocks = {}
    for (y0, x0), block in ann.read_painted(store):
        blocks[(y0, x0)] = block.shape
        for c in range(n_classes):
            mask = block == c
            if not mask.any():
                continue
            lab, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
            flat = lab.ravel()
            order = np.argsort(flat, kind="stable")
            bounds = np.searchsorted(flat[order], np.arange(1, n + 2))
            for k in range(n):
                pieces[c].append(((y0, x0), order[bounds[k] : bounds[k + 1]].astype(np.int64)))
    held_flat: dict[tuple[int, int], list] = {}
    train: dict[int, list] = {c: [] for c in range(n_classes)}
    for c, items in pieces.items():
        if not items:
            continue
        out.n_strokes[c] = len(items)
        out.painted[c] = int(sum(len(i) for _, i in items))
        coords = []
        for origin, idx in items:
            w = blocks[origin][1]
            coords.append((idx // w + origin[0], idx % w + origin[1]))
        held_ids = _held_back(c, [(int(ys[0]), int(xs[0])) for ys, xs in coords], held_back, seed)
        for k, ((origin, idx), (ys, xs)) in enumerate(zip(items, coords, strict=True)):
            if k in held_ids:
                held_flat.setdefault(origin, []).append(idx)
                out.held_strokes.append({"class": c, "box": (int(ys.min()), int(ys.max()) + 1, int(xs.min()),
                                                             int(xs.max()) + 1), "origin": origin, "idx": idx})
            else:
                train[c].append(np.stack([ys, xs], axis=1).astype(np.int32))
    for c, parts in train.items():
        if parts:
            together = np.concatenate(parts)
            if len(together) > MAX_COORDS:
                together = together[rng.choice(len(together), MAX_COORDS, replace=False)]
            out.train[c] = together
    out.held = {o: np.concatenate(v) for o, v in held_flat.items()}
    return out


class ChunkReader:
    """Windows of a store's image and (training) annotations, from a bounded cache of decoded chunks: crops
    around strokes come back to the same few chunks again and again."""

    def __init__(self, strokes: Strokes, max_bytes: int = 512 * 2**20):
        self.s = strokes
        self.image = st.open_array(strokes.store, "image")
        self.ann = st.open_array(strokes.store, ann.LAYER)
        self.cache: OrderedDict = OrderedDict()
        self.bytes = 0
        self.max_bytes = max_bytes

    def _chunk(self, name: str, cy: int, cx: int) -> np.ndarray:
        key = (name, cy, cx)
        hit = self.cache.get(key)
        if hit is not None:
            self.cache.move_to_end(key)
            return hit
        ch, cw = self.s.chunk
        h, w = self.s.shape
        ys, xs = slice(cy * ch, min((cy + 1) * ch, h)), slice(cx * cw, min((cx + 1) * cw, w))
        if name == "image":
            data = np.asarray(st.read(self.image, ys, xs))
        else:
            data = np.asarray(self.ann[ys, xs]).copy()
            held = self.s.held.get((ys.start, xs.start))
            if held is not None:
                data.ravel()[held] = IGNORE_LABEL  # held back: never seen in training
            grown = self.s.grown.get((ys.start, xs.start))
            if grown is not None:
                data.ravel()[grown[0]] = grown[1]
        self.cache[key] = data
        self.bytes += data.nbytes
        while self.bytes > self.max_bytes and len(self.cache) > 1:
            _, old = self.cache.popitem(last=False)
            self.bytes -= old.nbytes
        return data

    def window(self, name: str, y0: int, x0: int, size: int) -> np.ndarray:
        """``size`` x ``size`` from (y0, x0), padded (image 0, annotations 255) beyond the edges."""
        h, w = self.s.shape
        ch, cw = self.s.chunk
        shape = (size, size, 3) if name == "image" else (size, size)
        out = np.zeros(shape, np.uint8) if name == "image" else np.full(shape, IGNORE_LABEL, np.uint8)
        ya, yb, xa, xb = max(0, y0), min(h, y0 + size), max(0, x0), min(w, x0 + size)
        for cy in range(ya // ch, (yb - 1) // ch + 1 if yb > ya else 0):
            for cx in range(xa // cw, (xb - 1) // cw + 1 if xb > xa else 0):
                data = self._chunk(name, cy, cx)
                sy0, sy1 = max(ya, cy * ch), min(yb, (cy + 1) * ch)
                sx0, sx1 = max(xa, cx * cw), min(xb, (cx + 1) * cw)
                out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = data[sy0 - cy * ch : sy1 - cy * ch,
                                                                     sx0 - cx * cw : sx1 - cx * cw]
        return out
