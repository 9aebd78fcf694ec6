"""export-objects: every void as one object, joined across chunk borders, read back with GeoJSON and CSV readers
and checked against the mask's own connected components."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from bigseg.ingest import ingest
from tests.helpers import error_line, run_cli

P, S, V = 0, 1, 2
PX_UM = 10.0


def _mask(h=300, w=420) -> np.ndarray:
    """Paste with stones and voids: discs across chunk borders (64 px chunks), a void with a stone island (a hole
    in its outline), a U-shaped void whose arms meet only in the chunk row below, one-pixel voids."""
    yy, xx = np.mgrid[:h, :w]
    m = np.full((h, w), P, np.uint8)
    for cy, cx, r in ((64, 64, 20), (150, 250, 60), (40, 380, 12)):  # stone
        m[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = S
    for cy, cx, r in ((128, 128, 30), (64, 190, 9), (230, 60, 15), (250, 360, 40), (20, 20, 3)):
        m[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = V
    m[(yy - 250) ** 2 + (xx - 360) ** 2 <= 8 * 8] = S  # a stone island inside the big void: a hole
    m[100:130, 20:26] = V  # a U: two arms in one chunk row, joined by a bar in the next
    m[100:130, 40:46] = V
    m[128:134, 20:46] = V
    m[5, 300] = V
    m[299, 419] = V
    return m


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("objects")
    m = _mask()
    Image.fromarray(np.stack([m * 60] * 3, axis=-1).astype(np.uint8)).save(d / "slab.png")
    Image.fromarray(m).save(d / "slab.truth.png")
    out = {}
    for chunk in (64, 1024):
        out[chunk] = d / f"c{chunk}.zarr"
        ingest(d / "slab.png", out[chunk], truth=d / "slab.truth.png", chunk=chunk, pixel_size=PX_UM)
    return m, out


def _components(m, cls):
    four = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
    lab, n = ndimage.label(m == cls, structure=four)
    idx = np.arange(1, n + 1)
    areas = ndimage.sum_labels(np.ones_like(lab), lab, idx)
    cy, cx = (np.array(v) + 0.5 for v in zip(*ndimage.center_of_mass(np.ones_like(lab), lab, idx), strict=True))
    return sorted(zip(areas.astype(int).tolist(), np.round(cx, 3).tolist(), np.round(cy, 3).tolist(), strict=True))


def test_voids_as_geojson_match_the_masks_components_whatever_the_chunks(tmp_path, stores):
    from shapely.geometry import shape

    m, paths = stores
    expected = _components(m, V)
    seen = {}
    for chunk, store in paths.items():
        out = tmp_path / f"voids-{chunk}.geojson"
        proc = run_cli("export-objects", store, "-o", out, "--layer", "truth")
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(out.read_text())  # a GeoJSON reader's view: one FeatureCollection
        assert doc["type"] == "FeatureCollection"
        feats = doc["features"]
        got = sorted((f["properties"]["area_px"], f["properties"]["centroid_x_px"], f["properties"]["centroid_y_px"])
                     for f in feats)
        assert got == expected  # the U and the discs across chunk borders are one object each
        for f in feats:
            g = shape(f["geometry"])
            assert g.is_valid and g.geom_type == "Polygon"
            assert g.area == f["properties"]["area_px"]  # the outline covers exactly the object's pixels
            assert f["properties"]["objectType"] == "annotation"  # QuPath imports it as an annotation
            assert f["properties"]["classification"] == {"name": "void", "color": [30, 90, 230]}
        big = max(feats, key=lambda f: f["properties"]["area_px"])
        assert len(shape(big["geometry"]).interiors) == 1  # the stone island is a hole
        assert big["properties"]["kind"] == "entrained"  # about 78 px = 0.78 mm: below the default 1 mm
        seen[chunk] = [(f["properties"]["area_px"], shape(f["geometry"]).wkt) for f in feats]
    assert sorted(seen[64]) == sorted(seen[1024])  # identical outlines for any chunking


def test_csv_table_sizes_in_mm_and_entrapped_air(tmp_path, stores):
    pd = pytest.importorskip("pandas")
    m, paths = stores
    out = tmp_path / "objects.csv"
    proc = run_cli("export-objects", paths[64], "-o", out, "--layer", "truth", "--class", "void", "--class", "stone",
                   "--entrapped-diameter", "0.5")
    assert proc.returncode == 0, proc.stderr
    t = pd.read_csv(out)
    assert sorted(t[t["class"] == "stone"]["area_px"]) == [a for a, _, _ in _components(m, S)]
    voids = t[t["class"] == "void"]
    d = 2 * np.sqrt(voids["area_px"] / np.pi) * PX_UM / 1000
    assert np.allclose(voids["equivalent_diameter_mm"], d)
    assert (voids["kind"] == np.where(d >= 0.5, "entrapped", "entrained")).all()
    assert np.allclose(voids["area_mm2"], voids["area_px"] * (PX_UM / 1000) ** 2)
    assert np.allclose(voids["centroid_x_mm"], voids["centroid_x_px"] * PX_UM / 1000)
    assert t["kind"][t["class"] == "stone"].isna().all()


def test_export_objects_bad_input(tmp_path, stores):
    _, paths = stores
    store = paths[64]
    assert "name it .geojson" in error_line(run_cli("export-objects", store, "-o", tmp_path / "v.shp"))
    assert "has no labels (run bigseg infer first)" in error_line(run_cli("export-objects", store, "-o",
                                                                          tmp_path / "v.csv"))
    assert "--class gravel: not a class" in error_line(run_cli("export-objects", store, "-o", tmp_path / "v.csv",
                                                               "--layer", "truth", "--class", "gravel"))
    (tmp_path / "keep.csv").write_text("mine")
    assert "exists; pass --overwrite" in error_line(run_cli("export-objects", store, "-o", tmp_path / "keep.csv",
                                                            "--layer", "truth"))
    assert (tmp_path / "keep.csv").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.csv"]
