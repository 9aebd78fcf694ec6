"""Every figure of a report: its name for people, its group, its formula and its source. One home for the words the
HTML report, the CSV, the terminal summary and the methods appendix use."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    group: str
    formula: str
    source: str


ASTM = "ASTM C457/C457M-16, sections 12-13"
POWERS = "Powers (1949), The air requirement of frost-resistant concrete, Proc. HRB 29; ASTM C457 eq. 13-14"
EN480 = "EN 480-11:2005, sections 7-8"
DELESSE = "Delesse's principle (area fraction = volume fraction); ASTM C457 Procedure B (point count)"

GROUPS = ("Air-void system", "Areal analysis", "Traverse", "Individual voids", "EN 480-11", "Model and image")

FIGURES: dict[str, Figure] = {
    "air_content": Figure("Air content A", "Air-void system", "void area / analysed area", DELESSE),
    "spacing_factor": Figure("Spacing factor L (Procedure B)", "Air-void system",
                             "p/(4n) if p/A <= 4.342, else (3/alpha)[1.4(1 + p/A)^(1/3) - 1]", POWERS),
    "spacing_factor_procedure_a": Figure("Spacing factor L (Procedure A)", "Air-void system",
                                         "as Procedure B with T_a/T_t, T_p/T_t and alpha = 4N/T_a", POWERS),
    "spacing_factor_mix": Figure("Spacing factor L, paste from the mix design", "Air-void system",
                                 "as Procedure B with p from the mix proportions", POWERS),
    "specific_surface": Figure("Specific surface alpha (Procedure B)", "Air-void system", "4 / l", ASTM),
    "specific_surface_procedure_a": Figure("Specific surface alpha (Procedure A)", "Air-void system", "4 N / T_a",
                                           ASTM),
    "voids_per_mm": Figure("Voids per mm n", "Air-void system", "N / T_t", ASTM),
    "paste_air_ratio": Figure("Paste-to-air ratio p/A", "Air-void system", "p / A", ASTM),
    "paste_air_ratio_mix": Figure("Paste-to-air ratio P/A, mix design", "Air-void system", "P / A", ASTM),
    "entrained_air_content": Figure("Entrained air", "Air-void system",
                                    "air in voids up to the entrapped limit / analysed area",
                                    "common practice (ACI 116R: entrapped voids 1 mm and larger)"),
    "entrapped_air_content": Figure("Entrapped air", "Air-void system",
                                    "air in voids above the entrapped limit / analysed area",
                                    "common practice (ACI 116R: entrapped voids 1 mm and larger)"),
    "paste_content": Figure("Paste content p", "Areal analysis", "paste area / analysed area (with fine aggregate)",
                            DELESSE),
    "paste_content_mix": Figure("Paste content P, mix design", "Areal analysis", "given (--paste-content)",
                                "ASTM C457 (p from the mix proportions); EN 480-11 section 8"),
    "aggregate_content": Figure("Aggregate content", "Areal analysis", "stone area / analysed area", DELESSE),
    "analysed_area": Figure("Area analysed", "Areal analysis", "labelled pixels x pixel area", "-"),
    "traverse_length": Figure("Traverse length T_t", "Traverse", "labelled length of the traverse lines", ASTM),
    "traverse_lines": Figure("Traverse lines", "Traverse", "lines every spacing", ASTM),
    "traverse_air_content": Figure("Air on the traverse T_a/T_t", "Traverse", "void length / T_t",
                                   "ASTM C457 Procedure A"),
    "traverse_paste_content": Figure("Paste on the traverse T_p/T_t", "Traverse", "paste length / T_t",
                                     "ASTM C457 Procedure A"),
    "chord_count": Figure("Chords N", "Traverse", "void chords counted on the traverse", ASTM),
    "average_chord_length": Figure("Average chord length l (Procedure B)", "Traverse", "A / n", ASTM),
    "measured_chord_length": Figure("Mean chord T_a/N (Procedure A)", "Traverse", "T_a / N", ASTM),
    "void_count": Figure("Voids", "Individual voids", "4-connected components of void pixels", "-"),
    "voids_per_area": Figure("Voids per mm2", "Individual voids", "voids / analysed area", "-"),
    "entrained_void_count": Figure("Entrained voids", "Individual voids", "equivalent diameter <= limit", "-"),
    "entrapped_void_count": Figure("Entrapped voids", "Individual voids", "equivalent diameter > limit", "-"),
    "mean_void_diameter": Figure("Mean void diameter (section)", "Individual voids", "mean of 2 sqrt(area/pi)", "-"),
    "aggregate_pores_excluded": Figure("Pores of the aggregate (not counted as air)", "Individual voids",
                                       "voids with over 90 % of their boundary against stone",
                                       "EN 480-11 section 3.1 (air void: a space enclosed by cement paste)"),
    "en_air_content": Figure("Air content (traverse, chords <= 4 mm)", "EN 480-11", "T_a / T_t", EN480),
    "en_specific_surface": Figure("Specific surface alpha", "EN 480-11", "4 N / T_a", EN480),
    "en_spacing_factor": Figure("Spacing factor L", "EN 480-11", "P/(alpha A) if P/A <= 4.342, else "
                                "(3/alpha)[1.4(1 + P/A)^(1/3) - 1]", EN480),
    "micro_air_content_a300": Figure("Micro air content A300", "EN 480-11",
                                     "air in voids of diameter <= 300 um, chord classes unfolded as spheres", EN480),
    "unfolded_air_content": Figure("Air of the unfolded void sizes", "EN 480-11", "sum over the classes", EN480),
}


def figure(key: str) -> Figure:
    """The figure's words; a class's area figures (``stone_area``, ``road_fraction``...) get generic ones."""
    if key in FIGURES:
        return FIGURES[key]
    base, _, kind = key.rpartition("_")
    return Figure(f"{base} {'area' if kind == 'area' else 'area fraction'}", "Areal analysis",
                  f"{base} pixels x pixel area" if kind == "area" else f"{base} area / analysed area", "-")
