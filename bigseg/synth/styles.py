"""Styles of synthetic concrete sections: named looks, a held-out set, and random draws.

A :class:`Style` is a complete, fixed description of how a slab looks (the objects' geometry and appearance,
defects, and the camera); :func:`random_style` draws one from wide distributions, so a model trained on many
draws sees stones, paste, voids and imaging conditions over the whole range a lab may meet.

**Class convention** (3-class table): *stone* is coarse aggregate, particles of 2.4 mm and more across (radius
from 1.2 mm); *fine aggregate* (sand grains 0.1-2 mm) stays **paste**, as do cracks, polishing scratches and
pull-outs (holes left by plucked grains: not air voids, EN 480-11 section 3.1 counts as air voids only spaces
enclosed by cement paste); *void* is an air void, whatever fills it (secondary deposits, the white powder of
contrast-enhanced sections). The ``classic`` style predates this convention (its stones start at 0.5 mm).

**Held-out styles** (:data:`HELD_OUT`) are fixed parameter sets chosen before any model was trained on random
styles, and no training config may name them (``bigseg.train.config`` refuses it). Random styles are drawn from
continuous distributions that contain the ingredients of most held-out styles -- angular stones, sand, rim-lit
voids, vignetting, contrast enhancement -- but never their exact values and combinations: held-out styles test
new combinations of modelled phenomena. ``blue-epoxy`` is the exception on purpose: voids filled with blue-dyed
epoxy, a look no random style produces, to test that the confidence figure flags what the model cannot know.

What is modelled and what is not is listed in docs/synthetic.md.
"""

from __future__ import annotations

import colorsys
import dataclasses
import math
import re
from dataclasses import dataclass, field

import numpy as np

from bigseg.errors import BigsegError

RGB = tuple[float, float, float]

STONE_SHAPES = ("rounded", "angular", "elongated")
STONE_TEXTURES = ("grains", "veins", "speckle", "plain")
VOID_LOOKS = ("dark", "rim", "filled", "coated")
"""dark: a shaded cavity; rim: an obliquely lit hemisphere, its near wall in shadow and a bright rim on the far
edge; filled: partly filled with light secondary deposits; coated: filled to the brim with one material
(``void_fill``: white powder on contrast-enhanced sections, dyed epoxy)."""

SAND_MAX_MM = 2.0
STONE_MIN_RADIUS_MM = 1.2


