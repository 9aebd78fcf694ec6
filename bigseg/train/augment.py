"""Photometric augmentation of training crops: what differs between scanners, lights and files.

Each operation is drawn per crop from an RNG the sampler seeds with (seed, sample number), so augmented crops
are as reproducible as the crops themselves. Operations, in order (each with its own probability):

- brightness (multiplicative), contrast (around the crop's mean), gamma (log-uniform);
- colour cast: independent channel gains, and saturation (mixing with the grey value);
- hue: a rotation of every colour about the grey axis (greys stay grey), and the channels in a random order --
  both off unless asked: they show a network the same section in colours no scanner gives, so that what tells a
  void from paste is its shape, not its colour (a dyed filling, a fluorescent paste);
- defocus: a Gaussian blur of random sigma;
- sensor noise: Gaussian, of random sigma;
- JPEG re-encoding at a random quality (Pillow's libjpeg, in memory).

:func:`augment` applies a config's geometry (flips, quarter turns: picture and truth together) and then the
photometric operations (the picture only), drawing from the RNG in a fixed order: both crop sources (stores,
:mod:`bigseg.train.sampler`; synthetic sections, :mod:`bigseg.train.synthetic`) share it. Rescaling stays in the
sampler (it changes what is read).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """(3, H, W) blurred by a separable Gaussian (reflecting the edges)."""
    r = max(1, math.ceil(3 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / sigma) ** 2)
    k = (k / k.sum()).to(image.dtype)
    x = torch.nn.functional.pad(image[None], (r, r, r, r), mode="reflect")
    x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    x = torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    return x[0]


def jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """(3, H, W) in [0, 1] through a JPEG encoder and decoder (Pillow's libjpeg) at ``quality``."""
    import io

    from PIL import Image

    u8 = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=int(quality))
    decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return torch.from_numpy(decoded.copy()).permute(2, 0, 1).float().div_(255.0)


def rotate_hue(image: torch.Tensor, angle: float) -> torch.Tensor:
    """(3, H, W) with every colour turned by ``angle`` radians about the grey axis (Rodrigues' rotation about
    (1, 1, 1) / sqrt 3): greys and each pixel's channel mean unchanged; a third of a turn moves red to green, green
    to blue and blue to red. Values may leave [0, 1]; the caller clamps."""
    k = torch.full((3,), 1 / math.sqrt(3), dtype=image.dtype)
    cross = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], dtype=image.dtype)
    c, s = math.cos(angle), math.sin(angle)
    m = c * torch.eye(3, dtype=image.dtype) + s * cross + (1 - c) * torch.outer(k, k)
    return torch.einsum("ij,jhw->ihw", m, image)


def photometric(image: torch.Tensor, rng: np.random.Generator, cfg) -> torch.Tensor:
    """Augment a (3, H, W) float crop in [0, 1] as ``cfg`` (a PhotometricConfig) allows."""
    p = cfg.probability
    x = image
    if cfg.brightness and rng.random() < p:
        x = x * float(1 + rng.uniform(-cfg.brightness, cfg.brightness))
    if cfg.contrast and rng.random() < p:
        mean = x.mean()
        x = (x - mean) * float(1 + rng.uniform(-cfg.contrast, cfg.contrast)) + mean
    if cfg.gamma and rng.random() < p:
        x = x.clamp(0, 1) ** float(math.exp(rng.uniform(-cfg.gamma, cfg.gamma)))
    if cfg.colour and rng.random() < p:
        gains = torch.tensor(1 + rng.uniform(-cfg.colour, cfg.colour, 3), dtype=x.dtype).view(3, 1, 1)
        x = x * gains
    if cfg.saturation and rng.random() < p:
        grey = x.mean(dim=0, keepdim=True)
        x = grey + (x - grey) * float(1 + rng.uniform(-cfg.saturation, cfg.saturation))
    if cfg.hue and rng.random() < p:  # no draw when off: configs without it see the crops they always saw
        x = rotate_hue(x, float(rng.uniform(-cfg.hue, cfg.hue)) * math.pi)
    if cfg.channel_order and rng.random() < p:
        x = x[torch.from_numpy(rng.permutation(3))]
    if cfg.blur and rng.random() < p:
        x = gaussian_blur(x.clamp(0, 1), float(rng.uniform(0.3, cfg.blur)))
    if cfg.noise and rng.random() < p:
        sigma = float(rng.uniform(0, cfg.noise)) / 255.0
        g = torch.Generator().manual_seed(int(rng.integers(1 << 62)))
        x = x + torch.randn(x.shape, generator=g, dtype=x.dtype) * sigma
    x = x.clamp(0, 1)
    if cfg.jpeg and rng.random() < p:
        x = jpeg(x, int(rng.integers(cfg.jpeg[0], cfg.jpeg[1] + 1)))
    return x


def resize_crop(image, truth, crop: int, antialias: bool = False):
    """A square crop (image float (3, n, n), truth int64 (n, n)) resized to ``crop`` px: the image bilinear (with
    ``antialias`` when it shrinks), the truth by nearest neighbour (its labels stay labels). ``augment.scale``'s
    zoom, on store crops and synthetic ones alike."""
    image = torch.nn.functional.interpolate(image[None], size=(crop, crop), mode="bilinear", align_corners=False,
                                            antialias=antialias)[0]
    truth = torch.nn.functional.interpolate(truth[None, None].float(), size=(crop, crop), mode="nearest")[0, 0].long()
    return image, truth


def augment(image, truth, rng: np.random.Generator, a):
    """(image, truth) after the AugmentConfig ``a``: hflip, vflip, rot90, colour jitter, photometric, in that order
    (each draws from ``rng`` only when enabled, so a crop depends on the config and the sample number alone)."""
    import torch

    if a.hflip and rng.random() < 0.5:
        image, truth = image.flip(-1), truth.flip(-1)
    if a.vflip and rng.random() < 0.5:
        image, truth = image.flip(-2), truth.flip(-2)
    if a.rot90:
        k = int(rng.integers(0, 4))
        image, truth = torch.rot90(image, k, (-2, -1)), torch.rot90(truth, k, (-2, -1))
    if a.color_jitter > 0:
        b = 1 + rng.uniform(-a.color_jitter, a.color_jitter)
        c = 1 + rng.uniform(-a.color_jitter, a.color_jitter)
        mean = image.mean()
        image = ((image - mean) * c + mean * b).clamp_(0, 1)
    if a.photometric is not None:
        image = photometric(image, rng, a.photometric)
    return image, truth
