"""The annotations layer and ``bigseg adapt`` on real stores: strokes land where they are painted, the pyramid
equals a full build, undo restores exactly, sparse masks import all or nothing, held-back strokes never reach
training, and adapt -> infer -> report runs from the command line with the adapted model's record in the report.
(What adapting is worth is measured by benchmarks/adapt.py, not here.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import error_line, mask_store, run_cli
from PIL import Image

from bigseg import annotations as ann
from bigseg import checkpoint, pyramid
from bigseg import store as st
from bigseg.classes import CONCRETE, ClassInfo
from bigseg.ingest import ingest
from bigseg.object_rule import MIN_OBJECTS
from bigseg.synth import SynthParams, synthesize
from bigseg.synth.strokes import simulate_dabs, simulate_strokes
from bigseg.train.adapt_options import AdaptOptions
from bigseg.train.grow import grow_strokes
from bigseg.train.strokes import ChunkReader, read_strokes


def _ingested(tmp_path, size=(768, 640), seed=3, style="classic"):
    synthesize(tmp_path / "slab.png", SynthParams(*size, seed=seed, style=style))
    store = tmp_path / "slab.zarr"
    ingest(tmp_path / "slab.png", store, truth=tmp_path / "slab.truth.png", chunk=256)
    return store


def _array(store, name=ann.LAYER) -> np.ndarray:
    return np.asarray(st.open_array(store, name)[:])


def _full_pyramid(a: np.ndarray, factors, n=3) -> dict:
    out, level, prev = {}, a, 1
    for f in factors:
        level = pyramid.majority(level, f // prev, n)
        out[f] = level
        prev = f
    return out


def test_dabs_land_inside_small_voids_the_labels_miss(tmp_path):
    """simulate_dabs: one small dab inside each chosen void, only on voids under the size limit that the labels
    miss, never on a void the labels already read or one too thin for a dab; painted through the store's path."""
    truth = np.zeros((120, 160), np.uint8)
    yy, xx = np.mgrid[:120, :160]
    for cy, cx, r in ((20, 20, 4), (20, 60, 5), (60, 20, 3), (60, 100, 20), (100, 140, 4)):
        truth[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 2
    truth[110, 5] = 2  # one pixel: no dab fits
    labels = np.zeros_like(truth)
    labels[(yy - 100) ** 2 + (xx - 140) ** 2 <= 16] = 2  # read right: not dabbed
    dabs = simulate_dabs(truth, labels, 2, 10, np.random.default_rng(0))
    centres = sorted((int(d.points[0][1]), int(d.points[0][0])) for d in dabs)
    assert centres == [(20, 20), (20, 60), (60, 20)]  # not the 40 px void, the one read right or the thin one
    assert all(d.class_id == 2 and 1 <= d.radius <= 2 and len(d.points) == 1 for d in dabs)
    assert len(simulate_dabs(truth, labels, 2, 2, np.random.default_rng(0))) == 2
    Image.fromarray(np.zeros((120, 160, 3), np.uint8)).save(tmp_path / "slab.png")
    Image.fromarray(truth).save(tmp_path / "truth.png")
    store = tmp_path / "slab.zarr"
    ingest(tmp_path / "slab.png", store, truth=tmp_path / "truth.png", chunk=64)
    for d in dabs:
        ann.paint(store, d)
    painted = _array(store)
    assert (painted != ann.NONE).sum() >= 3 * 5 and (truth[painted == 2] == 2).all()  # every dab inside its void


def test_strokes_pyramid_counts_and_undo(tmp_path):
    store = mask_store(tmp_path / "m.zarr", np.zeros((600, 900), np.uint8), (256, 256))
    group = st.open_store(store, mode="r+")
    pyramid.create_levels(group, "preview", 600, 900, [4, 8])  # the image's preview factors (an ingest makes them)
    ann.ensure_layer(store)
    assert (_array(store) == 255).all() and ann.summary(store)["painted"] == {"paste": 0, "stone": 0, "void": 0}
    # a horizontal stroke of radius 5 from x 100 to 400 at y 300: a capsule
    c1 = ann.paint(store, ann.Stroke(2, 5.0, ((100.5, 300.5), (400.5, 300.5))))
    a = _array(store)
    yy, xx = np.mgrid[0:600, 0:900] + 0.5
    dx = np.clip(xx, 100.5, 400.5) - xx
    capsule = dx**2 + (yy - 300.5) ** 2 <= 25
    assert np.array_equal(a == 2, capsule) and c1.pixels == capsule.sum()
    # a stone stroke crossing it and a chunk border, then an eraser dab
    c2 = ann.paint(store, ann.Stroke(1, 3.0, ((250, 200), (260, 400), (600, 420))))
    ann.paint(store, ann.Stroke(255, 8.0, ((380, 300),)))
    a = _array(store)
    assert ann.summary(store)["painted"] == {"paste": 0, "stone": int((a == 1).sum()), "void": int((a == 2).sum())}
    assert ann.summary(store)["strokes"] == 3
    for f, level in _full_pyramid(a, [4, 8]).items():  # updated stroke by stroke = built from scratch
        assert np.array_equal(_array(store, f"{ann.PYRAMID}/x{f}"), level), f
    # undo of the stone stroke: every pixel it changed back as it was (void where it crossed the void stroke)
    before_erase = a.copy()
    assert ann.undo(store, c2) == c2.pixels
    a = _array(store)
    assert not (a == 1).any() and (a[297:304, 250:262] == 2).any()
    assert np.array_equal(a[before_erase != 1], before_erase[before_erase != 1])
    for f, level in _full_pyramid(a, [4, 8]).items():
        assert np.array_equal(_array(store, f"{ann.PYRAMID}/x{f}"), level), f
    assert ann.summary(store)["painted"]["stone"] == 0
    # only painted chunks are stored; truth and labels never touched
    assert not st.check_chunks(st.open_array(store, ann.LAYER))
    assert (_array(store, "labels") == 0).all()


def test_stroke_json_is_checked():
    for bad, word in (({"class": 3, "radius": 4, "points": [[1, 1]]}, "class"),
                      ({"class": 0, "radius": 0, "points": [[1, 1]]}, "radius"),
                      ({"class": 0, "radius": float("nan"), "points": [[1, 1]]}, "radius"),
                      ({"class": 0, "radius": 4, "points": []}, "points"),
                      ({"class": 0, "radius": 4, "points": [[1, "a"]]}, "points"),
                      ({"class": True, "radius": 4, "points": [[1, 1]]}, "class")):
        with pytest.raises(Exception, match=word):
            ann.Stroke.parse(bad, 3)
    assert ann.Stroke.parse({"class": 255, "radius": 2, "points": [[1, 2.5]]}, 3).class_id == 255


def test_import_annotations_all_or_nothing(tmp_path):
    store = _ingested(tmp_path)
    truth_before = _array(store, "truth").tobytes()
    h, w = 640, 768
    mask = np.full((h, w), 255, np.uint8)
    mask[10:20, 10:200] = 0
    mask[100:110, 300:600] = 1
    mask[400:405, 50:60] = 2
    Image.fromarray(mask).save(tmp_path / "sparse.png")
    r = run_cli("import", "annotations", store, tmp_path / "sparse.png")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(_array(store), mask)
    assert ann.summary(store)["painted"] == {"paste": 1900, "stone": 3000, "void": 50}
    # RGB in the class colours, black = none; refused over existing annotations without --overwrite
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[200:210, 200:300] = CONCRETE[2].color
    rgb[300:310, 200:300] = CONCRETE[1].color
    Image.fromarray(rgb).save(tmp_path / "sparse-rgb.png")
    assert "--overwrite" in error_line(run_cli("import", "annotations", store, tmp_path / "sparse-rgb.png"))
    assert run_cli("import", "annotations", store, tmp_path / "sparse-rgb.png", "--overwrite").returncode == 0
    a = _array(store)
    assert (a == 2).sum() == 1000 and (a == 1).sum() == 1000 and (a == 0).sum() == 0
    for f, level in _full_pyramid(a, sorted(int(k[1:]) for k in st.open_store(store)["preview"].array_keys())).items():
        assert np.array_equal(_array(store, f"{ann.PYRAMID}/x{f}"), level)
    after_good = a.tobytes()
    # wrong size, a value outside the class table (named with its position), a colour not in the table: one line,
    # exit 2, the store's annotations as they were
    Image.fromarray(mask[:-1]).save(tmp_path / "short.png")
    assert "is 768x639 but the store's image is 768x640" in error_line(
        run_cli("import", "annotations", store, tmp_path / "short.png", "--overwrite"))
    bad = mask.copy()
    bad[600, 700] = 7
    Image.fromarray(bad).save(tmp_path / "bad.png")
    line = error_line(run_cli("import", "annotations", store, tmp_path / "bad.png", "--overwrite"))
    assert "label 7 at x=700, y=600" in line
    rgb[5, 6] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "bad-rgb.png")
    assert "colour (1, 2, 3) at x=6, y=5" in error_line(
        run_cli("import", "annotations", store, tmp_path / "bad-rgb.png", "--overwrite"))
    Image.fromarray(np.full((h, w), 255, np.uint8)).save(tmp_path / "empty.png")
    assert "no annotated pixel" in error_line(run_cli("import", "annotations", store, tmp_path / "empty.png",
                                                      "--overwrite"))
    assert "is the colour of class void" in error_line(run_cli("import", "annotations", store, tmp_path / "bad.png",
                                                               "--none-colour", "30,90,230", "--overwrite"))
    assert _array(store).tobytes() == after_good and _array(store, "truth").tobytes() == truth_before
    assert not list((store / ".bigseg").glob("import-annotations-*"))  # nothing half-made left behind
    # info lists the layer; evaluate scores labels against the strokes
    info = run_cli("info", store)
    assert "annotations" in info.stdout and "painted paste 0 px, stone 1,000 px, void 1,000 px" in info.stdout


