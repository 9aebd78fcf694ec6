"""Air-void figures against geometry with known answers: edge rules, pores of the aggregate, directions, the EN
480-11 unfolding of spheres, several slabs, the specimen region, the uncertainty against the spread of many slabs."""

import json
import math

import numpy as np
import pytest

from bigseg.report import airvoid, en480
from bigseg.report.measure import measure_mask
from bigseg.report.report import make_report
from bigseg.synth import SynthParams, renderer
from tests.helpers import error_line, mask_store, run_cli
from tests.test_report import IDS, P, S, V, _figures, _hand_mask


def _disc(mask, cy, cx, r, value=V):
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    inside = dy**2 + dx**2 <= r * r
    y0, x0 = cy - r, cx - r
    ys, xs = np.nonzero(inside)
    ys, xs = ys + y0, xs + x0
    ok = (ys >= 0) & (ys < mask.shape[0]) & (xs >= 0) & (xs < mask.shape[1])
    mask[ys[ok], xs[ok]] = value


def test_left_end_rule_is_unbiased_where_counting_every_cut_chord_is_not(tmp_path):
    """Discs of radius r cut by the edges of a narrow crop (13 radii wide): counting every chord over-counts by
    about pi r / (2 W); counting a chord only when it starts inside gives the density of an infinite section."""
    r, w, h = 12, 156, 6000
    rng = np.random.default_rng(4)
    mask = np.full((h, w), P, np.uint8)
    centres = []
    for _ in range(20000):  # a non-overlapping set of discs over a region wider than the crop
        cy, cx = int(rng.integers(-r, h + r)), int(rng.integers(-r, w + r))
        if all((cy - y) ** 2 + (cx - x) ** 2 > (2 * r + 3) ** 2 for y, x in centres[-400:]):
            centres.append((cy, cx))
        if len(centres) >= 450:
            break
    for cy, cx in centres:
        _disc(mask, cy, cx, r)
    store = mask_store(tmp_path / "narrow.zarr", mask, (256, 64), pixel_size=10.0)
    # expected chords per px of line: discs per px^2 x breadth (2r + 1 rows), discs counted over the plane
    density = len(centres) / ((h + 2 * r) * (w + 2 * r))
    expected = density * (2 * r + 1)
    left = measure_mask(store, "labels", IDS, 3, 3.0, edge_chords="left-end")
    every = measure_mask(store, "labels", IDS, 3, 3.0, edge_chords="all")
    per_px = {name: sum(m.counted_chord_lengths.values()) / m.line_stats.labelled.sum()
              for name, m in (("left", left), ("all", every))}
    assert per_px["left"] == pytest.approx(expected, rel=0.05)
    assert per_px["all"] / per_px["left"] > 1 + 0.6 * math.pi * r / (2 * w)


def test_voids_walled_in_by_stone_are_pores_not_air(tmp_path):
    mask = np.full((200, 300), P, np.uint8)
    mask[20:120, 20:140] = S
    _disc(mask, 70, 80, 8)  # a pore inside the stone
    _disc(mask, 60, 220, 8)  # an air void in the paste
    _disc(mask, 70, 142, 8)  # an air void against the stone (part of its boundary on stone)
    store = mask_store(tmp_path / "pores.zarr", mask, (64, 64), pixel_size=10.0)
    kept = measure_mask(store, "labels", IDS, 3, 10.0)
    counted = measure_mask(store, "labels", IDS, 3, 10.0, aggregate_voids="include")
    disc = int(((np.mgrid[-8:9, -8:9] ** 2).sum(0) <= 64).sum())
    assert kept.excluded_aggregate_voids == 1 and len(kept.void_areas) == 2
    assert kept.class_pixels[V] == counted.class_pixels[V] - disc
    assert kept.class_pixels[S] == counted.class_pixels[S] + disc  # the pore counts as stone
    assert len(counted.void_areas) == 3


def test_smallest_voids_and_plausibility(tmp_path):
    mask = np.full((100, 100), P, np.uint8)
    mask[10, 10] = mask[50, 70] = V  # single pixels: noise at 10 um/px
    _disc(mask, 30, 60, 5)
    store = mask_store(tmp_path / "tiny.zarr", mask, (64, 64), pixel_size=10.0)
    assert len(measure_mask(store, "labels", IDS, 3, 5.0).void_areas) == 3
    filtered = measure_mask(store, "labels", IDS, 3, 5.0, min_void_px=5)
    assert len(filtered.void_areas) == 1 and filtered.excluded_small_voids == 2
    assert airvoid.plausibility(23.0, 40.0) and airvoid.plausibility(5.0, 8.0) and not airvoid.plausibility(5, 30)
    low = airvoid.plausibility(0.1, 30.0)  # a model blind to an image's voids (UV-fluorescent: 0.0-0.4 %)
    assert len(low) == 1 and low[0].startswith("air content 0.10 % is below 0.5 %")
    assert not airvoid.plausibility(0.6, 30.0)


