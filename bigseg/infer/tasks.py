"""What runs on the workers: window batches through the model, and label chunks blended from them.

- :func:`batch_logits`: one batch of windows read from the store's ``image`` and run through the model; the
  blend-weighted float16 logits come back (or are read back from a spill file written by an earlier stripe).
- :func:`blend_block`: one label chunk: the weighted logits of every window touching it summed in window order
  (so a pixel's value does not depend on the chunk it falls in), arg-maxed, written with its confidence (and
  probabilities), then its completion marker.
- :func:`rule_block`: with an adapted model's void-object rule, one label chunk judged by it, once the network's
  labels around it are all written (read :data:`bigseg.object_rule.HALO` px around the chunk), then its marker.
- :func:`pyramid_strip`: the label pyramid of a strip of chunk rows, once they are all written.
"""

from __future__ import annotations

import io
import json
from typing import Any, cast

import numpy as np

from bigseg import object_rule
from bigseg import store as st
from bigseg.errors import BigsegError
from bigseg.infer import confidence
from bigseg.infer.outputs import LABEL_PYRAMID, NETWORK_LABELS, staged
from bigseg.infer.plan import Bounds, Origin, Source
from bigseg.infer.predictor import ModelSpec, predict, weight_on
from bigseg.infer.windows import Grid
from bigseg.pyramid import write_strip_of
from bigseg.store import files


def read_windows(store: str, origins: tuple[Origin, ...], grid: Grid) -> np.ndarray:
    """The uint8 windows (n, win_h, win_w, 3) at ``origins`` (one window row): their bounding box is read in one
    call, so each image chunk is decoded once per batch rather than once per window touching it."""
    image = st.open_array(store, "image")
    y0, y1 = min(y for y, _ in origins), max(y for y, _ in origins) + grid.win_h
    x0, x1 = min(x for _, x in origins), max(x for _, x in origins) + grid.win_w
    box = st.read(image, slice(y0, y1), slice(x0, x1))
    return np.stack([box[y - y0 : y - y0 + grid.win_h, x - x0 : x - x0 + grid.win_w] for (y, x) in origins])


def predict_batch(spec: ModelSpec, store: str, origins: tuple[Origin, ...], grid: Grid) -> Any:
    """Blend-weighted float16 logits (n, C, win_h, win_w) of the windows at ``origins``."""
    return predict(spec, read_windows(store, origins, grid), grid.weight())


def batch_logits(spec: ModelSpec, store: str, origins: tuple[Origin, ...], grid: Grid, spill: str | None = None,
                 keep_from: int = 0, reuse: bool = False) -> Any:
    """A batch's weighted logits: read back from its spill file (``reuse``, when the file is there), else computed
    (and, when ``spill`` is given, written there: each window's columns from image column ``keep_from`` on)."""
    if reuse and spill and files.exists(spill):
        saved = np.load(io.BytesIO(files.read_bytes(spill)))
        out = None
        for i in range(len(origins)):
            part = saved[f"w{i}"]
            if out is None:
                out = np.zeros((len(origins), part.shape[0], grid.win_h, grid.win_w), part.dtype)
            out[i, :, :, grid.win_w - part.shape[2] :] = part
        return out
    out = predict_batch(spec, store, origins, grid)
    if spill:
        host = out.cpu().numpy() if type(out).__module__.startswith("torch") else out
        parts = {f"w{i}": host[i, :, :, min(max(0, keep_from - wx), grid.win_w) :] for i, (_, wx) in enumerate(origins)}
        buffer = io.BytesIO()
        np.savez(buffer, **cast(dict[str, Any], parts))
        try:
            files.write_whole(spill, buffer.getvalue())  # whole or absent
        except OSError as exc:
            raise BigsegError(f"{store}: writing window logits for the next stripe to {spill} failed ({exc})") from exc
    return out


