"""``bigseg export-ome``: a copy of a slab store that OME-Zarr (NGFF 0.5) viewers open -- napari's ome-zarr reader,
vizarr, Fiji's MoBIE, neuroglancer ...

Why a copy: NGFF puts channels before y and x (c, y, x) and wants factor-2 multiscales with named axes, while the
store keeps the layout its documented xarray view ``xr.open_zarr(STORE)`` has had from the start (image (y, x, band),
labels (y, x)). A copy leaves that view alone and costs one pass.

Layout of ``OUT.ome.zarr`` (zarr v3):

* ``/``: the image, ``0`` (c, y, x) at full resolution, ``1``, ``2``, ... each half the one before (2 x 2 means),
  ``ome.multiscales`` with axes c / y / x (micrometres where the pixel size is known) and the scale of each level;
  ``ome.omero`` renders the three channels as RGB;
* ``/labels/labels`` (the model's labels) and ``/labels/truth`` (the annotation), where the store has them: (y, x)
  uint8 class ids, halved by the most frequent class of each 2 x 2 block, with ``ome.image-label`` colours and class
  names (255, unlabelled, is transparent) and the image as source.
"""

from __future__ import annotations

import os
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
from bigseg.results import OmeExportResult

VERSION = "0.5"
CHUNK = 1024


def _scales(pixel_um: float | None, n: int, channel: bool) -> list[dict]:
    s = pixel_um or 1.0
    return [{"path": str(i), "coordinateTransformations": [
        {"type": "scale", "scale": ([1.0] if channel else []) + [s * 2**i, s * 2**i]}]} for i in range(n)]


def _axes(pixel_um: float | None, channel: bool) -> list[dict]:
    space = {"type": "space", **({"unit": "micrometer"} if pixel_um else {})}
    return ([{"name": "c", "type": "channel"}] if channel else []) + [{"name": "y", **space}, {"name": "x", **space}]


def _write_levels(group: zarr.Group, full: da.Array, n: int, halve, threads: int) -> None:
    """``full`` and its n - 1 halvings as arrays "0".."n-1" of ``group``, each computed from the level written."""
    level = lv.even_chunks(full, CHUNK)
    for i in range(n):
        chunks = (*level.shape[:-2], min(CHUNK, level.shape[-2]), min(CHUNK, level.shape[-1]))
        target = group.create_array(str(i), shape=level.shape, chunks=chunks,
                                    dtype=np.uint8, fill_value=0, compressors=st.compressor(),
                                    dimension_names=("c", "y", "x")[-level.ndim:])
        with dask.config.set(scheduler="threads", num_workers=threads):
            da.store(level.rechunk(target.chunks), cast(Any, target), lock=False)  # one writer per zarr chunk
        level = halve(da.from_zarr(target))


def export_ome(store: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False,
               threads: int | None = None, echo=print) -> OmeExportResult:
    """Write ``store``'s image (and labels, truth) as an OME-Zarr 0.5 image at ``out``; returns a summary."""
    store, out = Path(store), Path(out)
    group = st.open_store(store)
    refuse_overlap(out, "-o/--out", ("store", store))
    image = st.array(group, "image")
    if not st.is_complete(image):
        raise BigsegError(f"{store}: the image is incomplete (ingest did not finish); ingest it again")
    height, width = image.shape[:2]
    classes = st.class_table(group)
    pixel_um = st.pixel_size_um(group)
    n = lv.n_levels(height, width)
    masks = [name for name in ("labels", "truth") if name in group and st.is_complete(st.array(group, name))]
    threads = lv.writer_threads(threads)
    with st.staged_output(out, overwrite) as tmp:
        root = zarr.open_group(tmp, mode="w", zarr_format=3)
        echo(f"image: {n} levels from {width}x{height} px")
        _write_levels(root, st.dask_array(store, "image").transpose(2, 0, 1), n, lv.halve_picture, threads)
        root.attrs["ome"] = {"version": VERSION, "multiscales": [{
            "name": store.name, "axes": _axes(pixel_um, True), "datasets": _scales(pixel_um, n, True),
            "type": "2x2 mean", "metadata": {"source": str(store.resolve())}}],
            "omero": {"version": VERSION, "name": store.name, "rdefs": {"model": "color"}, "channels": [
                {"label": c, "color": colour, "active": True, "coefficient": 1, "family": "linear", "inverted": False,
                 "window": {"start": 0, "end": 255, "min": 0, "max": 255}}
                for c, colour in (("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF"))]}}
        if masks:
            labels = root.create_group("labels")
            labels.attrs["ome"] = {"version": VERSION, "labels": masks}
            for name in masks:
                echo(f"{name}: {n} levels")
                g = labels.create_group(name)
                _write_levels(g, st.dask_array(store, name), n, lambda a: lv.halve_mask(a, len(classes)), threads)
                g.attrs["ome"] = {"version": VERSION, "multiscales": [{
                    "name": name, "axes": _axes(pixel_um, False), "datasets": _scales(pixel_um, n, False),
                    "type": "2x2 mode"}],
                    "image-label": {
                        "version": VERSION,
                        "colors": [{"label-value": c.id, "rgba": [*c.color, 255]} for c in classes]
                                  + [{"label-value": 255, "rgba": [0, 0, 0, 0]}],
                        "properties": [{"label-value": c.id, "class": c.name} for c in classes]
                                      + [{"label-value": 255, "class": "unlabelled"}],
                        "source": {"image": "../../"}}}
    echo(f"wrote {out} (OME-Zarr {VERSION}: image" + "".join(f", {m}" for m in masks) + f"; {n} levels)")
    return OmeExportResult(str(out), n, width, height, masks, VERSION)
