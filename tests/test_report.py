"""Air-void parameters against known answers, and the report folder a person opens (real stores, real files)."""

import csv
import itertools
import json
import math
import re
from collections import Counter

import numpy as np
import pytest
import zarr
from PIL import Image
from scipy import ndimage

from bigseg import store as st
from bigseg.infer import InferOptions, infer
from bigseg.ingest import ingest
from bigseg.report import airvoid
from bigseg.report.measure import measure_mask
from bigseg.report.report import make_report
from bigseg.synth import SynthParams, synthesize
from tests.helpers import error_line, mask_store, run_cli

P, S, V = 0, 1, 2


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


IDS = {"paste": P, "stone": S, "void": V}


def _figures(m, spacing_mm=0.2, entrapped_mm=0.3, pixel_size_um=100.0, spacing_px=2.0, **kw):
    t = airvoid.Totals.of(m, IDS, pixel_size_um, spacing_px)
    r = airvoid.airvoid_parameters(t, spacing_mm, entrapped_mm, settings=m.settings, **kw)
    return {k: p["value"] for k, p in r["parameters"].items()}, r


@pytest.mark.parametrize("chunks", [(4, 4), (3, 5), (8, 12), (2, 7)])
@pytest.mark.parametrize("rule", ["left-end", "all"])
def test_hand_computed_mask_any_chunking(tmp_path, chunks, rule):
    store = mask_store(tmp_path / "hand.zarr", _hand_mask(), chunks)
    m = measure_mask(store, "labels", IDS, 3, spacing_px=2.0, edge_chords=rule)
    assert m.line_rows.tolist() == [1, 3, 5, 7]
    # row 1: 6 (crosses a chunk border) and 1; row 3: 2 (at the right edge); row 5: 2 (at the left edge, so it
    # starts outside); row 7: 12 (all across: starts outside)
    assert m.chord_lengths == {1: 1, 2: 2, 6: 1, 12: 1}
    assert m.counted_chord_lengths == ({1: 1, 2: 1, 6: 1} if rule == "left-end" else m.chord_lengths)
    assert m.void_areas.tolist() == [1, 4, 4, 12, 12]  # 5 voids; the 12-px one on rows 1-2 crosses chunks
    assert m.class_pixels.tolist() == [51, 12, 33]

    v, r = _figures(m)
    N = 3 if rule == "left-end" else 5
    A, p, n = 33 / 96, 51 / 96, N / 4.8  # traverse: 4 lines x 12 px x 0.1 mm = 4.8 mm
    assert v["traverse_length"] == pytest.approx(4.8)
    assert v["chord_count"] == N
    assert v["air_content"] == pytest.approx(100 * A)
    assert v["paste_content"] == pytest.approx(100 * p)
    assert v["aggregate_content"] == pytest.approx(100 * 12 / 96)
    assert v["paste_air_ratio"] == pytest.approx(51 / 33)
    assert v["voids_per_mm"] == pytest.approx(n)
    assert v["average_chord_length"] == pytest.approx(A / n)  # 0.55 mm (left-end), 0.33 mm (all)
    assert v["measured_chord_length"] == pytest.approx(2.3 / N)  # 23 px of chords / N
    assert v["traverse_air_content"] == pytest.approx(100 * 23 / 48)
    assert v["traverse_paste_content"] == pytest.approx(100 * 17 / 48)
    assert v["specific_surface"] == pytest.approx(4 * n / A)
    assert v["spacing_factor"] == pytest.approx(p / (4 * n))  # p/A = 1.55 <= 4.342: eq. 13
    assert v["spacing_factor"] == pytest.approx(0.2125 if rule == "left-end" else 0.1275)
    # Procedure A: T_p / (4 N) with T_p = 17 px = 1.7 mm (T_p/T_a = 0.74 <= 4.342)
    assert v["spacing_factor_procedure_a"] == pytest.approx(1.7 / (4 * N))
    assert v["specific_surface_procedure_a"] == pytest.approx(4 * N / 2.3)
    # equivalent diameters 2 sqrt(a / pi) x 0.1 mm: 0.113, 0.226, 0.226, 0.391, 0.391 -> two above 0.3 mm
    assert v["void_count"] == 5 and v["entrapped_void_count"] == 2 and v["entrained_void_count"] == 3
    assert v["entrapped_air_content"] == pytest.approx(100 * 24 / 96)
    assert v["entrained_air_content"] == pytest.approx(100 * 9 / 96)
    hist = {(h["from_um"], h["to_um"]): h["count"] for h in r["chord_length_histogram"]}
    assert hist[(0.0, 10.0)] == 0 and sum(hist.values()) == N
    assert r["chord_lengths_um"]["every"] == {"100": 1, "200": 2, "600": 1, "1200": 1}


