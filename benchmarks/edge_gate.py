"""An experiment: grow a void to its edge only where the labels stopped inside the edge, not where it is drawn whole.

``object_rule.grow_edges`` takes, around each judged void object, the pixels up to 2 px out whose grey lies less
than half way from the object's core to its surroundings. On the development slabs (crushed, gravel) the adapted
networks stop 1-2 px inside a void's blurred rim and the growth gives void IoU back; on held-out styles whose voids
the network already draws whole it made every void larger (benchmarks/RESULTS.md, "Outlined voids, two errors that
cancel, and merged objects cut at grey ridges"). Where a label's edge sits can be read without the truth: the grey
of the object's own boundary pixels, on the same scale (0 = the core's grey, 1 = the surroundings'). An object whose
boundary is still dark (its edge well under half way) stopped inside its rim; one whose boundary is at half way or
lighter is drawn whole, and growing it can only overshoot.

This script measures, per void object the growth would act on, that boundary level (the median over the object's
4-neighbour boundary pixels) and what the growth takes there, right (void in the truth) and wrong; then, per slab,
the figures with the growth gated at several levels. Two sources:

- recorded adapt runs (``benchmarks/adapt.py`` JSONs; the adapted model's labels under ``--tta flip4`` from the
  probabilities ``benchmarks/outline_shift.py`` caches, the run's rule as infer judges with it: cut, then the rule),
  figures as that script measures them;
- ``--validation N``: the bundled model on validation slabs (random styles, seeds 7000000..; never a held-out style),
  objects and pixels only (there is no rule: every object that is mostly void in the truth counts as kept -- an
  oracle rule --, the others are left out), which puts voids the network draws whole beside the development styles'.

    python benchmarks/edge_gate.py logs/adapt-2026-12-04c/*gone.json --json F.jsonl
    python benchmarks/edge_gate.py --validation 8 --size 2048 --json F.jsonl
    python benchmarks/edge_gate.py --summary F.jsonl
    python benchmarks/edge_gate.py RUNS --light --as-infer --json F.jsonl   # the 2026-12-05 replay (below)

``--light`` adds the variants where voids lighter than their surroundings grow too (``grow_edges(light=True)``),
alone and gated; ``--as-infer`` gives a run whose adapted model keeps no rule the same labels in every variant (infer
never grows without a rule; by default such a run is grown as if a rule had kept every object). Since 2026-12-05 the
gated variants use ``grow_edges(gate=...)`` itself (an object whose boundary level is at or over the gate does not
grow); the 2026-12-04 logs were made with the taken pixels given to the nearest object afterwards.

It reads the truth: development and validation slabs only.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from grey_split import variant_table  # benchmarks/grey_split.py: the cells table per variant
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
from bigseg import store as st
from bigseg.report.report import analyse

GATES = (None, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15)
"""Grow an object only when its boundary's level is under this (None: every object, as built)."""


def edge_levels(labels: np.ndarray, image: np.ndarray, void: int, network: np.ndarray,
                light: bool = False) -> dict[int, float]:
    """Per void object of ``labels`` that ``grow_edges`` would grow (its 8-connected id): its boundary level
    (``object_rule.boundary_level``), its core and surroundings as ``grow_edges`` measures them."""
    ids, n = ndimage.label(labels == void, structure=np.ones((3, 3)))
    out: dict[int, float] = {}
    for near, obj, _, gn, core, around in orule.edge_frames(ids, n, orule.grey(image), network != void, light=light):
        out[int(ids[near][obj][0])] = orule.boundary_level(obj, gn, core, around)
    return out


def object_rows(labels: np.ndarray, image: np.ndarray, truth: np.ndarray, void: int, network: np.ndarray,
                kept: set[int] | None = None) -> list[dict]:
    """Per grown object: its boundary level, area, and the pixels the growth takes right and wrong. ``kept``: object
    ids to count (None: all)."""
    grown = orule.grow_edges(labels, image, void, network=network)
    ids, _ = ndimage.label(labels == void, structure=np.ones((3, 3)))
    levels = edge_levels(labels, image, void, network)
    taken = grown != labels
    _, (iy, ix) = ndimage.distance_transform_edt(ids == 0, return_indices=True)
    owner = np.where(taken, ids[iy, ix], 0)
    right = np.bincount(owner[taken & (truth == void)], minlength=ids.max() + 1)
    wrong = np.bincount(owner[taken & (truth != void)], minlength=ids.max() + 1)
    area = np.bincount(ids.ravel(), minlength=ids.max() + 1)
    rows = []
    for k, level in levels.items():
        if kept is not None and k not in kept:
            continue
        rows.append({"level": round(level, 4), "area": int(area[k]), "right": int(right[k]), "wrong": int(wrong[k])})
    return rows


LIGHT_GATES = (None, 0.45, 0.35)
"""With ``--light``: voids lighter than their surroundings grown too, under these gates."""