@dataclass(frozen=True)
class Style:
    """Everything that decides how a synthetic slab looks, in physical units where there are any."""

    name: str
    pixel_size_um: float = 10.0
    # coarse aggregate (stone)
    aggregate_fraction: float = 0.55
    stone_radius_mm: tuple[float, float] = (1.2, 8.0)
    stone_shapes: tuple[float, ...] = (1.0, 0.0, 0.0)  # weights of STONE_SHAPES
    stone_elongation: float = 2.2  # largest aspect ratio of elongated stones
    stone_textures: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25)  # weights of STONE_TEXTURES
    stone_palette: tuple[RGB, ...] = ((120.0, 118.0, 112.0),)  # base colours; each stone varies around one
    stone_color_spread: float = 14.0
    stone_texture_strength: float = 1.0
    grain_mm: float = 0.5  # mineral grain size of "grains" textures
    stone_rim: float = 0.0  # interfacial zone: < 0 darker, > 0 lighter than the stone (relative)
    # paste (cement paste with fine aggregate)
    paste_color: RGB = (172.0, 166.0, 154.0)
    paste_drift: float = 8.0  # smooth colour variation across the slab (grey levels)
    paste_mottle: float = 22.0
    paste_speckle: float = 10.0
    sand_fraction: float = 0.0  # share of the paste area covered by sand grains
    sand_palette: tuple[RGB, ...] = ((205.0, 200.0, 188.0), (150.0, 140.0, 128.0), (80.0, 78.0, 76.0))
    # air voids
    air_fraction: float = 0.05
    void_median_diameter_mm: float = 0.12
    void_sigma: float = 0.6
    void_max_diameter_mm: float = 2.5
    void_looks: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0)  # weights of VOID_LOOKS
    void_dark: float = 35.0  # grey level of a void's deepest shadow
    void_fill: RGB = (238.0, 236.0, 230.0)  # colour of "filled" deposits and "coated" fillings
    # entrapped air: a share of the air drawn as a second population of large voids (1-4 mm, lognormal), in the same
    # looks as the others; 0 (every named style): none, the slab exactly as without these fields
    entrapped_air_share: float = 0.0
    entrapped_median_diameter_mm: float = 1.6
    entrapped_sigma: float = 0.35
    light_angle_deg: float = 225.0  # direction the light comes from (image axes, y down)
    # defects (paste or stone in the truth, never void)
    cracks_per_cm2: float = 0.0
    crack_color: float = 0.35  # relative brightness of cracks (> 1: lighter, as powder-filled cracks)
    scratches_per_cm: float = 0.0
    pullouts_per_cm2: float = 0.0
    # imaging
    illumination_gradient: float = 0.0  # relative brightness change across the slab
    illumination_angle_deg: float = 0.0
    vignetting: float = 0.0  # relative darkening at the corners of each camera field (mosaic scans)
    field_px: int = 2048  # side of a camera field
    color_gain: RGB = (1.0, 1.0, 1.0)  # colour cast
    gamma: float = 1.0
    blur_sigma_px: float = 0.8
    noise_sigma: float = 4.0
    jpeg_quality: int = 95
    description: str = field(default="", compare=False)

    def __post_init__(self):
        if not 0.0 <= self.aggregate_fraction < 0.95:
            raise BigsegError(f"aggregate fraction must be in [0, 0.95), got {self.aggregate_fraction}")
        if not 0.0 <= self.air_fraction < 0.5 or self.air_fraction >= 1 - self.aggregate_fraction:
            raise BigsegError(f"air fraction must be in [0, 0.5) and below the paste fraction, got {self.air_fraction}")
        if not (math.isfinite(self.pixel_size_um) and self.pixel_size_um > 0):
            raise BigsegError(f"pixel size must be a positive number, got {self.pixel_size_um}")
        if not 0.0 <= self.entrapped_air_share < 1.0:
            raise BigsegError(f"entrapped air share must be in [0, 1), got {self.entrapped_air_share}")
        if not 0.0 <= self.sand_fraction < 0.9:
            raise BigsegError(f"sand fraction must be in [0, 0.9), got {self.sand_fraction}")
        for name, weights, n in (("stone_shapes", self.stone_shapes, 3), ("stone_textures", self.stone_textures, 4),
                                 ("void_looks", self.void_looks, 4)):
            if len(weights) != n or min(weights) < 0 or sum(weights) <= 0:
                raise BigsegError(f"style {self.name}: {name} needs {n} non-negative weights, got {weights}")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# -----------------------------------------------------------------------------------------------------------
# named styles: training-side examples (anything may be trained on) and the held-out set (never trained on)

_NAMED: dict[str, Style] = {}


def _add(style: Style) -> Style:
    _NAMED[style.name] = style
    return style


_add(Style("gravel", description="rounded river gravel of varied rock colours in a light paste, dark voids",
           stone_shapes=(1, 0, 0), stone_textures=(0.2, 0.2, 0.3, 0.3),
           stone_palette=((110, 108, 100), (160, 130, 100), (70, 70, 72), (200, 195, 185)), sand_fraction=0.15))
_add(Style("crushed", description="angular crushed stone with sand in the paste, rim-lit voids, a light gradient",
           stone_shapes=(0.1, 0.8, 0.1), stone_palette=((95, 95, 98), (140, 135, 128)), sand_fraction=0.35,
           void_looks=(0.3, 0.7, 0, 0), illumination_gradient=0.12, illumination_angle_deg=30))
