"""The store's pyramids, in one room, with one rule: **each level is made from the level below it by 2 x 2 blocks**
-- the mean rounded half up for pictures (:func:`halve_mean`), the most frequent class for masks
(:func:`majority`) -- an odd last row or column standing in for its missing partner. The image's preview
(:func:`mean_levels`), the label pyramids, and the levels of OME-Zarr and TIFF exports (``formats/levels.py`` maps
the same kernels over dask blocks) all follow it, so an export's picture level k is the preview's level 2**k pixel
for pixel. One exception, kept on purpose: a mask pyramid in the store starts with the mode of 4 x 4 blocks (the
2x level is not stored, and a mode of 2 x 2 modes breaks more ties towards the lower class, thinning voids),
where an export, which stores the 2x level, halves twice. The store's pyramids have the same factors
(:func:`factors_for`) and the same strip rule (:func:`strip_rows`): strips of whole chunk rows, and no factor that
does not divide the strip.

Label pyramids: a mask reduced by 4, 8, 16, ... (the levels the image's preview pyramid has), each pixel the most
frequent class of the block it stands for, computed a strip of chunk rows at a time (memory: one strip).

Each level is the mode of 2 x 2 (or 4 x 4, for the first) blocks of the level below: for a level of factor f it
is the mode of modes rather than the exact mode of f x f pixels, which costs one pass over the mask whatever the
number of levels. A strip is read and reduced in column blocks (:data:`COLUMNS` wide), so memory does not grow
with the image's width. Viewers (``bigseg serve``, NGFF viewers through ``bigseg export-ome``) draw from it at every
zoom without reading the full-resolution mask. ``bigseg infer`` builds the labels' pyramid during the run, a strip
as soon as its chunk rows are written (:func:`write_strip_of`); ingest builds the truth's as it reads the file.
"""

from __future__ import annotations

import math

import numpy as np

from bigseg import store as st

LABEL_PYRAMIDS = {"labels": "preview-labels", "truth": "preview-truth"}


def majority(block: np.ndarray, f: int, n_classes: int) -> np.ndarray:
    """The most frequent class of each f x f block (edges padded by replication); 255 where a block holds only
    unlabelled pixels; ties go to the lower class id.

    Votes are added from the f x f strided views of the block (f * f additions of a small array per class, in
    uint8 while f * f < 256): about 4x faster than summing a (hb, f, wb, f) view over its two small axes."""
    h, w = block.shape
    ph, pw = -h % f, -w % f
    if ph or pw:
        block = np.pad(block, [(0, ph), (0, pw)], mode="edge")
    hb, wb = block.shape[0] // f, block.shape[1] // f
    votes = np.zeros((n_classes, hb, wb), np.uint8 if f * f < 256 else np.int32)
    for c in range(n_classes):
        hits = block == c
        acc = votes[c]
        for i in range(f):
            row = hits[i::f]
            for j in range(f):
                acc += row[:, j::f]
    out = votes.argmax(axis=0).astype(np.uint8)
    out[votes.max(axis=0) == 0] = 255  # nothing but unlabelled pixels
    return out


PREVIEW_MAX_SIDE = 512
"""Pyramid levels are made down to the first whose longer side is at most this many pixels."""


