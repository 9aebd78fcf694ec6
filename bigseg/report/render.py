"""Pictures for people: the quicklook (image + mask overlay + legend) and histograms, as PNG bytes.

The quicklook is drawn at preview scale from the store's preview pyramid; the mask is reduced to the same scale
by a majority vote over each f x f block, chunk by chunk with dask (the full mask is never in memory).
"""

from __future__ import annotations

import io

import numpy as np

from bigseg import store as st

QUICKLOOK_MAX_SIDE = 2000
"""Longest side (px) of the quicklook: the finest preview level that fits, or the image itself when it fits."""

OVERLAY_ALPHA = 0.45


def _figure(width_in: float, height_in: float):
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    return Figure(figsize=(width_in, height_in))


def _png(fig, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _majority(block: np.ndarray, f: int, n_classes: int) -> np.ndarray:
    h, w = block.shape
    ph, pw = -h % f, -w % f
    if ph or pw:
        block = np.pad(block, [(0, ph), (0, pw)], mode="edge")
    hb, wb = block.shape[0] // f, block.shape[1] // f
    tiles = block.reshape(hb, f, wb, f)
    votes = np.stack([(tiles == c).sum(axis=(1, 3), dtype=np.int32) for c in range(n_classes)])
    out = votes.argmax(axis=0).astype(np.uint8)
    out[votes.max(axis=0) == 0] = 255  # nothing but unlabelled pixels
    return out


def downsampled_mask(store, array: str, f: int, n_classes: int, threads: int = 2) -> np.ndarray:
    """``array`` reduced by ``f`` (majority class of each f x f block), shape ceil(H/f) x ceil(W/f).

    Read one chunk-aligned block at a time (``threads`` at once); only the reduced mask is kept."""
    from concurrent.futures import ThreadPoolExecutor

    z = st.open_array(store, array)
    h, w = z.shape
    if f == 1:
        return np.asarray(st.read(z, slice(0, h)))  # the small-image path: at most QUICKLOOK_MAX_SIDE a side
    bh, bw = (-(-c // f) * f for c in z.chunks)  # blocks: whole chunks, a multiple of f
    out = np.empty((-(-h // f), -(-w // f)), np.uint8)

    def reduce(pos):
        y0, x0 = pos
        out[y0 // f: -(-min(y0 + bh, h) // f), x0 // f: -(-min(x0 + bw, w) // f)] = _majority(
            np.asarray(st.read(z, slice(y0, y0 + bh), slice(x0, x0 + bw))), f, n_classes)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(reduce, [(y, x) for y in range(0, h, bh) for x in range(0, w, bw)]))
    return out


def quicklook_scale(group) -> int:
    """The reduction factor of the quicklook: 1 for images that fit, else the finest preview level that fits."""
    h, w = group["image"].shape[:2]
    if max(h, w) <= QUICKLOOK_MAX_SIDE:
        return 1
    levels = sorted(int(k[1:]) for k in group["preview"].array_keys()) if "preview" in group else []
    for f in levels:
        if max(h, w) / f <= QUICKLOOK_MAX_SIDE:
            return f
    return levels[-1] if levels else 1


def _legend_rgba(classes, fractions: dict[str, float] | None, title: str) -> np.ndarray:
    """A small legend (class colour, name, area fraction) as an RGBA array, drawn by matplotlib."""
    from matplotlib.patches import Patch

    handles = []
    for c in classes:
        label = c.name if not fractions or c.name not in fractions else f"{c.name} {100 * fractions[c.name]:.2f} %"
        handles.append(Patch(facecolor=np.array(c.color) / 255.0, edgecolor="black", label=label))
    fig = _figure(2.4, 0.45 + 0.24 * len(classes))
    fig.legend(handles=handles, loc="center", fontsize=9, framealpha=0.9, title=title, title_fontsize=9)
    fig.patch.set_alpha(0.0)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", pad_inches=0.02, transparent=True)
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGBA"))


def quicklook_png(store, array: str = "labels", fractions: dict[str, float] | None = None) -> bytes:
    """The image at preview scale with ``array`` overlaid in the class colours, and a legend (upper right).

    Integer blending on the preview-sized arrays only (a few bytes per quicklook pixel)."""
    from PIL import Image

    group = st.open_store(store)
    classes = st.class_table(group)
    f = quicklook_scale(group)
    image = np.asarray(group["image"][:] if f == 1 else group[f"preview/x{f}"][:])
    mask = downsampled_mask(store, array, f, len(classes))[: image.shape[0], : image.shape[1]]
    colours = np.zeros((256, 3), np.uint16)
    alpha = np.zeros(256, np.uint16)  # in 1/256; unlabelled values keep the image
    for c in classes:
        colours[c.id] = c.color
        alpha[c.id] = round(OVERLAY_ALPHA * 256)
    a = alpha[mask][..., None]
    overlay = ((image * (256 - a) + colours[mask] * a) >> 8).astype(np.uint8)
    del a

    legend = Image.fromarray(_legend_rgba(classes, fractions, f"{array} (1:{f})" if f > 1 else array))
    h, w = overlay.shape[:2]
    if legend.width > w // 2 or legend.height > h - 8:  # small images: shrink the legend to fit
        legend.thumbnail((max(w // 2, 16), max(h - 8, 16)))
    picture = Image.fromarray(overlay)
    picture.paste(legend, (w - legend.width - 4, 4), legend)
    buf = io.BytesIO()
    picture.save(buf, format="png")
    return buf.getvalue()


def histogram_png(series: dict[str, list[dict]], title: str, xlabel: str) -> bytes:
    """Grouped bar chart of one or more histograms sharing classes (``{"from_um", "to_um", "count"}`` rows)."""
    names = list(series)
    first = series[names[0]]
    labels = [f"{r['from_um']:g}-{r['to_um']:g}" if r["to_um"] is not None else f">{r['from_um']:g}" for r in first]
    x = np.arange(len(labels))
    fig = _figure(9, 3.8)
    ax = fig.add_axes((0.08, 0.25, 0.9, 0.65))
    width = 0.8 / len(names)
    colours = ["#1f5fbf", "#d98c1a", "#555555"]
    for i, name in enumerate(names):
        counts = [r["count"] for r in series[name]]
        ax.bar(x + (i - (len(names) - 1) / 2) * width, counts, width, label=name, color=colours[i % len(colours)])
    ax.set_xticks(x, labels, rotation=60, fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    if len(names) > 1:
        ax.legend()
    return _png(fig)