_add(Style("contrast", description="contrast-enhanced section: inked black surface, voids filled with white powder",
           paste_color=(28, 28, 30), paste_mottle=6, paste_speckle=4, paste_drift=3,
           stone_palette=((48, 48, 50), (62, 60, 58)), stone_texture_strength=0.35, stone_color_spread=6,
           sand_fraction=0.3, sand_palette=((40, 40, 42), (55, 54, 52)), void_looks=(0, 0, 0, 1),
           void_fill=(240, 240, 238), crack_color=3.0, cracks_per_cm2=0.2, pixel_size_um=6.0))

HELD_OUT: tuple[str, ...] = ("probe-angular", "granite-fine", "basalt-dark", "limestone-pastelike", "mosaic-scan",
                             "contrast-ink", "blue-epoxy", "uv-fluorescent", "uv-yellow-dim", "uv-green-mosaic")
"""Styles no training config may use; benchmarks/generalization.py reports every shipped model on them.
``uv-yellow-dim`` and ``uv-green-mosaic`` were added on 2026-12-07, before any model was run on them, from how UV
sections are made and photographed (not from any model's errors): ``uv-fluorescent`` had been looked at three times
while models failed it, so a change aimed at UV sections is tested honestly on these two."""

_add(Style("probe-angular", pixel_size_um=8.0,
           description="angular grain-textured stones, sand specks, dark voids with a bright rim, uneven light, "
                       "slight blur, JPEG 80 (like the probe that found the old model's 2.6x air content)",
           stone_shapes=(0, 1, 0), stone_textures=(0.7, 0, 0.3, 0),
           stone_palette=((150, 140, 128), (105, 100, 96), (185, 170, 160)), sand_fraction=0.3,
           void_looks=(0, 1, 0, 0), air_fraction=0.03, illumination_gradient=0.25, illumination_angle_deg=120,
           blur_sigma_px=1.1, noise_sigma=5, jpeg_quality=80))
_add(Style("granite-fine", pixel_size_um=4.0,
           description="granite aggregate (pink, white and black grains) at 4 um/px, sandy paste, dark and "
                       "partly filled voids",
           aggregate_fraction=0.5, stone_radius_mm=(1.2, 6.0), stone_shapes=(0.4, 0.6, 0),
           stone_textures=(1, 0, 0, 0), grain_mm=0.6,
           stone_palette=((200, 165, 150), (185, 180, 175)), sand_fraction=0.4,
           void_looks=(0.6, 0, 0.4, 0), void_median_diameter_mm=0.1, blur_sigma_px=1.4, noise_sigma=3))
_add(Style("basalt-dark", pixel_size_um=12.0,
           description="dark basalt stones, grey paste, dark voids: stones nearly as dark as the voids",
           stone_shapes=(0.3, 0.7, 0), stone_textures=(0, 0, 0.4, 0.6), stone_palette=((52, 52, 55), (66, 64, 62)),
           stone_color_spread=6, paste_color=(150, 150, 146), void_looks=(1, 0, 0, 0), void_dark=25,
           air_fraction=0.06))
_add(Style("limestone-pastelike", pixel_size_um=7.0,
           description="angular limestone in greys close to the paste's, rim-lit voids, polishing scratches",
           stone_shapes=(0.1, 0.9, 0), stone_textures=(0, 0.5, 0.2, 0.3),
           stone_palette=((160, 158, 150), (178, 174, 165)), stone_rim=-0.15, paste_color=(170, 166, 156),
           void_looks=(0.3, 0.7, 0, 0), scratches_per_cm=1.5, air_fraction=0.045))
_add(Style("mosaic-scan", pixel_size_um=15.0,
           description="a tiled microscope mosaic: vignetting in every field, a warm colour cast, noise, JPEG 70",
           stone_shapes=(0.7, 0.1, 0.2), stone_palette=((120, 110, 100), (175, 160, 140), (80, 80, 85)),
           sand_fraction=0.2, vignetting=0.3, field_px=1400, color_gain=(1.08, 1.0, 0.88), noise_sigma=8,
           jpeg_quality=70, air_fraction=0.07, void_median_diameter_mm=0.15))
