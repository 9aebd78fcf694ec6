"""Factor-2 pyramids computed chunk by chunk with dask, by the store's rule (``bigseg.pyramid``): each level from
the one written before it (2 x 2 means for pictures, the most frequent class for masks), so an export reads the
full-resolution array once and every level about once more in all. Memory: a few chunks per thread."""

from __future__ import annotations

import math

import dask.array as da
import numpy as np

from bigseg.cluster import cpu_count
from bigseg.pyramid import halve_mean, majority

MAX_WRITER_THREADS = 8


def writer_threads(threads: int | None = None) -> int:
    """Threads that compress and write an export's chunks: ``threads`` if given, else the cores this process may run
    on (its affinity mask: taskset, a batch job's cgroup -- not the machine's count), at most
    :data:`MAX_WRITER_THREADS`."""
    return threads or max(1, min(MAX_WRITER_THREADS, cpu_count()))


def n_levels(height: int, width: int, smallest: int = 256) -> int:
    """Levels (the full resolution included) until the longer side is at most ``smallest`` px."""
    return 1 + max(0, math.ceil(math.log2(max(height, width, 1) / smallest)))


def halve_picture(level: da.Array) -> da.Array:
    """(..., y, x) uint8 -> half size by the store's rule (:func:`bigseg.pyramid.halve_mean`)."""
    axis = level.ndim - 2
    return da.map_blocks(lambda b: halve_mean(b, axis), level, chunks=_halved(level.chunks), dtype=np.uint8)


def halve_mask(level: da.Array, n_classes: int) -> da.Array:
    """(y, x) class ids -> half size, each pixel the most frequent class of its 2 x 2 block (255: all unlabelled)."""
    return da.map_blocks(lambda b: majority(b, 2, n_classes), level, chunks=_halved(level.chunks), dtype=np.uint8)


def _halved(chunks: tuple) -> tuple:
    """Block sizes after halving the last two axes (blocks of even size, the last one perhaps odd)."""
    return (*chunks[:-2], *(tuple(-(-c // 2) for c in axis) for axis in chunks[-2:]))


def even_chunks(a: da.Array, side: int) -> da.Array:
    """Rechunk the last two axes to ``side`` (even) so that every block but the last halves exactly."""
    return a.rechunk({a.ndim - 2: side, a.ndim - 1: side})
