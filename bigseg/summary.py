"""A summary of a slab store: size, pixel size, class table, arrays and their completeness, statistics."""

from __future__ import annotations

import os

from bigseg import store as st


def store_summary(path: str | os.PathLike) -> dict:
    group = st.open_store(path)
    image = group["image"]
    arrays = {}
    for name in ("image", "truth", "labels", "probabilities"):
        if name in group:
            a = group[name]
            arrays[name] = {"shape": list(a.shape), "dtype": str(a.dtype), "chunks": list(a.chunks),
                            "complete": st.is_complete(a)}
    if "preview" in group:
        for name, a in sorted(group["preview"].arrays()):
            arrays[f"preview/{name}"] = {"shape": list(a.shape), "dtype": str(a.dtype), "chunks": list(a.chunks),
                                         "complete": st.is_complete(a)}
    return {
        "path": str(path),
        "height": image.shape[0],
        "width": image.shape[1],
        "pixel_size_um": st.pixel_size_um(group),
        "classes": [c.to_dict() for c in st.class_table(group)],
        "source": group.attrs.get("source"),
        "arrays": arrays,
        "stats": group["labels"].attrs.get("stats") if "labels" in group else None,
    }