_add(Style("contrast-ink", pixel_size_um=5.0,
           description="contrast-enhanced: black ink, white-filled voids, dark stones with faint texture, "
                       "powder in cracks",
           paste_color=(22, 22, 24), paste_mottle=5, paste_speckle=3, paste_drift=2,
           stone_palette=((44, 44, 46),), stone_texture_strength=0.4, stone_color_spread=5,
           stone_shapes=(0.5, 0.5, 0), sand_fraction=0.35, sand_palette=((36, 36, 38), (50, 50, 50)),
           void_looks=(0, 0, 0, 1), void_fill=(235, 235, 235), cracks_per_cm2=0.5, crack_color=4.0,
           air_fraction=0.04))
_add(Style("blue-epoxy", pixel_size_um=10.0,
           description="voids filled with blue-dyed epoxy: a look no training style has (out of family on purpose)",
           stone_shapes=(0.5, 0.5, 0), stone_palette=((120, 115, 108), (90, 90, 92)), sand_fraction=0.25,
           void_looks=(0, 0, 0, 1), void_fill=(45, 85, 190)))
_add(Style("uv-fluorescent", pixel_size_um=8.0,  # added 2026-12-02, before any model was run on it
           description="impregnated with fluorescent epoxy and photographed under UV: paste glowing green (epoxy in "
                       "its pores), aggregate and sand dark, epoxy-filled voids brightest (out of family on purpose: "
                       "the look on which the bundled model read 0.04 % air for 4.96 %, sure of itself)",
           paste_color=(70, 168, 62), paste_mottle=18, paste_speckle=8, paste_drift=10,
           stone_palette=((30, 42, 30), (46, 56, 40)), stone_texture_strength=0.3, stone_color_spread=6,
           sand_fraction=0.3, sand_palette=((36, 52, 36), (52, 72, 46)), void_looks=(0, 0, 0, 1),
           void_fill=(175, 255, 150), cracks_per_cm2=0.1, crack_color=1.6, blur_sigma_px=1.0, noise_sigma=6,
           jpeg_quality=90))
_add(Style("uv-yellow-dim", pixel_size_um=6.0,  # added 2026-12-07, before any model was run on it
           description="fluorescein-dyed epoxy under UV through a yellow filter, underexposed: a dense (low w/c) "
                       "paste glowing dim olive, dark angular aggregate with a few porous stones glowing faintly, "
                       "voids filled bright yellow (some only partly: a dark unfilled part), glowing cracks, the UV "
                       "lamp from one side",
           paste_color=(96, 110, 36), paste_mottle=14, paste_speckle=10, paste_drift=12,
           stone_shapes=(0.3, 0.7, 0), stone_palette=((24, 24, 20), (38, 36, 28), (70, 82, 30)),
           stone_texture_strength=0.5, stone_color_spread=8, sand_fraction=0.35,
           sand_palette=((30, 30, 24), (48, 50, 30)), void_looks=(0.15, 0, 0.2, 0.65), void_dark=12,
           void_fill=(236, 240, 96), air_fraction=0.035, cracks_per_cm2=0.3, crack_color=2.2,
           illumination_gradient=0.3, illumination_angle_deg=200, blur_sigma_px=1.2, noise_sigma=9, jpeg_quality=85))
_add(Style("uv-green-mosaic", pixel_size_um=12.0,  # added 2026-12-07, before any model was run on it
           description="a UV microscope mosaic of a porous (high w/c) paste glowing bright green, rounded gravel "
                       "dark with a bluish cast of stray lamp light, epoxy-filled voids saturated near white, "
                       "vignetting in every field, soft focus, JPEG 80",
           paste_color=(140, 222, 112), paste_mottle=20, paste_speckle=8, paste_drift=14,
           stone_shapes=(1, 0, 0), stone_palette=((40, 48, 70), (60, 62, 82)), stone_texture_strength=0.4,
           stone_color_spread=10, sand_fraction=0.15, sand_palette=((50, 60, 78), (70, 96, 80)),
           void_looks=(0, 0, 0, 1), void_fill=(250, 255, 238), air_fraction=0.06, void_median_diameter_mm=0.15,
           vignetting=0.25, field_px=1200, blur_sigma_px=1.6, noise_sigma=5, jpeg_quality=80))

