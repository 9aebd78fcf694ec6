"""Accuracy per architecture at the same wall-clock training budget on this CPU, from scratch (no pretrained
weights can be downloaded here), measured like the losses (benchmarks/losses.py): 4 validation slabs of random
styles, never a held-out style. Issue #34: LinkNet-ResNet-18 and the ResNet-34 U-Net (fastai's staged recipe,
configs/staged-unet-resnet34.yaml, its iterations scaled to the budget) beside the light U-Net.

    python benchmarks/architectures.py [--seconds 360]        # log: benchmarks/logs/architectures.json

Steps per model come from step times with the synthetic crop renderer running beside the step (STEP_SECONDS), so
that each trains for about ``--seconds``; the measured wall-clock is recorded beside the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from losses import metric_cells, train_and_measure, validation_stores  # noqa: E402  (the loss table's measurement)

STEP_SECONDS = {  # seconds per step of 4 x 384² with the crop renderer on the same two cores, bf16: light_unet
    # measured in a first run of this script (1367 steps in ~480 s: the renderer, not the step, sets its pace);
    # the others from benchmarks/train_speed.py's step times (2026-12-03) plus the renderer's ~0.15 s
    "light_unet": 0.35, "linknet_resnet18": 0.6, "unet_resnet34": 2.0, "unet_resnet34 at 192": 0.6,
}
COMMON = {
    "train": [], "synthetic": {"styles": {"random": 0.85, "classic": 0.15}, "region": 1024, "crops_per_region": 16},
    "crop": 384, "batch_size": 4, "optimizer": {"name": "adamw", "lr": 0.002, "weight_decay": 1e-4},
    "schedule": {"name": "onecycle", "warmup_fraction": 0.05},
    "augment": {"hflip": True, "vflip": True, "rot90": True},
    "val_every": 100000, "val_crops": 8, "seed": 7, "num_workers": 1,
}


def configs(seconds: float, work: Path) -> dict[str, dict]:
    stage1 = int(seconds * 0.1 / STEP_SECONDS["unet_resnet34 at 192"])  # a tenth of the time, half the crop
    stage2 = int(seconds * 0.9 / STEP_SECONDS["unet_resnet34"])
    out = {
        "light_unet (from scratch)": {"model": {"arch": "light_unet", "width": 16},
                                      "iterations": int(seconds / STEP_SECONDS["light_unet"])},
        "linknet_resnet18": {"model": {"arch": "linknet_resnet18"},
                             "iterations": int(seconds / STEP_SECONDS["linknet_resnet18"])},
        "unet_resnet34, staged (fastai's recipe)": {
            "model": {"arch": "unet_resnet34"},
            "stages": [{"iterations": stage1, "crop": 192, "freeze": ["encoder"], "lr": 0.002},
                       {"iterations": stage2, "crop": 384, "lr": 0.001, "encoder_lr": 0.0001}]},
    }
    for name, c in out.items():
        c.update({k: v for k, v in COMMON.items() if k not in c})
        steps = sum(st["iterations"] for st in c["stages"]) if "stages" in c else c["iterations"]
        c["checkpoint_every"] = max(steps, 1)
        c["out"] = str(work / name.split(" ")[0].strip(","))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=360)
    ap.add_argument("--slabs", type=int, default=4)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--workdir", default="benchmarks/work/architectures")
    ap.add_argument("--validation-workdir", default="benchmarks/work/int8")
    ap.add_argument("--out", default="benchmarks/logs/architectures.json")
    args = ap.parse_args(argv)

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    stores = validation_stores(args.validation_workdir, args.slabs, args.size)
    results = {}
    for name, cfg in configs(args.seconds, work).items():
        results[name] = train_and_measure(cfg, work, stores)
        print(json.dumps({"model": name, **{k: v for k, v in results[name].items() if k not in ("slabs", "config")}}),
              flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
    print("| model | steps | train s | void IoU | stone IoU | mean abs air error | mean abs spacing factor error |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['steps']} | {r['train_seconds']:.0f} | {metric_cells(r)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
