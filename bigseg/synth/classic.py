"""The classic synthetic section: the generator bigseg had before styles, kept byte-identical.

Stones are star-shaped blobs r(t) = R (1 + sum_k a_k cos(k t + p_k)) with a graded size distribution
p(R) ~ R^-2.5 (many small, few large), placed as a Boolean model whose intensity is set from the target
aggregate fraction; voids are discs with a lognormal diameter distribution, drawn in the paste only, with
intensity set from the target air fraction (optionally a share of it as a second population of entrapped voids,
1-4 mm across, drawn from an RNG stream of their own: a slab without them is drawn as before the option). Paste is
a light grey-beige, stones are of four rock colours, voids are dark shaded hemispheres; one global illumination
field, a light blur and sensor noise.

The bundled model's first training set and the demo slab of earlier releases were drawn by it, and its stones
start at 0.5 mm: under the randomized styles' convention (:mod:`bigseg.synth.styles`) grains under 2 mm are
fine aggregate and count as paste, so classic slabs label as stone what those styles call sand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from bigseg.synth.noise import fbm, gaussian_blur, pixel_noise, value_noise

BLUR_MARGIN = 3
CELL = 512  # object cell side


@dataclass
class _Stones:
    cy: np.ndarray
    cx: np.ndarray
    radius: np.ndarray
    harm_amp: np.ndarray  # (n, K)
    harm_phase: np.ndarray  # (n, K)
    color: np.ndarray  # (n, 3)
    texture: np.ndarray  # (n, 2) fine/coarse texture amplitude
    order: np.ndarray  # draw order key (global)


@dataclass
class _Voids:
    cy: np.ndarray
    cx: np.ndarray
    radius: np.ndarray


_K = 5  # shape harmonics


@dataclass
class _Model:
    """Object intensities and size distributions in pixels, derived from SynthParams."""

    p: Any  # the classic generator's parameters (fields read below)
    r_min: float = field(init=False)
    r_max: float = field(init=False)
    stone_rate: float = field(init=False)
    void_rate: float = field(init=False)
    void_r_med: float = field(init=False)
    void_r_max: float = field(init=False)
    entrapped_rate: float = field(init=False)
    entrapped_r: tuple[float, float, float] = field(init=False)  # median, min, max radius (px)
    reach: float = field(init=False)

    def __post_init__(self):
        p = self.p
        px_mm = 1000.0 / p.pixel_size_um
        self.r_min = max(2.0, p.stone_radius_mm[0] * px_mm)
        self.r_max = max(self.r_min + 1, p.stone_radius_mm[1] * px_mm)
        q = 2.5
        # E[R^2] for p(R) ~ R^-q on [r_min, r_max]
        num = (self.r_max ** (3 - q) - self.r_min ** (3 - q)) / (3 - q)
        den = (self.r_min ** (1 - q) - self.r_max ** (1 - q)) / (q - 1)
        mean_area = math.pi * (num / den) * (1 + 0.5 * _expected_harm_power())
        self.stone_rate = -math.log(1 - p.aggregate_fraction) / mean_area if p.aggregate_fraction > 0 else 0.0
        self.void_r_med = max(0.75, p.void_median_diameter_mm * px_mm / 2)
        self.void_r_max = max(self.void_r_med * 1.5, p.void_max_diameter_mm * px_mm / 2)
        void_mean_area = math.pi * self.void_r_med**2 * math.exp(2 * p.void_sigma**2)
        paste = 1 - p.aggregate_fraction
        self.void_rate = -math.log(1 - p.air_fraction / paste) / void_mean_area if p.air_fraction > 0 else 0.0
        self.entrapped_rate, self.entrapped_r = 0.0, (0.0, 0.0, 0.0)
        share = p.entrapped_air_share
        if share > 0 and self.void_rate > 0:
            # the Boolean model's covered share of the paste, -log(1 - air / paste), split between the populations
            # by their expected areas (the lognormal's, clipped to 1-4 mm: a few per cent off, as the rest is)
            r_med = p.entrapped_median_diameter_mm * px_mm / 2
            self.entrapped_r = (r_med, 1.0 * px_mm / 2, 4.0 * px_mm / 2)
            self.void_rate, self.entrapped_rate = split_air(self.void_rate, void_mean_area, share, r_med,
                                                            p.entrapped_sigma)
        largest = max(self.void_r_max, self.entrapped_r[2])
        self.reach = max(self.r_max * (1 + _MAX_HARM_SUM), largest) + BLUR_MARGIN + 1

    def stones(self, ci: int, cj: int) -> _Stones:
        rng = np.random.default_rng([self.p.seed, 1, ci + (1 << 20), cj + (1 << 20)])
        n = rng.poisson(self.stone_rate * CELL * CELL)
        q = 2.5
        u = rng.random(n)
        a, b = self.r_min ** (1 - q), self.r_max ** (1 - q)
        radius = (a + u * (b - a)) ** (1 / (1 - q))
        amps = rng.random((n, _K)) * (_HARM_AMPS[None, :])
        phases = rng.random((n, _K)) * 2 * math.pi
        # stone colours: varied rock types kept away from the paste's light grey-beige
        kind = rng.integers(0, 4, n)
        base = np.empty((n, 3))
        lum = np.where(kind == 3, rng.uniform(195, 225, n), rng.uniform(60, 135, n))
        tint = rng.normal(0, 1, (n, 1)) * 6.0 + rng.normal(0, 1, (n, 3)) * np.array([7.0, 5.0, 7.0])
        warm = np.where(kind == 1, 1.0, 0.0)[:, None] * np.array([28.0, 5.0, -20.0])
        base[:] = lum[:, None] + tint + warm
        texture = np.stack([rng.uniform(30, 80, n), rng.uniform(10, 40, n)], axis=1)
        return _Stones(
            cy=ci * CELL + rng.random(n) * CELL,
            cx=cj * CELL + rng.random(n) * CELL,
            radius=radius,
            harm_amp=amps,
            harm_phase=phases,
            color=base,
            texture=texture,
            order=rng.random(n),  # draw order: a random key, the same whichever tile gathers the stone
        )

    def voids(self, ci: int, cj: int) -> _Voids:
        rng = np.random.default_rng([self.p.seed, 2, ci + (1 << 20), cj + (1 << 20)])
        n = rng.poisson(self.void_rate * CELL * CELL)
        r = self.void_r_med * np.exp(self.p.void_sigma * rng.standard_normal(n))
        r = np.clip(r, 0.5, self.void_r_max)
        voids = _Voids(cy=ci * CELL + rng.random(n) * CELL, cx=cj * CELL + rng.random(n) * CELL, radius=r)
        if self.entrapped_rate == 0:
            return voids
        big = np.random.default_rng([self.p.seed, 3, ci + (1 << 20), cj + (1 << 20)])  # a stream of its own
        m = big.poisson(self.entrapped_rate * CELL * CELL)
        r_med, r_min, r_max = self.entrapped_r
        rb = np.clip(r_med * np.exp(self.p.entrapped_sigma * big.standard_normal(m)), r_min, r_max)
        return _joined([voids, _Voids(cy=ci * CELL + big.random(m) * CELL, cx=cj * CELL + big.random(m) * CELL,
                                      radius=rb)])


_HARM_AMPS = np.array([0.16, 0.11, 0.07, 0.05, 0.035])
_MAX_HARM_SUM = float(_HARM_AMPS.sum())


def _expected_harm_power() -> float:
    # a_k uniform on [0, A_k]: E[a_k^2] = A_k^2 / 3
    return float((_HARM_AMPS**2).sum() / 3)


def _gather(model: _Model, y0, x0, h, w):
    reach = model.reach
    ci0, ci1 = math.floor((y0 - reach) / CELL), math.floor((y0 + h + reach) / CELL)
    cj0, cj1 = math.floor((x0 - reach) / CELL), math.floor((x0 + w + reach) / CELL)
    stones, voids = [], []
    for ci in range(ci0, ci1 + 1):
        for cj in range(cj0, cj1 + 1):
            stones.append(model.stones(ci, cj))
            voids.append(model.voids(ci, cj))
    return _joined(stones), _joined(voids)


_Objects = TypeVar("_Objects", _Stones, _Voids)


def split_air(void_rate: float, void_area: float, share: float, r_med: float, sigma: float) -> tuple[float, float]:
    """(entrained rate, entrapped rate) of voids whose ``share`` of the Boolean model's covered paste, ``void_rate`` x
    ``void_area`` (expected void area, px²), goes to an entrapped population of median radius ``r_med`` px and
    log-normal spread ``sigma``: the covered share, and so the air fraction in expectation, kept."""
    covered = void_rate * void_area
    return void_rate * (1 - share), share * covered / (math.pi * r_med**2 * math.exp(2 * sigma**2))


def _joined(parts: list[_Objects]) -> _Objects:
    """One _Stones or _Voids holding the objects of ``parts`` (of that class), in their order."""
    return type(parts[0])(*[np.concatenate([getattr(x, f) for x in parts]) for f in parts[0].__dataclass_fields__])


# ---------------------------------------------------------------------------------------------------------
# rendering


def object_box(cy: float, cx: float, reach: float, Y0: int, X0: int, H: int, W: int):
    """(slices into the tile, dy column, dx row) of an object's bounding box clipped to the tile, or None."""
    a0, a1 = max(int(math.floor(cy - reach)), Y0), min(int(math.ceil(cy + reach)) + 1, Y0 + H)
    b0, b1 = max(int(math.floor(cx - reach)), X0), min(int(math.ceil(cx + reach)) + 1, X0 + W)
    if a0 >= a1 or b0 >= b1:
        return None
    dy = (np.arange(a0, a1) + 0.5 - cy)[:, None]
    dx = (np.arange(b0, b1) + 0.5 - cx)[None, :]
    return (slice(a0 - Y0, a1 - Y0), slice(b0 - X0, b1 - X0)), dy, dx


