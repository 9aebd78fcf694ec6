"""Training on synthetic sections rendered on the fly: pure crops, batches that mix regions, augmentation, resume,
and the held-out styles refused."""

import json

import numpy as np
import pytest
import torch
import yaml

from bigseg import checkpoint
from bigseg.checkpoint import BUNDLED
from bigseg.classes import CONCRETE, ClassInfo
from bigseg.errors import BigsegError
from bigseg.models import build
from bigseg.synth import SynthParams
from bigseg.synth.slab import renderer
from bigseg.train.augment import photometric
from bigseg.train.config import AugmentConfig, PhotometricConfig, SyntheticConfig, load_config
from bigseg.train.loop import train
from bigseg.train.synthetic import CROP_BITS, SyntheticBatches, SyntheticCrops
from tests.helpers import error_line, run_cli


def _crops(**kw):
    cfg = SyntheticConfig(styles={"random": 3, "classic": 1}, region=128, crops_per_region=3, **kw)
    return SyntheticCrops(cfg, 64, AugmentConfig(rot90=True, photometric=PhotometricConfig(probability=1.0)), seed=2)


def test_a_crop_is_a_pure_function_of_its_number():
    a, b = _crops(), _crops()
    for i in [5, (7 << CROP_BITS) + 2, 5]:  # out of order, repeated, from a fresh dataset: the same crop
        x, t = a[i]
        y, u = b[i]
        assert torch.equal(x, y) and torch.equal(t, u)
        assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1
        assert t.dtype == torch.int64 and set(t.unique().tolist()) <= {0, 1, 2}
    assert not torch.equal(a[0][0], a[1][0])  # two crops of one region differ (position, flips, photometric)


def test_batches_mix_regions_and_each_loader_process_reuses_its_own():
    s = SyntheticBatches(0, 24, batch_size=4, workers=2, crops_per_region=3)
    batches = list(s)
    assert len(batches) == 24 and all(len(b) == 4 for b in batches)
    for b in batches:
        assert len({i >> CROP_BITS for i in b}) == 4  # four different regions in every batch
    for w in range(2):  # process w gets batches w, w + 2, ...: 3 in a row on the same regions, then new ones
        mine = [{i >> CROP_BITS for i in b} for b in batches[w::2]]
        assert mine[0] == mine[1] == mine[2] != mine[3]
        assert not mine[0] & {i >> CROP_BITS for i in batches[1 - w]}  # never another process's regions
    assert list(SyntheticBatches(5, 9, 4, 2, 3)) == batches[5:9]  # a resumed run picks up the same batches


def test_photometric_augmentation_is_seeded_and_changes_only_the_picture():
    image = torch.rand(3, 48, 48)
    cfg = PhotometricConfig(probability=1.0)
    a = photometric(image, np.random.default_rng(1), cfg)
    b = photometric(image, np.random.default_rng(1), cfg)
    c = photometric(image, np.random.default_rng(2), cfg)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == image.shape and a.min() >= 0 and a.max() <= 1
    assert (a - image).abs().mean() > 0.01
    assert torch.equal(photometric(image, np.random.default_rng(1), PhotometricConfig(probability=0.0)), image)


def test_hue_rotation_keeps_greys_and_a_third_of_a_turn_cycles_the_channels():
    """Hue and channel order: off by default and then no draw (every older config's crops unchanged); on, the
    colours move and the greys do not."""
    import math

    from bigseg.train.augment import rotate_hue

    image = torch.rand(3, 16, 16)
    turned = rotate_hue(image, 2 * math.pi / 3)
    assert torch.allclose(turned, image.roll(1, dims=0), atol=1e-5)  # R -> G, G -> B, B -> R
    assert torch.allclose(rotate_hue(image, 0.7).mean(0), image.mean(0), atol=1e-5)
    grey = image[:1].expand(3, -1, -1)
    assert torch.allclose(rotate_hue(grey, 1.3), grey, atol=1e-5)
    rng = np.random.default_rng(5)
    photometric(image, rng, PhotometricConfig(probability=1.0))
    rng_on = np.random.default_rng(5)
    on = photometric(image, rng_on, PhotometricConfig(probability=1.0, hue=1.0, channel_order=True))
    assert rng_on.random() != rng.random()  # drew more when on
    off = photometric(image, np.random.default_rng(5), PhotometricConfig(probability=1.0))
    assert not torch.allclose(on, off, atol=0.05)
    coloured = torch.zeros(3, 4, 4)
    coloured[2] = 0.8  # blue
    hues = {int(photometric(coloured, np.random.default_rng(k), PhotometricConfig(
        probability=1.0, hue=1.0, channel_order=True, brightness=0, contrast=0, gamma=0, colour=0, saturation=0,
        blur=0, noise=0, jpeg=None)).mean((1, 2)).argmax()) for k in range(40)}
    assert hues == {0, 1, 2}  # the blue filling comes out red, green or blue