def test_vertical_traverse_of_a_mask_is_the_horizontal_one_of_its_transpose(tmp_path):
    hand = _hand_mask()
    rows = measure_mask(mask_store(tmp_path / "h.zarr", hand, (3, 5)), "labels", IDS, 3, 2.0)
    cols = measure_mask(mask_store(tmp_path / "t.zarr", np.ascontiguousarray(hand.T), (5, 3)), "labels", IDS, 3,
                        2.0, direction="vertical")
    assert cols.chord_lengths == rows.chord_lengths and cols.counted_chord_lengths == rows.counted_chord_lengths
    both = measure_mask(mask_store(tmp_path / "b.zarr", hand, (4, 4)), "labels", IDS, 3, 2.0, direction="both")
    assert len(both.lines) == 4 + 6 and both.line_stats.labelled.sum() == 4 * 12 + 6 * 8


def test_upper_inclusive_classes_and_the_exact_histogram(tmp_path):
    mask = np.full((3, 10), P, np.uint8)
    mask[1, 2:5] = V  # a chord of exactly 3 px = 300 um at 100 um/px
    m = measure_mask(mask_store(tmp_path / "c.zarr", mask, (3, 10), pixel_size=100.0), "labels", IDS, 3, 3.0)
    v, r = _figures(m, 0.3, 1.0, 100.0, 3.0)
    hist = {(h["from_um"], h["to_um"]): h["count"] for h in r["chord_length_histogram"]}
    assert hist[(250.0, 300.0)] == 1 and hist[(300.0, 400.0)] == 0
    table = {(c["from_um"], c["to_um"]): c["chords"] for c in r["en480_chord_classes"]}
    assert len(table) == 28 and table[(280.0, 300.0)] == 1
    assert r["chord_lengths_um"]["counted"] == {"300": 1}


def test_en480_unfolding_of_spheres_sectioned_by_a_plane(tmp_path):
    """Spheres of 200 um and 1000 um diameter (2 % and 3 % of the volume), non-overlapping, cut by a plane: the
    section's chords unfold into A300 of about 2 % and a total of about 5 %."""
    px = 10.0  # um
    side = 4000  # px: 40 mm
    rng = np.random.default_rng(7)
    spheres = []
    for d_um, fraction in ((1000.0, 0.03), (200.0, 0.02)):
        d = d_um / 1000.0
        n = rng.poisson(fraction / (math.pi * d**3 / 6) * 40 * 40 * d)  # spheres within d/2 of the plane
        for _ in range(n):
            spheres.append((rng.uniform(0, 40), rng.uniform(0, 40), rng.uniform(-d / 2, d / 2), d))
    mask = np.full((side, side), P, np.uint8)
    placed = []
    for y, x, z, d in spheres:
        if all((y - y2) ** 2 + (x - x2) ** 2 + (z - z2) ** 2 > ((d + d2) / 2) ** 2 for y2, x2, z2, d2 in placed
               if abs(y - y2) < 1.1 and abs(x - x2) < 1.1):
            placed.append((y, x, z, d))
            r_px = math.sqrt(max(d * d / 4 - z * z, 0)) * 1000 / px
            if r_px >= 0.5:
                _disc(mask, int(y * 1000 / px), int(x * 1000 / px), int(round(r_px)))
    store = mask_store(tmp_path / "spheres.zarr", mask, (1024, 1024), pixel_size=px)
    m = measure_mask(store, "labels", IDS, 3, 10.0, edge_chords="all")
    v, r = _figures(m, 0.1, 1.0, px, 10.0)
    assert v["en_air_content"] == pytest.approx(5.0, rel=0.15)
    assert v["micro_air_content_a300"] == pytest.approx(2.0, rel=0.2)
    assert v["unfolded_air_content"] == pytest.approx(v["en_air_content"], rel=0.15)


def test_unfolding_is_exact_for_class_limit_spheres():
    """Chords of spheres of one class-limit diameter D, as the formula gives them, unfold to those spheres."""
    e = np.asarray(en480.EN_CLASSES_UM, float) / 1000
    lo = np.concatenate([[0], e[:-1]])
    D, nv = e[17], 5.0  # 300 um spheres, 5 per mm^3
    chords_per_mm = np.where(e <= D, nv * math.pi / 4 * (e**2 - lo**2), 0.0)
    u = en480.unfold(chords_per_mm * 1000, 1000.0)
    assert u["spheres_per_mm3"][17] == pytest.approx(nv) and u["spheres_per_mm3"].sum() == pytest.approx(nv)
    assert u["air_volume_fraction"].sum() == pytest.approx(nv * math.pi * D**3 / 6)


