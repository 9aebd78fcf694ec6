"""Writing synthetic slabs: image and exact truth, streamed tile by tile to TIFF (then PNG/JPEG), any size.

Peak memory is set by the tile size alone, and the same parameters (seed, style) give identical bytes.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bigseg.errors import BigsegError
from bigseg.progress import progress_bar
from bigseg.results import SynthResult
from bigseg.synth import classic
from bigseg.synth.scene import Scene
from bigseg.synth.styles import HELD_OUT, Style, resolve

JPEG_MAX_SIDE = 65535
TILE = 512  # render/TIFF tile side
SUPPORTED = (".tif", ".tiff", ".png", ".jpg", ".jpeg")

_CLASSIC_DEFAULTS = {"pixel_size_um": 10.0, "aggregate_fraction": 0.68, "air_fraction": 0.05}


@dataclass(frozen=True)
class SynthParams:
    """A synthetic slab: size, seed and style; ``pixel_size_um``, ``aggregate_fraction`` and ``air_fraction``
    override the style's (None: the style's own; the classic style's are 10 um, 0.68 and 0.05).
    ``entrapped_air_share`` of the air is drawn as a second population of voids, entrapped air of
    ``entrapped_median_diameter_mm`` median diameter (lognormal, 1 to 4 mm) among the usual entrained ones, the air
    fraction unchanged (0: none, the slab exactly as without the field), on the classic generator and on a styled
    slab alike (there in the style's own void looks: rim-lit, filled...). The other fields shape the classic style
    only."""

    width: int
    height: int
    seed: int = 0
    pixel_size_um: float | None = None
    aggregate_fraction: float | None = None
    air_fraction: float | None = None
    style: str = "classic"
    stone_radius_mm: tuple[float, float] = (0.25, 4.0)
    void_median_diameter_mm: float = 0.12
    void_sigma: float = 0.6
    void_max_diameter_mm: float = 2.5
    entrapped_air_share: float = 0.0
    entrapped_median_diameter_mm: float = 1.6
    entrapped_sigma: float = 0.35
    blur_sigma_px: float = 0.8
    noise_sigma: float = 4.0

    def __post_init__(self):
        if self.width < 1 or self.height < 1:
            raise BigsegError(f"slab size must be positive, got {self.width}x{self.height}")
        for name in ("pixel_size_um", "aggregate_fraction", "air_fraction"):
            v = getattr(self, name)
            if v is not None and not math.isfinite(v):
                raise BigsegError(f"{name.replace('_', ' ')} must be a finite number, got {v}")
            if v is None and self.style == "classic":
                object.__setattr__(self, name, _CLASSIC_DEFAULTS[name])
        if self.style == "classic":
            if not 0.0 <= self.aggregate_fraction < 0.95:
                raise BigsegError(f"aggregate fraction must be in [0, 0.95), got {self.aggregate_fraction}")
            if not 0.0 <= self.air_fraction < 0.5 or self.air_fraction >= 1 - self.aggregate_fraction:
                raise BigsegError(
                    f"air fraction must be in [0, 0.5) and below the paste fraction, got {self.air_fraction}")
            if self.pixel_size_um <= 0:
                raise BigsegError(f"pixel size must be positive, got {self.pixel_size_um}")
        if not 0.0 <= self.entrapped_air_share < 1.0:
            raise BigsegError(f"entrapped air share must be in [0, 1), got {self.entrapped_air_share}")
        if self.style != "classic":
            self.resolved_style()  # validates the name and the overrides

    def resolved_style(self) -> Style | None:
        """The Style (with the overrides applied) of a styled slab; None for the classic generator."""
        if self.style == "classic":
            return None
        style = resolve(self.style, self.seed)
        changes = {k: getattr(self, k) for k in ("pixel_size_um", "aggregate_fraction", "air_fraction")
                   if getattr(self, k) is not None}
        if self.entrapped_air_share > 0:
            changes.update({k: getattr(self, k) for k in ("entrapped_air_share", "entrapped_median_diameter_mm",
                                                          "entrapped_sigma")})
        return dataclasses.replace(style, **changes) if changes else style

    @property
    def pixel_size(self) -> float:
        style = self.resolved_style()
        if style:
            return style.pixel_size_um
        assert self.pixel_size_um is not None  # the classic generator's default is set in __post_init__
        return self.pixel_size_um


def renderer(params: SynthParams) -> Callable:
    """``render(y0, x0, h, w, want_image) -> (rgb uint8 or None, truth uint8)`` for the slab."""
    style = params.resolved_style()
    if style is None:
        model = classic._Model(params)
        return lambda y0, x0, h, w, want_image: classic._render_tile(model, y0, x0, h, w, want_image)
    return Scene(style, params.seed, params.width, params.height).render


def render_region(params: SynthParams, y0: int, x0: int, h: int, w: int):
    """The slab's pixels and truth over one region, in memory (for tests, training crops, small experiments)."""
    return renderer(params)(y0, x0, h, w, True)


def _tiles(params: SynthParams, want_image: bool, counts: np.ndarray | None, threads: int = 2) -> Iterator:
    """Yield TIFF tiles (TILE x TILE, row-major) of the image (want_image) or of the truth.

    Tiles render on ``threads`` threads (numpy releases the GIL in the heavy parts) with at most 2 x threads
    tiles in flight, and come out in order: memory stays a few tiles, whatever the slab size."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    render_tile = renderer(params)
    coords = iter([(y0, x0) for y0 in range(0, params.height, TILE) for x0 in range(0, params.width, TILE)])

    def render(c):
        y0, x0 = c
        h, w = min(TILE, params.height - y0), min(TILE, params.width - x0)
        rgb, label = render_tile(y0, x0, h, w, want_image)
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
    tile: tuple[int, int] | None = (TILE, TILE)
    data: Iterator[np.ndarray] | np.ndarray = tiles
    if shape[0] < TILE or shape[1] < TILE:  # libvips refuses tiles larger than the image ("tile size out of
        # range"): a thin or small slab is written in strips, assembled from its tiles (under TILE rows or columns)
        nx = -(-shape[1] // TILE)
        full = np.zeros((-(-shape[0] // TILE) * TILE, nx * TILE, *shape[2:]), np.uint8)
        for k, t in enumerate(tiles):
            y, x = divmod(k, nx)
            full[y * TILE : (y + 1) * TILE, x * TILE : (x + 1) * TILE] = t
        data, tile = full[: shape[0], : shape[1]], None
    tifffile.imwrite(
        path,
        data=data,
        shape=None if tile is None else shape,
        dtype=None if tile is None else np.uint8,
        tile=tile,
        bigtiff=True,
        photometric="rgb" if len(shape) == 3 else "minisblack",
        compression=compression,
        compressionargs={"level": 1} if compression == "zlib" else None,
        resolution=(px_per_cm, px_per_cm),
        resolutionunit="CENTIMETER",
        metadata=None,
    )


def _vips_convert(tiff: Path, out: Path, pixel_size_um: float, jpeg_quality: int = 95):
    import pyvips

    img = pyvips.Image.new_from_file(str(tiff), access="sequential")
    res = 1000.0 / pixel_size_um  # pixels per mm
    img = img.copy(xres=res, yres=res)
    suffix = out.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        img.jpegsave(str(out), Q=jpeg_quality)  # keeps the JFIF density: the pixel size travels with the file
    else:
        img.pngsave(str(out), compression=6, strip=False)


def default_truth_path(image_path: Path) -> Path:
    suffix = image_path.suffix.lower()
    ext = ".tif" if suffix in (".tif", ".tiff") else ".png"
    return image_path.with_name(image_path.stem + ".truth" + ext)


def synthesize(out: str | os.PathLike, params: SynthParams, truth: str | os.PathLike | None = None,
               progress: bool = False) -> SynthResult:
    """Write a synthetic slab image to ``out`` (format by extension) and its truth mask beside it.

    A JPEG is written at the style's JPEG quality (95 for classic). Returns a :class:`bigseg.results.SynthResult`:
    paths, size, seed, style (with every parameter of a styled slab), pixel size and the truth's real class
    fractions (read like the dict it replaces: ``s["image"]``).
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
    style = params.resolved_style()
    pixel = params.pixel_size
    counts = np.zeros(3, np.int64)
    total_tiles = math.ceil(params.width / TILE) * math.ceil(params.height / TILE)

    def tiles(want_image, desc):
        it = _tiles(params, want_image, None if want_image else counts)
        return progress_bar(it, total=total_tiles, desc=desc, unit="tile", enabled=progress)

    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".synth-") as tmp_name:
        tmp = Path(tmp_name)
        staged_img = tmp / ("image" + suffix)
        img_tiff = staged_img if suffix in (".tif", ".tiff") else tmp / "image-raw.tif"
        _write_tiff(img_tiff, tiles(True, "synth image"), (params.height, params.width, 3), pixel)
        if img_tiff != staged_img:
            _vips_convert(img_tiff, staged_img, pixel, style.jpeg_quality if style else 95)
        truth_suffix = truth.suffix.lower()
        staged_truth = tmp / ("truth" + truth_suffix)
        truth_tiff = staged_truth if truth_suffix in (".tif", ".tiff") else tmp / "truth-raw.tif"
        _write_tiff(truth_tiff, tiles(False, "synth truth"), (params.height, params.width), pixel)
        if truth_tiff != staged_truth:
            _vips_convert(truth_tiff, staged_truth, pixel)
        os.replace(staged_img, out)
        os.replace(staged_truth, truth)
    total = counts.sum()
    fractions = {name: float(c / total) for name, c in zip(("paste", "stone", "void"), counts, strict=True)}
    return SynthResult(
        image=str(out), truth=str(truth), width=params.width, height=params.height, seed=params.seed,
        style=style.name if style else "classic", style_parameters=style.as_dict() if style else None,
        pixel_size_um=pixel,
        pixel_counts={name: int(c) for name, c in zip(("paste", "stone", "void"), counts, strict=True)},
        fractions=fractions,
        targets={"stone": style.aggregate_fraction if style else params.aggregate_fraction,
                 "void": style.air_fraction if style else params.air_fraction})


