"""Rendering a styled synthetic section, tile by tile, with exact truth.

Every object (stone, sand grain, void, pull-out, crack) is generated per cell of a coarse grid from an RNG
seeded by (seed, kind, cell), and every texture, shading and imaging field is a function of global pixel
coordinates (:mod:`bigseg.synth.noise`): a tile gathers the objects that reach it and renders exactly the
pixels the whole slab has there. Blur is applied to a tile rendered with a margin.

The truth depends on stones and voids only: sand grains, pull-outs, cracks and scratches are paste (or stone)
in the 3-class table (see :mod:`bigseg.synth.styles` for the convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bigseg.synth.classic import object_box, split_air
from bigseg.synth.noise import cell_noise, fbm, gaussian_blur, hash01, pixel_noise, value_noise
from bigseg.synth.styles import SAND_MAX_MM, STONE_TEXTURES, Style

CELL = 512
_K = 5  # shape harmonics of rounded stones
_HARM_ROUNDED = np.array([0.14, 0.09, 0.06, 0.04, 0.03])
_MAX_VERTS = 9
_Q = 2.5  # size distribution p(R) ~ R^-q of stones and sand grains

# kinds of object (part of the RNG seed of each cell)
_STONES, _VOIDS, _SAND, _PULLOUTS, _CRACKS, _ENTRAPPED = 1, 2, 3, 4, 5, 6


def _power_law(rng, n: int, lo: float, hi: float, q: float = _Q) -> np.ndarray:
    a, b = lo ** (1 - q), hi ** (1 - q)
    return (a + rng.random(n) * (b - a)) ** (1 / (1 - q))


def _mean_square(lo: float, hi: float, q: float = _Q) -> float:
    """E[R^2] for p(R) ~ R^-q on [lo, hi]."""
    num = (hi ** (3 - q) - lo ** (3 - q)) / (3 - q)
    den = (lo ** (1 - q) - hi ** (1 - q)) / (q - 1)
    return num / den


def value_noise_at(y: np.ndarray, x: np.ndarray, scale: float, salt: int) -> np.ndarray:
    """:func:`value_noise` at arbitrary points (the same field, for object centres)."""
    gy, gx = (np.asarray(y, float) + 0.5) / scale, (np.asarray(x, float) + 0.5) / scale
    iy, ix = np.floor(gy).astype(np.int64), np.floor(gx).astype(np.int64)
    fy, fx = gy - iy, gx - ix
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
    v00, v01 = hash01(iy, ix, salt), hash01(iy, ix + 1, salt)
    v10, v11 = hash01(iy + 1, ix, salt), hash01(iy + 1, ix + 1, salt)
    return (v00 * (1 - fx) + v01 * fx) * (1 - fy) + (v10 * (1 - fx) + v11 * fx) * fy


@dataclass
class _Particles:
    """Stones or sand grains: star-shaped outlines (rounded, angular or elongated) with colours."""

    cy: np.ndarray
    cx: np.ndarray
    radius: np.ndarray  # scaled so that the outline's area is pi R^2 (angular), or nominal
    kind: np.ndarray  # 0 rounded, 1 angular, 2 elongated
    harm_amp: np.ndarray  # (n, K)
    harm_phase: np.ndarray
    n_verts: np.ndarray
    vert_angle: np.ndarray  # (n, MAX_VERTS), ascending, padded
    vert_radius: np.ndarray
    aspect: np.ndarray
    phi: np.ndarray
    extent: np.ndarray  # bounding radius
    color: np.ndarray  # (n, 3)
    texture: np.ndarray  # texture kind (STONE_TEXTURES index)
    texture_amp: np.ndarray
    salt: np.ndarray  # per-particle offset of texture ids
    order: np.ndarray

    @staticmethod
    def concat(parts: list[_Particles]) -> _Particles:
        return _Particles(*[np.concatenate([getattr(p, f) for p in parts])
                            for f in _Particles.__dataclass_fields__])


def _draw_particles(rng, n: int, cy, cx, r_lo: float, r_hi: float, shape_w, elongation: float,
                    palette: np.ndarray, spread: float, texture_w, texture_strength: float) -> _Particles:
    radius = _power_law(rng, n, r_lo, r_hi)
    kind = rng.choice(3, n, p=np.asarray(shape_w, float) / sum(shape_w))
    amps = rng.random((n, _K)) * _HARM_ROUNDED[None, :]
    phases = rng.random((n, _K)) * 2 * math.pi
    nv = rng.integers(5, _MAX_VERTS + 1, n)
    k = np.arange(_MAX_VERTS)[None, :]
    base = 2 * math.pi / nv[:, None]
    angles = base * (k + rng.uniform(-0.35, 0.35, (n, _MAX_VERTS))) + rng.uniform(0, 2 * math.pi, (n, 1))
    angles = np.where(k < nv[:, None], np.mod(angles, 2 * math.pi), np.inf)
    order = np.argsort(angles, axis=1)
    angles = np.take_along_axis(angles, order, axis=1)
    vr = rng.uniform(0.7, 1.0, (n, _MAX_VERTS))
    aspect = rng.uniform(1.3, max(1.31, elongation), n)
    phi = rng.uniform(0, math.pi, n)
    # angular: scale the polygon so that its area is pi R^2, like a disc of radius R
    ang = kind == 1
    if ang.any():
        a = np.where(np.isfinite(angles), angles, 0.0)
        nxt = np.roll(a, -1, axis=1)
        idx = nv - 1
        rows = np.arange(n)
        nxt[rows, idx] = a[rows, 0] + 2 * math.pi
        d = np.where(k < nv[:, None], nxt - a, 0.0)
        vrn = np.roll(vr, -1, axis=1)
        vrn[rows, idx] = vr[rows, 0]
        area = 0.5 * (vr * vrn * np.sin(d)).sum(axis=1)
        radius = np.where(ang, radius * np.sqrt(math.pi / np.maximum(area, 1e-3)), radius)
    harm = 1 + amps.sum(axis=1)
    extent = np.where(kind == 1, radius * 1.02, radius * harm)  # angular: vertices at most R, 1.5 % roughness
    extent = np.where(kind == 2, radius * np.sqrt(aspect) * harm, extent)
    which = rng.integers(0, len(palette), n)
    color = palette[which] + rng.normal(0, 1, (n, 1)) * spread + rng.normal(0, 1, (n, 3)) * spread * 0.35
    tw = np.asarray(texture_w, float)
    texture = rng.choice(len(tw), n, p=tw / tw.sum())
    return _Particles(cy=cy, cx=cx, radius=radius, kind=kind, harm_amp=amps, harm_phase=phases, n_verts=nv,
                      vert_angle=angles, vert_radius=vr, aspect=aspect, phi=phi, extent=extent, color=color,
                      texture=texture, texture_amp=texture_strength * rng.uniform(0.5, 1.5, n),
                      salt=rng.random(n), order=rng.random(n))


def _inside(p: _Particles, k: int, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Whether pixel offsets (dy, dx) from particle k's centre lie inside its outline."""
    kind = p.kind[k]
    if kind == 2:  # elongated: a rounded outline stretched along phi, area kept
        c, s, a = math.cos(p.phi[k]), math.sin(p.phi[k]), math.sqrt(p.aspect[k])
        dx, dy = (dx * c + dy * s) / a, (dy * c - dx * s) * a
    r = np.hypot(dy, dx)
    t = np.arctan2(dy, dx)
    if kind == 1:
        n = int(p.n_verts[k])
        th, rho = p.vert_angle[k, :n], p.vert_radius[k, :n]
        th_ext = np.concatenate([[th[-1] - 2 * math.pi], th, [th[0] + 2 * math.pi]])
        rho_ext = np.concatenate([[rho[-1]], rho, [rho[0]]])
        tt = np.mod(t, 2 * math.pi)
        i = np.searchsorted(th_ext, tt, side="right") - 1
        t0, t1, r0, r1 = th_ext[i], th_ext[i + 1], rho_ext[i], rho_ext[i + 1]
        edge = r0 * r1 * np.sin(t1 - t0) / (r0 * np.sin(tt - t0) + r1 * np.sin(t1 - tt))
        edge = edge * (1 + 0.015 * np.cos(11 * t + 7 * p.salt[k]))  # a little roughness
        return r <= p.radius[k] * edge
    edge = np.ones_like(t)
    for j in range(_K):
        edge = edge + p.harm_amp[k, j] * np.cos((j + 1) * t + p.harm_phase[k, j])
    return r <= p.radius[k] * edge


