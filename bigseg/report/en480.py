"""EN 480-11 figures from the traverse: the chord-class table, the void-size distribution and the micro air
content A300, and the spacing factor with the paste content EN 480-11 takes from the mix design.

**Chord classes.** EN 480-11 sorts the chords of the traverse into 28 length classes up to 4 mm (chords longer than
4 mm are not air-void chords for it and are left out of its figures); classes are upper-inclusive, (lo, hi]. The
limits used here (um): 10, 20, 30, 40, 50, 60, then every 20 to 300, then 350, 400, 450, 500, 1000, 1500, 2000,
2500, 3000, 4000 -- 28 classes as the standard's table has (EN 480-11:2005, section 7.2 and its Table 1); the
standard's text was not at hand when this was written, so the limits are those published in the literature that
applies it (e.g. Wawrzenczyk et al., Materials 2023, 16(7), 2752: "28 length classes") -- check them against your
copy before you sign.

**Void sizes and A300** (micro air content: air in voids of diameter up to 300 um). EN 480-11 obtains the void
diameters by unfolding the chord classes under the assumption that voids are spheres. Done here as follows
(a Saltykov-type unfolding, exact for spheres whose diameters are the class limits): a sphere of diameter D cut
by a random line gives a chord of length up to x with probability x^2 / D^2, and N_V spheres per unit volume give
N_V pi D^2 / 4 chords per unit length of line. With class limits e_0 = 0 < e_1 < ... < e_K and chords per unit
length c_j in class (e_{j-1}, e_j], spheres of diameter e_i contribute to classes j <= i only, which gives

    c_j / (e_j^2 - e_{j-1}^2) = (pi / 4) * sum_{i >= j} N_V,i
    N_V,j = (4 / pi) * ( c_j / (e_j^2 - e_{j-1}^2) - c_{j+1} / (e_{j+1}^2 - e_j^2) )

solved with N_V >= 0 by non-negative least squares (back-substitution gives negative numbers from sampling
noise, and setting them to 0 biases A300 upwards); classes narrower than two pixels are merged first. The air
volume in class j is N_V,j pi e_j^3 / 6; A300 is the sum over e_j <= 300 um, as a percentage of the concrete.
Tested on spheres of known diameters sectioned by a plane (tests/test_en480.py).

**Spacing factor.** EN 480-11 section 8: alpha = 4 N / T_a; with P the paste content *from the mix proportions*,
L = P / (alpha A) when P / A <= 4.342, otherwise L = (3 / alpha) * (1.4 * (1 + P / A)^(1/3) - 1). Without
``--paste-content`` the areal paste content of the mask stands in for P (and the report says so).
"""

from __future__ import annotations

import math

import numpy as np

from bigseg.report.parameters import SPACING_FACTOR_BRANCH, param

EN_CLASSES_UM = (10, 20, 30, 40, 50, 60, 80, 100, 120, 140, 160, 180, 200, 220, 240, 260, 280, 300, 350, 400, 450,
                 500, 1000, 1500, 2000, 2500, 3000, 4000)
"""Upper limits (um) of EN 480-11's 28 chord classes (see the module doc for their source)."""

MICRO_UM = 300.0
MAX_CHORD_UM = 4000.0