def strip_rows(chunk: int) -> int:
    """The strip height a pyramid is built in: whole chunk rows, at least 1024 image rows (the largest factor)."""
    return chunk * max(1, -(-1024 // chunk))


def strip_for(chunk: int, factors: list[int]) -> int:
    """The strip height for a pyramid of these ``factors`` already in a store: :func:`strip_rows`, which every
    factor divides in stores made since the rule; for a store made before it with a chunk that is not a power of
    two, the least common multiple of the chunk and the largest factor (so that no level takes rows from two
    strips)."""
    strip, top = strip_rows(chunk), max(factors, default=1)
    return strip if strip % top == 0 else math.lcm(chunk, top)


def factors_for(height: int, width: int, chunk: int) -> tuple[list[int], int]:
    """(pyramid factors, strip height) for an image of ``height`` x ``width`` chunked by ``chunk``: the levels of
    the image's preview pyramid, and every other pyramid of the store (labels, truth, annotations) has the same."""
    strip = strip_rows(chunk)
    return pyramid_factors(height, width, strip), strip


def pyramid_factors(height: int, width: int, strip: int) -> list[int]:
    """Powers of two from 4 until the longer side is at most PREVIEW_MAX_SIDE, each dividing ``strip`` (a level's
    rows from two strips would otherwise overlap: with --chunk 1000 the strips are 2000 rows and a 32x level went
    wrong from the second strip on); a chunk that is a power of two gives every level."""
    factors = []
    f = 4
    while f <= strip and strip % f == 0:
        factors.append(f)
        if max(height, width) / f <= PREVIEW_MAX_SIDE:
            break
        f *= 2
    return factors


def halve_mean(block: np.ndarray, axis: int = 0) -> np.ndarray:
    """uint8 ``block`` halved along ``axis`` and the next axis: each pixel the mean of a 2 x 2 block rounded half
    up, an odd last row or column paired with itself (edge replication)."""
    h, w = block.shape[axis], block.shape[axis + 1]
    if h % 2 or w % 2:
        pad = [(0, 0)] * block.ndim
        pad[axis], pad[axis + 1] = (0, h % 2), (0, w % 2)
        block = np.pad(block, pad, mode="edge")
    lead = (slice(None),) * axis

    def part(i, j):
        return block[(*lead, slice(i, None, 2), slice(j, None, 2))]

    s = part(0, 0).astype(np.uint16)
    s += part(1, 0)
    s += part(0, 1)
    s += part(1, 1)
    s += 2
    s //= 4
    return s.astype(np.uint8)


def mean_levels(block: np.ndarray, factors: list[int]) -> dict[int, np.ndarray]:
    """The picture levels of a (y, x, c) strip for each factor (powers of two): :func:`halve_mean` applied
    level after level, the strip's rows a multiple of the largest factor unless it ends the image."""
    out: dict[int, np.ndarray] = {}
    level, f = block, 1
    while factors and f < factors[-1]:
        level, f = halve_mean(level), f * 2
        if f in factors:
            out[f] = level
    return out


def create_levels(group, name: str, height: int, width: int, factors: list[int]) -> dict:
    if name in group:
        del group[name]
    levels = group.create_group(name)
    out = {}
    for f in factors:
        ph, pw = -(-height // f), -(-width // f)
        out[f] = st.create_array(levels, f"x{f}", (ph, pw), (min(ph, 1024), min(pw, 1024)), ("y", "x"),
                                 attrs={"factor": f, "reduction": "mode of the level below"})
    return out


COLUMNS = 8192
"""Width (px) of the column blocks a strip is read and reduced in (rounded down to a multiple of the largest
factor): memory is bounded by 1024 x COLUMNS, not by the image's width."""


def write_strip(levels: dict, factors: list[int], y0: int, block: np.ndarray, n_classes: int, x0: int = 0) -> None:
    """The pyramid levels of one block of the mask at (y0, x0), both multiples of the largest factor (the block
    may end at the image's edges anywhere): the same levels whether a strip is reduced whole or block by block."""
    level, prev = block, 1
    for f in factors:
        level = majority(level, f // prev, n_classes)
        levels[f][y0 // f : y0 // f + level.shape[0], x0 // f : x0 // f + level.shape[1]] = level
        prev = f


def write_strip_of(store, source: str, target: str, y0: int, y1: int, factors: list[int], n_classes: int,
                   columns: int = COLUMNS) -> None:
    """Rows y0:y1 of ``store/source`` into the pyramid ``store/target`` (levels ``xF``), a column block at a time;
    y0 a multiple of the largest factor. Strips share the chunks of the coarser levels: write them one after
    another."""
    levels = {f: st.open_array(store, f"{target}/x{f}", "r+") for f in factors}
    z = st.open_array(store, source)
    top = max(factors, default=1)
    step = max(top, columns // top * top)
    for x0 in range(0, z.shape[1], step):
        block = np.asarray(st.read(z, slice(y0, y1), slice(x0, min(x0 + step, z.shape[1]))))
        write_strip(levels, factors, y0, block, n_classes, x0)


def build(store, array: str, n_classes: int) -> list[int]:
    """The pyramid of ``store/array`` into ``preview-<array>``; returns its factors."""
    group = st.open_store(store, mode="r+")
    z = st.open_array(store, array)
    h, w = z.shape
    factors, strip = factors_for(h, w, z.chunks[0])
    levels = create_levels(group, LABEL_PYRAMIDS[array], h, w, factors)
    for y0 in range(0, h, strip):
        write_strip_of(store, array, LABEL_PYRAMIDS[array], y0, min(y0 + strip, h), factors, n_classes)
    for a in levels.values():
        st.set_complete(a)
    st.consolidate(store)
    return factors
