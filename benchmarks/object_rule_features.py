"""The object rule of recorded adapt runs, fitted again on other feature sets: what each would have relabelled.

    python benchmarks/object_rule_features.py RECORD.json [RECORD.json ...] [--work benchmarks/work/adapt] \
        [--variants "3 features" "darkest grey only"] [--pieces] [--jsonl F.jsonl]
    python benchmarks/object_rule_features.py --summary F.jsonl

For each corrective run that ``benchmarks/adapt.py`` recorded (its JSON) and whose two models are still in the work
folder (``...-round1.pt``, ``...-adapted.pt``): the person's strokes are painted again into a copy of the painted
slab exactly as the run painted them (blind strokes from the stroke seed, round one's labels, corrective strokes
from the next seed), the run's adapted model labels both slabs with its ``--tta`` and no rule, and the rule is fitted
as ``bigseg adapt`` fits it (``rule_examples`` and ``choose_object_rule``, the held-back split of the run's seed)
in each variant of :data:`VARIANTS` (feature sets; both sides of the fit weighing the same). Each
rule is applied to the whole slab's labels and measured as the benchmark measures (void IoU off the painted pixels,
air content and spacing factor against the truth). The run's recorded figures are printed beside the replay, to
show the replay reproduces the run. The stores in the work folder are copied; nothing in them changes.

Development slabs only: it reads the truth.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from adapt import paint  # benchmarks/adapt.py: the strokes as the benchmark paints them
from outline_shift import model_path  # benchmarks/outline_shift.py: the adapted model a run wrote
from void_bias import figures  # benchmarks/void_bias.py: labels measured as benchmarks/adapt.py does
from void_ceiling import grow_to_edges, snap_to_edges  # benchmarks/void_ceiling.py: boundary steps on the image

from bigseg import annotations as ann
from bigseg import checkpoint as ckpt
from bigseg import object_rule as orule
from bigseg import store as st
from bigseg.report.report import analyse
from bigseg.train.adapt import choose_object_rule, rule_examples
from bigseg.train.adapt_options import AdaptOptions
from bigseg.train.strokes import ChunkReader, read_strokes
from bigseg.trust import measure_slab

THREE = orule.FEATURES[:3]  # darkest grey, mean grey, roundness: the rule until 2026-12-04
VARIANTS = {"3 features": {"names": THREE}, "3 features, sides balanced": {"names": THREE, "balanced": True},
            "+ grey spread": {"names": orule.FEATURES},
            "+ grey spread, sides balanced": {"names": orule.FEATURES, "balanced": True},
            "darkest grey only": {"names": orule.FEATURES[:1]}}


EDGE_STEPS = {"grow": grow_to_edges, "snap": snap_to_edges}


def edge_step(labels: np.ndarray, image: np.ndarray, spec: str, network: np.ndarray, void: int = 2,
              paste: int = 0) -> np.ndarray:
    """``labels`` with their void objects moved by the boundary step ``spec`` ("grow:0.5", "snap:0.7"; reach 2 px;
    "bigseg": :func:`bigseg.object_rule.grow_edges` as infer applies it, ``network`` being the labels before the
    rule): pixels it adds become void, void pixels it gives up become paste."""
    if spec == "bigseg":
        return orule.grow_edges(labels, image, void, network=network)
    grey = orule.grey(image)
    kind, alpha = spec.split(":")
    voids = labels == void
    moved = EDGE_STEPS[kind](voids, grey, float(alpha), 2)
    out = labels.copy()
    out[moved & ~voids] = void
    out[voids & ~moved] = paste
    return out


def split_parts(labels: np.ndarray, image: np.ndarray, void: int, h: float) -> orule.Objects:
    """The void objects of ``labels`` cut at their necks (a watershed of the distance to the object's edge, from
    maxima at least ``h`` px high; a component with none stays whole), measured as the rule measures objects."""
    from scipy import ndimage
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    mask = labels == void
    dist = ndimage.distance_transform_edt(mask)
    markers, _ = ndimage.label(h_maxima(dist, h) & mask, structure=np.ones((3, 3)))
    parts = watershed(-dist, markers, mask=mask, connectivity=2)
    rest, _ = ndimage.label(mask & (parts == 0), structure=np.ones((3, 3)))
    parts = np.where(rest > 0, rest + parts.max(), parts)
    uniq, ids = np.unique(parts, return_inverse=True)
    ids = ids.reshape(parts.shape).astype(np.int32)  # 0 stays 0 (the smallest value)
    return orule.measure(ids, len(uniq) - 1, image, parts=True)


def replay(record: dict, work: Path, tmp: Path, variants=VARIANTS, edges=(), splits=(), pieces=False) -> list[dict]:
    style, seed, s = record["style"], record["seed"], record["stroke_seed"]
    adapted = model_path(record, work)  # the run's naming (a run painted with its own seed names no hand)
    round1 = adapted.with_name(adapted.name.replace("-adapted.pt", "-round1.pt"))
    opts = AdaptOptions(**{k: v for k, v in record["options"].items() if k in AdaptOptions.__dataclass_fields__})
    tta = record.get("adapted_tta", {}).get("tta", "none")
    painted, sibling = tmp / f"{style}-{seed}.zarr", tmp / f"{style}-{seed + 1}.zarr"
    shutil.copytree(work / painted.name, painted)
    shutil.copytree(work / sibling.name, sibling)
    for name in (ann.LAYER, ann.PYRAMID):
        shutil.rmtree(painted / name, ignore_errors=True)
    st.consolidate(painted)
    per = record["per_class"]
    paint(painted, per // 2, s)
    measure_slab(painted, str(round1))  # the labels the person looks at
    paint(painted, per - per // 2, s + 1, labels=True)
    model, before = ckpt.load(adapted)[0].eval(), ckpt.load(round1)[0].eval()
    strokes = read_strokes(str(painted), 3, opts.held_back, np.random.default_rng(opts.seed), opts.seed)
    examples = rule_examples(model, [ChunkReader(strokes)], 2, opts.tta, before=before)
    rules = {name: choose_object_rule(examples, **options) for name, options in variants.items()}
    if pieces:  # the rule pass as built (cut, rule, growth), its rule fitted on whole objects or on their pieces
        cut_examples = rule_examples(model, [ChunkReader(strokes)], 2, opts.tta, before=before, cut=True)
        built = {"as built": rules, "fitted on pieces, as built": {
            name: choose_object_rule(cut_examples, **options) for name, options in variants.items()}}
    rows = []
    for which, store in (("painted", painted), ("sibling", sibling)):
        measure_slab(store, str(adapted), tta=tta, object_rule=False)
        labels = np.asarray(st.open_array(store, "labels")[:])
        image = np.asarray(st.open_array(store, "image")[:])
        group = st.open_store(store)
        classes, px = st.class_table(group), st.pixel_size_um(group)
        true = analyse(str(store), "truth", classes, px, 1.0, 1.0)["parameters"]
        truth = np.asarray(st.open_array(store, "truth")[:])
        found = orule.find(labels, image, 2)
        area = np.bincount(found.ids.ravel(), minlength=found.n + 1)[1:]
        false = np.bincount(found.ids[truth == 2], minlength=found.n + 1)[1:] * 2 < area  # mostly not void
        recorded = {"with the run's rule": record.get("adapted_tta", {}).get(which),
                    "no rule": record.get("adapted_no_rule", {}).get(which)}
        rows.append({"slab": which, "rule": "none", **figures(store, labels, true, classes, px),
                     "recorded": {k: v and {"air": v["air_error_points"], "void_iou": v["iou"]["void"]}
                                  for k, v in recorded.items()}})
        cut_at_necks = {h: split_parts(labels, image, 2, h) for h in splits}  # the same pieces for every rule
        for name, (rule, rec) in rules.items():
            if rule is None:
                rows.append({"slab": which, "rule": name, "kept": False, "why": rec.get("why")})
                continue
            dropped = orule.rejected(rule, found)
            out = orule.apply(rule, labels, image, found)[0]
            fit = {"slab": which, "kept": True, "fitted_on": rec["fitted_on"], "held_back": rec.get("held_back")}
            judged = {"false_objects": int(false.sum()), "false_relabelled": int((dropped & false).sum()),
                      "voids": int((~false).sum()), "voids_relabelled": int((dropped & ~false).sum())}
            rows.append({**fit, "rule": name, "weights": rule.weights, **judged,
                         **figures(store, out, true, classes, px)})
            for h, parts in cut_at_necks.items():
                cut = orule.apply(rule, labels, image, parts)[0]
                rows.append({**fit, "rule": f"{name}, objects cut at necks (h {h:g})", "parts": parts.n,
                             "objects": found.n, **figures(store, cut, true, classes, px)})
            for spec in edges:
                rows.append({**fit, "rule": f"{name}, then {spec}", **judged,
                             **figures(store, edge_step(out, image, spec, labels), true, classes, px)})
        if pieces:
            for how, fitted in built.items():
                for name, (rule, rec) in fitted.items():
                    row = {"slab": which, "rule": f"{name}, {how}", "kept": rule is not None,
                           "fitted_on": rec["fitted_on"], "held_back": rec.get("held_back"), "why": rec.get("why")}
                    out = labels if rule is None else orule.judge(
                        dataclasses.replace(rule, cut_merged=True, grow_edges=True), labels, image)[0]
                    rows.append({**row, "as_built": True, **figures(store, out, true, classes, px)})
        for spec in edges:
            rows.append({"slab": which, "rule": f"none, then {spec}",
                         **figures(store, edge_step(labels, image, spec, labels), true, classes, px)})
    return rows


def summary(path: str) -> None:
    """Per rule variant over every slab of the replays in ``path`` (``--jsonl``): cells (air within 0.3, spacing
    factor within 10 %, void IoU >= 0.85), mean absolute air error, mean void IoU (a variant that kept no rule on a
    run counts that run's slabs with no rule)."""
    lines = [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]
    print(f"{len(lines)} runs")
    print("| rule | slabs | cells | mean abs air | mean void IoU |")
    print("|---|---:|---:|---:|---:|")
    for name in dict.fromkeys(r["rule"] for x in lines for r in x["rows"]):
        got = []
        for x in lines:
            for slab in ("painted", "sibling"):
                rows = [r for r in x["rows"] if r["slab"] == slab]
                row = next(r for r in rows if r["rule"] == name) if any(r["rule"] == name for r in rows) else None
                if row is not None and "void_iou" not in row:  # no rule kept
                    row = next(r for r in rows if r["rule"] == "none")
                if row is not None:
                    got.append(row)
        air = np.abs([r["air_error"] for r in got])
        cells = int((air <= 0.3).sum()) + sum(abs(r["sf_error"]) <= 0.10 for r in got) + \
            sum(r["void_iou"] >= 0.85 for r in got)
        print(f"| {name} | {len(got)} | {cells} | {air.mean():.3f} | {np.mean([r['void_iou'] for r in got]):.3f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", nargs="*")
    ap.add_argument("--summary", help="print the summary table of a --jsonl file and stop")
    ap.add_argument("--work", default=str(Path(__file__).parent / "work" / "adapt"))
    ap.add_argument("--jsonl", help="append each run's rows here")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                    help="rule variants to fit (default: all)")
    ap.add_argument("--splits", nargs="*", type=float, default=[],
                    help="also apply each rule to the void objects cut at their necks, from maxima this high (px)")
    ap.add_argument("--pieces", action="store_true",
                    help="also the rule pass as built (cut, rule, growth), with the rule fitted on whole objects and "
                    "on the objects cut at grey ridges")
    ap.add_argument("--edges", nargs="*", default=[],
                    help="boundary steps applied after each rule (and after none): grow:ALPHA, snap:ALPHA or bigseg")
    a = ap.parse_args(argv)
    if a.summary:
        summary(a.summary)
        return 0
    for path in a.records:
        record = json.loads(Path(path).read_text())
        with tempfile.TemporaryDirectory(dir=a.work) as tmp:
            rows = replay(record, Path(a.work), Path(tmp), {v: VARIANTS[v] for v in a.variants}, a.edges,
                          a.splits, a.pieces)
        tag = f"{record['style']} hand {record['stroke_seed']} seed {record['adapt_seed']}"
        for r in rows:
            if r["rule"].startswith("none, then"):
                print(f"{tag} {r['slab']}: {r['rule']}: void IoU {r['void_iou']:.3f} air {r['air_error']:+.2f} sf "
                      f"{100 * r['sf_error']:+.1f} %", flush=True)
            elif r["rule"] == "none":
                rec = r["recorded"]
                print(f"{tag} {r['slab']}: no rule: void IoU {r['void_iou']:.3f} air {r['air_error']:+.2f} sf "
                      f"{100 * r['sf_error']:+.1f} % (recorded: {rec})", flush=True)
            elif r.get("as_built"):
                print(f"{tag} {r['slab']}: rule {r['rule']} (kept {r['kept']}, fitted on {r['fitted_on']}, held back "
                      f"{r['held_back']}): void IoU {r['void_iou']:.3f} air {r['air_error']:+.2f} sf "
                      f"{100 * r['sf_error']:+.1f} %", flush=True)
            elif "parts" in r:
                print(f"{tag} {r['slab']}: rule {r['rule']}: {r['objects']} objects in {r['parts']} parts; void IoU "
                      f"{r['void_iou']:.3f} air {r['air_error']:+.2f} sf {100 * r['sf_error']:+.1f} %", flush=True)
            elif not r["kept"]:
                print(f"{tag} {r['slab']}: rule {r['rule']}: not kept ({r['why']})", flush=True)
            else:
                print(f"{tag} {r['slab']}: rule {r['rule']} (fitted on {r['fitted_on']}, held back {r['held_back']}): "
                      f"relabels {r['false_relabelled']} of {r['false_objects']} false objects, "
                      f"{r['voids_relabelled']} of {r['voids']} voids; void IoU {r['void_iou']:.3f} air "
                      f"{r['air_error']:+.2f} sf {100 * r['sf_error']:+.1f} %", flush=True)
        if a.jsonl:
            with open(a.jsonl, "a") as f:
                f.write(json.dumps({"record": path, "rows": rows}, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
