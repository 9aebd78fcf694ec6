"""Synthetic polished concrete sections with exact ground truth, streamed tile by tile at any size.

Everything in a slab is a function of the pixel's global position and the seed:

- objects (aggregate stones, air voids) are generated per cell of a coarse grid from an RNG seeded by
  (seed, cell), so any tile can gather the objects that reach it without generating the rest of the slab;
- textures, noise and illumination are hash-based value noise of global coordinates;
- the blur is applied to each tile rendered with a margin, so a tile's pixels do not depend on the tiling.

Hence peak memory is set by the tile size alone, and the same seed gives identical bytes.

Geometry: stones are star-shaped blobs r(t) = R (1 + sum_k a_k cos(k t + p_k)) with a graded size
distribution p(R) ~ R^-2.5 (many small, few large), placed as a Boolean model whose intensity is set from the
target aggregate fraction; voids are discs with a lognormal diameter distribution, drawn in the paste only,
with intensity set from the target air fraction. The printed fractions are the truth's real ones.
"""

from __future__ import annotations

import itertools
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bigseg.errors import BigsegError

JPEG_MAX_SIDE = 65535
TILE = 512  # render/TIFF tile side
BLUR_MARGIN = 3
CELL = 512  # object cell side


@dataclass(frozen=True)
class SynthParams:
    width: int
    height: int
    seed: int = 0
    pixel_size_um: float = 10.0
    aggregate_fraction: float = 0.68
    air_fraction: float = 0.05
    stone_radius_mm: tuple[float, float] = (0.25, 4.0)
    void_median_diameter_mm: float = 0.12
    void_sigma: float = 0.6
    void_max_diameter_mm: float = 2.5
    blur_sigma_px: float = 0.8
    noise_sigma: float = 4.0

    def __post_init__(self):
        if self.width < 1 or self.height < 1:
            raise BigsegError(f"slab size must be positive, got {self.width}x{self.height}")
        if not 0.0 <= self.aggregate_fraction < 0.95:
            raise BigsegError(f"aggregate fraction must be in [0, 0.95), got {self.aggregate_fraction}")
        if not 0.0 <= self.air_fraction < 0.5 or self.air_fraction >= 1 - self.aggregate_fraction:
            raise BigsegError(f"air fraction must be in [0, 0.5) and below the paste fraction, got {self.air_fraction}")
        if self.pixel_size_um <= 0:
            raise BigsegError(f"pixel size must be positive, got {self.pixel_size_um}")


# ---------------------------------------------------------------------------------------------------------
# position hashing and value noise


_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_M3 = np.uint64(0xFF51AFD7ED558CCD)
_M4 = np.uint64(0xC4CEB9FE1A85EC53)


def _hash01(iy: np.ndarray, ix: np.ndarray, salt: int) -> np.ndarray:
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


