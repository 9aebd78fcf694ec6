"""A rule on whole void objects, learned from a lab's strokes: which of the objects a model labels void are voids.

Why (benchmarks/RESULTS.md, "A rule on void objects"): on sections with dark sand, most of an adapted model's
false void pixels are whole dark grains called void, and the strokes a person paints over some of them do not
teach the network the others. Seen as objects, they differ from voids in what a pixel-wise network weighs little:
a void's darkest core is near black, a grain's is not; a void is round, a grain angular. ilastik answers the same
need with its object classification after pixel classification; here the objects' classes come from the same
strokes ``bigseg adapt`` trains on.

- **Objects**: 8-connected components of void labels. Objects touching the image's border, and objects wider or
  taller than :data:`MAX_EXTENT`, are never judged (the first are not whole in view; the second are not the grains
  the rule is for, and bound how far around a chunk ``infer`` reads).
- **Features** (:data:`FEATURES`): the darkest and the mean grey level of the object (the mean of R, G and B,
  smoothed over 3 x 3 px) and its roundness (4 pi area / boundary pixels², the boundary being the object's pixels
  with a 4-neighbour outside it; capped at 2): :data:`RULE_FEATURES`. :func:`find` also measures the grey spread
  (the standard deviation of that grey over the object: a void's dark core and blurred rim spread it, an even dark
  grain does not); it separates the false objects a rule leaves well, but a rule fitted on it from strokes did no
  better (benchmarks/RESULTS.md, "The object rule on other features"), so a rule reads it only when fitted with it.
  A rule names the features it reads.
- **Fitting** (:func:`fit`): logistic regression (L2, standardised features, a fixed number of gradient steps:
  the same objects give the same rule) on the objects that training strokes touch -- void if more of their
  painted pixels say void than any other class, not void otherwise. At least :data:`MIN_OBJECTS` on each side,
  else no rule.
- **Applying** (:func:`apply`): an object whose probability of being a void is below :data:`REJECT_BELOW` is
  relabelled the most common class of the ring of :data:`RING_PX` pixels around it (paste around a sand grain;
  the network's labels of the ring, its void pixels left out). Each object is judged on its own pixels and ring
  alone, so a label chunk judged within a window of :data:`HALO` px around it (:func:`apply` with ``inner``) gets
  the same labels as the whole image judged at once: with a rule, labels stay the same for any chunking.

- **Cutting merged objects at grey ridges** (:func:`cut`; a rule's ``cut_merged``): a dark grain that a void
  touches is labelled void with it, and judged whole the merged object looks like a void and stays. Each object
  the rule may judge is first cut by a watershed of the smoothed grey inside it, from its minima at least
  :data:`CUT_DEPTH` grey levels deep (a void's lit rim is such a ridge), and the rule judges the pieces.
- **Growing the kept voids to their edges** (:func:`grow_edges`; a rule's ``grow_edges``): where an adapted
  network's voids stop inside the blurred edge of a dark void, after the rule each judged void object darker than
  its surroundings takes the pixels up to :data:`EDGE_REACH` px around it whose grey lies less than half way from
  its core to its surroundings. Never without a rule (it would grow the dark grains too).

  ``bigseg adapt`` sets both on the rules it keeps (since 2026-12-04; ``--no-cut-merged-voids``,
  ``--no-grow-void-edges``). Each alone moved the air read one way -- the cut low (the void edges the network
  misses no longer cancel the grains merged into voids), the growth high on every held-out slab --; together,
  replayed on recorded adapted models, void IoU 0.729 -> 0.771 on 16 development slabs at the same air error, and
  0.854 -> 0.865 on the 16 held-out slabs with as many targets met (benchmarks/RESULTS.md, "Cut merged objects where
  the grey rises").

:func:`judge` does all of it in the order infer's rule pass does. Numpy, scipy and scikit-image: the infer workers
(which never import torch) apply it to each label chunk they write.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

FEATURES = ("darkest grey", "mean grey", "roundness", "grey spread")
"""What :func:`find` measures on every object, in this order."""
RULE_FEATURES = FEATURES[:3]
"""The features a new rule is fitted on: the darkest and mean grey and the roundness (benchmarks/RESULTS.md, "The
object rule on other features": the grey spread, and both sides weighing the same, measured and not taken)."""
MIN_OBJECTS = 5
"""Objects needed on each side (painted void, painted not void) to fit a rule."""
REJECT_BELOW = 0.25
"""An object is relabelled only when the rule gives odds of 3 to 1 or more against its being a void. Strokes fit
only in large voids, so the voids a rule is fitted on are large, and small voids (whose darkest grey a blur
lifts) look less like them than they are: at one half, the rule relabelled half of the true voids under 100 px on
the development style; at 0.25 the spacing factor came out within 6 % (benchmarks/RESULTS.md)."""
RING_PX = 2
"""Width of the ring around a relabelled object whose most common class it takes."""
MAX_EXTENT = 256
"""Objects whose bounding box is wider or taller than this (px) are never judged."""
EDGE_ALPHA, EDGE_REACH, EDGE_RING, EDGE_CONTRAST = 0.5, 2, (3, 6), 8.0
"""The edge growth after the rule (:func:`grow_edges`): how far from its core toward its surroundings a pixel may lie
and still be taken (half way: where a blurred step edge lies), how far out (px), the ring (px out) whose median
grey is the surroundings, and the least core-to-surroundings contrast (grey levels) for an object to grow."""
CUT_DEPTH, CUT_SMOOTH = 8.0, 1.0
"""The cut of merged objects (:func:`cut`): how deep (grey levels) a minimum of the grey inside an object must be to
seed a piece, and the Gaussian (px) the grey is smoothed with first. Depth 16 cut less and gained less (void IoU
+0.033 against +0.042 with the growth)."""
HALO = MAX_EXTENT + EDGE_REACH + 2 * EDGE_RING[1] + RING_PX + 4
"""How far around a chunk its judge must see. An object that reaches into the chunk, or grows into it, and is judged
at all lies within MAX_EXTENT + EDGE_REACH of it; what decides its growth (its ring, and any other void object
within that ring, judged whole) within the ring's width twice more; that object's own ring and the grey level's
3 x 3 smoothing within a few more."""
_STEPS, _RATE, _L2 = 3000, 0.5, 1e-2
_EIGHT = np.ones((3, 3), bool)
_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)