def test_evaluate_against_annotations(tmp_path):
    labels = np.zeros((300, 400), np.uint8)
    labels[:, 200:] = 1
    store = mask_store(tmp_path / "e.zarr", labels, (128, 128))
    ann.ensure_layer(store)
    ann.paint(store, ann.Stroke(0, 3.0, ((20, 20), (100, 20))))  # paste on paste: right
    ann.paint(store, ann.Stroke(1, 3.0, ((150, 100), (190, 100))))  # stone on paste: wrong
    ann.paint(store, ann.Stroke(1, 3.0, ((250, 200), (350, 200))))  # stone on stone: right
    r = run_cli("evaluate", store, "--against", "annotations", "--json", tmp_path / "e.json")
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "e.json").read_text())
    a = _array(store)
    wrong = int(((a == 1) & (labels == 0)).sum())
    assert doc["reference"] == "annotations" and doc["accuracy"]["paste"] == 1.0
    assert doc["accuracy"]["stone"] == pytest.approx(1 - wrong / (a == 1).sum())
    assert doc["accuracy"]["void"] is None and "accuracy on the strokes" in r.stdout
    assert "no complete annotations" in error_line(run_cli("evaluate", mask_store(tmp_path / "n.zarr", labels,
                                                                                  (128, 128)), "--against",
                                                           "annotations"))


