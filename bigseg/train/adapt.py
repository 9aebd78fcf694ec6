"""``bigseg adapt``: fine-tune a model to one lab's concrete from strokes painted on its own slabs, in minutes on a
CPU, and say how well it does on strokes it held back.

What it does, in order:

1. **Strokes** are read from each store's ``annotations`` layer (chunks holding painted pixels only). Each
   stroke is a connected piece of one class's painted pixels (8-connected, found chunk by chunk: a stroke that
   crosses a chunk border counts as two). About a fifth of the strokes of every class (at least one where a class
   has two or more) is **held back** -- chosen by a hash of the stroke's position and ``seed``, so a stroke held
   back once stays held back when more are painted -- never trained on, scored at the end.
2. **Growing** (``grow`` px, 0: off): each training stroke is grown over the connected pixels near it whose
   colour is its class's (``grow_by`` "class": two Gaussians per class, ``colour_components``) or that stroke's
   own ("stroke"; :func:`grow_strokes`), and the thin band where two grown classes meet is labelled by the nearer
   colour: strokes sit inside regions, and this puts labels on both sides of the edges they reach.
3. **Crops** (``crop`` px, default 256) are centred near painted pixels, each class equally often (voids are a
   few per cent of a slab and of its strokes), read through a small cache of decoded chunks; random flips and
   quarter turns, and the photometric augmentation of training (brightness, contrast, gamma, colour, blur,
   noise, JPEG).
4. **Loss**: cross-entropy on the painted (and grown) pixels of the crop, averaged over pixels (``balance``
   "class": per class, so rare classes weigh more -- measured to make voids grow), plus ``prior`` x the KL
   divergence from the **base model's own soft prediction** on the pixels nobody painted (computed on the crop
   before photometric changes), so the network keeps what it knew everywhere the strokes say nothing.
   BatchNorm statistics stay the base's (a batch of crops around a few strokes is no estimate of a slab).
   With ``replay`` > 0, each step also trains on ``replay_batch`` crops of synthetic concrete with their exact
   truth (:mod:`bigseg.train.replay`, the bundled model's training mix), cross-entropy weighted by ``replay``:
   strokes say what a class looks like inside its regions, the synthetic truth where voids end.
5. **Stops** at the time budget (``minutes``) or, after at least 40 % of it, when the loss has stopped falling
   (the mean of its last 300 steps within 0.5 % of the 300 before), with a learning rate that decays as a cosine
   over the budget. With a step budget (``steps``) the cosine runs over the steps and the run stops after them
   (``minutes`` still caps it): the same strokes, seed and steps give the same model, whatever else the machine
   is doing (what a comparison of two recipes needs).
6. **Void shift** (``void_shift``, concrete class tables): a constant added to the trained model's void logit,
   kept in the checkpoint's metadata (``logit_offset``; every load applies it, the ONNX export carries it). The
   crops are centred on each class in turn, so the fine-tune sees voids many times as often as a slab holds them
   and calls doubtful pixels -- a void's rim, a dark grain -- void (label shift); the shift moves them back. A base
   adapted before is trained from its network as trained (its shift taken off), so rounds do not add up.
   Held-back strokes sit inside regions and cannot choose it; it was chosen on the development styles.
7. **Held-back strokes** are scored with the base and the adapted model (a window around each stroke, so it is
   seen with its context): per-class accuracy, before and after.
8. **A rule on void objects** (``object_rule``; :mod:`bigseg.object_rule`): the adapted model labels the chunks
   holding strokes; the void objects there that training strokes touch (void, or another class) fit a logistic
   rule on their darkest and mean grey and roundness. Objects the base model called void and the strokes painted
   another class count too when the adapted model no longer calls them void: the network learns the grains it is
   shown, and without them the rule would lack its examples of what voids are not (on a development slab, eight
   grains painted over in round two, none still labelled void after it). It is kept when it was fitted (enough
   objects on each side)
   and, on the objects that held-back strokes touch, relabels no more void objects than false ones; ``infer``
   then applies it to every label chunk, and the held-back strokes above are scored with it.
9. **Where to paint next**: windows spread over each slab, ranked by how much the adapted model disagrees with
   itself under flips and how unsure it is there (:func:`suggest_regions`); the list is stored in the
   checkpoint and in the store's annotation attributes (the viewer lists them).
10. The checkpoint (weights, metadata with full provenance: base sha256, stores, painted pixels per class, held
    back, minutes, steps, seed, accuracy) and its ONNX export beside it (``OUT.onnx``, verified against PyTorch),
    so ``bigseg infer --model OUT.pt`` runs at the default speed.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bigseg import annotations as ann
from bigseg import checkpoint as ckpt
from bigseg import object_rule as orule
from bigseg import store as st
from bigseg.classes import IGNORE_LABEL, concrete_ids
from bigseg.cluster import cpu_count
from bigseg.errors import BigsegError
from bigseg.export import export
from bigseg.infer import stability
from bigseg.infer.options import DEFAULT_OVERLAP, DEFAULT_WINDOW
from bigseg.infer.predictor import TTA_VIEWS, scaled_size
from bigseg.infer.windows import Grid
from bigseg.progress import make_bar
from bigseg.train.adapt_checks import check_inputs
from bigseg.train.adapt_options import COLOUR_COMPONENTS, COLOUR_PRIOR, EDGES, AdaptOptions
from bigseg.train.config import PhotometricConfig
from bigseg.train.replay import ReplayPool, void_band

MAX_COORDS = 400_000
"""Painted pixels kept per class and store to draw crop centres from (a uniform subsample above it)."""
MAX_HELD_WINDOWS = 400
EVAL_WINDOW = 384
MAX_RULE_CHUNKS = 64
"""Painted chunks the object rule's objects are drawn from (evenly spread above it: bounded time on big slabs)."""
RULE_MARGIN = 48
"""Context (px) around a painted chunk when the adapted model labels it for the object rule."""


@dataclass
class Strokes:
    """One store's painted pixels, split: crop centres to draw from (per class) and the held-back strokes."""

    store: str
    shape: tuple[int, int]
    train: dict[int, np.ndarray]  # class id -> (n, 2) int32 (y, x) of painted pixels used for training
    held: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # chunk origin -> flat held indices
    held_strokes: list[dict] = field(default_factory=list)  # {class, box (y0, y1, x0, x1)}
    n_strokes: dict[int, int] = field(default_factory=dict)
    painted: dict[int, int] = field(default_factory=dict)
    chunk: tuple[int, int] = (1024, 1024)
    grown: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # origin -> idx, ids


def _held_back(c: int, firsts: list[tuple[int, int]], share: float, seed: int) -> set[int]:
    """Which of a class's strokes are held back: those whose position (first pixel) and ``seed`` hash below
    ``share``, at least one of two or more and never all. A stroke's fate depends on where it is, not on which
    other strokes exist: painting more and adapting again (from the adapted model, say) never trains on a stroke
    an earlier round held back."""
    import hashlib

    u = [int.from_bytes(hashlib.blake2b(f"{seed}:{c}:{y}:{x}".encode(), digest_size=8).digest(), "big") / 2**64
         for y, x in firsts]
    held = {k for k, v in enumerate(u) if v < share}
    if len(u) >= 2 and not held:
        held = {int(np.argmin(u))}
    if len(held) == len(u) and len(u) >= 2:
        held.discard(int(np.argmax(u)))
    return held if len(u) >= 2 else set()


