"""An experiment: the void shift fitted per slab on a few whole voids a person outlined, instead of the fixed default.

Strokes lie inside regions, so they cannot tell where a void's edge is, and the adapted model's void logit carries a
fixed shift (``--void-shift``, -0.25) chosen on the development styles. A person who outlines a few whole voids
states the edge. Here, for each recorded adapt run (its JSON from ``benchmarks/adapt.py``): the adapted model is run
once over its painted slab and the sibling (``bigseg infer --probabilities``, ``--tta``, the object rule off; the
probabilities kept under ``--cache``); then, for several draws of N true voids on the painted slab (30-3000 px, as
``benchmarks/adapt.py --outlines`` picks them, with other seeds), the extra shift d on the void logit is chosen so
that the void pixels labelled inside the outlined voids and a ``--ring``-px ring around them match the truth's
there (the person's outline: inside is void, just outside is not); the whole slabs are then labelled at d, the
model's object rule applied as infer applies it, and measured as the adapt benchmark measures (void and stone IoU
off the painted and the outlined pixels; air content and spacing factor over the slab), beside d = 0 (the model as
shipped). Nothing in the stores changes.

    python benchmarks/outline_shift.py logs/adapt-2026-12-04c/*gone.json --outlines 5 10 20 --draws 3 \\
        --json logs/outline-shift-2026-12-04/dev.jsonl
    python benchmarks/outline_shift.py --summary logs/outline-shift-2026-12-04/dev.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from adapt import pick_voids  # benchmarks/adapt.py: the voids a person could outline, as its --outlines draws them
from scipy import ndimage
from void_bias import rule_of  # benchmarks/void_bias.py: the rule an adapted checkpoint carries

from bigseg import object_rule as orule
from bigseg import store as st
from bigseg.annotations import LAYER, NONE, has_layer
from bigseg.classes import concrete_ids
from bigseg.metrics import confusion, scores
from bigseg.report.report import analyse

HERE = Path(__file__).parent
SHIFTS = np.round(np.arange(-2.0, 2.0001, 0.05), 2)
AIR_TARGET, SF_TARGET, VOID_TARGET = 0.3, 0.10, 0.85


def read_jsonl(path: str | Path) -> list[dict]:
    """The JSON lines of a replay's ``--json`` file."""
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


def append_jsonl(path: str | None, out: dict) -> None:
    """``out`` appended as one line to ``path`` (nothing without one): each run's result as soon as it is made."""
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps(out) + "\n")


def model_path(run: dict, work: Path) -> Path:
    """The adapted model a run of ``benchmarks/adapt.py`` wrote (its naming)."""
    hand = "" if run.get("stroke_seed") in (None, run["seed"]) else f"-strokes{run['stroke_seed']}"
    hand += f"-run{run['adapt_seed']}" if hand else ""
    hand += f"-outlines{run['outlines']}" if run.get("outlines") else ""
    return work / f"{run['style']}-{run['seed']}-{run['per_class']}-{run['protocol']}{hand}-adapted.pt"


def probabilities(model: Path, store: Path, tta: str, cache: Path) -> np.ndarray:
    """(C, H, W) uint8 class probabilities of ``model`` over ``store``'s image (cached under the model's digest: runs
    in two work folders name their models alike)."""
    digest = hashlib.sha256(model.read_bytes()).hexdigest()[:10]
    keep = cache / f"{model.stem}-{digest}--{store.stem}-{tta}.npy"
    if keep.exists():
        return np.load(keep)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / store.name
        shutil.copytree(store, copy)
        subprocess.run([sys.executable, "-m", "bigseg", "infer", str(copy), "--model", str(model), "--tta", tta,
                        "--no-object-rule", "--probabilities", "--overwrite"], check=True, stdout=subprocess.DEVNULL)
        prob = np.asarray(st.open_array(copy, "probabilities")[:])
    n = len(st.class_table(st.open_store(store)))
    if prob.shape[0] != n:  # (H, W, C) -> (C, H, W)
        prob = np.moveaxis(prob, -1, 0)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(keep, np.ascontiguousarray(prob))
    return prob


