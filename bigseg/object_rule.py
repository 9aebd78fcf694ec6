"""A rule on whole void objects, learned from a lab's strokes: which of the objects a model labels void are voids.

Why (benchmarks/RESULTS.md, "A rule on void objects"): on sections with dark sand, most of an adapted model's
false void pixels are whole dark grains called void, and the strokes a person paints over some of them do not
teach the network the others. Seen as objects, they differ from voids in what a pixel-wise network weighs little:
a void's darkest core is near black, a grain's is not; a void is round, a grain angular. ilastik answers the same
need with its object classification after pixel classification; here the objects' classes come from the same
strokes ``bigseg adapt`` trains on.

- **Objects**: 8-connected components of void labels. Objects touching the border of the array they are found in
  (a label chunk, a scoring window) are never judged: their whole is not in view.
- **Features** (:data:`FEATURES`): the darkest and the mean grey level of the object (the mean of R, G and B,
  smoothed over 3 x 3 px) and its roundness (4 pi area / boundary pixels², the boundary being the object's pixels with a
  4-neighbour outside it; capped at 2).
- **Fitting** (:func:`fit`): logistic regression (L2, standardised features, a fixed number of gradient steps:
  the same objects give the same rule) on the objects that training strokes touch -- void if more of their
  painted pixels say void than any other class, not void otherwise. At least :data:`MIN_OBJECTS` on each side,
  else no rule.
- **Applying** (:func:`apply`): an object whose probability of being a void is below :data:`REJECT_BELOW` is
  relabelled the most common class of the ring of :data:`RING_PX` pixels around it (paste around a sand grain).

Pure numpy and scipy: the infer workers (which never import torch) apply it to each label chunk they write.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

FEATURES = ("darkest grey", "mean grey", "roundness")
MIN_OBJECTS = 5
"""Objects needed on each side (painted void, painted not void) to fit a rule."""
REJECT_BELOW = 0.25
"""An object is relabelled only when the rule gives odds of 3 to 1 or more against its being a void. Strokes fit
only in large voids, so the voids a rule is fitted on are large, and small voids (whose darkest grey a blur
lifts) look less like them than they are: at one half, the rule relabelled half of the true voids under 100 px on
the development style; at 0.25 the spacing factor came out within 6 % (benchmarks/RESULTS.md)."""
RING_PX = 2
"""Width of the ring around a relabelled object whose most common class it takes."""
_STEPS, _RATE, _L2 = 3000, 0.5, 1e-2
_EIGHT = np.ones((3, 3), bool)
_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)


@dataclass(frozen=True)
class ObjectRule:
    """A fitted rule: the class id it judges (void), the features' standardisation and the regression's weights;
    ``fitted_on``: how many painted objects of each side it was fitted on."""

    void: int
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    fitted_on: dict

    def to_dict(self) -> dict:
        return {**asdict(self), "features": list(FEATURES)}

    @classmethod
    def from_dict(cls, d: dict) -> ObjectRule:
        if list(d.get("features", [])) != list(FEATURES):
            raise ValueError(f"an object rule on features {d.get('features')} (this bigseg knows {list(FEATURES)})")
        return cls(int(d["void"]), tuple(d["mean"]), tuple(d["scale"]), tuple(d["weights"]), float(d["bias"]),
                   dict(d.get("fitted_on") or {}))

    def probability(self, features: np.ndarray) -> np.ndarray:
        """P(void) of each row of ``features`` (n, len(FEATURES))."""
        z = (features - np.asarray(self.mean)) / np.asarray(self.scale)
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


def find(labels: np.ndarray, image: np.ndarray, void: int) -> Objects:
    """The void objects of ``labels`` with their features measured on ``image`` (the same pixels, RGB uint8)."""
    from scipy import ndimage

    mask = labels == void
    ids, n = ndimage.label(mask, structure=_EIGHT)
    if not n:
        return Objects(ids, 0, np.zeros((0, len(FEATURES))), np.zeros(0, bool))
    index = np.arange(1, n + 1)
    g = grey(image)
    area = np.bincount(ids.ravel(), minlength=n + 1)[1:].astype(np.float64)
    boundary = mask & ~ndimage.binary_erosion(mask, structure=_CROSS, border_value=1)  # 4-neighbour boundary
    edge = np.bincount(ids[boundary], minlength=n + 1)[1:].astype(np.float64)
    roundness = np.minimum(4 * np.pi * area / np.maximum(edge, 1) ** 2, 2.0)
    features = np.stack([ndimage.minimum(g, ids, index), ndimage.mean(g, ids, index), roundness], axis=1)
    border = np.unique(np.concatenate([ids[0], ids[-1], ids[:, 0], ids[:, -1]]))
    on_border = np.zeros(n, bool)
    on_border[border[border > 0] - 1] = True
    return Objects(ids, n, np.asarray(features, np.float64), on_border)


def painted_sides(objects: Objects, painted: np.ndarray, void: int) -> np.ndarray:
    """Per object: 1 if painted pixels on it say void more than anything else, 0 if they say another class more,
    -1 where none is painted (or as many say each). ``painted``: class ids, 255 = none, the same pixels."""
    n = objects.n
    on = objects.ids > 0
    says_void = np.bincount(objects.ids[on & (painted == void)], minlength=n + 1)[1:]
    says_other = np.bincount(objects.ids[on & (painted != void) & (painted != 255)], minlength=n + 1)[1:]
    return np.where(says_void > says_other, 1, np.where(says_other > says_void, 0, -1))


def fit(features: np.ndarray, sides: np.ndarray, void: int) -> ObjectRule | None:
    """The rule fitted on ``features`` of objects with ``sides`` 1 (void) or 0 (not); None with fewer than
    :data:`MIN_OBJECTS` on either side."""
    y = np.asarray(sides, np.float64)
    n_void, n_other = int((y == 1).sum()), int((y == 0).sum())
    if n_void < MIN_OBJECTS or n_other < MIN_OBJECTS:
        return None
    x = np.asarray(features, np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = np.concatenate([(x - mean) / scale, np.ones((len(x), 1))], axis=1)
    w = np.zeros(z.shape[1])
    for _ in range(_STEPS):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        w -= _RATE * (z.T @ (p - y) / len(y) + _L2 * np.concatenate([w[:-1], [0.0]]))
    return ObjectRule(void, tuple(float(v) for v in mean), tuple(float(v) for v in scale),
                      tuple(float(v) for v in w[:-1]), float(w[-1]), {"void": n_void, "not void": n_other})


def rejected(rule: ObjectRule, objects: Objects) -> np.ndarray:
    """Which objects (bool per object) the rule relabels: P(void) below :data:`REJECT_BELOW`, not on the border."""
    if not objects.n:
        return np.zeros(0, bool)
    return (rule.probability(objects.features) < REJECT_BELOW) & ~objects.on_border


def apply(rule: ObjectRule, labels: np.ndarray, image: np.ndarray, objects: Objects | None = None
          ) -> tuple[np.ndarray, int, int]:
    """(labels with the rejected void objects relabelled, objects relabelled, pixels relabelled). ``labels`` is
    not changed in place."""
    from scipy import ndimage

    found = objects if objects is not None else find(labels, image, rule.void)
    drop = rejected(rule, found)
    if not drop.any():
        return labels, 0, 0
    keep_id = np.concatenate([[False], drop])
    ids = np.where(keep_id[found.ids], found.ids, 0)  # the rejected objects only
    near = ndimage.grey_dilation(ids, footprint=np.ones((2 * RING_PX + 1,) * 2, bool))
    ring = (near > 0) & (ids == 0) & (labels != rule.void)
    n_classes = int(labels.max()) + 1
    votes = np.bincount(near[ring].astype(np.int64) * n_classes + labels[ring], minlength=(found.n + 1) * n_classes)
    votes = votes.reshape(found.n + 1, n_classes)
    new_class = votes.argmax(axis=1)
    relabel = keep_id & (votes.sum(axis=1) > 0)  # an object with no ring (all voids around it) stays
    out = labels.copy()
    target = relabel[found.ids]
    out[target] = new_class[found.ids[target]].astype(labels.dtype)
    return out, int(relabel.sum()), int(target.sum())