def test_held_back_strokes_never_reach_training(tmp_path):
    store = _ingested(tmp_path, size=(900, 700))
    truth = _array(store, "truth")
    for s in simulate_strokes(truth, 3, 15, np.random.default_rng(0)):
        ann.paint(store, s)
    strokes = read_strokes(str(store), 3, 0.2, np.random.default_rng(1))
    held = [h for h in strokes.held_strokes]
    assert {h["class"] for h in held} == {0, 1, 2}
    for c, n in strokes.n_strokes.items():  # about a fifth of each class's strokes, at least one, never all
        assert 1 <= sum(h["class"] == c for h in held) < n
    assert 0.1 < len(held) / sum(strokes.n_strokes.values()) < 0.35
    reader = ChunkReader(strokes)
    grown = grow_strokes(reader, np.random.default_rng(2))
    assert grown > 0
    a = _array(store)
    seen = reader.window("annotations", 0, 0, 1024)[:700, :900]
    for h in held:
        ys, xs = h["idx"] // min(256, 900 - h["origin"][1]) + h["origin"][0], \
            h["idx"] % min(256, 900 - h["origin"][1]) + h["origin"][1]
        assert (a[ys, xs] == h["class"]).all()  # these are the stroke's pixels ...
        assert (seen[ys, xs] == 255).all()  # ... and training never sees them, nor grown labels over them
    # grown labels agree with the truth (they are what teaches where a class ends)
    g = (seen != 255) & (a == 255)
    assert g.sum() > 1000 and (seen[g] == truth[g]).mean() > 0.97
    # training pixels are exactly the painted ones not held back
    train = np.zeros_like(a, bool)
    for coords in strokes.train.values():
        train[coords[:, 0], coords[:, 1]] = True
    assert np.array_equal(train, (a != 255) & (seen == a))
    # a stroke's fate is fixed by where it is: more strokes painted, the same ones still held back
    a = _array(store)
    y, x = next((y, x) for y in range(10, 690, 20) for x in range(10, 840, 20) if (a[y - 8 : y + 9, x - 8 : x + 50]
                                                                                   == 255).all())
    ann.paint(store, ann.Stroke(0, 3.0, ((x, y), (x + 40, y))))  # apart from every other stroke
    again = read_strokes(str(store), 3, 0.2, np.random.default_rng(7))
    assert {h["box"] for h in held} <= {h["box"] for h in again.held_strokes}