def recorded_slab(run: dict, model: Path, slab: str, work: Path, cache: Path) -> dict:
    """A recorded run's painted or sibling slab as the replays read it: its store, class table and pixel size, the
    adapted model's log-probabilities under ``--tta flip4`` (cached) and their labels, the image, the truth and, on
    the painted slab, the painted pixels (None elsewhere)."""
    store = work / f"{run['style']}-{run['seed'] + (slab == 'sibling')}.zarr"
    group = st.open_store(store)
    logp = np.log(probabilities(model, store, "flip4", cache).astype(np.float32) + 0.5)
    painted = slab == "painted" and has_layer(store)
    return {"store": store, "classes": st.class_table(group), "px": st.pixel_size_um(group), "logp": logp,
            "labels": logp.argmax(0).astype(np.uint8), "image": np.asarray(st.open_array(store, "image")[:]),
            "truth": np.asarray(st.open_array(store, "truth")[:]),
            "strokes": (np.asarray(st.open_array(store, LAYER)[:]) != NONE) if painted else None}


def outlined(truth: np.ndarray, n: int, seed: int, ring: int) -> tuple[np.ndarray, np.ndarray]:
    """(outlined voids, their rings): ``n`` true voids of 30-3000 px away from the border, as
    ``benchmarks/adapt.py --outlines`` picks them, and the ``ring`` px around each."""
    ids, _, chosen = pick_voids(truth, n, seed)
    inside = np.isin(ids, chosen)
    around = ndimage.binary_dilation(inside, iterations=ring) & ~inside
    return inside, around


def fitted_shift(logp: np.ndarray, truth: np.ndarray, region: np.ndarray, void: int) -> float:
    """The shift whose void pixels inside ``region`` number the truth's there (the first of the grid's closest)."""
    lp = logp[:, region]
    want = int((truth[region] == void).sum())
    got = []
    for d in SHIFTS:
        shifted = lp.copy()
        shifted[void] += d
        got.append(int((shifted.argmax(0) == void).sum()))
    return float(SHIFTS[int(np.argmin(np.abs(np.asarray(got) - want)))])


def figures(copy: Path, labels: np.ndarray, truth: np.ndarray, true: dict, skip: np.ndarray | None, classes,
            px) -> dict:
    st.open_array(copy, "labels", "r+")[:] = labels
    got = analyse(str(copy), "labels", classes, px, 1.0, 1.0)["parameters"]
    t = truth if skip is None else np.where(skip, 255, truth).astype(np.uint8)
    iou = scores(confusion(t, labels, len(classes), 255), [c.name for c in classes])["iou"]
    return {"void_iou": float(iou["void"]), "stone_iou": float(iou["stone"]),
            "air_error": got["air_content"]["value"] - true["air_content"]["value"],
            "sf_error": got["spacing_factor"]["value"] / true["spacing_factor"]["value"] - 1}


