"""Training crops rendered on the fly from synthetic sections: an unending supply of new styles.

A sample number encodes (region, crop). Region ``r`` is a ``region`` x ``region`` block of a slab drawn from
(seed, r): its style (``random`` draws a new style per region; weights pick among the configured styles), the
slab's size (1 to 6 regions a side, so illumination gradients and vignetting show as on real slabs) and the
block's position on it. The crop's position in the region, its flips and rotation and its photometric
augmentation come from (seed, sample number): every sample is a pure function of its number.

Rendering a region costs ~1 s on one core, a training step far less, so each region yields ``crops_per_region``
crops. :class:`SyntheticBatches` forms the batches so that a batch holds crops of ``batch_size`` *different*
regions (batch-norm statistics over one style per batch would not be those of the population), while each loader
process reuses the regions it rendered for its next ``crops_per_region`` batches (the loader hands batch ``j`` to
process ``j % num_workers``). The batches therefore depend on the number of loader processes, and a resumed run
must keep it (it is in the config).

``large_voids`` draws that share of the classic regions with voids of 0.4-1.2 mm median diameter (up to 4 mm): the
entrapped voids of a real section, 1 mm and more, which the usual size distribution (median 0.12 mm) draws about
once in 20 megapixels. ``entrapped_voids`` instead draws that share of the classic regions with a second population
of such voids (30-60 % of the region's air) among the usual ones, the air fraction kept;
``entrapped_voids_styled`` does the same for that share of the styled regions, in each style's own void looks. A
styled region is also
passed through a JPEG encoder at its style's quality (the file a lab would have).

``augment.scale`` (e.g. ``[1.0, 2.0]``) takes a crop of ``crop / s`` px, ``s`` drawn from that range, and resizes it
to ``crop`` (bilinear; truth nearest): a zoom by ``s``, so a void shows as many pixels as one ``s`` times its size
would. With ``min_pixel_size_um`` the zoom is capped at the region's pixel size over that floor (no crop looks finer
than the working pixel size the model is read at; a region at the floor is never zoomed in); a zoom below 1 never
takes a crop larger than its region. Without it, crops are drawn as before, to the bit. The held-out styles
(:data:`bigseg.synth.styles.HELD_OUT`) are refused by the config and never drawn here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from bigseg.synth.slab import SynthParams, renderer
from bigseg.synth.styles import HELD_OUT, resolve
from bigseg.train.augment import augment, jpeg, resize_crop

CROP_BITS = 16  # sample number = region * 2**16 + crop number within the region


class SyntheticCrops(torch.utils.data.Dataset):
    def __init__(self, cfg, crop: int, augment=None, seed: int = 0, cache: int = 64):
        """``cfg``: a SyntheticConfig; ``augment``: an AugmentConfig (flips, rot90, photometric) or None;
        ``cache``: regions kept per process (at least the batch size)."""
        self.names = list(cfg.styles)
        if set(self.names) & set(HELD_OUT):
            raise ValueError("held-out styles are never trained on")
        w = np.array([cfg.styles[n] for n in self.names], float)
        self.weights = w / w.sum()
        self.region = max(cfg.region, crop)
        self.crop = crop
        self.augment = augment
        self.seed = seed * 1_000_003 + cfg.seed
        self.cache_size = cache
        self.min_pixel_size_um = cfg.min_pixel_size_um
        self.large_voids = cfg.large_voids
        self.entrapped_voids = cfg.entrapped_voids
        self.entrapped_voids_styled = cfg.entrapped_voids_styled
        self._cache: dict = {}

    def __len__(self):
        return 1 << 62

    def params(self, r: int) -> tuple[SynthParams, int, int]:
        """The slab of region ``r`` and the region's top-left corner on it."""
        rng = np.random.default_rng([self.seed, int(r), 0x5EED])
        name = self.names[int(rng.choice(len(self.names), p=self.weights))]
        width, height = self.region * int(rng.integers(1, 7)), self.region * int(rng.integers(1, 7))
        slab_seed = int(rng.integers(1 << 40))
        floor = self.min_pixel_size_um
        if name == "classic":  # the original generator, over the range make_training_set draws
            px = float(rng.uniform(6, 16))
            params = SynthParams(width, height, seed=slab_seed, pixel_size_um=max(px, floor) if floor else px,
                                 aggregate_fraction=float(rng.uniform(0.55, 0.75)),
                                 air_fraction=float(rng.uniform(0.02, 0.09)))
            if self.large_voids:  # a stream of its own: the regions of a config without it are drawn as before
                big = np.random.default_rng([self.seed, int(r), 0xB16])
                if big.random() < self.large_voids:
                    params = dataclasses.replace(params, void_median_diameter_mm=float(big.uniform(0.4, 1.2)),
                                                 void_sigma=0.4, void_max_diameter_mm=4.0)
        else:
            fine = bool(floor) and resolve(name, slab_seed).pixel_size_um < floor  # a fine scan, shown at the floor
            params = SynthParams(width, height, seed=slab_seed, style=name, pixel_size_um=floor if fine else None)
        share, salt = (self.entrapped_voids, 0xE17) if name == "classic" else (self.entrapped_voids_styled, 0xE18)
        if share:  # a stream of its own too (one for classic regions, one for styled ones)
            big = np.random.default_rng([self.seed, int(r), salt])
            if big.random() < share:
                params = dataclasses.replace(params, entrapped_air_share=float(big.uniform(0.3, 0.6)))
        y = int(rng.integers(0, height - self.region + 1))
        x = int(rng.integers(0, width - self.region + 1))
        return params, y, x

    def render(self, r: int):
        """(image uint8 (3, R, R), truth uint8 (R, R), pixel size um) of region ``r``, kept for this process's next
        batches."""
        hit = self._cache.get(r)
        if hit is None:
            params, y, x = self.params(r)
            rgb, truth = renderer(params)(y, x, self.region, self.region, True)
            image = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
            style = params.resolved_style()
            if style is not None and style.jpeg_quality < 100:
                image = (jpeg(image.float().div_(255.0), style.jpeg_quality) * 255).round().to(torch.uint8)
            hit = self._cache[r] = (image, torch.from_numpy(truth), params.pixel_size)
            while len(self._cache) > self.cache_size:
                self._cache.pop(next(iter(self._cache)))  # the oldest
        return hit

    def __getitem__(self, i: int):
        i = int(i)
        image, truth, px = self.render(i >> CROP_BITS)
        rng = np.random.default_rng([self.seed, i])
        a = self.augment
        c = size = self.crop
        if a is not None and a.scale:  # drawn first, and only then: a config without it draws its crops as before
            zoom = float(rng.uniform(*a.scale))
            if self.min_pixel_size_um:
                zoom = min(zoom, max(1.0, px / self.min_pixel_size_um))
            size = min(self.region, max(8, int(round(c / zoom))))
        y, x = (int(v) for v in rng.integers(0, self.region - size + 1, 2))
        image = image[:, y : y + size, x : x + size].float().div_(255.0)
        truth = truth[y : y + size, x : x + size].long()
        if size != c:
            image, truth = resize_crop(image, truth, c, antialias=size > c)
        if a is not None:
            image, truth = augment(image, truth, rng, a)
        return image.contiguous(), truth.contiguous()


class SyntheticBatches(torch.utils.data.Sampler):
    """Batches ``start`` .. ``stop`` - 1 of sample numbers for :class:`SyntheticCrops`.

    Batch ``j`` goes to loader process ``w = j % workers`` as that process's ``m = j // workers``-th batch; its
    ``batch_size`` samples are crop ``m % crops_per_region`` of regions ``(g * workers + w) * batch_size + p``
    (``g = m // crops_per_region``, ``p`` its position in the batch): every batch mixes ``batch_size`` regions, and
    each process renders ``batch_size`` regions per ``crops_per_region`` batches."""

    def __init__(self, start: int, stop: int, batch_size: int, workers: int, crops_per_region: int):
        self.start, self.stop = start, stop
        self.b, self.w, self.cpr = batch_size, max(1, workers), crops_per_region

    def batch(self, j: int) -> list[int]:
        w, m = j % self.w, j // self.w
        g, c = divmod(m, self.cpr)
        return [(((g * self.w + w) * self.b + p) << CROP_BITS) + c for p in range(self.b)]

    def __iter__(self):
        return (self.batch(j) for j in range(self.start, self.stop))

    def __len__(self):
        return self.stop - self.start
