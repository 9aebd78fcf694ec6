"""``bigseg export-objects``: every void (and, on request, every stone or any class) of a mask as one object, for
QuPath, GIS and a table.

An object is a 4-connected component of one class's pixels (as the report counts voids), joined across chunk
borders, with its area (px, mm²), equivalent diameter (the diameter of the disc of the same area, mm), centroid
(px and mm), bounding box and -- for voids -- entrained or entrapped air (equivalent diameter below or at least
``entrapped_mm``, the report's rule). Outputs, by the suffix of ``-o``:

* ``.geojson``: a FeatureCollection in pixel coordinates (x right, y down; a pixel (y, x) is the square
  [x, x + 1] x [y, y + 1]), one Polygon (holes kept) per object with ``objectType: annotation`` and a
  ``classification`` of the class's name and colour: QuPath's File > Import objects reads it as annotations over
  the image, and any GeoJSON reader (shapely, GDAL) as polygons;
* ``.csv``: one row per object, no geometry (pandas, R, a spreadsheet);
* ``.parquet``: the same table (needs pyarrow).

**Streamed**: the mask is read one chunk row at a time. Each chunk's components are found with
``scipy.ndimage.label``; their outlines are the union (shapely) of their pixel runs. Components touching the
chunk row's lower edge wait for the next row; everything else is final and written at once. Components meeting
across a chunk border are joined (union-find) and their outlines united. Memory: one chunk row and the objects
still open at its lower edge -- never the whole mask.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bigseg import store as st
from bigseg.defaults import DEFAULT_ENTRAPPED_MM
from bigseg.errors import BigsegError
from bigseg.paths import refuse_overlap
from bigseg.results import ObjectsExportResult

FORMATS = (".geojson", ".csv", ".parquet")
LAYERS = ("labels", "truth")
COLUMNS = ("id", "class", "kind", "area_px", "area_mm2", "equivalent_diameter_mm", "centroid_x_px", "centroid_y_px",
           "centroid_x_mm", "centroid_y_mm", "x0", "y0", "x1", "y1")


@dataclass
class _Piece:
    """One component of one chunk (or several joined): sums for area and centroid, box, outline pieces."""

    cls: int
    area: int
    sum_y: float
    sum_x: float
    box: list[int]  # y0, x0, y1, x1 (exclusive)
    shapes: list = field(default_factory=list)

    def merge(self, other: _Piece) -> None:
        self.area += other.area
        self.sum_y += other.sum_y
        self.sum_x += other.sum_x
        self.box = [min(self.box[0], other.box[0]), min(self.box[1], other.box[1]),
                    max(self.box[2], other.box[2]), max(self.box[3], other.box[3])]
        self.shapes += other.shapes


def _outline(mask: np.ndarray, y0: int, x0: int):
    """The polygon(s) covering the True pixels of ``mask`` (its origin at (y0, x0)): the union of its row runs."""
    from shapely import box, union_all

    rects = []
    for r in range(mask.shape[0]):
        row = mask[r]
        if not row.any():
            continue
        edges = np.flatnonzero(np.diff(np.concatenate(([False], row, [False])).astype(np.int8)))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            rects.append(box(x0 + a, y0 + r, x0 + b, y0 + r + 1))
    return union_all(rects)


def _chunk_pieces(block: np.ndarray, y0: int, x0: int, class_ids: list[int]):
    """Components of each class in one chunk: {label key: _Piece}, and the label images (for joining at borders)."""
    from scipy import ndimage

    four = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
    pieces: dict[tuple[int, int], _Piece] = {}
    labels: dict[int, np.ndarray] = {}
    ys, xs = np.indices(block.shape)
    for c in class_ids:
        lab, n = ndimage.label(block == c, structure=four)
        labels[c] = lab
        if not n:
            continue
        idx = np.arange(1, n + 1)
        areas = ndimage.sum_labels(np.ones_like(lab), lab, idx)
        sy = ndimage.sum_labels(ys, lab, idx)
        sx = ndimage.sum_labels(xs, lab, idx)
        for k, sl in enumerate(ndimage.find_objects(lab)):
            if sl is None:
                continue
            local = lab[sl] == k + 1
            pieces[(c, k + 1)] = _Piece(c, int(areas[k]), float(sy[k]) + y0 * areas[k], float(sx[k]) + x0 * areas[k],
                                        [y0 + sl[0].start, x0 + sl[1].start, y0 + sl[0].stop, x0 + sl[1].stop],
                                        [_outline(local, y0 + sl[0].start, x0 + sl[1].start)])
    return pieces, labels


class _Joiner:
    """Union-find over (chunk, class, local label) keys."""

    def __init__(self):
        self.parent: dict = {}

    def find(self, a):
        self.parent.setdefault(a, a)
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


class _Writer:
    """Objects to ``out`` (GeoJSON streamed feature by feature; CSV row by row; Parquet from the rows at the end)."""

    def __init__(self, path: Path, kind: str, classes, pixel_um: float | None, entrapped_mm: float, void_id):
        self.path, self.kind, self.px, self.entrapped_mm, self.void_id = path, kind, pixel_um, entrapped_mm, void_id
        self.names = {c.id: c.name for c in classes}
        self.colours = {c.id: list(c.color) for c in classes}
        self.count = 0
        self.per_class: dict[str, int] = {}
        self.rows: list[dict] = []
        self.f = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
        if kind == ".geojson":
            self.f.write('{"type": "FeatureCollection", "features": [\n')
        elif kind == ".csv":
            self.csv = csv.DictWriter(self.f, fieldnames=COLUMNS)
            self.csv.writeheader()

    def row(self, p: _Piece) -> dict:
        mm = self.px / 1000 if self.px else None
        cy, cx = p.sum_y / p.area + 0.5, p.sum_x / p.area + 0.5
        diameter = 2 * math.sqrt(p.area / math.pi) * mm if mm else None
        kind = None
        if p.cls == self.void_id and diameter is not None:
            kind = "entrapped" if diameter >= self.entrapped_mm else "entrained"
        return {"id": self.count, "class": self.names[p.cls], "kind": kind, "area_px": p.area,
                "area_mm2": p.area * mm * mm if mm else None, "equivalent_diameter_mm": diameter,
                "centroid_x_px": round(cx, 3), "centroid_y_px": round(cy, 3),
                "centroid_x_mm": cx * mm if mm else None, "centroid_y_mm": cy * mm if mm else None,
                "x0": p.box[1], "y0": p.box[0], "x1": p.box[3], "y1": p.box[2]}

    def add(self, p: _Piece) -> None:
        from shapely import normalize, union_all
        from shapely.geometry import mapping

        self.count += 1
        r = self.row(p)
        self.per_class[r["class"]] = self.per_class.get(r["class"], 0) + 1
        if self.kind == ".geojson":
            geom = union_all(p.shapes) if len(p.shapes) > 1 else p.shapes[0]
            geom = normalize(geom.simplify(0))  # no collinear vertices, a canonical ring order: the same outline
            # (vertex for vertex) whatever the chunking
            feature = {"type": "Feature", "id": str(r["id"]), "geometry": mapping(geom),
                       "properties": {"objectType": "annotation", "name": f"{r['class']} {r['id']}",
                                      "classification": {"name": r["class"], "color": self.colours[p.cls]},
                                      **{k: v for k, v in r.items() if k not in ("id", "class")}}}
            self.f.write(("" if self.count == 1 else ",\n") + json.dumps(feature, separators=(",", ":")))
        elif self.kind == ".csv":
            self.csv.writerow(r)
        else:
            self.rows.append(r)

    def close(self) -> None:
        if self.kind == ".geojson":
            self.f.write("\n]}\n")
        self.f.close()
        if self.kind == ".parquet":
            import pandas as pd

            pd.DataFrame(self.rows, columns=list(COLUMNS)).to_parquet(self.path, index=False)


def export_objects(store: str | os.PathLike, out: str | os.PathLike, *, classes: tuple[str, ...] = ("void",),
                   layer: str = "labels", entrapped_mm: float = DEFAULT_ENTRAPPED_MM, overwrite: bool = False,
                   echo=print) -> ObjectsExportResult:
    """Write every object of ``classes`` in ``layer`` of ``store`` to ``out`` (see the module's docstring);
    returns {path, objects, per class}."""
    store, out = Path(store), Path(out)
    kind = out.suffix.lower()
    if kind not in FORMATS:
        raise BigsegError(f"-o {out}: name it .geojson (QuPath, GIS), .csv or .parquet")
    if kind == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise BigsegError("-o *.parquet needs pyarrow (pip install pyarrow); .csv holds the same table") from None
    if layer not in LAYERS:
        raise BigsegError(f"--layer must be one of {', '.join(LAYERS)}, not {layer!r}")
    if not (math.isfinite(entrapped_mm) and entrapped_mm > 0):
        raise BigsegError(f"--entrapped-diameter must be a positive number of mm, got {entrapped_mm}")
    group = st.open_store(store)
    refuse_overlap(out, "-o", ("store", store))
    if out.exists() and not overwrite:
        raise BigsegError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise BigsegError(f"{out.parent}: output folder does not exist")
    if layer not in group:
        hint = "run bigseg infer first" if layer == "labels" else "ingest with --truth"
        raise BigsegError(f"{store}: has no {layer} ({hint})")
    mask = st.array(group, layer)
    if not st.is_complete(mask):
        raise BigsegError(f"{store}: its {layer} are incomplete (a run did not finish); finish it first")
    table = st.class_table(group)
    by_name = {c.name: c.id for c in table}
    unknown = [c for c in classes if c not in by_name]
    if unknown or not classes:
        raise BigsegError(f"--class {unknown[0] if unknown else '(none)'}: not a class of {store} "
                          f"({', '.join(by_name)})")
    ids = [by_name[c] for c in dict.fromkeys(classes)]
    px = st.pixel_size_um(group)
    st.remove_stale_partials(out.parent, out.name)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    writer = _Writer(tmp, kind, table, px, entrapped_mm, by_name.get("void"))
    try:
        _walk(mask, ids, writer)
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.f.close()
        tmp.unlink(missing_ok=True)
        raise
    echo(f"wrote {out}: {writer.count} objects ("
         + ", ".join(f"{n} {writer.per_class.get(n, 0)}" for n in dict.fromkeys(classes)) + f") from {store}/{layer}"
         + ("" if px else " (no pixel size: sizes in px only)"))
    return ObjectsExportResult(str(out), writer.count, dict(writer.per_class))


def _walk(mask, ids: list[int], writer: _Writer) -> None:
    """The chunk rows in order: components found, joined across borders, written as soon as they are whole (no
    pixel of theirs on the lower edge of the chunk row just read)."""
    h, w = mask.shape
    ch, cw = mask.chunks
    carried: dict = {}  # keys (y0, x0, class, label) of the last chunk row's pieces on its lower edge -> open id
    still_open: dict[int, _Piece] = {}  # open id -> the object so far
    above: dict[int, dict[int, np.ndarray]] = {}  # x0 -> class -> the last chunk row's bottom row of labels
    next_id = 0
    for y0 in range(0, h, ch):
        y1 = min(y0 + ch, h)
        joiner = _Joiner()
        new: dict = {}
        bottoms: dict[int, dict[int, np.ndarray]] = {}
        on_edge: set = set()
        left: dict[int, np.ndarray] | None = None
        for x0 in range(0, w, cw):
            block = np.asarray(st.read(mask, slice(y0, y1), slice(x0, min(x0 + cw, w))))
            pieces, labels = _chunk_pieces(block, y0, x0, ids)
            for (c, k), p in pieces.items():
                new[(y0, x0, c, k)] = p
            for c in ids:
                lab = labels[c]
                if left is not None:  # the chunk to the left: its last column against this one's first
                    _link(joiner, (y0, x0 - cw, c), left[c], (y0, x0, c), lab[:, 0])
                prev = above.get(x0, {}).get(c)
                if prev is not None:  # the chunk above: its last row against this one's first
                    _link(joiner, (y0 - ch, x0, c), prev, (y0, x0, c), lab[0])
                bottoms.setdefault(x0, {})[c] = lab[-1].copy()
                if y1 < h:
                    on_edge |= {(y0, x0, c, int(k)) for k in np.unique(lab[-1]) if k}
            left = {c: labels[c][:, -1].copy() for c in ids}
        first_key: dict[int, tuple] = {}
        for key, oid in carried.items():  # keys of one open object belong together
            if oid in first_key:
                joiner.union(first_key[oid], key)
            else:
                first_key[oid] = key
        groups: dict = {}
        for key in [*new, *carried]:
            groups.setdefault(joiner.find(key), []).append(key)
        next_carried: dict = {}
        next_open: dict[int, _Piece] = {}
        for members in groups.values():
            whole: _Piece | None = None
            taken: set[int] = set()
            for k in members:
                if k in new:
                    part = new[k]
                elif carried[k] not in taken:
                    taken.add(carried[k])
                    part = still_open[carried[k]]
                else:
                    continue
                if whole is None:
                    whole = part
                else:
                    whole.merge(part)
            assert whole is not None
            edge = [k for k in members if k in on_edge]
            if edge:
                next_open[next_id] = whole
                next_carried.update({k: next_id for k in edge})
                next_id += 1
            else:
                writer.add(whole)
        carried, still_open, above = next_carried, next_open, bottoms


def _link(joiner: _Joiner, key_a, edge_a: np.ndarray, key_b, edge_b: np.ndarray) -> None:
    """Join the components facing each other across a chunk border (4-connectivity: pixel against pixel)."""
    both = (edge_a > 0) & (edge_b > 0)
    if not both.any():
        return
    for a, b in set(zip(edge_a[both].tolist(), edge_b[both].tolist(), strict=True)):
        joiner.union((*key_a, a), (*key_b, b))
