"""The confidence figure and its warning: calibration on validation styles (the range where the model was right),
the flag against that range, and the warning a report carries -- on real stores and real checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import bundled_resaved, run_cli

from bigseg import checkpoint
from bigseg.checkpoint import BUNDLED, classes_of
from bigseg.models import build
from bigseg.records import ConfidenceReference
from bigseg.report.doubt import NOT_RANKED
from bigseg.synth import SynthParams, synthesize
from bigseg.trust import ACCURATE_POINTS, CALIBRATION_SEED, FIGURES, UNFAMILIAR_MARGIN, calibrate, doubt, figures


def _with_reference(tmp_path, name, reference):
    """The bundled weights saved as another checkpoint whose confidence reference is ``reference``."""
    return bundled_resaved(tmp_path / name, confidence_reference=reference)


def test_doubt_against_a_reference():
    conf = {"uncertain_fraction": 0.2, "mean_confidence": 0.9}
    ref = {"figure": "uncertain_fraction", "threshold": 0.1, "slabs": 16,
           "rule": "the largest uncertain_fraction on the 5 of 16 validation slabs whose air content was within 0.3"}
    d = doubt(conf, ref)
    assert d["flag"] is True and d["message"].startswith("low confidence") and "0.1" in d["message"]
    assert doubt(conf, {**ref, "threshold": 0.25})["flag"] is False
    assert doubt(conf, None)["flag"] is None and "bigseg calibrate" in doubt(conf, None)["message"]
    assert doubt(None, ref)["flag"] is None
    assert doubt({**conf, "uncertain_fraction": float("nan")}, ref)["flag"] is True  # never silently fine


def test_a_warning_from_a_model_right_on_few_validation_slabs_quotes_its_record():
    """When calibrate found the model right on too few validation slabs for a range, the warning is on almost every
    slab: it says the model's record, that it speaks about the model as much as the slab, names a figure that barely
    ranked the errors, and an unflagged slab is "less doubtful", never shown right."""
    rule = ("the smallest uncertain_fraction of the 15 validation slabs whose air content was more than 0.3 points off "
            "(only 1 of 16 were within: too few for a range where it was right, so anything as doubtful as a slab "
            "where it was wrong is flagged)")
    fig = {"description": "", "median": 0.9, "max": 0.99, "spearman_with_air_error": 0.04}
    errors = [0.2, 38.6, -0.6, 2.4, -2.2, 0.6, 0.5, -0.6, -3.1, 6.1, -1.6, -6.0, -2.6, -2.9, 1.5, -0.31]
    ref = {"figure": "uncertain_fraction", "threshold": 0.93, "slabs": 16, "rule": rule,
           "air_error_points": {"median": 1.86, "max": 38.6}, "figures": {"uncertain_fraction": fig},
           "per_slab": [{"seed": k, "air_error_points": e, "figures": {}} for k, e in enumerate(errors)]}
    d = doubt({"uncertain_fraction": 0.97, "mean_confidence": 0.8}, ref)
    assert d["flag"] is True
    assert "within 0.3 points on only 1 of its 16 validation slabs, 1.9 points off at the median" in d["message"]
    assert "barely ranked their errors: Spearman +0.04" in d["message"] and "as much about the model" in d["message"]
    calm = doubt({"uncertain_fraction": 0.5, "mean_confidence": 0.8}, ref)
    assert calm["flag"] is False and "less doubtful than all 15" in calm["message"]
    assert "not shown right" in calm["message"] and "only 1 of its 16" in calm["message"]
    ranked = {**ref, "figures": {"uncertain_fraction": {**fig, "spearman_with_air_error": 0.6}}}
    assert "barely" not in doubt({"uncertain_fraction": 0.97, "mean_confidence": 0.8}, ranked)["message"]
    # a reference written before each slab's reading was kept (the bundled model's): the counts its rule states
    counted = {k: v for k, v in ref.items() if k != "per_slab"}
    assert "only 1 of its 16" in doubt({"uncertain_fraction": 0.97, "mean_confidence": 0.8}, counted)["message"]
    old = {**counted, "rule": "the smallest uncertain_fraction of the validation slabs where it was wrong"}
    assert "too few for a range" in doubt({"uncertain_fraction": 0.97, "mean_confidence": 0.8}, old)["message"]
    two = {**ref, "per_slab": ref["per_slab"][:2] + [{"seed": 99, "air_error_points": 0.1, "figures": {}}]}
    assert "only 2 of its 3" in doubt({"uncertain_fraction": 0.97, "mean_confidence": 0.8}, two)["message"]


def test_calibrate_writes_the_range_where_the_model_was_right(tmp_path):
    out = tmp_path / "calibrated.pt"
    before = BUNDLED.read_bytes()
    typed = calibrate(BUNDLED, out, slabs=3, size=384, workdir=tmp_path / "work", echo=lambda *_: None)
    ref = typed.to_attrs()
    assert ConfidenceReference.from_attrs(ref) == typed  # what is stored reads back as what was measured
    assert typed.figures[typed.figure].rank == max(f.rank for k, f in typed.figures.items()
                                                   if k not in NOT_RANKED and f.spearman_with_air_error is not None)
    assert BUNDLED.read_bytes() == before  # -o: the bundled file is left alone
    assert checkpoint.read(out)["meta"]["confidence_reference"] == json.loads(json.dumps(ref))
    assert ref["slabs"] == 3 and ref["figure"] in FIGURES and set(ref["figures"]) <= set(FIGURES)
    errors = ref["air_error_points"]
    assert errors["median"] <= errors["max"]
    # each slab's own reading is kept: the range and the error figures are those of these rows
    rows = ref["per_slab"]
    assert [r["seed"] for r in rows] == [CALIBRATION_SEED + k for k in range(3)]
    assert max(abs(r["air_error_points"]) for r in rows) == pytest.approx(errors["max"], rel=1e-4)
    for name, fig in ref["figures"].items():
        assert max(r["figures"][name] for r in rows) == pytest.approx(fig["max"], rel=1e-4)
    # the unfamiliar-image gate sits on the first layers' shift, at the margin over the slabs' largest
    assert ref["unfamiliar"]["figure"] == "early_feature_shift"
    early_max = ref["figures"]["early_feature_shift"]["max"]
    assert ref["unfamiliar"]["threshold"] == pytest.approx(UNFAMILIAR_MARGIN * early_max)
    fig = ref["figures"][ref["figure"]]
    if ref["rule"].startswith("the largest"):  # enough slabs were right: the most it showed on those
        assert f"within {ACCURATE_POINTS} points" in ref["rule"] and ref["threshold"] <= fig["max"]
    else:  # too few right: flagged from the least doubtful slab where it was wrong
        assert ref["rule"].startswith("the smallest") and ref["threshold"] < fig["max"]
    proc = run_cli("calibrate", BUNDLED, "-o", tmp_path / "x.pt", "--slabs", "2")
    assert proc.returncode == 2 and "--slabs must be at least 3" in proc.stderr


@pytest.mark.parametrize("threshold,flagged", [(0.0, True), (1.0, False)])
def test_report_warns_when_outside_the_models_range(tmp_path, threshold, flagged):
    model = _with_reference(tmp_path, "m.pt", {"figure": "uncertain_fraction", "threshold": threshold, "slabs": 16,
                                               "rule": "the median uncertain_fraction of the 16 validation slabs"})
    synthesize(tmp_path / "s.png", SynthParams(600, 400, seed=8))
    assert run_cli("infer", tmp_path / "s.png", "--model", model, "--workers", "0").returncode == 0
    proc = run_cli("report", tmp_path / "s.zarr")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "s-report" / "stats.json").read_text())
    html = (tmp_path / "s-report" / "report.html").read_text()
    text = " ".join(doc["warnings"])
    if flagged:
        assert "low confidence" in text and "low confidence" in proc.stdout and "low confidence" in html
    else:
        assert "low confidence" not in text and "within 1" in json.dumps(doc["slabs"][0]["doubt"])


def test_view_and_feature_figures_on_sampled_windows(tmp_path):
    """After the pass, sampled windows are run again in flipped and transposed views and their batch-norm
    statistics compared with the training data's: the figures land beside the softmax ones, and an image unlike
    any concrete (a flat green field) shifts the feature statistics far more than a synthetic section does."""
    import pyvips

    from bigseg import store as st
    from bigseg.infer import InferOptions, infer, stability
    from bigseg.infer.windows import Grid

    synthesize(tmp_path / "s.png", SynthParams(700, 500, seed=8))
    green = np.zeros((500, 700, 3), np.uint8)
    green[..., 1] = 200
    green[::7, ::5, 0] = 90  # a little texture, still nothing like concrete
    pyvips.Image.new_from_array(green).write_to_file(str(tmp_path / "g.png"))
    shifts = {}
    for name in ("s", "g"):
        r = infer(tmp_path / f"{name}.png", options=InferOptions(workers=0, window=128, overlap=16),
                  echo=lambda *_: None)
        views = r.confidence["stability"]
        grid = Grid(500, 700, 128, 16)
        assert views["sample_windows"] == len(stability.sample_origins(grid)) == stability.SAMPLE < len(grid.ys) * len(
            grid.xs)
        assert set(views["view_agreement"]) <= {"paste", "stone", "void"}
        assert all(0 <= v <= 1 for v in views["view_agreement"].values())
        assert 0 <= views["void_view_disagreement"] <= 1 and views["void_view_spread"] >= 0
        figs = figures(r.confidence)
        wanted = {"void_view_disagreement", "void_view_spread", "feature_shift", "early_feature_shift"}
        assert wanted <= set(figs) <= set(FIGURES)
        # the stored figures are the sums of the sampled windows, measured again the same
        sums = stability.measure(str(BUNDLED), r.store, stability.sample_origins(grid), grid)
        again = stability.figures(sums, 2)
        shift_keys = ("feature_shift", "early_feature_shift")
        for key in shift_keys:
            assert again[key] == pytest.approx(views[key], rel=1e-6)  # thread counts differ
        assert {**again, **dict.fromkeys(shift_keys, 0)} == {**views, **dict.fromkeys(shift_keys, 0)}
        counts = np.asarray(sums["counts"])
        assert (counts.sum(axis=1) == stability.SAMPLE * 128 * 128).all()  # every view labels every pixel once
        stored = st.attr(st.array(st.open_store(r.store), "labels"), "confidence")
        assert stored["stability"] == json.loads(json.dumps(views))
        shifts[name] = views["feature_shift"], views["early_feature_shift"]
        # the bundled model's own gate (bigseg calibrate): the green image is unfamiliar, the concrete slab is not
        reference = checkpoint.read(BUNDLED)["meta"]["confidence_reference"]
        assert reference["unfamiliar"]["figure"] == "early_feature_shift"
        assert bool(doubt(r.confidence, reference).get("unfamiliar")) == (name == "g"), (name, views)
    assert shifts["g"][0] > 5 * shifts["s"][0], shifts
    # the first layers see colour: their shift moves more than the all-layer mean (the gate's reason to use them)
    assert shifts["g"][1] / shifts["s"][1] > shifts["g"][0] / shifts["s"][0], shifts


def test_view_figures_from_sums():
    from bigseg.infer.stability import figures as view_figures

    sums = {"windows": 2, "classes": ["paste", "stone", "void"], "all_views": [90, 50, 6], "any_view": [100, 60, 10],
            "counts": [[95, 55, 8], [95, 55, 8], [95, 55, 6], [95, 55, 10]], "feature_shift": 0.5,
            "early_feature_shift": 3.0}
    f = view_figures(sums, 2)
    assert f["view_agreement"] == {"paste": 0.9, "stone": 50 / 60, "void": 0.6}
    assert f["void_view_disagreement"] == pytest.approx(0.4)
    assert f["void_view_spread"] == pytest.approx(np.std([8, 8, 6, 10]) / 8)
    assert f["feature_shift"] == 0.5 and f["early_feature_shift"] == 3.0
    none = view_figures({**sums, "all_views": [90, 50, 0], "any_view": [100, 60, 0], "feature_shift": None,
                         "early_feature_shift": None}, 2)
    assert none["void_view_disagreement"] == 0.0 and "feature_shift" not in none and "void" not in none[
        "view_agreement"] and "early_feature_shift" not in none


def test_a_second_model_on_the_sampled_windows(tmp_path):
    """The second opinion: the same weights agree everywhere (no gap); a network of other weights disagrees on the
    void pixels and its void share differs; a model for other classes gives no opinion."""
    import shutil

    from bigseg.classes import table_from_attrs
    from bigseg.infer import stability
    from bigseg.infer.windows import Grid
    from bigseg.ingest import ingest

    synthesize(tmp_path / "s.png", SynthParams(600, 400, seed=8))
    store = ingest(tmp_path / "s.png", tmp_path / "s.zarr").store
    grid = Grid(400, 600, 128, 16)
    origins = stability.sample_origins(grid, 4)
    same = tmp_path / "same.pt"
    shutil.copy(BUNDLED, same)
    meta = checkpoint.read(BUNDLED)["meta"]
    other = tmp_path / "other.pt"
    checkpoint.save(other, build("light_unet", 3, width=8), arch="light_unet", classes=classes_of(meta),
                    arch_kwargs={"width": 8})
    roads = tmp_path / "roads.pt"
    checkpoint.save(roads, build("light_unet", 3, width=8), arch="light_unet", arch_kwargs={"width": 8},
                    classes=table_from_attrs([{"id": i, "name": n, "color": [i, i, i]}
                                              for i, n in enumerate(["road", "car", "sky"])]))
    f_same = stability.figures(stability.measure(str(BUNDLED), str(store), origins, grid, second=str(same)), 2)
    assert f_same["void_model_disagreement"] == 0.0 and f_same["air_model_gap"] == 0.0
    f_other = stability.figures(stability.measure(str(BUNDLED), str(store), origins, grid, second=str(other)), 2)
    assert f_other["void_model_disagreement"] > 0.2 and f_other["air_model_gap"] > 0
    assert f_other["second_model"] == str(other)
    f_roads = stability.figures(stability.measure(str(BUNDLED), str(store), origins, grid, second=str(roads)), 2)
    assert "void_model_disagreement" not in f_roads and "second_model" not in f_roads


def test_doubt_gates_beside_the_ranked_figure():
    """A slab inside the ranked figure's range is still flagged when its image is unlike the training data or when
    a second model reads its air differently; each reason is said."""
    from bigseg.trust import SECOND_OPINION_POINTS

    ref = {"figure": "uncertain_fraction", "threshold": 0.5, "slabs": 16, "rule": "the median uncertain_fraction",
           "unfamiliar": {"figure": "feature_shift", "threshold": 0.9, "rule": "1.5 x the largest feature_shift"}}
    calm = {"uncertain_fraction": 0.1, "mean_confidence": 0.95,
            "stability": {"feature_shift": 0.3, "air_model_gap": 0.2, "second_model": "/x/concrete-deeplabv3.pt"}}
    assert doubt(calm, ref)["flag"] is False
    strange = {**calm, "stability": {**calm["stability"], "feature_shift": 2.0}}
    d = doubt(strange, ref)
    assert d["flag"] is True and d["unfamiliar"] and "unlike the model's training data" in d["message"]
    assert d["message"].startswith("low confidence")
    split = {**calm, "stability": {**calm["stability"], "air_model_gap": SECOND_OPINION_POINTS + 0.3}}
    d = doubt(split, ref)
    assert d["flag"] is True and "concrete-deeplabv3.pt" in d["message"] and "0.80 points" in d["message"]
    both = {**calm, "uncertain_fraction": 0.7, "stability": {"feature_shift": 2.0, "air_model_gap": 3.0}}
    assert doubt(both, ref)["message"].count(";") >= 3  # three reasons, each said
    no_gate = {k: v for k, v in ref.items() if k != "unfamiliar"}  # a reference from before the gate
    assert doubt(strange, no_gate)["flag"] is False
    # a gate on the first layers' shift reads that figure, not the all-layer one
    early = {**ref, "unfamiliar": {"figure": "early_feature_shift", "threshold": 1.7, "rule": "1.5 x the largest"}}
    assert doubt(strange, early)["flag"] is False  # the all-layer shift alone does not trip it; no early figure
    green = {**calm, "stability": {**calm["stability"], "feature_shift": 0.5, "early_feature_shift": 6.0}}
    d = doubt(green, early)
    assert d["flag"] is True and d["unfamiliar"] and "feature shift of its first layers 6" in d["message"]
    assert doubt(green, ref)["flag"] is False  # the same image under an all-layer gate passes: the case it misses


def test_calibrating_in_place_carries_the_reference_into_the_exports_beside(tmp_path):
    """A checkpoint calibrated in place keeps its exports beside it usable: same graphs, the new reference and the
    new checkpoint digest in their metadata (so infer still finds them), the int8 claims still tied to their
    graph."""
    import shutil

    from bigseg.checkpoint import file_digest
    from bigseg.infer.backend import int8_refusal, ready_export
    from bigseg.modelfile import graph_digest, read_onnx_meta

    mine = tmp_path / "mine.pt"
    for suffix in (".pt", ".onnx", ".int8.onnx"):
        shutil.copy(BUNDLED.with_suffix(suffix), mine.with_suffix(suffix))
    graphs = {s: graph_digest(mine.with_suffix(s)) for s in (".onnx", ".int8.onnx")}
    ref = calibrate(mine, slabs=3, size=384, workdir=tmp_path / "work", echo=lambda *_: None).to_attrs()
    digest = file_digest(mine)
    for s in (".onnx", ".int8.onnx"):
        meta = read_onnx_meta(mine.with_suffix(s))
        assert meta["source_checkpoint_sha256"] == digest
        assert meta["confidence_reference"] == json.loads(json.dumps(ref))
        assert graph_digest(mine.with_suffix(s)) == graphs[s]
    assert ready_export(mine, digest, None) is not None
    found = ready_export(mine, digest, None, "int8")
    assert found is not None and int8_refusal(found[1], found[0]) is None


def test_no_all_clear_the_model_did_not_earn(tmp_path):
    """The bundled model's report carries its synthetic-only caveat; a model never calibrated gets a plain "not
    checked" line; neither report shows the green all-clear (issue: a false all-clear)."""
    synthesize(tmp_path / "s.png", SynthParams(600, 400, seed=8))
    assert run_cli("infer", tmp_path / "s.png", "--workers", "0").returncode == 0
    assert run_cli("report", tmp_path / "s.zarr", "-o", tmp_path / "r1").returncode == 0
    doc = json.loads((tmp_path / "r1" / "stats.json").read_text())
    html = (tmp_path / "r1" / "report.html").read_text()
    assert any("trained on synthetic sections only" in w for w in doc["warnings"])
    assert "No warnings" not in html and "trained on synthetic sections only" in html
    assert any("found none of the 11 entrapped voids" in w for w in doc["warnings"])  # its measured blind spot
    plain = _with_reference(tmp_path, "plain.pt", None)  # the same weights, never calibrated
    assert run_cli("infer", tmp_path / "s.zarr", "--workers", "0", "--model", plain, "--overwrite").returncode == 0
    assert run_cli("report", tmp_path / "s.zarr", "-o", tmp_path / "r2").returncode == 0
    doc = json.loads((tmp_path / "r2" / "stats.json").read_text())
    html = (tmp_path / "r2" / "report.html").read_text()
    assert any("not checked: the model was never calibrated" in w for w in doc["warnings"])
    assert not any("synthetic sections only" in w or "entrapped" in w for w in doc["warnings"])  # not the bundled file
    assert "No warnings" not in html