def read_strokes(store: str, n_classes: int, held_back: float, rng: np.random.Generator, seed: int = 0) -> Strokes:
    """The store's strokes, a share of each class's held back (see the module's docstring)."""
    from scipy import ndimage

    arr = st.open_array(store, ann.LAYER)
    out = Strokes(store, (int(arr.shape[0]), int(arr.shape[1])), {}, chunk=(int(arr.chunks[0]), int(arr.chunks[1])))
    pieces: dict[int, list] = {c: [] for c in range(n_classes)}  # class -> [(origin, block index, flat indices)]
    blocks = {}
    for (y0, x0), block in ann.read_painted(store):
        blocks[(y0, x0)] = block.shape
        for c in range(n_classes):
            mask = block == c
            if not mask.any():
                continue
            lab, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
            flat = lab.ravel()
            order = np.argsort(flat, kind="stable")
            bounds = np.searchsorted(flat[order], np.arange(1, n + 2))
            for k in range(n):
                pieces[c].append(((y0, x0), order[bounds[k] : bounds[k + 1]].astype(np.int64)))
    held_flat: dict[tuple[int, int], list] = {}
    train: dict[int, list] = {c: [] for c in range(n_classes)}
    for c, items in pieces.items():
        if not items:
            continue
        out.n_strokes[c] = len(items)
        out.painted[c] = int(sum(len(i) for _, i in items))
        coords = []
        for origin, idx in items:
            w = blocks[origin][1]
            coords.append((idx // w + origin[0], idx % w + origin[1]))
        held_ids = _held_back(c, [(int(ys[0]), int(xs[0])) for ys, xs in coords], held_back, seed)
        for k, ((origin, idx), (ys, xs)) in enumerate(zip(items, coords, strict=True)):
            if k in held_ids:
                held_flat.setdefault(origin, []).append(idx)
                out.held_strokes.append({"class": c, "box": (int(ys.min()), int(ys.max()) + 1, int(xs.min()),
                                                             int(xs.max()) + 1), "origin": origin, "idx": idx})
            else:
                train[c].append(np.stack([ys, xs], axis=1).astype(np.int32))
    for c, parts in train.items():
        if parts:
            together = np.concatenate(parts)
            if len(together) > MAX_COORDS:
                together = together[rng.choice(len(together), MAX_COORDS, replace=False)]
            out.train[c] = together
    out.held = {o: np.concatenate(v) for o, v in held_flat.items()}
    return out


class ChunkReader:
    """Windows of a store's image and (training) annotations, from a bounded cache of decoded chunks: crops
    around strokes come back to the same few chunks again and again."""

    def __init__(self, strokes: Strokes, max_bytes: int = 512 * 2**20):
        self.s = strokes
        self.image = st.open_array(strokes.store, "image")
        self.ann = st.open_array(strokes.store, ann.LAYER)
        self.cache: OrderedDict = OrderedDict()
        self.bytes = 0
        self.max_bytes = max_bytes

    def _chunk(self, name: str, cy: int, cx: int) -> np.ndarray:
        key = (name, cy, cx)
        hit = self.cache.get(key)
        if hit is not None:
            self.cache.move_to_end(key)
            return hit
        ch, cw = self.s.chunk
        h, w = self.s.shape
        ys, xs = slice(cy * ch, min((cy + 1) * ch, h)), slice(cx * cw, min((cx + 1) * cw, w))
        if name == "image":
            data = np.asarray(st.read(self.image, ys, xs))
        else:
            data = np.asarray(self.ann[ys, xs]).copy()
            held = self.s.held.get((ys.start, xs.start))
            if held is not None:
                data.ravel()[held] = IGNORE_LABEL  # held back: never seen in training
            grown = self.s.grown.get((ys.start, xs.start))
            if grown is not None:
                data.ravel()[grown[0]] = grown[1]
        self.cache[key] = data
        self.bytes += data.nbytes
        while self.bytes > self.max_bytes and len(self.cache) > 1:
            _, old = self.cache.popitem(last=False)
            self.bytes -= old.nbytes
        return data

    def window(self, name: str, y0: int, x0: int, size: int) -> np.ndarray:
        """``size`` x ``size`` from (y0, x0), padded (image 0, annotations 255) beyond the edges."""
        h, w = self.s.shape
        ch, cw = self.s.chunk
        shape = (size, size, 3) if name == "image" else (size, size)
        out = np.zeros(shape, np.uint8) if name == "image" else np.full(shape, IGNORE_LABEL, np.uint8)
        ya, yb, xa, xb = max(0, y0), min(h, y0 + size), max(0, x0), min(w, x0 + size)
        for cy in range(ya // ch, (yb - 1) // ch + 1 if yb > ya else 0):
            for cx in range(xa // cw, (xb - 1) // cw + 1 if xb > xa else 0):
                data = self._chunk(name, cy, cx)
                sy0, sy1 = max(ya, cy * ch), min(yb, (cy + 1) * ch)
                sx0, sx1 = max(xa, cx * cw), min(xb, (cx + 1) * cw)
                out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = data[sy0 - cy * ch : sy1 - cy * ch,
                                                                     sx0 - cx * cw : sx1 - cx * cw]
        return out


GROW_PX = 12
"""How far (px) a stroke is grown over pixels of its colour."""
GROW_LIMIT = 9.0
"""Squared Mahalanobis distance to a class's (or a stroke's) colours within which a pixel may join a grown stroke (about
the 97th percentile of a chi-square with three degrees of freedom)."""
BAND_PX = 2
MIN_STROKE_PX = 8
"""A piece of a stroke smaller than this (where it crosses a chunk border) is not grown."""


def _colour_models(reader: ChunkReader, rng, components: int,
                   choice: str = "all") -> dict[int, list[tuple[np.ndarray, np.ndarray]]]:
    """Per class: up to ``components`` Gaussians (mean, inverse covariance) of the colours (3 x 3 means) under its
    training strokes; every class ``components`` (``choice`` "all") or each class its own number, the one that
    tells the strokes' colours apart best (``choice`` "per-class", ``_per_class``)."""
    return _fitted_models(_stroke_colours(reader, rng), components, choice)


def _stroke_colours(reader: ChunkReader, rng) -> dict[int, np.ndarray]:
    """Per class: the colours (3 x 3 means, float64) of up to 4000 of its training stroke pixels, drawn at random."""
    colours = {}
    for c, coords in reader.s.train.items():
        pick = coords[rng.choice(len(coords), min(len(coords), 4000), replace=False)]
        colours[c] = np.asarray([reader.window("image", int(y) - 1, int(x) - 1, 3).reshape(-1, 3).mean(axis=0)
                                 for y, x in pick], np.float64)
    return colours


def _fitted_models(colours: dict[int, np.ndarray], components: int,
                   choice: str = "all") -> dict[int, list[tuple[np.ndarray, np.ndarray]]]:
    """:func:`_colour_models` from the stroke colours already drawn."""
    if choice == "per-class" and components > 1:
        return _per_class(colours, components)
    return {c: _mixture(v, components) for c, v in colours.items()}


def _claimed(colours: dict[int, np.ndarray], models: dict[int, list]) -> float:
    """Mean over classes of the share of a class's stroke colours that another class would grow over: nearer to
    that class's model than to any other and within GROW_LIMIT of it."""
    classes = sorted(models)
    return _claimed_share({t: np.stack([_distance(v, models[c]) for c in classes]) for t, v in colours.items()},
                          classes)


def _claimed_share(d2: dict[int, np.ndarray], classes: list[int]) -> float:
    """``_claimed`` from each class's stroke colours' distances ``d2[t]`` (one row per class of ``classes``)."""
    shares = [float(np.mean((np.asarray(classes)[d.argmin(axis=0)] != t) & (d.min(axis=0) < GROW_LIMIT)))
              for t, d in d2.items()]
    return round(float(np.mean(shares)), 4)  # rounded: a difference in the fourth place is no reason for a model


def _per_class(colours: dict[int, np.ndarray], components: int) -> dict[int, list]:
    """Each class's number of Gaussians (1 to ``components``), chosen so that as few of the strokes' own colours as
    possible would be grown over by another class (``_claimed``); a class takes more only where that is fewer.
    Where part of a void's stroke colours are the paste's (a blurred rim, a paste-grey deposit), a second Gaussian
    on them lets the void grow over the paste; a dark cavity's white lining is nobody else's colour and keeps two.
    Fewer wrong grown labels on 24 development slabs, but adapting with it was a tie on three looks, so it is an
    option (benchmarks/RESULTS.md, "Two colour models where they tell the strokes apart"). Greedy, one class at a
    time, from one Gaussian each, until nothing changes."""
    fits = {c: {1: [_gaussian(v)], **{k: _mixture(v, k) for k in range(2, components + 1)}} for c, v in colours.items()}
    classes = sorted(colours)
    # every class's stroke colours against every class's every model, once: a trial only picks rows
    dist = {(t, c, k): _distance(colours[t], fits[c][k]) for t in classes for c in classes for k in fits[c]}

    def score(numbers: dict[int, int]) -> float:
        return _claimed_share({t: np.stack([dist[t, c, numbers[c]] for c in classes]) for t in classes}, classes)

    chosen = {c: 1 for c in classes}
    best = score(chosen)
    for _ in range(4):
        changed = False
        for c in classes:
            for k in range(1, components + 1):
                if k == chosen[c]:
                    continue
                trial = {**chosen, c: k}
                score_k = score(trial)
                if score_k < best or (score_k == best and k < chosen[c]):
                    best, chosen, changed = score_k, trial, True
        if not changed:
            break
    return {c: fits[c][chosen[c]] for c in classes}


MIN_COMPONENT = 0.05


def _mixture(v: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Up to ``k`` Gaussians (mean, inverse covariance) of colours ``v``, split by k-means; a part under
    MIN_COMPONENT of the colours joins no model."""
    if k <= 1 or len(v) < 20 * k:
        return [_gaussian(v)]
    import warnings

    from scipy.cluster.vq import kmeans2

    with warnings.catch_warnings():  # an empty part is dropped below
        warnings.simplefilter("ignore")
        _, part = kmeans2(v, k, seed=0, minit="++")
    kept = [v[part == j] for j in range(k) if (part == j).sum() >= max(10, MIN_COMPONENT * len(v))]
    return [_gaussian(p) for p in kept] or [_gaussian(v)]


def _distance(flat: np.ndarray, model: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Squared Mahalanobis distance of colours ``flat`` (n, 3) to the nearest component of a class's model."""
    return np.min([np.einsum("ij,jk,ik->i", flat - m, inv, flat - m) for m, inv in model], axis=0)


def _log_weights(colours: dict[int, np.ndarray], models: dict[int, list], painted: dict[int, int]
                 ) -> dict[int, np.ndarray]:
    """Per class: the log of the number of stroke pixels each of its Gaussians models (``painted[c]`` stroke pixels,
    shared by the Gaussian each drawn colour is nearest to)."""
    out = {}
    for c, model in models.items():
        nearest = np.stack([np.einsum("ij,jk,ik->i", colours[c] - m, inv, colours[c] - m) for m, inv in model])
        share = np.bincount(nearest.argmin(axis=0), minlength=len(model)) / len(colours[c])
        out[c] = np.log(np.maximum(share * painted[c], 0.5))
    return out


def _density_score(flat: np.ndarray, model: list[tuple[np.ndarray, np.ndarray]], log_weight: np.ndarray
                   ) -> np.ndarray:
    """-2 log of (stroke pixels x Gaussian density) of colours ``flat`` (n, 3) for the class's best Gaussian, up to a
    constant: Mahalanobis distance + log det of the covariance - 2 log weight. Lower is likelier."""
    return np.min([np.einsum("ij,jk,ik->i", flat - m, inv, flat - m) - np.linalg.slogdet(inv)[1] - 2.0 * w
                   for (m, inv), w in zip(model, log_weight, strict=True)], axis=0)


def _gaussian(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and inverse covariance of colours ``v`` (n, 3)."""
    cov = np.cov(v.T) + np.eye(3) * 4.0  # at least 2 grey levels of spread per channel (JPEG, noise)
    return v.mean(axis=0), np.linalg.inv(cov)


def _grown_by_stroke(painted: np.ndarray, pix: np.ndarray, others: np.ndarray, free: np.ndarray, distance: int,
                     rng) -> np.ndarray:
    """Pixels that one class's strokes (``painted``) grow over, each stroke by its own colours (``pix``: the
    block's smoothed colours, float64): within ``distance`` px, connected to it, nearer to its colours
    (GROW_LIMIT) than to any other class's (``others``)."""
    from scipy import ndimage

    pieces, _ = ndimage.label(painted, structure=np.ones((3, 3), bool))
    region = np.zeros(painted.shape, bool)
    for i, box in enumerate(ndimage.find_objects(pieces), start=1):
        if box is None:
            continue
        ys = slice(max(box[0].start - distance, 0), box[0].stop + distance)
        xs = slice(max(box[1].start - distance, 0), box[1].stop + distance)
        seed = pieces[ys, xs] == i
        if seed.sum() < MIN_STROKE_PX:  # a stroke's corner across a chunk border: too few colours to model
            continue
        colours = pix[ys, xs][seed]
        if len(colours) > 2000:
            colours = colours[rng.choice(len(colours), 2000, replace=False)]
        mean, inv = _gaussian(colours)
        diff = pix[ys, xs].reshape(-1, 3) - mean
        own = np.einsum("ij,jk,ik->i", diff, inv, diff).reshape(seed.shape)
        zone = ndimage.distance_transform_edt(~seed) <= distance
        similar = zone & (own < GROW_LIMIT) & (own < others[ys, xs]) & free[ys, xs]
        region[ys, xs] |= ndimage.binary_propagation(seed, mask=similar | seed) & ~seed
    return region


EDGE_RADIUS = 3
"""With ``edges`` "local": how far (px) :func:`_local_edges` looks for a class's pure pixels around an edge pixel."""


def _local_edges(raw: np.ndarray, nearest: np.ndarray, classes: list[int], radius: int = EDGE_RADIUS) -> np.ndarray:
    """``nearest`` (each pixel's nearer colour model) with its class edges decided by mixing: a pixel at an edge of a
    blurred image is a mix of the colours on both sides, and it belongs to the side whose share of it is over half,
    the side whose colour it is nearer in plain colour distance. A class model's Mahalanobis distance does not say
    that: a void's model spread over its dark cavity and its rim tones claims pixels a quarter void. Edge pixels
    (those whose 3 x 3 neighbourhood holds another class) go to the class whose mean colour over its core pixels
    (all neighbours its own) within ``radius`` px is nearest to the pixel's own colour (``raw``, not smoothed); where
    no class has a core pixel that near, the colour model decides as before."""
    from scipy import ndimage

    size = 2 * radius + 1
    cores = [ndimage.binary_erosion(nearest == c, structure=np.ones((3, 3), bool), border_value=1) for c in classes]
    edge = ~np.any(cores, axis=0)
    out = nearest.copy()
    if not edge.any():
        return out
    best = np.full(nearest.shape, np.inf, np.float32)
    for c, core in zip(classes, cores, strict=True):
        weight = ndimage.uniform_filter(core.astype(np.float32), size)
        present = weight > 0.5 / size**2
        if not (present & edge).any():
            continue
        mean = np.stack([ndimage.uniform_filter(raw[..., k] * core, size) for k in range(raw.shape[-1])], -1)
        mean /= np.maximum(weight, 1e-6)[..., None]
        d = np.where(present, ((raw - mean) ** 2).sum(axis=-1), np.inf)
        take = edge & (d < best)
        out[take] = c
        best[take] = d[take]
    return out


def grow_strokes(reader: ChunkReader, rng, distance: int = GROW_PX, by: str = "class",
                 components: int = COLOUR_COMPONENTS, choice: str = "all", edges: str = EDGES,
                 colour_prior: str = COLOUR_PRIOR) -> int:
    """Grow every training stroke over the connected pixels near it (``distance`` px) whose colour is its class's
    (``by`` "class") or that stroke's own (``by`` "stroke"), and nearer to it than to any other class's, and label
    the thin band where two grown classes meet by the nearer colour: strokes sit inside regions, and this puts
    labels on both sides of each edge they reach, so the fine-tune learns where one class ends. By stroke, a paste
    stroke painted over a dark sand grain fills that grain, which the paste class's colours (mostly light paste)
    would not (measured on crushed: grain pixels labelled 267 -> 6230, grown paste right 98.2 % -> 99.85 %); on
    contrast it adapted worse (benchmarks/RESULTS.md), so the class's colours are the default. Pixels near
    held-back strokes are left alone. ``edges`` "local" (the default): where two classes meet, a pixel goes to the
    class whose nearby pure colour it is nearer (:func:`_local_edges`); "model": to the nearer colour model.
    ``colour_prior`` "strokes": the nearer class of a colour is the one of highest density, each Gaussian weighted by
    the stroke pixels it models (a colour both classes' strokes hold goes to the one that holds more of it); "none":
    the least Mahalanobis distance. Returns the pixels added."""
    from scipy import ndimage

    strokes = reader.s
    image = reader.image
    colours = _stroke_colours(reader, rng)
    models = _fitted_models(colours, components, choice)
    if len(models) < 2:
        return 0
    classes = sorted(models)
    log_weights = (_log_weights(colours, models, {c: len(strokes.train[c]) for c in classes})
                   if colour_prior == "strokes" else None)
    added = 0
    for (y0, x0), block in ann.read_painted(strokes.store):
        train = block.copy()
        held = strokes.held.get((y0, x0))
        near_held = np.zeros(block.shape, bool)
        if held is not None:
            train.ravel()[held] = IGNORE_LABEL
            near_held.ravel()[held] = True
            near_held = ndimage.distance_transform_edt(~near_held) <= distance + BAND_PX
        if not (train != IGNORE_LABEL).any():
            continue
        raw = np.asarray(st.read(image, slice(y0, y0 + block.shape[0]), slice(x0, x0 + block.shape[1])), np.float32)
        pix = ndimage.uniform_filter(raw, size=(3, 3, 1))
        flat = pix.reshape(-1, 3).astype(np.float64)
        d2 = np.stack([_distance(flat, models[c]) for c in classes]).reshape(len(classes), *block.shape)
        # which class a colour is nearest: least distance, or (colour_prior "strokes") highest weighted density
        score = d2 if log_weights is None else np.stack(
            [_density_score(flat, models[c], log_weights[c]) for c in classes]).reshape(d2.shape)
        free = ~near_held & (train == IGNORE_LABEL)
        grown = np.full(block.shape, IGNORE_LABEL, np.uint8)
        claimed = np.zeros(block.shape, np.uint8)
        nearest = np.asarray(classes)[score.argmin(axis=0)] if by == "class" else None
        if nearest is not None and edges == "local":
            nearest = _local_edges(raw, nearest, classes)
        for k, c in enumerate(classes):
            if by == "stroke":
                region = _grown_by_stroke(train == c, flat.reshape(*block.shape, 3),
                                          np.delete(d2, k, axis=0).min(axis=0), free, distance, rng)
            else:
                seed = train == c
                if not seed.any():
                    continue
                zone = ndimage.distance_transform_edt(~seed) <= distance
                similar = zone & (nearest == c) & (d2[k] < GROW_LIMIT) & free
                region = ndimage.binary_propagation(seed, mask=similar | seed) & ~seed
            grown[region] = c
            claimed += region
        grown[claimed > 1] = IGNORE_LABEL
        labelled = (train != IGNORE_LABEL) | (grown != IGNORE_LABEL)
        merged = np.where(train != IGNORE_LABEL, train, grown)
        # the band between two grown classes: pixels within BAND_PX of both, labelled by the nearer colour
        near = [ndimage.distance_transform_edt(merged != c) <= BAND_PX if (merged == c).any() else None
                for c in classes]
        count = sum(n.astype(np.uint8) for n in near if n is not None)
        band = (count >= 2) & ~labelled & ~near_held
        if band.any():
            allowed = np.stack([n if n is not None else np.zeros(block.shape, bool) for n in near])
            masked = np.where(allowed, score, np.inf)
            pick = np.asarray(classes, np.uint8)[masked.argmin(axis=0)]
            if nearest is not None and edges == "local":  # the mixing rule where it names a class allowed here
                index = np.searchsorted(classes, nearest)
                ok = np.take_along_axis(allowed, index[None], axis=0)[0]
                pick = np.where(ok, nearest, pick).astype(np.uint8)
            grown[band] = pick[band]
        idx = np.flatnonzero(grown != IGNORE_LABEL)
        if idx.size:
            strokes.grown[(y0, x0)] = (idx.astype(np.int64), grown.ravel()[idx])
            added += int(idx.size)
    reader.cache.clear()
    reader.bytes = 0
    return added


ZOOM_SHARE = 0.5
"""With ``zoom_out`` > 1, the share of crops read larger and shrunk to the crop size."""


def _zoomed_size(size: int, zoom_out: float, room: int, rng) -> int:
    """The side of the window a crop is read from: ``size``, or (ZOOM_SHARE of the crops, when ``zoom_out`` > 1)
    ``size`` times a factor log-uniform in [1, zoom_out], at most what the slab holds. Voids too small for a brush
    stroke are never painted, and a network shown only painted voids reads small ones badly (RESULTS.md, "Small
    voids"); a large painted void shrunk is a small void of the same look."""
    if zoom_out <= 1 or rng.random() >= ZOOM_SHARE:
        return size
    factor = float(np.exp(rng.uniform(0.0, np.log(zoom_out))))
    return max(size, min(int(round(size * factor)), room))


def _batch(readers: list[ChunkReader], classes: list[tuple[int, int]], opts: AdaptOptions, rng, photometric):
    """(clean images, augmented images, targets) of one batch: crops near painted pixels, classes in turn."""
    import torch
    import torch.nn.functional as F

    from bigseg.train.augment import photometric as augment

    clean, images, targets = [], [], []
    size = opts.crop
    for _ in range(opts.batch):
        r, c = classes[int(rng.integers(len(classes)))]
        reader = readers[r]
        coords = reader.s.train[c]
        y, x = coords[int(rng.integers(len(coords)))]
        jitter = size // 3
        cy, cx = int(y) + int(rng.integers(-jitter, jitter + 1)), int(x) + int(rng.integers(-jitter, jitter + 1))
        h, w = reader.s.shape
        read = _zoomed_size(size, opts.zoom_out, min(h, w), rng)
        y0 = int(np.clip(cy - read // 2, 0, max(h - read, 0)))
        x0 = int(np.clip(cx - read // 2, 0, max(w - read, 0)))
        img = torch.from_numpy(reader.window("image", y0, x0, read)).permute(2, 0, 1).float().div_(255.0)
        tgt = torch.from_numpy(reader.window("annotations", y0, x0, read).astype(np.int64))
        if read != size:  # shrunk: a painted void becomes one of the small voids that no brush stroke fits in
            img = F.interpolate(img[None], size=(size, size), mode="bilinear", antialias=True,
                                align_corners=False)[0].clamp_(0, 1)
            tgt = F.interpolate(tgt[None, None].float(), size=(size, size), mode="nearest")[0, 0].long()
        if rng.random() < 0.5:
            img, tgt = img.flip(-1), tgt.flip(-1)
        if rng.random() < 0.5:
            img, tgt = img.flip(-2), tgt.flip(-2)
        k = int(rng.integers(4))
        if k:
            img, tgt = torch.rot90(img, k, (-2, -1)), torch.rot90(tgt, k, (-2, -1))
        clean.append(img.contiguous())
        images.append(augment(img, rng, photometric) if photometric is not None else img)
        targets.append(tgt.contiguous())
    return torch.stack(clean), torch.stack(images), torch.stack(targets)


def _loss(logits, targets, teacher, prior: float, n_classes: int, balance: str):
    """Cross-entropy on painted pixels (``balance`` class: averaged per class; pixel: over pixels) + prior x
    KL(base || model) on unpainted pixels."""
    import torch
    import torch.nn.functional as F

    ce = F.cross_entropy(logits, targets, ignore_index=IGNORE_LABEL, reduction="none")
    labelled = targets != IGNORE_LABEL
    if balance == "pixel":
        stroke = ce[labelled].mean() if labelled.any() else logits.sum() * 0
    else:
        terms = [ce[targets == c].mean() for c in range(n_classes) if (targets == c).any()]
        stroke = torch.stack(terms).mean() if terms else logits.sum() * 0
    if teacher is None or prior == 0:
        return stroke, stroke
    free = targets == IGNORE_LABEL
    if not free.any():
        return stroke, stroke
    logp = F.log_softmax(logits, 1)
    q = F.softmax(teacher, 1)
    kl = (q * (torch.log(q.clamp_min(1e-8)) - logp)).sum(1)
    return stroke + prior * kl[free].mean(), stroke


CRF_SCALE = 2
"""The local CRF loss is taken on the crops' probabilities and colours averaged over CRF_SCALE² px: at full
resolution it would cost three times the network's own training step (0.46 s against 0.12 s for 8 x 256², 2
threads), at half 1.25 times."""


def crf_loss(logits, image):
    """:func:`bigseg.train.losses.gated_crf` of the crops' softmax against their colours, at 1/CRF_SCALE."""
    import torch.nn.functional as F

    from bigseg.train.losses import gated_crf

    probs = F.avg_pool2d(logits.softmax(1), CRF_SCALE)
    return gated_crf(probs, F.avg_pool2d(image.float(), CRF_SCALE))


CONVERGED_WINDOW = 300


def _converged(losses: list[float], min_steps: int) -> bool:
    """The loss has stopped falling: the mean of the last CONVERGED_WINDOW steps is within 0.5 % of the mean of
    the window before (means of windows: a step's loss is one noisy batch)."""
    n = CONVERGED_WINDOW
    if len(losses) < max(min_steps, 2 * n):
        return False
    return float(np.mean(losses[-n:])) > 0.995 * float(np.mean(losses[-2 * n : -n]))


def _freeze_batchnorm(model) -> None:
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def _predict(model, image: np.ndarray, tta: str = "none"):
    """Softmax (C, H, W) of one RGB uint8 window (padded to a multiple of 32 for the network); with ``tta`` the
    softmax of the mean logits of the window's views, as ``bigseg infer --tta`` computes them."""
    import torch

    h, w = image.shape[:2]
    ph, pw = -h % 32, -w % 32
    x = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)[None]
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
    views = TTA_VIEWS[tta]
    total = None
    with torch.inference_mode():
        for axes, scale in views:
            dims = tuple(a + 1 for a in axes)
            xv = x.flip(dims) if dims else x
            if scale != 1.0:
                xv = torch.nn.functional.interpolate(xv, size=(scaled_size(h + ph, scale), scaled_size(w + pw, scale)),
                                                     mode="bilinear", align_corners=False)
            y = model(xv).float()
            if scale != 1.0:
                y = torch.nn.functional.interpolate(y, size=(h + ph, w + pw), mode="bilinear", align_corners=False)
            y = y.flip(dims) if dims else y
            total = y if total is None else total + y
        assert total is not None
        return torch.softmax(total / len(views), 1)[0, :, :h, :w]


def _labels(model, image: np.ndarray, tta: str = "none") -> np.ndarray:
    """uint8 labels of one RGB window (:func:`_predict`'s arg-max)."""
    return _predict(model, image, tta).argmax(0).numpy().astype(np.uint8)


def score_held_back(models: dict, readers: list[ChunkReader], n_classes: int, rng, tta: str = "none",
                    rules: dict | None = None) -> dict:
    """Per-class accuracy of each model on the held-back strokes (a window around each, with context), with the
    views of ``tta`` (what ``infer --tta`` will run) and, for a model with one in ``rules``, its object rule."""
    counts = {name: np.zeros((n_classes, 2), np.int64) for name in models}  # [correct, total]
    jobs = [(r, s) for r, reader in enumerate(readers) for s in reader.s.held_strokes]
    if len(jobs) > MAX_HELD_WINDOWS:
        jobs = [jobs[i] for i in sorted(rng.choice(len(jobs), MAX_HELD_WINDOWS, replace=False))]
    for r, s in jobs:
        reader = readers[r]
        h, w = reader.s.shape
        y0, y1, x0, x1 = s["box"]
        size = max(EVAL_WINDOW, y1 - y0 + 64, x1 - x0 + 64)
        wy = int(np.clip((y0 + y1) // 2 - size // 2, 0, max(h - size, 0)))
        wx = int(np.clip((x0 + x1) // 2 - size // 2, 0, max(w - size, 0)))
        size_y, size_x = min(size, h), min(size, w)
        image = reader.window("image", wy, wx, size)[:size_y, :size_x]
        origin, idx = s["origin"], s["idx"]
        cw = min(reader.s.chunk[1], w - origin[1])
        ys, xs = idx // cw + origin[0] - wy, idx % cw + origin[1] - wx
        keep = (ys >= 0) & (ys < size_y) & (xs >= 0) & (xs < size_x)
        for name, model in models.items():
            pred = _labels(model, image, tta)
            rule = (rules or {}).get(name)
            if rule is not None:
                pred = orule.judge(rule, pred, image)[0]
            hits = pred[ys[keep], xs[keep]] == s["class"]
            counts[name][s["class"]] += (int(hits.sum()), int(keep.sum()))
    return counts


def _vanished_sides(before, labels: np.ndarray, image: np.ndarray, void: int, painted: np.ndarray,
                    held_px: np.ndarray, first_in_chunk, objects=orule.find
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The objects painted another class in ``before``'s labels (what the person saw and corrected) that the
    adapted model's ``labels`` no longer call void (under half of their pixels): (features, training sides,
    held-back sides) of those the chunk owns, each side 0 (not void) or -1. A grain painted over is trained on and
    leaves the adapted labels, yet it is still a grain: the rule needs it as an example of what voids are not.
    ``objects``: how void objects are found (:func:`bigseg.object_rule.find`, or ``cut`` for pieces)."""
    found = objects(before, image, void)
    empty = np.zeros((0, len(orule.FEATURES))), np.zeros(0, int), np.zeros(0, int)
    if not found.n:
        return empty
    on = found.ids > 0
    area = np.bincount(found.ids[on], minlength=found.n + 1)[1:]
    still = np.bincount(found.ids[on & (labels == void)], minlength=found.n + 1)[1:]
    gone = still * 2 < area
    trained = orule.painted_sides(found, painted, void)
    held = orule.painted_sides(found, held_px, void)
    mine = first_in_chunk(found) & gone & ((trained == 0) | (held == 0))
    return found.features[mine], np.where(trained == 0, 0, -1)[mine], np.where(held == 0, 0, -1)[mine]


@dataclass
class RuleExamples:
    """The painted void objects a rule is fitted on: features (:func:`bigseg.object_rule.find`'s columns), the side
    training strokes give each (1 void, 0 not, -1 none) and the side held-back strokes give; ``gone``: how many of
    the "not void" were painted over and left the adapted labels."""

    void: int
    features: np.ndarray
    trained: np.ndarray
    held: np.ndarray
    gone: int | None


def fit_object_rule(model, readers: list[ChunkReader], classes, tta: str = "none", before=None
                    ) -> tuple[orule.ObjectRule | None, dict]:
    """(the void-object rule or None, what was found): see step 8 of the module's docstring. ``before``: the model
    the strokes were painted against (the base, with its void shift), whose void objects painted another class and
    gone from the adapted labels count as such too."""
    ids = concrete_ids(classes)
    if ids is None:
        return None, {"fitted_on": {"void": 0, "not void": 0}, "kept": False,
                      "why": "the class table has no paste, stone and void"}
    return choose_object_rule(rule_examples(model, readers, ids["void"], tta, before))


def rule_examples(model, readers: list[ChunkReader], void: int, tta: str = "none", before=None,
                  cut: bool = False) -> RuleExamples:
    """The painted void objects of ``readers``' stores in ``model``'s labels (and ``before``'s, see
    :func:`fit_object_rule`), each counted once; ``cut``: the objects cut at grey ridges
    (:func:`bigseg.object_rule.cut`), as a rule with ``cut_merged`` judges them."""
    objects = orule.cut if cut else orule.find
    jobs = [(reader, origin, block) for reader in readers for origin, block in ann.read_painted(reader.s.store)]
    if len(jobs) > MAX_RULE_CHUNKS:
        jobs = [jobs[int(i)] for i in np.linspace(0, len(jobs) - 1, MAX_RULE_CHUNKS).round()]
    features, trained, held = [], [], []
    gone = 0
    for reader, (y0, x0), block in jobs:
        h, w = reader.s.shape
        ch, cw = block.shape
        wy0, wx0 = max(0, y0 - RULE_MARGIN), max(0, x0 - RULE_MARGIN)
        wy1, wx1 = min(h, y0 + ch + RULE_MARGIN), min(w, x0 + cw + RULE_MARGIN)
        image = np.asarray(st.open_array(reader.s.store, "image")[wy0:wy1, wx0:wx1])
        labels = _labels(model, image, tta)
        found = objects(labels, image, void)
        if not found.n:
            continue
        held_mask = np.zeros(block.shape, bool)
        idx = reader.s.held.get((y0, x0))
        if idx is not None:
            held_mask.ravel()[idx] = True
        core = (slice(y0 - wy0, y0 - wy0 + ch), slice(x0 - wx0, x0 - wx0 + cw))
        painted = np.full(labels.shape, IGNORE_LABEL, np.uint8)  # training strokes only
        painted[core] = np.where(held_mask, IGNORE_LABEL, block)
        held_px = np.full(labels.shape, IGNORE_LABEL, np.uint8)  # held-back strokes only
        held_px[core] = np.where(held_mask, block, IGNORE_LABEL)
        def first_in_chunk(objs, y0=y0, x0=x0, ch=ch, cw=cw, wy0=wy0, wx0=wx0):
            """Objects the rule may judge, each counted once (by the chunk holding its first row and column)."""
            first = np.array([(sl[0].start + wy0, sl[1].start + wx0) for sl in objs.boxes]).reshape(-1, 2)
            return ((first[:, 0] >= y0) & (first[:, 0] < y0 + ch) & (first[:, 1] >= x0) & (first[:, 1] < x0 + cw)
                    & objs.judged())

        mine = first_in_chunk(found)
        features.append(found.features[mine])
        trained.append(orule.painted_sides(found, painted, void)[mine])
        held.append(orule.painted_sides(found, held_px, void)[mine])
        if before is not None:
            f, t_side, h_side = _vanished_sides(_labels(before, image, tta), labels, image, void, painted, held_px,
                                                first_in_chunk, objects)
            features.append(f)
            trained.append(t_side)
            held.append(h_side)
            gone += int((t_side == 0).sum())
    return RuleExamples(void, np.concatenate(features) if features else np.zeros((0, len(orule.FEATURES))),
                        np.concatenate(trained) if trained else np.zeros(0, int),
                        np.concatenate(held) if held else np.zeros(0, int), gone if before is not None else None)


def choose_object_rule(examples: RuleExamples, **fit_options) -> tuple[orule.ObjectRule | None, dict]:
    """The rule fitted on ``examples`` (``fit_options`` go to :func:`bigseg.object_rule.fit`), or None when too few
    objects were painted or when, on the held-back strokes, it relabels more voids than false void objects; and
    the record of what was found."""
    x, t, hb, void = examples.features, examples.trained, examples.held, examples.void
    record: dict = {"fitted_on": {"void": int((t == 1).sum()), "not void": int((t == 0).sum())}}
    if examples.gone is not None:
        record["not_void_gone"] = examples.gone  # of the "not void": painted over, and no longer labelled void
    rule = orule.fit(x[t >= 0], t[t >= 0], void, **fit_options)
    if rule is None:
        sides, more = record["fitted_on"], []  # what the person can do about it, in their terms
        if sides["not void"] < orule.MIN_OBJECTS:
            more.append(f"paint paste or stone over {orule.MIN_OBJECTS - sides['not void']} more objects that the "
                        "labels call void and are not")
        if sides["void"] < orule.MIN_OBJECTS:
            more.append(f"paint void in {orule.MIN_OBJECTS - sides['void']} more voids")
        return None, {**record, "kept": False,
                      "why": f"fewer than {orule.MIN_OBJECTS} void objects painted void or painted another class "
                             f"(to fit one: {' and '.join(more)}, then adapt again)"}
    dropped = rule.probability(x[hb >= 0]) < orule.REJECT_BELOW
    sides = hb[hb >= 0]
    check = {"void_objects": int((sides == 1).sum()), "void_objects_relabelled": int((dropped & (sides == 1)).sum()),
             "false_objects": int((sides == 0).sum()), "false_objects_relabelled": int((dropped & (sides == 0)).sum())}
    record["held_back"] = check
    if check["void_objects_relabelled"] > check["false_objects_relabelled"]:
        return None, {**record, "kept": False, "why": "on the held-back strokes it relabelled more voids than false "
                                                      "void objects"}
    return rule, {**record, "kept": True}


def _rule_line(record: dict) -> str:
    f = record["fitted_on"]
    text = f"object rule: fitted on {f['void']} void objects and {f['not void']} painted as another class"
    if record.get("not_void_gone"):
        text += f" ({record['not_void_gone']} of them no longer labelled void after adapting)"
    c = record.get("held_back")
    if c:
        text += (f"; on held-back strokes it relabels {c['false_objects_relabelled']} of {c['false_objects']} false "
                 f"void objects and {c['void_objects_relabelled']} of {c['void_objects']} voids")
    if record.get("cut_merged"):
        text += "; it judges void objects cut where the grey rises inside them"
    if record.get("grow_edges"):
        text += "; the voids it keeps are grown to their edges"
    return text + ("; kept (infer applies it; --no-object-rule there to compare)" if record["kept"]
                   else f"; not kept: {record['why']}")


def window_origins(h: int, w: int, size: int, per_store: int = 24):
    """(y, x) origins of the grid of ``size`` windows that :func:`suggest_regions` scores on an h x w image: at most
    ``per_store``, neighbours at least half a window apart."""
    cols = max(1, round(math.sqrt(per_store * w / max(h, 1))))
    rows = max(1, per_store // cols)
    cols = min(cols, max(1, int(2 * (w - size) / size)))  # neighbours' origins (w - size) / cols apart
    rows = min(rows, max(1, int(2 * (h - size) / size)))
    for gy in range(rows):
        for gx in range(cols):
            yield (int((h - size) * (gy + 0.5) / rows) if rows > 1 else (h - size) // 2,
                   int((w - size) * (gx + 0.5) / cols) if cols > 1 else (w - size) // 2)


def suggest_regions(model, stores: list[str], classes, n: int = 5, window: int = 512, per_store: int = 24) -> list:
    """Windows where the model is least sure of itself: the share of pixels whose class changes when the window
    is seen mirrored (left-right, up-down), plus the share whose chosen class has a probability below 0.7.
    With the concrete class table each window also records its doubt about voids (``void_score``: pixels where a
    view says void and not every view agrees, plus unsure pixels with a void probability over 0.15), which is not
    used to rank: it lists the windows of most void mistakes (Spearman 0.94-0.96 on development slabs, against
    0.41-0.76), but end to end a second round painted there read the figures no better (one hand of three read air
    1.1-1.8 points low; benchmarks/RESULTS.md, "The list ranked by the doubt about voids"); it is kept so that the
    list's choice can be replayed.
    A grid of at most ``per_store`` windows per store, neighbours at least half a window apart (a small slab gets
    fewer windows, not the same pixels seen many times); the ``n`` highest, with (x, y, width, height). ``n`` 0:
    none, and nothing is computed."""
    if n <= 0:
        return []
    ids = concrete_ids(classes)
    void = None if ids is None else ids["void"]
    found = []
    for store in stores:
        image = st.open_array(store, "image")
        h, w = image.shape[:2]
        size = min(window, h, w)
        for y0, x0 in window_origins(h, w, size, per_store):
            win = np.asarray(st.read(image, slice(y0, y0 + size), slice(x0, x0 + size)))
            row, mean, _ = window_doubt(model, win, void)
            found.append({"store": str(store), "x": x0, "y": y0, "width": size, "height": size, **row,
                          "classes": {c.name: round(float(mean[c.id]), 3) for c in classes}})
    return best_windows(found, n)


def window_doubt(model, win: np.ndarray, void: int | None):
    """One window's doubt as :func:`suggest_regions` scores it: (the record's figures -- ``score``,
    ``flip_disagreement``, ``unsure`` and, given a void class id, ``void_score`` --, the mean probability per class
    over the three views, the labels of the unmirrored view)."""
    p = _predict(model, win)
    pl = _predict(model, np.ascontiguousarray(win[:, ::-1])).flip(-1)
    pu = _predict(model, np.ascontiguousarray(win[::-1])).flip(-2)
    lab, lab_l, lab_u = p.argmax(0), pl.argmax(0), pu.argmax(0)
    changed = (lab_l != lab) | (lab_u != lab)
    low = p.max(0).values < 0.7
    flips, unsure = changed.float().mean().item(), low.float().mean().item()
    row = {"score": round(flips + unsure, 4), "flip_disagreement": round(flips, 4), "unsure": round(unsure, 4)}
    if void is not None:
        said = (lab == void) | (lab_l == void) | (lab_u == void)
        doubt = (said & changed).float().mean().item() + (low & (p[void] > 0.15)).float().mean().item()
        row["void_score"] = round(doubt, 4)
    return row, ((p + pl + pu) / 3).mean((1, 2)), lab.numpy()


def best_windows(found: list[dict], n: int, key: str = "score") -> list[dict]:
    """The ``n`` windows highest in ``key``, the best first, none overlapping a better one of its store by more than
    a quarter of its area."""
    chosen: list[dict] = []
    for r in sorted(found, key=lambda r: -r[key]):
        if all(r.get("store") != c.get("store") or _overlap(r, c) <= 0.25 * r["width"] * r["height"]
               for c in chosen):
            chosen.append(r)
        if len(chosen) == n:
            break
    return chosen


def _overlap(a: dict, b: dict) -> int:
    w = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
    h = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
    return max(0, w) * max(0, h)


def _accuracy(counts: np.ndarray, classes) -> dict:
    return {c.name: (float(counts[c.id, 0] / counts[c.id, 1]) if counts[c.id, 1] else None) for c in classes}


@dataclass(frozen=True)
class AdaptResult:
    """What :func:`adapt` made and measured."""

    checkpoint: str
    onnx: str | None
    steps: int
    seconds: float
    stopped: str
    painted: dict
    strokes: dict
    held_back_strokes: dict
    held_back_accuracy: dict
    held_back_accuracy_base: dict
    held_back_pixels: dict
    suggestions: list
    loss_first: float
    loss_last: float
    object_rule: dict | None = None  # how the void-object rule was fitted and checked, and whether it was kept

    def to_dict(self) -> dict:
        return asdict(self)


def _checks(stores: list[str], out: Path, base: Path, overwrite: bool, opts: AdaptOptions):
    """Everything that can fail before minutes of work: options, stores and their strokes, base model, output."""
    table = check_inputs(stores, out, base, overwrite, opts)
    names = [c.name for c in table]
    meta = ckpt.read(base)["meta"]
    base_names = [c["name"] for c in meta["classes"]]
    if base_names != names:
        raise BigsegError(f"--model {base}: its classes ({', '.join(base_names)}) are not the stores' "
                          f"({', '.join(names)}); adapt a model made for these classes")
    return table, meta


def adapt(stores: list[str | os.PathLike], out: str | os.PathLike, base: str | os.PathLike | None = None,
          options: AdaptOptions | None = None, overwrite: bool = False, echo=print, progress: bool | None = None,
          command: str | None = None) -> AdaptResult:
    """Fine-tune ``base`` (default: the bundled model) on the strokes painted in ``stores``; write ``out`` (and
    ``out`` with .onnx); see the module's docstring. Nothing in the stores changes but the list of suggested
    regions in their annotation attributes."""
    import torch

    from bigseg.models import training_mode

    opts = options or AdaptOptions()
    paths = [str(s) for s in stores]
    out = Path(out)
    base_path = ckpt.model_path(str(base) if base is not None else None)
    classes, meta = _checks(paths, out, base_path, overwrite, opts)
    n = len(classes)
    threads = opts.threads or cpu_count()  # the cores this process may run on (taskset, a batch job's cgroup)
    torch.set_num_threads(threads)
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    held_seed = opts.seed if opts.held_back_seed is None else opts.held_back_seed
    strokes = [read_strokes(s, n, opts.held_back, rng, held_seed) for s in paths]
    readers = [ChunkReader(s) for s in strokes]
    if opts.grow:
        grown = sum(grow_strokes(r, rng, opts.grow, opts.grow_by, opts.colour_components, opts.colour_choice,
                                 opts.edges, opts.colour_prior)
                    for r in readers)
        echo(f"strokes grown to the edges of their regions: {grown} px added")
    pairs = [(r, c) for r, s in enumerate(strokes) for c in s.train]
    trained_classes = {c for _, c in pairs}
    if len(trained_classes) < 2:
        raise BigsegError("after holding strokes back, fewer than two classes are left to train on; paint more "
                          "strokes")
    painted = {c.name: sum(s.painted.get(c.id, 0) for s in strokes) for c in classes}
    n_strokes = {c.name: sum(s.n_strokes.get(c.id, 0) for s in strokes) for c in classes}
    held = {c.name: sum(1 for s in strokes for h in s.held_strokes if h["class"] == c.id) for c in classes}
    echo("strokes: " + ", ".join(f"{k} {n_strokes[k]} ({painted[k]} px)" for k in n_strokes)
         + "; held back: " + ", ".join(f"{k} {v}" for k, v in held.items()))
    model, _ = ckpt.load(base_path)
    before = copy.deepcopy(model).eval()  # as the person saw it (its void shift kept): the object rule's examples
    model.set_logit_offset(None)  # a base adapted before: its network as trained, so each round shifts once
    bf16, channels_last = training_mode(meta["arch"], "cpu")  # what measured fastest here (RESULTS.md)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    base_model = copy.deepcopy(model).eval()  # frozen: the prior's soft labels, and the held-back comparison
    teacher = base_model if opts.prior > 0 else None
    model.train()
    _freeze_batchnorm(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=opts.lr,
                            weight_decay=opts.weight_decay)

    photometric = PhotometricConfig.model_validate({}) if opts.photometric else None
    replay = None
    if opts.replay > 0:
        replay = ReplayPool(opts.crop, seed=opts.seed)
        echo(f"replay: {replay.regions} synthetic regions with exact truth rendered in {replay.seconds:.0f} s; "
             f"{opts.replay_batch} crops a step at weight {opts.replay:g}")
    budget = opts.minutes * 60
    echo(f"adapting {base_path.name} on {len(paths)} store(s) for up to {opts.minutes:g} min ({threads} threads, "
         f"{'bf16' if bf16 else 'fp32'}, crops {opts.batch} x {opts.crop} px, prior {opts.prior:g})")
    bar = make_bar(int(budget), "adapt", "s", enabled=progress)
    t0 = time.perf_counter()
    last_log, shown = t0, 0
    ema, losses = None, []
    step, stopped = 0, "time budget"
    try:
        while True:
            elapsed = time.perf_counter() - t0
            if elapsed >= budget:
                break
            if opts.steps is not None and step >= opts.steps:
                stopped = "step budget"
                break
            frac = elapsed / budget if opts.steps is None else step / opts.steps
            lr = opts.lr * (min(1.0, (step + 1) / 20)) * 0.5 * (1 + math.cos(math.pi * frac))
            for g in opt.param_groups:
                g["lr"] = lr
            clean, images, targets = _batch(readers, pairs, opts, rng, photometric)
            replay_truth = None
            if replay is not None:  # one forward over the strokes' crops and replay's (BatchNorm is frozen)
                replay_images, replay_truth = replay.batch(opts.replay_batch, rng)
                if opts.replay_band is not None:
                    replay_truth = void_band(replay_truth, opts.replay_band, ignore=IGNORE_LABEL)
                images = torch.cat([images, replay_images])
            if channels_last:
                clean = clean.contiguous(memory_format=torch.channels_last)
                images = images.contiguous(memory_format=torch.channels_last)
            soft = None
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                if teacher is not None:
                    with torch.inference_mode():
                        soft = teacher(clean).float()
                    soft = soft.clone()
                logits = model(images).float()
            if replay_truth is not None:
                logits, replay_logits = logits[: opts.batch], logits[opts.batch :]
            loss, stroke_loss = _loss(logits, targets, soft, opts.prior, n, opts.balance)
            if opts.crf > 0:
                loss = loss + opts.crf * crf_loss(logits, clean)
            if replay_truth is not None:
                kept = replay_truth != IGNORE_LABEL  # a band may hold no pixel (crops without voids)
                if kept.any():
                    ce = torch.nn.functional.cross_entropy(replay_logits, replay_truth, ignore_index=IGNORE_LABEL,
                                                           reduction="sum")
                    loss = loss + opts.replay * ce / kept.sum()
            if not torch.isfinite(loss):
                raise BigsegError(f"the loss became {loss.item()} at step {step}; lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            value = float(loss.item())
            losses.append(value)
            ema = value if ema is None else 0.97 * ema + 0.03 * value
            now = time.perf_counter()
            bar.update(int(now - t0) - shown)
            shown = int(now - t0)
            bar.set_postfix(step=step, loss=f"{ema:.4f}")
            if now - last_log >= 60:
                bar.write(f"adapt: step {step}, {now - t0:.0f} s, loss {ema:.4f} (strokes {stroke_loss.item():.4f})")
                last_log = now
            if opts.steps is None and _converged(losses, opts.min_steps) and now - t0 >= 0.4 * budget:
                stopped = "converged"
                break
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    if not step:
        raise BigsegError("no training step fitted in the time budget; give more --minutes")
    model = model.to(memory_format=torch.contiguous_format).eval()
    echo(f"adapted in {seconds:.0f} s: {step} steps ({stopped}); loss {losses[0]:.4f} -> {np.mean(losses[-20:]):.4f}")
    offset = void_offset(classes, opts.void_shift)
    model.set_logit_offset(offset)
    if offset is not None:
        echo(f"void logit shifted by {opts.void_shift:+g} (the crops showed voids far more often than a slab holds "
             "them; --void-shift 0: none)")
    rule, rule_record = None, None
    if opts.object_rule:
        rule, rule_record = fit_object_rule(model, readers, classes, opts.tta, before=before)
        if rule is not None and opts.grow_void_edges:
            rule = dataclasses.replace(rule, grow_edges=True)
            rule_record["grow_edges"] = True
        if rule is not None and opts.cut_merged_voids:
            rule = dataclasses.replace(rule, cut_merged=True)
            rule_record["cut_merged"] = True
        echo(_rule_line(rule_record))
    counts = score_held_back({"adapted": model, "base": base_model}, readers, n, rng, opts.tta, {"adapted": rule})
    acc, acc_base = _accuracy(counts["adapted"], classes), _accuracy(counts["base"], classes)
    held_px = {c.name: int(counts["adapted"][c.id, 1]) for c in classes}
    echo("held-back strokes, share of pixels right (base -> adapted): " + ", ".join(
        f"{k} {_pct(acc_base[k])} -> {_pct(acc[k])}" for k in acc if held_px[k]))
    suggestions = suggest_regions(model, paths, classes, n=opts.suggestions)
    profiles = painted_profiles(model, paths)
    result = _save(model, out, base_path, meta, classes, paths, opts, painted, n_strokes, held, acc, acc_base,
                   held_px, suggestions, step, seconds, stopped, command, losses, echo, rule, rule_record, profiles,
                   offset)
    for s in paths:
        _store_suggestions(s, [r for r in suggestions if r["store"] == s], out)
    return result


def void_offset(classes, shift: float) -> list[float] | None:
    """The logit offset that adds ``shift`` to the void class's logit (None where the class table has no void or
    the shift is 0)."""
    ids = concrete_ids(classes)
    if ids is None or shift == 0:
        return None
    offset = [0.0] * len(classes)
    offset[ids["void"]] = float(shift)
    return offset


def painted_profiles(model, stores) -> dict[str, list]:
    """How each slab the model was adapted on looks to its first layers (:func:`bigseg.infer.stability.early_profile`
    on the windows ``bigseg infer``'s check samples); a report of another slab compares its own look with these
    (:func:`bigseg.report.doubt.adapted_doubt`: the held-back strokes speak only for slabs that look alike)."""
    out = {}
    for s in stores:
        h, w = st.open_array(s, "image").shape[:2]
        grid = Grid(h, w, DEFAULT_WINDOW, DEFAULT_OVERLAP)
        out[os.path.abspath(s)] = stability.early_profile(model, s, stability.sample_origins(grid), grid)
    return out


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def _save(model, out: Path, base_path: Path, meta: dict, classes, stores, opts, painted, n_strokes, held, acc,
          acc_base, held_px, suggestions, step, seconds, stopped, command, losses, echo, rule=None,
          rule_record=None, profiles=None, offset=None) -> AdaptResult:
    record = {
        "base": {"file": os.path.abspath(base_path), "sha256": ckpt.file_digest(base_path),
                 "arch": meta["arch"], "description": meta.get("description")},
        "stores": [os.path.abspath(s) for s in stores], "painted_pixels": painted, "strokes": n_strokes,
        "held_back_strokes": held, "held_back_pixels": held_px, "held_back_accuracy": acc,
        "held_back_accuracy_base": acc_base, "minutes_budget": opts.minutes, "seconds": round(seconds, 1),
        "steps": step, "stopped": stopped, "seed": opts.seed, "options": asdict(opts),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": command,
        "suggestions": suggestions, "object_rule_fit": rule_record, "painted_profiles": profiles or {},
        **({"object_rule": rule.to_dict()} if rule is not None else {}),
    }
    keep = {k: v for k, v in meta.items() if k not in ("arch", "arch_kwargs", "classes", "stored_as",
                                                        "confidence_reference", "adapted", "description",
                                                        ckpt.LOGIT_OFFSET)}
    extra = {**keep, "adapted": record, **({ckpt.LOGIT_OFFSET: offset} if offset is not None else {}),
             "trained_on": list(meta.get("trained_on") or []) + [f"strokes painted on {os.path.basename(s)}"
                                                                  for s in stores],
             "description": f"{meta['arch']} adapted by bigseg adapt to strokes on {len(stores)} slab(s), from "
                            f"{base_path.name}"}
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}.pt")
    ckpt.save(tmp, model, arch=meta["arch"], classes=classes, arch_kwargs=meta.get("arch_kwargs"), extra_meta=extra)
    os.replace(tmp, out)
    onnx = None
    if opts.export:
        target = out.with_suffix(".onnx")
        r = export(out, target, "onnx", exporter="legacy", overwrite=True, echo=lambda *a: None)
        onnx = r["path"]
        echo(f"ONNX export verified against PyTorch: {onnx}")
    echo(f"wrote {out}: bigseg infer STORE --model {out} --overwrite")
    return AdaptResult(checkpoint=str(out), onnx=onnx, steps=step, seconds=seconds, stopped=stopped,
                       painted=painted, strokes=n_strokes, held_back_strokes=held, held_back_accuracy=acc,
                       held_back_accuracy_base=acc_base, held_back_pixels=held_px, suggestions=suggestions,
                       loss_first=float(losses[0]), loss_last=float(np.mean(losses[-20:])), object_rule=rule_record)


def _store_suggestions(store: str, regions: list, model: Path) -> None:
    """The suggested regions of ``store`` into its annotation attributes, for the viewer."""
    with ann.write_lock(store):
        a = st.open_array(store, ann.LAYER, "r+")
        a.attrs["suggestions"] = {"model": os.path.abspath(model), "regions": regions,
                                  "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    st.consolidate(store)