def test_adapt_infer_report_from_the_command_line(tmp_path):
    store = _ingested(tmp_path)
    for s in simulate_strokes(_array(store, "truth"), 3, 10, np.random.default_rng(0)):
        ann.paint(store, s)
    out = tmp_path / "mine.pt"
    r = run_cli("adapt", store, "-o", out, "--minutes", "0.15", "--crop", "128", "--batch", "4", "--tta", "flip")
    assert r.returncode == 0, r.stderr
    assert "held-back strokes" in r.stdout and "where to paint next" in r.stdout
    meta = checkpoint.read(out)["meta"]
    a = meta["adapted"]
    assert a["options"]["tta"] == "flip"  # held-back strokes scored as 'infer --tta flip' will run it
    assert a["base"]["sha256"] == checkpoint.file_digest(checkpoint.BUNDLED)
    assert a["painted_pixels"] == ann.summary(store)["painted"] and a["steps"] > 0
    assert set(a["held_back_accuracy"]) == {"paste", "stone", "void"} and sum(a["held_back_strokes"].values()) >= 3
    assert "confidence_reference" not in meta  # the base's synthetic validation range does not describe it
    fit = a["object_rule_fit"]  # the void-object rule: fitted or not, and why, said in the record and the output
    assert "object rule: fitted on" in r.stdout and set(fit["fitted_on"]) == {"void", "not void"}
    assert fit["kept"] == ("object_rule" in a) and (fit["kept"] or fit["why"])
    assert a["options"]["grow_void_edges"] is True and a["options"]["cut_merged_voids"] is True  # the defaults
    assert a["options"]["edges"] == AdaptOptions.edges
    assert not fit["kept"] or (a["object_rule"]["grow_edges"] is True and fit["grow_edges"] is True
                               and a["object_rule"]["cut_merged"] is True and fit["cut_merged"] is True)
    short = MIN_OBJECTS - fit["fitted_on"]["not void"]
    if short > 0:  # what to paint for a rule, in the person's terms (blind strokes here rarely cross a false void)
        assert f"paint paste or stone over {short} more objects" in fit["why"] and fit["why"] in r.stdout
    assert out.with_suffix(".onnx").is_file()
    suggestions = st.attr(st.open_array(store, ann.LAYER), "suggestions")
    assert suggestions["regions"] and suggestions["model"] == str(out)
    regions = suggestions["regions"]
    assert [r["score"] for r in regions] == sorted((r["score"] for r in regions), reverse=True)
    assert all(g["void_score"] >= 0 for g in regions)  # recorded beside the score, for replays
    for i, p in enumerate(regions):  # the best windows that do not overlap a better one by more than a quarter
        for q in regions[:i]:
            w = min(p["x"] + p["width"], q["x"] + q["width"]) - max(p["x"], q["x"])
            h = min(p["y"] + p["height"], q["y"] + q["height"]) - max(p["y"], q["y"])
            assert max(0, w) * max(0, h) <= 0.25 * p["width"] * p["height"]
    # the next infer runs its verified ONNX export (the default speed), and the report says it was adapted
    r = run_cli("infer", store, "--model", out, "--workers", "0")
    assert r.returncode == 0, r.stderr
    assert "onnxruntime" in r.stdout + r.stderr
    r = run_cli("report", store, "-o", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    assert "adapted to this concrete" in r.stdout
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "adapted to this concrete" in html and "No warnings" not in html and "scored with --tta flip" in html
    assert ("objects cut where the grey rises inside them first" in html) == fit["kept"]  # the rule pass, named
    doc = json.loads((tmp_path / "rep" / "stats.json").read_text())
    assert doc["slabs"][0]["model"]["adapted"]["held_back_accuracy"] == a["held_back_accuracy"]
    # the held-back strokes speak for slabs that look like the painted one: this one is (its look was kept) ...
    assert list(a["painted_profiles"]) == [str(store)] and len(a["painted_profiles"][str(store)]) == 4
    check = doc["slabs"][0]["doubt"]
    assert "looks like slab.zarr" in check["message"] and check["look_distance"] < 0.01
    # ... a slab of another look is not: the same section with green paste gets the warning, and says why
    green = (np.asarray(Image.open(tmp_path / "slab.png").convert("RGB")) * [0.35, 1.25, 0.45]).clip(0, 255)
    Image.fromarray(green.astype(np.uint8)).save(tmp_path / "green.png")
    assert run_cli("infer", tmp_path / "green.png", "--model", out, "--workers", "0").returncode == 0
    r = run_cli("report", tmp_path / "green.zarr", "-o", tmp_path / "rep-green", "--pixel-size", "10")
    assert r.returncode == 0, r.stderr
    check = json.loads((tmp_path / "rep-green" / "stats.json").read_text())["slabs"][0]["doubt"]
    assert check["flag"] is True and "looks unlike the slab(s) the model was adapted on" in check["message"]
    assert f"bigseg adapt {store} THIS_STORE --model" in check["message"]  # it names the slab to keep
    assert "low confidence" in r.stdout


def test_adapt_bad_input_one_line_and_nothing_lost(tmp_path):
    store = _ingested(tmp_path)
    out = tmp_path / "m.pt"
    assert "no annotations" in error_line(run_cli("adapt", store, "-o", out))
    ann.paint(store, ann.Stroke(0, 4.0, ((50, 50), (150, 50))))
    assert "only one class" in error_line(run_cli("adapt", store, "-o", out))
    ann.paint(store, ann.Stroke(1, 4.0, ((50, 150), (150, 150))))
    before = _array(store).tobytes()
    for args, words in ((["--minutes", "0"], "--minutes must be a positive"),
                        (["--minutes", "nan"], "--minutes must be a positive"),
                        (["--minutes", "-1"], "--minutes must be a positive"),
                        (["--crop", "100"], "--crop must be a multiple of 16"),
                        (["--prior", "-1"], "--prior")):
        assert words in error_line(run_cli("adapt", store, "-o", out, *args))
    other = (*CONCRETE, ClassInfo(3, "crack", (255, 0, 0)))
    from bigseg.models import build

    checkpoint.save(tmp_path / "four.pt", build("light_unet", 4), arch="light_unet", classes=other)
    assert "are not the stores'" in error_line(run_cli("adapt", store, "-o", out, "--model", tmp_path / "four.pt"))
    assert "adapt fine-tunes a bigseg checkpoint" in error_line(run_cli(
        "adapt", store, "-o", out, "--model", checkpoint.BUNDLED.with_suffix(".onnx")))
    out.write_bytes(b"keep me")
    assert "--overwrite" in error_line(run_cli("adapt", store, "-o", out))
    assert out.read_bytes() == b"keep me"
    assert "sit on top of an input" in error_line(run_cli("adapt", store, "-o", store / "m.pt"))
    assert "name it .pt" in error_line(run_cli("adapt", store, "-o", tmp_path / "m.onnx"))
    assert _array(store).tobytes() == before and "labels" not in st.open_store(store)


def test_held_back_scoring_with_tta_averages_the_views_logits():
    """adapt --tta: the held-back strokes are scored on the softmax of the views' mean logits, as infer --tta runs."""
    import torch

    from bigseg.train.window_predict import predict

    model, _ = checkpoint.load(checkpoint.BUNDLED)
    model.eval()
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255
    with torch.inference_mode():
        want = torch.softmax((model(x) + model(x.flip(-1)).flip(-1)) / 2, 1)[0]
    assert torch.allclose(predict(model, image, "flip"), want, atol=1e-5)
    assert not torch.allclose(predict(model, image, "none"), want, atol=1e-3)


def test_a_step_budget_gives_the_same_model_twice(tmp_path):
    """--steps: the same strokes, seed and steps give the same weights (a time budget gives whatever steps the
    machine allowed), and the run says why it stopped; another seed gives other weights."""
    import torch

    from bigseg.train.adapt import adapt
    from bigseg.train.adapt_options import AdaptOptions

    store = _ingested(tmp_path, size=(512, 384))
    for s in simulate_strokes(_array(store, "truth"), 3, 6, np.random.default_rng(0)):
        ann.paint(store, s)
    opts = AdaptOptions(steps=4, minutes=5, crop=64, batch=2, export=False, suggestions=0)
    runs = [adapt([store], tmp_path / f"m{k}.pt", options=opts, echo=lambda *a: None, progress=False)
            for k in range(2)]
    other = adapt([store], tmp_path / "m2.pt", options=AdaptOptions(**{**opts.__dict__, "seed": 1}),
                  echo=lambda *a: None, progress=False)
    assert [r.steps for r in runs] == [4, 4] and runs[0].stopped == "step budget"
    assert runs[0].suggestions == []  # suggestions=0: none (and none computed)
    weights = [checkpoint.read(tmp_path / f"m{k}.pt")["state_dict"] for k in range(3)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0]) and other.steps == 4
    # --held-back-seed: another seed for the crops, the same strokes held back (two runs scored alike)
    same_held = adapt([store], tmp_path / "m3.pt", options=AdaptOptions(**{**opts.__dict__, "seed": 1,
                                                                          "held_back_seed": 0}),
                      echo=lambda *a: None, progress=False)
    assert same_held.held_back_pixels == runs[0].held_back_pixels != other.held_back_pixels
    w3 = checkpoint.read(tmp_path / "m3.pt")["state_dict"]
    assert not all(torch.equal(weights[0][k], w3[k]) for k in w3)
    assert checkpoint.read(tmp_path / "m0.pt")["meta"]["adapted"]["options"]["steps"] == 4


