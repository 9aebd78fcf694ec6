"""An experiment, replayed offline: voids grown over the deposits a person painted as void.

Partly filled voids (deposits lining the wall or settled on one side, lighter than the paste) are read as paste
where the adapted network sees a light, textured patch beside a dark cavity (RESULTS.md, "Partly filled voids").
A person who paints strokes on such voids paints some of their deposit as void. Here, for each recorded adapt run
(its JSON from ``benchmarks/adapt.py``), the labels as infer builds them (the run's rule, cut and growth when it
kept one) are grown, from each labelled void object, over the connected pixels whose colour is the *painted
deposit's*: the void strokes' pixels lighter than the paste strokes' median grey, if at least ``MIN_PIXELS`` of
them (otherwise nothing is grown: the person painted no deposit), a pixel taken when its colour lies within the
deposit's 99 % ellipsoid and nearer to it than to the paste's and the stone's (colours of the strokes, 3 x 3 means,
as ``bigseg adapt`` grows strokes), at most the object's own equivalent radius away from it. The sibling slab is
grown with the painted slab's colours, as a model would carry them. Measured as the adapt benchmark measures.

    python benchmarks/deposit_growth.py RUN.json ... --work benchmarks/work/adapt-random --json OUT.jsonl
    python benchmarks/deposit_growth.py --summary OUT.jsonl [--group NAME=STYLE,STYLE ...]
Development and validation slabs only: it reads the truth.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from outline_shift import (
    AIR_TARGET,
    HERE,
    SF_TARGET,
    VOID_TARGET,
    append_jsonl,
    as_built,
    model_path,
    read_jsonl,
    recorded_slab,
    variant_figures,
)
from scipy import ndimage
from void_bias import rule_of

from bigseg import store as st
from bigseg.annotations import LAYER

MIN_PIXELS = 100
LIMIT = 11.34  # chi-square, 3 degrees of freedom, 99 %
EIGHT = np.ones((3, 3), bool)


def _gauss(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = v.mean(0)
    cov = np.cov(v.T) + np.eye(3) * 4.0
    return mean, np.linalg.inv(cov)


def _d2(flat: np.ndarray, model) -> np.ndarray:
    d = flat - model[0]
    return np.einsum("ij,jk,ik->i", d, model[1], d)


def colour_models(store: Path) -> dict | None:
    """The painted deposit's, paste's and stone's colour models (None: fewer than MIN_PIXELS deposit pixels)."""
    image = np.asarray(st.open_array(store, "image")[:]).astype(np.float64)
    smooth = ndimage.uniform_filter(image, size=(3, 3, 1))
    painted = np.asarray(st.open_array(store, LAYER)[:])
    grey = image.mean(2)
    paste_grey = float(np.median(grey[painted == 0]))
    deposit = (painted == 2) & (grey > paste_grey)
    if deposit.sum() < MIN_PIXELS:
        return None
    return {"deposit": _gauss(smooth[deposit]), "paste": _gauss(smooth[painted == 0]),
            "stone": _gauss(smooth[painted == 1]), "deposit_px": int(deposit.sum()), "paste_grey": paste_grey}


def grow_over_deposits(labels: np.ndarray, image: np.ndarray, models: dict, void: int = 2) -> np.ndarray:
    """``labels`` with each void object grown over the connected deposit-coloured pixels within its equivalent
    radius."""
    flat = ndimage.uniform_filter(image.astype(np.float64), size=(3, 3, 1)).reshape(-1, 3)
    dd = _d2(flat, models["deposit"])
    like = (dd < LIMIT) & (dd < _d2(flat, models["paste"])) & (dd < _d2(flat, models["stone"]))
    like = like.reshape(labels.shape) & (labels != void)
    out = labels.copy()
    ids, n = ndimage.label(labels == void, structure=EIGHT)
    if not n:
        return out
    areas = np.bincount(ids.ravel())
    h, w = labels.shape
    for k, box in enumerate(ndimage.find_objects(ids), start=1):
        r = int(np.clip(np.ceil(np.sqrt(areas[k] / np.pi)), 2, 60))
        ys = slice(max(box[0].start - r, 0), min(box[0].stop + r, h))
        xs = slice(max(box[1].start - r, 0), min(box[1].stop + r, w))
        seed = ids[ys, xs] == k
        cand = like[ys, xs]
        if not cand.any():
            continue
        grown = ndimage.binary_dilation(seed, structure=EIGHT, iterations=r, mask=seed | cand)
        out[ys, xs][grown & ~seed] = void
    return out


