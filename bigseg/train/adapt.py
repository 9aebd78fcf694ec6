"""``bigseg adapt``: fine-tune a model to one lab's concrete from strokes painted on its own slabs, in minutes on a
CPU, and say how well it does on strokes it held back.

What it does, in order:

1. **Strokes** are read from each store's ``annotations`` layer (chunks holding painted pixels only). Each
   stroke is a connected piece of one class's painted pixels (8-connected, found chunk by chunk: a stroke that
   crosses a chunk border counts as two). About a fifth of the strokes of every class (at least one where a class
   has two or more) is **held back** -- chosen by a hash of the stroke's position and ``seed``, so a stroke held
   back once stays held back when more are painted -- never trained on, scored at the end.
2. **Growing** (``grow`` px, 0: off): each training stroke is grown over the connected pixels near it whose
   colour is its class's (``grow_by`` "class": two Gaussians per class, ``colour_components``, a colour going to
   the class whose strokes hold more of it, ``colour_prior``) or that stroke's own ("stroke";
   :func:`bigseg.train.grow.grow_strokes`), and the thin band where two grown classes meet is labelled by the
   nearer colour: strokes sit inside regions, and this puts labels on both sides of the edges they reach.
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
   itself under flips and how unsure it is there (:mod:`bigseg.train.suggest`); the list is stored in the
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
from dataclasses import asdict, dataclass
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
from bigseg.infer.windows import Grid
from bigseg.progress import make_bar
from bigseg.train.adapt_checks import check_inputs
from bigseg.train.adapt_options import AdaptOptions
from bigseg.train.config import PhotometricConfig
from bigseg.train.grow import grow_strokes
from bigseg.train.replay import ReplayPool, void_band
from bigseg.train.strokes import ChunkReader, read_strokes
from bigseg.train.suggest import store_suggestions, suggest_regions
from bigseg.train.window_predict import labels as window_labels

MAX_HELD_WINDOWS = 400
EVAL_WINDOW = 384
MAX_RULE_CHUNKS = 64
"""Painted chunks the object rule's objects are drawn from (evenly spread above it: bounded time on big slabs)."""
RULE_MARGIN = 48
"""Context (px) around a painted chunk when the adapted model labels it for the object rule."""


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
            pred = window_labels(model, image, tta)
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
        labels = window_labels(model, image, tta)
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
            was = window_labels(before, image, tta)
            f, t_side, h_side = _vanished_sides(was, labels, image, void, painted, held_px, first_in_chunk, objects)
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
        store_suggestions(s, [r for r in suggestions if r["store"] == s], out)
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
    # working_pixel_size_um is not kept: the strokes teach the network the scans at their own pixel size
    keep = {k: v for k, v in meta.items() if k not in ("arch", "arch_kwargs", "classes", "stored_as",
                                                        "confidence_reference", "adapted", "description",
                                                        ckpt.LOGIT_OFFSET, "working_pixel_size_um")}
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
