"""Strokes simulated from an exact truth mask the way a person paints them: short strokes of a round brush that
stay inside one class region (a person paints inside a void, not across its edge), spread over the slab.

For benchmarks and tests of ``bigseg adapt``: the strokes are written through the same code as the viewer's
(:func:`bigseg.annotations.paint`), so what is measured is what a person's strokes would give.
"""

from __future__ import annotations

import math

import numpy as np

from bigseg.annotations import Stroke


def _disk(r: int) -> np.ndarray:
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return x * x + y * y <= r * r


def simulate_strokes(truth: np.ndarray, n_classes: int, per_class: int, rng: np.random.Generator,
                     radius: float = 3.0, length: tuple[int, int] = (12, 60)) -> list[Stroke]:
    """``per_class`` strokes for every class present in ``truth`` (fewer where a class has too little room):
    each starts at a random pixel at least ``radius`` + 1 from the class's edge and walks in a slowly turning
    direction for ``length`` px, stopping where it would leave that room."""
    from scipy import ndimage

    strokes = []
    r = int(math.ceil(radius)) + 1
    for c in range(n_classes):
        room = ndimage.binary_erosion(truth == c, structure=_disk(r), border_value=0)
        ys, xs = np.nonzero(room)
        if not len(ys):
            continue
        made, tries = 0, 0
        while made < per_class and tries < per_class * 20:
            tries += 1
            k = int(rng.integers(len(ys)))
            x, y = float(xs[k]) + 0.5, float(ys[k]) + 0.5
            points = [(x, y)]
            angle = float(rng.uniform(0, 2 * math.pi))
            target = int(rng.integers(length[0], length[1] + 1))
            walked = 0.0
            while walked < target:
                angle += float(rng.normal(0, 0.25))
                nx, ny = x + 2 * math.cos(angle), y + 2 * math.sin(angle)
                iy, ix = int(ny), int(nx)
                if not (0 <= iy < room.shape[0] and 0 <= ix < room.shape[1]) or not room[iy, ix]:
                    break
                x, y = nx, ny
                points.append((x, y))
                walked += 2
            strokes.append(Stroke(c, radius, tuple(points)))
            made += 1
    return strokes