def run_one(path: Path, work: Path, cache: Path) -> dict:
    run = json.loads(path.read_text())
    model = model_path(run, work)
    rule = rule_of(model)
    out: dict = {"run": str(path), "style": run["style"], "hand": run["stroke_seed"], "rule": rule is not None,
                 "slabs": {}}
    painted_store = work / f"{run['style']}-{run['seed']}.zarr"
    models = colour_models(painted_store)
    out["deposit_px"] = models["deposit_px"] if models else 0
    for slab in ("painted", "sibling"):
        r = recorded_slab(run, model, slab, work, cache)
        store, classes, px, network = r["store"], r["classes"], r["px"], r["labels"]
        image, truth, skip = r["image"], r["truth"], r["strokes"]
        built = as_built(rule, network, image)
        grown = grow_over_deposits(built, image, models) if models else built
        rows = variant_figures(store, {"as built": built, "grown over deposits": grown}, truth, skip, classes, px)
        for row in rows:
            print(f"{run['style']} hand {run['stroke_seed']} {slab}: {row['variant']}: void IoU {row['void_iou']:.3f}, "
                  f"air {row['air_error']:+.2f}, sf {100 * row['sf_error']:+.1f} % (deposit px painted "
                  f"{out['deposit_px']})", flush=True)
        out["slabs"][slab] = rows
    return out


def met(row: dict) -> int:
    """Cells met by one slab's figures: air content, spacing factor, void IoU (the adapt table's targets)."""
    return (int(abs(row["air_error"]) <= AIR_TARGET) + int(abs(row["sf_error"]) <= SF_TARGET)
            + int(row["void_iou"] >= VOID_TARGET))


def print_variants(runs: list[dict], variants: tuple[str, ...]) -> None:
    """Per variant, over every slab of ``runs`` (replay lines): cells met, mean absolute air error, mean void IoU."""
    for variant in variants:
        rows = [x for r in runs for s in r["slabs"].values() for x in s if x["variant"] == variant]
        print(f"  {variant}: cells (air / sf / void) {sum(met(x) for x in rows)}, mean abs air "
              f"{np.mean([abs(x['air_error']) for x in rows]):.3f}, mean void IoU "
              f"{np.mean([x['void_iou'] for x in rows]):.3f}")


def summary(path: str, groups: dict[str, set[str]]) -> None:
    runs = read_jsonl(path)
    for name, styles in {"all": None, **groups}.items():
        chosen = [r for r in runs if styles is None or r["style"] in styles]
        print(f"{name}: {len(chosen)} runs, {2 * len(chosen)} slabs")
        print_variants(chosen, ("as built", "grown over deposits"))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*")
    ap.add_argument("--work", default=str(HERE / "work" / "adapt"))
    ap.add_argument("--cache", default=str(HERE / "work" / "outline-shift"))
    ap.add_argument("--json")
    ap.add_argument("--summary")
    ap.add_argument("--group", nargs="*", default=[], help="NAME=STYLE,STYLE: a summary line for these styles")
    a = ap.parse_args(argv)
    if a.summary:
        summary(a.summary, {g.split("=")[0]: set(g.split("=")[1].split(",")) for g in a.group})
        return
    for path in a.runs:
        append_jsonl(a.json, run_one(Path(path), Path(a.work), Path(a.cache)))


if __name__ == "__main__":
    main()