def test_void_shift_is_added_to_the_void_logit_once_per_round(tmp_path):
    """The adapted model's void logit is shifted by --void-shift: kept in the checkpoint's metadata, applied by every
    load and carried into the ONNX export; adapting an adapted model again shifts its network once, not twice; 0
    leaves the logits as trained."""
    import onnxruntime as ort
    import torch

    from bigseg.train.adapt import adapt
    from bigseg.train.adapt_options import AdaptOptions

    store = _ingested(tmp_path, size=(512, 384))
    for s in simulate_strokes(_array(store, "truth"), 3, 6, np.random.default_rng(0)):
        ann.paint(store, s)
    opts = AdaptOptions(steps=3, minutes=5, crop=64, batch=2, suggestions=0, void_shift=-0.75)
    adapt([store], tmp_path / "m.pt", options=opts, echo=lambda *a: None, progress=False)
    meta = checkpoint.read(tmp_path / "m.pt")["meta"]
    assert meta["logit_offset"] == [0.0, 0.0, -0.75] and meta["adapted"]["options"]["void_shift"] == -0.75
    model, _ = checkpoint.load(tmp_path / "m.pt")
    x = torch.from_numpy(np.random.default_rng(1).random((1, 3, 64, 96), np.float32))
    with torch.inference_mode():
        shifted = model(x)
        model.set_logit_offset(None)
        raw = model(x)
    diff = (shifted - raw)[0].flatten(1)
    assert torch.allclose(diff[2], torch.full_like(diff[2], -0.75)) and float(diff[:2].abs().max()) == 0
    onnx = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = onnx.run(None, {onnx.get_inputs()[0].name: x.numpy()})[0]
    assert np.allclose(got, shifted.numpy(), atol=1e-3)
    # a second round from the first: its network is trained from the first's as trained, then shifted once
    again = AdaptOptions(**{**opts.__dict__, "steps": 2, "export": False})
    adapt([store], tmp_path / "m2.pt", base=tmp_path / "m.pt", options=again, echo=lambda *a: None, progress=False)
    assert checkpoint.read(tmp_path / "m2.pt")["meta"]["logit_offset"] == [0.0, 0.0, -0.75]
    # ... trained on the first's network without its shift: the same weights as from a copy that never had one
    blob = checkpoint.read(tmp_path / "m.pt")
    del blob["meta"]["logit_offset"]
    torch.save(blob, tmp_path / "m-unshifted.pt")
    adapt([store], tmp_path / "m2u.pt", base=tmp_path / "m-unshifted.pt", options=again, echo=lambda *a: None,
          progress=False)
    shifted_base, unshifted_base = (checkpoint.read(tmp_path / f"{k}.pt")["state_dict"] for k in ("m2", "m2u"))
    assert all(torch.equal(shifted_base[k], unshifted_base[k]) for k in shifted_base)
    assert not all(torch.equal(shifted_base[k], blob["state_dict"][k]) for k in shifted_base)  # it did train
    none = AdaptOptions(**{**again.__dict__, "void_shift": 0.0})
    adapt([store], tmp_path / "m3.pt", options=none, echo=lambda *a: None, progress=False)
    assert "logit_offset" not in checkpoint.read(tmp_path / "m3.pt")["meta"]
    assert "--void-shift must be between" in error_line(run_cli("adapt", store, "-o", tmp_path / "m4.pt",
                                                                "--void-shift", "nan"))


def test_crf_loss_trains_beside_the_strokes_and_is_recorded(tmp_path):
    """--crf: the local CRF loss joins each step's loss (the same strokes, seed and steps give other weights than
    without it), the weight is in the checkpoint's record, and a weight out of range gets one line."""
    import torch

    from bigseg.train.adapt import adapt
    from bigseg.train.adapt_options import AdaptOptions

    store = _ingested(tmp_path, size=(512, 384))
    for s in simulate_strokes(_array(store, "truth"), 3, 6, np.random.default_rng(0)):
        ann.paint(store, s)
    opts = AdaptOptions(steps=3, minutes=5, crop=64, batch=2, export=False, suggestions=0, object_rule=False)
    adapt([store], tmp_path / "plain.pt", options=opts, echo=lambda *a: None, progress=False)
    adapt([store], tmp_path / "crf.pt", options=AdaptOptions(**{**opts.__dict__, "crf": 1.0}), echo=lambda *a: None,
          progress=False)
    a, b = (checkpoint.read(tmp_path / f"{k}.pt") for k in ("plain", "crf"))
    assert a["meta"]["adapted"]["options"]["crf"] == 0.0 and b["meta"]["adapted"]["options"]["crf"] == 1.0
    assert not all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert "--crf must be a weight" in error_line(run_cli("adapt", store, "-o", tmp_path / "m.pt", "--crf", "-1"))


def test_zoom_out_reads_half_the_crops_larger_and_shrinks_them(tmp_path):
    """--zoom-out: about half the crops come from a window up to that many times the crop (never more than the slab
    holds), the rest at the crop's size; 1 draws nothing (the default's crops and weights are as before); the
    factor is in the record, and one out of range gets one line."""
    import torch

    from bigseg.train.adapt import _zoomed_size, adapt
    from bigseg.train.adapt_options import AdaptOptions

    rng = np.random.default_rng(0)
    sides = [_zoomed_size(64, 3.0, 1000, rng) for _ in range(2000)]
    assert 0.4 < np.mean([s == 64 for s in sides]) < 0.6 and max(sides) <= 192 and min(sides) == 64
    assert max(_zoomed_size(64, 3.0, 100, rng) for _ in range(200)) == 100  # the slab's side bounds it
    state = np.random.default_rng(5)
    assert _zoomed_size(64, 1.0, 1000, state) == 64
    assert state.random() == np.random.default_rng(5).random()  # no draw taken
    store = _ingested(tmp_path, size=(512, 384))
    for s in simulate_strokes(_array(store, "truth"), 3, 6, np.random.default_rng(0)):
        ann.paint(store, s)
    opts = AdaptOptions(steps=3, minutes=5, crop=64, batch=2, export=False, suggestions=0, object_rule=False)
    adapt([store], tmp_path / "plain.pt", options=opts, echo=lambda *a: None, progress=False)
    adapt([store], tmp_path / "zoom.pt", options=AdaptOptions(**{**opts.__dict__, "zoom_out": 3.0}),
          echo=lambda *a: None, progress=False)
    a, b = (checkpoint.read(tmp_path / f"{k}.pt") for k in ("plain", "zoom"))
    assert a["meta"]["adapted"]["options"]["zoom_out"] == 1.0 and b["meta"]["adapted"]["options"]["zoom_out"] == 3.0
    assert not all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert "--zoom-out must be a factor" in error_line(run_cli("adapt", store, "-o", tmp_path / "m.pt",
                                                               "--zoom-out", "0.5"))


