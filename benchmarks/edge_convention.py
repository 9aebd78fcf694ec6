"""An experiment: the edge growth's level fitted per lab on a few whole voids a person outlined.

After the object rule, ``object_rule.grow_edges`` takes the pixels up to 2 px around each kept void whose grey lies
less than half way (``EDGE_ALPHA`` 0.5) from the void's core to its surroundings. Where a lab draws a void's edge is a
convention of its own: on crushed the true edge pixel sits at 0.56 of the way from core to paste, on gravel at 0.23
(benchmarks/RESULTS.md, "What is left in the labels as built"), and on styles whose voids the network already draws
whole the growth only overshoots. Strokes lie inside regions and cannot say where the edge is; a few outlined voids
(every pixel of the void painted void, a ring around it painted as what is there) can. The void shift fitted on
outlines failed because a shift grows every dark thing the model nearly calls void ("Outlined voids, two errors
that cancel"); the growth acts only on the edges of the voids the rule kept, so fitting *its* level should not.

For each recorded adapt run (its JSON from ``benchmarks/adapt.py``; the adapted model's labels under ``--tta flip4``
from the probabilities ``benchmarks/outline_shift.py`` caches; the run's rule as infer judges with it: the cut, the
rule, then the growth), the growth is replayed on a grid of levels and reaches (and none), and for several draws of
N true voids outlined on the painted slab (as ``benchmarks/adapt.py --outlines`` picks them, other seeds) the pair
that labels the outlined voids and the ``--ring`` px around them best (void IoU there; ties to the built pair, then
to the smaller growth) labels both slabs. ``--jitter``: each outlined void as a person's hand would outline it, its
edge one pixel in or out at random (or exact; a third each). Figures as the adapt benchmark measures them (the
painted slab scored off its strokes and the outlined pixels).

    python benchmarks/edge_convention.py logs/adapt-2026-12-04c/*gone.json --outlines 5 10 20 --draws 3 \\
        --json logs/edge-convention-2026-12-04/dev.jsonl
    python benchmarks/edge_convention.py --summary logs/edge-convention-2026-12-04/dev.jsonl

Development slabs only: it reads the truth.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from grey_split import AIR_TARGET, SF_TARGET, VOID_TARGET, variant_table  # benchmarks/grey_split.py
from outline_shift import (  # benchmarks/outline_shift.py
    HERE,
    append_jsonl,
    figures,
    model_path,
    outlined,
    read_jsonl,
    recorded_slab,
)
from scipy import ndimage
from void_bias import rule_of  # benchmarks/void_bias.py: the rule an adapted checkpoint carries

from bigseg import object_rule as orule
from bigseg.metrics import confusion, scores
from bigseg.report.report import analyse

BUILT = (orule.EDGE_ALPHA, orule.EDGE_REACH)
GRID = [None] + [(a, r) for r in (1, 2, 3) for a in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)]
"""The growths tried: None (no growth), else (level, reach in px)."""
VOID = 2  # the concrete class table's void (the stores adapt.py makes)


def name_of(g) -> str:
    return "no growth" if g is None else f"grow to {g[0]:.1f}, {g[1]} px"


def jittered(inside: np.ndarray, seed: int) -> np.ndarray:
    """``inside`` (the outlined voids) with each void's edge moved one pixel in or out at random, or left (a third
    each): the outline a person's hand draws."""
    ids, n = ndimage.label(inside, structure=np.ones((3, 3)))
    move = np.random.default_rng(seed).integers(-1, 2, size=n + 1)
    out = inside.copy()
    for k in range(1, n + 1):
        one = ids == k
        if move[k] > 0:
            out |= ndimage.binary_dilation(one)
        elif move[k] < 0:
            shrunk = ndimage.binary_erosion(one)
            if shrunk.any():
                out &= ~(one & ~shrunk)
    return out


def zone_iou(labels: np.ndarray, stated: np.ndarray, zone: np.ndarray, void: int) -> float:
    """Void IoU of ``labels`` against what the outlines state (``stated`` void inside ``zone``), over ``zone``."""
    a, b = labels[zone] == void, stated[zone]
    return float((a & b).sum() / max((a | b).sum(), 1))


