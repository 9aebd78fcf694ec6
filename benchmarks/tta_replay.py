"""Recorded adapt runs inferred again with other ``--tta`` views: the same adapted models, the figures of
``benchmarks/adapt.py``'s table (IoU on the painted slab outside its strokes, air content, spacing factor).

Each run's two stores are copied (infer overwrites labels) and measured with every mode given; a mode is a
built-in ``--tta`` name or scales joined by "+" ("1+2": the window and the window enlarged twice, logits
averaged; ``benchmarks/scale_sweep.py``'s spec). Every mode is measured here, the recorded one too, so the
comparison is between views alone.

    python benchmarks/tta_replay.py RUN.json ... --work benchmarks/work/adapt-random --modes flip4 1+2 \
        --json benchmarks/logs/tta-replay/rows.jsonl
    python benchmarks/tta_replay.py --summary rows.jsonl [--group NAME=GLOB ...]
Development and validation stores only: it reads the truth.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from adapt import TARGETS, measured  # benchmarks/adapt.py
from outline_shift import HERE, model_path  # benchmarks/outline_shift.py
from scale_sweep import register  # benchmarks/scale_sweep.py

from bigseg.infer.options import TTA


def mode(spec: str) -> str:
    return spec if spec in TTA else register(spec)


def cells(m: dict) -> int:
    """Targets met by one slab's figures: stone IoU, void IoU, air content, spacing factor."""
    sf = m["spacing_factor_error"]
    return (int(m["iou"]["stone"] >= TARGETS["stone_iou"]) + int(m["iou"]["void"] >= TARGETS["void_iou"])
            + int(abs(m["air_error_points"]) <= TARGETS["air_points"])
            + int(sf is not None and abs(sf) <= TARGETS["spacing_factor"]))


def replay(run_json: Path, work: Path, modes: list[str], out: Path | None) -> None:
    run = json.loads(run_json.read_text())
    model = model_path(run, work)
    with tempfile.TemporaryDirectory() as tmp:
        for slab, seed in (("painted", run["seed"]), ("sibling", run["seed"] + 1)):
            store = Path(tmp) / f"{run['style']}-{seed}.zarr"
            shutil.copytree(work / store.name, store)
            for spec in modes:
                t0 = time.perf_counter()
                m = measured(store, str(model), slab == "painted", tta=mode(spec))
                row = {"run": str(run_json), "style": run["style"], "hand": run["stroke_seed"], "slab": slab,
                       "mode": spec, "seconds": round(time.perf_counter() - t0, 1), "iou": m["iou"],
                       "air_error_points": m["air_error_points"], "spacing_factor_error": m["spacing_factor_error"],
                       "cells": cells(m)}
                sf = m["spacing_factor_error"]
                print(f"| {run['style']} | {run['stroke_seed']} | {slab} | {spec} | {m['iou']['stone']:.3f} | "
                      f"{m['iou']['void']:.3f} | {m['air_error_points']:+.2f} | "
                      f"{'-' if sf is None else f'{100 * sf:+.1f} %'} | {row['cells']} | {row['seconds']:.0f} s |",
                      flush=True)
                if out is not None:
                    with open(out, "a") as f:
                        f.write(json.dumps(row) + "\n")


def summary(path: Path, groups: list[str]) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    named = [g.split("=", 1) for g in groups] or [["all", "*"]]
    print("| group | mode | slabs | cells | mean stone IoU | mean void IoU | mean abs air error | seconds a slab |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, pattern in named:
        mine = [r for r in rows if fnmatch.fnmatch(r["run"], pattern)]
        for spec in dict.fromkeys(r["mode"] for r in mine):
            sel = [r for r in mine if r["mode"] == spec]
            print(f"| {name} | {spec} | {len(sel)} | {sum(r['cells'] for r in sel)} | "
                  f"{np.mean([r['iou']['stone'] for r in sel]):.3f} | {np.mean([r['iou']['void'] for r in sel]):.3f} | "
                  f"{np.mean([abs(r['air_error_points']) for r in sel]):.3f} | "
                  f"{np.mean([r['seconds'] for r in sel]):.0f} |")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*")
    ap.add_argument("--work", default=str(HERE / "work" / "adapt"))
    ap.add_argument("--modes", nargs="+", default=["flip4", "1+2"])
    ap.add_argument("--json", help="append one row per slab and mode (JSONL)")
    ap.add_argument("--summary", help="only summarise these rows (JSONL)")
    ap.add_argument("--group", nargs="*", default=[], help="NAME=GLOB over the rows' run paths")
    a = ap.parse_args(argv)
    if a.summary:
        summary(Path(a.summary), a.group)
        return
    print("| style | hand | slab | mode | stone IoU | void IoU | air error | spacing factor error | cells | time |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in a.runs:
        replay(Path(r), Path(a.work), a.modes, Path(a.json) if a.json else None)


if __name__ == "__main__":
    main()