def _truth_store(path, seed, size=1200, px=20.0):
    params = SynthParams(size, size, seed=seed, pixel_size_um=px)
    _, truth = renderer(params)(0, 0, size, size, False)
    return mask_store(path, truth, (512, 512), pixel_size=px)


def test_several_slabs_sum_their_traverses(tmp_path):
    a = _truth_store(tmp_path / "a.zarr", 1, px=20.0)
    b = mask_store(tmp_path / "b.zarr", _hand_mask(), (4, 4), pixel_size=100.0)
    doc = make_report([a, b], tmp_path / "specimen", spacing_mm=0.2, echo=lambda *_: None, specimen="S1")
    one = [make_report(s, tmp_path / f"{s.stem}-alone", spacing_mm=0.2, echo=lambda *_: None)["labels"]["parameters"]
           for s in (a, b)]
    total = doc["labels"]["parameters"]
    for key in ("traverse_length", "chord_count", "void_count", "analysed_area"):
        assert total[key]["value"] == pytest.approx(one[0][key]["value"] + one[1][key]["value"])
    air = sum(o["air_content"]["value"] * o["analysed_area"]["value"] for o in one) / total["analysed_area"]["value"]
    assert total["air_content"]["value"] == pytest.approx(air)  # area-weighted, not an average of ratios
    assert total["voids_per_mm"]["value"] == pytest.approx(total["chord_count"]["value"] /
                                                           total["traverse_length"]["value"])
    assert [s["pixel_size_um"] for s in doc["slabs"]] == [20.0, 100.0] and len(doc["slabs"]) == 2
    html = (tmp_path / "specimen" / "report.html").read_text()
    assert "specimen (sums)" in html and "quicklook-2.png" in json.dumps(list((tmp_path / "specimen").iterdir()),
                                                                           default=str)
    assert "name the specimen" in error_line(run_cli("report", a, b))


def test_paste_content_from_the_mix_and_the_traverse_length_warning(tmp_path):
    store = _truth_store(tmp_path / "m.zarr", 2)
    doc = make_report(store, tmp_path / "r", spacing_mm=0.5, paste_content=28.0, max_aggregate_mm=19.0,
                      echo=lambda *_: None)
    p = doc["labels"]["parameters"]
    A = p["air_content"]["value"] / 100
    n = p["voids_per_mm"]["value"]
    alpha = p["specific_surface"]["value"]
    assert p["paste_content_mix"]["value"] == pytest.approx(28.0)
    assert p["paste_air_ratio_mix"]["value"] == pytest.approx(0.28 / A)
    assert p["spacing_factor_mix"]["value"] == pytest.approx(airvoid.powers_spacing_factor(0.28, A, n, alpha))
    assert p["spacing_factor"]["value"] != p["spacing_factor_mix"]["value"]  # both shown
    assert any("2286 mm ASTM C457 Table 1" in w for w in doc["warnings"])
    for bad, msg in (("150", "between 0 and 100"), ("nan", "between 0 and 100")):
        assert msg in error_line(run_cli("report", store, "-o", tmp_path / "x", "--paste-content", bad))


