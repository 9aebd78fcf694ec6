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
    direction for ``length`` px, stopping where it would leave that room (``per_class`` is a count, not a promise
    of distinct places: a class with little room gets strokes that overlap)."""
    from scipy import ndimage

    strokes = []
    r = int(math.ceil(radius)) + 1
    for c in range(n_classes):
        room = ndimage.binary_erosion(truth == c, structure=_disk(r), border_value=0)
        ys, xs = np.nonzero(room)
        if not len(ys):
            continue
        for _ in range(per_class):
            k = int(rng.integers(len(ys)))
            strokes.append(_walk(room, c, float(xs[k]) + 0.5, float(ys[k]) + 0.5, rng, radius, length))
    return strokes


def simulate_corrections(truth: np.ndarray, labels: np.ndarray, n_classes: int, per_class: int,
                         rng: np.random.Generator, radius: float = 3.0, length: tuple[int, int] = (12, 60),
                         min_error_px: int = 30) -> list[Stroke]:
    """Strokes a person paints after looking at a model's labels: over the mistakes they see. For each class,
    ``per_class`` strokes of that class inside regions of it that the labels get wrong (error blobs of at least
    ``min_error_px`` pixels, chosen in proportion to their size; strokes stay inside the class as in
    :func:`simulate_strokes`)."""
    from scipy import ndimage

    strokes = []
    for c in range(n_classes):
        wrong = (truth == c) & (labels != c)
        lab, n = ndimage.label(wrong)
        if not n:
            continue
        sizes = np.bincount(lab.ravel())[1:]
        keep = np.flatnonzero(sizes >= min_error_px) + 1
        if not len(keep):
            continue
        blobs = np.isin(lab, keep)
        # where the class has room for the brush, inside or touching a mistake
        room = ndimage.binary_erosion(truth == c, structure=_disk(int(math.ceil(radius)) + 1), border_value=0)
        target = room & ndimage.binary_dilation(blobs, iterations=2)
        if not target.any():
            continue
        ys, xs = np.nonzero(target)  # strokes start in the mistakes and walk inside the class
        for _ in range(per_class):
            k = int(rng.integers(len(ys)))
            strokes.append(_walk(room, c, float(xs[k]) + 0.5, float(ys[k]) + 0.5, rng, radius, length))
    return strokes


def _walk(room: np.ndarray, c: int, x: float, y: float, rng, radius: float, length) -> Stroke:
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
    return Stroke(c, radius, tuple(points))


def simulate_dabs(truth: np.ndarray, labels: np.ndarray, c: int, n: int, rng: np.random.Generator,
                  max_diameter: float = 20.0, min_missed: float = 0.5) -> list[Stroke]:
    """Dabs a person makes on small regions of class ``c`` that the labels miss, where no brush stroke fits: one
    click of a small brush at the deepest point of each of up to ``n`` regions (8-connected) under ``max_diameter``
    px across (equivalent diameter) of which at least ``min_missed`` is labelled another class, chosen at random;
    the dab's radius (1-2 px) keeps it inside the region. ``truth`` 255 (not seen) is no class."""
    from scipy import ndimage

    ids, m = ndimage.label(truth == c, structure=np.ones((3, 3), bool))
    if not m:
        return []
    area = np.bincount(ids.ravel(), minlength=m + 1)
    right = np.bincount(ids[(labels == c) & (ids > 0)], minlength=m + 1)
    small = (2 * np.sqrt(area / np.pi) < max_diameter) & (area - right >= min_missed * area)
    small[0] = False
    depth = ndimage.distance_transform_edt(ids > 0)
    candidates = [int(k) for k in np.flatnonzero(small)]
    if not candidates:
        return []
    deepest = [yx for yx in ndimage.maximum_position(depth, ids, candidates) if depth[yx] >= 1.5]  # else it crosses
    order = rng.permutation(len(deepest))[:n]
    return [Stroke(c, float(min(2.0, depth[deepest[i]] - 1.0)),
                   ((float(deepest[i][1]) + 0.5, float(deepest[i][0]) + 0.5),)) for i in order]
