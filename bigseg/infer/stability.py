"""Does the model's answer hold when the view changes? Measured on a sample of windows, after the pass.

The softmax of a model that has never seen a kind of image can be sure of itself and wrong (a UV-fluorescent
section read 0.04 % air for 4.96 %, mean confidence 0.92). Two measurements that do not trust the softmax, on
:data:`SAMPLE` windows spread over the image (deterministic: the same windows for the same image size), each run
once more through the model in its checkpoint (torch, fp32, on a worker; not a second full pass):

- **Views**: the window flipped left-right, top-bottom and transposed, the labels flipped back. A segmentation of
  concrete has no preferred orientation, so labels that change with the view are guesses. Per class: the share
  of the pixels labelled with it in any view that are labelled with it in all of them (the class's IoU among the
  views); ``void_view_disagreement`` = 1 - that for void, and the relative spread of the void pixel count over
  the views (``void_view_spread``: the air content's own wobble).
- **Feature statistics** (``feature_shift``): every batch-norm layer keeps the mean and variance of its input over
  the training data; on the sampled windows each channel's mean is compared with it (in running standard
  deviations, squared, averaged over channels and layers). An image unlike anything the model was trained on
  shifts the statistics of its first layers, whatever the softmax says. ``early_feature_shift`` is the same
  average over the first :data:`EARLY_LAYERS` layers only: those see colour and contrast, while the deep ones
  vary as much between familiar styles as between any views, so averaging them in dilutes the signal (a
  green-dominant copy of a validation slab lifts the first layers' shift 2-20x and the all-layer mean far less;
  benchmarks/feature_shift_layers.py). Models without batch norm give none.

:func:`measure` runs on a worker; :func:`figures` turns its sums into the figures stored beside the softmax
ones in ``labels.attrs["confidence"]`` (bigseg.trust chooses among them on validation slabs).

- **A second opinion** (``second``: another model for the same classes, by default the other bundled model):
  its labels on the same windows. Two networks of different make and training err in partly different places,
  so where they disagree at least one is wrong: ``void_model_disagreement`` = 1 - IoU of their void pixels, and
  ``air_model_gap`` = the difference of their void shares on the sample, in percentage points (the scale of the
  air-content error itself).
"""

from __future__ import annotations

import numpy as np

from bigseg import store as st
from bigseg.checkpoint import load
from bigseg.infer.predictor import scaled_size, working_scale
from bigseg.infer.tasks import read_windows
from bigseg.infer.windows import Grid

SAMPLE = 12
"""Windows measured per image (fewer when the image has fewer)."""

VIEWS = ("hflip", "vflip", "transpose")

EARLY_LAYERS = 4
"""Batch-norm layers (in the order the forward pass runs them) whose shift makes ``early_feature_shift``; chosen on
validation slabs only (benchmarks/RESULTS.md, "A lead for the unfamiliar-image gate"): the first 2 and the first 4
flagged every green-dominant copy and no validation slab left out, the first 8 one, all 14 (light_unet) 13 of 16."""


def sample_origins(grid: Grid, n: int = SAMPLE) -> list[tuple[int, int]]:
    """Up to ``n`` window origins spread evenly over the grid (row-major order, evenly spaced indices)."""
    origins = [(y, x) for y in grid.ys for x in grid.xs]
    if len(origins) <= n:
        return origins
    picks = np.linspace(0, len(origins) - 1, n).round().astype(int)
    return [origins[i] for i in sorted(set(picks.tolist()))]


def _view(x, name: str):
    """The view ``name`` of (B, C, H, W) ``x``; each view is its own inverse."""
    if name == "hflip":
        return x.flip(-1)
    if name == "vflip":
        return x.flip(-2)
    return x.transpose(-1, -2)


def _batch_norms(model) -> list:
    import torch

    return [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) and m.running_mean is not None]


def _channel_z(module, x) -> np.ndarray:
    """The channel means of a batch-norm layer's input ``x``, in that layer's running standard deviations from its
    running means (0: as the training data on average)."""
    import torch

    mean = x.float().mean(dim=(0, 2, 3))
    return ((mean - module.running_mean) / torch.sqrt(module.running_var + module.eps)).cpu().numpy()


def _window(store: str, origin: tuple[int, int], grid: Grid, dev):
    """The window at ``origin`` as the network takes it: (1, 3, h, w) float in [0, 1] on ``dev``."""
    import torch

    window = read_windows(store, (origin,), grid)
    return torch.from_numpy(np.ascontiguousarray(window)).permute(0, 3, 1, 2).to(dev).float().div_(255.0)


def early_profile(model, store: str, origins: list[tuple[int, int]], grid: Grid) -> list[list[float]]:
    """How ``store`` looks to ``model``'s first :data:`EARLY_LAYERS` batch-norm layers: per layer, the channel means
    of their input in running standard deviations (:func:`_channel_z`), averaged over the windows at ``origins``.
    ``bigseg adapt`` keeps it for the slabs it was adapted on; :func:`measure` gives it for every labelled slab;
    :func:`bigseg.report.doubt.profile_distance` compares the two. One forward pass per window."""
    import torch

    bns = _batch_norms(model)[:EARLY_LAYERS]
    dev = next(model.parameters()).device
    seen: list[np.ndarray] = []
    per_window: list[list[np.ndarray]] = []
    handles = [b.register_forward_hook(lambda m, i, _o: seen.append(_channel_z(m, i[0]))) for b in bns]
    try:
        for origin in origins:
            with torch.inference_mode():
                model(_window(store, origin, grid, dev))
            per_window.append(seen[: len(bns)])
            seen.clear()
    finally:
        for h in handles:
            h.remove()
    return _averaged(per_window)