def test_replay_trains_on_synthetic_truth_beside_the_strokes(tmp_path):
    """--replay: synthetic crops with their exact truth join each step (the pool rendered once); the option is in the
    checkpoint's record; replay changes the weights against the same run without it; a base model with other
    classes, or a weight out of range, gets one line."""
    import torch

    from bigseg.train.adapt import adapt
    from bigseg.train.adapt_options import AdaptOptions
    from bigseg.train.replay import ReplayPool

    pool = ReplayPool(64, regions=2, region=128, seed=0)
    images, truth = pool.batch(3, np.random.default_rng(0))
    assert images.shape == (3, 3, 64, 64) and truth.shape == (3, 64, 64) and truth.dtype == torch.int64
    assert float(images.min()) >= 0 and float(images.max()) <= 1 and set(truth.unique().tolist()) <= {0, 1, 2}

    store = _ingested(tmp_path, size=(512, 384))
    for s in simulate_strokes(_array(store, "truth"), 3, 6, np.random.default_rng(0)):
        ann.paint(store, s)
    opts = AdaptOptions(steps=3, minutes=5, crop=64, batch=2, export=False, suggestions=0)
    plain = adapt([store], tmp_path / "plain.pt", options=opts, echo=lambda *a: None, progress=False)
    lines: list[str] = []
    replayed = adapt([store], tmp_path / "replay.pt", echo=lines.append, progress=False,
                     options=AdaptOptions(**{**opts.__dict__, "replay": 1.0, "replay_band": None}))
    assert plain.steps == replayed.steps == 3 and any(line.startswith("replay:") for line in lines)
    a, b = (checkpoint.read(tmp_path / f"{k}.pt") for k in ("plain", "replay"))
    assert b["meta"]["adapted"]["options"]["replay"] == 1.0
    assert not all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    banded = adapt([store], tmp_path / "band.pt", echo=lambda *a: None, progress=False,
                   options=AdaptOptions(**{**opts.__dict__, "replay": 1.0, "replay_band": 8, "steps": 6}))
    assert banded.steps == 6 and checkpoint.read(tmp_path / "band.pt")["meta"]["adapted"]["options"]["replay_band"] == 8

    assert "--replay-band must be between" in error_line(run_cli("adapt", store, "-o", tmp_path / "m.pt",
                                                                 "--replay", "1", "--replay-band", "0"))
    assert "--replay must be a weight" in error_line(run_cli("adapt", store, "-o", tmp_path / "m.pt", "--replay",
                                                             "-1"))
    other = (*CONCRETE, ClassInfo(3, "crack", (255, 0, 0)))
    from bigseg.models import build

    four = tmp_path / "four.zarr"
    ingest(tmp_path / "slab.png", four, chunk=256, classes=other)
    ann.paint(four, ann.Stroke(0, 4.0, ((50, 50), (150, 50))))
    ann.paint(four, ann.Stroke(3, 4.0, ((50, 150), (150, 150))))
    checkpoint.save(tmp_path / "four.pt", build("light_unet", 4), arch="light_unet", classes=other)
    assert "--replay trains on synthetic concrete" in error_line(run_cli(
        "adapt", four, "-o", tmp_path / "m.pt", "--model", tmp_path / "four.pt", "--replay", "0.5"))


def test_replay_void_band_keeps_only_the_pixels_near_voids():
    import torch

    from bigseg.train.replay import void_band

    truth = torch.zeros(2, 40, 40, dtype=torch.long)
    truth[0, 20, 20] = 2
    truth[0, :5, :] = 1
    band = void_band(truth, 8)
    assert int((band[0] != 255).sum()) == 17 * 17  # the square within 8 px (chessboard) of the one void pixel
    assert band[0, 20, 12] == 0 and band[0, 20, 11] == 255 and band[0, 20, 20] == 2
    assert bool((band[1] == 255).all())  # a crop without voids gives no pixel: adapt skips its loss, never NaN


def test_a_stroke_grows_by_its_own_colour_over_a_dark_grain_of_paste(tmp_path):
    """crushed's dark sand grains are paste by the class convention and look like voids. With ``--grow-by
    stroke`` a paste stroke painted over one labels the grain around it and the grown labels stay right; grown by
    the paste class's colours as one Gaussian (light paste and dark grains together, one wide model) paste leaks
    into the voids (97.0 % of grown pixels right on this slab, against 99.2 %; two Gaussians, the default: 98.7 %)."""
    from scipy import ndimage

    store = _ingested(tmp_path, style="crushed")
    truth, image = _array(store, "truth"), _array(store, "image").mean(axis=2)
    for s in simulate_strokes(truth, 3, 12, np.random.default_rng(0)):
        ann.paint(store, s)
    grains, _ = ndimage.label((truth == 0) & (image < 120))
    inside = ndimage.distance_transform_edt(grains > 0)
    painted = []
    for g in np.argsort(-np.bincount(grains.ravel())[1:])[:3] + 1:
        depth = np.where(grains == g, inside, 0)
        y, x = np.unravel_index(np.argmax(depth), depth.shape)
        if depth[y, x] >= 8:
            ann.paint(store, ann.Stroke(0, 3.0, ((x - 4.5, y + 0.5), (x + 5.5, y + 0.5))))
            painted.append((g, y, x))
    strokes = read_strokes(str(store), 3, 0.2, np.random.default_rng(1))
    trained = np.zeros(truth.shape, bool)
    trained[strokes.train[0][:, 0], strokes.train[0][:, 1]] = True
    reader = ChunkReader(strokes)
    grow_strokes(reader, np.random.default_rng(2), by="stroke")
    seen = reader.window("annotations", 0, 0, 1024)[: truth.shape[0], : truth.shape[1]]
    yy, xx = np.mgrid[: truth.shape[0], : truth.shape[1]]
    checked = 0
    for g, y, x in painted:
        if not trained[y, x]:
            continue  # held back: never grown
        reach = (grains == g) & (np.hypot(yy - y, xx - x) < 12)
        assert (seen[reach] == 0).mean() > 0.6, (g, y, x)  # the grain around the stroke is labelled paste
        assert not (seen[grains == g] == 2).any()
        checked += 1
    assert checked >= 2
    g = (seen != 255) & (_array(store) == 255)
    assert (seen[g] == truth[g]).mean() > 0.985
    right = []
    for components in (1, 2):
        seen = _grown_by_class(store, truth.shape, components)
        g = (seen != 255) & (_array(store) == 255)
        right.append((seen[g] == truth[g]).mean())
    # by the class's colours, one Gaussian (light paste and dark grains together, one wide model): paste leaks into
    # voids; two (the default) leak less
    assert right[0] < 0.98 and right[0] < right[1], right