def blend_sum(bounds: Bounds, grid: Grid, sources: tuple[Source, ...], n_classes: int, batches) -> tuple:
    """(sum of weighted logits (C, h, w) float32, sum of weights (h, w)) over the chunk, in window order.

    The batches hold logits already multiplied by the window weight, so blending is a sum (float32, ascending
    window order: the same order for every chunking). numpy arrays (ONNX Runtime's logits, spill files)."""
    y0, y1, x0, x1 = bounds
    acc = np.zeros((n_classes, y1 - y0, x1 - x0), np.float32)
    wsum = np.zeros((y1 - y0, x1 - x0), np.float32)
    weight = grid.weight()
    for src in sources:
        wy, wx = src.origin
        a0, a1 = max(y0, wy), min(y1, wy + grid.win_h)
        b0, b1 = max(x0, wx), min(x1, wx + grid.win_w)
        target = acc[:, a0 - y0 : a1 - y0, b0 - x0 : b1 - x0]
        np.add(target, batches[src.dep][src.slot, :, a0 - wy : a1 - wy, b0 - wx : b1 - wx], out=target)
        wsum[a0 - y0 : a1 - y0, b0 - x0 : b1 - x0] += weight[a0 - wy : a1 - wy, b0 - wx : b1 - wx]
    return acc, wsum


def blend_torch(bounds: Bounds, grid: Grid, sources: tuple[Source, ...], n_classes: int, batches, f: int,
                probabilities: bool) -> tuple:
    """:func:`blend_sum`, arg-max, probabilities and confidence with torch on the logits' device (a GPU's logits
    never leave it: only uint8 labels, the small confidence map and a few sums come back). The same additions in
    the same order as the numpy path, so the labels are the same bytes.

    Returns (labels uint8, confidence map uint8, measurements, probabilities uint8 or None) as numpy arrays."""
    import torch

    device = next(b.device for b in batches if isinstance(b, torch.Tensor))
    batches = [b if isinstance(b, torch.Tensor) else torch.from_numpy(b).to(device) for b in batches]
    y0, y1, x0, x1 = bounds
    with torch.inference_mode():
        acc = torch.zeros((n_classes, y1 - y0, x1 - x0), dtype=torch.float32, device=device)
        wsum = torch.zeros((y1 - y0, x1 - x0), dtype=torch.float32, device=device)
        weight = weight_on(grid.weight(), device)
        for src in sources:
            wy, wx = src.origin
            a0, a1 = max(y0, wy), min(y1, wy + grid.win_h)
            b0, b1 = max(x0, wx), min(x1, wx + grid.win_w)
            acc[:, a0 - y0 : a1 - y0, b0 - x0 : b1 - x0] += batches[src.dep][src.slot, :, a0 - wy : a1 - wy,
                                                                             b0 - wx : b1 - wx]
            wsum[a0 - y0 : a1 - y0, b0 - x0 : b1 - x0] += weight[a0 - wy : a1 - wy, b0 - wx : b1 - wx]
        if not bool(torch.isfinite(acc).all()):
            raise BigsegError(_NON_FINITE.format(y=y0, x=x0))
        labels = acc.argmax(dim=0).to(torch.uint8)
        prob = torch.softmax(acc / wsum, dim=0)
        top = prob.amax(dim=0)
        conf_map = torch.nn.functional.avg_pool2d(top[None, None], f, ceil_mode=True, count_include_pad=False)[0, 0]
        measured = {
            "pixels": int(top.numel()),
            "sum_confidence": float(top.sum(dtype=torch.float64)),
            "uncertain": int((top < confidence.UNCERTAIN_BELOW).sum()),
            "soft_counts": [float(v) for v in prob.sum(dim=(1, 2), dtype=torch.float64).tolist()],
            "hard_counts": [int(v) for v in torch.bincount(labels.flatten().long(), minlength=n_classes)[:n_classes]],
        }
        probs = (prob * 255).round().to(torch.uint8).cpu().numpy() if probabilities else None
        return (labels.cpu().numpy(), (conf_map * 255).round().to(torch.uint8).cpu().numpy(), measured, probs)


_NON_FINITE = ("the model gave non-finite logits (NaN or inf) around y={y}, x={x}; its weights are broken (a "
               "checkpoint of a diverged training?)")