def make_training_set(out_dir: str | os.PathLike, n_train: int = 6, n_val: int = 2, size: int = 2048,
                      seed: int = 100, overwrite: bool = False, style: str = "classic", echo=print,
                      progress: bool | None = False) -> dict:
    """Synthetic slabs ingested as stores ``OUT/train/slab-K.zarr`` and ``OUT/val/slab-K.zarr``.

    Classic slabs: pixel size (6-16 um), aggregate (0.55-0.75) and air (0.02-0.09) fractions vary from slab to
    slab. Styled slabs (``style`` random or a name) take their own; a random style is drawn per slab. Validation
    slabs use other seeds.
    """
    from bigseg.ingest import ingest  # lazy: it imports zarr, and `bigseg --help` reads this package's styles

    if style in HELD_OUT:
        raise BigsegError(f"style {style!r} is held out for evaluation (benchmarks/generalization.py); train on "
                          "random or another style")
    out = Path(out_dir)
    made: dict[str, list[str]] = {"train": [], "val": []}
    jobs = [(split, base, k) for split, n, base in (("train", n_train, seed), ("val", n_val, seed + 10_000))
            for k in range(n)]
    for split, base, k in progress_bar(jobs, total=len(jobs), desc="synthetic slabs", unit="slab",
                                        enabled=progress):
        (out / split).mkdir(parents=True, exist_ok=True)
        if style == "classic":
            rng = np.random.default_rng([base, k])
            params = SynthParams(size, size, seed=base + k, pixel_size_um=float(rng.uniform(6, 16)),
                                 aggregate_fraction=float(rng.uniform(0.55, 0.75)),
                                 air_fraction=float(rng.uniform(0.02, 0.09)))
        else:
            params = SynthParams(size, size, seed=base + k, style=style)
        store = out / split / f"slab-{k}.zarr"
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            s = synthesize(Path(tmp) / "slab.png", params)
            ingest(s["image"], store, truth=s["truth"], pixel_size=params.pixel_size, overwrite=overwrite)
        made[split].append(str(store))
        echo(f"{store}: {size}x{size}, {s['style']}, {params.pixel_size:.1f} um/px, "
             f"stone {s['fractions']['stone']:.3f}, void {s['fractions']['void']:.3f}")
    return made
