"""Per-class area statistics by a dask reduction over the zarr labels (never loading the whole mask).

For the concrete class table (paste, stone, void) it adds the figures a lab reports: void (air) fraction,
paste fraction, stone (aggregate) fraction, stone/void ratio; with a known pixel size, areas in mm^2.
"""

from __future__ import annotations

import os

import numpy as np

from bigseg import store as st
from bigseg.classes import concrete_ids
from bigseg.cluster import compute


def _chunk_hist(block: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(block.ravel(), minlength=n)[:n].reshape(1, 1, n)


def label_counts(store: str | os.PathLike, array: str = "labels", n_bins: int = 256, client=None) -> np.ndarray:
    """Pixel count of every label value 0..n_bins-1 in ``array``: summed chunk by chunk with dask on ``client``;
    without one, a row of chunks at a time in this process (the same counts, without importing dask.array --
    most of a second of an in-process ``bigseg infer``)."""
    if client is None:
        z = st.open_array(store, array)
        counts = np.zeros(n_bins, np.int64)
        rows = z.chunks[0]
        for y0 in range(0, z.shape[0], rows):
            block = np.asarray(st.read(z, slice(y0, min(y0 + rows, z.shape[0]))))
            counts += np.bincount(block.ravel(), minlength=n_bins)[:n_bins]
        return counts

    arr = st.dask_array(store, array)
    hist = arr.map_blocks(_chunk_hist, n_bins, dtype=np.int64, new_axis=2,
                          chunks=((1,) * arr.numblocks[0], (1,) * arr.numblocks[1], (n_bins,)))
    total = hist.sum(axis=(0, 1))
    return np.asarray(compute(total, client), np.int64)


def class_statistics(store: str | os.PathLike, client=None, array: str = "labels") -> dict:
    """Counts, fractions and (with a pixel size) areas per class; concrete figures when the classes fit."""
    group = st.open_store(store)
    counts = label_counts(store, array, client=client)
    return statistics_from_counts(counts, st.class_table(group), st.pixel_size_um(group), array)


def statistics_from_counts(counts: np.ndarray, classes, px: float | None, array: str = "labels") -> dict:
    """The statistics dict of ``class_statistics`` from pixel counts per label value (index = value)."""
    counts = np.asarray(counts, np.int64)
    n = len(classes)
    labelled = int(counts[:n].sum())
    per_class = {}
    for c in classes:
        k = int(counts[c.id]) if c.id < len(counts) else 0
        entry = {"pixels": k, "fraction": k / labelled if labelled else 0.0}
        if px:
            entry["area_mm2"] = k * (px / 1000.0) ** 2
        per_class[c.name] = entry
    out = {"array": array, "pixels": labelled, "unlabelled_pixels": int(counts[n:].sum()), "classes": per_class,
           "pixel_size_um": px}
    if px:
        out["area_mm2"] = labelled * (px / 1000.0) ** 2
    if concrete_ids(classes):
        stone, void = per_class["stone"]["pixels"], per_class["void"]["pixels"]
        out["concrete"] = {
            "void_fraction": per_class["void"]["fraction"],
            "stone_fraction": per_class["stone"]["fraction"],
            "paste_fraction": per_class["paste"]["fraction"],
            "stone_void_ratio": stone / void if void else None,
        }
    return out


def format_table(stats: dict) -> str:
    """A plain-text table for the terminal."""
    has_area = stats.get("pixel_size_um") is not None
    lines = [f"{'class':12s} {'pixels':>14s} {'fraction':>9s}" + (f" {'area mm2':>12s}" if has_area else "")]
    for name, e in stats["classes"].items():
        line = f"{name:12s} {e['pixels']:14d} {e['fraction']:9.4f}"
        if has_area:
            line += f" {e['area_mm2']:12.3f}"
        lines.append(line)
    if "concrete" in stats:
        c = stats["concrete"]
        ratio = f"{c['stone_void_ratio']:.2f}" if c["stone_void_ratio"] is not None else "n/a (no voids)"
        lines.append(f"void (air) fraction {c['void_fraction']:.4f}; stone fraction {c['stone_fraction']:.4f}; "
                     f"paste fraction {c['paste_fraction']:.4f}; stone/void ratio {ratio}")
    return "\n".join(lines)