@dataclass(frozen=True)
class ObjectRule:
    """A fitted rule: the class id it judges (void), the features' standardisation and the regression's weights;
    ``fitted_on``: how many painted objects of each side it was fitted on; ``features``: the names of the features
    it reads (some of :data:`FEATURES`, in that order); ``grow_edges``: the void objects it keeps are grown to their
    edges after it (:func:`grow_edges`); ``cut_merged``: it judges the void objects cut at grey ridges (:func:`cut`)
    instead of whole. Rules stored before either existed read back without them."""

    void: int
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    fitted_on: dict
    features: tuple[str, ...] = RULE_FEATURES
    grow_edges: bool = False
    cut_merged: bool = False

    def to_dict(self) -> dict:
        return {**asdict(self), "features": list(self.features)}

    @classmethod
    def from_dict(cls, d: dict) -> ObjectRule:
        names = tuple(d.get("features") or ())
        unknown = [f for f in names if f not in FEATURES]
        if not names or unknown or len(names) != len(d["weights"]):
            raise ValueError(f"an object rule on features {list(names)} (this bigseg knows {list(FEATURES)})")
        return cls(int(d["void"]), tuple(d["mean"]), tuple(d["scale"]), tuple(d["weights"]), float(d["bias"]),
                   dict(d.get("fitted_on") or {}), names, bool(d.get("grow_edges", False)),
                   bool(d.get("cut_merged", False)))

    def probability(self, features: np.ndarray) -> np.ndarray:
        """P(void) of each row of ``features`` (n, len(FEATURES): what :func:`find` measures; the rule reads its
        own columns)."""
        x = np.asarray(features)[:, [FEATURES.index(f) for f in self.features]]
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.weights) + self.bias)))


