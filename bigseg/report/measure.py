"""Measuring a label mask chunk by chunk with dask: class counts, traverse chords, individual voids.

One task per chunk; each reads its chunk with a one-pixel halo and returns a few kilobytes:

* class pixel counts, and class counts per row (for the uncertainty of the areal figures);
* a simulated **linear traverse**: lines every ``spacing`` px (the first half a spacing from the edge), horizontal
  (rows), vertical (columns) or both. On each line only *labelled* pixels are traversed: the traverse length of a
  line is its count of labelled pixels, and a chord ending at an unlabelled pixel (255, e.g. outside the specimen
  region) is handled exactly like one ending at the image edge. Runs cut by a chunk border are handed on and joined
  along the line, so chords do not depend on the chunking;
* the **individual voids**: 4-connected components of void pixels (``scipy.ndimage.label``), with their areas and
  the classes of the pixels along their boundary (a ring read through the halo); components touching a chunk
  border are joined with their neighbours across it (``scipy.sparse.csgraph.connected_components``), so a void
  is counted once whatever the chunking.

**Which voids are air** (two passes, the second only over the chunks it changes): a void whose boundary lies
mostly (> 90 %) against stone is a pore of the aggregate, not an air void (EN 480-11:2005 section 3.1: an air void
is a space enclosed by cement paste), and ``aggregate_voids="exclude"`` (the default) counts its pixels as stone;
a void smaller than ``min_void_px`` pixels is counted as paste (a resolution limit; standards set none, so the
default is 1: every void counts). Chords, areas and counts are then measured on the mask so amended.

**Chords cut by an edge** (image edge, region edge, unlabelled pixels): every chord's length counts in T_a, but
with ``edge_chords="left-end"`` (default) a chord is counted in N only when its first pixel along the line has a
labelled non-void neighbour before it, i.e. its start lies inside the analysed area: the one-dimensional form of
the unbiased counting rule of stereology (Gundersen 1977, the counting frame's exclusion lines), which removes the
excess of about pi r / (2 W) that counting every cut chord gives. ``"all"`` counts every chord (bigseg < 0.2).

Memory: one chunk (plus its halo and int32 component labels) per task; in the driver an exact chord-length
histogram, one area per void, per-line and per-row counts, and the border strips of the chunks. None of it grows
with the image's area except through the number of voids and lines.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bigseg import store as st
from bigseg.cluster import compute
from bigseg.errors import BigsegError

UNLABELLED = 255
DIRECTIONS = ("horizontal", "vertical", "both")
EDGE_RULES = ("left-end", "all")
AGGREGATE_VOIDS = ("exclude", "include")
AGGREGATE_BOUNDARY = 0.9
"""A void whose boundary touches stone over more than this share of its length is a pore of the aggregate (in
practice: a void surrounded by stone; air voids against an aggregate particle keep paste around most of them)."""


@dataclass
class LineStats:
    """Per traverse line (in the order of ``MaskMeasurements.lines``): labelled length, void length, paste length
    (px), chords counted under the edge rule; for the uncertainty and for Procedure A."""

    labelled: np.ndarray
    void: np.ndarray
    paste: np.ndarray
    chords: np.ndarray


@dataclass
class MaskMeasurements:
    """What a pass over a mask measures (pixels and pixel counts; no units yet)."""

    height: int
    width: int
    class_pixels: np.ndarray  # per class id 0..n-1
    unlabelled_pixels: int
    lines: list[tuple[str, int]]  # ("row", y) or ("col", x)
    line_class_pixels: np.ndarray  # pixels of each class on the traverse lines
    chord_lengths: dict[int, int] = field(default_factory=dict)  # length (px) -> count, every chord
    counted_chord_lengths: dict[int, int] = field(default_factory=dict)  # chords counted under the edge rule
    void_areas: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # px, one per void
    line_stats: LineStats | None = None
    row_class_pixels: np.ndarray | None = None  # (height, n classes)
    col_class_pixels: np.ndarray | None = None  # (width, n classes)
    excluded_aggregate_voids: int = 0
    excluded_aggregate_pixels: int = 0
    excluded_small_voids: int = 0
    settings: dict = field(default_factory=dict)

    @property
    def line_rows(self) -> np.ndarray:
        """Rows of the horizontal lines (the traverse of bigseg < 0.2)."""
        return np.array([i for kind, i in self.lines if kind == "row"], np.int64)


def traverse_rows(height: int, spacing_px: float) -> np.ndarray:
    """Positions of traverse lines across a side of ``height`` px: every ``spacing_px``, the first half a spacing
    from the edge."""
    if spacing_px < 1:
        raise BigsegError(f"traverse spacing of {spacing_px:.3g} px is below one pixel; pass a larger "
                          "--traverse-spacing")
    if spacing_px / 2 >= height:  # (also keeps the positions below int64's range: --pixel-size 1e-20)
        return np.zeros(0, np.int64)  # no line: the report says which option to change
    rows = np.floor(spacing_px / 2 + spacing_px * np.arange(int(np.ceil(height / spacing_px)) + 1)).astype(np.int64)
    return np.unique(rows[rows < height])


# -----------------------------------------------------------------------------------------------------------
# per chunk


def _runs(mask_rows: np.ndarray):
    """Runs of True along each row: (row index, start, end) arrays, end exclusive."""
    k, w = mask_rows.shape
    padded = np.zeros((k, w + 2), np.int8)
    padded[:, 1:-1] = mask_rows
    d = np.diff(padded, axis=1)
    sr, sc = np.nonzero(d == 1)
    _, ec = np.nonzero(d == -1)  # same row order: every run starts and ends on its row
    return sr, sc, ec


def _line_pieces(lines: np.ndarray, void_id: int, paste_id: int, n_classes: int) -> dict:
    """The part of each line inside this chunk (rows of ``lines``): chords wholly inside, the runs touching the
    chunk's first and last pixel (to be joined along the line), and lengths."""
    k, w = lines.shape
    labelled = lines < n_classes
    r, s, e = _runs(lines == void_id)
    lengths = e - s
    first, last = s == 0, e == w
    inner = ~first & ~last
    before = np.where(s > 0, lines[r, np.maximum(s - 1, 0)], UNLABELLED)
    cut = before >= n_classes  # the pixel before the run is unlabelled: the chord starts outside
    chords: Counter = Counter()
    for length, c in zip(lengths[inner].tolist(), cut[inner].tolist(), strict=True):
        chords[(length, c)] += 1
    head = np.zeros(k, np.int64)  # void run from the first pixel (continues the previous chunk's)
    tail = np.zeros(k, np.int64)  # void run to the last pixel (continued by the next chunk)
    tail_cut = np.zeros(k, bool)
    head[r[first]] = lengths[first]
    tail[r[last]] = lengths[last]
    tail_cut[r[last]] = cut[last]
    counted = np.bincount(r[inner & ~cut], minlength=k)[:k]
    every = np.bincount(r[inner], minlength=k)[:k]
    return {"chords": chords, "head": head, "tail": tail, "tail_cut": tail_cut, "every_inner": every,
            "last_unlabelled": lines[:, -1] >= n_classes if w else np.ones(k, bool),
            "labelled": labelled.sum(axis=1), "void": (lines == void_id).sum(axis=1),
            "paste": (lines == paste_id).sum(axis=1), "counted_inner": counted, "width": w}


