"""Strokes grown into training labels: each training stroke of ``bigseg adapt`` is grown over the connected pixels
near it whose colour is its class's (Gaussians per class fitted on the strokes' colours) or that stroke's own, and
the thin band where two grown classes meet is labelled too, so the fine-tune learns where one class ends. Why each
rule is as it is, measured: benchmarks/RESULTS.md ("What the high air was", "Two colour models", "Void edges in the
grown labels", "Void strokes on a paste-grey filling")."""

from __future__ import annotations

import numpy as np

from bigseg import annotations as ann
from bigseg import store as st
from bigseg.classes import IGNORE_LABEL
from bigseg.train.adapt_options import COLOUR_COMPONENTS, COLOUR_PRIOR, EDGES
from bigseg.train.strokes import ChunkReader

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


def _each_distance(flat: np.ndarray, model: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """(k, n) squared Mahalanobis distances of colours ``flat`` (n, 3) to each of a class's k Gaussians."""
    return np.stack([np.einsum("ij,jk,ik->i", flat - m, inv, flat - m) for m, inv in model])


def _distance(flat: np.ndarray, model: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Squared Mahalanobis distance of colours ``flat`` (n, 3) to the nearest component of a class's model."""
    return _each_distance(flat, model).min(axis=0)


def _log_weights(colours: dict[int, np.ndarray], models: dict[int, list], painted: dict[int, int]
                 ) -> dict[int, np.ndarray]:
    """Per class: the log of the number of stroke pixels each of its Gaussians models (``painted[c]`` stroke pixels,
    shared by the Gaussian each drawn colour is nearest to)."""
    out = {}
    for c, model in models.items():
        share = np.bincount(_each_distance(colours[c], model).argmin(axis=0), minlength=len(model)) / len(colours[c])
        out[c] = np.log(np.maximum(share * painted[c], 0.5))
    return out


def _density_offsets(model: list[tuple[np.ndarray, np.ndarray]], log_weight: np.ndarray) -> np.ndarray:
    """Per Gaussian of a class: what turns its squared Mahalanobis distance into -2 log of (stroke pixels x its
    density), up to a constant shared by all: + log det of the covariance - 2 log weight. Lower is likelier."""
    return np.array([-np.linalg.slogdet(inv)[1] - 2.0 * w for (_, inv), w in zip(model, log_weight, strict=True)])


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
    offsets = None  # colour_prior "strokes": per class, each Gaussian's term beside its distance
    if colour_prior == "strokes":
        log_weights = _log_weights(colours, models, {c: len(strokes.train[c]) for c in classes})
        offsets = {c: _density_offsets(models[c], log_weights[c]) for c in classes}
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
        each = [_each_distance(flat, models[c]) for c in classes]
        d2 = np.stack([e.min(axis=0) for e in each]).reshape(len(classes), *block.shape)
        # which class a colour is nearest: least distance, or (colour_prior "strokes") highest weighted density
        score = d2 if offsets is None else np.stack(
            [(e + offsets[c][:, None]).min(axis=0) for c, e in zip(classes, each, strict=True)]).reshape(d2.shape)
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
