"""Training losses beyond plain cross-entropy, for the rare class (air voids are 2–8 % of a section's pixels and
their boundaries decide the spacing factor): the field's usual answers, as in the pytorch-segmentation project.

Every loss takes logits (B, C, H, W) and labels (B, H, W) and leaves out the pixels labelled ``ignore_index``
(their value and their gradient). A config names one loss or a weighted sum (``loss:`` in the training config,
:class:`bigseg.train.config.LossTerm`):

- ``cross_entropy``: per-pixel cross-entropy, with the config's ``class_weights``.
- ``focal`` (Lin et al. 2017): cross-entropy scaled by ``(1 - p_true) ** gamma``, so the pixels already right
  count less; ``gamma: 0`` is cross-entropy. ``class_weights`` act as the alpha weights.
- ``dice``: 1 - the soft Dice coefficient per class (softmax probabilities against one-hot labels over the
  batch), averaged over the classes present in the batch's labels; with hard 0/1 predictions it is exactly
  1 - Dice. A small class counts as much as a large one.
- ``lovasz`` (Berman et al. 2018, Lovász-softmax): the convex surrogate of 1 - IoU per class (the errors sorted,
  weighted by the Lovász extension's gradient of the Jaccard loss), averaged over the classes present; with hard
  0/1 predictions it is exactly 1 - IoU.
- ``ohem``: cross-entropy over the hard pixels only: those whose probability of the true class is below
  ``threshold``, and at least ``min_kept`` of the valid pixels (the hardest first).

:func:`distill` is not one of them: it compares the model with a frozen teacher rather than with the truth (the
training config's ``distill:``, added to the loss above). Nor is :func:`gated_crf`: it needs no label at all, only
the image (``bigseg adapt --crf``: strokes label the inside of regions, and this carries them to the edges).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

NAMES = ("cross_entropy", "focal", "dice", "lovasz", "ohem")

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _valid(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int):
    """Probabilities (N, C) and labels (N,) of the pixels not ignored, flattened over the batch."""
    c = logits.shape[1]
    probs = logits.float().softmax(1).permute(0, 2, 3, 1).reshape(-1, c)
    flat = labels.reshape(-1)
    keep = flat != ignore_index
    return probs[keep], flat[keep]


def _zero(logits: torch.Tensor) -> torch.Tensor:
    return logits.sum() * 0.0  # no valid pixel: zero, and a gradient of zeros rather than none


def cross_entropy(logits, labels, ignore_index: int = 255, weight: torch.Tensor | None = None) -> torch.Tensor:
    if not (labels != ignore_index).any():
        return _zero(logits)
    return F.cross_entropy(logits.float(), labels, weight=weight, ignore_index=ignore_index)


def focal(logits, labels, ignore_index: int = 255, weight: torch.Tensor | None = None,
          gamma: float = 2.0) -> torch.Tensor:
    valid = labels != ignore_index
    if not valid.any():
        return _zero(logits)
    logp = F.log_softmax(logits.float(), 1)
    safe = labels.clamp(0, logits.shape[1] - 1).unsqueeze(1)
    logp_true = logp.gather(1, safe).squeeze(1)[valid]
    loss = -((1 - logp_true.exp()) ** gamma) * logp_true
    if weight is not None:
        w = weight[safe.squeeze(1)[valid]]
        return (w * loss).sum() / w.sum().clamp_min(1e-12)
    return loss.mean()


def dice(logits, labels, ignore_index: int = 255, eps: float = 1.0) -> torch.Tensor:
    probs, flat = _valid(logits, labels, ignore_index)
    if flat.numel() == 0:
        return _zero(logits)
    onehot = F.one_hot(flat, probs.shape[1]).to(probs.dtype)
    present = onehot.sum(0) > 0
    inter = (probs * onehot).sum(0)
    total = probs.sum(0) + onehot.sum(0)
    per_class = 1 - (2 * inter + eps) / (total + eps)
    return per_class[present].mean()


def _lovasz_grad(fg_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss at the sorted errors (Berman et al., Alg. 1)."""
    gts = fg_sorted.sum()
    intersection = gts - fg_sorted.cumsum(0)
    union = gts + (1 - fg_sorted).cumsum(0)
    jaccard = 1 - intersection / union
    if fg_sorted.numel() > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def lovasz(logits, labels, ignore_index: int = 255) -> torch.Tensor:
    probs, flat = _valid(logits, labels, ignore_index)
    if flat.numel() == 0:
        return _zero(logits)
    losses = []
    for c in range(probs.shape[1]):
        fg = (flat == c).to(probs.dtype)
        if fg.sum() == 0:
            continue
        errors = (fg - probs[:, c]).abs()
        errors_sorted, order = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, _lovasz_grad(fg[order])))
    return torch.stack(losses).mean()


