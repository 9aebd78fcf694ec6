"""Two runs of the adapt table side by side (issue #28): the same styles adapted by two hands (or two recipes),
read from the JSON that ``benchmarks/adapt.py --out DIR`` writes, one line per style and slab with both runs'
figures under ``--tta`` (the ``adapted_tta`` record) and a ✗ where a figure misses its target, then the cells met,
the mean absolute air error and the mean void IoU of each run.

    python benchmarks/adapt_hands.py benchmarks/logs/adapt-heldout-suggested-2026-12-05 \\
        benchmarks/logs/adapt-heldout-suggested-s13-2026-12-05
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from adapt import TARGETS  # the table's targets, as benchmarks/adapt.py marks them

from bigseg.synth import HELD_OUT

TARGET_TEXT = (f"stone IoU >= {TARGETS['stone_iou']:.2f}, void IoU >= {TARGETS['void_iou']:.2f}, air within "
               f"{TARGETS['air_points']} points, spacing factor within {100 * TARGETS['spacing_factor']:.0f} %")


def rows_by_style(folder: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for f in sorted(folder.glob("*.json")):
        data = json.loads(f.read_text())
        for r in data if isinstance(data, list) else [data]:
            if "adapted_tta" in r:
                out[r["style"]] = r
    return out


def met(m: dict) -> list[bool]:
    return [m["iou"]["stone"] >= TARGETS["stone_iou"], m["iou"]["void"] >= TARGETS["void_iou"],
            abs(m["air_error_points"]) <= TARGETS["air_points"],
            abs(m["spacing_factor_error"]) <= TARGETS["spacing_factor"]]


def table(a: dict[str, dict], b: dict[str, dict]) -> str:
    styles = [s for s in HELD_OUT if s in a and s in b] + sorted(s for s in a if s in b and s not in HELD_OUT)
    lines = ["| style | slab | stone IoU: A / B | void IoU | air error (points) | spacing factor error "
             "| cells: A / B |", "|---|---|---:|---:|---:|---:|---:|"]
    cells = {"A": 0, "B": 0}
    air: dict[str, list[float]] = {"A": [], "B": []}
    void: dict[str, list[float]] = {"A": [], "B": []}

    def mark(ok: bool) -> str:
        return "" if ok else " ✗"

    for s in styles:
        style_cells = {"A": 0, "B": 0}
        for which in ("painted", "sibling"):
            ma, mb = a[s]["adapted_tta"][which], b[s]["adapted_tta"][which]
            ka, kb = met(ma), met(mb)
            for name, m, k in (("A", ma, ka), ("B", mb, kb)):
                style_cells[name] += sum(k)
                air[name].append(abs(m["air_error_points"]))
                void[name].append(m["iou"]["void"])
            tail = f"{style_cells['A']} / {style_cells['B']}" if which == "sibling" else ""
            lines.append(
                f"| {s} | {which} | {ma['iou']['stone']:.3f}{mark(ka[0])} / {mb['iou']['stone']:.3f}{mark(kb[0])} "
                f"| {ma['iou']['void']:.3f}{mark(ka[1])} / {mb['iou']['void']:.3f}{mark(kb[1])} "
                f"| {ma['air_error_points']:+.2f}{mark(ka[2])} / {mb['air_error_points']:+.2f}{mark(kb[2])} "
                f"| {100 * ma['spacing_factor_error']:+.1f} %{mark(ka[3])} / "
                f"{100 * mb['spacing_factor_error']:+.1f} %{mark(kb[3])} | {tail} |")
        cells["A"] += style_cells["A"]
        cells["B"] += style_cells["B"]
    n = len(air["A"])
    if n:
        lines.append("")
        lines.append(f"cells met ({TARGET_TEXT}): A {cells['A']} / B {cells['B']} of {4 * n}; mean absolute air error "
                     f"A {sum(air['A']) / n:.3f} / B {sum(air['B']) / n:.3f} points; mean void IoU "
                     f"A {sum(void['A']) / n:.3f} / B {sum(void['B']) / n:.3f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path, help="folder of run A's JSON")
    ap.add_argument("b", type=Path, help="folder of run B's JSON")
    a = ap.parse_args()
    print(table(rows_by_style(a.a), rows_by_style(a.b)))


if __name__ == "__main__":
    main()