def grey(image: np.ndarray) -> np.ndarray:
    """(H, W) float32: the mean of an RGB uint8 image's bands, smoothed over 3 x 3 px."""
    from scipy import ndimage

    return ndimage.uniform_filter(image[..., :3].astype(np.float32).mean(axis=-1), 3)


@dataclass
class Objects:
    """The void objects of one array: component ids (0 = none), their features, and which touch the border."""

    ids: np.ndarray
    n: int
    features: np.ndarray
    on_border: np.ndarray
    boxes: list = field(default_factory=list)  # per object: its bounding box (slice, slice)

    def judged(self) -> np.ndarray:
        """Per object: whether the rule may judge it -- not on the border, not wider or taller than
        :data:`MAX_EXTENT`."""
        too_large = np.array([b[0].stop - b[0].start > MAX_EXTENT or b[1].stop - b[1].start > MAX_EXTENT
                              for b in self.boxes], bool).reshape(-1)
        return ~self.on_border & ~too_large


def find(labels: np.ndarray, image: np.ndarray, void: int) -> Objects:
    """The void objects of ``labels`` with their features measured on ``image`` (the same pixels, RGB uint8)."""
    from scipy import ndimage

    mask = labels == void
    ids, n = ndimage.label(mask, structure=_EIGHT)
    return measure(ids, n, image)


def cut(labels: np.ndarray, image: np.ndarray, void: int) -> Objects:
    """The void objects of ``labels`` as :func:`find` gives them, except that each object the rule may judge
    (:meth:`Objects.judged`) is cut where the grey rises inside it: a watershed of the grey (:func:`grey`, smoothed by
    a Gaussian of :data:`CUT_SMOOTH` px; everything outside the object counts as white) from its minima at least
    :data:`CUT_DEPTH` deep. Each piece is measured as an object (its boundary includes where it meets another
    piece). An object is cut by its own pixels and the grey a few px around them only (in its own box), so a window
    :data:`HALO` px around a chunk cuts the chunk's objects as the whole image would."""
    from scipy import ndimage
    from skimage.morphology import h_minima
    from skimage.segmentation import watershed

    ids, n = ndimage.label(labels == void, structure=_EIGHT)
    if not n:
        return measure(ids, 0, image)
    boxes = ndimage.find_objects(ids)
    shell = Objects(ids, n, np.zeros((n, 0)), _on_border(ids, n), boxes)
    g = ndimage.gaussian_filter(grey(image), CUT_SMOOTH)
    white = np.float32(255)
    split = {}  # object index -> (its box, its pixels there, its pieces 1..m there), for objects of two pieces or more
    for k in np.flatnonzero(shell.judged()):
        ys, xs = boxes[k]
        box = (slice(max(ys.start - 1, 0), ys.stop + 1), slice(max(xs.start - 1, 0), xs.stop + 1))
        obj = ids[box] == k + 1
        gk = np.where(obj, g[box], white)
        seeds, m = ndimage.label(h_minima(gk, CUT_DEPTH).astype(bool) & obj, structure=_EIGHT)
        if m > 1:
            split[k] = (box, obj, watershed(gk, seeds, mask=obj, connectivity=2))
    count = np.ones(n, np.int64)
    for k, (_, _, pieces) in split.items():
        count[k] = int(pieces.max())
    first = np.concatenate([[1], 1 + np.cumsum(count)[:-1]])  # the id of each object's first piece
    out = np.concatenate([[0], first]).astype(np.int32)[ids]
    for k, (box, obj, pieces) in split.items():
        out[box][obj] = first[k] + pieces[obj] - 1
    return measure(out, int(count.sum()), image, parts=True)


