import numpy as np
import pytest

from bigseg.infer.windows import MIN_WEIGHT, Grid, axis_starts, ramp


@pytest.mark.parametrize("length,window,overlap", [(2000, 900, 128), (900, 900, 128), (901, 900, 128),
                                                   (300, 900, 128), (5000, 512, 0), (1777, 256, 64)])
def test_windows_cover_the_axis_inside_the_image(length, window, overlap):
    starts = axis_starts(length, window, overlap)
    w = min(window, length)
    cover = np.zeros(length, int)
    for s in starts:
        assert s >= 0 and s + w <= length
        cover[s : s + w] += 1
    assert cover.min() >= 1
    assert starts == sorted(set(starts))
    steps = np.diff(starts)
    assert (steps <= window - overlap).all()  # never less overlap than asked


def test_ramps_add_up_to_one_across_a_regular_overlap():
    w = ramp(900, 128)
    assert w[128:-128].min() == 1.0
    stride = 900 - 128
    total = w[stride:] + w[: 900 - stride]  # the overlap of two neighbours
    np.testing.assert_allclose(total, 1.0, atol=MIN_WEIGHT + 1e-6)  # the floor keeps border weights > 0
    assert w[0] <= MIN_WEIGHT + 1e-6 and w.min() > 0


def test_windows_touching_matches_brute_force():
    g = Grid(1500, 2300, 512, 96)
    wins = g.windows()
    for (y0, y1, x0, x1) in [(0, 256, 0, 256), (700, 900, 1000, 1400), (1400, 1500, 2200, 2300), (0, 1500, 0, 2300)]:
        brute = [i for i, (y, x) in enumerate(wins) if y < y1 and y + g.win_h > y0 and x < x1 and x + g.win_w > x0]
        assert g.windows_touching(y0, y1, x0, x1) == brute
