"""Position-hashed randomness: every value is a function of global pixel coordinates and a salt.

This is what lets a slab be rendered tile by tile at any size: a tile computes exactly the values the whole
slab would have at its pixels, whatever the tiling.
"""

from __future__ import annotations

import numpy as np

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_M3 = np.uint64(0xFF51AFD7ED558CCD)
_M4 = np.uint64(0xC4CEB9FE1A85EC53)


def hash01(iy: np.ndarray, ix: np.ndarray, salt: int) -> np.ndarray:
    """Uniform [0, 1) from integer coordinates (any sign), broadcast over iy and ix."""
    with np.errstate(over="ignore"):
        h = iy.astype(np.int64).view(np.uint64) * _M1
        h = h ^ (ix.astype(np.int64).view(np.uint64) * _M2)
        h = h ^ np.uint64(salt & 0xFFFFFFFFFFFFFFFF)
        h ^= h >> np.uint64(33)
        h *= _M3
        h ^= h >> np.uint64(33)
        h *= _M4
        h ^= h >> np.uint64(33)
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def value_noise(y0: int, x0: int, h: int, w: int, scale: float, salt: int, dtype=np.float64) -> np.ndarray:
    """Smooth value noise in [0, 1) over the global pixel block [y0, y0+h) x [x0, x0+w).

    ``dtype`` float32 halves the cost; the classic generator keeps float64 (its bytes must not change)."""
    gy = (np.arange(y0, y0 + h) + 0.5) / scale
    gx = (np.arange(x0, x0 + w) + 0.5) / scale
    iy, ix = np.floor(gy).astype(np.int64), np.floor(gx).astype(np.int64)
    fy, fx = gy - iy, gx - ix
    fy, fx = (fy * fy * (3 - 2 * fy)).astype(dtype), (fx * fx * (3 - 2 * fx)).astype(dtype)
    ly = np.arange(iy[0], iy[-1] + 2)
    lx = np.arange(ix[0], ix[-1] + 2)
    lattice = hash01(ly[:, None], lx[None, :], salt).astype(dtype)
    ry, rx = iy - ly[0], ix - lx[0]
    top = lattice[ry][:, rx] * (1 - fx) + lattice[ry][:, rx + 1] * fx
    bottom = lattice[ry + 1][:, rx] * (1 - fx) + lattice[ry + 1][:, rx + 1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def fbm(y0, x0, h, w, scales, salt, dtype=np.float64) -> np.ndarray:
    """Fractal sum of value noise at ``scales`` (coarse to fine, amplitudes 1, 1/2, 1/3, ...), in [0, 1)."""
    out = np.zeros((h, w), dtype)
    total = 0.0
    for i, s in enumerate(scales):
        amp = 1.0 / (i + 1)
        out += amp * value_noise(y0, x0, h, w, s, salt + 7919 * (i + 1), dtype)
        total += amp
    return out / total


def pixel_noise(y0, x0, h, w, salt) -> np.ndarray:
    """Approximately normal N(0, 1) per-pixel noise (sum of three uniforms)."""
    iy = np.arange(y0, y0 + h)[:, None]
    ix = np.arange(x0, x0 + w)[None, :]
    s = hash01(iy, ix, salt) + hash01(iy, ix, salt + 1) + hash01(iy, ix, salt + 2)
    return (s - 1.5) * 2.0


def cell_noise(y0: int, x0: int, h: int, w: int, scale: float, salt: int) -> tuple[np.ndarray, np.ndarray]:
    """Worley (cellular) noise: per pixel, a uniform [0, 1) value identifying the nearest of a jittered lattice
    of points (one per ``scale`` x ``scale`` cell), and the distance in pixels to the border between that cell
    and the next (half of F2 - F1). Mineral grains: one colour per cell, dark seams where the distance is small."""
    gy = (np.arange(y0, y0 + h) + 0.5) / scale
    gx = (np.arange(x0, x0 + w) + 0.5) / scale
    iy, ix = np.floor(gy).astype(np.int64), np.floor(gx).astype(np.int64)
    ly = np.arange(iy[0] - 1, iy[-1] + 2)
    lx = np.arange(ix[0] - 1, ix[-1] + 2)
    py = ly[:, None] + hash01(ly[:, None], lx[None, :], salt)  # feature point of each lattice cell
    px = lx[None, :] + hash01(ly[:, None], lx[None, :], salt + 1)
    ids = hash01(ly[:, None], lx[None, :], salt + 2)
    ry, rx = iy - ly[0], ix - lx[0]
    f1 = np.full((h, w), np.inf)
    f2 = np.full((h, w), np.inf)
    best = np.zeros((h, w))
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            cy, cx = (ry + dy)[:, None], (rx + dx)[None, :]
            d = (gy[:, None] - py[cy, cx]) ** 2 + (gx[None, :] - px[cy, cx]) ** 2
            closer = d < f1
            f2 = np.where(closer, f1, np.minimum(f2, d))
            best = np.where(closer, ids[cy, cx], best)
            f1 = np.where(closer, d, f1)
    return best, 0.5 * (np.sqrt(f2) - np.sqrt(f1)) * scale


def gaussian_blur(img: np.ndarray, sigma: float, r: int) -> np.ndarray:
    """Separable Gaussian blur with kernel radius ``r``; the outer ``r`` pixels are garbage (callers render a
    margin of at least ``r`` and crop it)."""
    if sigma <= 0:
        return img
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    out = np.zeros_like(img)
    for i, wgt in enumerate(k):
        out[r:-r] += wgt * img[i : img.shape[0] - 2 * r + i]
    out2 = np.zeros_like(img)
    for i, wgt in enumerate(k):
        out2[:, r:-r] += wgt * out[:, i : img.shape[1] - 2 * r + i]
    return out2
