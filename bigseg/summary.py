"""A summary of a slab store: size, pixel size, class table, arrays and their completeness, statistics."""

from __future__ import annotations

import os

from bigseg import annotations as ann
from bigseg import store as st
from bigseg.pyramid import LABEL_PYRAMIDS


def store_summary(path: str | os.PathLike, check: bool = False, echo=None) -> dict:
    """Size, pixel size, class table, arrays (shape, chunks, completeness), statistics; with ``check`` every chunk
    of every array is read once and the damaged ones listed per array (``problems``)."""
    group = st.open_store(path)
    image = st.array(group, "image")
    arrays = {}
    names = [n for n in ("image", "truth", "labels", "probabilities", "confidence", ann.LAYER) if n in group]
    for pyramid in ("preview", *LABEL_PYRAMIDS.values(), ann.PYRAMID):  # the image's and masks' pyramids
        if pyramid in group:
            levels = sorted(st.subgroup(group, pyramid).array_keys(), key=lambda n: int(n[1:]))
            names += [f"{pyramid}/{n}" for n in levels]
    for name in names:
        a = st.open_array(path, name)
        arrays[name] = {"shape": list(a.shape), "dtype": str(a.dtype), "chunks": list(a.chunks),
                        "complete": st.is_complete(a)}
        if check:
            if echo:
                echo(f"checking {name} ...")
            arrays[name]["problems"] = st.check_chunks(a)
    return {
        "path": str(path),
        "height": image.shape[0],
        "width": image.shape[1],
        "pixel_size_um": st.pixel_size_um(group),
        "classes": [c.to_dict() for c in st.class_table(group)],
        "source": group.attrs.get("source"),
        "arrays": arrays,
        "stats": group["labels"].attrs.get("stats") if "labels" in group else None,
        "labels_made_by": made_by(group["labels"].attrs) if "labels" in group else None,
        "annotations": ann.summary(path),
        "checked": check,
    }


def made_by(attrs) -> dict | None:
    """What made the labels: the model file and its sha256, the architecture, backend, precision, window and
    overlap (None for labels without a run record, e.g. imported masks)."""
    run, model = attrs.get("run"), attrs.get("model") or {}
    if not run:
        return None
    return {"model": os.path.basename(model.get("file") or "") or None, "sha256": run.get("checkpoint_sha256"),
            "arch": run.get("arch"), "backend": run.get("backend"), "precision": run.get("precision", "fp32"),
            "window": run.get("window"), "overlap": run.get("overlap")}