def _grown_by_class(store, shape, components: int, choice: str = "all", edges: str = AdaptOptions.edges,
                    prior: str = AdaptOptions.colour_prior) -> np.ndarray:
    """The training labels adapt sees on a small slab (<= 1024 px): its strokes grown by class with ``components``
    Gaussians per class's colours (``choice`` "per-class": up to that many), held back with the same seeds every
    time."""
    reader = ChunkReader(read_strokes(str(store), 3, 0.2, np.random.default_rng(1)))
    grow_strokes(reader, np.random.default_rng(2), by="class", components=components, choice=choice, edges=edges,
                 colour_prior=prior)
    return reader.window("annotations", 0, 0, 1024)[: shape[0], : shape[1]]


def test_a_dark_and_white_void_grows_within_itself_with_two_colour_models(tmp_path):
    """A look whose voids are a dark cavity lined by a white deposit: one Gaussian of the void strokes' colours spans
    the grey scale, the paste's grey is nearer to it than to the paste's own, and the void strokes grow over the
    paste around small voids (random-7000041: 43 % of grown void labels were paste). Two Gaussians per class
    (k-means) keep the grown void on the void."""
    from bigseg.errors import BigsegError
    from bigseg.train.adapt_options import AdaptOptions

    store = _ingested(tmp_path, style="random-7000041")
    truth = _array(store, "truth")
    for s in simulate_strokes(truth, 3, 12, np.random.default_rng(0)):
        ann.paint(store, s)
    def right_void(k: int, **kw) -> float:
        seen = _grown_by_class(store, truth.shape, k, **kw)
        grown_void = (seen == 2) & (_array(store) == 255)
        assert grown_void.sum() > 2000
        return float((truth[grown_void] == 2).mean())

    # as measured, by the least colour distance (colour_prior "none", the rule before 2026-12-06)
    right = [right_void(k, prior="none") for k in (1, 2)]
    # local edges (the default) cut the ring one Gaussian grew round each void, not the disc
    assert right[0] < 0.87 and right[1] > 0.9 and right[1] - right[0] > 0.05, right
    model_edges = [right_void(k, edges="model", prior="none") for k in (1, 2)]  # the edge rule before 2026-12-06
    assert model_edges[0] < 0.82 and model_edges[1] > 0.85, model_edges
    # weighted by the stroke pixels each Gaussian models (the default since 2026-12-06): the paste's grey goes to the
    # paste, whose strokes hold most of it, even from one wide void Gaussian (measured 0.939 / 0.950)
    weighted = [right_void(k) for k in (1, 2)]
    assert weighted[0] > right[0] + 0.05 and weighted[1] > 0.92, (weighted, right)
    # each class its own number: the void's white lining is a colour no other class has, so it keeps two
    seen = _grown_by_class(store, truth.shape, 2, "per-class", prior="none")
    grown_void = (seen == 2) & (_array(store) == 255)
    assert float((truth[grown_void] == 2).mean()) > 0.85
    with pytest.raises(BigsegError, match="--colour-components must be between 1 and 4"):
        AdaptOptions(colour_components=0).check()
    with pytest.raises(BigsegError, match="--colour-choice must be all or per-class"):
        AdaptOptions(colour_choice="some").check()


def test_local_edges_put_a_blurred_void_edge_where_it_is_half_void():
    """AdaptOptions.edges "local": a dark void blurred into light paste, labelled by a colour model that claims every
    pixel darker than 180 (a sixth void: what a void model spread over its rim tones does), is cut back to the
    pixels more than half void -- the truth's edge -- and nothing away from the edge changes."""
    from scipy import ndimage

    from bigseg.train.grow import _local_edges

    yy, xx = np.mgrid[:64, :64]
    truth = (yy - 31.5) ** 2 + (xx - 31.5) ** 2 <= 9.0**2
    grey = ndimage.gaussian_filter(np.where(truth, 40.0, 200.0), 1.2)
    raw = np.repeat(grey[..., None], 3, axis=-1).astype(np.float32)
    fat = np.where(grey < 180, 2, 0)
    assert fat.sum() / 2 > truth.sum() * 1.25
    edged = _local_edges(raw, fat, [0, 2])
    assert abs(int((edged == 2).sum()) - int(truth.sum())) <= 0.06 * truth.sum()
    assert ((edged == 2) != truth).sum() < ((fat == 2) != truth).sum() / 3
    far = ndimage.distance_transform_edt(fat == 2) > 2
    far |= ndimage.distance_transform_edt(fat != 2) > 2
    assert (edged[far] == fat[far]).all()
    # nothing to mix where one class has the whole picture
    assert (_local_edges(raw, np.zeros_like(fat), [0, 2]) == 0).all()
    from bigseg.errors import BigsegError

    with pytest.raises(BigsegError, match="--edges must be model or local"):
        AdaptOptions(edges="mixed").check()


