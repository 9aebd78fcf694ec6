"""Air-void analysis of a label mask (ASTM C457 / EN 480-11 style), chunk by chunk with dask.

One pass over the zarr mask, one task per chunk, each returning a few kilobytes:

* class pixel counts (areal fractions: the limit of a point count with every pixel a point);
* a simulated linear traverse: horizontal lines every ``spacing`` mm (the first half a spacing from the top),
  across the whole width; every run of void pixels on a line is a chord. A chord cut by a chunk border is
  handed on as a partial run and joined in the driver, so chords do not depend on the chunking;
* the individual voids: 4-connected components of void pixels (``scipy.ndimage.label`` per chunk); components
  touching a chunk border are joined with their neighbours across it (union of the labels that meet on the two
  sides of each border, ``scipy.sparse.csgraph.connected_components``), so a void is counted once whatever the
  chunking.

Memory: one chunk per task (plus its int32 component labels), and in the driver the chord-length histogram
(exact, one count per length in pixels), the void areas (4 bytes per void) and the border strips of the chunks
(16 bytes per border pixel of void). None of it grows with the image's area except through the number of voids.

Formulas (A, p as fractions; lengths in mm; ASTM C457-16, sections 12-13 "Calculation"):

* air content A = void area / analysed area (Delesse: area fraction = volume fraction); paste content p and
  aggregate content likewise from the areal counts -- the whole-mask version of Procedure B (point count);
* traverse length T_t = lines x width x pixel size; void chords N; voids per mm n = N / T_t;
* average chord length l = A / n (Procedure B, eq. "l = A / (100 n)" with A in percent); the chord mean
  measured directly on the traverse, T_a / N, is reported beside it (Procedure A);
* specific surface alpha = 4 / l (mm^-1) -- for spheres the mean chord is 2/3 of the diameter, 4/l = 6/d;
* paste-to-air ratio p/A;
* Powers spacing factor (ASTM C457 eq. 13/14): L = p / (4 n) when p/A <= 4.342, otherwise
  L = (3 / alpha) * (1.4 * (1 + p/A)^(1/3) - 1); the two branches meet at p/A = 4.342 when l = A / n;
* void equivalent diameter d = 2 sqrt(area / pi) (the circle of the same area, in the section plane); voids
  with d <= the entrapped threshold (default 1 mm, EN 480-11 / common practice) are entrained air, larger ones
  entrapped; each group's air content is its area over the analysed area.

Edge cases: with no voids every count and fraction is 0 and the ratios that divide by them (l, alpha, L,
p/A) are None ("not defined: no voids"), never NaN. Chords and voids cut by the image edge are counted as they
are (a slab's edge is the specimen's edge).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from bigseg import store as st
from bigseg.errors import BigsegError

SPACING_FACTOR_BRANCH = 4.342
"""p/A at which ASTM C457 switches between the two branches of Powers' spacing factor."""

CHORD_BINS_UM = (0, 10, 20, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300, 400, 500, 750, 1000, 1500, 2000,
                 3000, 4000)
"""Upper edges (um) of the chord-length histogram classes; one more class holds everything above the last."""

DIAMETER_BINS_UM = (0, 20, 40, 60, 80, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000)


@dataclass
class MaskMeasurements:
    """What one pass over a mask measures (pixels and pixel counts; no units yet)."""

    height: int
    width: int
    class_pixels: np.ndarray  # per class id 0..n-1
    unlabelled_pixels: int
    line_rows: np.ndarray  # the traverse rows
    line_class_pixels: np.ndarray  # pixels of each class on the traverse lines
    chord_lengths: dict[int, int] = field(default_factory=dict)  # chord length (px) -> count
    void_areas: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # px, one per void


# -----------------------------------------------------------------------------------------------------------
# per-chunk work


EDGES = ("top", "bottom", "left", "right")


def _runs(mask_rows: np.ndarray):
    """Runs of True along each row: (row index, start, end) arrays, end exclusive."""
    k, w = mask_rows.shape
    padded = np.zeros((k, w + 2), np.int8)
    padded[:, 1:-1] = mask_rows
    d = np.diff(padded, axis=1)
    sr, sc = np.nonzero(d == 1)
    _, ec = np.nonzero(d == -1)  # same row order: every run starts and ends on its row
    return sr, sc, ec