def _write(tmp_path, name, **kw):
    cfg = {"synthetic": {"styles": {"random": 1.0}, "region": 128, "crops_per_region": 2},
           "model": {"arch": "light_unet", "width": 4}, "crop": 64, "batch_size": 2, "iterations": 4,
           "checkpoint_every": 2, "val_every": 4, "val_crops": 2, "num_workers": 0, "device": "cpu",
           "deterministic": True, "seed": 1, "out": str(tmp_path / name),
           "augment": {"rot90": True, "photometric": {}}}
    cfg.update(kw)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_training_on_synthetic_sections_resumes_exactly_and_records_provenance(tmp_path):
    torch.set_num_threads(1)
    full = train(load_config(_write(tmp_path, "full")), progress=False, echo=lambda *a: None)
    assert full["iterations"] == 4 and full["val"]["iou"]["paste"] is not None
    train(load_config(_write(tmp_path, "split")), stop_at=2, progress=False, echo=lambda *a: None)
    train(load_config(_write(tmp_path, "split")), resume=True, progress=False, echo=lambda *a: None)
    a = checkpoint.read(tmp_path / "full" / "model.pt")
    b = checkpoint.read(tmp_path / "split" / "model.pt")
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert any("synthetic sections" in t for t in a["meta"]["trained_on"])


def test_a_working_pixel_size_renders_finer_slabs_at_it_and_is_recorded(tmp_path):
    """synthetic.min_pixel_size_um: every slab finer than it (random styles and classic) is rendered at it, the
    rest of its look unchanged; slabs as coarse are left alone; the checkpoint records working_pixel_size_um."""
    plain, floored = _crops(), _crops(min_pixel_size_um=7.0)
    seen = []
    for r in range(60):
        a, b = plain.params(r)[0], floored.params(r)[0]
        px_a = a.pixel_size_um if a.style == "classic" else a.resolved_style().pixel_size_um
        px_b = b.pixel_size_um if b.style == "classic" else b.resolved_style().pixel_size_um
        assert px_b == max(px_a, 7.0), (r, px_a, px_b)
        if a.style != "classic":
            assert {**vars(a.resolved_style()), "pixel_size_um": 0} == {**vars(b.resolved_style()), "pixel_size_um": 0}
        seen.append(px_a < 7.0)
    assert any(seen) and not all(seen)  # both kinds were drawn
    train(load_config(_write(tmp_path, "floored", iterations=2, val_every=2,
                             synthetic={"styles": {"random": 1.0}, "region": 128, "crops_per_region": 2,
                                        "min_pixel_size_um": 7})), progress=False, echo=lambda *a: None)
    assert checkpoint.read(tmp_path / "floored" / "model.pt")["meta"]["working_pixel_size_um"] == 7
    train(load_config(_write(tmp_path, "free", iterations=2, val_every=2)), progress=False, echo=lambda *a: None)
    assert "working_pixel_size_um" not in checkpoint.read(tmp_path / "free" / "model.pt")["meta"]


def test_large_voids_draw_entrapped_sized_voids_in_that_share_of_classic_regions_and_nothing_else_changes():
    """synthetic.large_voids: that share of the classic regions is drawn with voids of 0.4-1.2 mm median diameter
    (up to 4 mm), every other field of the region as without it; styled regions, and every region of a config
    without it, are drawn exactly as before."""
    from scipy import ndimage as ndi

    plain, large = _crops(), _crops(large_voids=0.5)
    changed = kept = 0
    for r in range(80):
        (a, ya, xa), (b, yb, xb) = plain.params(r), large.params(r)
        assert (ya, xa) == (yb, xb) and a.style == b.style
        if a == b:
            kept += a.style == "classic"
            continue
        assert a.style == "classic" and 0.4 <= b.void_median_diameter_mm <= 1.2 and b.void_max_diameter_mm == 4.0
        assert {**vars(a), "void_median_diameter_mm": 0, "void_sigma": 0, "void_max_diameter_mm": 0} == \
            {**vars(b), "void_median_diameter_mm": 0, "void_sigma": 0, "void_max_diameter_mm": 0}
        changed += 1
        if changed == 1:  # the truth of such a region holds voids of 1 mm and more
            region = SynthParams(1024, 1024, seed=b.seed, pixel_size_um=b.pixel_size_um,
                                 aggregate_fraction=b.aggregate_fraction, air_fraction=b.air_fraction,
                                 void_median_diameter_mm=b.void_median_diameter_mm, void_sigma=b.void_sigma,
                                 void_max_diameter_mm=b.void_max_diameter_mm)
            truth = renderer(region)(0, 0, 1024, 1024, False)[1] == 2
            lab, n = ndi.label(truth)
            diameters_mm = 2 * np.sqrt(np.bincount(lab.ravel())[1:] / np.pi) * b.pixel_size_um / 1000
            assert n and diameters_mm.max() >= 1.0
    assert changed and kept  # about half of the classic regions each way