def _rings(lab: np.ndarray, halo: np.ndarray, pad: tuple[int, int, int, int], n: int, stone_id: int,
           paste_id: int) -> np.ndarray:
    """(n + 1, 2): boundary pixels of each component against stone and against paste (a pixel touching a component
    from two sides counts twice: boundary length, in pixel edges). ``halo``: the block with its one-pixel halo,
    ``pad``: how many halo pixels there are on each side (top, bottom, left, right)."""
    t, b, left, right = pad
    full: np.ndarray = np.zeros(halo.shape, np.int32)
    full[t : halo.shape[0] - b, left : halo.shape[1] - right] = lab
    counts = np.zeros((n + 1) * 2, np.int64)
    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        src = full[max(dy, 0) : full.shape[0] + min(dy, 0), max(dx, 0) : full.shape[1] + min(dx, 0)]
        dst = halo[max(-dy, 0) : halo.shape[0] + min(-dy, 0), max(-dx, 0) : halo.shape[1] + min(-dx, 0)]
        dlab = full[max(-dy, 0) : full.shape[0] + min(-dy, 0), max(-dx, 0) : full.shape[1] + min(-dx, 0)]
        edge = (src > 0) & (dlab == 0)
        for j, cls in enumerate((stone_id, paste_id)):
            sel = edge & (dst == cls)
            counts += np.bincount(src[sel] * 2 + j, minlength=(n + 1) * 2)[: (n + 1) * 2]
    return counts.reshape(n + 1, 2)


EDGES = ("top", "bottom", "left", "right")


