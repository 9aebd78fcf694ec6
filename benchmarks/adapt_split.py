"""Which of adapt's draws makes the spread: one line per run of ``benchmarks/adapt.py`` (JSON files in the given
folders) with its held-back seed and crops' seed, the air error and void IoU of the network alone (``--tta`` as
run, without the object rule) and as built, and the range of the network's mean air error over each seed.

    python benchmarks/adapt_split.py benchmarks/logs/adapt-split-2026-12-05 [MORE_FOLDERS]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row(r: dict) -> dict:
    o = r["options"]
    held = o.get("held_back_seed")
    net = r.get("adapted_no_rule") or r["adapted_tta"]  # no rule kept: the network is what was built
    built = r["adapted_tta"]
    sides = ("painted", "sibling")
    return {"held": o["seed"] if held is None else held, "crops": o["seed"], "refit": o.get("refit", 0.0),
            "air": [net[w]["air_error_points"] for w in sides], "void": [net[w]["iou"]["void"] for w in sides],
            "kept": "adapted_no_rule" in r, "built_air": [built[w]["air_error_points"] for w in sides],
            "built_void": [built[w]["iou"]["void"] for w in sides]}


def main(folders: list[str]) -> None:
    rows = [row(json.loads(f.read_text())) for d in folders for f in sorted(Path(d).glob("*.json"))]
    print("| held-back seed | crops' seed | refit | network: air painted / sibling | mean | void IoU painted / sibling "
          "| rule kept | as built: air | void IoU |\n|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for r in rows:
        a, v, b, bv = r["air"], r["void"], r["built_air"], r["built_void"]
        print(f"| {r['held']} | {r['crops']} | {r['refit']:g} | {a[0]:+.2f} / {a[1]:+.2f} | {sum(a) / 2:+.2f} | "
              f"{v[0]:.3f} / {v[1]:.3f} | {'yes' if r['kept'] else 'no'} | {b[0]:+.2f} / {b[1]:+.2f} | "
              f"{bv[0]:.3f} / {bv[1]:.3f} |")
    for refit in sorted({r["refit"] for r in rows}):
        means = {(r["held"], r["crops"]): sum(r["air"]) / 2 for r in rows if r["refit"] == refit}
        first = min(means)[1]  # the crops' seed the held-back seeds were run with
        by_held = [m for (h, c), m in means.items() if c == first]
        by_crops = [m for (h, c), m in means.items() if h == min(means)[0]]
        print(f"refit {refit:g}: network mean air over held-back seeds (crops {first}): range "
              f"{max(by_held) - min(by_held):.2f}, mean {sum(by_held) / len(by_held):+.2f} ({len(by_held)} runs); "
              f"over crops' seeds: range {max(by_crops) - min(by_crops):.2f} ({len(by_crops)} runs)")


if __name__ == "__main__":
    main(sys.argv[1:])
