"""The learning-rate finder (Smith 2017, as fastai users know it): a short run with the learning rate growing
exponentially from ``start`` to ``end``; the loss is smoothed (exponential average, bias-corrected) and the run
stops once it exceeds four times its best. The suggestion is the learning rate where the smoothed loss falls
fastest (steepest descent against log learning rate), before its minimum and after the first tenth of the sweep
(where the average is still settling). The model, data, augmentation and
optimizer are the config's; nothing of the run is written except ``OUT/lr-finder.png`` and ``OUT/lr-finder.json``
(no checkpoint: the real run starts from scratch afterwards).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from bigseg.errors import BigsegError
from bigseg.progress import make_bar
from bigseg.results import LrSweepResult


class _NoSchedule:
    def step(self):
        pass


def suggest(lrs: list[float], losses: list[float]) -> float | None:
    """Learning rate of the steepest descent of the smoothed loss before its minimum (None if it never falls)."""
    skip = max(3, len(losses) // 10)  # the first points: the average has barely started
    lo = int(np.argmin(losses))
    if lo - skip < 2:
        return None
    slope = np.gradient(np.asarray(losses[skip : lo + 1]), np.log(np.asarray(lrs[skip : lo + 1])))
    return float(lrs[skip + int(np.argmin(slope))])


def find_lr(cfg, steps: int = 100, start: float = 1e-6, end: float = 1.0, echo=print,
            progress=None) -> LrSweepResult:
    """Sweep the learning rate over ``steps`` optimizer steps; returns {lrs, losses, suggestion, plot}."""

    from bigseg.train.loop import _checked, _loader, _setup, _step, class_weights
    from bigseg.train.losses import build_loss

    if not (0 < start < end) or steps < 10:
        raise BigsegError(f"--find-lr needs 0 < start < end and at least 10 steps, got {start}, {end}, {steps}")
    out = Path(cfg.out)
    classes, device = _checked(cfg, resume=(out / "last.pt").exists())  # the run's own checks; its folder untouched
    s = _setup(cfg.model_copy(update={"ema": None}), classes, device, resume=False, echo=echo)  # no checkpoint
    s.sched = _NoSchedule()
    loader, _ = _loader(cfg, 0, steps, len(classes), device)
    loss_fn = build_loss(cfg.loss, cfg.ignore_label, class_weights(cfg, len(classes), echo), device)
    factor = (end / start) ** (1 / (steps - 1))
    lrs, smoothed, raw = [], [], []
    avg, best = 0.0, math.inf
    bar = make_bar(steps, "find-lr", "it", enabled=progress)
    try:
        for k, (image, truth) in enumerate(loader):
            lr = start * factor**k
            for group in s.opt.param_groups:
                group["lr"] = lr
            try:
                loss = _step(s, loss_fn, image, truth)
            except BigsegError:  # the loss became non-finite: the sweep has gone far enough
                break
            avg = 0.98 * avg + 0.02 * loss
            value = avg / (1 - 0.98 ** (k + 1))
            lrs.append(lr)
            raw.append(loss)
            smoothed.append(value)
            bar.update(1)
            best = min(best, value)
            if value > 4 * best:
                break
    finally:
        bar.close()
    suggestion = suggest(lrs, smoothed)
    out.mkdir(parents=True, exist_ok=True)
    plot = out / "lr-finder.png"
    _plot(plot, lrs, smoothed, raw, suggestion)
    result = LrSweepResult(lrs, smoothed, raw, suggestion, str(plot))
    (out / "lr-finder.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result


def _plot(path: Path, lrs, smoothed, raw, suggestion) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    ax.plot(lrs, raw, color="#bbbbbb", linewidth=0.8, label="loss")
    ax.plot(lrs, smoothed, color="#1f4e9c", linewidth=1.8, label="smoothed loss")
    if suggestion:
        ax.axvline(suggestion, color="#c0392b", linestyle="--", label=f"suggested lr {suggestion:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("learning-rate finder")
    if smoothed:
        top = min(max(raw), 4 * min(smoothed))
        ax.set_ylim(0, top * 1.05)
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