STYLES = _NAMED
"""Named styles (``classic`` and ``random`` are handled by :func:`resolve`)."""


# -----------------------------------------------------------------------------------------------------------
# random styles

_ROCKS: tuple[RGB, ...] = (
    (150, 148, 140),  # grey limestone
    (60, 60, 63),  # basalt, greywacke
    (192, 152, 136),  # pink granite
    (214, 208, 198),  # quartzite, marble
    (160, 126, 92),  # sandstone
    (96, 110, 96),  # greenstone
    (135, 75, 60),  # red chert, jasper
    (110, 104, 98),  # mid grey
)


def _dirichlet(rng, n: int, concentration: float = 0.6) -> tuple[float, ...]:
    w = rng.dirichlet([concentration] * n)
    return tuple(float(round(v, 4)) for v in w)


def _rgb(values) -> RGB:
    r, g, b = (float(round(min(max(v, 0.0), 255.0), 1)) for v in values)
    return r, g, b


RANDOM_CONTRAST = "random-contrast"
"""The random styles' contrast-enhanced branch alone (dark inked paste, voids filled white): a training config
weights it beside ``random`` to show a model more of the looks where dark means paste, not air."""

RANDOM_EPOXY = "random-epoxy"
"""A random look impregnated with dyed epoxy of any hue (never drawn by plain ``random``): under white light the
voids filled with the coloured epoxy and the paste faintly tinted by it; under UV, for fluorescent epoxy, the paste
glowing in the epoxy's colour, the aggregate dark and the filled voids brightest. A training config weights it to
show a model that a void is a void whatever colour fills it."""

RANDOM_KINDS = ("", "contrast", "epoxy")