def measure(ids: np.ndarray, n: int, image: np.ndarray, parts: bool = False) -> Objects:
    """The objects ``ids`` (1..n, 0 = none) with their features measured on ``image``: 8-connected components of a
    mask (:func:`find`), or with ``parts`` pieces of such components (an object's boundary then includes where it
    meets another piece)."""
    from scipy import ndimage

    if not n:
        return Objects(ids, 0, np.zeros((0, len(FEATURES))), np.zeros(0, bool))
    mask = ids > 0
    g = grey(image)
    area = np.bincount(ids.ravel(), minlength=n + 1)[1:].astype(np.float64)
    boundary = mask & ~ndimage.binary_erosion(mask, structure=_CROSS, border_value=1)  # 4-neighbour boundary
    if parts:  # where a part meets another part of the same component
        boundary |= mask & (ndimage.minimum_filter(ids, footprint=_CROSS, mode="nearest")
                            != ndimage.maximum_filter(ids, footprint=_CROSS, mode="nearest"))
    edge = np.bincount(ids[boundary], minlength=n + 1)[1:].astype(np.float64)
    roundness = np.minimum(4 * np.pi * area / np.maximum(edge, 1) ** 2, 2.0)
    on = ids > 0  # per object over its pixels only (ndimage.minimum sorts the whole array: 6x slower per chunk)
    which, grey_on = ids[on] - 1, g[on].astype(np.float64)
    darkest = np.full(n, np.inf)
    np.minimum.at(darkest, which, grey_on)
    mean = np.bincount(which, weights=grey_on, minlength=n) / area
    spread = np.sqrt(np.maximum(np.bincount(which, weights=grey_on**2, minlength=n) / area - mean**2, 0.0))
    features = np.stack([darkest, mean, roundness, spread], axis=1)
    return Objects(ids, n, np.asarray(features, np.float64), _on_border(ids, n), ndimage.find_objects(ids))


def _on_border(ids: np.ndarray, n: int) -> np.ndarray:
    """Per object 1..n: whether it touches the array's border."""
    border = np.unique(np.concatenate([ids[0], ids[-1], ids[:, 0], ids[:, -1]]))
    on_border = np.zeros(n, bool)
    on_border[border[border > 0] - 1] = True
    return on_border


def painted_sides(objects: Objects, painted: np.ndarray, void: int) -> np.ndarray:
    """Per object: 1 if painted pixels on it say void more than anything else, 0 if they say another class more,
    -1 where none is painted (or as many say each). ``painted``: class ids, 255 = none, the same pixels."""
    n = objects.n
    on = objects.ids > 0
    says_void = np.bincount(objects.ids[on & (painted == void)], minlength=n + 1)[1:]
    says_other = np.bincount(objects.ids[on & (painted != void) & (painted != 255)], minlength=n + 1)[1:]
    return np.where(says_void > says_other, 1, np.where(says_other > says_void, 0, -1))


def fit(features: np.ndarray, sides: np.ndarray, void: int, names: tuple[str, ...] | None = None,
        balanced: bool = False) -> ObjectRule | None:
    """The rule fitted on ``features`` (:func:`find`'s columns) of objects with ``sides`` 1 (void) or 0 (not),
    reading the features ``names`` (default :data:`RULE_FEATURES`); None with fewer than :data:`MIN_OBJECTS` on
    either side. ``balanced``: each side weighs the same in the fit, however many objects it has."""
    names = RULE_FEATURES if names is None else tuple(names)
    y = np.asarray(sides, np.float64)
    n_void, n_other = int((y == 1).sum()), int((y == 0).sum())
    if n_void < MIN_OBJECTS or n_other < MIN_OBJECTS:
        return None
    x = np.asarray(features, np.float64)[:, [FEATURES.index(f) for f in names]]
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = np.concatenate([(x - mean) / scale, np.ones((len(x), 1))], axis=1)
    weight = np.where(y == 1, len(y) / (2 * n_void), len(y) / (2 * n_other)) if balanced else np.ones(len(y))
    w = np.zeros(z.shape[1])
    for _ in range(_STEPS):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        w -= _RATE * (z.T @ (weight * (p - y)) / len(y) + _L2 * np.concatenate([w[:-1], [0.0]]))
    return ObjectRule(void, tuple(float(v) for v in mean), tuple(float(v) for v in scale),
                      tuple(float(v) for v in w[:-1]), float(w[-1]), {"void": n_void, "not void": n_other},
                      tuple(names))


def rejected(rule: ObjectRule, objects: Objects) -> np.ndarray:
    """Which objects (bool per object) the rule relabels: P(void) below :data:`REJECT_BELOW`, not on the border, not
    wider or taller than :data:`MAX_EXTENT`."""
    if not objects.n:
        return np.zeros(0, bool)
    return (rule.probability(objects.features) < REJECT_BELOW) & objects.judged()