def run_one(path: Path, work: Path, cache: Path, outlines: list[int], draws: int, ring: int, jitter: bool) -> dict:
    run = json.loads(path.read_text())
    model = model_path(run, work)
    rule = rule_of(model)
    out: dict = {"run": str(path), "style": run["style"], "rule": rule is not None, "slabs": {}, "fits": []}
    slabs = {}
    for slab in ("painted", "sibling"):
        r = recorded_slab(run, model, slab, work, cache)
        store, classes, px, labels = r["store"], r["classes"], r["px"], r["labels"]
        image, truth, strokes = r["image"], r["truth"], r["strokes"]
        if rule is None:  # nothing is judged or grown: every variant is the network's labels
            grown = {g: labels for g in GRID}
        else:
            cutting = dataclasses.replace(rule, cut_merged=True, grow_edges=False)
            ruled = orule.judge(cutting, labels, image)[0]
            grown = {g: ruled if g is None else orule.grow_edges(ruled, image, rule.void, network=labels,
                                                                  alpha=g[0], reach=g[1]) for g in GRID}
        slabs[slab] = (store, classes, px, truth, strokes, grown)
    _, _, _, truth_p, _, grown_p = slabs["painted"]
    fits = []
    for n in outlines:
        for k in range(draws):
            inside, around = outlined(truth_p, n, 70_000 + 100 * n + k, ring)
            zone = inside | around
            stated = jittered(inside, 80_000 + 100 * n + k) if jitter else inside
            score = {g: zone_iou(grown_p[g], stated, zone, VOID) for g in GRID}
            best = max(score.values())
            tied = [g for g in GRID if score[g] >= best - 1e-9]
            chosen = BUILT if BUILT in tied else min(tied, key=lambda g: (g is not None, g and g[0] * g[1]))
            fits.append({"outlines": n, "draw": k, "growth": chosen, "zone_iou": score[chosen], "zone": zone})
    out["fits"] = [{k: v for k, v in f.items() if k != "zone"} for f in fits]
    with tempfile.TemporaryDirectory() as tmp:
        for slab, (store, classes, px, truth, strokes, grown) in slabs.items():
            copy = Path(tmp) / store.name
            shutil.copytree(store, copy)
            true = analyse(str(copy), "truth", classes, px, 1.0, 1.0)["parameters"]
            whole = {g: figures(copy, grown[g], truth, true, strokes, classes, px) for g in GRID}
            rows = [dict(whole[g], variant=name_of(g), growth=g) for g in GRID]
            for f in fits:
                row = dict(whole[f["growth"]])
                if slab == "painted":  # scored off the outlined pixels too
                    skip = f["zone"] if strokes is None else (strokes | f["zone"])
                    t = np.where(skip, 255, truth).astype(np.uint8)
                    row["void_iou"] = float(scores(confusion(t, grown[f["growth"]], len(classes), 255),
                                                   [c.name for c in classes])["iou"]["void"])
                rows.append(dict(row, variant=f"fitted on {f['outlines']} outlines", draw=f["draw"],
                                 growth=f["growth"]))
            out["slabs"][slab] = rows
            for g in (None, BUILT):
                r = whole[g]
                print(f"{run['style']} hand {run['stroke_seed']} seed {run['adapt_seed']} {slab}: {name_of(g)}: "
                      f"void IoU {r['void_iou']:.3f}, air {r['air_error']:+.2f}, sf {100 * r['sf_error']:+.1f} %",
                      flush=True)
    # the oracle: the growth that gives the painted slab's whole void IoU best (a bound; it reads the truth)
    painted = {r["variant"]: r for r in out["slabs"]["painted"] if "draw" not in r}
    oracle = max(GRID, key=lambda g: painted[name_of(g)]["void_iou"])
    out["oracle"] = oracle
    for slab in ("painted", "sibling"):
        r = next(r for r in out["slabs"][slab] if r["variant"] == name_of(oracle))
        out["slabs"][slab].append(dict(r, variant="oracle (the painted slab's truth)"))
    print(f"  fitted: {[(f['outlines'], f['growth']) for f in out['fits']]}; oracle {oracle}", flush=True)
    return out


def summary(path: str) -> None:
    """Cells and means per variant over every slab; the fitted variants averaged over their draws."""
    lines = read_jsonl(path)
    print(f"{len(lines)} runs, {2 * len(lines)} slabs")
    rows = [r for x in lines for s in ("painted", "sibling") for r in x["slabs"][s]]
    keep = [name_of(None), name_of(BUILT), "oracle (the painted slab's truth)"]
    variant_table([r for r in rows if r["variant"] in keep])
    for variant in sorted({r["variant"] for r in rows if "draw" in r}, key=lambda v: int(v.split()[2])):
        rs = [r for r in rows if r["variant"] == variant]
        draws = sorted({r["draw"] for r in rs})
        print(f"\n{variant}, per draw:")
        variant_table([dict(r, variant=f"draw {r['draw']}") for d in draws for r in rs if r["draw"] == d])
        air = np.abs([r["air_error"] for r in rs])
        cells = ((air <= AIR_TARGET).sum() + sum(abs(r["sf_error"]) <= SF_TARGET for r in rs)
                 + sum(r["void_iou"] >= VOID_TARGET for r in rs)) / len(draws)
        print(f"mean over draws: cells {cells:.1f}, mean abs air {air.mean():.3f}, "
              f"mean void IoU {np.mean([r['void_iou'] for r in rs]):.3f}")
    fits = [f for x in lines for f in x["fits"]]
    print("\ngrowths fitted:", dict(Counter(name_of(tuple(f["growth"]) if f["growth"] else None) for f in fits)))
    print("per-grid fixed rows (every slab):")
    variant_table([r for r in rows if "draw" not in r and not r["variant"].startswith("oracle")])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*")
    ap.add_argument("--work", default=str(HERE / "work" / "adapt"))
    ap.add_argument("--cache", default=str(HERE / "work" / "outline-shift"))
    ap.add_argument("--outlines", nargs="+", type=int, default=[10])
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--ring", type=int, default=4)
    ap.add_argument("--jitter", action="store_true", help="outlines off by a pixel in or out, as a hand draws them")
    ap.add_argument("--json")
    ap.add_argument("--summary")
    a = ap.parse_args(argv)
    if a.summary:
        summary(a.summary)
        return
    for path in a.runs:
        append_jsonl(a.json, run_one(Path(path), Path(a.work), Path(a.cache), a.outlines, a.draws, a.ring,
                                     a.jitter))


if __name__ == "__main__":
    main()