def _value_noise(y0: int, x0: int, h: int, w: int, scale: float, salt: int) -> np.ndarray:
    """Smooth value noise in [0, 1) over the global pixel block [y0, y0+h) x [x0, x0+w)."""
    gy = (np.arange(y0, y0 + h) + 0.5) / scale
    gx = (np.arange(x0, x0 + w) + 0.5) / scale
    iy, ix = np.floor(gy).astype(np.int64), np.floor(gx).astype(np.int64)
    fy, fx = gy - iy, gx - ix
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
    ly = np.arange(iy[0], iy[-1] + 2)
    lx = np.arange(ix[0], ix[-1] + 2)
    lattice = _hash01(ly[:, None], lx[None, :], salt)
    ry, rx = iy - ly[0], ix - lx[0]
    top = lattice[ry][:, rx] * (1 - fx) + lattice[ry][:, rx + 1] * fx
    bottom = lattice[ry + 1][:, rx] * (1 - fx) + lattice[ry + 1][:, rx + 1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def _fbm(y0, x0, h, w, scales, salt) -> np.ndarray:
    out = np.zeros((h, w))
    total = 0.0
    for i, s in enumerate(scales):
        amp = 1.0 / (i + 1)
        out += amp * _value_noise(y0, x0, h, w, s, salt + 7919 * (i + 1))
        total += amp
    return out / total


def _pixel_noise(y0, x0, h, w, salt) -> np.ndarray:
    """Approximately normal N(0, 1) per-pixel noise (sum of three uniforms)."""
    iy = np.arange(y0, y0 + h)[:, None]
    ix = np.arange(x0, x0 + w)[None, :]
    s = _hash01(iy, ix, salt) + _hash01(iy, ix, salt + 1) + _hash01(iy, ix, salt + 2)
    return (s - 1.5) * 2.0


# ---------------------------------------------------------------------------------------------------------
# objects


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

    p: SynthParams
    r_min: float = field(init=False)
    r_max: float = field(init=False)
    stone_rate: float = field(init=False)
    void_rate: float = field(init=False)
    void_r_med: float = field(init=False)
    void_r_max: float = field(init=False)
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
        self.reach = max(self.r_max * (1 + _MAX_HARM_SUM), self.void_r_max) + BLUR_MARGIN + 1

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
        return _Voids(cy=ci * CELL + rng.random(n) * CELL, cx=cj * CELL + rng.random(n) * CELL, radius=r)


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
    s = _Stones(*[np.concatenate([getattr(x, f) for x in stones]) for f in _Stones.__dataclass_fields__])
    v = _Voids(*[np.concatenate([getattr(x, f) for x in voids]) for f in _Voids.__dataclass_fields__])
    return s, v


# ---------------------------------------------------------------------------------------------------------
# rendering


def _object_box(cy: float, cx: float, reach: float, Y0: int, X0: int, H: int, W: int):
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
        box = _object_box(stones.cy[k], stones.cx[k], ext[k], Y0, X0, H, W)
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
    void_shade = np.zeros((H, W)) if want_image else None
    for k in np.flatnonzero(vhit):
        rr = voids.radius[k]
        box = _object_box(voids.cy[k], voids.cx[k], rr, Y0, X0, H, W)
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
    mottle = _fbm(Y0, X0, H, W, (96.0, 24.0, 6.0), salt + 11) - 0.5
    fine = _value_noise(Y0, X0, H, W, 1.7, salt + 13) - 0.5
    rgb = np.empty((H, W, 3))
    paste_color = np.array([172.0, 166.0, 154.0])
    rgb[:] = paste_color + (26 * mottle + 10 * fine)[..., None]
    is_stone = label == 1
    if is_stone.any():
        idx = stone_idx[is_stone]
        grain = _value_noise(Y0, X0, H, W, 2.5, salt + 17)[is_stone] - 0.5
        vein = _fbm(Y0, X0, H, W, (40.0, 12.0), salt + 19)[is_stone] - 0.5
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
    rgb = _gaussian_blur(rgb, p.blur_sigma_px)
    rgb = rgb[m : m + h, m : m + w]
    rgb += p.noise_sigma * _pixel_noise(y0, x0, h, w, salt + 23)[..., None]
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8), label[m : m + h, m : m + w]


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return img
    r = BLUR_MARGIN
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    out = np.zeros_like(img)
    for i, wgt in enumerate(k):
        out[r:-r] += wgt * img[i : img.shape[0] - 2 * r + i]
    out2 = np.zeros_like(img)
    for i, wgt in enumerate(k):
        out2[:, r:-r] += wgt * out[:, i : img.shape[1] - 2 * r + i]
    return out2  # the outer r pixels are garbage; callers crop their margin


# ---------------------------------------------------------------------------------------------------------
# writing


