"""How an adapted model's figures move when its void logit is shifted by a constant (a prior correction).

Copies each store, runs ``bigseg infer --probabilities`` with the model (``--tta``; the object rule off), then for
each shift d (added to whatever shift the model already carries) labels every pixel arg-max(log p + d on void) --
and, where the model kept a void-object rule, applies it to those labels over the whole slab, as infer does --
and prints void IoU (off the painted pixels; stone IoU in the JSON), air content error and spacing factor error
against the store's truth. Probabilities are stored as uint8, so shifts are resolved to about 1/255 of
probability. Nothing in the stores changes.

    python benchmarks/void_bias.py MODEL.pt STORE.zarr [STORE.zarr ...] --shifts -1 -0.5 0 0.5 --json F.jsonl
    python benchmarks/void_bias.py --summary F.jsonl        # per shift over every slab in F: targets met
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from adapt import iou_outside_strokes  # benchmarks/adapt.py: the adapt benchmark's own measure

from bigseg import checkpoint
from bigseg import object_rule as orule
from bigseg import store as st
from bigseg.classes import concrete_ids
from bigseg.report.report import analyse


def figures(copy: Path, labels: np.ndarray, true: dict, classes, px) -> dict:
    """``labels`` written into the store ``copy`` and measured as benchmarks/adapt.py measures: void and stone IoU
    off the painted pixels, air content and spacing factor errors against ``true`` (the truth's parameters)."""
    st.open_array(copy, "labels", "r+")[:] = labels
    got = analyse(str(copy), "labels", classes, px, 1.0, 1.0)["parameters"]
    iou = iou_outside_strokes(copy, len(classes))
    return {"void_iou": float(iou["void"]), "stone_iou": float(iou["stone"]),
            "air_error": got["air_content"]["value"] - true["air_content"]["value"],
            "sf_error": got["spacing_factor"]["value"] / true["spacing_factor"]["value"] - 1}


AIR_TARGET, SF_TARGET, VOID_TARGET = 0.3, 0.10, 0.85


def rule_of(model) -> orule.ObjectRule | None:
    """The void-object rule an adapted model's checkpoint carries, or None."""
    record = checkpoint.read(str(model))["meta"].get("adapted", {}).get("object_rule")
    return orule.ObjectRule.from_dict(record) if record else None


def summary(path: str) -> None:
    """Per shift, over every slab of ``path``'s lines: slabs whose air content is within 0.3 points, whose spacing
    factor is within 10 %, whose void IoU reaches 0.85; mean absolute air error; mean void IoU."""
    lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    shifts = sorted({r["shift"] for line in lines for r in line["rows"]})
    print(f"{len(lines)} slabs: " + ", ".join(Path(line["store"]).name for line in lines))
    print("| shift | air within 0.3 | spacing factor within 10 % | void IoU >= 0.85 | mean abs air error "
          "| mean void IoU |")
    print("|---:|---:|---:|---:|---:|---:|")
    for d in shifts:
        rows = [r for line in lines for r in line["rows"] if r["shift"] == d]
        if len(rows) != len(lines):
            continue
        air = [abs(r["air_error"]) for r in rows]
        print(f"| {d:+.2f} | {sum(a <= AIR_TARGET for a in air)} | "
              f"{sum(abs(r['sf_error']) <= SF_TARGET for r in rows)} | "
              f"{sum(r['void_iou'] >= VOID_TARGET for r in rows)} | {np.mean(air):.2f} | "
              f"{np.mean([r['void_iou'] for r in rows]):.3f} |")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("stores", nargs="*")
    ap.add_argument("--summary", help="only print the per-shift summary of this JSON-lines file")
    ap.add_argument("--shifts", nargs="+", type=float, default=[-2, -1.5, -1, -0.5, -0.25, 0, 0.25, 0.5])
    ap.add_argument("--tta", default="flip4")
    ap.add_argument("--json", help="append the figures here (one JSON line per store)")
    a = ap.parse_args(argv)
    if a.summary:
        summary(a.summary)
        return
    if not a.model or not a.stores:
        ap.error("give a model and one or more stores (or --summary FILE)")
    rule = rule_of(a.model)
    for store in a.stores:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / Path(store).name
            shutil.copytree(store, copy)
            subprocess.run([sys.executable, "-m", "bigseg", "infer", str(copy), "--model", a.model, "--tta", a.tta,
                            "--no-object-rule", "--probabilities", "--overwrite"], check=True,
                           stdout=subprocess.DEVNULL)
            group = st.open_store(copy)
            classes, px = st.class_table(group), st.pixel_size_um(group)
            void = concrete_ids(classes)["void"]
            prob = np.asarray(st.open_array(copy, "probabilities")[:])
            if prob.shape[0] != len(classes):  # (H, W, C) -> (C, H, W)
                prob = np.moveaxis(prob, -1, 0)
            logp = np.log(prob.astype(np.float32) + 0.5)
            image = np.asarray(st.open_array(copy, "image")[:]) if rule is not None else None
            true = analyse(str(copy), "truth", classes, px, 1.0, 1.0)["parameters"]
            rows = []
            for d in a.shifts:
                shifted = logp.copy()
                shifted[void] += d
                labels = shifted.argmax(0).astype(np.uint8)
                if rule is not None:
                    labels = orule.apply(rule, labels, image)[0]
                f = figures(copy, labels, true, classes, px)
                f["shift"] = d
                f["void_share"] = float((labels == void).mean())
                rows.append(f)
                ruled = " (object rule)" if rule is not None else ""
                print(f"{Path(store).name} shift {d:+.2f}{ruled}: void IoU {f['void_iou']:.3f}, air error "
                      f"{f['air_error']:+.2f} points, spacing factor {100 * f['sf_error']:+.1f} %, "
                      f"void share {100 * f['void_share']:.2f} %", flush=True)
            if a.json:
                with open(a.json, "a") as fh:
                    fh.write(json.dumps({"model": a.model, "store": store, "rows": rows}) + "\n")


if __name__ == "__main__":
    main()