def _plain_crop(crops, i, zoom_drawn=False):
    """Crop ``i`` as a slice of its region at the position its sample number draws (after the zoom's draw, where
    the config has a zoom range)."""
    image, truth, _ = crops.render(i >> CROP_BITS)
    rng = np.random.default_rng([crops.seed, i])
    if zoom_drawn:
        rng.uniform(0, 1)
    y, x = (int(v) for v in rng.integers(0, crops.region - crops.crop + 1, 2))
    c = crops.crop
    return image[:, y:y + c, x:x + c].float() / 255, truth[y:y + c, x:x + c].long()


def test_a_zoom_shows_objects_larger_and_stays_off_below_the_working_pixel_size():
    """augment.scale on synthetic crops: a crop of crop/s px resized to crop (truth by nearest: every label a block
    of s x s px at s = 2), capped at the region's pixel size over min_pixel_size_um; without it (or with the cap at
    1), a crop is the plain slice of its region, as before."""
    cfg = dict(styles={"classic": 1}, region=128, crops_per_region=3)
    flat = AugmentConfig(hflip=False, vflip=False)
    plain = SyntheticCrops(SyntheticConfig(**cfg), 64, flat, seed=2)
    zoomed = SyntheticCrops(SyntheticConfig(**cfg), 64, flat.model_copy(update={"scale": (2.0, 2.0)}), seed=2)
    capped = SyntheticCrops(SyntheticConfig(**cfg, min_pixel_size_um=20.0), 64,
                            flat.model_copy(update={"scale": (2.0, 2.0)}), seed=2)
    blocks = 0
    for i in [0, 1, (3 << CROP_BITS) + 1, (9 << CROP_BITS) + 2]:
        x, t = plain[i]
        ex, et = _plain_crop(plain, i)
        assert torch.equal(x, ex) and torch.equal(t, et)  # no zoom configured: the slice, to the bit
        z, u = zoomed[i]
        assert z.shape == (3, 64, 64) and u.shape == (64, 64)
        assert torch.equal(u[0::2, 0::2], u[1::2, 1::2]) and torch.equal(u[0::2, 0::2], u[0::2, 1::2])
        blocks += not torch.equal(t[0::2, 0::2], t[1::2, 1::2])  # an unzoomed crop is no mosaic of 2x2 blocks
        c, v = capped[i]  # classic regions are drawn at 6-16 um: at a 20 um floor every one is at it, never zoomed
        assert capped.render(i >> CROP_BITS)[2] == 20.0
        fx, ft = _plain_crop(capped, i, zoom_drawn=True)
        assert torch.equal(c, fx) and torch.equal(v, ft)
    assert blocks


@pytest.mark.parametrize("option,classic", [("entrapped_voids", True), ("entrapped_voids_styled", False)])
def test_entrapped_voids_add_a_second_population_to_that_share_of_their_regions_and_nothing_else_changes(option,
                                                                                                      classic):
    """synthetic.entrapped_voids: that share of the classic regions carries entrapped voids as 30-60 % of its air,
    every other field of the region as without it; entrapped_voids_styled: the same for the styled regions (in their
    own void looks); the other kind of region, and a config without the option, are drawn as before."""
    plain, entrapped = _crops(), _crops(**{option: 0.5})
    changed = kept = 0
    for r in range(80):
        (a, ya, xa), (b, yb, xb) = plain.params(r), entrapped.params(r)
        assert (ya, xa) == (yb, xb)
        if a == b:
            kept += (a.style == "classic") == classic
            continue
        assert (a.style == "classic") == classic
        assert a.entrapped_air_share == 0 and 0.3 <= b.entrapped_air_share <= 0.6
        assert {**vars(a), "entrapped_air_share": 0} == {**vars(b), "entrapped_air_share": 0}
        if not classic:  # the share reaches the style the scene is drawn from
            assert b.resolved_style().entrapped_air_share == b.entrapped_air_share
        changed += 1
    assert changed and kept  # about half of those regions each way