def test_an_unlabelled_rim_changes_nothing(tmp_path):
    """A specimen surrounded by unlabelled pixels (255: what a region mask produces) has the figures of its
    labelled part alone: the traverse runs over labelled pixels only, and a chord ending at an unlabelled pixel is
    handled as at the image edge (it read 95 % too high a spacing factor when the rim was traversed)."""
    hand = _hand_mask()
    rim = np.full((hand.shape[0] + 8, hand.shape[1] + 6), 255, np.uint8)
    rim[4:-4, 3:-3] = hand  # lines every 2 rows from row 1: rows 5, 7, 9, 11 are the mask's 1, 3, 5, 7
    for rule in ("left-end", "all"):
        alone, _ = _figures(measure_mask(mask_store(tmp_path / f"a-{rule}.zarr", hand, (4, 4)), "labels", IDS, 3,
                                         2.0, edge_chords=rule))
        rimmed, _ = _figures(measure_mask(mask_store(tmp_path / f"r-{rule}.zarr", rim, (5, 7)), "labels", IDS, 3,
                                          2.0, edge_chords=rule))
        for key in ("traverse_length", "voids_per_mm", "spacing_factor", "spacing_factor_procedure_a", "air_content",
                    "chord_count", "traverse_air_content", "average_chord_length", "measured_chord_length"):
            assert rimmed[key] == pytest.approx(alone[key]), (rule, key)


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
    m = measure_mask(store, "labels", IDS, 3, spacing_px, edge_chords="all", aggregate_voids="include")

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
    v, r = _figures(m, spacing_px * px_mm, 0.5, 10.0, spacing_px)
    assert v["air_content"] == pytest.approx(100 * area_sum / (h * w))  # exact
    n_expected = breadth_sum / (h * w) / px_mm  # chords per mm
    assert v["voids_per_mm"] == pytest.approx(n_expected, rel=0.06)
    assert v["measured_chord_length"] == pytest.approx(area_sum / breadth_sum * px_mm, rel=0.06)
    assert v["average_chord_length"] == pytest.approx(area_sum / breadth_sum * px_mm, rel=0.06)
    # equivalent diameters: 2 sqrt(a/pi) x 10 um = 0.24 mm and 0.90 mm; split at 0.5 mm
    assert v["entrapped_void_count"] == 6 and v["entrained_void_count"] == 400
    assert v["entrapped_air_content"] == pytest.approx(100 * 6 * area[r_big] / (h * w))
    d_hist = {h_["from_um"]: h_["count"] for h_ in r["void_diameter_histogram"]}
    assert d_hist[200.0] == 400 and d_hist[750.0] == 6  # 0.24 mm in (200, 300], 0.90 mm in (750, 1000]
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
    proc = run_cli("report", inferred, "-o", out, "--truth", "--traverse-spacing", "0.5", "--specimen", "B-17",
                   "--operator", "J. Smith")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"Air content A\s+[\d.]+ %\s+\[[\d.]+, [\d.]+\]\s+truth\s+[\d.]+", proc.stdout), proc.stdout
    assert "95 % interval from traverse sampling only" in proc.stdout  # not read as the whole uncertainty
    doc = json.loads((out / "stats.json").read_text())
    assert doc["bigseg_version"] and doc["pixel_size_um"] == 10
    assert doc["specimen"] == "B-17" and doc["operator"] == "J. Smith" and "bigseg report" in doc["command"]
    assert doc["slabs"][0]["model"]["sha256"] and doc["slabs"][0]["confidence"]["mean_confidence"] > 0.5
    lab, tru = doc["labels"]["parameters"], doc["truth"]["parameters"]
    # the truth's areal figures agree with the mask itself (but for voids walled in by stone: pores, not air)
    truth = zarr.open_group(str(inferred), mode="r")["truth"][:]
    assert tru["air_content"]["value"] == pytest.approx(100 * (truth == V).mean(), rel=1e-3)
    assert tru["air_content"]["value"] <= 100 * (truth == V).mean()
    assert tru["traverse_lines"]["value"] == math.ceil(700 / 50 - 0.5)  # rows 25, 75, ..., 675
    assert abs(lab["air_content"]["value"] - tru["air_content"]["value"]) < 1.0  # the bundled model is good
    assert doc["difference"]["air_content"]["value"] == pytest.approx(
        lab["air_content"]["value"] - tru["air_content"]["value"])
    assert "void_fraction" not in lab and "paste_fraction" not in lab  # no duplicates of air/paste content
    ci = doc["labels"]["airvoid"]["uncertainty"]["air_content"]
    assert ci["low"] < lab["air_content"]["value"] < ci["high"]
    rows = list(csv.DictReader((out / "stats.csv").read_text().splitlines()))
    assert [r["parameter"] for r in rows] == list(lab)
    air = next(r for r in rows if r["parameter"] == "air_content")
    assert air["unit"] == "%" and float(air["labels"]) == pytest.approx(lab["air_content"]["value"])
    assert air["name"] == "Air content A" and "Delesse" in air["source"]

    # quicklook: 2300 px wide > 2000, so at 1:2 from the image itself; voids filled blue, paste left as it is
    ql = np.asarray(Image.open(out / "quicklook.png").convert("RGB"))
    assert ql.shape[:2] == (700 // 2, 2300 // 2)
    image = zarr.open_group(str(inferred), mode="r")["image"][:].astype(np.uint16)
    half = ((image[0::2, 0::2] + image[1::2, 0::2] + image[0::2, 1::2] + image[1::2, 1::2] + 2) // 4)
    labels2 = zarr.open_group(str(inferred), mode="r")["labels"][::2, ::2]
    away_from_legend = np.zeros(ql.shape[:2], bool)
    away_from_legend[:, : ql.shape[1] // 2] = True
    blue_shift = ql[..., 2].astype(int) - half[..., 2].astype(int)
    assert blue_shift[(labels2 == V) & away_from_legend].mean() > 60  # voids are filled blue
    assert abs(blue_shift[(labels2 == P) & away_from_legend].mean()) < 3  # paste is left as it is
    for name in ("chords.png", "voids.png", "quicklook-truth.png", "errors.png", "crops.png", "confidence.png"):
        assert Image.open(out / name).size[0] > 300, name
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 7
    assert not re.search(r"(src|href)=\"(?!data:)", html)  # nothing outside the file
    assert "Spacing factor L (Procedure B)" in html and "B-17" in html and "Methods" in html
    assert doc["slabs"][0]["crops"][0]["why"] == "most voids"
    head = np.asarray(Image.open(out / "crops.png").convert("L"))[:20]  # column headings over the panels
    assert (head > 250).mean() > 0.8 and all((head[:, k * 390 : k * 390 + 120] < 128).any() for k in range(3))

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
    from bigseg.pyramid import majority
    from bigseg.report.render import downsampled_mask

    mask, _ = _discs(700, 1000, [30] * 20 + [6] * 200, seed=5)
    store = mask_store(tmp_path / "q.zarr", mask, (96, 160), pixel_size=10.0)
    small = downsampled_mask(store, "labels", 8, 3)
    assert small.shape == (88, 125)
    assert np.array_equal(small, majority(mask, 8, 3))
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


def test_report_on_a_traced_mask_no_model(tmp_path, inferred):
    """``--source truth``: the same report measured on the store's truth, no model -- its figures are the truth
    column of a ``--truth`` report, and nothing in it speaks of a model."""
    both = tmp_path / "both"
    assert run_cli("report", inferred, "-o", both, "--truth", "--traverse-spacing", "0.5").returncode == 0
    traced = tmp_path / "traced"
    proc = run_cli("report", inferred, "-o", traced, "--source", "truth", "--traverse-spacing", "0.5")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((traced / "stats.json").read_text())
    ref = json.loads((both / "stats.json").read_text())
    assert doc["source"] == "truth" and doc["settings"]["source"] == "truth"
    assert {k: v["value"] for k, v in doc["labels"]["parameters"].items()} == \
        {k: v["value"] for k, v in ref["truth"]["parameters"].items()}
    assert doc["slabs"][0]["model"] == {"traced": "truth"} and doc["slabs"][0]["confidence"] is None
    assert not (traced / "confidence.png").exists() and (traced / "quicklook.png").exists()
    html = (traced / "report.html").read_text()
    assert "traced" in html and "model was calibrated" not in html and "bundled model" not in html
    # the quicklook is the truth's: the same picture as the --truth report's truth quicklook, but for its legend
    a = np.asarray(Image.open(traced / "quicklook.png").convert("RGB"))
    b = np.asarray(Image.open(both / "quicklook-truth.png").convert("RGB"))
    assert a.shape == b.shape and (a[:, : a.shape[1] // 2] == b[:, : b.shape[1] // 2]).mean() > 0.99

    # a store with a traced mask and no labels at all: the report needs no model
    s = synthesize(tmp_path / "slab.png", SynthParams(600, 400, seed=3, pixel_size_um=10))
    plain = tmp_path / "plain.zarr"
    ingest(s["image"], plain, truth=s["truth"], chunk=256)
    assert run_cli("report", plain, "--source", "truth").returncode == 0
    assert "--truth compares a model's labels" in error_line(run_cli("report", plain, "--source", "truth",
                                                                     "--truth", "-o", tmp_path / "x"))


def test_chunk_results_keep_no_views_of_large_arrays(tmp_path, slab_png):
    """The driver holds every chunk's result until the figures are assembled: an array in a result that is a view
    keeps its whole base alive (per-row counts as a view of a rows x 256 table made a 300 Mpx report peak at
    2.1 GB). Every array in a result owns its data, or is a view of something small (16 KB) or twice itself."""
    from bigseg.report.measure import analyse_chunk, traverse_rows

    store = tmp_path / "s.zarr"
    ingest(slab_png, store, truth=slab_png.with_name("slab.truth.png"), chunk=256)
    ids = {"paste": P, "stone": S, "void": V}
    rows, cols = traverse_rows(256, 20), traverse_rows(256, 20)
    out = analyse_chunk(str(store), "truth", 256, 512, 256, 512, rows + 256, cols + 256, ids, 3)

    def arrays(value):
        if isinstance(value, np.ndarray):
            yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from arrays(v)
        elif isinstance(value, list | tuple):
            for v in value:
                yield from arrays(v)

    found = list(arrays(out))
    assert len(found) > 10
    for a in found:
        assert a.base is None or a.base.nbytes <= max(2 * a.nbytes, 16384), (a.shape, a.base.shape)


def test_numbers_are_formatted_for_people():
    from bigseg.report import html
    from bigseg.report.report import _fmt

    assert _fmt(30000.0) == "30000" and _fmt(1234.56) == "1235" and _fmt(4.0733) == "4.073"
    assert html._fmt(30000.0) == "30\u2009000" and html._fmt(0.1707) == "0.1707"
    assert "e+" not in _fmt(98765.4) + html._fmt(98765.4)


def test_voids_wider_than_the_models_window_are_said(tmp_path):
    """A void wider than the window the labels were made with was never seen whole by the model: the report says
    so (and says nothing when every void fits)."""
    yy, xx = np.mgrid[:600, :800]
    m = np.full((600, 800), P, np.uint8)
    m[(yy - 300) ** 2 + (xx - 400) ** 2 <= 150**2] = V  # 300 px across
    m[(yy - 60) ** 2 + (xx - 60) ** 2 <= 10**2] = V
    Image.fromarray(np.stack([m * 60] * 3, axis=-1).astype(np.uint8)).save(tmp_path / "s.png")
    Image.fromarray(m).save(tmp_path / "s.truth.png")
    for window, said in ((256, True), (512, False)):
        store = tmp_path / f"s{window}.zarr"
        ingest(tmp_path / "s.png", store, truth=tmp_path / "s.truth.png", pixel_size=10)
        g = zarr.open_group(str(store), mode="r+")
        lab = st.create_array(g, "labels", m.shape, (256, 256), ("y", "x"), attrs={"run": {"window": window}})
        lab[...] = m
        st.set_complete(lab)
        doc = make_report(store, tmp_path / f"r{window}", echo=lambda *_: None)
        wide = [w for w in doc["warnings"] if "wider than the model's window" in w]
        assert bool(wide) == said, doc["warnings"]
        if said:
            assert "1 void wider than the model's window (256 px = 2.56 mm)" in wide[0]
