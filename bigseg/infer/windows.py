"""The window grid and the blending weights.

Windows of ``window`` pixels step by ``window - overlap`` from the image origin; the last window of each axis
is moved back to end at the image's edge, so every window lies fully inside the image and no padding is needed
except for images smaller than one window (padded by mirroring, the padding cropped from the logits).

Each window's logits are multiplied by a separable weight that is 1 in its interior and falls smoothly to
almost 0 (a raised-cosine ramp, sin^2) over ``overlap`` pixels at each edge; blended logits are the weighted sum
divided by the sum of weights. Where two windows overlap by exactly ``overlap`` pixels the two ramps add up to 1,
so the blend moves from one window's prediction to the other's without a step, and the pixels nearest a
window's edge (whose context the network never saw) count least. The grid depends only on the image size,
window and overlap: never on the store's chunking or the number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_WEIGHT = 1e-3  # keeps the weight sum positive at the image border, where one window has its edge


def axis_starts(length: int, window: int, overlap: int) -> list[int]:
    """Start offsets of windows along one axis of ``length`` pixels."""
    if length <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def ramp(size: int, overlap: int) -> np.ndarray:
    """1-D weight: sin^2 ramp over ``overlap`` pixels at both ends, 1 between."""
    w = np.ones(size, np.float32)
    n = min(overlap, size // 2)
    if n > 0:
        d = (np.arange(n, dtype=np.float64) + 0.5) / n
        r = np.sin(0.5 * np.pi * d) ** 2
        w[:n] = r
        w[size - n :] = r[::-1]
    return np.maximum(w, MIN_WEIGHT).astype(np.float32)


@dataclass(frozen=True)
class Grid:
    height: int
    width: int
    window: int
    overlap: int

    def __post_init__(self):
        if self.overlap < 0 or self.overlap >= self.window:
            raise ValueError("overlap must be in [0, window)")

    @property
    def ys(self) -> list[int]:
        return axis_starts(self.height, self.window, self.overlap)

    @property
    def xs(self) -> list[int]:
        return axis_starts(self.width, self.window, self.overlap)

    @property
    def win_h(self) -> int:
        return min(self.window, self.height)

    @property
    def win_w(self) -> int:
        return min(self.window, self.width)

    def windows(self) -> list[tuple[int, int]]:
        """(y, x) origins in raster order; a window's index in this list is its identity."""
        return [(y, x) for y in self.ys for x in self.xs]

    def weight(self) -> np.ndarray:
        """(win_h, win_w) blending weight, the same for every window."""
        return np.outer(ramp(self.win_h, self.overlap), ramp(self.win_w, self.overlap))

    def windows_touching(self, y0: int, y1: int, x0: int, x1: int) -> list[int]:
        """Indices of windows overlapping the block [y0, y1) x [x0, x1), ascending."""
        ys, xs = self.ys, self.xs
        iy = [i for i, y in enumerate(ys) if y < y1 and y + self.win_h > y0]
        ix = [j for j, x in enumerate(xs) if x < x1 and x + self.win_w > x0]
        return [i * len(xs) + j for i in iy for j in ix]
