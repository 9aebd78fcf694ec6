"""``bigseg export-tiff``: one layer of a store as a tiled, pyramidal, deflate-compressed (Big)TIFF for GIS, QuPath,
ImageJ/Fiji and OpenSlide-style readers.

Layout: page 0 the full resolution, then one page per factor-2 reduction (NewSubfileType "reduced resolution", the
layout GDAL reads as overviews and libvips/QuPath read as a pyramid), 512 px tiles, the pixel size as the TIFF
resolution (pixels per cm). ``labels`` and ``truth`` are palette images (the class colours, so any viewer shows them
in colour; values are class ids, 255 unlabelled) halved by the most frequent class; ``image`` is RGB halved by 2 x 2
means; ``probabilities`` one 8-bit sample per class (probability x 255) in the class order of the store.

Written with tifffile from the store's chunks: memory is a row of tiles of one chunk's width at a time, never the
whole layer. The reduced levels go through a temporary zarr beside the output (about a third of the layer's
compressed size on disk) so that each level is computed from the one before. pyvips could write the same file, but
only from a decodable source of the whole raster (a temporary uncompressed copy) and averaging labels unless told
otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, cast

import dask
import dask.array as da
import numpy as np
import zarr

from bigseg import store as st
from bigseg.errors import BigsegError
from bigseg.formats import levels as lv
from bigseg.paths import refuse_overlap
from bigseg.results import TiffExportResult

TILE = 512
LAYERS = ("labels", "image", "truth", "probabilities")


def _tiles(a, tile: int, chunk_w: int):
    """The tiles of array ``a`` ((y, x) or (y, x, s)) in TIFF order, read a row of tiles one chunk-wide segment at a
    time (each chunk is decoded tile/chunk-height times; memory one segment)."""
    h, w = a.shape[:2]
    seg = max(tile, chunk_w // tile * tile)
    for y0 in range(0, h, tile):
        for xs in range(0, w, seg):
            block = np.asarray(a[y0 : y0 + tile, xs : xs + seg])
            for x0 in range(0, block.shape[1], tile):
                t = block[:, x0 : x0 + tile]
                if t.shape[0] < tile or t.shape[1] < tile:
                    pad = [(0, tile - t.shape[0]), (0, tile - t.shape[1])] + [(0, 0)] * (t.ndim - 2)
                    t = np.pad(t, pad)
                yield np.ascontiguousarray(t)


class _Yx:
    """A (class, y, x) zarr array seen as (y, x, class) for reading regions."""

    def __init__(self, a):
        self.a = a
        self.shape = (a.shape[1], a.shape[2], a.shape[0])

    def __getitem__(self, key):
        ys, xs = key
        return np.moveaxis(np.asarray(self.a[:, ys, xs]), 0, -1)


def export_tiff(store: str | os.PathLike, out: str | os.PathLike, *, layer: str = "labels", overwrite: bool = False,
                threads: int | None = None, echo=print) -> TiffExportResult:
    """Write ``layer`` of ``store`` to the TIFF ``out``; returns a summary (path, levels, shape)."""
    import tifffile

    store, out = Path(store), Path(out)
    if layer not in LAYERS:
        raise BigsegError(f"--layer must be one of {', '.join(LAYERS)}, not {layer!r}")
    group = st.open_store(store)
    refuse_overlap(out, "-o/--out", ("store", store))
    if out.exists() and not overwrite:
        raise BigsegError(f"{out} exists; pass --overwrite to replace it")
    if out.is_dir():
        raise BigsegError(f"{out} is a folder")
    if not out.parent.is_dir():
        raise BigsegError(f"{out.parent}: output folder does not exist")
    st.remove_stale_partials(out.parent, out.name, ("partial", "levels"))  # what an export killed with -9 left
    if layer not in group:
        hint = {"labels": "run bigseg infer first", "probabilities": "run bigseg infer --probabilities",
                "truth": "ingest with --truth"}.get(layer, "")
        raise BigsegError(f"{store}: has no {layer}" + (f" ({hint})" if hint else ""))
    src = st.array(group, layer)
    if not st.is_complete(src):
        raise BigsegError(f"{store}: its {layer} are incomplete (a run did not finish); finish it first")
    classes = st.class_table(group)
    pixel_um = st.pixel_size_um(group)
    if layer == "probabilities":
        full = st.dask_array(store, layer).transpose(1, 2, 0)
        view: Any = _Yx(src)
    else:
        full = st.dask_array(store, layer)
        view = src
    height, width = full.shape[:2]
    n = lv.n_levels(height, width, smallest=TILE)
    threads = lv.writer_threads(threads)
    mask = layer in ("labels", "truth")
    kwargs: dict = {"tile": (TILE, TILE), "compression": "zlib", "compressionargs": {"level": 6},
                    "metadata": None}
    if mask:
        cmap = np.zeros((3, 256), np.uint16)
        for c in classes:
            cmap[:, c.id] = np.array(c.color, np.uint16) * 257
        kwargs.update(photometric="palette", colormap=cmap)
    elif layer == "image":
        kwargs.update(photometric="rgb", predictor=True)
    else:
        kwargs.update(photometric="minisblack", planarconfig="contig")
    if pixel_um:
        kwargs.update(resolution=(1e4 / pixel_um, 1e4 / pixel_um), resolutionunit="CENTIMETER")
    description = json.dumps({"bigseg": {"store": str(store.resolve()), "layer": layer, "pixel_size_um": pixel_um,
                                         "classes": [c.to_dict() for c in classes], "unlabelled": 255 if mask else None,
                                         "levels": n}})
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    levels_dir = out.with_name(f".{out.name}.levels-{os.getpid()}")
    chunk_w = src.chunks[-1]
    try:
        with st.output_lock(out):
            echo(f"{layer}: {n} levels from {width}x{height} px")
            group_levels = zarr.open_group(levels_dir, mode="w", zarr_format=3)
            level = full.rechunk({0: 1024, 1: 1024})  # even blocks: each halves exactly
            halve = (lambda a: lv.halve_mask(a, len(classes))) if mask else lv.halve_picture
            arrays: list = [view]
            for i in range(1, n):
                level = halve(level.transpose(2, 0, 1)).transpose(1, 2, 0) if level.ndim == 3 else halve(level)
                target = group_levels.create_array(str(i), shape=level.shape,
                                                   chunks=(min(1024, level.shape[0]), min(1024, level.shape[1]),
                                                           *level.shape[2:]),
                                                   dtype=np.uint8, fill_value=0, compressors=st.compressor())
                with dask.config.set(scheduler="threads", num_workers=threads):  # one writer per zarr chunk
                    da.store(level.rechunk(target.chunks), cast(Any, target), lock=False)
                arrays.append(target)
                level = da.from_zarr(target)
            with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
                for i, a in enumerate(arrays):
                    shape = a.shape
                    tif.write(_tiles(a, TILE, chunk_w if i == 0 else 1024), shape=shape, dtype=np.uint8,
                              subfiletype=1 if i else 0, description=description if i == 0 else None, **kwargs)
            os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(levels_dir, ignore_errors=True)
    echo(f"wrote {out} ({layer}, {n} levels, {out.stat().st_size / 1e6:.2f} MB)")
    return TiffExportResult(str(out), layer, n, width, height)