def _analyse_chunk(path: str, array: str, y0: int, y1: int, x0: int, x1: int, rows: np.ndarray,
                   void_id: int | None, n_classes: int):
    """Everything one chunk contributes; reads only this chunk."""
    from scipy import ndimage

    block = np.asarray(st.read(st.open_array(path, array), slice(y0, y1), slice(x0, x1)))
    h, w = block.shape
    out = {"pos": (y0, x0), "shape": (h, w)}
    counts = np.bincount(block.ravel(), minlength=256)
    out["class_pixels"] = counts[:n_classes]
    out["unlabelled"] = int(counts[n_classes:].sum())

    if void_id is None:  # area counts only
        rows = rows[:0]
        out.update(chords=Counter(), line_left=np.zeros(0, np.int64), line_right=np.zeros(0, np.int64),
                   line_class_pixels=np.zeros(n_classes, np.int64), n_components=0,
                   inner_areas=np.zeros(0, np.int64), border_ids=np.zeros(0, np.int64),
                   border_areas=np.zeros(0, np.int64), edges={k: np.zeros(0, np.int64) for k in EDGES})
        return out

    # traverse: chords inside the chunk, and the runs that touch its left / right edge (to be joined)
    local = rows - y0
    on_lines = block[local] if len(local) else np.zeros((0, w), block.dtype)
    out["line_class_pixels"] = np.bincount(on_lines.ravel(), minlength=256)[:n_classes]
    r, s, e = _runs(on_lines == void_id)
    lengths = e - s
    touches_left, touches_right = s == 0, e == w
    inner = ~touches_left & ~touches_right
    out["chords"] = Counter()
    if inner.any():
        bc = np.bincount(lengths[inner])
        out["chords"] = Counter({int(L): int(bc[L]) for L in np.nonzero(bc)[0]})
    left = np.zeros(len(local), np.int64)
    right = np.zeros(len(local), np.int64)
    left[r[touches_left]] = lengths[touches_left]
    right[r[touches_right]] = lengths[touches_right]
    out["line_left"], out["line_right"] = left, right  # a full-width run shows in both, length w

    # voids: 4-connected components; those on the chunk border are joined across borders later
    lab, n = ndimage.label(block == void_id)
    areas = np.bincount(lab.ravel(), minlength=n + 1)
    areas[0] = 0
    border = np.zeros(n + 1, bool)
    for edge in (lab[0], lab[-1], lab[:, 0], lab[:, -1]):
        border[edge] = True
    border[0] = False
    ids = np.arange(n + 1)
    out["n_components"] = n
    out["inner_areas"] = areas[(ids > 0) & ~border].astype(np.int64)
    out["border_ids"] = ids[border]
    out["border_areas"] = areas[border].astype(np.int64)
    out["edges"] = dict(zip(EDGES, (lab[0].copy(), lab[-1].copy(), lab[:, 0].copy(), lab[:, -1].copy()),
                            strict=True))
    return out


# -----------------------------------------------------------------------------------------------------------
# joining the chunks