def chord_classes(lengths_um: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Chords in each EN class (lo, hi]; chords above 4 mm are left out."""
    edges = np.asarray(EN_CLASSES_UM, float)
    keep = lengths_um <= MAX_CHORD_UM
    index = np.clip(np.searchsorted(edges, lengths_um[keep], side="left"), 0, len(edges) - 1)
    return np.bincount(index, weights=counts[keep], minlength=len(edges))[: len(edges)]


def unfold(class_counts: np.ndarray, traverse_mm: float, pixel_size_um: float | None = None) -> dict:
    """Spheres per unit volume (1/mm^3) and air volume fraction per class from chords per class on a traverse of
    ``traverse_mm``; see the module doc. Solved as non-negative least squares (``scipy.optimize.nnls``) rather than
    by back-substitution with negative values set to 0, which biases A300 upwards. Classes narrower than two pixels
    (``pixel_size_um``) cannot be told apart on the image (a chord is a whole number of pixels): they are merged
    with their neighbours above until each class spans two pixels (the 300 um limit is kept)."""
    from scipy.optimize import nnls

    limits = np.asarray(EN_CLASSES_UM, float)
    keep = []  # indices of the limits kept
    prev = 0.0
    for j, hi in enumerate(limits):
        wide = pixel_size_um is None or hi - prev >= 2 * pixel_size_um
        if wide or hi == MICRO_UM or j == len(limits) - 1:
            keep.append(j)
            prev = hi
    merged = np.add.reduceat(np.asarray(class_counts, float), [0] + [k + 1 for k in keep[:-1]])
    e = limits[keep] / 1000.0  # mm
    lo = np.concatenate([[0.0], e[:-1]])
    c = merged / traverse_mm  # chords per mm of line, per merged class
    ring = math.pi / 4.0 * (e**2 - lo**2)
    M = np.triu(np.broadcast_to(ring[:, None], (len(e), len(e))))  # chords in class j from spheres of class i >= j
    nv, _ = nnls(M, c)
    volume = nv * math.pi * e**3 / 6.0
    full_nv, full_volume = np.zeros(len(limits)), np.zeros(len(limits))
    full_nv[keep], full_volume[keep] = nv, volume
    residual = float(np.abs(M @ nv - c).sum() / max(c.sum(), 1e-12))
    return {"spheres_per_mm3": full_nv, "air_volume_fraction": full_volume, "merged_limits_um": limits[keep].tolist(),
            "misfit": residual}


def en480_figures(lengths_um: np.ndarray, counts: np.ndarray, traverse_mm: float, paste_fraction: float,
                  paste_from_mix: float | None, pixel_size_um: float | None = None,
                  every: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """The EN 480-11 figures from the chords (lengths in um) of a traverse of ``traverse_mm``:
    {parameters: {...}, class_table: [...]} (parameters as in the ASTM table).

    ``lengths_um``/``counts``: the chords *counted* under the edge rule (N and the class counts: the rule keeps N
    unbiased); ``every``: (lengths, counts) of every chord, cut by an edge or not, whose air T_a is (the rule must
    not remove length; without ``every``, the counted chords give T_a)."""

    lengths_um = np.asarray(lengths_um, float)
    counts = np.asarray(counts, float)
    classes = chord_classes(lengths_um, counts)
    kept = lengths_um <= MAX_CHORD_UM
    N = float(counts[kept].sum())
    all_lengths, all_counts = (lengths_um, counts) if every is None else (np.asarray(every[0], float),
                                                                          np.asarray(every[1], float))
    short = all_lengths <= MAX_CHORD_UM
    T_a = float((all_lengths[short] * all_counts[short]).sum()) / 1000.0
    A = T_a / traverse_mm if traverse_mm else 0.0  # EN's total air content: from the traverse
    alpha = 4.0 * N / T_a if T_a else None
    P = paste_from_mix if paste_from_mix is not None else paste_fraction
    if alpha and A > 0:
        L = P / (alpha * A) if P / A <= SPACING_FACTOR_BRANCH else 3.0 / alpha * (
            1.4 * (1.0 + P / A) ** (1.0 / 3.0) - 1.0)
    else:
        L = None
    u = unfold(classes, traverse_mm, pixel_size_um) if traverse_mm else None
    limits = np.asarray(EN_CLASSES_UM, float)
    micro = float(u["air_volume_fraction"][limits <= MICRO_UM].sum()) if u else 0.0
    total_unfolded = float(u["air_volume_fraction"].sum()) if u else 0.0
    source = "the paste content from the mix design (--paste-content)" if paste_from_mix is not None else \
        "the mask's areal paste content (no --paste-content given)"
    params = {
        "en_air_content": param(100 * A, "%", "EN 480-11: total air content from the traverse, chords up to 4 mm"),
        "en_specific_surface": param(alpha, "1/mm", "EN 480-11: alpha = 4 N / T_a (chords up to 4 mm)"),
        "en_spacing_factor": param(L, "mm", f"EN 480-11 section 8: spacing factor with P = {source}"),
        "micro_air_content_a300": param(100 * micro, "%", "EN 480-11: A300, air in voids of diameter <= 300 um, "
                                                           "from the chord classes unfolded as spheres"),
        "unfolded_air_content": param(100 * total_unfolded, "%", "all air of the unfolded sphere sizes (compare "
                                                                 "with en_air_content: the spheres' fit)"),
    }
    prev = 0.0
    table = []
    for k, hi in enumerate(EN_CLASSES_UM):
        table.append({"from_um": prev, "to_um": float(hi), "chords": int(round(classes[k])),
                      "spheres_per_mm3": float(u["spheres_per_mm3"][k]) if u else 0.0,
                      "air_volume_percent": 100 * float(u["air_volume_fraction"][k]) if u else 0.0})
        prev = float(hi)
    return {"parameters": params, "class_table": table, "misfit": u["misfit"] if u else 0.0,
            "merged_limits_um": u["merged_limits_um"] if u else []}
