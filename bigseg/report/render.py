"""Pictures for people: the quicklook (image + mask overlay + legend) and histograms, as PNG bytes.

The quicklook is drawn at preview scale from the store's preview pyramid; the mask is reduced to the same scale
by a majority vote over each f x f block, chunk by chunk with dask (the full mask is never in memory).
"""

from __future__ import annotations

import io

import numpy as np

from bigseg import store as st
from bigseg.classes import concrete_ids
from bigseg.pyramid import majority

QUICKLOOK_MAX_SIDE = 2000
"""Longest side (px) of the quicklook at most (the scale is a power of two)."""

OVERLAY_ALPHA = 0.45


def _figure(width_in: float, height_in: float):
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    return Figure(figsize=(width_in, height_in))


def _png(fig, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


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
        out[y0 // f: -(-min(y0 + bh, h) // f), x0 // f: -(-min(x0 + bw, w) // f)] = majority(
            np.asarray(st.read(z, slice(y0, y0 + bh), slice(x0, x0 + bw))), f, n_classes)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(reduce, [(y, x) for y in range(0, h, bh) for x in range(0, w, bw)]))
    return out


QUICKLOOK_SMALL_PX = 16_000_000
"""Images up to this many pixels are drawn from the image itself (the small-image path: 48 MB of RGB at most);
larger ones from the preview pyramid."""


def quicklook_scale(group) -> int:
    """The reduction factor of the quicklook: the smallest power of two that brings the longer side to at most
    QUICKLOOK_MAX_SIDE (1 or 2 from the image itself, for images of at most QUICKLOOK_SMALL_PX; from 4 on, the
    preview pyramid's levels)."""
    h, w = group["image"].shape[:2]
    f = 1
    while max(h, w) / f > QUICKLOOK_MAX_SIDE:
        f *= 2
    if f <= 2 and h * w <= QUICKLOOK_SMALL_PX:
        return f
    levels = st.level_factors(group)
    for level in levels:
        if level >= f:
            return level
    return levels[-1] if levels else f


def _picture(group, f: int) -> np.ndarray:
    """The image reduced by ``f`` (block means): from the image for f <= 2, else the preview level."""
    if f == 1:
        return np.asarray(group["image"][:])
    if f == 2:
        img = np.asarray(group["image"][:]).astype(np.uint16)
        h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
        mean = (img[:h:2, :w:2] + img[1:h:2, :w:2] + img[:h:2, 1:w:2] + img[1:h:2, 1:w:2] + 2) // 4
        return mean.astype(np.uint8)
    return np.asarray(group[f"preview/x{f}"][:])


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it."""
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


VOID_FILL = (40, 110, 255)
STONE_LINE = (255, 214, 0)
REGION_LINE = (230, 40, 40)


def overlay(image: np.ndarray, mask: np.ndarray, ids: dict | None, classes, region: np.ndarray | None = None,
            alpha: float = 0.7) -> np.ndarray:
    """The picture with the mask drawn so that the rock stays readable: voids filled (blue), stones outlined
    (yellow), paste untouched; other class tables tinted in their colours. The region's edge in red."""
    out = image.astype(np.float32).copy()
    if ids is not None:
        void = mask == ids["void"]
        out[void] = (1 - alpha) * out[void] + alpha * np.array(VOID_FILL, np.float32)
        out[_outline(mask == ids["stone"])] = STONE_LINE
    else:
        for c in classes:
            sel = mask == c.id
            out[sel] = (1 - OVERLAY_ALPHA) * out[sel] + OVERLAY_ALPHA * np.array(c.color, np.float32)
    if region is not None:
        out[_outline(region.astype(bool))] = REGION_LINE
    return np.clip(out, 0, 255).astype(np.uint8)


