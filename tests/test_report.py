"""Air-void parameters against known answers, and the report folder a person opens (real stores, real files)."""

import csv
import itertools
import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import zarr
from PIL import Image
from scipy import ndimage

from bigseg import store as st
from bigseg.classes import CONCRETE
from bigseg.infer import InferOptions, infer
from bigseg.ingest import ingest
from bigseg.report import airvoid
from bigseg.report.report import make_report
from bigseg.synth import SynthParams, synthesize
from tests.conftest import error_line, run_cli

P, S, V = 0, 1, 2


def mask_store(path: Path, labels: np.ndarray, chunks, pixel_size=100.0, truth: np.ndarray | None = None) -> Path:
    """A slab store on disk whose labels (and truth) are the given masks; the image is a grey rendering."""
    group = st.zarr_open_new(path)
    st.init_root_attrs(group, source={"file": "test"}, pixel_size=pixel_size, classes=CONCRETE)
    grey = np.array([150, 200, 40], np.uint8)[np.minimum(labels, 2)]
    for name, data, dims, ch in (("image", np.repeat(grey[..., None], 3, axis=2), ("y", "x", "band"), (*chunks, 3)),
                                 ("labels", labels, ("y", "x"), chunks), ("truth", truth, ("y", "x"), chunks)):
        if data is None:
            continue
        arr = st.create_array(group, name, data.shape, ch, dims)
        arr[...] = data
        st.set_complete(arr)
    return path


# the hand-computed mask: 8 x 12 px of 0.1 mm; traverse lines every 0.2 mm = rows 1, 3, 5, 7
HAND = """
............
.VVVVVV..V..
.VVVVVV.....
....SSSS..VV
VV..SSSS..VV
VV..SSSS....
............
VVVVVVVVVVVV
"""


def _hand_mask():
    rows = HAND.split()
    return np.array([[{".": P, "S": S, "V": V}[c] for c in r] for r in rows], np.uint8)


@pytest.mark.parametrize("chunks", [(4, 4), (3, 5), (8, 12), (2, 7)])
def test_hand_computed_mask_any_chunking(tmp_path, chunks):
    store = mask_store(tmp_path / "hand.zarr", _hand_mask(), chunks)
    m = airvoid.measure_mask(store, "labels", V, 3, spacing_px=2.0)
    assert m.line_rows.tolist() == [1, 3, 5, 7]
    # row 1: 6 (crosses a chunk border) and 1; row 3: 2 (at the right edge); row 5: 2 (left edge); row 7: 12
    assert m.chord_lengths == {1: 1, 2: 2, 6: 1, 12: 1}
    assert m.void_areas.tolist() == [1, 4, 4, 12, 12]  # 5 voids; the 12-px one on rows 1-2 crosses chunks
    assert m.class_pixels.tolist() == [51, 12, 33]

    r = airvoid.airvoid_parameters(m, {"paste": P, "stone": S, "void": V}, pixel_size_um=100.0, spacing_mm=0.2,
                                   entrapped_mm=0.3)
    v = {k: p["value"] for k, p in r["parameters"].items()}
    A, p, n = 33 / 96, 51 / 96, 5 / 4.8  # traverse: 4 lines x 12 px x 0.1 mm = 4.8 mm, 5 chords
    assert v["traverse_length"] == pytest.approx(4.8)
    assert v["chord_count"] == 5
    assert v["air_content"] == pytest.approx(100 * A)
    assert v["paste_content"] == pytest.approx(100 * p)
    assert v["aggregate_content"] == pytest.approx(100 * 12 / 96)
    assert v["paste_air_ratio"] == pytest.approx(51 / 33)
    assert v["voids_per_mm"] == pytest.approx(n)
    assert v["average_chord_length"] == pytest.approx(0.33)  # A / n
    assert v["measured_chord_length"] == pytest.approx(0.46)  # 23 px of chords / 5
    assert v["traverse_air_content"] == pytest.approx(100 * 23 / 48)
    assert v["specific_surface"] == pytest.approx(4 / 0.33)
    assert v["spacing_factor"] == pytest.approx(p / (4 * n))  # p/A = 1.55 <= 4.342: eq. 13
    assert v["spacing_factor"] == pytest.approx(0.1275)
    # equivalent diameters 2 sqrt(a / pi) x 0.1 mm: 0.113, 0.226, 0.226, 0.391, 0.391 -> two above 0.3 mm
    assert v["void_count"] == 5 and v["entrapped_void_count"] == 2 and v["entrained_void_count"] == 3
    assert v["entrapped_air_content"] == pytest.approx(100 * 24 / 96)
    assert v["entrained_air_content"] == pytest.approx(100 * 9 / 96)
    hist = {(h["from_um"], h["to_um"]): h["count"] for h in r["chord_length_histogram"]}
    assert hist[(100.0, 120.0)] == 1 and hist[(200.0, 250.0)] == 2 and hist[(500.0, 750.0)] == 1
    assert hist[(1000.0, 1500.0)] == 1 and sum(hist.values()) == 5