def as_built(rule, network: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The network's labels as infer's rule pass builds them since 2026-12-04 (cut, rule, growth:
    ``object_rule.judge``) where the run kept a rule, else unchanged."""
    if rule is None:
        return network
    return orule.judge(dataclasses.replace(rule, cut_merged=True, grow_edges=True), network, image)[0]


def variant_figures(store: Path, labels: dict[str, np.ndarray], truth: np.ndarray, skip: np.ndarray | None, classes,
                    px) -> list[dict]:
    """:func:`figures` of each variant's labels (name -> labels), measured on one copy of ``store``."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / store.name
        shutil.copytree(store, copy)
        true = analyse(str(copy), "truth", classes, px, 1.0, 1.0)["parameters"]
        return [{"variant": k, **figures(copy, v, truth, true, skip, classes, px)} for k, v in labels.items()]


def label(logp: np.ndarray, d: float, void: int, rule, image) -> np.ndarray:
    shifted = logp.copy()
    shifted[void] += d
    labels = shifted.argmax(0).astype(np.uint8)
    return orule.apply(rule, labels, image)[0] if rule is not None else labels


def run_one(run_json: Path, work: Path, outlines: list[int], draws: int, ring: int, tta: str, cache: Path) -> dict:
    run = json.loads(run_json.read_text())
    model = model_path(run, work)
    painted, sibling = work / f"{run['style']}-{run['seed']}.zarr", work / f"{run['style']}-{run['seed'] + 1}.zarr"
    rule = rule_of(model)
    out: dict = {"run": str(run_json), "model": str(model), "style": run["style"], "rule": rule is not None,
                 "slabs": {}}
    slabs = {}
    for name, store in (("painted", painted), ("sibling", sibling)):
        group = st.open_store(store)
        classes, px = st.class_table(group), st.pixel_size_um(group)
        void = concrete_ids(classes)["void"]
        prob = probabilities(model, store, tta, cache)
        logp = np.log(prob.astype(np.float32) + 0.5)
        truth = np.asarray(st.open_array(store, "truth")[:])
        image = np.asarray(st.open_array(store, "image")[:]) if rule is not None else None
        strokes = (np.asarray(st.open_array(store, LAYER)[:]) != NONE) if name == "painted" and has_layer(store) \
            else None
        slabs[name] = (store, classes, px, void, logp, truth, image, strokes)
    _, classes, _, void, logp_p, truth_p, _, _ = slabs["painted"]
    fits = []
    for n in outlines:
        for k in range(draws):
            inside, around = outlined(truth_p, n, 50_000 + 100 * n + k, ring)
            fits.append({"outlines": n, "draw": k, "shift": fitted_shift(logp_p, truth_p, inside | around, void),
                         "inside": inside | around})
    with tempfile.TemporaryDirectory() as tmp:
        for name, (store, classes, px, void, logp, truth, image, strokes) in slabs.items():
            copy = Path(tmp) / store.name
            shutil.copytree(store, copy)
            true = analyse(str(copy), "truth", classes, px, 1.0, 1.0)["parameters"]
            rows = []
            cached: dict[float, np.ndarray] = {}
            for f in [{"outlines": 0, "draw": 0, "shift": 0.0, "inside": None}] + fits:
                skip = strokes
                if name == "painted" and f["inside"] is not None:
                    skip = f["inside"] if skip is None else (skip | f["inside"])
                d = f["shift"]
                if d not in cached:
                    cached[d] = label(logp, d, void, rule, image)
                row = figures(copy, cached[d], truth, true, skip, classes, px)
                row.update(outlines=f["outlines"], draw=f["draw"], shift=d)
                rows.append(row)
                print(f"{run['style']} {run_json.stem[-14:]} {name}: {f['outlines']:>2} outlines (draw {f['draw']}) "
                      f"shift {d:+.2f}: void IoU {row['void_iou']:.3f}, air {row['air_error']:+.2f}, "
                      f"sf {100 * row['sf_error']:+.1f} %", flush=True)
            out["slabs"][name] = rows
    return out


def summary(path: str) -> None:
    """Per number of outlines, over every slab and draw: cells met and means, against the shipped shift (0 outlines)."""
    lines = read_jsonl(path)
    print(f"{len(lines)} runs, {2 * len(lines)} slabs")
    print("| outlines | slabs x draws | air within 0.3 | spacing factor within 10 % | void IoU >= 0.85 "
          "| mean abs air error | mean void IoU | shifts fitted (min / median / max) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    rows = [dict(r, slab=s) for x in lines for s in ("painted", "sibling") for r in x["slabs"][s]]
    for n in sorted({r["outlines"] for r in rows}):
        rs = [r for r in rows if r["outlines"] == n]
        draws = len({r["draw"] for r in rs})
        air = np.abs([r["air_error"] for r in rs])
        sh = [r["shift"] for r in rs]
        print(f"| {n if n else 'none (shipped)'} | {len(rs)} | {np.mean(air <= AIR_TARGET) * len(rs) / draws:.1f} | "
              f"{np.mean([abs(r['sf_error']) <= SF_TARGET for r in rs]) * len(rs) / draws:.1f} | "
              f"{np.mean([r['void_iou'] >= VOID_TARGET for r in rs]) * len(rs) / draws:.1f} | {air.mean():.3f} | "
              f"{np.mean([r['void_iou'] for r in rs]):.3f} | {min(sh):+.2f} / {np.median(sh):+.2f} / {max(sh):+.2f} |")
    print("(cells: per slab set, averaged over the draws)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", help="JSON records of benchmarks/adapt.py runs")
    ap.add_argument("--work", default=str(HERE / "work" / "adapt"))
    ap.add_argument("--cache", default=str(HERE / "work" / "outline-shift"))
    ap.add_argument("--outlines", nargs="+", type=int, default=[10])
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--ring", type=int, default=4, help="px around each outlined void taken as the truth there")
    ap.add_argument("--tta", default="flip4")
    ap.add_argument("--json")
    ap.add_argument("--summary")
    a = ap.parse_args(argv)
    if a.summary:
        summary(a.summary)
        return
    for r in a.runs:
        append_jsonl(a.json, run_one(Path(r), Path(a.work), a.outlines, a.draws, a.ring, a.tta, Path(a.cache)))


if __name__ == "__main__":
    main()
