"""An experiment: labelled void objects cut where the grey rises inside them, and the object rule judging the pieces.

A dark grain that a void touches is labelled void with it, and the object rule, judging the merged object whole,
keeps it (``benchmarks/void_error_parts.py``: "merged"). Here each labelled void object is cut by a watershed of the
smoothed grey inside it (Gaussian, 1 px; outside the object counts as white), from minima at least ``h`` grey levels
deep, and the run's own stored rule judges the pieces (``object_rule.apply`` with the pieces as objects). The labels
come from each recorded run's adapted model as infer makes them (``--tta flip4``, the probabilities cached by
``benchmarks/outline_shift.py``); figures as that script measures them, beside the rule on whole objects.

    python benchmarks/grey_split.py logs/adapt-2026-12-04c/*gone.json --depths 8 16 --json F.jsonl
    python benchmarks/grey_split.py --summary F.jsonl
    ... --grow: also each variant followed by ``object_rule.grow_edges`` (voids grown to the half-way grey)
    ... --built: also ``object_rule.judge`` with the rule's cut and growth on (what infer runs once built)
    ... --built --shifts -0.25 -0.5: also the pass as built after an extra shift of the void logit

Development slabs only: it reads the truth.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from outline_shift import (  # benchmarks/outline_shift.py
    HERE,
    append_jsonl,
    figures,
    model_path,
    read_jsonl,
    recorded_slab,
)
from scipy import ndimage
from void_bias import rule_of  # benchmarks/void_bias.py: the rule an adapted checkpoint carries

from bigseg import object_rule as orule
from bigseg.report.report import analyse

AIR_TARGET, SF_TARGET, VOID_TARGET, STONE_TARGET = 0.3, 0.10, 0.85, 0.90


def grey_parts(labels: np.ndarray, image: np.ndarray, void: int, h: float) -> orule.Objects:
    """The void objects of ``labels`` cut by a watershed of the smoothed grey inside them, from minima at least
    ``h`` deep (a component with none stays whole), measured as the rule measures objects."""
    from skimage.morphology import h_minima
    from skimage.segmentation import watershed

    mask = labels == void
    g = np.where(mask, ndimage.gaussian_filter(orule.grey(image).astype(np.float32), 1.0), 255.0)
    markers, _ = ndimage.label(h_minima(g, h).astype(bool) & mask, structure=np.ones((3, 3)))
    parts = watershed(g, markers, mask=mask, connectivity=2)
    rest, _ = ndimage.label(mask & (parts == 0), structure=np.ones((3, 3)))
    parts = np.where(rest > 0, rest + parts.max(), parts)
    uniq, ids = np.unique(parts, return_inverse=True)
    ids = ids.reshape(parts.shape).astype(np.int32)  # 0 stays 0 (the smallest value)
    return orule.measure(ids, len(uniq) - 1, image, parts=True)


def run_one(path: Path, work: Path, cache: Path, depths: list[float], grow: bool = False, built: bool = False,
            shifts: tuple[float, ...] = ()) -> dict:
    run = json.loads(path.read_text())
    model = model_path(run, work)
    rule = rule_of(model)
    out: dict = {"run": str(path), "style": run["style"], "rule": rule is not None, "slabs": {}}
    for slab in ("painted", "sibling"):
        r = recorded_slab(run, model, slab, work, cache)
        store, classes, px, logp, labels = r["store"], r["classes"], r["px"], r["logp"], r["labels"]
        image, truth, skip = r["image"], r["truth"], r["strokes"]
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / store.name
            shutil.copytree(store, copy)
            true = analyse(str(copy), "truth", classes, px, 1.0, 1.0)["parameters"]
            variants = {"whole objects": orule.apply(rule, labels, image)[0] if rule else labels}
            for h in depths:
                if rule is not None:
                    pieces = grey_parts(labels, image, 2, h)
                    variants[f"grey cut, h {h:g}"] = orule.apply(rule, labels, image, pieces)[0]
                else:
                    variants[f"grey cut, h {h:g}"] = labels
            if grow:  # object_rule.grow_edges after each, as infer's rule pass orders them (only with a rule)
                variants.update({f"{k}, then grow": orule.grow_edges(v, image, 2, network=labels) if rule else v
                                 for k, v in list(variants.items())})
            if built and rule is not None:  # bigseg.object_rule.judge with the cut and the growth, as infer runs it
                both = dataclasses.replace(rule, cut_merged=True, grow_edges=True)
                variants["as built: cut, rule, grow"] = orule.judge(both, labels, image)[0]
                for d in shifts:  # an extra shift of the void logit before the pass (the model's own is in prob)
                    shifted = logp.copy()
                    shifted[2] += d
                    lab_d = shifted.argmax(0).astype(np.uint8)
                    variants[f"as built, void shift {d:+g} more"] = orule.judge(both, lab_d, image)[0]
            for name, lab in variants.items():
                row = {"variant": name, **figures(copy, lab, truth, true, skip, classes, px)}
                rows.append(row)
                print(f"{run['style']} hand {run['stroke_seed']} seed {run['adapt_seed']} {slab}: {name}: void IoU "
                      f"{row['void_iou']:.3f}, air {row['air_error']:+.2f}, sf {100 * row['sf_error']:+.1f} %",
                      flush=True)
        out["slabs"][slab] = rows
    return out


def summary(path: str, unit: str = "runs") -> None:
    """The cells table per variant over every slab of a ``--json`` file (one line per run, or per ``unit``)."""
    lines = read_jsonl(path)
    print(f"{len(lines)} {unit}, {2 * len(lines)} slabs")
    variant_table([r for x in lines for s in ("painted", "sibling") for r in x["slabs"][s]])


def variant_table(rows: list[dict]) -> None:
    """Per variant over ``rows`` (one per slab and variant: figures as ``outline_shift.figures`` gives them): the
    cells met and the mean absolute air error and void IoU, as a markdown table."""
    print("| variant | air within 0.3 | spacing factor within 10 % | void IoU >= 0.85 | cells | stone IoU >= 0.90 "
          "| mean abs air | mean void IoU |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for v in dict.fromkeys(r["variant"] for r in rows):
        rs = [r for r in rows if r["variant"] == v]
        air = np.abs([r["air_error"] for r in rs])
        cells = [int((air <= AIR_TARGET).sum()), sum(abs(r["sf_error"]) <= SF_TARGET for r in rs),
                 sum(r["void_iou"] >= VOID_TARGET for r in rs)]
        stone = sum(r["stone_iou"] >= STONE_TARGET for r in rs)
        print(f"| {v} | {cells[0]} | {cells[1]} | {cells[2]} | {sum(cells)} | {stone} | {air.mean():.3f} | "
              f"{np.mean([r['void_iou'] for r in rs]):.3f} |")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*")
    ap.add_argument("--work", default=str(HERE / "work" / "adapt"))
    ap.add_argument("--cache", default=str(HERE / "work" / "outline-shift"))
    ap.add_argument("--depths", nargs="+", type=float, default=[8.0, 16.0])
    ap.add_argument("--grow", action="store_true", help="also each variant followed by object_rule.grow_edges")
    ap.add_argument("--built", action="store_true", help="also bigseg.object_rule.judge with the cut and the growth")
    ap.add_argument("--shifts", nargs="*", type=float, default=[],
                    help="with --built: also the pass as built after this extra shift of the void logit")
    ap.add_argument("--json")
    ap.add_argument("--summary")
    a = ap.parse_args(argv)
    if a.summary:
        summary(a.summary)
        return
    for path in a.runs:
        append_jsonl(a.json, run_one(Path(path), Path(a.work), Path(a.cache), a.depths, a.grow, a.built,
                                     tuple(a.shifts)))


if __name__ == "__main__":
    main()
