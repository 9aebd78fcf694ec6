"""The store's pyramids, in one room: the image's preview (:func:`mean_levels`, exact block means rounded to the
nearest integer) and the label pyramids (:func:`majority`), with the same factors (:func:`factors_for`) and the
same strip rule (:func:`strip_rows`).

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


def factors_for(height: int, width: int, chunk: int) -> tuple[list[int], int]:
    """(pyramid factors, strip height) for an image of ``height`` x ``width`` chunked by ``chunk``: the levels of
    the image's preview pyramid, and every other pyramid of the store (labels, truth, annotations) has the same."""
    strip = strip_rows(chunk)
    return pyramid_factors(height, width, strip), strip


def pyramid_factors(height: int, width: int, strip: int) -> list[int]:
    factors = []
    f = 4
    while f <= strip:
        factors.append(f)
        if max(height, width) / f <= PREVIEW_MAX_SIDE:
            break
        f *= 2
    return factors


def mean_levels(block: np.ndarray, factors: list[int]) -> dict[int, np.ndarray]:
    """Mean-pool ``block`` by each factor (powers of two, edges replicated to a multiple of the factor).

    Exact block means, computed as a cascade of 2 x 2 sums in uint32 (each level from the previous sums), which
    is several times faster than a mean over strided axes."""
    if not factors:
        return {}
    h, w = block.shape[:2]
    fmax = factors[-1]
    ph, pw = -h % fmax, -w % fmax
    sums = np.pad(block, [(0, ph), (0, pw), (0, 0)], mode="edge") if ph or pw else block
    out, f = {}, 1
    while f < fmax:
        quarter = sums[0::2, 0::2].astype(np.uint32)  # a quarter of the strip, 4 bytes each: 1 byte/px
        quarter += sums[1::2, 0::2]
        quarter += sums[0::2, 1::2]
        quarter += sums[1::2, 1::2]
        sums = quarter
        f *= 2
        if f in factors:
            mean = np.rint(sums[: -(-h // f), : -(-w // f)] / (f * f))
            out[f] = mean.astype(np.uint8)
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