def _line_counts(block: np.ndarray, n_classes: int) -> np.ndarray:
    """(rows of block, n_classes): pixels of each class on each row."""
    if not block.shape[0] or not block.shape[1]:
        return np.zeros((block.shape[0], n_classes), np.int64)
    k = block.shape[0]
    keys = np.repeat(np.arange(k) * 256, block.shape[1]) + block.ravel()
    # a copy, not a view: a view would keep the whole (rows, 256) count table alive in every chunk's result, and
    # the driver holds all of them (2 MB a chunk: 1.2 GB of a 300 Mpx report's 2.1 GB peak)
    return np.bincount(keys, minlength=k * 256).reshape(k, 256)[:, :n_classes].copy()


def analyse_chunk(path: str, array: str, y0: int, y1: int, x0: int, x1: int, rows: np.ndarray, cols: np.ndarray,
                  ids: dict | None, n_classes: int, region: str | None = None, amend: dict | None = None) -> dict:
    """Everything one chunk contributes (see the module doc). ``rows``/``cols``: the traverse lines crossing the
    chunk (global positions); ``amend``: local component id -> new class (the second pass)."""
    from scipy import ndimage

    z = st.open_array(path, array)
    hy0, hy1, hx0, hx1 = max(0, y0 - 1), min(z.shape[0], y1 + 1), max(0, x0 - 1), min(z.shape[1], x1 + 1)
    halo = np.array(st.read(z, slice(hy0, hy1), slice(hx0, hx1)))
    if region is not None:  # outside the specimen: unlabelled
        halo[np.asarray(st.read(st.open_array(path, region), slice(hy0, hy1), slice(hx0, hx1))) == 0] = UNLABELLED
    pad = (y0 - hy0, hy1 - y1, x0 - hx0, hx1 - x1)
    core = halo[pad[0] : halo.shape[0] - pad[1], pad[2] : halo.shape[1] - pad[3]]
    h, w = core.shape
    out: dict[str, Any] = {"pos": (y0, x0), "shape": (h, w)}
    if ids is not None:
        void_id = ids["void"]
        lab, n = ndimage.label(core == void_id)
        if amend:
            for local, cls in amend.items():
                core[lab == local] = cls  # core is a view: the halo changes with it
            lab, n = ndimage.label(core == void_id)
    counts = np.bincount(core.ravel(), minlength=256)
    out["class_pixels"] = counts[:n_classes]
    out["unlabelled"] = int(counts[n_classes:].sum())
    out["row_class_pixels"] = _line_counts(core, n_classes)
    out["col_class_pixels"] = _line_counts(core.T, n_classes)
    if ids is None:
        return out
    paste_id, stone_id = ids["paste"], ids["stone"]
    local_rows, local_cols = rows - y0, cols - x0
    out["rows"] = _line_pieces(core[local_rows] if len(local_rows) else np.zeros((0, w), core.dtype), void_id,
                               paste_id, n_classes)
    out["cols"] = _line_pieces(core[:, local_cols].T if len(local_cols) else np.zeros((0, h), core.dtype), void_id,
                               paste_id, n_classes)
    out["line_class_pixels"] = (np.bincount(core[local_rows].ravel(), minlength=256)[:n_classes]
                                + np.bincount(core[:, local_cols].ravel(), minlength=256)[:n_classes])
    areas = np.bincount(lab.ravel(), minlength=n + 1)
    areas[0] = 0
    border = np.zeros(n + 1, bool)
    for edge in (lab[0], lab[-1], lab[:, 0], lab[:, -1]):
        border[edge] = True
    border[0] = False
    rings = _rings(lab, halo, pad, n, stone_id, paste_id)
    ids_ = np.arange(n + 1)
    inner = (ids_ > 0) & ~border
    out.update(n_components=n, inner_ids=ids_[inner], inner_areas=areas[inner].astype(np.int64),
               inner_rings=rings[inner], border_ids=ids_[border], border_areas=areas[border].astype(np.int64),
               border_rings=rings[border],
               edges=dict(zip(EDGES, (lab[0].copy(), lab[-1].copy(), lab[:, 0].copy(), lab[:, -1].copy()),
                              strict=True)))
    return out


# -----------------------------------------------------------------------------------------------------------
# joining the chunks