def test_powers_spacing_factor_branches():
    # p/A = 6 > 4.342: eq. 14, L = 3/alpha (1.4 (1 + p/A)^(1/3) - 1), worked by hand: alpha = 4 / (A/n) = 32
    assert airvoid.powers_spacing_factor(0.30, 0.05, 0.4, 32.0) == pytest.approx(0.09375 * (1.4 * 7 ** (1 / 3) - 1))
    assert airvoid.powers_spacing_factor(0.30, 0.05, 0.4, 32.0) == pytest.approx(0.157322, abs=1e-6)
    # the branches meet at p/A = 4.342 when alpha = 4 n / A
    A, n = 0.05, 0.4
    below = airvoid.powers_spacing_factor(4.342 * A, A, n, 4 * n / A)
    above = airvoid.powers_spacing_factor(4.3421 * A, A, n, 4 * n / A)
    assert above == pytest.approx(below, rel=1e-3)
    assert airvoid.powers_spacing_factor(0.3, 0.0, 0.0, None) is None


def _discs(h, w, radii, seed):
    """Non-overlapping, non-touching discs (pixel centres within r of integer centres) at random positions."""
    rng = np.random.default_rng(seed)
    mask = np.full((h, w), P, np.uint8)
    mask[:, : w // 3] = S  # some stone, so that p < 1
    placed = []
    for r in radii:
        for _ in range(1000):
            cy, cx = int(rng.integers(r, h - r)), int(rng.integers(r, w - r))
            if all((cy - y) ** 2 + (cx - x) ** 2 > (r + q + 3) ** 2 for y, x, q in placed):
                placed.append((cy, cx, r))
                break
    for cy, cx, r in placed:
        dy, dx = np.mgrid[-r: r + 1, -r: r + 1]
        disc = dy**2 + dx**2 <= r * r
        mask[cy - r: cy + r + 1, cx - r: cx + r + 1][disc] = V
    return mask, placed


def _reference_chords(mask, rows):
    """Plain per-row run lengths over the whole array: an independent implementation."""
    c = Counter()
    for y in rows:
        for is_void, run in itertools.groupby(mask[y] == V):
            if is_void:
                c[len(list(run))] += 1
    return dict(sorted(c.items()))


def test_discs_of_known_geometry(tmp_path):
    h, w, r_small, r_big = 1500, 1800, 12, 45
    mask, placed = _discs(h, w, [r_big] * 6 + [r_small] * 400, seed=3)
    assert len(placed) == 406
    store = mask_store(tmp_path / "discs.zarr", mask, (256, 256), pixel_size=10.0)
    spacing_px = 7.0
    m = airvoid.measure_mask(store, "labels", V, 3, spacing_px)

    # exact: whole-array reference implementations (discs cross many of the 256 px chunk borders)
    assert m.chord_lengths == _reference_chords(mask, m.line_rows)
    lab, n_ref = ndimage.label(mask == V)
    assert n_ref == len(placed) == len(m.void_areas)
    assert sorted(np.bincount(lab.ravel())[1:].tolist()) == m.void_areas.tolist()

    # analytic: a disc of area a and breadth b (rows it spans) is cut by lines one row apart on average a/b
    # long (Cauchy-Crofton), and a line meets N_A * b discs per unit length (N_A = discs per unit area)
    area = {r: int((np.add.outer(np.arange(-r, r + 1) ** 2, np.arange(-r, r + 1) ** 2) <= r * r).sum())
            for r in (r_small, r_big)}
    counts = Counter(r for _, _, r in placed)
    breadth_sum = sum((2 * r + 1) * k for r, k in counts.items())
    area_sum = sum(area[r] * k for r, k in counts.items())
    px_mm = 0.01
    r = airvoid.airvoid_parameters(m, {"paste": P, "stone": S, "void": V}, 10.0, spacing_px * px_mm, entrapped_mm=0.5)
    v = {k: p["value"] for k, p in r["parameters"].items()}
    assert v["air_content"] == pytest.approx(100 * area_sum / (h * w))  # exact
    n_expected = breadth_sum / (h * w) / px_mm  # chords per mm
    assert v["voids_per_mm"] == pytest.approx(n_expected, rel=0.06)
    assert v["measured_chord_length"] == pytest.approx(area_sum / breadth_sum * px_mm, rel=0.06)
    assert v["average_chord_length"] == pytest.approx(area_sum / breadth_sum * px_mm, rel=0.06)
    # equivalent diameters: 2 sqrt(a/pi) x 10 um = 0.24 mm and 0.90 mm; split at 0.5 mm
    assert v["entrapped_void_count"] == 6 and v["entrained_void_count"] == 400
    assert v["entrapped_air_content"] == pytest.approx(100 * 6 * area[r_big] / (h * w))
    d_hist = {h_["from_um"]: h_["count"] for h_ in r["void_diameter_histogram"]}
    assert d_hist[200.0] == 400 and d_hist[750.0] == 6  # 0.24 mm in 200-300, 0.90 mm in 750-1000
    p_ = v["paste_content"] / 100
    assert p_ / (v["air_content"] / 100) > 4.342  # eq. 14 applies
    alpha = 4 / v["average_chord_length"]
    assert v["spacing_factor"] == pytest.approx(3 / alpha * (1.4 * (1 + p_ / (v["air_content"] / 100)) ** (1 / 3) - 1))


def test_no_voids_gives_zeros_not_nan(tmp_path):
    mask = np.full((300, 500), P, np.uint8)
    mask[100:200, 100:300] = S
    store = mask_store(tmp_path / "novoid.zarr", mask, (128, 128), pixel_size=20.0)
    doc = make_report(store, tmp_path / "rep", echo=lambda *_: None)
    v = {k: p["value"] for k, p in doc["labels"]["parameters"].items()}
    assert v["air_content"] == 0 and v["void_count"] == 0 and v["chord_count"] == 0 and v["voids_per_mm"] == 0
    assert v["entrained_air_content"] == 0 and v["entrapped_air_content"] == 0
    for k in ("spacing_factor", "average_chord_length", "specific_surface", "paste_air_ratio"):
        assert v[k] is None, k
    json.loads((tmp_path / "rep" / "stats.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "NaN" not in html and "nan" not in re.sub(r"base64,[^\"]+", "", html)


@pytest.fixture(scope="module")
def inferred(tmp_path_factory):
    """A real pipeline: synthetic slab -> ingest with truth -> infer with the bundled model."""
    d = tmp_path_factory.mktemp("report")
    s = synthesize(d / "slab.png", SynthParams(2300, 700, seed=8, pixel_size_um=10))
    store = d / "slab.zarr"
    ingest(s["image"], store, truth=s["truth"], chunk=512)
    infer(store, options=InferOptions(window=512, overlap=64, workers=0))
    return store


def test_report_cli_writes_a_report_people_can_open(tmp_path, inferred):
    out = tmp_path / "rep"
    proc = run_cli("report", inferred, "-o", out, "--truth", "--traverse-spacing", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"air_content\s+[\d.]+ %\s+truth\s+[\d.]+", proc.stdout), proc.stdout
    doc = json.loads((out / "stats.json").read_text())
    assert doc["bigseg_version"] and doc["pixel_size_um"] == 10
    lab, tru = doc["labels"]["parameters"], doc["truth"]["parameters"]
    # the truth's areal figures agree with the mask itself
    truth = zarr.open_group(str(inferred), mode="r")["truth"][:]
    assert tru["air_content"]["value"] == pytest.approx(100 * (truth == V).mean())
    assert tru["traverse_lines"]["value"] == math.ceil(700 / 50 - 0.5)  # rows 25, 75, ..., 675
    assert abs(lab["air_content"]["value"] - tru["air_content"]["value"]) < 1.0  # the bundled model is good
    assert doc["difference"]["air_content"]["value"] == pytest.approx(
        lab["air_content"]["value"] - tru["air_content"]["value"])
    rows = list(csv.DictReader((out / "stats.csv").read_text().splitlines()))
    assert [r["parameter"] for r in rows] == list(lab)
    air = next(r for r in rows if r["parameter"] == "air_content")
    assert air["unit"] == "%" and float(air["labels"]) == pytest.approx(lab["air_content"]["value"])

    # quicklook: 2300 px wide > 2000, so the finest preview level that fits (x4), with the mask tinted over it
    ql = np.asarray(Image.open(out / "quicklook.png").convert("RGB"))
    assert ql.shape[:2] == (math.ceil(700 / 4), math.ceil(2300 / 4))
    preview = zarr.open_group(str(inferred), mode="r")["preview/x4"][:]
    labels4 = zarr.open_group(str(inferred), mode="r")["labels"][::4, ::4]
    away_from_legend = np.zeros(ql.shape[:2], bool)
    away_from_legend[:, : ql.shape[1] // 2] = True
    void_px = (labels4 == V) & away_from_legend
    blue_shift = ql[..., 2].astype(int) - preview[..., 2].astype(int)
    assert blue_shift[void_px].mean() > 20  # voids are tinted blue
    assert abs(blue_shift[(labels4 == P) & away_from_legend].mean()) < 15  # paste is tinted grey
    for name in ("chords.png", "voids.png", "quicklook-truth.png"):
        assert Image.open(out / name).size[0] > 300
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4
    assert not re.search(r"(src|href)=\"(?!data:)", html)  # nothing outside the file
    assert "spacing_factor" in html and "<table>" in html

    # an existing report is kept without --overwrite
    before = (out / "stats.json").read_bytes()
    proc = run_cli("report", inferred, "-o", out)
    assert "exists; pass --overwrite" in error_line(proc)
    assert (out / "stats.json").read_bytes() == before


def test_report_bad_inputs(tmp_path, slab_png):
    store = tmp_path / "s.zarr"
    ingest(slab_png, store, truth=slab_png.with_name("slab.truth.png"))
    assert "no labels in the store; run 'bigseg infer" in error_line(run_cli("report", store))
    lab = zarr.open_group(str(store), mode="r+")
    arr = st.create_array(lab, "labels", lab["truth"].shape, (512, 512), ("y", "x"))
    assert "labels are incomplete" in error_line(run_cli("report", store))
    arr[...] = lab["truth"][:]
    st.set_complete(arr)
    lab.attrs["pixel_size_um"] = None
    assert "--pixel-size UM" in error_line(run_cli("report", store))
    assert "--traverse-spacing" in error_line(run_cli("report", store, "--pixel-size", "10",
                                                      "--traverse-spacing", "0.001"))
    assert not (tmp_path / "s-report").exists()
    proc = run_cli("report", store, "--pixel-size", "10")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "s-report" / "stats.json").read_text())["pixel_size_um"] == 10


def test_quicklook_mask_is_the_block_majority_whatever_the_chunks(tmp_path):
    from bigseg.report.render import _majority, downsampled_mask

    mask, _ = _discs(700, 1000, [30] * 20 + [6] * 200, seed=5)
    store = mask_store(tmp_path / "q.zarr", mask, (96, 160), pixel_size=10.0)
    small = downsampled_mask(store, "labels", 8, 3)
    assert small.shape == (88, 125)
    assert np.array_equal(small, _majority(mask, 8, 3))
    assert (small == V).sum() == pytest.approx((mask == V).sum() / 64, rel=0.1)


def test_concrete_figures_for_a_concrete_table_in_any_order():
    """Area statistics and air-void figures agree on what a concrete table is: paste, stone and void by name,
    in any order (a table listing stone, paste, void got air-void figures but no concrete statistics)."""
    from bigseg.classes import ClassInfo, concrete_ids
    from bigseg.report.stats import statistics_from_counts

    table = (ClassInfo(0, "stone", (1, 1, 1)), ClassInfo(1, "paste", (2, 2, 2)), ClassInfo(2, "void", (3, 3, 3)))
    stats = statistics_from_counts(np.array([60, 30, 10]), table, 10.0)
    assert concrete_ids(table) == {"paste": 1, "stone": 0, "void": 2}
    assert stats["concrete"] == {"void_fraction": 0.1, "stone_fraction": 0.6, "paste_fraction": 0.3,
                                 "stone_void_ratio": 6.0}
    other = (ClassInfo(0, "road", (1, 1, 1)), ClassInfo(1, "sky", (2, 2, 2)))
    assert concrete_ids(other) is None and "concrete" not in statistics_from_counts(np.array([5, 5]), other, None)
