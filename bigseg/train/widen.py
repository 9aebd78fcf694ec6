"""A wider light U-Net that starts as the narrower one it is made from (Net2WiderNet, Chen et al. 2016).

Why: #29 asks whether the bundled light U-Net (width 16) lacks the capacity to read the classic generator's voids
without losing the other styles (benchmarks/RESULTS.md, "A default that keeps what it knows": four fine-tuning
rounds traded one for the other). Training a wider network from scratch costs what the bundled one cost, many hours
of this CPU; widening the trained one costs nothing: each layer's new channels are copies of old ones, and the next
layer reads each copy with its weights divided among the copies, so the wider network computes the same function.
Fine-tuning then starts from the bundled model's answers with more room to learn.

``model.init`` with a narrower light_unet checkpoint than ``model.width`` does this (bigseg.train.loop). New
channel ``j`` of a layer with ``n`` old channels copies old channel ``j mod n``; with ``noise`` > 0 the convolution
weights of every widened layer get Gaussian noise of that size relative to the layer's weight spread, since exact
copies receive identical gradients and would stay copies for ever.
"""

from __future__ import annotations

import numpy as np
import torch

_PREFIX = "net."
WIDEN_NOISE = 0.01
"""The noise ``model.init`` widens with: relative to each layer's weight spread; on the bundled model at width 40 it
moved logits by at most 0.04 and no label of a test crop."""


def _channels(width: int) -> list[int]:
    return [width, width * 2, width * 4, width * 8]


def _layers(old: int, new: int) -> list[tuple[str, list[tuple[int, int]], tuple[int, int]]]:
    """Each conv + batch-norm block of the light U-Net: (its key prefix, the (old, new) sizes of the tensors its input
    concatenates, its output's (old, new) size). The RGB input (3, 3) is never widened."""
    co, cn = _channels(old), _channels(new)
    rgb = (3, 3)
    size = list(zip(co, cn, strict=True))
    layers = [("stem.0", [rgb], size[0]), ("stem.1", [size[0]], size[0])]
    for i in range(3):
        layers += [(f"down.{i}.0", [size[i]], size[i + 1]), (f"down.{i}.1", [size[i + 1]], size[i + 1])]
    layers += [("bottom.0", [size[3]], size[3]), ("bottom.1", [size[3]], size[3])]
    for k, i in enumerate(range(3, -1, -1)):  # up: cat([y, skip]); y has the size of the stage below
        layers.append((f"up.{k}", [size[min(i + 1, 3)], size[i]], size[i]))
    return layers


def _copies(old: int, new: int) -> np.ndarray:
    """For each of ``new`` channels, the old channel it copies."""
    return np.arange(new) % old


def _input_map(parts: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """(old input channel of each new input channel, how many new channels read it) over a concatenated input."""
    src, offset = [], 0
    for o, n in parts:
        src.append(_copies(o, n) + offset)
        offset += o
    index = np.concatenate(src)
    return index, np.bincount(index, minlength=offset)[index]


def _read_widened(weight: torch.Tensor, parts: list[tuple[int, int]]) -> torch.Tensor:
    """A convolution weight (out, in, kh, kw) reading the widened input: each new input channel takes its old
    channel's weights, shared among the copies of that channel."""
    cols, shared = _input_map(parts)
    return weight.float()[:, torch.as_tensor(cols)] / torch.as_tensor(shared, dtype=torch.float32).view(1, -1, 1, 1)


def widen_light_unet(state: dict, old: int, new: int, noise: float = 0.0, seed: int = 0) -> dict:
    """A checkpoint's state dict for a light U-Net of width ``new`` from one of width ``old`` (``new`` >= ``old``):
    the same function when ``noise`` is 0 (see the module's docstring). Keys outside the U-Net's trunk (the input
    normalisation, a refine head, a logit offset) are kept as they are."""
    if new < old:
        raise ValueError(f"cannot widen a light U-Net from width {old} to the narrower {new}")
    gen = torch.Generator().manual_seed(seed)
    out = dict(state)
    for name, parts, (o_out, n_out) in _layers(old, new):
        key = f"{_PREFIX}{name}"
        rows = torch.as_tensor(_copies(o_out, n_out))
        w = _read_widened(state[f"{key}.0.weight"][rows], parts)
        if noise > 0 and n_out > o_out:
            w = w + noise * float(w.std()) * torch.randn(w.shape, generator=gen)
        out[f"{key}.0.weight"] = w.to(state[f"{key}.0.weight"].dtype)
        for p in ("weight", "bias", "running_mean", "running_var"):
            out[f"{key}.1.{p}"] = state[f"{key}.1.{p}"][rows].clone()
    head = state[f"{_PREFIX}head.weight"]
    out[f"{_PREFIX}head.weight"] = _read_widened(head, [(old, new)]).to(head.dtype)
    return out