def random_style(seed: int, kind: str = "") -> Style:
    """A style drawn at random from wide distributions (deterministic per seed): the contrast-enhanced branch for
    15 % of seeds, or for every seed with ``kind="contrast"`` (named ``random-contrast-N`` where the seed alone
    would not have drawn it); ``kind="epoxy"``: the seed's other branch, impregnated with dyed epoxy
    (:data:`RANDOM_EPOXY`, named ``random-epoxy-N``)."""
    if kind not in RANDOM_KINDS:
        raise BigsegError(f"random style kind must be one of {RANDOM_KINDS}, got {kind!r}")
    rng = np.random.default_rng([seed, 0x5717E])
    drawn = rng.random() < 0.15
    contrast = (drawn or kind == "contrast") and kind != "epoxy"
    pixel = float(math.exp(rng.uniform(math.log(3.0), math.log(20.0))))
    lo = float(rng.uniform(STONE_MIN_RADIUS_MM, 2.2))
    hi = float(rng.uniform(max(lo * 2.5, 4.0), 12.0))
    if contrast:
        paste = _rgb(np.full(3, rng.uniform(12, 45)) + rng.normal(0, 2, 3))
        palette = tuple(_rgb(np.full(3, rng.uniform(30, 90)) + rng.normal(0, 4, 3)) for _ in range(rng.integers(1, 3)))
        sand = tuple(_rgb(np.full(3, rng.uniform(20, 80)) + rng.normal(0, 3, 3)) for _ in range(2))
        looks = (0.0, 0.0, 0.0, 1.0)
        fill = _rgb(np.full(3, rng.uniform(200, 250)) + rng.normal(0, 4, 3))
        texture_strength = float(rng.uniform(0.2, 0.8))
        mottle, speckle, drift = float(rng.uniform(2, 10)), float(rng.uniform(1, 6)), float(rng.uniform(0, 4))
        crack_color = float(rng.uniform(0.3, 5.0))
    else:
        lum = rng.uniform(115, 205)
        paste = _rgb(lum + np.array([1.0, 0.0, -1.0]) * rng.normal(6, 6) + rng.normal(0, 3, 3))
        stones: list[RGB] = []
        for _ in range(rng.integers(1, 5)):
            if rng.random() < 0.2:  # paste-like stones: told apart by texture and outline only
                centre = np.array(paste) + rng.normal(0, 12, 3)
            else:
                centre = np.array(_ROCKS[rng.integers(len(_ROCKS))]) + rng.normal(0, 16) + rng.normal(0, 10, 3)
            stones.append(_rgb(centre))
        palette = tuple(stones)
        sand = tuple(_rgb(np.array(_ROCKS[rng.integers(len(_ROCKS))]) * rng.uniform(0.8, 1.2) + rng.normal(0, 10, 3))
                     for _ in range(rng.integers(1, 4)))
        a, b, c = _dirichlet(rng, 3)
        looks = (a, b, c, 0.0)
        fill = _rgb(np.full(3, rng.uniform(190, 245)) + rng.normal(0, 6, 3))
        texture_strength = float(rng.uniform(0.4, 1.4))
        mottle, speckle, drift = float(rng.uniform(6, 34)), float(rng.uniform(2, 16)), float(rng.uniform(0, 16))
        crack_color = float(rng.uniform(0.2, 0.7))
    agg = float(rng.uniform(0.35, 0.7))
    air = float(min(rng.uniform(0.01, 0.09), 0.9 * (1 - agg)))
    gain = 1.0 + rng.normal(0, 0.05, 3)
    style = Style(
        name=f"random-{seed}" if contrast == drawn else f"{RANDOM_CONTRAST}-{seed}",
        pixel_size_um=round(pixel, 3),
        aggregate_fraction=round(agg, 4),
        stone_radius_mm=(round(lo, 3), round(hi, 3)),
        stone_shapes=_dirichlet(rng, 3),
        stone_elongation=float(round(rng.uniform(1.5, 3.0), 3)),
        stone_textures=_dirichlet(rng, 4),
        stone_palette=palette,
        stone_color_spread=float(round(rng.uniform(5, 25), 2)),
        stone_texture_strength=round(texture_strength, 3),
        grain_mm=float(round(rng.uniform(0.2, 1.0), 3)),
        stone_rim=float(round(rng.uniform(-0.25, 0.2) if rng.random() < 0.4 else 0.0, 3)),
        paste_color=paste,
        paste_drift=round(drift, 2),
        paste_mottle=round(mottle, 2),
        paste_speckle=round(speckle, 2),
        sand_fraction=0.0 if rng.random() < 0.25 else float(round(rng.uniform(0.1, 0.5), 3)),
        sand_palette=sand,
        air_fraction=round(air, 4),
        void_median_diameter_mm=float(round(rng.uniform(0.05, 0.25), 4)),
        void_sigma=float(round(rng.uniform(0.35, 0.8), 3)),
        void_max_diameter_mm=float(round(rng.uniform(1.5, 3.0), 3)),
        void_looks=looks,
        void_dark=float(round(rng.uniform(15, 70), 1)),
        void_fill=fill,
        light_angle_deg=float(round(rng.uniform(0, 360), 1)),
        cracks_per_cm2=float(round(rng.uniform(0, 0.6), 3)) if rng.random() < 0.4 else 0.0,
        crack_color=round(crack_color, 3),
        scratches_per_cm=float(round(rng.uniform(0, 2.0), 3)) if rng.random() < 0.4 else 0.0,
        pullouts_per_cm2=float(round(rng.uniform(0, 3.0), 3)) if rng.random() < 0.4 else 0.0,
        illumination_gradient=float(round(rng.uniform(0, 0.3), 3)),
        illumination_angle_deg=float(round(rng.uniform(0, 360), 1)),
        vignetting=float(round(rng.uniform(0, 0.3), 3)) if rng.random() < 0.4 else 0.0,
        field_px=int(rng.integers(700, 4000)),
        color_gain=_rgb(gain),
        gamma=float(round(rng.uniform(0.8, 1.25), 3)),
        blur_sigma_px=float(round(rng.uniform(0.3, 2.0), 3)),
        noise_sigma=float(round(rng.uniform(1.0, 10.0), 2)),
        jpeg_quality=int(rng.integers(60, 99)),
        description="drawn at random",
    )
    return _impregnated(style, seed) if kind == "epoxy" else style


