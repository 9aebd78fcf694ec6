"""An experiment, replayed offline: small voids the base model found and the adapted labels dropped, put back.

Adapting removes most of the base model's false small voids (dark grains the strokes painted over) and with them
many true ones: on development slabs the bundled model finds 85-93 % of the true voids under 10 px, the adapted
labels 66-76 % (RESULTS.md, "Small voids"). Here, for each recorded adapt run (its JSON from
``benchmarks/adapt.py``), the labels as infer builds them (the run's void shift, rule, cut and growth) get back
the base model's void objects under ``MAX_DIAMETER`` px across (equivalent diameter) that touch no adapted void:

- "restored": all of them;
- "restored, judged": only those the run's object rule (fitted on the strokes: painted grains against painted voids)
  still calls void; none where the run kept no rule;
- "restored, judged, gated": those, only where their area is at least ``GATE`` of the labels' void area.

Measured as the adapt benchmark measures (painted slab outside its strokes).

    python benchmarks/base_small_voids.py RUN.json ... --work benchmarks/work/adapt-random --json OUT.jsonl
    python benchmarks/base_small_voids.py --summary OUT.jsonl [--group NAME=GLOB ...]
Development and validation slabs only: it reads the truth.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
from pathlib import Path

import numpy as np
from deposit_growth import print_variants  # benchmarks/deposit_growth.py: cells, air, void IoU per variant
from outline_shift import (
    HERE,
    append_jsonl,
    as_built,
    model_path,
    probabilities,
    read_jsonl,
    recorded_slab,
    variant_figures,
)
from scipy import ndimage
from void_bias import rule_of

from bigseg import object_rule as orule
from bigseg.checkpoint import BUNDLED

MAX_DIAMETER = 20.0
GATE = 0.05
"""``restored, judged, gated``: the judged objects are put back only when their area is at least this share of the
labels' void area (adapting dropped many small voids, not a few grains)."""
EIGHT = np.ones((3, 3), bool)
VARIANTS = ("as built", "restored", "restored, judged", "restored, judged, gated")


def dropped_small_voids(base: np.ndarray, built: np.ndarray, void: int = 2) -> np.ndarray:
    """The base's void objects under MAX_DIAMETER px across that no void of ``built`` touches (mask)."""
    ids, n = ndimage.label(base == void, structure=EIGHT)
    area = np.bincount(ids.ravel(), minlength=n + 1)
    near = ndimage.binary_dilation(built == void, structure=EIGHT)
    touched = np.bincount(ids[near & (ids > 0)], minlength=n + 1) > 0
    keep = (2 * np.sqrt(area / np.pi) < MAX_DIAMETER) & ~touched
    keep[0] = False
    return keep[ids]


def judged(rule, candidates: np.ndarray, image: np.ndarray, void: int = 2) -> np.ndarray:
    """The candidate objects that ``rule`` (on whole objects, alone on a paste background) keeps as void."""
    alone = np.where(candidates, void, 0).astype(np.uint8)
    plain = dataclasses.replace(rule, cut_merged=False, grow_edges=False)
    return orule.judge(plain, alone, image)[0] == void


def run_one(path: Path, work: Path, cache: Path) -> dict:
    run = json.loads(path.read_text())
    if run.get("base_model", "bundled") != "bundled":
        raise SystemExit(f"{path}: adapted from {run['base_model']}, not the bundled model")
    model = model_path(run, work)
    rule = rule_of(model)
    out: dict = {"run": str(path), "style": run["style"], "hand": run["stroke_seed"], "rule": rule is not None,
                 "slabs": {}}
    for slab in ("painted", "sibling"):
        r = recorded_slab(run, model, slab, work, cache)
        store, classes, px, network = r["store"], r["classes"], r["px"], r["labels"]
        image, truth, skip = r["image"], r["truth"], r["strokes"]
        built = as_built(rule, network, image)
        base = probabilities(BUNDLED, store, "none", cache).argmax(0)
        candidates = dropped_small_voids(base, built)
        kept = judged(rule, candidates, image) if rule is not None else np.zeros_like(candidates)
        share = float(kept.sum()) / max(int((built == 2).sum()), 1)
        labels = {"as built": built, "restored": np.where(candidates, 2, built).astype(np.uint8),
                  "restored, judged": np.where(kept, 2, built).astype(np.uint8),
                  "restored, judged, gated": np.where(kept & (share >= GATE), 2, built).astype(np.uint8)}
        rows = variant_figures(store, {v: labels[v] for v in VARIANTS}, truth, skip, classes, px)
        n_cand = int(ndimage.label(candidates, structure=EIGHT)[1])
        true_share = float((truth[candidates] == 2).mean()) if candidates.any() else float("nan")
        for row in rows:
            print(f"{run['style']} hand {run['stroke_seed']} {slab}: {row['variant']}: void IoU {row['void_iou']:.3f}, "
                  f"air {row['air_error']:+.2f}, sf {100 * row['sf_error']:+.1f} % ({n_cand} candidates, "
                  f"{true_share:.2f} of their pixels true void; judged void: {100 * share:.1f} % of the void; rule "
                  f"{'kept' if rule is not None else 'none'})",
                  flush=True)
        out["slabs"][slab] = rows
    return out


def summary(path: str, groups: list[str]) -> None:
    runs = read_jsonl(path)
    named = [g.split("=", 1) for g in groups] or [["all", "*"]]
    for name, pattern in named:
        chosen = [r for r in runs if fnmatch.fnmatch(r["run"], pattern)]
        print(f"{name}: {len(chosen)} runs, {2 * len(chosen)} slabs")
        print_variants(chosen, VARIANTS)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*")
    ap.add_argument("--work", default=str(HERE / "work" / "adapt"))
    ap.add_argument("--cache", default=str(HERE / "work" / "outline-shift"))
    ap.add_argument("--json")
    ap.add_argument("--summary")
    ap.add_argument("--group", nargs="*", default=[], help="NAME=GLOB over the runs' paths")
    a = ap.parse_args(argv)
    if a.summary:
        summary(a.summary, a.group)
        return
    for path in a.runs:
        append_jsonl(a.json, run_one(Path(path), Path(a.work), Path(a.cache)))


if __name__ == "__main__":
    main()