def _averaged(per_window: list[list[np.ndarray]]) -> list[list[float]]:
    """A profile from its windows' channel means (per window, one array per layer): their mean per layer, rounded to
    4 decimals (what is stored); [] for no window. The one way :func:`early_profile` and :func:`measure` make it."""
    if not per_window:
        return []
    means = [np.round(np.stack([w[k] for w in per_window]).mean(axis=0), 4) for k in range(len(per_window[0]))]
    return [[float(v) for v in np.asarray(m).ravel()] for m in means]


def measure(checkpoint: str, store: str, origins: list[tuple[int, int]], grid: Grid, threads: int = 0,
            device: str = "cpu", second: str | None = None) -> dict:
    """Sums over the sampled windows (see the module doc): per class, pixels labelled with it in all views and in
    any view; void pixel counts per view; feature shift sums. Runs on a worker (needs torch)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    model, meta = load(checkpoint)
    dev = torch.device("cuda" if device == "cuda" and torch.cuda.is_available() else "cpu")
    model = model.to(dev)
    scale = working_scale(meta, st.pixel_size_um(st.open_store(store)))  # the windows as the pass showed them
    n = len(meta["classes"])
    names = [c["name"] for c in meta["classes"]]
    shifts: list[float] = []
    zs: list[np.ndarray] = []

    def hook(module, inputs, _output):
        z = _channel_z(module, inputs[0])
        shifts.append(float((z.astype(np.float64) ** 2).mean()))
        if len(zs) < EARLY_LAYERS:
            zs.append(z)

    other = None
    if second is not None:
        model2, meta2 = load(second)
        same_classes = [c["name"] for c in meta2["classes"]] == names  # else no opinion on these classes
        other = model2.to(dev) if same_classes else None
    pair_all = np.zeros(n, np.int64)
    pair_any = np.zeros(n, np.int64)
    pair_counts = np.zeros(n, np.int64)
    bns = _batch_norms(model)
    early_windows: list[list[np.ndarray]] = []
    all_views = np.zeros(n, np.int64)
    any_view = np.zeros(n, np.int64)
    counts = np.zeros((1 + len(VIEWS), n), np.int64)
    feature_sum, early_sum, feature_n = 0.0, 0.0, 0
    for origin in origins:
        t = _window(store, origin, grid, dev)
        if scale != 1.0:
            size = (scaled_size(t.shape[2], scale), scaled_size(t.shape[3], scale))
            t = torch.nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=False)
        handles = [b.register_forward_hook(hook) for b in bns]
        try:
            with torch.inference_mode():
                labels = [model(t).argmax(1)]
        finally:
            for h in handles:
                h.remove()
        if shifts:
            feature_sum += float(np.mean(shifts))
            early_sum += float(np.mean(shifts[:EARLY_LAYERS]))
            feature_n += 1
            shifts.clear()
            early_windows.append(list(zs))
            zs.clear()
        with torch.inference_mode():
            for v in VIEWS:
                labels.append(_view(model(_view(t, v)).argmax(1)[:, None], v)[:, 0])
            if other is not None:
                theirs = other(t).argmax(1).cpu().numpy()
                mine = labels[0].cpu().numpy()
                for c in range(n):
                    a, b = mine == c, theirs == c
                    pair_all[c] += int((a & b).sum())
                    pair_any[c] += int((a | b).sum())
                    pair_counts[c] += int(b.sum())
        stack = torch.stack(labels).cpu().numpy()  # (views, 1, h, w)
        for c in range(n):
            hit = stack == c
            all_views[c] += int(hit.all(axis=0).sum())
            any_view[c] += int(hit.any(axis=0).sum())
            counts[:, c] += hit.reshape(len(labels), -1).sum(axis=1)
    return {"windows": len(origins), "classes": names, "all_views": all_views.tolist(),
            "any_view": any_view.tolist(), "counts": counts.tolist(),
            "feature_shift": feature_sum / feature_n if feature_n else None,
            "early_feature_shift": early_sum / feature_n if feature_n else None,
            "early_profile": _averaged(early_windows) or None,
            "pixels": int(counts[0].sum()),
            "second": None if other is None else {"model": second, "all": pair_all.tolist(), "any": pair_any.tolist(),
                                                  "counts": pair_counts.tolist()}}


def figures(sums: dict, void: int | None) -> dict:
    """The stored figures from :func:`measure`'s sums: per class view agreement, and for concrete the void ones."""
    out: dict = {"sample_windows": sums["windows"], "views": list(VIEWS)}
    agreement = {}
    for c, name in enumerate(sums["classes"]):
        if sums["any_view"][c]:
            agreement[name] = sums["all_views"][c] / sums["any_view"][c]
    out["view_agreement"] = agreement
    for key in ("feature_shift", "early_feature_shift"):
        if sums.get(key) is not None:
            out[key] = float(sums[key])
    if sums.get("early_profile"):
        out["early_profile"] = sums["early_profile"]  # how the slab looks, for an adapted model's check
    if void is not None:
        counts = np.asarray(sums["counts"], float)[:, void]
        anyv = sums["any_view"][void]
        out["void_view_disagreement"] = 1.0 - sums["all_views"][void] / anyv if anyv else 0.0
        out["void_view_spread"] = float(counts.std() / max(counts.mean(), 1.0))
    pair = sums.get("second")
    if pair is not None:
        out["second_model"] = pair["model"]
        if void is not None:
            anyv = pair["any"][void]
            out["void_model_disagreement"] = 1.0 - pair["all"][void] / anyv if anyv else 0.0
            mine = sums["counts"][0][void]
            out["air_model_gap"] = abs(mine - pair["counts"][void]) / max(sums["pixels"], 1) * 100
    return out