def test_local_edges_keep_grown_void_off_the_ring_round_a_void(tmp_path):
    """On a random look whose void strokes' two Gaussians reach the blurred ring round each void (random-7000070),
    growing with the mixing rule at edges (AdaptOptions.edges "local") labels a third as many paste pixels void as
    the nearer colour model does, and keeps nearly all the grown void."""
    store = _ingested(tmp_path, style="random-7000070")
    truth = _array(store, "truth")
    for s in simulate_strokes(truth, 3, 12, np.random.default_rng(0)):
        ann.paint(store, s)
    false, grown = {}, {}
    for edges in ("model", "local"):
        seen = _grown_by_class(store, truth.shape, 2, edges=edges)
        void = (seen == 2) & (_array(store) == 255)
        false[edges], grown[edges] = int((truth[void] != 2).sum()), int(void.sum())
    assert false["model"] > 150 and false["local"] < false["model"] / 2, false
    assert grown["local"] > 0.9 * grown["model"], grown


def test_a_colour_both_classes_hold_goes_to_the_class_whose_strokes_hold_more_of_it(tmp_path):
    """A random look whose voids are partly filled with a deposit of the paste's grey (random-7000090): void strokes
    on the filling give the void a Gaussian on the paste's colour, and by least distance the void grows over a ring
    of paste round each painted void. Weighting each Gaussian by the stroke pixels it models
    (AdaptOptions.colour_prior "strokes") gives that grey to the paste, whose strokes hold far more of it."""
    from bigseg.errors import BigsegError

    store = _ingested(tmp_path, style="random-7000090")
    truth = _array(store, "truth")
    for s in simulate_strokes(truth, 3, 12, np.random.default_rng(0)):
        ann.paint(store, s)
    false, void, right = {}, {}, {}
    for prior in ("none", "strokes"):
        seen = _grown_by_class(store, truth.shape, 2, prior=prior)
        grown = (seen != 255) & (_array(store) == 255)
        false[prior] = int((truth[grown & (seen == 2)] != 2).sum())
        void[prior] = int((grown & (seen == 2) & (truth == 2)).sum())
        right[prior] = float((seen[grown] == truth[grown]).mean())
    assert false["none"] > 150 and false["strokes"] < false["none"] / 2, false  # measured 257 -> 80
    assert void["strokes"] > 0.85 * void["none"], void  # the true void grown stays
    assert right["strokes"] > right["none"], right
    with pytest.raises(BigsegError, match="--colour-prior must be one of none, strokes"):
        AdaptOptions(colour_prior="some").check()


def test_each_class_takes_a_second_gaussian_only_where_no_other_class_has_those_colours():
    """The per-class choice (AdaptOptions.colour_choice "per-class"): void strokes of a dark cavity with a white
    lining keep two Gaussians (the lining's white is nobody else's); void strokes whose light part has the paste's
    colours (a blurred rim, a paste-grey deposit) get one, or the void would grow over the paste (random-7000059:
    6.4 % of the paste strokes' own colours nearer a second void Gaussian)."""
    from bigseg.train.grow import _claimed, _gaussian, _mixture, _per_class

    rng = np.random.default_rng(0)

    def blob(mean, sd, n):
        return rng.normal(mean, sd, (n, 3))

    paste, stone = blob((150, 140, 115), 8, 3000), blob((60, 95, 65), 10, 3000)
    lined = np.vstack([blob((40, 40, 35), 8, 1400), blob((230, 228, 222), 6, 600)])
    paste_grey = np.vstack([blob((40, 40, 35), 10, 1700), blob((150, 145, 120), 12, 340)])
    assert len(_per_class({0: paste, 1: stone, 2: lined}, 2)[2]) == 2
    colours = {0: paste, 1: stone, 2: paste_grey}
    chosen = _per_class(colours, 2)
    assert len(chosen[2]) == 1
    two = {c: _mixture(v, 2) for c, v in colours.items()}
    assert _claimed(colours, chosen) < _claimed(colours, two)
    assert _claimed(colours, chosen) <= _claimed(colours, {c: [_gaussian(v)] for c, v in colours.items()})


class _TiesByColour:
    """A stand-in network (the input of the ranking, not what is tested): each pixel's logits are its red, green
    and blue values, so a pixel with red = green is torn between paste and stone and one with red = blue between
    paste and void."""

    def __call__(self, x):
        return x * 8.0


def test_where_to_paint_next_ranks_by_every_class_and_records_the_doubt_about_voids(tmp_path):
    from bigseg.train.suggest import overlap, suggest_regions

    rgb = np.zeros((1024, 2048, 3), np.uint8)
    rgb[...] = (200, 0, 0)  # sure paste everywhere ...
    rgb[:, :1024] = (200, 200, 0)  # ... but the left half torn between paste and stone
    rgb[700:820, 1500:1620] = (200, 0, 200)  # and one patch torn between paste and void
    Image.fromarray(rgb).save(tmp_path / "ties.png")
    store = tmp_path / "ties.zarr"
    ingest(tmp_path / "ties.png", store, chunk=256)
    listed = suggest_regions(_TiesByColour(), [str(store)], CONCRETE, n=24)
    assert all(g["x"] + g["width"] <= 1024 for g in listed[:2])  # ranked by every class's doubt
    patch = {"x": 1500, "y": 700, "width": 120, "height": 120}
    holding = [g for g in listed if overlap(g, patch) == 120 * 120]
    assert holding and all(g["void_score"] > 0.05 for g in holding)  # the doubt about voids, recorded
    assert all(g["void_score"] == 0 for g in listed if g["x"] + g["width"] <= 1024)
    others = [ClassInfo(0, "road", (0, 0, 0)), ClassInfo(1, "car", (1, 1, 1)), ClassInfo(2, "sky", (2, 2, 2))]
    generic = suggest_regions(_TiesByColour(), [str(store)], others, n=3)  # no voids: no void score
    assert all(g["x"] + g["width"] <= 1024 for g in generic[:2]) and "void_score" not in generic[0]
