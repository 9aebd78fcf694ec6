"""The void-object rule (bigseg.object_rule): fitted on objects strokes touch, it relabels the dark grains a model
called void and keeps the voids; infer applies an adapted model's rule after the network's pass, judging every
object whole (the same labels as on the whole image at once, for any chunking, after a kill and a rerun), counts
what it changed, and --no-object-rule leaves the network's labels. (What it is worth on a section is
measured by benchmarks/adapt.py, not here.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from helpers import wait_for_files
from scipy import ndimage

from bigseg import checkpoint as ckpt
from bigseg import object_rule as orule
from bigseg import store as st
from bigseg.infer import InferOptions, infer
from bigseg.ingest import ingest
from bigseg.synth import SynthParams, synthesize

PASTE, STONE, VOID = 0, 1, 2


def _section(rng):
    """An RGB section (light paste, a dark stone on the right), voids (discs with a near-black core) and dark sand
    grains (squares of mid-dark grey), with labels that call both void; the centres of each."""
    h, w = 420, 640
    image = np.full((h, w, 3), 172.0)
    labels = np.zeros((h, w), np.uint8)
    image[:, 520:] = 120
    labels[:, 520:] = STONE
    yy, xx = np.mgrid[0:h, 0:w]
    voids, grains = [], []
    for k in range(14):  # a grid of voids and grains, alternating, away from the border
        cy, cx = 40 + (k // 7) * 150 + rng.integers(-8, 9), 40 + (k % 7) * 68 + rng.integers(-6, 7)
        r = int(rng.integers(9, 15))
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        shade = 14 + 50 * np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / r
        image[disc] = shade[disc][:, None]
        labels[disc] = VOID
        voids.append((cy, cx))
        gy, gx = cy + 70, cx + int(rng.integers(-10, 11))
        s = int(rng.integers(7, 12))
        image[gy - s : gy + s, gx - s : gx + s] = 70 + rng.integers(0, 15)
        labels[gy - s : gy + s, gx - s : gx + s] = VOID
        grains.append((gy, gx))
    stone_grain = (200, 580)  # a dark grain inside the stone, called void too
    image[190:210, 570:590] = 72
    labels[190:210, 570:590] = VOID
    border_grain = (0, 300)  # a grain cut by the array's border: never judged
    image[0:10, 292:308] = 72
    labels[0:10, 292:308] = VOID
    noise = rng.normal(0, 3, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8), labels, voids, grains, stone_grain, border_grain


def _painted(labels, voids, grains, n_each):
    painted = np.full(labels.shape, 255, np.uint8)
    for cy, cx in voids[:n_each]:
        painted[cy - 2 : cy + 3, cx - 4 : cx + 5] = VOID
    for cy, cx in grains[:n_each]:
        painted[cy - 2 : cy + 3, cx - 4 : cx + 5] = PASTE  # a grain of sand is paste by the class convention
    return painted


def test_a_rule_fitted_on_painted_objects_relabels_grains_and_keeps_voids():
    image, labels, voids, grains, stone_grain, border_grain = _section(np.random.default_rng(4))
    found = orule.find(labels, image, VOID)
    assert found.n == 14 + 14 + 2
    sides = orule.painted_sides(found, _painted(labels, voids, grains, 6), VOID)
    assert (sides == 1).sum() == 6 and (sides == 0).sum() == 6
    rule = orule.fit(found.features[sides >= 0], sides[sides >= 0], VOID)
    assert rule is not None and rule.fitted_on == {"void": 6, "not void": 6}
    assert orule.ObjectRule.from_dict(rule.to_dict()) == rule  # what a checkpoint stores reads back the same
    out, n_objects, n_pixels = orule.apply(rule, labels, image)
    for cy, cx in voids:  # every void kept, painted or not
        assert out[cy, cx] == VOID
    for cy, cx in grains:  # every grain relabelled, the unpainted ones too, as the paste around it
        assert out[cy, cx] == PASTE
    assert out[stone_grain] == STONE  # the class of its ring: a dark speck in a stone is stone
    assert out[border_grain] == VOID  # cut by the border: its whole is not in view, left as it was
    assert n_objects == 14 + 1 and n_pixels == int((labels != out).sum())
    assert ((labels != out) <= (labels == VOID)).all()  # only void pixels change
    assert (labels[tuple(np.array(grains).T)] == VOID).all()  # the input array is not changed


def test_the_grey_spread_is_each_objects_standard_deviation_of_grey():
    image, labels, voids, grains, *_ = _section(np.random.default_rng(7))
    found = orule.find(labels, image, VOID)
    grey = orule.grey(image)
    column = orule.FEATURES.index("grey spread")
    for cy, cx in (*voids[:3], *grains[:3]):
        k = found.ids[cy, cx] - 1
        assert found.features[k, column] == pytest.approx(float(grey[found.ids == k + 1].std()), rel=1e-6)
    spread = {kind: [found.features[found.ids[c] - 1, column] for c in centres]
              for kind, centres in (("void", voids), ("grain", grains))}
    assert min(spread["void"]) > max(spread["grain"])  # a void's core-to-rim shading against an even grain (whose
    # spread is its edge, where the 3 x 3 smoothing mixes in the paste)


def test_pieces_of_one_object_are_measured_as_objects_of_their_own():
    """measure(parts=True): two discs touching in one component, cut into their two pieces, each measure as the
    disc alone would (its boundary includes where it meets the other piece); the whole component measures as find
    does."""
    yy, xx = np.mgrid[:64, :96]
    left, right = (yy - 32) ** 2 + (xx - 30) ** 2 < 14**2, (yy - 32) ** 2 + (xx - 56) ** 2 < 14**2
    labels = np.where(left | right, VOID, 0).astype(np.uint8)
    image = np.full((64, 96, 3), 150, np.uint8)
    image[left] = 20
    image[right & ~left] = 90
    whole = orule.find(labels, image, VOID)
    assert whole.n == 1
    pieces = np.where(left, 1, np.where(right, 2, 0)).astype(np.int32)
    cut = orule.measure(pieces, 2, image, parts=True)
    alone = orule.find(np.where(left, VOID, 0).astype(np.uint8), image, VOID)
    roundness = orule.FEATURES.index("roundness")
    assert cut.n == 2
    assert cut.features[0, roundness] == pytest.approx(alone.features[0, roundness])
    assert cut.features[0, 0] < cut.features[1, 0]  # each piece's darkest grey is its own
    assert cut.features[1, 0] > whole.features[0, 0]
    assert np.array_equal(orule.measure(whole.ids, 1, image).features, whole.features)


def test_a_rule_reads_the_features_it_names_and_stores_them():
    """A default rule reads the three features every adapted checkpoint has stored since the rule exists; one fitted
    with the grey spread names four and reads back the same; a stored rule naming a feature this bigseg does not
    measure is refused."""
    image, labels, voids, grains, *_ = _section(np.random.default_rng(4))
    found = orule.find(labels, image, VOID)
    sides = orule.painted_sides(found, _painted(labels, voids, grains, 6), VOID)
    rule = orule.fit(found.features[sides >= 0], sides[sides >= 0], VOID)
    assert rule is not None and len(rule.weights) == 3
    assert rule.to_dict()["features"] == ["darkest grey", "mean grey", "roundness"]  # as earlier checkpoints hold
    wider = orule.fit(found.features[sides >= 0], sides[sides >= 0], VOID, names=orule.FEATURES, balanced=True)
    assert wider is not None and len(wider.weights) == 4 and wider.to_dict()["features"][-1] == "grey spread"
    again = orule.ObjectRule.from_dict(wider.to_dict())
    assert again == wider
    out = orule.apply(again, labels, image)[0]
    assert all(out[c] == VOID for c in voids) and all(out[c] == PASTE for c in grains)
    stored = rule.to_dict()
    with pytest.raises(ValueError, match="features"):
        orule.ObjectRule.from_dict({**stored, "features": ["darkest grey", "mean grey", "hue"]})
    with pytest.raises(ValueError, match="features"):
        orule.ObjectRule.from_dict({**stored, "features": ["darkest grey", "mean grey"]})  # 3 weights, 2 names


def test_too_few_painted_objects_fit_no_rule():
    image, labels, voids, grains, *_ = _section(np.random.default_rng(5))
    found = orule.find(labels, image, VOID)
    sides = orule.painted_sides(found, _painted(labels, voids, grains, orule.MIN_OBJECTS - 1), VOID)
    assert orule.fit(found.features[sides >= 0], sides[sides >= 0], VOID) is None


def test_grains_painted_over_and_gone_from_the_adapted_labels_still_teach_the_rule():
    """A grain the person painted over is trained on, so the adapted labels may no longer call it void; the rule's
    examples of what voids are not come from the labels the person painted against as well (only those gone from
    the adapted labels: one still there is counted once, from the adapted labels)."""
    from bigseg.train.adapt import _vanished_sides

    image, before, voids, grains, *_ = _section(np.random.default_rng(6))
    painted = _painted(before, voids, grains, 6)
    after = before.copy()
    ids = ndimage.label(before == VOID, structure=np.ones((3, 3)))[0]
    for cy, cx in grains[:4]:  # the network learned four of the six painted grains
        after[ids == ids[cy, cx]] = PASTE
    held = np.full(before.shape, 255, np.uint8)
    gy, gx = grains[8]
    held[gy - 2 : gy + 3, gx - 4 : gx + 5] = PASTE  # a held-back stroke on a grain still labelled void: not gone
    features, trained, held_sides = _vanished_sides(before, after, image, VOID, painted, held, lambda o: o.judged())
    assert len(features) == 4 and (trained == 0).all() and (held_sides == -1).all()
    dark = orule.find(before, image, VOID).features[:, 0]
    assert features[:, 0].min() > np.sort(dark)[13]  # grains, lighter-cored than every void
    features, *_ = _vanished_sides(before, before, image, VOID, painted, held, lambda o: o.judged())
    assert len(features) == 0  # nothing gone: the adapted labels' own objects are the examples


@pytest.fixture(scope="module")
def slab(tmp_path_factory):
    d = tmp_path_factory.mktemp("rule")
    synthesize(d / "slab.png", SynthParams(640, 512, seed=21, pixel_size_um=12))
    rule = orule.ObjectRule(VOID, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), -5.0, {"void": 5, "not void": 5})
    return d, _bundled_with(rule, d / "with-rule.pt")  # a rule that rejects every object it sees


def _bundled_with(rule, path):
    """The bundled model saved at ``path`` as if adapted, carrying ``rule``."""
    net, meta = ckpt.load(ckpt.model_path(None))
    ckpt.save(path, net, arch=meta["arch"], classes=ckpt.classes_of(meta), arch_kwargs=meta.get("arch_kwargs"),
              extra_meta={"adapted": {"object_rule": rule.to_dict()}})
    return path


def _labels(d, model, name, chunk=256, **kw):
    store = d / name
    ingest(d / "slab.png", store, chunk=chunk)
    r = infer(store, model=str(model), options=InferOptions(window=256, overlap=64, workers=0, backend="torch", **kw),
              echo=lambda *a: None)
    return np.asarray(st.open_array(store, "labels")[:]), r, store


def test_infer_judges_every_object_as_on_the_whole_image_for_any_chunking(slab):
    d, model = slab
    plain, r0, store = _labels(d, model, "plain.zarr", object_rule=False)
    ruled, r1, store = _labels(d, model, "ruled.zarr")
    assert "object_rule" not in r0.stats
    # the rule judged the network's labels exactly as it judges the whole image at once
    image = np.asarray(st.open_array(store, "image")[:])
    rule = orule.ObjectRule.from_dict(ckpt.read(model)["meta"]["adapted"]["object_rule"])
    whole, n_objects, n_pixels = orule.apply(rule, plain, image)
    assert np.array_equal(ruled, whole)
    changed = plain != ruled
    assert changed.any() and (plain[changed] == VOID).all() and (ruled[changed] != VOID).all()
    # objects across chunk edges are judged too (this rule rejects every object it may judge); those touching the
    # image's border are not
    ids, n = ndimage.label(plain == VOID, structure=np.ones((3, 3), bool))
    across = 0
    for k, sl in enumerate(ndimage.find_objects(ids), 1):
        on_border = any(s.start == 0 or s.stop == size for s, size in zip(sl, plain.shape, strict=True))
        gone = changed[ids == k]
        assert (not gone.any()) if on_border else gone.all(), (k, sl)
        across += int(not on_border and any(s.start // 256 != (s.stop - 1) // 256 for s in sl))
    assert across > 0
    assert r1.stats["object_rule"] == {"relabelled_objects": n_objects, "relabelled_pixels": n_pixels}
    assert n_pixels == int(changed.sum()) and n_objects > 0
    # the statistics count the labels written, not the network's
    counts = np.bincount(ruled.ravel(), minlength=3)
    assert [r1.stats["classes"][k]["pixels"] for k in ("paste", "stone", "void")] == [int(v) for v in counts]
    assert st.attr(st.open_array(store, "labels"), "run")["object_rule"] is True
    assert not (store / ".bigseg" / "staged").exists()  # the network's staged labels went with the stage
    # another chunking of the same image: the same bytes, the same counts
    other, r2, _ = _labels(d, model, "ruled-160.zarr", chunk=160)
    assert other.tobytes() == ruled.tobytes() and r2.stats["object_rule"] == r1.stats["object_rule"]


def test_kept_voids_grow_to_their_edges_the_same_for_any_chunking(slab):
    """A rule that keeps every void and grows them (grow_edges): infer's labels are the rule and the growth applied
    to the whole image at once, for any chunking; the voids grew, only into pixels next to them, and the
    statistics say by how much."""
    d, _ = slab
    keep = orule.ObjectRule(VOID, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), 5.0, {"void": 5, "not void": 5},
                            grow_edges=True)
    model = _bundled_with(keep, d / "grows.pt")
    plain, _, store = _labels(d, model, "grown-plain.zarr", object_rule=False)
    grown, r1, _ = _labels(d, model, "grown.zarr")
    image = np.asarray(st.open_array(store, "image")[:])
    whole = orule.grow_edges(orule.apply(keep, plain, image)[0], image, VOID, network=plain)
    assert np.array_equal(grown, whole)
    added = grown != plain
    assert added.sum() > 50 and (grown[added] == VOID).all()
    assert ndimage.distance_transform_edt(plain != VOID)[added].max() <= np.sqrt(5)  # at most 2 px out
    assert r1.stats["object_rule"] == {"relabelled_objects": 0, "relabelled_pixels": 0,
                                       "grown_pixels": int(added.sum())}
    for chunk in (160, 64):
        other, r2, _ = _labels(d, model, f"grown-{chunk}.zarr", chunk=chunk)
        assert other.tobytes() == grown.tobytes() and r2.stats["object_rule"] == r1.stats["object_rule"]


def test_growth_reaches_a_blurred_voids_half_way_edge_and_leaves_light_voids():
    """A dark disc blurred into the paste, labelled 2 px inside its edge: grown to where the grey is half way
    between its core and the paste (the true edge of a blurred step), not beyond; a disc lighter than the paste is
    left as it is, as is a dark one cut by the array's border."""
    h, w = 120, 200
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - 60, xx - 60)
    truth = r <= 20
    light = np.hypot(yy - 60, xx - 150) <= 15
    edge = np.hypot(yy, xx - 100) <= 12  # cut by the top border
    grey = np.where(truth | edge, 20.0, np.where(light, 240.0, 170.0))
    grey = ndimage.gaussian_filter(grey, 1.2)
    image = np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
    labels = np.zeros((h, w), np.uint8)
    labels[r <= 18] = VOID
    labels[np.hypot(yy - 60, xx - 150) <= 13] = VOID
    labels[np.hypot(yy, xx - 100) <= 10] = VOID
    out = orule.grow_edges(labels, image, VOID)
    left = (slice(None), slice(0, 85))
    iou = ((out[left] == VOID) & truth[left]).sum() / ((out[left] == VOID) | truth[left]).sum()
    before = ((labels[left] == VOID) & truth[left]).sum() / ((labels[left] == VOID) | truth[left]).sum()
    assert before < 0.85 and iou > 0.95
    assert not ((out[left] == VOID) & (r[left] > 21.5)).any()  # not past the edge
    assert np.array_equal(out[:, 120:], labels[:, 120:])  # the light void
    assert np.array_equal(out[:20, 85:115], labels[:20, 85:115])  # the one on the border