def _render_tile(model: _Model, y0: int, x0: int, h: int, w: int, want_image: bool):
    """Render the global block [y0, y0+h) x [x0, x0+w): returns (rgb uint8 or None, truth uint8)."""
    m = BLUR_MARGIN if want_image else 0
    Y0, X0, H, W = y0 - m, x0 - m, h + 2 * m, w + 2 * m
    stones, voids = _gather(model, Y0, X0, H, W)
    label = np.zeros((H, W), np.uint8)
    stone_idx = np.full((H, W), -1, np.int32)

    ext = stones.radius * (1 + stones.harm_amp.sum(1))
    hit = (stones.cy + ext > Y0) & (stones.cy - ext < Y0 + H) & (stones.cx + ext > X0) & (stones.cx - ext < X0 + W)
    for k in np.flatnonzero(hit)[np.argsort(stones.order[hit], kind="stable")]:
        box = object_box(stones.cy[k], stones.cx[k], ext[k], Y0, X0, H, W)
        if box is None:
            continue
        sl, dy, dx = box
        r = np.hypot(dy, dx)
        t = np.arctan2(dy, dx)
        edge = np.ones_like(t)
        for j in range(_K):
            edge += stones.harm_amp[k, j] * np.cos((j + 1) * t + stones.harm_phase[k, j])
        inside = r <= stones.radius[k] * edge
        label[sl][inside] = 1
        stone_idx[sl][inside] = k

    vhit = (voids.cy + voids.radius > Y0) & (voids.cy - voids.radius < Y0 + H)
    vhit &= (voids.cx + voids.radius > X0) & (voids.cx - voids.radius < X0 + W)
    void_shade = np.zeros((H, W) if want_image else (0, 0))  # filled only when the image is wanted
    for k in np.flatnonzero(vhit):
        rr = voids.radius[k]
        box = object_box(voids.cy[k], voids.cx[k], rr, Y0, X0, H, W)
        if box is None:
            continue
        sl, dy, dx = box
        inside = dy * dy + dx * dx <= rr * rr
        inside &= label[sl] != 1  # air voids sit in the paste
        label[sl][inside] = 2
        if want_image:
            # a hemispherical hole lit from the top-left: dark, darker towards the lit side's far wall
            shade = 0.5 + 0.5 * (0.6 * dx + 0.8 * dy) / rr
            void_shade[sl][inside] = np.broadcast_to(shade, inside.shape)[inside]

    if not want_image:
        return None, label

    p = model.p
    salt = p.seed * 1_000_033
    # paste: light grey-beige, matte, with mottling and fine sand speckle
    mottle = fbm(Y0, X0, H, W, (96.0, 24.0, 6.0), salt + 11) - 0.5
    fine = value_noise(Y0, X0, H, W, 1.7, salt + 13) - 0.5
    rgb = np.empty((H, W, 3))
    paste_color = np.array([172.0, 166.0, 154.0])
    rgb[:] = paste_color + (26 * mottle + 10 * fine)[..., None]
    is_stone = label == 1
    if is_stone.any():
        idx = stone_idx[is_stone]
        grain = value_noise(Y0, X0, H, W, 2.5, salt + 17)[is_stone] - 0.5
        vein = fbm(Y0, X0, H, W, (40.0, 12.0), salt + 19)[is_stone] - 0.5
        col = stones.color[idx] + (stones.texture[idx, 0] * grain + stones.texture[idx, 1] * vein)[:, None]
        rgb[is_stone] = col
    is_void = label == 2
    if is_void.any():
        v = 28 + 55 * void_shade[is_void]
        rgb[is_void] = np.stack([v, v * 0.97, v * 0.95], axis=1)
    # uneven illumination across the whole slab (a smooth global field)
    gy = (np.arange(Y0, Y0 + H) + 0.5) / max(p.height, 1)
    gx = (np.arange(X0, X0 + W) + 0.5) / max(p.width, 1)
    illum = 1.0 + 0.07 * np.cos(2 * math.pi * (0.6 * gx[None, :] + 0.15)) * np.cos(
        2 * math.pi * (0.4 * gy[:, None] - 0.1)
    ) - 0.04 * (gy[:, None] - 0.5)
    rgb *= illum[..., None]
    rgb = gaussian_blur(rgb, p.blur_sigma_px, BLUR_MARGIN)
    rgb = rgb[m : m + h, m : m + w]
    rgb += p.noise_sigma * pixel_noise(y0, x0, h, w, salt + 23)[..., None]
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8), label[m : m + h, m : m + w]