@dataclass
class _Voids:
    cy: np.ndarray
    cx: np.ndarray
    radius: np.ndarray
    look: np.ndarray  # VOID_LOOKS index
    fill: np.ndarray  # filled: how far the deposit reaches (0..1)
    fill_dir: np.ndarray  # filled: direction of the deposit (radians)
    order: np.ndarray

    @staticmethod
    def concat(parts: list[_Voids]) -> _Voids:
        return _Voids(*[np.concatenate([getattr(v, f) for v in parts]) for f in _Voids.__dataclass_fields__])


@dataclass
class _Cracks:
    y: np.ndarray  # (n, 5) polyline vertices
    x: np.ndarray
    width: np.ndarray  # px


class Scene:
    """A styled slab of ``width`` x ``height`` px: object intensities from the style, rendering by tile."""

    def __init__(self, style: Style, seed: int, width: int, height: int):
        s = self.style = style
        self.seed, self.width, self.height = seed, width, height
        px_mm = self.px_mm = 1000.0 / s.pixel_size_um
        self.r_min = max(2.0, s.stone_radius_mm[0] * px_mm)
        self.r_max = max(self.r_min + 1, s.stone_radius_mm[1] * px_mm)
        harm = 1 + 0.5 * float((_HARM_ROUNDED**2).sum() / 3)
        mean_area = math.pi * _mean_square(self.r_min, self.r_max) * harm
        self.stone_rate = -math.log(1 - s.aggregate_fraction) / mean_area if s.aggregate_fraction > 0 else 0.0
        self.sand_lo, self.sand_hi = max(0.6, 0.05 * px_mm), max(0.61, SAND_MAX_MM / 2 * px_mm)
        sand_area = math.pi * _mean_square(self.sand_lo, self.sand_hi) * harm
        # sand is thinned by a smooth density field (mean keep probability 0.775): varies across the slab
        self.sand_rate = -math.log(1 - s.sand_fraction) / sand_area / 0.775 if s.sand_fraction > 0 else 0.0
        self.void_r_med = max(0.75, s.void_median_diameter_mm * px_mm / 2)
        self.void_r_max = max(self.void_r_med * 1.5, s.void_max_diameter_mm * px_mm / 2)
        void_area = math.pi * self.void_r_med**2 * math.exp(2 * s.void_sigma**2)
        paste = 1 - s.aggregate_fraction
        self.void_rate = -math.log(1 - s.air_fraction / paste) / void_area if s.air_fraction > 0 else 0.0
        self.entrapped_rate, self.entrapped_r = 0.0, (0.0, 0.0, 0.0)
        if s.entrapped_air_share > 0 and self.void_rate > 0:
            # as the classic generator (bigseg.synth.classic.split_air), the air fraction kept
            r_med = s.entrapped_median_diameter_mm * px_mm / 2
            self.entrapped_r = (r_med, max(0.75, 0.5 * px_mm), max(1.0, 2.0 * px_mm))
            self.void_rate, self.entrapped_rate = split_air(self.void_rate, void_area, s.entrapped_air_share, r_med,
                                                            s.entrapped_sigma)
        self.void_reach = max(self.void_r_max, self.entrapped_r[2]) + 2
        cm2_px = (1e4 / s.pixel_size_um) ** 2
        self.pullout_rate = s.pullouts_per_cm2 / cm2_px
        self.crack_rate = s.cracks_per_cm2 / cm2_px
        self.crack_len = (2.0 * px_mm, 15.0 * px_mm)
        self.blur_r = max(1, math.ceil(3 * s.blur_sigma_px)) if s.blur_sigma_px > 0 else 0
        self.margin = self.blur_r + 3  # the stone rim looks 2 px around, and the blur reads blur_r px
        # bounding radius of a particle relative to its R: an angular polygon scaled to the area of the disc
        # (vertices at >= 0.7 R, 5 vertices: 1.64 R), an elongated outline (sqrt(aspect) (1 + sum of harmonics))
        stretch = 1 + float(_HARM_ROUNDED.sum())
        self.stone_reach = self.r_max * max(1.7, math.sqrt(max(1.31, s.stone_elongation)) * stretch) + 2
        self.sand_reach = self.sand_hi * max(1.7, math.sqrt(1.5) * stretch) + 2
        self.pit_reach = 0.6 * px_mm * 1.7 + 2
        self.palette = np.asarray(s.stone_palette, float)
        self.sand_palette = np.asarray(s.sand_palette, float)
        self.salt = (seed * 1_000_033 + 17) & 0xFFFFFFFF
        rng = np.random.default_rng([seed, 0x5C7A])
        self.scratch_angles = rng.uniform(0, math.pi, 2)

    # ---- objects per cell -------------------------------------------------------------------------------

    def _rng(self, kind: int, ci: int, cj: int):
        return np.random.default_rng([self.seed, kind, ci + (1 << 20), cj + (1 << 20)])

    def _centres(self, rng, rate: float, ci: int, cj: int):
        n = rng.poisson(rate * CELL * CELL)
        return n, ci * CELL + rng.random(n) * CELL, cj * CELL + rng.random(n) * CELL

    def stones(self, ci: int, cj: int) -> _Particles:
        s = self.style
        rng = self._rng(_STONES, ci, cj)
        n, cy, cx = self._centres(rng, self.stone_rate, ci, cj)
        return _draw_particles(rng, n, cy, cx, self.r_min, self.r_max, s.stone_shapes, s.stone_elongation,
                               self.palette, s.stone_color_spread, s.stone_textures, s.stone_texture_strength)

    def sand(self, ci: int, cj: int) -> _Particles:
        rng = self._rng(_SAND, ci, cj)
        n, cy, cx = self._centres(rng, self.sand_rate, ci, cj)
        p = _draw_particles(rng, n, cy, cx, self.sand_lo, self.sand_hi, (0.5, 0.5, 0.0), 1.5, self.sand_palette,
                            min(12.0, self.style.stone_color_spread), (0.0, 0.0, 0.3, 0.7), 0.5)
        keep = rng.random(n) < 0.55 + 0.45 * value_noise_at(cy, cx, 60 * self.px_mm, self.salt + 101)
        return _Particles(*[getattr(p, f)[keep] for f in _Particles.__dataclass_fields__])

    def pullouts(self, ci: int, cj: int) -> _Particles:
        rng = self._rng(_PULLOUTS, ci, cj)
        n, cy, cx = self._centres(rng, self.pullout_rate, ci, cj)
        return _draw_particles(rng, n, cy, cx, 0.1 * self.px_mm, 0.6 * self.px_mm, (0, 1, 0), 1.5,
                               np.zeros((1, 3)), 0.0, (0, 0, 0, 1), 0.0)

    def voids(self, ci: int, cj: int) -> _Voids:
        s = self.style
        rng = self._rng(_VOIDS, ci, cj)
        n, cy, cx = self._centres(rng, self.void_rate, ci, cj)
        r = np.clip(self.void_r_med * np.exp(s.void_sigma * rng.standard_normal(n)), 0.5, self.void_r_max)
        w = np.asarray(s.void_looks, float)
        voids = _Voids(cy=cy, cx=cx, radius=r, look=rng.choice(len(w), n, p=w / w.sum()),
                       fill=rng.uniform(0.2, 0.9, n), fill_dir=rng.uniform(0, 2 * math.pi, n), order=rng.random(n))
        if self.entrapped_rate == 0:
            return voids
        big = self._rng(_ENTRAPPED, ci, cj)  # a stream of its own: the entrained voids are drawn as without it
        m, by, bx = self._centres(big, self.entrapped_rate, ci, cj)
        r_med, r_min, r_max = self.entrapped_r
        rb = np.clip(r_med * np.exp(s.entrapped_sigma * big.standard_normal(m)), r_min, r_max)
        large = _Voids(cy=by, cx=bx, radius=rb, look=big.choice(len(w), m, p=w / w.sum()),
                       fill=big.uniform(0.2, 0.9, m), fill_dir=big.uniform(0, 2 * math.pi, m), order=1 + big.random(m))
        # painted after the entrained voids (order > 1): a small void never shows inside a large cavity
        return _Voids.concat([voids, large])

    def cracks(self, ci: int, cj: int) -> _Cracks:
        rng = self._rng(_CRACKS, ci, cj)
        n, cy, cx = self._centres(rng, self.crack_rate, ci, cj)
        length = rng.uniform(*self.crack_len, n)
        heading = rng.uniform(0, 2 * math.pi, n)[:, None] + np.cumsum(rng.normal(0, 0.35, (n, 4)), axis=1)
        step = (length / 4)[:, None]
        ys = np.concatenate([cy[:, None], cy[:, None] + np.cumsum(step * np.sin(heading), axis=1)], axis=1)
        xs = np.concatenate([cx[:, None], cx[:, None] + np.cumsum(step * np.cos(heading), axis=1)], axis=1)
        width = np.maximum(0.7, rng.uniform(8, 40, n) / self.style.pixel_size_um)
        return _Cracks(ys, xs, width)

    def _gather(self, make, reach: float, Y0: int, X0: int, H: int, W: int) -> list:
        ci0, ci1 = math.floor((Y0 - reach) / CELL), math.floor((Y0 + H + reach) / CELL)
        cj0, cj1 = math.floor((X0 - reach) / CELL), math.floor((X0 + W + reach) / CELL)
        return [make(ci, cj) for ci in range(ci0, ci1 + 1) for cj in range(cj0, cj1 + 1)]

    # ---- rendering ---------------------------------------------------------------------------------------

    def render(self, y0: int, x0: int, h: int, w: int, want_image: bool = True):
        """The global block [y0, y0+h) x [x0, x0+w): (rgb uint8 (h, w, 3) or None, truth uint8 (h, w))."""
        m = self.margin if want_image else 0
        Y0, X0, H, W = y0 - m, x0 - m, h + 2 * m, w + 2 * m
        label = np.zeros((H, W), np.uint8)
        stone_idx = np.full((H, W), -1, np.int32)
        stones = _Particles.concat(self._gather(self.stones, self.stone_reach, Y0, X0, H, W))
        for k in self._hits(stones.cy, stones.cx, stones.extent, stones.order, Y0, X0, H, W):
            box = object_box(stones.cy[k], stones.cx[k], stones.extent[k], Y0, X0, H, W)
            if box is None:
                continue
            sl, dy, dx = box
            inside = _inside(stones, k, dy, dx)
            label[sl][inside] = 1
            stone_idx[sl][inside] = k
        cells = self._gather(self.voids, self.void_reach, Y0, X0, H, W)
        voids = _Voids.concat(cells)
        void_layers = []  # (slices, inside mask, dy, dx, k) for the image
        for k in self._hits(voids.cy, voids.cx, voids.radius, voids.order, Y0, X0, H, W):
            rr = voids.radius[k]
            box = object_box(voids.cy[k], voids.cx[k], rr, Y0, X0, H, W)
            if box is None:
                continue
            sl, dy, dx = box
            inside = (dy * dy + dx * dx <= rr * rr) & (label[sl] != 1)  # air voids sit in the paste
            label[sl][inside] = 2
            if want_image and inside.any():
                void_layers.append((sl, inside, dy, dx, k))
        if not want_image:
            return None, label
        rgb = self._paint(Y0, X0, H, W, label, stone_idx, stones, voids, void_layers)
        rgb = rgb[m : m + h, m : m + w]
        s = self.style
        rgb += s.noise_sigma * (pixel_noise(y0, x0, h, w, self.salt + 23)[..., None]
                                + 0.3 * np.stack([pixel_noise(y0, x0, h, w, self.salt + 29 + 3 * c)
                                                  for c in range(3)], axis=-1))
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8), label[m : m + h, m : m + w]

    @staticmethod
    def _hits(cy, cx, reach, order, Y0, X0, H, W) -> np.ndarray:
        hit = (cy + reach > Y0) & (cy - reach < Y0 + H) & (cx + reach > X0) & (cx - reach < X0 + W)
        idx = np.flatnonzero(hit)
        return idx[np.argsort(order[idx], kind="stable")]

    def _paint(self, Y0, X0, H, W, label, stone_idx, stones, voids, void_layers) -> np.ndarray:
        s, px_mm, salt = self.style, self.px_mm, self.salt
        fine = lambda mm: max(1.5, mm * px_mm)  # noqa: E731 - a texture scale in mm, at least 1.5 px
        # paste: base colour drifting across the slab, mottling, fine speckle
        f32 = np.float32
        drift = fbm(Y0, X0, H, W, (fine(25.0), fine(8.0)), salt + 41, f32) - 0.5  # brightness
        tint = value_noise(Y0, X0, H, W, fine(15.0), salt + 43, f32) - 0.5  # and hue, across the slab
        mottle = fbm(Y0, X0, H, W, (fine(1.0), fine(0.25), fine(0.06)), salt + 11, f32) - 0.5
        speck = value_noise(Y0, X0, H, W, 1.7, salt + 13, f32) - 0.5
        rgb = (np.asarray(s.paste_color, float) + (2 * s.paste_drift * drift + s.paste_mottle * mottle
                                                   + s.paste_speckle * speck)[..., None]
               + (s.paste_drift * tint)[..., None] * np.array([1.0, -0.2, -0.8]))
        paste = label == 0
        # sand grains (paste in the truth): drawn over the paste only
        if s.sand_fraction > 0 and paste.any():
            sand = _Particles.concat(self._gather(self.sand, self.sand_reach, Y0, X0, H, W))
            grain_idx = np.full((H, W), -1, np.int32)
            for k in self._hits(sand.cy, sand.cx, sand.extent, sand.order, Y0, X0, H, W):
                box = object_box(sand.cy[k], sand.cx[k], sand.extent[k], Y0, X0, H, W)
                if box is None:
                    continue
                sl, dy, dx = box
                inside = _inside(sand, k, dy, dx) & paste[sl]
                grain_idx[sl][inside] = k
            is_sand = grain_idx >= 0
            if is_sand.any():
                gi = grain_idx[is_sand]
                tex = value_noise(Y0, X0, H, W, fine(0.04), salt + 61, np.float32)[is_sand] - 0.5
                rgb[is_sand] = sand.color[gi] + (18 * tex)[:, None]
        # stones: base colour and texture by kind
        is_stone = label == 1
        if is_stone.any():
            self._paint_stones(rgb, is_stone, stone_idx, stones, Y0, X0, H, W, fine)
        # pull-outs: angular pits where grains were plucked (paste in the truth)
        if s.pullouts_per_cm2 > 0:
            pits = _Particles.concat(self._gather(self.pullouts, self.pit_reach, Y0, X0, H, W))
            lx, ly = math.cos(math.radians(s.light_angle_deg)), math.sin(math.radians(s.light_angle_deg))
            for k in self._hits(pits.cy, pits.cx, pits.extent, pits.order, Y0, X0, H, W):
                box = object_box(pits.cy[k], pits.cx[k], pits.extent[k], Y0, X0, H, W)
                if box is None:
                    continue
                sl, dy, dx = box
                inside = _inside(pits, k, dy, dx) & paste[sl]
                side = -(dx * lx + dy * ly) / max(pits.radius[k], 1.0)
                shade = np.broadcast_to(s.void_dark + 20 + 70 * np.clip(side, 0, 1), inside.shape)
                rgb[sl][inside] = (0.6 * shade[inside])[:, None] + 0.4 * rgb[sl][inside]
        # voids
        for sl, inside, dy, dx, k in void_layers:
            rgb[sl][inside] = self._void_colour(voids, k, dy, dx, inside, Y0, X0, sl)
        # cracks: thin lines through paste and stone (never voids)
        if s.cracks_per_cm2 > 0:
            self._paint_cracks(rgb, label, Y0, X0, H, W)
        if s.scratches_per_cm > 0:
            rgb *= self._scratches(Y0, X0, H, W)[..., None]
        # imaging: illumination gradient, vignetting of camera fields, colour cast, gamma, defocus
        rgb *= self._illumination(Y0, X0, H, W)[..., None]
        rgb *= np.asarray(s.color_gain, float)
        if s.gamma != 1.0:
            rgb = 255.0 * (np.clip(rgb, 0, None) / 255.0) ** s.gamma
        return gaussian_blur(rgb, s.blur_sigma_px, self.blur_r) if self.blur_r else rgb

    def _paint_stones(self, rgb, is_stone, stone_idx, stones: _Particles, Y0, X0, H, W, fine):
        s = self.style
        idx = stone_idx[is_stone]
        kinds = stones.texture[idx]
        amp = stones.texture_amp[idx]
        col = stones.color[idx].copy()
        grain = value_noise(Y0, X0, H, W, fine(0.03), self.salt + 17, np.float32)[is_stone] - 0.5
        col += (10 * amp * grain)[:, None]
        shade = fbm(Y0, X0, H, W, (fine(3.0), fine(1.0)), self.salt + 19, np.float32)[is_stone] - 0.5
        col += (14 * amp * shade)[:, None]
        for t, name in enumerate(STONE_TEXTURES):
            sel = kinds == t
            if not sel.any():
                continue
            if name == "grains":  # mineral grains: a colour per cell, light, dark and base minerals, dark seams
                ids, seam = cell_noise(Y0, X0, H, W, fine(s.grain_mm), self.salt + 31)
                v = np.mod(ids[is_stone][sel] + stones.salt[idx[sel]], 1.0)
                shift = np.where(v < 0.18, -70.0, np.where(v < 0.45, 45.0, 0.0)) + 30 * (v - 0.5)
                tint = np.where(v[:, None] < 0.45, 0.0, np.array([[12.0, -4.0, -10.0]]) * (v[:, None] > 0.8))
                edge = np.clip(1.5 - seam[is_stone][sel], 0, 1) * -25
                col[sel] += ((shift + edge) * amp[sel])[:, None] + tint * amp[sel][:, None]
            elif name == "veins":
                f = fbm(Y0, X0, H, W, (fine(6 * s.grain_mm), fine(2 * s.grain_mm)), self.salt + 37,
                        np.float32)[is_stone][sel]
                vein = np.exp(-(((f - 0.5) / 0.035) ** 2))
                sign = np.where(stones.salt[idx[sel]] < 0.5, -1.0, 1.0)
                col[sel] += (55 * sign * vein * amp[sel])[:, None]
            elif name == "speckle":
                iy, ix = np.nonzero(is_stone)
                hsh = hash01((iy + Y0)[sel], (ix + X0)[sel], self.salt + 43)
                dots = np.where(hsh < 0.05, -60.0, np.where(hsh > 0.97, 50.0, 0.0))
                col[sel] += (dots * amp[sel])[:, None]
        if s.stone_rim:
            rim = self._stone_rim(is_stone, stone_idx)
            col *= (1 + s.stone_rim * rim[is_stone])[:, None]
        rgb[is_stone] = col

    @staticmethod
    def _stone_rim(is_stone, stone_idx) -> np.ndarray:
        """1 on stone pixels within 2 px of another class or another stone, else 0."""
        edge = np.zeros(is_stone.shape, float)
        for shift in (1, 2):
            for axis in (0, 1):
                for d in (shift, -shift):
                    other = np.roll(stone_idx, d, axis=axis)
                    edge = np.maximum(edge, (other != stone_idx) * (1.0 if shift == 1 else 0.5))
        return edge * is_stone

    def _void_colour(self, voids: _Voids, k: int, dy, dx, inside, Y0, X0, sl) -> np.ndarray:
        s = self.style
        rr = voids.radius[k]
        la = math.radians(s.light_angle_deg)
        travel = np.array([-math.cos(la), -math.sin(la)])  # the light's direction of travel (x, y)
        side = np.broadcast_to((dx * travel[0] + dy * travel[1]) / rr, inside.shape)[inside]  # 1: far wall
        rho = np.broadcast_to(np.sqrt(dx * dx + dy * dy) / rr, inside.shape)[inside]
        look = voids.look[k]
        dark = s.void_dark
        if look == 0:  # a shaded cavity
            v = dark + 45 * (0.5 + 0.5 * side)
            return np.stack([v, v * 0.97, v * 0.95], axis=1)
        if look == 1:  # rim-lit: near wall in shadow, far wall lit, a bright rim where the edge catches light
            v = 0.7 * dark + 110 * np.clip(side, 0, 1) ** 2
            band = rho > 1 - max(1.0, 0.12 * rr) / rr
            v = np.where(band, (150 + 80 * np.clip(side, 0, 1)) * (0.75 + 0.25 * (side > -0.2)), v)
            return np.stack([v, v * 0.98, v * 0.95], axis=1)
        fill = np.asarray(s.void_fill, float)
        iy, ix = np.nonzero(inside)
        tex = hash01(iy + sl[0].start + Y0, ix + sl[1].start + X0, self.salt + 71)[:, None] - 0.5
        if look == 2:  # partly filled: deposits lining the wall, or settled on one side
            if voids.fill[k] < 0.55:
                deposit = rho > 1 - voids.fill[k]
            else:
                fd = np.array([math.cos(voids.fill_dir[k]), math.sin(voids.fill_dir[k])])
                along = np.broadcast_to((dx * fd[0] + dy * fd[1]) / rr, inside.shape)[inside]
                deposit = along > 1 - 2 * (voids.fill[k] - 0.35)
            v = dark + 45 * (0.5 + 0.5 * side)
            cavity = np.stack([v, v * 0.97, v * 0.95], axis=1)
            return np.where(deposit[:, None], fill * (0.85 + 0.3 * tex), cavity)
        # coated: filled to the brim with one material; a slightly darker edge
        return fill * (0.97 + 0.08 * tex) * (1 - 0.12 * (rho > 0.85))[:, None]

    def _paint_cracks(self, rgb, label, Y0, X0, H, W) -> None:
        s = self.style
        cracks = self._gather(self.cracks, self.crack_len[1] + 4, Y0, X0, H, W)
        ys = np.concatenate([c.y for c in cracks])
        xs = np.concatenate([c.x for c in cracks])
        widths = np.concatenate([c.width for c in cracks])
        for k in range(len(widths)):
            half = widths[k] / 2 + 1.5
            for j in range(4):
                ay, ax, by, bx = ys[k, j], xs[k, j], ys[k, j + 1], xs[k, j + 1]
                a0 = max(int(math.floor(min(ay, by) - half)), Y0)
                a1 = min(int(math.ceil(max(ay, by) + half)) + 1, Y0 + H)
                b0 = max(int(math.floor(min(ax, bx) - half)), X0)
                b1 = min(int(math.ceil(max(ax, bx) + half)) + 1, X0 + W)
                if a0 >= a1 or b0 >= b1:
                    continue
                py = (np.arange(a0, a1) + 0.5)[:, None]
                pxx = (np.arange(b0, b1) + 0.5)[None, :]
                vy, vx = by - ay, bx - ax
                t = np.clip(((py - ay) * vy + (pxx - ax) * vx) / max(vy * vy + vx * vx, 1e-9), 0, 1)
                d = np.hypot(py - (ay + t * vy), pxx - (ax + t * vx))
                strength = np.clip(widths[k] / 2 + 0.5 - d, 0, 1) * np.minimum(1.0, widths[k])
                strength = strength * (label[a0 - Y0 : a1 - Y0, b0 - X0 : b1 - X0] != 2)
                region = rgb[a0 - Y0 : a1 - Y0, b0 - X0 : b1 - X0]
                target = np.clip(region * s.crack_color, 0, 250)
                region += (target - region) * strength[..., None]

    def _scratches(self, Y0, X0, H, W) -> np.ndarray:
        """Polishing scratches: thin straight segments in two directions; a brightness factor per pixel."""
        s = self.style
        spacing = 1e4 / (s.pixel_size_um * s.scratches_per_cm)
        slot = 20.0 * self.px_mm
        yy = (np.arange(Y0, Y0 + H) + 0.5)[:, None]
        xx = (np.arange(X0, X0 + W) + 0.5)[None, :]
        factor = np.ones((H, W))
        for d, theta in enumerate(self.scratch_angles):
            c, sn = math.cos(theta), math.sin(theta)
            u = xx * c + yy * sn
            v = -xx * sn + yy * c
            k0 = np.floor(u / spacing).astype(np.int64)
            for dk in (-1, 0, 1):
                k = k0 + dk
                centre = (k + hash01(k, np.zeros_like(k), self.salt + 83 + d)) * spacing
                m = np.floor(v / slot).astype(np.int64)
                on = hash01(k, m, self.salt + 89 + d) < 0.5
                start = hash01(k, m, self.salt + 97 + d) * 0.5 * slot
                along = v - m * slot
                seg = on & (along > start) & (along < start + 0.5 * slot)
                near = np.clip(1.0 - np.abs(u - centre), 0, 1) * seg
                sign = np.where(hash01(k, np.ones_like(k), self.salt + 101 + d) < 0.5, -0.09, 0.07)
                factor += near * sign
        return factor

    def _illumination(self, Y0, X0, H, W) -> np.ndarray:
        s = self.style
        yy = (np.arange(Y0, Y0 + H) + 0.5)[:, None]
        xx = (np.arange(X0, X0 + W) + 0.5)[None, :]
        a = math.radians(s.illumination_angle_deg)
        span = abs(self.width * math.cos(a)) + abs(self.height * math.sin(a)) or 1.0
        proj = ((xx - self.width / 2) * math.cos(a) + (yy - self.height / 2) * math.sin(a)) / span
        light = 1.0 + s.illumination_gradient * proj
        light = light + 0.03 * (fbm(Y0, X0, H, W, (700.0, 230.0), self.salt + 53, np.float32) - 0.5)
        if s.vignetting > 0:
            f = float(s.field_px)
            fy = np.mod(yy, f) / f - 0.5
            fx = np.mod(xx, f) / f - 0.5
            light = light * (1 - s.vignetting * 2 * (fy * fy + fx * fx))
        return light