def test_growth_experiments_light_voids_and_the_boundary_gate():
    """grow_edges(light=True) grows a disc lighter than the paste to its half-way edge as it grows a dark one;
    gate=...: an object whose label edge already lies half way to the paste (drawn whole) does not grow, one labelled
    2 px inside its blurred edge does."""
    h, w = 120, 200
    yy, xx = np.mgrid[:h, :w]
    dark, light = np.hypot(yy - 60, xx - 50), np.hypot(yy - 60, xx - 150)
    grey = ndimage.gaussian_filter(np.where(dark <= 20, 20.0, np.where(light <= 20, 240.0, 130.0)), 1.2)
    image = np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
    inside = np.zeros((h, w), np.uint8)
    inside[(dark <= 18) | (light <= 18)] = VOID
    lit = orule.grow_edges(inside, image, VOID, light=True)
    for r in (dark, light):
        grown = (lit == VOID) & (r < 30)
        iou = (grown & (r <= 20)).sum() / (grown | (r <= 20)).sum()
        assert iou > 0.95
    assert np.array_equal(orule.grow_edges(inside, image, VOID)[:, 100:], inside[:, 100:])  # light: not by default
    whole = np.zeros((h, w), np.uint8)
    whole[dark <= 19.6] = VOID  # nearly whole: its boundary lies a third of the way to the paste
    whole[light <= 18] = VOID  # the light disc, labelled 2 px inside its edge
    ungated = orule.grow_edges(whole, image, VOID, light=True)
    gated = orule.grow_edges(whole, image, VOID, light=True, gate=0.3)
    assert (ungated[:, :100] == VOID).sum() > (whole[:, :100] == VOID).sum()
    assert np.array_equal(gated[:, :100], whole[:, :100])  # gated: not grown
    assert (gated[:, 100:] == VOID).sum() > (whole[:, 100:] == VOID).sum()  # stopped inside: grown