def run_one(path: Path, work: Path, cache: Path, light: bool = False, as_infer: bool = False) -> dict:
    run = json.loads(path.read_text())
    model = model_path(run, work)
    rule = rule_of(model)
    out: dict = {"run": str(path), "style": run["style"], "rule": rule is not None, "slabs": {}, "objects": []}
    for slab in ("painted", "sibling"):
        r = recorded_slab(run, model, slab, work, cache)
        store, classes, px, network = r["store"], r["classes"], r["px"], r["labels"]
        image, truth, skip = r["image"], r["truth"], r["strokes"]
        if rule is not None:  # infer's pass up to the growth: the cut, then the rule
            ruled = orule.judge(dataclasses.replace(rule, cut_merged=True, grow_edges=False), network, image)[0]
        else:  # no rule: the growth on the network's labels, as a rule keeping every object would leave them
            ruled = network
        out["objects"] += [{**r, "slab": slab} for r in object_rows(ruled, image, truth, 2, network)]
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / store.name
            shutil.copytree(store, copy)
            true = analyse(str(copy), "truth", classes, px, 1.0, 1.0)["parameters"]
            plain = figures(copy, ruled, truth, true, skip, classes, px)
            rows.append({"variant": "no growth", **plain})
            variants = [(gate, False) for gate in GATES] + ([(gate, True) for gate in LIGHT_GATES] if light else [])
            for gate, lit in variants:
                name = "grow every object" if gate is None else f"grow under {gate:g}"
                name = f"light voids too: {name}" if lit else name
                if as_infer and rule is None:  # infer grows nothing without a rule
                    rows.append({"variant": name, **plain})
                    continue
                lab = orule.grow_edges(ruled, image, 2, network=network, light=lit, gate=gate)
                rows.append({"variant": name, **figures(copy, lab, truth, true, skip, classes, px)})
        for row in rows:
            print(f"{run['style']} hand {run['stroke_seed']} seed {run['adapt_seed']} {slab}: {row['variant']}: void "
                  f"IoU {row['void_iou']:.3f}, air {row['air_error']:+.2f}, sf {100 * row['sf_error']:+.1f} %",
                  flush=True)
        out["slabs"][slab] = rows
    return out


def validation_one(k: int, size: int, workdir: Path) -> dict:
    """The bundled model's labels on validation slab ``k`` (random style), objects mostly void in the truth only."""
    from bigseg.infer import InferOptions, infer
    from bigseg.trust import CALIBRATION_SEED, synthetic_store

    store = synthetic_store(workdir, "random", CALIBRATION_SEED + k, size)
    infer(store, options=InferOptions(workers=0, overwrite=True, object_rule=False), echo=lambda *a: None)
    labels = np.asarray(st.open_array(store, "labels")[:])
    image = np.asarray(st.open_array(store, "image")[:])
    truth = np.asarray(st.open_array(store, "truth")[:])
    ids, n = ndimage.label(labels == 2, structure=np.ones((3, 3)))
    area = np.bincount(ids.ravel(), minlength=n + 1)
    true_px = np.bincount(ids[truth == 2], minlength=n + 1)
    kept = set(np.flatnonzero((true_px * 2 > area) & (np.arange(n + 1) > 0)).tolist())
    rows = object_rows(labels, image, truth, 2, labels, kept)
    print(f"validation slab {k}: {len(rows)} true void objects grown, right {sum(r['right'] for r in rows)}, wrong "
          f"{sum(r['wrong'] for r in rows)}", flush=True)
    return {"run": f"validation {CALIBRATION_SEED + k} ({size} px)", "style": "random", "slabs": {},
            "objects": [{**r, "slab": "validation"} for r in rows]}


def summary(path: str) -> None:
    lines = read_jsonl(path)
    print("Growth taken, by the object's boundary level (right = void in the truth):")
    print("| source | boundary level | objects | right px | wrong px | right share |")
    print("|---|---|---:|---:|---:|---:|")
    bins = [0, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 10]
    for source in dict.fromkeys(x["style"] for x in lines):
        objs = [o for x in lines if x["style"] == source for o in x["objects"]]
        for lo, hi in itertools.pairwise(bins):
            sel = [o for o in objs if lo <= o["level"] < hi]
            r, w = sum(o["right"] for o in sel), sum(o["wrong"] for o in sel)
            share = f"{r / (r + w):.2f}" if r + w else "-"
            print(f"| {source} | {lo:g}-{hi:g} | {len(sel)} | {r} | {w} | {share} |")
    runs = [x for x in lines if x["slabs"]]
    if not runs:
        return
    print(f"\n{len(runs)} runs, {2 * len(runs)} slabs")
    variant_table([r for x in runs for s in ("painted", "sibling") for r in x["slabs"][s]])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*")
    ap.add_argument("--work", default=str(HERE / "work" / "adapt"))
    ap.add_argument("--cache", default=str(HERE / "work" / "outline-shift"))
    ap.add_argument("--validation", type=int, default=0, help="also this many validation slabs (bundled model)")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--validation-work", default=str(HERE / "work" / "edge-gate"))
    ap.add_argument("--light", action="store_true", help="also grow voids lighter than their surroundings")
    ap.add_argument("--as-infer", action="store_true", help="a run without a rule grows nothing in any variant")
    ap.add_argument("--json")
    ap.add_argument("--summary")
    a = ap.parse_args(argv)
    if a.summary:
        summary(a.summary)
        return
    jobs = [lambda p=p: run_one(Path(p), Path(a.work), Path(a.cache), a.light, a.as_infer) for p in a.runs]
    jobs += [lambda k=k: validation_one(k, a.size, Path(a.validation_work)) for k in range(a.validation)]
    for job in jobs:
        append_jsonl(a.json, job())


if __name__ == "__main__":
    main()