def _with_legend(picture: np.ndarray, legend_rgba: np.ndarray) -> bytes:
    from PIL import Image

    pic = Image.fromarray(picture)
    legend = Image.fromarray(legend_rgba)
    h, w = picture.shape[:2]
    if legend.width > w // 2 or legend.height > h - 8:  # small images: shrink the legend to fit
        legend.thumbnail((max(w // 2, 16), max(h - 8, 16)))
    pic.paste(legend, (w - legend.width - 4, 4), legend)
    buf = io.BytesIO()
    pic.save(buf, format="png")
    return buf.getvalue()


def _rgb01(color) -> tuple[float, float, float]:
    r, g, b = (float(v) / 255.0 for v in color)
    return r, g, b


def _legend_entries(handles_spec, title: str) -> np.ndarray:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from PIL import Image

    handles = [Patch(facecolor=_rgb01(c), edgecolor="black", label=t) if kind == "fill" else
               Line2D([0], [0], color=_rgb01(c), lw=2.5, label=t) for kind, c, t in handles_spec]
    fig = _figure(2.8, 0.45 + 0.24 * len(handles))
    fig.legend(handles=handles, loc="center", fontsize=9, framealpha=0.92, title=title, title_fontsize=9)
    fig.patch.set_alpha(0.0)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", pad_inches=0.02, transparent=True)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGBA"))


def quicklook_png(store, array: str = "labels", fractions: dict[str, float] | None = None) -> bytes:
    """The picture at quicklook scale with ``array`` drawn over it (see :func:`overlay`), and a legend."""
    group = st.open_store(store)
    classes = st.class_table(group)
    ids = concrete_ids(classes)
    f = quicklook_scale(group)
    image = _picture(group, f)
    mask = downsampled_mask(store, array, f, len(classes))[: image.shape[0], : image.shape[1]]
    region = downsampled_mask(store, "region", f, 2)[: image.shape[0], : image.shape[1]] if "region" in group \
        else None
    picture = overlay(image, mask, ids, classes, region)

    def pct(name):
        return f" {100 * fractions[name]:.2f} %" if fractions and name in fractions else ""

    if ids:
        spec = [("fill", VOID_FILL, "void" + pct("void")), ("line", STONE_LINE, "stone edge" + pct("stone")),
                ("fill", (200, 200, 200), "paste (as it is)" + pct("paste"))]
        if region is not None:
            spec.append(("line", REGION_LINE, "specimen region"))
    else:
        spec = [("fill", c.color, c.name + pct(c.name)) for c in classes]
    return _with_legend(picture, _legend_entries(spec, f"{array} (1:{f})" if f > 1 else array))


def _windows_with_most(count_map: np.ndarray, size: int, n: int) -> list[tuple[int, int]]:
    """Top-left corners (in ``count_map`` pixels) of ``n`` non-overlapping size x size windows with the largest
    sums, by a summed-area table."""
    h, w = count_map.shape
    if h < size or w < size:
        return [(0, 0)]
    sat = np.pad(count_map.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = sat[size:, size:] - sat[:-size, size:] - sat[size:, :-size] + sat[:-size, :-size]
    picks: list[tuple[int, int]] = []
    for _ in range(n):
        y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
        if sums[y, x] <= 0 and picks:
            break
        picks.append((int(y), int(x)))
        sums[max(0, y - size + 1) : y + size, max(0, x - size + 1) : x + size] = -1
    return picks


CROP = 384


def crops_png(store, ids: dict | None, classes, truth: bool, n: int = 2, source: str = "labels"
              ) -> tuple[bytes, list[dict]]:
    """Full-resolution crops (CROP px) of the windows with the most voids, and with ``truth`` the most
    disagreement: picture | the measured mask (``source``: labels, or a traced truth) drawn over it (| truth drawn
    over it). Returns (png, where each crop is)."""
    from PIL import Image

    group = st.open_store(store)
    f = max(1, quicklook_scale(group))
    small = downsampled_mask(store, source, f, len(classes))
    size = max(1, CROP // f)
    wanted = [("most voids", (small == ids["void"]) if ids else np.ones(small.shape, bool))]
    if truth:
        tsmall = downsampled_mask(store, "truth", f, len(classes))[: small.shape[0], : small.shape[1]]
        wanted.append(("most disagreement with the truth", (tsmall != small) & (tsmall != 255)))
    h, w = st.array(group, "image").shape[:2]
    rows, where = [], []
    image, labels = st.open_array(store, "image"), st.open_array(store, source)
    for why, counts in wanted:
        for y, x in _windows_with_most(counts, size, n if why == "most voids" else 1):
            y0, x0 = min(y * f, max(0, h - CROP)), min(x * f, max(0, w - CROP))
            sl = (slice(y0, min(y0 + CROP, h)), slice(x0, min(x0 + CROP, w)))
            img = np.asarray(st.read(image, *sl))
            panels = [img, overlay(img, np.asarray(st.read(labels, *sl)), ids, classes)]
            if truth:
                panels.append(overlay(img, np.asarray(st.read(st.open_array(store, "truth"), *sl)), ids, classes))
            gap = np.full((img.shape[0], 6, 3), 255, np.uint8)
            rows.append(np.concatenate([p for q in panels for p in (q, gap)][:-1], axis=1))
            where.append({"why": why, "y": int(y0), "x": int(x0), "size": CROP})
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    panel_w = min(CROP, w)
    titles = ["picture", "segmentation" if source == "labels" else f"{source} (traced)"] + (["truth"] if truth else [])
    rows.insert(0, _headings(titles, panel_w, 6, width))
    buf = io.BytesIO()
    Image.fromarray(np.concatenate(rows, axis=0)).save(buf, format="png")
    return buf.getvalue(), where


def _headings(titles: list[str], panel_w: int, gap: int, width: int, height: int = 20) -> np.ndarray:
    """A white strip with each panel's title at its left edge (the crops' column headings)."""
    from PIL import Image, ImageDraw, ImageFont

    strip = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    try:
        font = ImageFont.load_default(size=14)  # Pillow's own scalable font (no system fonts needed)
    except TypeError:  # Pillow < 10.1: the small bitmap font
        font = ImageFont.load_default()
    for k, title in enumerate(titles):
        draw.text((k * (panel_w + gap) + 2, 2), title, fill=(40, 40, 40), font=font)
    return np.asarray(strip)


ERROR_COLOURS = {"missed void": (230, 30, 30), "false void": (235, 0, 235), "stone / paste": (255, 200, 0)}


def error_map_png(store, ids: dict, classes) -> bytes:
    """Where the labels and the truth disagree, at quicklook scale: voids the model missed (red), voids it made up
    (magenta), stone and paste confused (amber), over a faded picture."""
    group = st.open_store(store)
    f = quicklook_scale(group)
    image = _picture(group, f)
    lab = downsampled_mask(store, "labels", f, len(classes))[: image.shape[0], : image.shape[1]]
    tru = downsampled_mask(store, "truth", f, len(classes))[: image.shape[0], : image.shape[1]]
    grey = image.mean(axis=2, keepdims=True)
    out = (0.35 * grey + 165).repeat(3, axis=2)
    v = ids["void"]
    known = tru != 255
    from scipy import ndimage

    for name, sel in (("stone / paste", known & (lab != tru) & (lab != v) & (tru != v)),
                      ("false void", known & (lab == v) & (tru != v)),
                      ("missed void", known & (tru == v) & (lab != v))):
        out[ndimage.binary_dilation(sel, iterations=1)] = ERROR_COLOURS[name]  # thickened: one pixel is too thin
    spec = [("fill", c, n) for n, c in ERROR_COLOURS.items()]
    return _with_legend(np.clip(out, 0, 255).astype(np.uint8), _legend_entries(spec, "labels vs truth"))


def confidence_png(store) -> bytes | None:
    """The model's confidence (mean probability of the chosen class over 16 px blocks) at quicklook scale, with
    its colour bar; None for labels without a confidence layer."""
    group = st.open_store(store)
    if "confidence" not in group:
        return None
    conf = st.array(group, "confidence")
    cf = int(st.attr(conf, "factor", 16))
    f = quicklook_scale(group)
    step = max(1, f // cf)
    values = np.asarray(conf[::step, ::step]).astype(float) / 255.0
    fig = _figure(7.5, 7.5 * values.shape[0] / max(values.shape[1], 1) * 0.85 + 0.6)
    ax = fig.add_axes((0.02, 0.1, 0.85, 0.85))
    im = ax.imshow(values, cmap="viridis", vmin=0.5, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title("model confidence (probability of the chosen class)", fontsize=10)
    cax = fig.add_axes((0.89, 0.15, 0.03, 0.7))
    fig.colorbar(im, cax=cax)
    return _png(fig)


def histogram_png(series: dict[str, list[dict]], title: str, xlabel: str) -> bytes:
    """One or more histograms sharing classes ({"from_um", "to_um", "count"} rows), each bar as wide as its class
    on a logarithmic axis (classes of unequal width are not drawn equal); the open top class is noted, not drawn."""
    names = list(series)
    fig = _figure(9, 3.8)
    ax = fig.add_axes((0.08, 0.17, 0.9, 0.72))
    colours = ["#1f5fbf", "#d98c1a", "#555555"]
    above = []
    for i, name in enumerate(names):
        rows = [r for r in series[name] if r["to_um"] is not None]
        lo = np.array([max(r["from_um"], 1.0) for r in rows])
        hi = np.array([r["to_um"] for r in rows], float)
        counts = np.array([r["count"] for r in rows], float)
        ax.bar(lo, counts, width=hi - lo, align="edge", alpha=0.55 if len(names) > 1 else 0.85,
               color=colours[i % len(colours)], edgecolor="white", linewidth=0.5, label=name)
        top = [r for r in series[name] if r["to_um"] is None]
        if top and top[0]["count"]:
            above.append(f"{name}: {top[0]['count']} above {top[0]['from_um']:g} um")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel + " (log scale; bars span their class)")
    ax.set_ylabel("count in class")
    ax.set_title(title + (" -- " + "; ".join(above) if above else ""), fontsize=10)
    if len(names) > 1:
        ax.legend()
    return _png(fig)


def pictures(stores: list, doc: dict, classes) -> dict[str, bytes]:
    """Every picture of the report, by file name."""
    ids = concrete_ids(classes)
    truth = "truth" in doc
    out = {}
    for k, store in enumerate(stores):
        suffix = "" if len(stores) == 1 else f"-{k + 1}"
        slab = doc["slabs"][k]
        if ids:
            p = slab["parameters"]
            fractions = {"void": p["air_content"]["value"] / 100, "paste": p["paste_content"]["value"] / 100,
                         "stone": p["aggregate_content"]["value"] / 100}
        else:
            values = {c["name"]: slab["parameters"].get(f"{c['name']}_fraction", {}).get("value")
                      for c in doc["classes"]}
            fractions = {name: v / 100 for name, v in values.items() if v is not None}
        source = doc.get("source", "labels")
        out[f"quicklook{suffix}.png"] = quicklook_png(store, source, fractions)
        if truth:
            out[f"quicklook-truth{suffix}.png"] = quicklook_png(store, "truth")
            if ids:
                out[f"errors{suffix}.png"] = error_map_png(store, ids, classes)
        png, where = crops_png(store, ids, classes, truth, source=source)
        out[f"crops{suffix}.png"] = png
        slab["crops"] = where
        conf = confidence_png(store) if source == "labels" else None
        if conf is not None:
            out[f"confidence{suffix}.png"] = conf
    if "airvoid" in doc["labels"]:
        sources = [s for s in ("labels", "truth") if s in doc]
        out["chords.png"] = histogram_png({s: doc[s]["airvoid"]["chord_length_histogram"] for s in sources},
                                          "chords on the traverse", "chord length (um)")
        out["voids.png"] = histogram_png({s: doc[s]["airvoid"]["void_diameter_histogram"] for s in sources},
                                         "void sizes in the section", "equivalent diameter (um)")
    return out