def test_an_adapted_models_check_asks_whether_the_slab_looks_like_the_painted_ones():
    """Held-back strokes speak for the slabs they were painted on: a slab whose first layers' look lies further than
    ADAPTED_LOOK_LIMIT from every painted slab is flagged, whatever the strokes scored; labels made before looks
    were kept are judged by the strokes alone."""
    from bigseg.report.doubt import ADAPTED_LOOK_LIMIT, profile_distance

    painted = [[0.1, -0.2], [0.5, 0.0, 1.0]]
    adapted = {"held_back_accuracy": {"paste": 0.99, "stone": 0.98, "void": 0.97},
               "held_back_strokes": {"paste": 2, "stone": 2, "void": 2},
               "painted_profiles": {"/labs/a.zarr": painted, "/labs/b.zarr": [[3.0, 3.0], [3.0, 3.0, 3.0]]}}
    assert profile_distance(painted, painted) == 0.0
    assert profile_distance(painted, [[0.1, 0.2], [0.5, 0.0, 1.0]]) == pytest.approx((0.4 ** 2 / 2) / 2)
    assert profile_distance(painted, [[0.1], [0.5]]) is None  # other layers: no comparison
    near = {"stability": {"early_profile": [[0.12, -0.2], [0.5, 0.0, 1.0]]}}
    d = doubt({"uncertain_fraction": 0.1, "mean_confidence": 0.9, **near}, None, adapted)
    assert d["flag"] is False and "looks like a.zarr" in d["message"] and d["look_distance"] < ADAPTED_LOOK_LIMIT
    assert "did not predict the air content's error" in d["message"]  # a passing score is not a right air content
    far = {"stability": {"early_profile": [[2.5, 2.5], [2.5, 2.5, 2.5]]}}  # nearer b than a, still far from both
    d = doubt({"uncertain_fraction": 0.1, "mean_confidence": 0.9, **far}, None, adapted)
    assert d["flag"] is True and d["figure"] == "look_distance" and "b.zarr" in d["message"]
    assert d["value"] > ADAPTED_LOOK_LIMIT and "paint a few strokes on this slab" in d["message"]
    old = {"uncertain_fraction": 0.1, "mean_confidence": 0.9}  # labels from before: the strokes decide
    assert doubt(old, None, adapted)["flag"] is False and "look_distance" not in doubt(old, None, adapted)