def apply(rule: ObjectRule, labels: np.ndarray, image: np.ndarray, objects: Objects | None = None,
          inner: tuple[slice, slice] | None = None) -> tuple[np.ndarray, int, int]:
    """(labels with the rejected void objects relabelled, objects relabelled, pixels relabelled). ``labels`` is
    not changed in place. ``inner``: only this box of the arrays is returned and counted (an object counts where
    its first pixel in row order lies); the arrays around it are the box's surroundings, :data:`HALO` px wide
    wherever they do not end at the image's border -- then the box gets exactly the labels the whole image
    would."""
    from scipy import ndimage

    box = inner if inner is not None else (slice(0, labels.shape[0]), slice(0, labels.shape[1]))
    out = labels[box].copy()
    found = objects if objects is not None else find(labels, image, rule.void)
    drop = np.flatnonzero(rejected(rule, found))
    n_objects = n_pixels = 0
    square = np.ones((2 * RING_PX + 1,) * 2, bool)
    for k in drop:
        ys, xs = found.boxes[k]
        if ys.stop <= box[0].start or ys.start >= box[0].stop or xs.stop <= box[1].start or xs.start >= box[1].stop:
            continue  # wholly in the surroundings: judged where it lies
        y0, x0 = max(ys.start - RING_PX, 0), max(xs.start - RING_PX, 0)
        near = (slice(y0, ys.stop + RING_PX), slice(x0, xs.stop + RING_PX))
        obj = found.ids[near] == k + 1
        ring = ndimage.binary_dilation(obj, structure=square) & ~obj & (labels[near] != rule.void)
        if not ring.any():  # no ring (voids all around it): it stays
            continue
        new_class = np.bincount(labels[near][ring]).argmax()
        # the object's pixels inside the box, in the box's coordinates
        oy, ox = np.nonzero(obj)
        oy, ox = oy + y0, ox + x0
        here = (oy >= box[0].start) & (oy < box[0].stop) & (ox >= box[1].start) & (ox < box[1].stop)
        if not here.any():
            continue
        out[oy[here] - box[0].start, ox[here] - box[1].start] = new_class
        n_pixels += int(here.sum())
        n_objects += int(here[0])  # np.nonzero walks in row order: the first is the object's first pixel
    return out, n_objects, n_pixels


def grow_edges(labels: np.ndarray, image: np.ndarray, void: int, network: np.ndarray | None = None,
               alpha: float = EDGE_ALPHA, reach: int = EDGE_REACH, light: bool = False,
               gate: float | None = None) -> np.ndarray:
    """``labels`` with each judged void object (:meth:`Objects.judged`) that is darker than its surroundings grown by
    up to :data:`EDGE_REACH` px into the pixels whose grey lies less than :data:`EDGE_ALPHA` of the way from its core
    (the 10th percentile of grey on it) to its surroundings (the median grey of the ring :data:`EDGE_RING` px out,
    where ``network`` -- the labels before the rule, default ``labels`` -- is not void): a network that stops 1-2
    px inside a void's blurred edge (benchmarks/RESULTS.md, "A boundary step after the object rule"). Each object
    grows by its own pixels and ring alone, so a window :data:`HALO` px around a chunk grows the chunk as the whole
    image would. ``alpha`` and ``reach`` replace :data:`EDGE_ALPHA` and :data:`EDGE_REACH` (a reach over the default
    needs a larger halo than :data:`HALO`).

    ``light``: voids lighter than their surroundings (white-filled, fluorescent epoxy) grow too, from their core at
    the 90th percentile; without it they are left as they are. ``gate``: only objects whose boundary level
    (:func:`boundary_level`) is under it grow -- a label whose edge already lies half way to the surroundings is
    drawn whole, and growing it can only overshoot. Both are experiments (benchmarks/RESULTS.md, "Growth on
    random-style slabs"); a rule carries neither."""
    from scipy import ndimage

    ids, n = ndimage.label(labels == void, structure=_EIGHT)
    out = labels.copy()
    if not n:
        return out
    g = grey(image)
    not_void = (labels if network is None else network) != void
    for near, obj, dist, gn, core, around in edge_frames(ids, n, g, not_void, light=light):
        if gate is not None and boundary_level(obj, gn, core, around) >= gate:
            continue
        zone = (dist > 0) & (dist < reach + 0.5) & (labels[near] != void)
        take = zone & ((gn - core) / (around - core) < alpha)
        out[near][take] = void
    return out