def test_time_limit_checkpoints_and_stops(tmp_path):
    s = train(load_config(_write(tmp_path, "timed", iterations=1000)), time_limit=1e-9, progress=False,
              echo=lambda *a: None)
    assert s["iterations"] == 1 and s["model"] is None
    assert checkpoint.read(tmp_path / "timed" / "last.pt")["train_state"]["step"] == 1


def test_held_out_styles_and_bad_synthetic_configs_are_refused(tmp_path):
    bad = _write(tmp_path, "heldout", synthetic={"styles": {"random": 1.0, "blue-epoxy": 0.1}})
    assert "held-out style" in error_line(run_cli("train", "--config", bad))
    both = _write(tmp_path, "both", train=["x.zarr"])
    assert "one of the two" in error_line(run_cli("train", "--config", both))
    unknown = _write(tmp_path, "unknown", synthetic={"styles": {"marble": 1.0}})
    assert "unknown style" in error_line(run_cli("train", "--config", unknown))
    inf = _write(tmp_path, "inf", optimizer={"lr": float("inf")})
    assert "optimizer.lr" in error_line(run_cli("train", "--config", inf))
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" * 10)
    assert "not a text file" in error_line(run_cli("train", "--config", tmp_path / "x.png"))


def test_lr_finder_sweeps_plots_and_suggests_without_checkpoints(tmp_path):
    cfg = _write(tmp_path, "lr", crop=48, batch_size=4, ema=0.99)
    proc = run_cli("train", "--config", cfg, "--find-lr", "--find-lr-steps", "40")
    assert proc.returncode == 0, proc.stderr
    assert "moving average" not in proc.stdout + proc.stderr  # a sweep writes no model.pt: nothing to average
    assert "suggested optimizer.lr" in proc.stdout or "no suggestion" in proc.stdout
    out = tmp_path / "lr"
    r = json.loads((out / "lr-finder.json").read_text())
    assert 10 <= len(r["lrs"]) <= 40 and r["lrs"] == sorted(r["lrs"]) and r["lrs"][0] == pytest.approx(1e-6)
    assert (out / "lr-finder.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "last.pt").exists() and not (out / "model.pt").exists()
    from bigseg.train.lr_finder import suggest

    lrs = list(np.logspace(-5, 0, 50))
    losses = [2.0 - 1.5 / (1 + np.exp(-(np.log10(lr) + 3) * 3)) for lr in lrs]  # falls fastest at lr 1e-3
    assert suggest(lrs, losses) == pytest.approx(1e-3, rel=0.3)


def test_distill_holds_a_fine_tuned_model_to_its_teacher(tmp_path):
    """The bundled model fine-tuned at a high rate on synthetic sections, with and without `distill` (the bundled
    model the teacher): with the anchor its probabilities on a new slab stay closer to the teacher's. A teacher of
    other classes is refused before anything is written."""
    torch.set_num_threads(1)
    base = {"synthetic": {"styles": {"random": 1, "classic": 1}, "region": 256, "crops_per_region": 4},
            "model": {"arch": "light_unet", "width": 16, "init": str(BUNDLED)}, "crop": 96, "batch_size": 8,
            "iterations": 6, "optimizer": {"name": "adamw", "lr": 0.01, "weight_decay": 0.0}, "val_crops": 1,
            "val_every": 1000, "num_workers": 0, "seed": 4}
    runs = {}
    for name, distill in (("plain", None), ("anchored", {"teacher": "light_unet", "weight": 3.0, "where": "all"})):
        cfg = dict(base, out=str(tmp_path / name), **({"distill": distill} if distill else {}))
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        train(load_config(tmp_path / f"{name}.yaml"), progress=False, echo=lambda *a: None)
        runs[name] = tmp_path / name / "model.pt"
    rgb, _ = renderer(SynthParams(384, 384, seed=77))(0, 0, 384, 384, True)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        q = checkpoint.load(BUNDLED)[0](x).log_softmax(1)
        gap = {k: float((q.exp() * (q - checkpoint.load(p)[0](x).log_softmax(1))).sum(1).mean())
               for k, p in runs.items()}
    assert gap["anchored"] < 0.5 * gap["plain"], gap
    other = tmp_path / "other.pt"
    checkpoint.save(other, build("light_unet", 4, width=16), arch="light_unet", arch_kwargs={"width": 16},
                    classes=(*CONCRETE, ClassInfo(3, "crack", (255, 0, 0))))
    (tmp_path / "refused.yaml").write_text(yaml.safe_dump(dict(base, out=str(tmp_path / "refused"),
                                                                distill={"teacher": str(other)})))
    with pytest.raises(BigsegError, match="distill.teacher .* classes"):
        train(load_config(tmp_path / "refused.yaml"), progress=False, echo=lambda *a: None)
    assert not (tmp_path / "refused").exists()
