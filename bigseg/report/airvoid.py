"""Air-void figures of a label mask (ASTM C457 Procedures A and B; EN 480-11 in :mod:`bigseg.report.en480`).

The mask is measured by :mod:`bigseg.report.measure` (class counts, traverse chords, individual voids; see there for
how edges, unlabelled pixels, pores of the aggregate and small voids are handled). This module turns the
measurements into the figures a lab reports, each with its unit, formula and source (A, p as fractions in the
formulas; lengths in mm; ASTM C457/C457M-16 sections 12-13 "Calculation"):

* air content A = void area / analysed area (Delesse: area fraction = volume fraction); paste content p and
  aggregate content likewise from the areal counts -- Procedure B (point count) with every pixel a point;
* traverse length T_t = labelled pixels on the traverse lines x pixel size (unlabelled pixels, outside the specimen,
  are not traversed); void chords N (counted under the edge rule); voids per mm n = N / T_t;
* Procedure B: average chord length l = A / n, specific surface alpha = 4 / l, spacing factor from p, A and n;
* Procedure A: the traverse's own fractions A_t = T_a / T_t, p_t = T_p / T_t, mean chord T_a / N, alpha_A = 4 N / T_a
  and its spacing factor from them;
* Powers spacing factor (ASTM C457 eq. 13/14): L = p / (4 n) when p/A <= 4.342, otherwise
  L = (3 / alpha) * (1.4 * (1 + p/A)^(1/3) - 1); the two branches meet at p/A = 4.342 when l = A / n;
* entrained / entrapped air: by the void's equivalent diameter in the section (d = 2 sqrt(area / pi)) against a
  threshold (default 1 mm: the usual practice, e.g. ACI 116R's distinction of entrapped voids as 1 mm and larger;
  neither ASTM C457 nor EN 480-11 fixes a limit), or by chord length on the traverse (``chord``). A section through
  a sphere is smaller than the sphere (its mean section diameter is pi/4 of it), so the diameter criterion
  calls entrained part of the air in voids a little above the threshold; the chord criterion shares the bias
  differently (chords are shorter still). The report says which is used.

Edge cases: with no voids every count and fraction is 0 and the ratios that divide by them are None ("not
defined: no voids"), never NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bigseg import store as st
from bigseg.errors import BigsegError
from bigseg.report.en480 import en480_figures
from bigseg.report.measure import MaskMeasurements
from bigseg.report.parameters import SPACING_FACTOR_BRANCH, param

CHORD_BINS_UM = (0, 10, 20, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300, 400, 500, 750, 1000, 1500, 2000,
                 3000, 4000)
"""Class limits (um) of the chord-length picture; classes are upper-inclusive (lo, hi], one more above the last."""

DIAMETER_BINS_UM = (0, 20, 40, 60, 80, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000)

PLAUSIBLE = {"air_content_min": 0.5, "air_content_max": 20.0, "paste_content_min": 10.0}
"""Figures outside these are flagged (a mask more often than a concrete is that wrong): air below 0.5 % (even
well-compacted concrete without entrained air keeps 1-2 % of entrapped air; a model that does not see a kind of
image's voids reads 0.0-0.4 %: the UV-fluorescent style), air above 20 %, paste below 10 %."""


def powers_spacing_factor(p: float, A: float, n: float, alpha: float | None) -> float | None:
    """Powers spacing factor (mm), ASTM C457 eq. 13 (p/A <= 4.342) and 14 (above); None without voids.

    (Procedure A calls it with the traverse's fractions; eq. 13's p/(4n) is then T_p/(4N), its form there.)"""
    if A <= 0 or n <= 0 or not alpha:
        return None
    if p / A <= SPACING_FACTOR_BRANCH:
        return p / (4.0 * n)
    return 3.0 / alpha * (1.4 * (1.0 + p / A) ** (1.0 / 3.0) - 1.0)


def histogram(values_um: np.ndarray, weights: np.ndarray, edges_um) -> list[dict]:
    """Counts in upper-inclusive classes (lo, hi] (a value on a limit belongs to the class below it, as EN
    480-11's chord classes), the first class [0, e1], and one open class above the last limit."""
    values = np.asarray(values_um, float)
    edges = np.asarray(edges_um, float)
    index = np.searchsorted(edges, values, side="left")  # (e[i-1], e[i]] -> i
    index = np.clip(index, 1, len(edges))
    counts = np.bincount(index - 1, weights=weights, minlength=len(edges))[: len(edges)]
    limits = [*edges_um, None]
    return [{"from_um": float(lo), "to_um": (None if hi is None else float(hi)), "count": int(round(c))}
            for lo, hi, c in zip(limits[:-1], limits[1:], counts, strict=True)]


@dataclass
class Totals:
    """A mask's measurements in physical units (mm, mm2, um), which add up over the slabs of one specimen (their
    pixel sizes may differ): traverse lengths, chords and voids are summed, never ratios averaged."""

    analysed_mm2: float
    class_mm2: dict  # class name -> area
    void_areas_mm2: np.ndarray
    traverse_mm: float
    void_on_lines_mm: float
    paste_on_lines_mm: float
    chords_um: dict  # chord length (um) -> count, every chord
    counted_chords_um: dict  # chords counted under the edge rule
    lines: np.ndarray  # (n lines, 4): labelled, void, paste (mm), chords counted
    bands: np.ndarray  # (n lines, 3): paste, stone, void area (mm2) of the band each line stands for
    aggregate_pores: int = 0
    pixel_size_um: float | None = None  # the slab's; None for slabs of different pixel sizes

    @staticmethod
    def of(m: MaskMeasurements, ids: dict[str, int], pixel_size_um: float, spacing_px: float) -> Totals:
        px_mm = pixel_size_um / 1000.0
        a = px_mm**2
        names = {"paste": ids["paste"], "stone": ids["stone"], "void": ids["void"]}
        ls = m.line_stats
        assert ls is not None, "measure_mask fills line_stats whenever it is given concrete ids"
        lines = np.stack([ls.labelled * px_mm, ls.void * px_mm, ls.paste * px_mm, ls.chords.astype(float)], 1) \
            if len(m.lines) else np.zeros((0, 4))
        return Totals(
            analysed_mm2=float(m.class_pixels.sum()) * a,
            class_mm2={k: float(m.class_pixels[i]) * a for k, i in names.items()},
            void_areas_mm2=m.void_areas.astype(float) * a,
            traverse_mm=float(ls.labelled.sum()) * px_mm,
            void_on_lines_mm=float(ls.void.sum()) * px_mm,
            paste_on_lines_mm=float(ls.paste.sum()) * px_mm,
            chords_um={k * pixel_size_um: v for k, v in m.chord_lengths.items()},
            counted_chords_um={k * pixel_size_um: v for k, v in m.counted_chord_lengths.items()},
            lines=lines, bands=_bands(m, [names["paste"], names["stone"], names["void"]], spacing_px) * a,
            aggregate_pores=m.excluded_aggregate_voids, pixel_size_um=pixel_size_um)

    def __add__(self, o: Totals) -> Totals:
        def merged(x: dict, y: dict) -> dict:
            out = dict(x)
            for k, v in y.items():
                out[k] = out.get(k, 0) + v
            return out

        return Totals(self.analysed_mm2 + o.analysed_mm2, merged(self.class_mm2, o.class_mm2),
                      np.concatenate([self.void_areas_mm2, o.void_areas_mm2]), self.traverse_mm + o.traverse_mm,
                      self.void_on_lines_mm + o.void_on_lines_mm, self.paste_on_lines_mm + o.paste_on_lines_mm,
                      merged(self.chords_um, o.chords_um), merged(self.counted_chords_um, o.counted_chords_um),
                      np.concatenate([self.lines, o.lines]), np.concatenate([self.bands, o.bands]),
                      self.aggregate_pores + o.aggregate_pores,
                      max(self.pixel_size_um or 0, o.pixel_size_um or 0) or None)


def _bands(m: MaskMeasurements, classes: list[int], spacing_px: float) -> np.ndarray:
    """Class pixels of the band of rows (or columns) each traverse line stands for: the lines are the sampling
    units of the uncertainty, and their bands carry the areal counts with them."""
    half = spacing_px / 2.0
    out = np.zeros((len(m.lines), 3))
    for i, (kind, pos) in enumerate(m.lines):
        counts = m.row_class_pixels if kind == "row" else m.col_class_pixels
        assert counts is not None, "measure_mask fills the per-row and per-column counts"
        lo, hi = int(np.floor(pos - half + 0.5)), int(np.floor(pos + half + 0.5))
        out[i] = counts[max(lo, 0) : max(hi, lo + 1)][:, classes].sum(axis=0)
    return out


def _figures(A: float, p: float, T_t: float, T_a: float, T_p: float, N: float) -> dict:
    """The core figures from the sums (fractions, mm, counts): shared by the report and each bootstrap sample."""
    n = N / T_t if T_t else 0.0
    alpha = 4.0 * n / A if A and n else None
    A_t, p_t = (T_a / T_t, T_p / T_t) if T_t else (0.0, 0.0)
    alpha_a = 4.0 * N / T_a if T_a and N else None
    return {"air_content": 100 * A, "voids_per_mm": n, "spacing_factor": powers_spacing_factor(p, A, n, alpha),
            "traverse_air_content": 100 * A_t,
            "spacing_factor_procedure_a": powers_spacing_factor(p_t, A_t, n, alpha_a)}


def uncertainty(t: Totals, samples: int = 1000, seed: int = 0, level: float = 0.95, block: int | None = None) -> dict:
    """Confidence intervals from the traverse itself: the lines, each with the band of section it stands for,
    resampled with replacement in blocks of ``block`` neighbouring lines (a moving-block bootstrap: Kunsch 1989;
    neighbouring bands share stones and voids, so resampling single lines would understate the spread), every
    figure recomputed from the resampled sums. Percentile intervals at ``level``. ``block`` defaults to
    round(sqrt(lines)), which matched the spread of figures across slabs drawn alike (tests/test_airvoid.py)."""
    k = len(t.lines)
    if k < 5:
        return {"method": "bootstrap over traverse lines", "note": f"{k} lines: too few for an interval"}
    b = block or max(1, round(math.sqrt(k)))
    starts = np.arange(k - b + 1)
    rng = np.random.default_rng(seed)
    draws: dict[str, list] = {}
    for _ in range(samples):
        pick = (rng.choice(starts, -(-k // b))[:, None] + np.arange(b)[None, :]).ravel()[:k]
        lines, bands = t.lines[pick].sum(axis=0), t.bands[pick].sum(axis=0)
        area = bands.sum()
        A, p = (bands[2] / area, bands[0] / area) if area else (0.0, 0.0)
        for key, value in _figures(A, p, lines[0], lines[1], lines[2], lines[3]).items():
            draws.setdefault(key, []).append(value)
    q = (1 - level) / 2
    out = {"method": f"moving-block bootstrap over the {k} traverse lines and their bands (blocks of {b}), "
                     f"{samples} resamples, {100 * level:g} % percentile intervals", "level": level, "block": b}
    for key, values in draws.items():
        v = np.array([x for x in values if x is not None], float)
        if len(v) < samples * 0.9:
            out[key] = None
            continue
        out[key] = {"low": float(np.quantile(v, q)), "high": float(np.quantile(v, 1 - q)),
                    "standard_error": float(v.std(ddof=1))}
    return out


ASTM_MIN_TRAVERSE = ((4.75, 1397.0), (9.5, 1524.0), (12.5, 1905.0), (19.0, 2286.0), (25.0, 2286.0),
                     (37.5, 2540.0), (75.0, 3048.0), (150.0, 4064.0))
"""ASTM C457 Table 1: nominal maximum aggregate size (mm) -> minimum length of traverse (mm) (the table's metric
values; check them against your edition). A size between two rows takes the larger one's traverse."""


def minimum_traverse(max_aggregate_mm: float) -> float:
    for size, length in ASTM_MIN_TRAVERSE:
        if max_aggregate_mm <= size:
            return length
    return ASTM_MIN_TRAVERSE[-1][1]


def airvoid_parameters(t: Totals, spacing_mm: float, entrapped_mm: float, entrapped_criterion: str = "diameter",
                       paste_from_mix: float | None = None, settings: dict | None = None) -> dict:
    """The air-void figures (with units and descriptions) of one mask's (or one specimen's) totals."""
    if t.analysed_mm2 <= 0:
        raise BigsegError("the mask has no labelled pixels")
    A = t.class_mm2["void"] / t.analysed_mm2
    p = t.class_mm2["paste"] / t.analysed_mm2
    agg = t.class_mm2["stone"] / t.analysed_mm2
    T_t, T_a, T_p = t.traverse_mm, t.void_on_lines_mm, t.paste_on_lines_mm
    if T_t <= 0:
        side = math.sqrt(t.analysed_mm2)
        raise BigsegError(f"no traverse line crosses the section's labelled pixels (--traverse-spacing {spacing_mm:g} "
                          f"mm, a section of about {side:.3g} mm a side, {t.analysed_mm2:.3g} mm2): lower "
                          "--traverse-spacing, or check --pixel-size")
    counted = np.array(sorted(t.counted_chords_um.items()), float).reshape(-1, 2)
    N = int(counted[:, 1].sum())
    core = _figures(A, p, T_t, T_a, T_p, N)
    n = core["voids_per_mm"]
    l_mean = A / n if n else None
    alpha = 4.0 / l_mean if l_mean else None
    alpha_a = 4.0 * N / T_a if T_a and N else None
    diam_mm = 2.0 * np.sqrt(t.void_areas_mm2 / np.pi)
    every = np.array(sorted(t.chords_um.items()), float).reshape(-1, 2)
    if entrapped_criterion == "chord":
        long = every[:, 0] / 1000.0 > entrapped_mm
        trapped = 100 * float((every[long, 0] * every[long, 1]).sum()) / 1000.0 / T_t if T_t else 0.0
        entrapped_air, entrained_air = trapped, core["traverse_air_content"] - trapped
        criterion = f"air in chords longer than {entrapped_mm:g} mm on the traverse / T_t"
    else:
        trapped_voids = diam_mm > entrapped_mm
        entrapped_air = 100 * float(t.void_areas_mm2[trapped_voids].sum()) / t.analysed_mm2
        entrained_air = 100 * float(t.void_areas_mm2[~trapped_voids].sum()) / t.analysed_mm2
        criterion = (f"area of voids whose section's equivalent diameter is > {entrapped_mm:g} mm / analysed area "
                     "(a section under-sizes a sphere: some air of voids a little above the limit counts here "
                     "as entrained)")
    settings = dict(settings or {})
    direction = settings.get("direction", "horizontal")
    params = {
        "analysed_area": param(t.analysed_mm2, "mm2", "area of the labelled pixels analysed"),
        "air_content": param(100 * A, "%", "A: void area fraction (= volume fraction, Delesse)"),
        "paste_content": param(100 * p, "%", "p: paste area fraction (fine aggregate counts as paste)"),
        "aggregate_content": param(100 * agg, "%", "stone (coarse aggregate) area fraction"),
        "paste_air_ratio": param(p / A if A else None, "1", "p/A"),
        "traverse_lines": param(len(t.lines), "1", f"{direction} lines every {spacing_mm:g} mm"),
        "traverse_length": param(T_t, "mm", "T_t: labelled length of the traverse lines"),
        "traverse_air_content": param(core["traverse_air_content"], "%",
                                       "T_a/T_t: void fraction of the traverse (Procedure A)"),
        "traverse_paste_content": param(100 * T_p / T_t if T_t else 0.0, "%",
                                         "T_p/T_t: paste fraction of the traverse (Procedure A)"),
        "chord_count": param(N, "1", "N: void chords counted on the traverse (" + (
            "every chord" if settings.get("edge_chords") == "all" else
            "a chord cut by an edge only when it starts inside") + ")"),
        "voids_per_mm": param(n, "1/mm", "n = N/T_t: voids intercepted per mm of traverse"),
        "average_chord_length": param(l_mean, "mm", "l = A/n (ASTM C457 Procedure B)"),
        "measured_chord_length": param(T_a / N if N else None, "mm",
                                        "T_a/N: mean chord measured on the traverse (Procedure A)"),
        "specific_surface": param(alpha, "1/mm", "alpha = 4/l (Procedure B)"),
        "spacing_factor": param(core["spacing_factor"], "mm",
                                 "Powers spacing factor L, Procedure B: from A, p and n (ASTM C457 eq. 13 if p/A "
                                 "<= 4.342, else eq. 14)"),
        "specific_surface_procedure_a": param(alpha_a, "1/mm", "alpha = 4 N / T_a (Procedure A)"),
        "spacing_factor_procedure_a": param(core["spacing_factor_procedure_a"], "mm",
                                             "Powers spacing factor L, Procedure A: from T_a/T_t, T_p/T_t and N"),
        "void_count": param(len(t.void_areas_mm2), "1", "individual voids (4-connected components)"),
        "voids_per_area": param(len(t.void_areas_mm2) / t.analysed_mm2, "1/mm2", "voids per mm2 of analysed area"),
        "entrained_air_content": param(entrained_air, "%", "entrained air: " + criterion.replace("> ", "<= ")
                                        .replace("longer than", "up to")),
        "entrapped_air_content": param(entrapped_air, "%", "entrapped air: " + criterion),
        "entrained_void_count": param(int((diam_mm <= entrapped_mm).sum()), "1",
                                       f"voids with equivalent diameter <= {entrapped_mm:g} mm"),
        "entrapped_void_count": param(int((diam_mm > entrapped_mm).sum()), "1",
                                       f"voids with equivalent diameter > {entrapped_mm:g} mm"),
        "mean_void_diameter": param(float(diam_mm.mean()) if len(diam_mm) else None, "mm",
                                     "mean equivalent diameter 2 sqrt(area/pi)"),
        "aggregate_pores_excluded": param(t.aggregate_pores, "1",
                                           "voids lying in aggregate (over 90 % of their boundary against stone), "
                                           "counted as stone: not air voids (EN 480-11 section 3.1)"),
    }
    if paste_from_mix is not None:
        params["paste_content_mix"] = param(100 * paste_from_mix, "%", "paste content from the mix design "
                                                                        "(--paste-content), used below")
        params["paste_air_ratio_mix"] = param(paste_from_mix / A if A else None, "1", "P/A with the mix's paste")
        params["spacing_factor_mix"] = param(powers_spacing_factor(paste_from_mix, A, n, alpha), "mm",
                                              "Powers spacing factor with the mix design's paste content (ASTM C457 "
                                              "allows p from the mix proportions)")

    en = en480_figures(counted[:, 0], counted[:, 1], T_t, p, paste_from_mix, t.pixel_size_um,
                       every=(every[:, 0], every[:, 1]))
    params.update(en["parameters"])
    warnings = plausibility(100 * A, 100 * p)
    if settings.get("max_aggregate_mm"):
        need = minimum_traverse(settings["max_aggregate_mm"])
        if T_t < need:
            warnings.append(f"the traverse is {T_t:.0f} mm, below the {need:.0f} mm ASTM C457 Table 1 asks for with "
                            f"{settings['max_aggregate_mm']:g} mm maximum aggregate: lower --traverse-spacing, use "
                            "--traverse-direction both, or add slabs")
    a300 = en["parameters"]["micro_air_content_a300"]["value"]
    if a300 is not None and a300 > 100 * A + 0.01:
        warnings.append(f"A300 ({a300:.3g} %) exceeds the air content ({100 * A:.3g} %), which cannot be: the chord "
                        "classes unfold poorly into spheres here, so A300 is not reliable for this section")
    if en["misfit"] > 0.25:
        warnings.append(f"the chord classes fit spheres poorly ({100 * en['misfit']:.0f} % of the chords unexplained):"
                        " A300 is approximate")
    return {
        "parameters": params,
        "settings": {"traverse_spacing_mm": spacing_mm, "entrapped_diameter_mm": entrapped_mm,
                     "entrapped_criterion": entrapped_criterion, "connectivity": 4,
                     "paste_content_mix": paste_from_mix, **settings},
        "chord_length_histogram": histogram(counted[:, 0], counted[:, 1], CHORD_BINS_UM),
        "void_diameter_histogram": histogram(diam_mm * 1000.0, np.ones(len(diam_mm)), DIAMETER_BINS_UM),
        "en480_chord_classes": en["class_table"],
        "chord_lengths_um": {"every": {f"{k:g}": int(v) for k, v in sorted(t.chords_um.items())},
                             "counted": {f"{k:g}": int(v) for k, v in sorted(t.counted_chords_um.items())},
                             "note": "the exact chord-length histogram: chord length (um) -> number of chords"},
        "uncertainty": uncertainty(t),
        "warnings": warnings,
    }


def plausibility(air_percent: float, paste_percent: float) -> list[str]:
    """Warnings for figures a concrete seldom has and a wrong mask often gives."""
    out = []
    if air_percent < PLAUSIBLE["air_content_min"]:
        out.append(f"air content {air_percent:.2f} % is below {PLAUSIBLE['air_content_min']:g} %, which concrete "
                   "seldom has: check the mask (voids taken for paste or stone? a kind of image the model has not "
                   "seen?)")
    if air_percent > PLAUSIBLE["air_content_max"]:
        out.append(f"air content {air_percent:.1f} % is above {PLAUSIBLE['air_content_max']:g} %: check the mask "
                   "(dark stones or shadows taken for voids?)")
    if paste_percent < PLAUSIBLE["paste_content_min"]:
        out.append(f"paste content {paste_percent:.1f} % is below {PLAUSIBLE['paste_content_min']:g} %: check the "
                   "mask (paste taken for stone?)")
    return out


def check_mask(group, array: str, store) -> None:
    if array not in group:
        hint = "run 'bigseg infer " + str(store) + "' first" if array == "labels" else "ingest it with --truth"
        raise BigsegError(f"{store}: no {array} in the store; {hint}")
    if not st.is_complete(group[array]):
        raise BigsegError(f"{store}: its {array} are incomplete (an interrupted run); run 'bigseg infer {store}' "
                          "again to finish them")