def boundary_level(obj: np.ndarray, gn: np.ndarray, core: float, around: float) -> float:
    """Where an object's label edge lies between its core (0) and its surroundings (1): the median of that level over
    its 4-neighbour boundary pixels (``obj``, ``gn``, ``core``, ``around`` as :func:`edge_frames` yields them). Well
    under a half: the label stops inside a blurred edge; a half or more: the object is drawn whole."""
    from scipy import ndimage

    boundary = obj & ~ndimage.binary_erosion(obj, structure=_CROSS, border_value=1)
    return float(np.median((gn[boundary] - core) / (around - core)))


def edge_frames(ids: np.ndarray, n: int, g: np.ndarray, not_void: np.ndarray, light: bool = False) -> Iterator[tuple]:
    """For each judged void object (8-connected ``ids`` 1..n) darker than its surroundings by more than
    :data:`EDGE_CONTRAST`, as :func:`grow_edges` sees it: (its box grown by the ring's width, the object's pixels
    there, their distance to it, the grey :func:`grey` ``g`` there, its core -- the 10th percentile of grey on it
    --, its surroundings -- the median grey of the ring :data:`EDGE_RING` px out where ``not_void``). ``light``: also
    the objects lighter than their surroundings by as much, their core the 90th percentile of grey on them."""
    from scipy import ndimage

    found = Objects(ids, n, np.zeros((n, 0)), _on_border(ids, n), ndimage.find_objects(ids))  # (no features needed)
    inner, outer = EDGE_RING
    height, width = ids.shape
    for k in np.flatnonzero(found.judged()):
        ys, xs = found.boxes[k]
        y0, x0 = max(ys.start - outer, 0), max(xs.start - outer, 0)
        near = (slice(y0, min(ys.stop + outer, height)), slice(x0, min(xs.stop + outer, width)))
        obj = ids[near] == k + 1
        dist = ndimage.distance_transform_edt(~obj)
        ring = (dist > inner - 0.5) & (dist < outer + 0.5) & not_void[near]
        if not ring.any():
            continue
        gn = g[near]
        core, around = float(np.percentile(gn[obj], 10)), float(np.median(gn[ring]))
        if around - core <= EDGE_CONTRAST:
            if not light:
                continue
            core = float(np.percentile(gn[obj], 90))
            if core - around <= EDGE_CONTRAST:
                continue
        yield near, obj, dist, gn, core, around


def judge(rule: ObjectRule, labels: np.ndarray, image: np.ndarray,
          inner: tuple[slice, slice] | None = None) -> tuple[np.ndarray, dict]:
    """``labels`` judged by ``rule`` as infer's rule pass judges them: its void objects found (:func:`cut` when the
    rule says ``cut_merged``, else :func:`find`), the rejected ones relabelled (:func:`apply`), then, when the rule
    says ``grow_edges``, the kept voids grown to their edges (:func:`grow_edges`). ``inner`` as for :func:`apply`.
    Returns (the labels of ``inner``, counts: ``relabelled_objects``, ``relabelled_pixels`` and, when grown,
    ``grown_pixels``)."""
    found = cut(labels, image, rule.void) if rule.cut_merged else find(labels, image, rule.void)
    out, n_objects, n_pixels = apply(rule, labels, image, found, inner=inner)
    counts = {"relabelled_objects": n_objects, "relabelled_pixels": n_pixels}
    if rule.grow_edges:  # grown on the whole window, as the image would be, then the inner box kept
        ruled = apply(rule, labels, image, found)[0] if inner is not None else out
        grown = grow_edges(ruled, image, rule.void, network=labels)
        grown = grown[inner] if inner is not None else grown
        counts["grown_pixels"] = int((grown != out).sum())
        out = grown
    return out, counts
