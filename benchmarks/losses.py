"""Which training loss helps voids? The same fine-tune of the bundled model under each loss, same budget, measured
on validation slabs (random styles; never a held-out style). Issue #34.

    python benchmarks/losses.py [--steps 300] [--slabs 4] [--size 2048]     # log: benchmarks/logs/losses.json

Each loss fine-tunes the bundled light_unet for ``--steps`` steps (8 crops of 256², synthetic sections drawn on the
fly: random styles 85 %, classic 15 %, as the bundled model was trained; seed 11; AdamW one-cycle at 1e-4; bf16
where the CPU has it), then segments ``--slabs`` validation slabs (random styles, seeds 7000000.., the ones
``bigseg calibrate`` and ``ship_int8.py`` use): void and stone IoU (confusion summed over the slabs), mean
|air-content error| (points) and mean |spacing-factor error| over the slabs. The base model's row is the same
measurement without a fine-tune; cross-entropy with the same budget is the control the others are read against.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

LOSSES = {
    "cross_entropy": {"loss": "cross_entropy"},
    "cross_entropy, voids x3": {"loss": "cross_entropy", "class_weights": [1.0, 1.0, 3.0]},
    "focal (gamma 2)": {"loss": [{"name": "focal", "gamma": 2.0}]},
    "cross_entropy + dice": {"loss": [{"name": "cross_entropy"}, {"name": "dice"}]},
    "cross_entropy + 0.5 lovasz": {"loss": [{"name": "cross_entropy"}, {"name": "lovasz", "weight": 0.5}]},
    "ohem (0.7, 10 %)": {"loss": [{"name": "ohem", "threshold": 0.7, "min_kept": 0.1}]},
}


def config(name: str, extra: dict, steps: int, out: Path) -> dict:
    from bigseg.checkpoint import BUNDLED

    return {
        "train": [], "synthetic": {"styles": {"random": 0.85, "classic": 0.15}, "region": 1024, "crops_per_region": 16},
        "model": {"arch": "light_unet", "width": 16, "init": str(BUNDLED)},
        "crop": 256, "batch_size": 8, "iterations": steps,
        "optimizer": {"name": "adamw", "lr": 1e-4, "weight_decay": 1e-4},
        "schedule": {"name": "onecycle", "warmup_fraction": 0.1},
        "augment": {"hflip": True, "vflip": True, "rot90": True},
        "checkpoint_every": steps, "val_every": 100000, "val_crops": 8, "seed": 11, "num_workers": 1,
        "out": str(out / name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "").replace("%", "")
                   .replace("+", "plus").replace(".", "")),
        **extra,
    }


def measure(model: str | None, stores: list[Path], tta: str = "none") -> dict:
    from bigseg.metrics import scores
    from bigseg.trust import measure_slab

    rows = [measure_slab(s, model, tta=tta) for s in stores]
    iou = scores(np.sum([r["confusion"] for r in rows], axis=0), ["paste", "stone", "void"])["iou"]
    sf = [abs(r["spacing_factor_error"]) for r in rows if r["spacing_factor_error"] is not None]
    return {"iou_void": iou["void"], "iou_stone": iou["stone"],
            "mean_abs_air_error_points": float(np.mean([abs(r["air_error_points"]) for r in rows])),
            "mean_abs_spacing_factor_error": float(np.mean(sf)) if sf else None,
            "megapixels_per_second": float(np.mean([r["megapixels_per_second"] for r in rows])),
            "slabs": [{k: r[k] for k in ("store", "iou", "air_error_points", "spacing_factor_error")} for r in rows]}


def metric_cells(r: dict) -> str:
    """The four figures every table of these benchmarks shows, as Markdown cells: void and stone IoU, mean |air
    error|, mean |spacing-factor error| ("-" where no void was found)."""
    sf = r["mean_abs_spacing_factor_error"]
    return (f"{r['iou_void']:.3f} | {r['iou_stone']:.3f} | {r['mean_abs_air_error_points']:.2f} | "
            f"{'-' if sf is None else f'{100 * sf:.1f} %'}")


def validation_stores(workdir: str, slabs: int, size: int) -> list[Path]:
    """The validation slabs (random styles, seeds 7000000..; made in ``workdir`` if missing): those of
    ``bigseg calibrate`` and ship_int8.py, never a held-out style."""
    from bigseg.trust import CALIBRATION_SEED as VALIDATION_SEED
    from bigseg.trust import synthetic_store

    return [synthetic_store(Path(workdir), "random", VALIDATION_SEED + k, size) for k in range(slabs)]


def train_and_measure(cfg: dict, work: Path, stores: list[Path]) -> dict:
    """Train ``cfg`` (written beside its run in ``work``) with ``bigseg train`` in a process of its own, then
    :func:`measure` its model; the wall-clock, the steps and the config go with the figures."""
    path = work / (Path(cfg["out"]).name + ".yaml")
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "bigseg", "--no-progress", "train", "--config", str(path)], check=True,
                   stdout=subprocess.DEVNULL)
    seconds = time.monotonic() - start
    steps = cfg.get("iterations") or sum(stage["iterations"] for stage in cfg["stages"])
    return {**measure(str(Path(cfg["out"]) / "model.pt"), stores), "train_seconds": round(seconds, 1),
            "steps": steps, "config": cfg}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--slabs", type=int, default=4)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--workdir", default="benchmarks/work/losses")
    ap.add_argument("--validation-workdir", default="benchmarks/work/int8", help="where the validation slabs are "
                    "(made there if missing; ship_int8.py makes the same ones)")
    ap.add_argument("--out", default="benchmarks/logs/losses.json")
    ap.add_argument("--only", nargs="*", help="loss names (keys of LOSSES) to run")
    args = ap.parse_args(argv)

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    stores = validation_stores(args.validation_workdir, args.slabs, args.size)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    if "base (no fine-tune)" not in results:
        results["base (no fine-tune)"] = measure(None, stores)
        print(json.dumps({"loss": "base", **{k: v for k, v in results["base (no fine-tune)"].items()
                                             if k != "slabs"}}), flush=True)
    for name, extra in LOSSES.items():
        if args.only and name not in args.only:
            continue
        results[name] = train_and_measure(config(name, extra, args.steps, work), work, stores)
        print(json.dumps({"loss": name, **{k: v for k, v in results[name].items() if k not in ("slabs", "config")}}),
              flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
    out.write_text(json.dumps(results, indent=2))
    print("| loss | void IoU | stone IoU | mean abs air error (points) | mean abs spacing factor error | train s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {metric_cells(r)} | {r.get('train_seconds', '-')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
