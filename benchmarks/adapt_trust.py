"""Does anything an adapted model knows without the truth tell how far off its air content is?

    python benchmarks/adapt_trust.py [benchmarks/logs/adapt-*/*.json ...]

Reads the JSON records that ``benchmarks/adapt.py`` writes (one per adapt run: the adapt record, and the painted and
sibling slabs measured against their exact truth) and, over every corrective-protocol run, prints Spearman's rank
correlation between figures a lab has without any truth and the adapted labels' absolute air-content error (and the
signed error, and the absolute spacing-factor error):

- the held-back strokes' accuracy per class (what the report's confidence check for an adapted model reads), and
  its gain over the base model on the same strokes;
- how many void objects the strokes touched (painted void / painted another class), whether the object rule was
  kept;
- how far adapting moved the air content from the base model's, and how far ``--tta flip4`` moved it (the
  model's disagreement with its own mirrored views, over the whole slab).

The runs are not independent (the same slabs, recipes that differ a little), so read the figures as "ranks or does
not", not to two decimals. The base model's own error (which needs the truth) is printed beside them for scale.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys


def rows_of(record: dict) -> list[dict]:
    """One row per slab (painted, sibling) of a corrective adapt run: the truth-free figures and the errors."""
    if record.get("protocol") != "corrective" or "adapt" not in record:
        return []
    measured = record.get("adapted_tta") or record.get("adapted")
    plain = record.get("adapted")
    a = record["adapt"]
    held = a.get("held_back_accuracy") or {}
    held_base = a.get("held_back_accuracy_base") or {}
    if not held or not measured:
        return []
    rules = a.get("object_rule") or []
    last = rules[-1] if rules else {}
    touched = last.get("fitted_on") or {}
    out = []
    for slab in ("painted", "sibling"):
        m, base = measured.get(slab), record["base"].get(slab)
        if not m or not base:
            continue
        row = {"style": record["style"], "slab": slab,
               "air_error": m["air_error_points"], "abs_air_error": abs(m["air_error_points"]),
               "abs_spacing_factor_error": abs(m["spacing_factor_error"]),
               "held_back_min": min(held.values()),
               "held_back_void": held.get("void"), "held_back_paste": held.get("paste"),
               "held_back_gain_void": (held.get("void") or 0) - (held_base.get("void") or 0),
               "held_back_gain_paste": (held.get("paste") or 0) - (held_base.get("paste") or 0),
               "objects_painted_void": touched.get("void"), "objects_painted_other": touched.get("not void"),
               "object_rule_kept": int(bool(last.get("kept"))),
               "air_moved_from_base": abs(m["air"] - base["air"]),
               "base_abs_air_error (needs truth)": abs(base["air_error_points"])}
        if record.get("adapted_tta") and plain and plain.get(slab):
            row["air_moved_by_tta"] = abs(m["air"] - plain[slab]["air"])
        out.append(row)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("records", nargs="*", help="adapt JSON records (default: benchmarks/logs/adapt-*/*.json)")
    args = ap.parse_args(argv)
    from bigseg.trust import spearman

    files = args.records or sorted(glob.glob("benchmarks/logs/adapt-*/*.json"))
    rows = []
    for f in files:
        try:
            with open(f) as fh:
                record = json.load(fh)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            rows += rows_of(record)
    runs = len(rows) // 2
    styles = sorted({r["style"] for r in rows})
    print(f"{len(rows)} slabs of {runs} corrective adapt runs, {len(styles)} styles ({', '.join(styles)})")
    print()
    print("| figure (no truth needed, unless said) | slabs | Spearman with abs air error | with signed air error | "
          "with abs spacing factor error |")
    print("|---|---:|---:|---:|---:|")
    figures = [k for k in rows[0] if k not in ("style", "slab", "air_error", "abs_air_error",
                                                 "abs_spacing_factor_error")] if rows else []
    for k in figures + ["air_moved_by_tta"] * ("air_moved_by_tta" not in figures):
        have = [r for r in rows if r.get(k) is not None]
        if len(have) < 5:
            continue
        x = [r[k] for r in have]
        if k.startswith("held_back"):  # a low score should mean a large error: rank the shortfall
            x = [-v for v in x]
        rho = [spearman(x, [r[e] for r in have]) for e in ("abs_air_error", "air_error", "abs_spacing_factor_error")]
        print(f"| {k} | {len(have)} | " + " | ".join("n/a" if v is None else f"{v:+.2f}" for v in rho) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
