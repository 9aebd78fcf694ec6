"""Replay for ``bigseg adapt``: crops of synthetic concrete sections with their exact truth, from the same mix the
bundled model was trained on (random styles and the classic generator), trained on beside a lab's strokes.

Strokes say what a class looks like inside its regions; the synthetic crops' exact truth says where every void ends
and keeps small voids in the loss, which strokes rarely reach. The pool is rendered once when adapt starts
(``regions`` blocks of ``region`` px, about a second of CPU per megapixel) and crops are drawn from it with the
flips, quarter turns and photometric changes of training, so a step costs no rendering.
"""

from __future__ import annotations

import time

import numpy as np

from bigseg.classes import CONCRETE
from bigseg.errors import BigsegError
from bigseg.train.config import AugmentConfig, PhotometricConfig, SyntheticConfig

REPLAY_STYLES = {"random": 0.85, "classic": 0.15}
"""The bundled model's training mix (configs/generalization-*.yaml); held-out styles are never drawn."""


class ReplayPool:
    """``regions`` synthetic blocks rendered at start; :meth:`batch` draws augmented crops with their truth."""

    def __init__(self, crop: int, regions: int = 24, region: int = 512, seed: int = 0):
        from bigseg.train.synthetic import SyntheticCrops

        cfg = SyntheticConfig(styles=REPLAY_STYLES, region=max(region, crop), seed=seed)
        aug = AugmentConfig(hflip=True, vflip=True, rot90=True, photometric=PhotometricConfig.model_validate({}))
        self.crops = SyntheticCrops(cfg, crop, aug, seed=seed, cache=regions)
        self.regions = regions
        t0 = time.perf_counter()
        for r in range(regions):
            self.crops.render(r)
        self.seconds = time.perf_counter() - t0

    def batch(self, n: int, rng: np.random.Generator):
        """(images float (n, 3, crop, crop) in [0, 1], truth int64 (n, crop, crop)) of ``n`` random crops."""
        import torch

        from bigseg.train.synthetic import CROP_BITS

        pairs = [self.crops[(int(rng.integers(self.regions)) << CROP_BITS) + int(rng.integers(1 << CROP_BITS))]
                 for _ in range(n)]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def void_band(truth, band: int, void: int = 2, ignore: int = 255):
    """``truth`` with every pixel farther than ``band`` px from a void set to ``ignore``: the synthetic truth says
    where voids end and which dark specks are voids, not what this lab's paste and stone look like (a synthetic
    paste can look like the lab's stone)."""
    import torch.nn.functional as F

    near = F.max_pool2d((truth == void).float()[:, None], 2 * band + 1, stride=1, padding=band)[:, 0] > 0
    return truth.masked_fill(~near, ignore)


def check_classes(names: list[str]) -> None:
    """Replay's truth is concrete's three classes: a base model with other classes gets one line."""
    concrete = [c.name for c in CONCRETE]
    if list(names) != concrete:
        raise BigsegError(f"--replay trains on synthetic concrete (classes {', '.join(concrete)}); this base model's "
                          f"classes are {', '.join(names)}")
