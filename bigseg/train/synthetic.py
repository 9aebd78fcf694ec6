"""Training crops rendered on the fly from synthetic sections: an unending supply of new styles.

Sample ``i`` belongs to region ``r = i // crops_per_region``. Region ``r`` is a ``region`` x ``region`` block of a
slab drawn from (seed, r): its style (``random`` draws a new style per region; weights pick among the configured
styles), the slab's size (1 to 6 regions a side, so illumination gradients and vignetting show as on real
slabs) and the block's position on it. The crop's position in the region, its flips and rotation and its
photometric augmentation come from (seed, i). A loader process keeps the last region it rendered, and the
sampler hands out consecutive sample numbers, so a batch renders ``batch / crops_per_region`` regions rather
than one per crop. Every sample is a pure function of (seed, i): resumed runs and any number of loader
processes see the same crops, as with store crops (:mod:`bigseg.train.sampler`).

A styled region is also passed through a JPEG encoder at its style's quality (the file a lab would have). The
held-out styles (:data:`bigseg.synth.styles.HELD_OUT`) are refused by the config and never drawn here.
"""

from __future__ import annotations

import numpy as np
import torch

from bigseg.synth.slab import SynthParams, renderer
from bigseg.synth.styles import HELD_OUT
from bigseg.train.augment import jpeg, photometric


class SyntheticCrops(torch.utils.data.Dataset):
    def __init__(self, cfg, crop: int, augment=None, seed: int = 0):
        """``cfg``: a SyntheticConfig; ``augment``: an AugmentConfig (flips, rot90, photometric) or None."""
        self.names = list(cfg.styles)
        if set(self.names) & set(HELD_OUT):
            raise ValueError("held-out styles are never trained on")
        w = np.array([cfg.styles[n] for n in self.names], float)
        self.weights = w / w.sum()
        self.region = max(cfg.region, crop)
        self.per_region = cfg.crops_per_region
        self.crop = crop
        self.augment = augment
        self.seed = seed * 1_000_003 + cfg.seed
        self._cached = (None, None)

    def __len__(self):
        return 1 << 62

    def params(self, r: int) -> tuple[SynthParams, int, int]:
        """The slab of region ``r`` and the region's top-left corner on it."""
        rng = np.random.default_rng([self.seed, int(r), 0x5EED])
        name = self.names[int(rng.choice(len(self.names), p=self.weights))]
        side = self.region * int(rng.integers(1, 7))
        width, height = side, self.region * int(rng.integers(1, 7))
        slab_seed = int(rng.integers(1 << 40))
        if name == "classic":  # the original generator, over the range make_training_set draws
            params = SynthParams(width, height, seed=slab_seed, pixel_size_um=float(rng.uniform(6, 16)),
                                 aggregate_fraction=float(rng.uniform(0.55, 0.75)),
                                 air_fraction=float(rng.uniform(0.02, 0.09)))
        else:
            params = SynthParams(width, height, seed=slab_seed, style=name)
        y = int(rng.integers(0, height - self.region + 1))
        x = int(rng.integers(0, width - self.region + 1))
        return params, y, x

    def render(self, r: int):
        if self._cached[0] != r:
            params, y, x = self.params(r)
            rgb, truth = renderer(params)(y, x, self.region, self.region, True)
            image = torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)
            style = params.resolved_style()
            if style is not None and style.jpeg_quality < 100:
                image = jpeg(image, style.jpeg_quality)
            self._cached = (r, (image, torch.from_numpy(truth.astype(np.int64))))
        return self._cached[1]

    def __getitem__(self, i: int):
        image, truth = self.render(int(i) // self.per_region)
        rng = np.random.default_rng([self.seed, int(i)])
        c = self.crop
        y, x = (int(v) for v in rng.integers(0, self.region - c + 1, 2))
        image, truth = image[:, y : y + c, x : x + c], truth[y : y + c, x : x + c]
        a = self.augment
        if a is not None:
            if a.hflip and rng.random() < 0.5:
                image, truth = image.flip(-1), truth.flip(-1)
            if a.vflip and rng.random() < 0.5:
                image, truth = image.flip(-2), truth.flip(-2)
            if a.rot90:
                k = int(rng.integers(0, 4))
                image, truth = torch.rot90(image, k, (-2, -1)), torch.rot90(truth, k, (-2, -1))
            if a.photometric is not None:
                image = photometric(image, rng, a.photometric)
        return image.contiguous(), truth.contiguous()


class Mixed(torch.utils.data.Dataset):
    """Sample ``i`` from ``synthetic`` with probability ``fraction`` (drawn from (seed, i)), else from ``stores``."""

    def __init__(self, stores, synthetic, fraction: float, seed: int):
        self.stores, self.synthetic, self.fraction, self.seed = stores, synthetic, fraction, seed

    def __len__(self):
        return 1 << 62

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, int(i), 0x313])
        return (self.synthetic if rng.random() < self.fraction else self.stores)[i]