DARKEST_UNDER_50 = orule.ObjectRule(VOID, (50.0, 0.0, 0.0), (4.0, 1.0, 1.0), (-1.0, 0.0, 0.0), 0.0,
                                    {"void": 5, "not void": 5})  # P(void) high where an object's darkest grey < 50


def test_a_grain_merged_with_a_void_is_cut_off_at_the_lit_rim_and_judged_alone():
    """A mid-dark grain and a void with a lit rim that touches it, labelled void together: judged whole, the merged
    object is a void (its darkest grey is the void's) and stays; cut at the rim (cut_merged), the grain is judged on
    its own and relabelled paste, the void kept. A shaded void alone is one piece, noise or not."""
    rng = np.random.default_rng(3)
    h, w = 120, 220
    yy, xx = np.mgrid[:h, :w]
    r_void, r_alone = np.hypot(yy - 60, xx - 62), np.hypot(yy - 60, xx - 180)
    grain = np.hypot(yy - 60, xx - 105) <= 30
    grey = np.full((h, w), 172.0)
    grey[grain] = 75
    grey[r_void <= 16] = 200  # the lit rim
    grey[r_void <= 13] = (15 + 40 * r_void / 13)[r_void <= 13]
    grey[r_alone <= 12] = (15 + 40 * r_alone / 12)[r_alone <= 12]
    image = np.repeat(np.clip(grey + rng.normal(0, 3, grey.shape), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
    labels = np.where(grain | (r_void <= 16) | (r_alone <= 12), VOID, PASTE).astype(np.uint8)
    assert orule.find(labels, image, VOID).n == 2
    pieces = orule.cut(labels, image, VOID)
    assert pieces.n == 3
    whole, counts = orule.judge(DARKEST_UNDER_50, labels, image)
    assert np.array_equal(whole, labels) and counts["relabelled_objects"] == 0
    cut_rule = orule.ObjectRule(**{**DARKEST_UNDER_50.__dict__, "cut_merged": True})
    out, counts = orule.judge(cut_rule, labels, image)
    only_grain = grain & (r_void > 18)
    assert (out[only_grain] == PASTE).mean() > 0.95
    assert (out[r_void <= 13] == VOID).all() and (out[r_alone <= 12] == VOID).all()
    assert counts["relabelled_objects"] == 1 and counts["relabelled_pixels"] == int((out != labels).sum())
    assert orule.ObjectRule.from_dict(cut_rule.to_dict()) == cut_rule
    assert orule.ObjectRule.from_dict({k: v for k, v in cut_rule.to_dict().items() if k != "cut_merged"}) \
        == DARKEST_UNDER_50  # rules stored before the cut read back without it


def test_objects_cut_and_grown_the_same_for_any_chunking(slab):
    """A rule that judges objects cut at grey ridges, then grows the voids it keeps: infer's labels are exactly
    judge() on the whole image at once, for chunks of 256, 160 and 64 px, and the cut made pieces the rule judged
    apart (it relabelled some and kept others)."""
    d, _ = slab
    rule = orule.ObjectRule(**{**DARKEST_UNDER_50.__dict__, "cut_merged": True, "grow_edges": True})
    model = _bundled_with(rule, d / "cuts.pt")
    plain, _, store = _labels(d, model, "cut-plain.zarr", object_rule=False)
    ruled, r1, _ = _labels(d, model, "cut.zarr")
    image = np.asarray(st.open_array(store, "image")[:])
    whole, counts = orule.judge(rule, plain, image)
    assert np.array_equal(ruled, whole)
    assert orule.cut(plain, image, VOID).n > orule.find(plain, image, VOID).n
    assert counts["relabelled_objects"] > 0 and (ruled == VOID).sum() > 0
    assert r1.stats["object_rule"] == counts
    for chunk in (160, 64):
        other, r2, _ = _labels(d, model, f"cut-{chunk}.zarr", chunk=chunk)
        assert other.tobytes() == ruled.tobytes() and r2.stats["object_rule"] == r1.stats["object_rule"]


def test_the_growth_turned_off_at_infer_gives_the_rule_without_it_and_says_so(slab):
    """``infer --no-grow-void-edges`` on a model whose rule cuts and grows: the labels are judge() without the
    growth on the whole image, the statistics count no grown pixels, and the run record and the report's model
    section say the growth was off (a staged run is resumed only under the same record, so the two never mix)."""
    from bigseg.report.html import _rule_text

    d, _ = slab
    rule = orule.ObjectRule(**{**DARKEST_UNDER_50.__dict__, "cut_merged": True, "grow_edges": True})
    model = _bundled_with(rule, d / "cuts-off.pt")
    plain, _, _ = _labels(d, model, "off-plain.zarr", object_rule=False)
    grown, r_on, store_on = _labels(d, model, "off-on.zarr")
    off, r_off, store = _labels(d, model, "off.zarr", grow_void_edges=False)
    image = np.asarray(st.open_array(store, "image")[:])
    want, counts = orule.judge(orule.ObjectRule(**{**rule.__dict__, "grow_edges": False}), plain, image)
    assert np.array_equal(off, want) and r_off.stats["object_rule"] == counts
    assert "grown_pixels" not in counts and r_on.stats["object_rule"]["grown_pixels"] > 0
    more = grown != off
    assert more.any() and (grown[more] == VOID).all()  # the growth only ever adds void
    run_on, run_off = (st.attr(st.open_array(s, "labels"), "run") for s in (store_on, store))
    assert run_off["rule_growth_off"] is True and "rule_growth_off" not in run_on
    fit = st.attr(st.open_array(store, "labels"), "model")["adapted"]["object_rule_fit"]
    assert fit["growth_off_at_infer"] is True and "turned off for these labels" in _rule_text(fit)
    assert "turned off" not in _rule_text(st.attr(st.open_array(store_on, "labels"), "model")["adapted"]
                                          ["object_rule_fit"] or {})


def test_killed_while_judging_then_resumed_gives_the_same_labels(slab):
    d, model = slab
    ref, r_ref, _ = _labels(d, model, "ref-64.zarr", chunk=64)
    store = d / "killed-64.zarr"
    ingest(d / "slab.png", store, chunk=64)
    args = [sys.executable, "-m", "bigseg", "infer", str(store), "--model", str(model), "--workers", "0", "--window",
            "256", "--overlap", "64", "--backend", "torch"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    judged = store / ".bigseg" / "labels-ruled-done"
    try:
        wait_for_files(judged, 3, proc, timeout=300, poll=0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    n_judged = len([p for p in judged.iterdir() if not p.name.endswith(".tmp")])  # (a marker being written: .tmp)
    assert n_judged < 80  # killed in the rule's pass: the network's chunks all written, some judged
    assert len(list((store / ".bigseg" / "labels-done").iterdir())) == 80
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming: 80 of 80 chunks already done" in rerun.stdout
    assert f"resuming the object rule's pass: {n_judged} of 80 chunks already judged" in rerun.stdout
    labels = np.asarray(st.open_array(store, "labels")[:])
    assert labels.tobytes() == ref.tobytes()
    done = st.open_array(store, "labels")
    assert st.attr(done, "stats") == r_ref.stats