def _impregnated(style: Style, seed: int) -> Style:
    """``style`` impregnated with an epoxy of a random hue (its own random stream, so the geometry stays the
    seed's): under UV (half the draws) the paste glows in the epoxy's colour, stones and sand go dark and the
    filled voids are brightest; under white light the voids take the dyed epoxy's colour at any brightness and the
    paste a faint tint. Most voids are filled; the rest keep the style's own looks (incomplete impregnation)."""
    rng = np.random.default_rng([seed, 0xE90C5])
    epoxy = np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.35, 1.0), 1.0)) * 255
    paste = np.array(style.paste_color)
    uv = rng.random() < 0.5
    if uv:
        dark = float(rng.uniform(0.15, 0.45))
        tint = epoxy * rng.uniform(0, 0.1)
        fill = epoxy * rng.uniform(0.75, 1.0) + rng.uniform(0, 40)
        t = rng.uniform(0.5, 0.9)
        paste = t * epoxy * rng.uniform(0.35, 0.7) + (1 - t) * paste * rng.uniform(0.15, 0.4)
        stones = tuple(_rgb(np.array(c) * dark + tint) for c in style.stone_palette)
        sand = tuple(_rgb(np.array(c) * dark + tint) for c in style.sand_palette)
        crack_color = float(rng.uniform(1.2, 2.0))
    else:
        fill = epoxy * rng.uniform(0.3, 0.95)
        t = rng.uniform(0, 0.3)
        paste = (1 - t) * paste + t * epoxy * (paste.mean() / 255)
        stones, sand, crack_color = style.stone_palette, style.sand_palette, style.crack_color
    filled = float(rng.uniform(0.7, 1.0))
    looks = tuple(float(round(w * (1 - filled), 4)) for w in style.void_looks[:3]) + (round(filled, 4),)
    return dataclasses.replace(
        style, name=f"{RANDOM_EPOXY}-{seed}", paste_color=_rgb(paste), stone_palette=stones, sand_palette=sand,
        void_looks=looks, void_fill=_rgb(fill), crack_color=round(crack_color, 3),
        description=f"drawn at random, impregnated with {'fluorescent epoxy under UV' if uv else 'dyed epoxy'}")


def resolve(name: str, seed: int = 0) -> Style:
    """The style called ``name``: a named one, ``random`` (drawn from ``seed``, the slab's: every slab another
    style) or ``random-N`` (the style :func:`random_style` draws from N, whatever the slab's seed: one random look
    over several slabs, e.g. a slab and its sibling; ``random_style(N).name`` is that name); ``random-contrast`` and
    ``random-contrast-N`` likewise, from the contrast-enhanced branch only; ``random-epoxy`` and ``random-epoxy-N``
    impregnated with dyed epoxy."""
    drawn = re.fullmatch(r"random(?:-(contrast|epoxy))?(?:-([0-9]+))?", name)
    if drawn:
        return random_style(int(drawn[2]) if drawn[2] else seed, kind=drawn[1] or "")
    if name in _NAMED:
        return _NAMED[name]
    raise BigsegError(f"unknown style {name!r}; choose classic, random, random-N, {RANDOM_CONTRAST}, "
                      f"{RANDOM_CONTRAST}-N, {RANDOM_EPOXY}, {RANDOM_EPOXY}-N or one of {', '.join(_NAMED)}")


def style_names() -> list[str]:
    return ["classic", "random", RANDOM_CONTRAST, RANDOM_EPOXY, *_NAMED]