def _tiles(model: _Model, want_image: bool, counts: np.ndarray | None, threads: int = 2) -> Iterator[np.ndarray]:
    """Yield TIFF tiles (TILE x TILE, row-major) of the image (want_image) or of the truth.

    Tiles render on ``threads`` threads (numpy releases the GIL in the heavy parts) with at most 2 x threads
    tiles in flight, and come out in order: memory stays a few tiles, whatever the slab size."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    p = model.p
    coords = iter([(y0, x0) for y0 in range(0, p.height, TILE) for x0 in range(0, p.width, TILE)])

    def render(c):
        y0, x0 = c
        h, w = min(TILE, p.height - y0), min(TILE, p.width - x0)
        rgb, label = _render_tile(model, y0, x0, h, w, want_image)
        return rgb, label, h, w

    with ThreadPoolExecutor(threads) as pool:
        pending = deque(pool.submit(render, c) for c in itertools.islice(coords, 2 * threads))
        while pending:
            rgb, label, h, w = pending.popleft().result()
            nxt = next(coords, None)
            if nxt is not None:
                pending.append(pool.submit(render, nxt))
            out = rgb if want_image else label
            if counts is not None:
                counts += np.bincount(label.ravel(), minlength=3)[:3]
            if h < TILE or w < TILE:  # tifffile wants full tiles; the padding lies outside the image
                pad = [(0, TILE - h), (0, TILE - w)] + ([(0, 0)] if out.ndim == 3 else [])
                out = np.pad(out, pad)
            yield out


def _write_tiff(path: Path, tiles: Iterator[np.ndarray], shape, pixel_size_um: float, compression="zlib"):
    import tifffile

    px_per_cm = 1e4 / pixel_size_um
    tifffile.imwrite(
        path,
        data=tiles,
        shape=shape,
        dtype=np.uint8,
        tile=(TILE, TILE),
        bigtiff=True,
        photometric="rgb" if len(shape) == 3 else "minisblack",
        compression=compression,
        compressionargs={"level": 1} if compression == "zlib" else None,
        resolution=(px_per_cm, px_per_cm),
        resolutionunit="CENTIMETER",
        metadata=None,
    )


def _vips_convert(tiff: Path, out: Path, pixel_size_um: float):
    import pyvips

    img = pyvips.Image.new_from_file(str(tiff), access="sequential")
    res = 1000.0 / pixel_size_um  # pixels per mm
    img = img.copy(xres=res, yres=res)
    suffix = out.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        img.jpegsave(str(out), Q=95)  # keeps the JFIF density: the pixel size travels with the file
    else:
        img.pngsave(str(out), compression=6, strip=False)


def default_truth_path(image_path: Path) -> Path:
    suffix = image_path.suffix.lower()
    ext = ".tif" if suffix in (".tif", ".tiff") else ".png"
    return image_path.with_name(image_path.stem + ".truth" + ext)


SUPPORTED = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


def synthesize(out: str | os.PathLike, params: SynthParams, truth: str | os.PathLike | None = None,
               progress: bool = False) -> dict:
    """Write a synthetic slab image to ``out`` (format by extension) and its truth mask beside it.

    Returns a summary dict: paths, size, seed, pixel size and the truth's real class fractions.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in SUPPORTED:
        raise BigsegError(f"{out}: unsupported output format {suffix or '(none)'}; use .tif, .png or .jpg")
    if suffix in (".jpg", ".jpeg") and max(params.width, params.height) > JPEG_MAX_SIDE:
        raise BigsegError(
            f"JPEG is limited to {JPEG_MAX_SIDE} px a side; {params.width}x{params.height} needs .tif (BigTIFF)"
        )
    truth = Path(truth) if truth else default_truth_path(out)
    if truth.suffix.lower() not in (".tif", ".tiff", ".png"):
        raise BigsegError(f"{truth}: truth masks must be lossless: use .png or .tif")
    for p in (out, truth):
        if not p.parent.is_dir():
            raise BigsegError(f"{p.parent}: output folder does not exist")
    model = _Model(params)
    counts = np.zeros(3, np.int64)
    total_tiles = math.ceil(params.width / TILE) * math.ceil(params.height / TILE)

    def progress_wrap(it, desc):
        if not progress:
            return it
        from tqdm import tqdm

        return tqdm(it, total=total_tiles, desc=desc, unit="tile", leave=False)

    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".synth-") as tmp:
        tmp = Path(tmp)
        staged_img = tmp / ("image" + suffix)
        img_tiff = staged_img if suffix in (".tif", ".tiff") else tmp / "image-raw.tif"
        _write_tiff(img_tiff, progress_wrap(_tiles(model, True, None), "synth image"),
                    (params.height, params.width, 3), params.pixel_size_um)
        if img_tiff != staged_img:
            _vips_convert(img_tiff, staged_img, params.pixel_size_um)
        truth_suffix = truth.suffix.lower()
        staged_truth = tmp / ("truth" + truth_suffix)
        truth_tiff = staged_truth if truth_suffix in (".tif", ".tiff") else tmp / "truth-raw.tif"
        _write_tiff(truth_tiff, progress_wrap(_tiles(model, False, counts), "synth truth"),
                    (params.height, params.width), params.pixel_size_um)
        if truth_tiff != staged_truth:
            _vips_convert(truth_tiff, staged_truth, params.pixel_size_um)
        os.replace(staged_img, out)
        os.replace(staged_truth, truth)
    total = counts.sum()
    fractions = {name: float(c / total) for name, c in zip(("paste", "stone", "void"), counts, strict=True)}
    return {
        "image": str(out),
        "truth": str(truth),
        "width": params.width,
        "height": params.height,
        "seed": params.seed,
        "pixel_size_um": params.pixel_size_um,
        "pixel_counts": {name: int(c) for name, c in zip(("paste", "stone", "void"), counts, strict=True)},
        "fractions": fractions,
        "targets": {"stone": params.aggregate_fraction, "void": params.air_fraction},
    }


def render_region(params: SynthParams, y0: int, x0: int, h: int, w: int):
    """The slab's pixels and truth over one region, in memory (for tests and small experiments)."""
    return _render_tile(_Model(params), y0, x0, h, w, True)


def make_training_set(out_dir: str | os.PathLike, n_train: int = 6, n_val: int = 2, size: int = 2048,
                      seed: int = 100, overwrite: bool = False, echo=print) -> dict:
    """Synthetic slabs ingested as stores ``OUT/train/slab-K.zarr`` and ``OUT/val/slab-K.zarr``.

    Pixel size (6-16 um), aggregate (0.55-0.75) and air (0.02-0.09) fractions vary from slab to slab, so a model
    trained on them sees voids and stones over a range of apparent sizes. Validation slabs use other seeds.
    """
    from bigseg.ingest import ingest

    out = Path(out_dir)
    made = {"train": [], "val": []}
    for split, n, base in (("train", n_train, seed), ("val", n_val, seed + 10_000)):
        (out / split).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            rng = np.random.default_rng([base, k])
            params = SynthParams(size, size, seed=base + k, pixel_size_um=float(rng.uniform(6, 16)),
                                 aggregate_fraction=float(rng.uniform(0.55, 0.75)),
                                 air_fraction=float(rng.uniform(0.02, 0.09)))
            store = out / split / f"slab-{k}.zarr"
            with tempfile.TemporaryDirectory(dir=out) as tmp:
                s = synthesize(Path(tmp) / "slab.png", params)
                ingest(s["image"], store, truth=s["truth"], pixel_size=params.pixel_size_um, overwrite=overwrite)
            made[split].append(str(store))
            echo(f"{store}: {size}x{size}, {params.pixel_size_um:.1f} um/px, stone {s['fractions']['stone']:.3f}, "
                 f"void {s['fractions']['void']:.3f}")
    return made