def _join_lines(results: dict, grid_y: list[int], grid_x: list[int], kind: str, positions: np.ndarray,
                chunk: int):
    """Walk every line of ``kind`` ("rows" or "cols") across the chunks it crosses, joining runs over chunk
    borders. Returns (Counter of (length, cut) of the joined chords, per-line sums: labelled / void / paste pixels,
    chords counted under the left-end rule, every chord)."""
    chords: Counter = Counter()
    n = len(positions)
    sums = {k: np.zeros(n, np.int64) for k in ("labelled", "void", "paste", "counted", "every")}
    if not n:
        return chords, sums
    band = (positions // chunk) * chunk  # the chunk row (rows) or column (cols) of each line
    first = np.searchsorted(positions, band)  # lines are numbered from 0 within each band
    along = grid_x if kind == "rows" else grid_y
    for i, (b, k) in enumerate(zip(band.tolist(), (np.arange(n) - first).tolist(), strict=True)):
        carry, carry_cut, prev_unlabelled = 0, True, True  # before the first chunk: the image edge

        def emit(length, cut, i=i):
            chords[(length, cut)] += 1
            sums["counted"][i] += not cut
            sums["every"][i] += 1

        for a in along:
            piece = results[(b, a) if kind == "rows" else (a, b)][kind]
            w = piece["width"]
            for key in ("labelled", "void", "paste"):
                sums[key][i] += int(piece[key][k])
            sums["counted"][i] += int(piece["counted_inner"][k])
            sums["every"][i] += int(piece["every_inner"][k])
            head = int(piece["head"][k])
            if head == w:  # void all across this chunk
                if not carry:
                    carry_cut = prev_unlabelled
                carry += w
                prev_unlabelled = False
                continue
            if carry or head:
                emit(carry + head, carry_cut if carry else prev_unlabelled)
            carry, carry_cut = int(piece["tail"][k]), bool(piece["tail_cut"][k])
            prev_unlabelled = bool(piece["last_unlabelled"][k])
        if carry:
            emit(carry, carry_cut)
    return chords, sums


def _components(results: dict, grid_y: list[int], grid_x: list[int]):
    """Every void: (areas, boundary rings (stone, paste), members: list of [(chunk key, local id), ...])."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    keys = sorted(results)
    areas, rings, members = [], [], []
    for key in keys:
        r = results[key]
        for local, area, ring in zip(r["inner_ids"].tolist(), r["inner_areas"].tolist(), r["inner_rings"],
                                     strict=True):
            areas.append(area)
            rings.append(ring)
            members.append([(key, local)])
    base, offset = {}, 0
    for key in keys:
        base[key] = offset
        offset += results[key]["n_components"] + 1
    node_ids = np.concatenate([results[k]["border_ids"] + base[k] for k in keys] or [np.zeros(0, int)])
    if node_ids.size:
        node_areas = np.concatenate([results[k]["border_areas"] for k in keys])
        node_rings = np.concatenate([results[k]["border_rings"] for k in keys])
        node_member = [(k, int(i)) for k in keys for i in results[k]["border_ids"]]
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
        a = np.array([index[int(v)] for v in np.concatenate(a_list)]) if a_list else np.zeros(0, int)
        b = np.array([index[int(v)] for v in np.concatenate(b_list)]) if b_list else np.zeros(0, int)
        n, comp = connected_components(coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(m, m)),
                                       directed=False)
        joined_areas = np.bincount(comp, weights=node_areas, minlength=n).astype(np.int64)
        joined_rings = np.stack([np.bincount(comp, weights=node_rings[:, j], minlength=n) for j in (0, 1)], axis=1)
        groups: list[list] = [[] for _ in range(n)]
        for node, c in enumerate(comp.tolist()):
            groups[c].append(node_member[node])
        areas += joined_areas.tolist()
        rings += list(joined_rings)
        members += groups
    return np.array(areas, np.int64), np.array(rings, np.float64).reshape(-1, 2), members


# -----------------------------------------------------------------------------------------------------------
# the pass over a mask


def measure_mask(store, array: str, ids: dict | None, n_classes: int, spacing_px: float | None, client=None, *,
                 direction: str = "horizontal", edge_chords: str = "left-end", aggregate_voids: str = "exclude",
                 min_void_px: int = 1, region: str | None = None) -> MaskMeasurements:
    """Measure ``store/array`` (a (y, x) uint8 mask): class counts, traverse chords, voids (see the module doc).

    ``ids``: the concrete class ids (paste, stone, void), or None for area counts only; ``region``: an array of
    the store (1 inside the specimen) outside which pixels count as unlabelled."""
    import dask

    path = str(store)
    z = st.open_array(path, array)
    height, width = z.shape
    ch, cw = z.chunks
    spacing = float(spacing_px) if spacing_px is not None else 0.0  # given whenever ids are
    rows = traverse_rows(height, spacing) if ids and direction in ("horizontal", "both") else np.zeros(0, int)
    cols = traverse_rows(width, spacing) if ids and direction in ("vertical", "both") else np.zeros(0, int)
    grid_y, grid_x = list(range(0, height, ch)), list(range(0, width, cw))

    def task(y0, x0, amend=None):
        y1, x1 = min(y0 + ch, height), min(x0 + cw, width)
        return dask.delayed(analyse_chunk, pure=True)(path, array, y0, y1, x0, x1, rows[(rows >= y0) & (rows < y1)],
                                                      cols[(cols >= x0) & (cols < x1)], ids, n_classes, region, amend)

    results = {r["pos"]: r for r in compute([task(y0, x0) for y0 in grid_y for x0 in grid_x], client,
                                            desc=f"measure {array}")}
    excluded = {"aggregate": 0, "aggregate_px": 0, "small": 0}
    if ids is not None:
        areas, rings, members = _components(results, grid_y, grid_x)
        amend: dict = {}
        stone_share = rings[:, 0] / np.maximum(rings.sum(axis=1), 1)
        in_aggregate = (stone_share > AGGREGATE_BOUNDARY) if aggregate_voids == "exclude" else \
            np.zeros(len(areas), bool)
        small = (areas < min_void_px) & ~in_aggregate
        for k in np.flatnonzero(in_aggregate | small).tolist():
            cls = ids["stone"] if in_aggregate[k] else ids["paste"]
            for key, local in members[k]:
                amend.setdefault(key, {})[local] = cls
        excluded = {"aggregate": int(in_aggregate.sum()), "aggregate_px": int(areas[in_aggregate].sum()),
                    "small": int(small.sum())}
        if amend:  # the second pass, over the chunks that change
            redone = compute([task(y0, x0, amend[(y0, x0)]) for (y0, x0) in sorted(amend)], client)
            results.update({r["pos"]: r for r in redone})
    return _assemble(results, grid_y, grid_x, ch, cw, height, width, rows, cols, ids, n_classes, edge_chords,
                     excluded, {"direction": direction, "edge_chords": edge_chords, "aggregate_voids": aggregate_voids,
                                "min_void_px": min_void_px, "region": region})


def _assemble(results, grid_y, grid_x, ch, cw, height, width, rows, cols, ids, n_classes, edge_chords, excluded,
              settings) -> MaskMeasurements:
    rs = list(results.values())
    row_counts = np.zeros((height, n_classes), np.int64)
    col_counts = np.zeros((width, n_classes), np.int64)
    for r in rs:
        y0, x0 = r["pos"]
        row_counts[y0 : y0 + r["shape"][0]] += r["row_class_pixels"]
        col_counts[x0 : x0 + r["shape"][1]] += r["col_class_pixels"]
    m = MaskMeasurements(
        height=height, width=width,
        class_pixels=sum(r["class_pixels"] for r in rs).astype(np.int64),
        unlabelled_pixels=sum(r["unlabelled"] for r in rs),
        lines=[("row", int(y)) for y in rows] + [("col", int(x)) for x in cols],
        line_class_pixels=np.zeros(n_classes, np.int64), row_class_pixels=row_counts, col_class_pixels=col_counts,
        settings=settings)
    if ids is None:
        return m
    m.line_class_pixels = sum(r["line_class_pixels"] for r in rs).astype(np.int64)
    chords: Counter = Counter()
    sums: dict = {k: [] for k in ("labelled", "void", "paste", "counted", "every")}
    for kind, positions, chunk in (("rows", rows, ch), ("cols", cols, cw)):
        for r in rs:
            chords.update(r[kind]["chords"])
        joined, line_sums = _join_lines(results, grid_y, grid_x, kind, positions, chunk)
        chords.update(joined)
        for k in sums:
            sums[k].append(line_sums[k])
    everything: Counter = Counter()
    counted_only: Counter = Counter()
    for (length, cut), k in chords.items():
        everything[length] += k
        if not cut or edge_chords == "all":
            counted_only[length] += k
    counted_lines = np.concatenate(sums["every" if edge_chords == "all" else "counted"])
    m.chord_lengths = dict(sorted(everything.items()))
    m.counted_chord_lengths = dict(sorted(counted_only.items()))
    m.line_stats = LineStats(np.concatenate(sums["labelled"]), np.concatenate(sums["void"]),
                             np.concatenate(sums["paste"]), counted_lines)
    areas, _, _ = _components(results, grid_y, grid_x)
    m.void_areas = np.sort(areas)
    m.excluded_aggregate_voids = excluded["aggregate"]
    m.excluded_aggregate_pixels = excluded["aggregate_px"]
    m.excluded_small_voids = excluded["small"]
    return m
