"""A summary of a slab store: size, pixel size, class table, arrays and their completeness, statistics."""

from __future__ import annotations

import os

from bigseg import store as st


def store_summary(path: str | os.PathLike, check: bool = False, echo=None) -> dict:
    """Size, pixel size, class table, arrays (shape, chunks, completeness), statistics; with ``check`` every chunk
    of every array is read once and the damaged ones listed per array (``problems``)."""
    group = st.open_store(path)
    image = group["image"]
    arrays = {}
    names = [n for n in ("image", "truth", "labels", "probabilities", "confidence") if n in group]
    if "preview" in group:
        names += [f"preview/{n}" for n, _ in sorted(group["preview"].arrays())]
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
        "checked": check,
    }
