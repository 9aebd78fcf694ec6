"""Factor-2 pyramids computed chunk by chunk with dask: each level from the one written before it (block means for
pictures, the most frequent class for masks), so an export reads the full-resolution array once and every level
about once more in all. Memory: a few chunks per thread."""

from __future__ import annotations

import math

import dask.array as da
import numpy as np

from bigseg.pyramid import majority


def n_levels(height: int, width: int, smallest: int = 256) -> int:
    """Levels (the full resolution included) until the longer side is at most ``smallest`` px."""
    return 1 + max(0, math.ceil(math.log2(max(height, width, 1) / smallest)))


def halve_picture(level: da.Array) -> da.Array:
    """(..., y, x) uint8 -> half size by 2 x 2 means (odd edges: the last row/column counted alone)."""
    def mean2(block):
        h, w = block.shape[-2:]
        pad = [(0, 0)] * (block.ndim - 2) + [(0, h % 2), (0, w % 2)]
        b = np.pad(block, pad, mode="edge").astype(np.uint16)
        s = b[..., 0::2, 0::2] + b[..., 1::2, 0::2] + b[..., 0::2, 1::2] + b[..., 1::2, 1::2]
        return ((s + 2) // 4).astype(np.uint8)

    return da.map_blocks(mean2, level, chunks=_halved(level.chunks), dtype=np.uint8)


def halve_mask(level: da.Array, n_classes: int) -> da.Array:
    """(y, x) class ids -> half size, each pixel the most frequent class of its 2 x 2 block (255: all unlabelled)."""
    return da.map_blocks(lambda b: majority(b, 2, n_classes), level, chunks=_halved(level.chunks), dtype=np.uint8)


def _halved(chunks: tuple) -> tuple:
    """Block sizes after halving the last two axes (blocks of even size, the last one perhaps odd)."""
    return (*chunks[:-2], *(tuple(-(-c // 2) for c in axis) for axis in chunks[-2:]))


def even_chunks(a: da.Array, side: int) -> da.Array:
    """Rechunk the last two axes to ``side`` (even) so that every block but the last halves exactly."""
    return a.rechunk({a.ndim - 2: side, a.ndim - 1: side})