def blend_numpy(bounds: Bounds, grid: Grid, sources: tuple[Source, ...], n_classes: int, batches, f: int,
                probabilities: bool) -> tuple:
    """:func:`blend_torch` with numpy (ONNX Runtime workers never import torch)."""
    y0, _, x0, _ = bounds
    acc, wsum = blend_sum(bounds, grid, sources, n_classes, batches)
    if not np.isfinite(acc).all():
        raise BigsegError(_NON_FINITE.format(y=y0, x=x0))
    labels = np.argmax(acc, axis=0).astype(np.uint8)
    prob = confidence.softmax(acc, wsum)
    conf_map, measured = confidence.measure(prob, labels, f)
    return labels, conf_map, measured, (np.rint(prob * 255).astype(np.uint8) if probabilities else None)


def blend_block(store: str, bounds: Bounds, grid: Grid, sources: tuple[Source, ...], marker: str,
                probabilities: bool, n_classes: int, labels_to: str, *batches) -> None:
    """Blend the windows touching ``bounds`` and write the chunk: labels (into the staged array ``labels_to``),
    confidence (and probabilities), then its completion marker holding the chunk's measurements. Torch tensors
    (the torch backend, CPU or GPU) blend with torch on their device, numpy arrays with numpy."""
    y0, y1, x0, x1 = bounds
    conf = st.open_array(store, staged("confidence"), "r+")
    f = int(st.attr(conf, "factor"))
    on_device = any(type(b).__module__.startswith("torch") for b in batches)  # without importing torch
    blend = blend_torch if on_device else blend_numpy
    try:
        labels, conf_map, measured, probs = blend(bounds, grid, sources, n_classes, batches, f, probabilities)
    except BigsegError as exc:
        raise BigsegError(f"{store}: {exc}") from None
    try:
        st.open_array(store, staged(labels_to), "r+")[y0:y1, x0:x1] = labels
        conf[y0 // f : y0 // f + conf_map.shape[0], x0 // f : x0 // f + conf_map.shape[1]] = conf_map
        if probs is not None:
            st.open_array(store, staged("probabilities"), "r+")[:, y0:y1, x0:x1] = probs
        # a marker is whole or absent: the chunk counts as done only with its figures
        files.write_whole(marker, json.dumps(measured).encode())
    except OSError as exc:
        raise BigsegError(f"{store}: writing the labels chunk at y={y0}, x={x0} failed ({exc})") from exc


def rule_block(store: str, bounds: Bounds, rule: dict, marker: str, n_classes: int) -> None:
    """Judge the chunk ``bounds`` with an adapted model's void-object rule (:mod:`bigseg.object_rule`): the
    network's labels (all written: this pass starts after the network's) and the image are read
    :data:`~bigseg.object_rule.HALO` px around it, so each object is judged whole, as on the whole image; the
    chunk goes into the staged ``labels``, then its marker with the counts of the labels written and of the
    objects and pixels the rule relabelled (and, with a rule that grows the kept voids to their edges, the pixels
    grown)."""
    y0, y1, x0, x1 = bounds
    network = st.open_array(store, staged(NETWORK_LABELS))
    height, width = network.shape
    h = object_rule.HALO
    wy, wx = slice(max(y0 - h, 0), min(y1 + h, height)), slice(max(x0 - h, 0), min(x1 + h, width))
    labels = st.read(network, wy, wx)
    image = st.read(st.open_array(store, "image"), wy, wx)
    inner = (slice(y0 - wy.start, y1 - wy.start), slice(x0 - wx.start, x1 - wx.start))
    out, counts = object_rule.judge(object_rule.ObjectRule.from_dict(rule), labels, image, inner=inner)
    measured = {"hard_counts": confidence.hard_counts(out, n_classes), **counts}
    try:
        st.open_array(store, staged("labels"), "r+")[y0:y1, x0:x1] = out
        files.write_whole(marker, json.dumps(measured).encode())
    except OSError as exc:
        raise BigsegError(f"{store}: writing the labels chunk at y={y0}, x={x0} failed ({exc})") from exc


def pyramid_strip(store: str, y0: int, y1: int, factors: list[int], n_classes: int, *after) -> None:
    """The staged label pyramid of rows y0:y1 (all their chunks written). ``after``: the previous strip's task
    (its result is None), so that strips sharing chunks of the coarser levels are written one after another."""
    try:
        write_strip_of(store, staged("labels"), staged(LABEL_PYRAMID), y0, y1, factors, n_classes)
    except OSError as exc:
        raise BigsegError(f"{store}: writing the label pyramid at y={y0} failed ({exc})") from exc
