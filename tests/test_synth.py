import hashlib

import numpy as np
import pytest
from PIL import Image

from bigseg.errors import BigsegError
from bigseg.synth import SynthParams, render_region, synthesize
from tests.conftest import error_line, run_cli


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("ext", [".png", ".tif", ".jpg"])
def test_same_seed_gives_identical_bytes(tmp_path, ext):
    a, b, c = tmp_path / f"a{ext}", tmp_path / f"b{ext}", tmp_path / f"c{ext}"
    p = SynthParams(600, 400, seed=11)
    synthesize(a, p)
    synthesize(b, p)
    synthesize(c, SynthParams(600, 400, seed=12))
    assert _digest(a) == _digest(b)
    assert _digest(a.with_name("a.truth" + (".tif" if ext == ".tif" else ".png"))) == _digest(
        b.with_name("b.truth" + (".tif" if ext == ".tif" else ".png")))
    assert _digest(a) != _digest(c)


def test_tiles_do_not_depend_on_the_tiling():
    """Streaming correctness: any region rendered alone equals the same region of a larger render."""
    p = SynthParams(1500, 1200, seed=3)
    big_rgb, big_truth = render_region(p, 100, 200, 700, 900)
    for (y, x, h, w) in [(100, 200, 300, 300), (333, 517, 211, 389), (600, 1000, 200, 100)]:
        rgb, truth = render_region(p, y, x, h, w)
        np.testing.assert_array_equal(rgb, big_rgb[y - 100 : y - 100 + h, x - 200 : x - 200 + w])
        np.testing.assert_array_equal(truth, big_truth[y - 100 : y - 100 + h, x - 200 : x - 200 + w])


def test_reported_fractions_are_the_truths_and_near_the_targets(tmp_path):
    # small stones so that a 1000 x 1000 slab holds enough of them for the fraction to settle
    p = SynthParams(1000, 1000, seed=4, stone_radius_mm=(0.1, 0.6), aggregate_fraction=0.7, air_fraction=0.05)
    s = synthesize(tmp_path / "s.png", p)
    truth = np.asarray(Image.open(s["truth"]))
    assert truth.shape == (1000, 1000)
    counts = np.bincount(truth.ravel(), minlength=3)
    assert s["pixel_counts"] == {"paste": counts[0], "stone": counts[1], "void": counts[2]}
    assert abs(s["fractions"]["stone"] - 0.7) < 0.05
    assert abs(s["fractions"]["void"] - 0.05) < 0.02


def test_image_looks_like_concrete(tmp_path):
    """Classes are visually distinct: voids dark, paste light and smooth-ish, stones varied."""
    rgb, truth = render_region(SynthParams(800, 800, seed=9), 0, 0, 800, 800)
    lum = rgb.mean(axis=2)
    paste, stone, void = (lum[truth == k] for k in range(3))
    assert void.mean() < 90 < paste.mean()
    assert stone.std() > paste.std()


def test_jpeg_size_limit_is_explained(tmp_path):
    proc = run_cli("synth", tmp_path / "huge.jpg", "--size", "70000x10")
    assert "65535" in error_line(proc) and ".tif" in error_line(proc)
    assert not (tmp_path / "huge.jpg").exists()


def test_bad_parameters_are_refused():
    with pytest.raises(BigsegError, match="air fraction"):
        SynthParams(10, 10, air_fraction=0.4, aggregate_fraction=0.7)
    proc = run_cli("synth", "x.png", "--size", "12by7")
    assert "WIDTHxHEIGHT" in error_line(proc)


def test_cli_prints_fractions(tmp_path):
    proc = run_cli("synth", tmp_path / "s.tif", "--size", "300x200", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    assert "truth fractions: paste" in proc.stdout
    assert (tmp_path / "s.tif").exists() and (tmp_path / "s.truth.tif").exists()