def _join_chords(results: dict, chunk_h: int, grid_x: list[int], rows: np.ndarray, chords: Counter) -> None:
    """Walk every traverse line across the chunks, joining runs that continue over a chunk border."""
    band_start = (rows // chunk_h) * chunk_h  # the chunk row of each line
    first_in_band = np.searchsorted(rows, band_start)  # lines are numbered from 0 within each chunk row
    for y0, k in zip(band_start.tolist(), (np.arange(len(rows)) - first_in_band).tolist(), strict=True):
        carry = 0
        for x0 in grid_x:
            res = results[(y0, x0)]
            w = res["shape"][1]
            left, right = int(res["line_left"][k]), int(res["line_right"][k])
            if left == w:  # void all across this chunk
                carry += w
                continue
            if carry or left:
                chords[carry + left] += 1
            carry = right
        if carry:
            chords[carry] += 1


def _join_voids(results: dict, grid_y: list[int], grid_x: list[int]) -> np.ndarray:
    """Areas of the voids that touch chunk borders, joined into whole voids."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    base, offset = {}, 0
    for key in sorted(results):
        base[key] = offset
        offset += results[key]["n_components"] + 1
    node_ids = np.concatenate([results[k]["border_ids"] + base[k] for k in sorted(results)] or [np.zeros(0, int)])
    node_areas = np.concatenate([results[k]["border_areas"] for k in sorted(results)] or [np.zeros(0, int)])
    if node_ids.size == 0:
        return np.zeros(0, np.int64)
    a_list, b_list = [], []

    def link(key_a, edge_a, key_b, edge_b):
        ea, eb = results[key_a]["edges"][edge_a], results[key_b]["edges"][edge_b]
        both = (ea > 0) & (eb > 0)
        if both.any():
            a_list.append(ea[both] + base[key_a])
            b_list.append(eb[both] + base[key_b])

    for iy, y0 in enumerate(grid_y):
        for ix, x0 in enumerate(grid_x):
            if ix + 1 < len(grid_x):
                link((y0, x0), "right", (y0, grid_x[ix + 1]), "left")
            if iy + 1 < len(grid_y):
                link((y0, x0), "bottom", (grid_y[iy + 1], x0), "top")
    index = {int(g): i for i, g in enumerate(node_ids)}
    m = len(node_ids)
    if a_list:
        a = np.array([index[int(v)] for v in np.concatenate(a_list)])
        b = np.array([index[int(v)] for v in np.concatenate(b_list)])
    else:
        a = b = np.zeros(0, int)
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(m, m))
    n, comp = connected_components(graph, directed=False)
    return np.bincount(comp, weights=node_areas, minlength=n).astype(np.int64)


def traverse_rows(height: int, spacing_px: float) -> np.ndarray:
    """Rows of the traverse lines: every ``spacing_px`` rows, the first half a spacing from the top."""
    if spacing_px < 1:
        raise BigsegError(f"traverse spacing of {spacing_px:.3g} px is below one pixel; pass a larger "
                          "--traverse-spacing")
    rows = np.floor(spacing_px / 2 + spacing_px * np.arange(int(np.ceil(height / spacing_px)) + 1)).astype(np.int64)
    return np.unique(rows[rows < height])


def measure_mask(store: str | os.PathLike, array: str, void_id: int | None, n_classes: int,
                 spacing_px: float | None, client=None) -> MaskMeasurements:
    """One dask pass over ``store/array`` (a (y, x) uint8 mask): class counts, traverse chords, void areas.

    With ``void_id`` None only the class counts are measured."""
    import dask

    from bigseg.cluster import compute

    path = str(store)
    z = st.open_array(path, array)
    height, width = z.shape
    ch, cw = z.chunks
    rows = traverse_rows(height, spacing_px) if void_id is not None else np.zeros(0, np.int64)
    grid_y, grid_x = list(range(0, height, ch)), list(range(0, width, cw))
    tasks = []
    for y0 in grid_y:
        y1 = min(y0 + ch, height)
        in_band = rows[(rows >= y0) & (rows < y1)]
        for x0 in grid_x:
            tasks.append(dask.delayed(_analyse_chunk, pure=True)(path, array, y0, y1, x0, min(x0 + cw, width),
                                                                  in_band, void_id, n_classes))
    computed = compute(tasks, client)
    results = {r["pos"]: r for r in computed}

    chords: Counter = Counter()
    for r in results.values():
        chords.update(r["chords"])
    _join_chords(results, ch, grid_x, rows, chords)
    inner = [r["inner_areas"] for r in results.values()]
    areas = np.concatenate([*inner, _join_voids(results, grid_y, grid_x)])
    return MaskMeasurements(
        height=height, width=width,
        class_pixels=sum(r["class_pixels"] for r in results.values()).astype(np.int64),
        unlabelled_pixels=sum(r["unlabelled"] for r in results.values()),
        line_rows=rows,
        line_class_pixels=sum(r["line_class_pixels"] for r in results.values()).astype(np.int64),
        chord_lengths=dict(sorted(chords.items())),
        void_areas=np.sort(areas),
    )


# -----------------------------------------------------------------------------------------------------------
# parameters


def powers_spacing_factor(p: float, A: float, n: float, alpha: float | None) -> float | None:
    """Powers spacing factor (mm), ASTM C457 eq. 13 (p/A <= 4.342) and 14 (above); None without voids."""
    if A <= 0 or n <= 0 or not alpha:
        return None
    if p / A <= SPACING_FACTOR_BRANCH:
        return p / (4.0 * n)
    return 3.0 / alpha * (1.4 * (1.0 + p / A) ** (1.0 / 3.0) - 1.0)


def _histogram(values_um: np.ndarray, weights: np.ndarray, edges_um) -> list[dict]:
    edges = [*edges_um, float("inf")]
    counts, _ = np.histogram(values_um, bins=np.asarray(edges, float), weights=weights)
    return [{"from_um": float(lo), "to_um": (None if np.isinf(hi) else float(hi)), "count": int(round(c))}
            for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)]


def _param(value, unit: str, description: str) -> dict:
    if isinstance(value, np.generic):
        value = value.item()
    return {"value": value, "unit": unit, "description": description}


def airvoid_parameters(m: MaskMeasurements, ids: dict[str, int], pixel_size_um: float, spacing_mm: float,
                       entrapped_mm: float) -> dict:
    """The air-void figures (with units and descriptions) from one mask's measurements."""
    px_mm = pixel_size_um / 1000.0
    analysed = int(m.class_pixels.sum())
    if analysed == 0:
        raise BigsegError("the mask has no labelled pixels")
    frac = m.class_pixels / analysed
    A, p, agg = float(frac[ids["void"]]), float(frac[ids["paste"]]), float(frac[ids["stone"]])
    n_lines = len(m.line_rows)
    T_t = n_lines * m.width * px_mm
    lengths = np.fromiter(m.chord_lengths.keys(), np.int64, len(m.chord_lengths))
    counts = np.fromiter(m.chord_lengths.values(), np.int64, len(m.chord_lengths))
    N = int(counts.sum())
    T_a = float((lengths * counts).sum()) * px_mm
    line_total = int(m.line_class_pixels.sum())
    A_t = float(m.line_class_pixels[ids["void"]] / line_total) if line_total else 0.0
    p_t = float(m.line_class_pixels[ids["paste"]] / line_total) if line_total else 0.0
    n = N / T_t if T_t else 0.0
    l_mean = A / n if n else None
    alpha = 4.0 / l_mean if l_mean else None
    diam_mm = 2.0 * np.sqrt(m.void_areas / np.pi) * px_mm
    entrapped = diam_mm > entrapped_mm
    area_mm2 = analysed * px_mm**2
    void_area_px = m.void_areas.astype(float)
    params = {
        "analysed_area": _param(area_mm2, "mm2", "area of the labelled pixels analysed"),
        "air_content": _param(100 * A, "%", "A: void area fraction (= volume fraction, Delesse)"),
        "paste_content": _param(100 * p, "%", "p: paste area fraction"),
        "aggregate_content": _param(100 * agg, "%", "stone (aggregate) area fraction"),
        "paste_air_ratio": _param(p / A if A else None, "1", "p/A"),
        "traverse_lines": _param(n_lines, "1", f"horizontal lines every {spacing_mm:g} mm"),
        "traverse_length": _param(T_t, "mm", "T_t: total length of the traverse lines"),
        "traverse_air_content": _param(100 * A_t, "%", "T_a/T_t: void fraction of the traverse (Procedure A)"),
        "traverse_paste_content": _param(100 * p_t, "%", "T_p/T_t: paste fraction of the traverse (Procedure A)"),
        "chord_count": _param(N, "1", "N: void chords on the traverse"),
        "voids_per_mm": _param(n, "1/mm", "n = N/T_t: voids intercepted per mm of traverse"),
        "average_chord_length": _param(l_mean, "mm", "l = A/n (ASTM C457 Procedure B)"),
        "measured_chord_length": _param(T_a / N if N else None, "mm",
                                        "T_a/N: mean chord measured on the traverse (Procedure A)"),
        "specific_surface": _param(alpha, "1/mm", "alpha = 4/l"),
        "spacing_factor": _param(powers_spacing_factor(p, A, n, alpha), "mm",
                                 "Powers spacing factor L (ASTM C457 eq. 13 if p/A <= 4.342, else eq. 14)"
                                ),
        "void_count": _param(len(m.void_areas), "1", "individual voids (4-connected components)"),
        "voids_per_area": _param(len(m.void_areas) / area_mm2, "1/mm2", "voids per mm2 of analysed area"),
        "entrained_void_count": _param(int((~entrapped).sum()), "1",
                                       f"voids with equivalent diameter <= {entrapped_mm:g} mm"),
        "entrapped_void_count": _param(int(entrapped.sum()), "1",
                                       f"voids with equivalent diameter > {entrapped_mm:g} mm"),
        "entrained_air_content": _param(100 * float(void_area_px[~entrapped].sum()) / analysed, "%",
                                        "area of entrained voids / analysed area"),
        "entrapped_air_content": _param(100 * float(void_area_px[entrapped].sum()) / analysed, "%",
                                        "area of entrapped voids / analysed area"),
        "mean_void_diameter": _param(float(diam_mm.mean()) if len(diam_mm) else None, "mm",
                                     "mean equivalent diameter 2 sqrt(area/pi)"),
    }
    chord_um = lengths * pixel_size_um
    return {
        "parameters": params,
        "settings": {"pixel_size_um": pixel_size_um, "traverse_spacing_mm": spacing_mm,
                     "entrapped_diameter_mm": entrapped_mm, "connectivity": 4},
        "chord_length_histogram": _histogram(chord_um, counts, CHORD_BINS_UM),
        "void_diameter_histogram": _histogram(diam_mm * 1000.0, np.ones(len(diam_mm)), DIAMETER_BINS_UM),
    }


def check_mask(group, array: str, store) -> None:
    if array not in group:
        hint = "run 'bigseg infer " + str(store) + "' first" if array == "labels" else "ingest it with --truth"
        raise BigsegError(f"{store}: no {array} in the store; {hint}")
    if not st.is_complete(group[array]):
        raise BigsegError(f"{store}: its {array} are incomplete (an interrupted run); run 'bigseg infer {store}' "
                          "again to finish them")