def test_region_auto_finds_a_slab_on_a_plain_background(tmp_path):
    """A slab photographed on a dark scanner bed: --region auto finds it, and the figures are those of the slab
    alone (to the preview's pixel at its edge); the region is kept in the store and drawn in the quicklook."""
    import zarr

    from bigseg import store as st
    from bigseg.classes import CONCRETE

    params = SynthParams(900, 700, seed=12, pixel_size_um=20.0)
    rgb, truth = renderer(params)(0, 0, 700, 900, True)
    h, w = 1000, 1300
    bed = np.random.default_rng(0).normal(22, 3, (h, w, 3)).clip(0, 255).astype(np.uint8)
    bed[150:850, 200:1100] = rgb
    labels = np.zeros((h, w), np.uint8)  # the model calls the bed paste
    labels[150:850, 200:1100] = truth
    path = tmp_path / "bed.zarr"
    g = st.zarr_open_new(path)
    st.init_root_attrs(g, source={"file": "test"}, pixel_size=20.0, classes=CONCRETE)
    for name, data, dims, ch in (("image", bed, ("y", "x", "band"), (256, 256, 3)), ("labels", labels, ("y", "x"),
                                                                                      (256, 256))):
        a = st.create_array(g, name, data.shape, ch, dims)
        a[...] = data
        st.set_complete(a)
    p4 = g.create_group("preview")
    small = bed[: h // 4 * 4, : w // 4 * 4].reshape(h // 4, 4, w // 4, 4, 3).mean((1, 3)).round().astype(np.uint8)
    a = st.create_array(p4, "x4", small.shape, (256, 256, 3), ("y", "x", "band"))
    a[...] = small
    st.set_complete(a)
    st.consolidate(path)
    alone = mask_store(tmp_path / "alone.zarr", truth, (256, 256), pixel_size=20.0)
    with_region = make_report(path, tmp_path / "r1", region="auto", echo=lambda *_: None)["labels"]["parameters"]
    reference = make_report(alone, tmp_path / "r2", echo=lambda *_: None)["labels"]["parameters"]
    region = zarr.open_group(str(path), mode="r")["region"]
    assert abs(int(np.count_nonzero(region[:])) - 900 * 700) < 0.02 * 900 * 700
    assert region.attrs["method"] == "auto"
    for key, tol in (("air_content", 0.03), ("paste_content", 0.03), ("voids_per_mm", 0.05),
                     ("traverse_length", 0.02), ("spacing_factor", 0.06)):
        assert with_region[key]["value"] == pytest.approx(reference[key]["value"], rel=tol), key
    from PIL import Image

    ql = np.asarray(Image.open(tmp_path / "r1" / "quicklook.png").convert("RGB"))
    assert ((ql == (230, 40, 40)).all(axis=2)).sum() > 1000  # the region's edge is drawn
    other = tmp_path / "small.png"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(other)
    assert "the mask is 10x10" in error_line(run_cli("report", path, "-o", tmp_path / "x", "--region", other))
    Image.fromarray(np.zeros((h, w), np.uint8)).save(tmp_path / "empty.png")
    assert "region is empty" in error_line(run_cli("report", path, "-o", tmp_path / "y", "--region",
                                                   tmp_path / "empty.png"))


@pytest.mark.slow
def test_uncertainty_matches_the_spread_of_many_slabs_slow(tmp_path):
    _uncertainty_against_spread(tmp_path, 24)


def test_uncertainty_matches_the_spread_of_many_slabs(tmp_path):
    _uncertainty_against_spread(tmp_path, 10)


def _uncertainty_against_spread(tmp_path, n):
    """Slabs drawn with the same parameters (other seeds): the bootstrap's standard error of each one's figures
    is about the standard deviation of the figures across the slabs."""
    figures, errors = {}, {}
    for seed in range(n):
        store = _truth_store(tmp_path / f"s{seed}.zarr", 100 + seed, size=1000, px=25.0)
        m = measure_mask(store, "labels", IDS, 3, 20.0)
        t = airvoid.Totals.of(m, IDS, 25.0, 20.0)
        r = airvoid.airvoid_parameters(t, 0.5, 1.0)
        for key in ("air_content", "voids_per_mm", "spacing_factor"):
            figures.setdefault(key, []).append(r["parameters"][key]["value"])
            errors.setdefault(key, []).append(r["uncertainty"][key]["standard_error"])
    for key in figures:
        spread = float(np.std(figures[key], ddof=1))
        se = float(np.mean(errors[key]))
        assert 0.5 < se / spread < 2.0, (key, se, spread)


def test_en480_air_is_from_every_chord_the_edge_rule_counts_n_only(tmp_path):
    """EN 480-11's air content is T_a / T_t with T_a the air of every chord up to 4 mm, including those cut by the
    image's edges, which the left-end rule leaves out of N (counted independently here with numpy on the same
    lines); its alpha = 4 N / T_a divides the counted N by that whole T_a."""
    r, w, h = 9, 120, 900
    rng = np.random.default_rng(7)
    mask = np.full((h, w), P, np.uint8)
    for _ in range(160):  # discs everywhere, many cut by the left and right edges
        _disc(mask, int(rng.integers(0, h)), int(rng.choice([0, 3, w - 3, w - 1, *rng.integers(0, w, 4)])), r)
    m = measure_mask(mask_store(tmp_path / "edges.zarr", mask, (128, 64), pixel_size=10.0), "labels", IDS, 3,
                     spacing_px=3.0, edge_chords="left-end")
    v, _ = _figures(m, spacing_mm=0.03, pixel_size_um=10.0, spacing_px=3.0)
    lines = mask[m.line_rows]
    air_on_lines = float((lines == V).sum()) / float((lines != 255).sum())
    assert v["en_air_content"] == pytest.approx(100 * air_on_lines, rel=1e-9)  # every chord's air
    assert v["en_air_content"] == pytest.approx(v["traverse_air_content"], rel=1e-9)
    counted = sum(m.counted_chord_lengths.values())
    assert counted < sum(m.chord_lengths.values())  # the edge rule did leave chords out of N here
    t_a_mm = air_on_lines * float((lines != 255).sum()) * 10.0 / 1000.0
    assert v["en_specific_surface"] == pytest.approx(4.0 * counted / t_a_mm, rel=1e-9)