def ohem(logits, labels, ignore_index: int = 255, weight: torch.Tensor | None = None, threshold: float = 0.7,
         min_kept: float = 0.1) -> torch.Tensor:
    valid = labels != ignore_index
    if not valid.any():
        return _zero(logits)
    per_pixel = F.cross_entropy(logits.float(), labels, weight=weight, ignore_index=ignore_index,
                                reduction="none")[valid]
    p_true = (-F.cross_entropy(logits.float(), labels, ignore_index=ignore_index, reduction="none")[valid]).exp()
    keep = max(1, int(min_kept * per_pixel.numel()))
    hard = p_true < threshold
    if int(hard.sum()) >= keep:
        return per_pixel[hard].mean()
    return per_pixel.topk(keep).values.mean()


def distill(logits: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255,
            where: str = "agree", temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher || model) per pixel, averaged over the labelled pixels (``where="all"``) or over those where the
    teacher's label is the truth's (``"agree"``: what it already knows, so its mistakes are learnt from the truth
    alone), both distributions softened by ``temperature`` and the result scaled by its square (Hinton et al.)."""
    keep = labels != ignore_index
    if where == "agree":
        keep = keep & (teacher.argmax(1) == labels)
    if not bool(keep.any()):
        return _zero(logits)
    t = temperature
    log_p = F.log_softmax(logits.float() / t, 1).permute(0, 2, 3, 1)[keep]
    log_q = F.log_softmax(teacher.float() / t, 1).permute(0, 2, 3, 1)[keep]
    return (log_q.exp() * (log_q - log_p)).sum(1).mean() * (t * t)


def gated_crf(probs: torch.Tensor, image: torch.Tensor, radius: int = 4, sigma_xy: float = 3.0,
              sigma_rgb: float = 0.08) -> torch.Tensor:
    """The local CRF loss of weakly supervised segmentation (Tang et al., ECCV 2018, "On regularized losses";
    Obukhov et al. 2019, "Gated CRF loss"): over every pair of pixels i, j at most ``radius`` px apart,
    ``w_ij * (1 - <P_i, P_j>)`` with ``w_ij = exp(-|i - j|^2 / 2 sigma_xy^2 - |I_i - I_j|^2 / 2 sigma_rgb^2)``,
    averaged over each pixel's neighbourhood (as a share of its spatial weight) and over the pixels: two near pixels
    of one colour pay for different labels, two across a colour edge hardly do -- so the labels learnt inside
    painted regions are pulled out to the image's edges. ``probs``: softmax (B, C, H, W); ``image``: (B, 3, H, W)
    in [0, 1]. Zero where the labels are the same one-hot everywhere; at most 1 (every neighbour of one colour
    labelled otherwise)."""
    b, _, h, w = probs.shape
    total, kernel = probs.new_zeros(()), 0.0
    for dy in range(0, radius + 1):
        for dx in range(-radius, radius + 1):
            if (dy == 0 and dx <= 0) or dy * dy + dx * dx > radius * radius:
                continue  # each unordered pair once
            ya, yb = slice(0, h - dy), slice(dy, h)
            xa, xb = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
            colour = (image[:, :, ya, xa] - image[:, :, yb, xb]).pow(2).sum(1)
            near = math.exp(-(dy * dy + dx * dx) / (2 * sigma_xy**2))
            weight = torch.exp(-colour / (2 * sigma_rgb**2)) * near
            agree = (probs[:, :, ya, xa] * probs[:, :, yb, xb]).sum(1)
            total = total + (weight * (1 - agree)).sum()
            kernel += near
    return total / (kernel * b * h * w)  # per pixel, as a share of its neighbourhood's weight


def _term(t, ignore_index: int, weight: torch.Tensor | None) -> LossFn:
    """One loss term as a function of (logits, target), its settings bound."""
    if t.name == "focal":
        return lambda x, y: focal(x, y, ignore_index, weight, t.gamma)
    if t.name == "dice":
        return lambda x, y: dice(x, y, ignore_index)
    if t.name == "lovasz":
        return lambda x, y: lovasz(x, y, ignore_index)
    if t.name == "ohem":
        return lambda x, y: ohem(x, y, ignore_index, weight, t.threshold, t.min_kept)
    return lambda x, y: cross_entropy(x, y, ignore_index, weight)


def build_loss(terms: Sequence, ignore_index: int = 255, class_weights: Sequence[float] | None = None,
               device: str | torch.device = "cpu") -> LossFn:
    """The training loss: the weighted sum of ``terms`` (:class:`bigseg.train.config.LossTerm`; empty or None:
    cross-entropy). ``class_weights`` go to the cross-entropy, focal and OHEM terms."""
    weight = torch.tensor(list(class_weights), dtype=torch.float32, device=device) if class_weights else None
    parts: list[tuple[float, LossFn]] = []
    for t in terms or ():
        if t.name not in NAMES:
            raise ValueError(f"unknown loss {t.name!r}; choose from {', '.join(NAMES)}")
        parts.append((float(t.weight), _term(t, ignore_index, weight)))
    if not parts:
        return lambda x, y: cross_entropy(x, y, ignore_index, weight)

    def total(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return sum((w * fn(x, y) for w, fn in parts), torch.zeros((), device=x.device))

    return total
