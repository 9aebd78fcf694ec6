"""Damage named: reads that say which chunk of which array is missing or does not decode, and the check of every
chunk (``bigseg info --check``)."""

from __future__ import annotations

import itertools
import os
from typing import Any, cast

import zarr

from bigseg.errors import BigsegError
from bigseg.store.layout import ALL_CHUNKS, first_line, open_array


def chunk_file(array: zarr.Array, index: tuple[int, ...]) -> str | None:
    root = getattr(array.store_path.store, "root", None)
    if root is None:  # not a local store (s3://...): existence is not checked
        return None
    key = cast(Any, array.metadata).chunk_key_encoding.encode_chunk_key(index)
    return os.path.join(str(root), array.store_path.path, key)


def _location(array: zarr.Array) -> str:
    root = getattr(array.store_path.store, "root", None)
    if root is None:
        return str(array.store_path)
    return os.path.normpath(os.path.join(str(root), array.store_path.path))


def read(array: zarr.Array, *region: slice):
    """``array[region]`` (slices along the leading axes), with damage named: a chunk file missing from an array
    that stores every chunk, or a chunk that does not decode, is a BigsegError naming the array and the chunk."""
    chunks = array.chunks
    ranges = []
    for axis, sl in enumerate(region):
        start, stop, _ = sl.indices(array.shape[axis])
        ranges.append(range(start // chunks[axis], max(start, stop - 1) // chunks[axis] + 1))
    tail = (0,) * (array.ndim - len(region))
    indices = [(*idx, *tail) for idx in itertools.product(*ranges)]
    if array.attrs.get(ALL_CHUNKS):
        for idx in indices:
            f = chunk_file(array, idx)
            if f is not None and not os.path.exists(f):
                raise BigsegError(f"{_location(array)}: chunk {'.'.join(map(str, idx))} is missing (the store is "
                                  "damaged); 'bigseg info --check STORE' lists every bad chunk")
    try:
        return array[region]
    except Exception as exc:
        bad = next((idx for idx in indices if not _decodes(array, idx)), None)
        where = f"chunk {'.'.join(map(str, bad))}" if bad is not None else f"the chunks under {region}"
        raise BigsegError(f"{_location(array)}: {where} cannot be read ({first_line(exc)}); the store is "
                          "damaged") from exc


def _decodes(array: zarr.Array, idx: tuple[int, ...]) -> bool:
    sel = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(idx, array.chunks, array.shape, strict=True))
    try:
        array[sel]
    except Exception:
        return False
    return True


class Checked:
    """``store/name`` read through :func:`read` (damage named), shaped like an array for ``dask.array.from_array``;
    pickles as its path, so dask workers reopen it themselves."""

    def __init__(self, store, name: str):
        self.store, self.name = str(store), name
        a = open_array(self.store, name)
        self.shape, self.dtype, self.ndim, self.chunks = a.shape, a.dtype, a.ndim, a.chunks

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        return read(open_array(self.store, self.name), *key)


def dask_array(store, name: str):
    """``store/name`` as a dask array, one task per zarr chunk, every read checked for damage."""
    import dask.array as da

    c = Checked(store, name)
    return da.from_array(c, chunks=c.chunks, asarray=True, fancy=False, name=f"bigseg-{c.store}-{name}")


def check_chunks(array: zarr.Array) -> list[str]:
    """Every chunk of ``array`` read once: a line per missing or undecodable chunk (empty when all is well)."""
    problems = []
    grid = [range(-(-n // c)) for n, c in zip(array.shape, array.chunks, strict=True)]
    every = bool(array.attrs.get(ALL_CHUNKS))
    for idx in itertools.product(*grid):
        f = chunk_file(array, idx) if every else None
        if f is not None and not os.path.exists(f):
            problems.append(f"chunk {'.'.join(map(str, idx))}: missing")
        elif not _decodes(array, idx):
            problems.append(f"chunk {'.'.join(map(str, idx))}: cannot be decoded")
    return problems
