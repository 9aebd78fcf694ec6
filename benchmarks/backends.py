"""Speed and accuracy per model x backend x precision: torch fp32, ONNX Runtime fp32, ONNX Runtime int8 (one run).

    python benchmarks/backends.py                  # every registry model; writes benchmarks/logs/backends.json
    python benchmarks/backends.py --models light_unet --rounds 5

For each model:
  * forward: Mpx/s of the model alone over ``--window`` windows in batches of 2 with all cores, through bigseg's
    own predict path (uint8 windows in, blend-weighted float16 logits out), the three variants measured in
    interleaved rounds (this machine is shared and noisy: the ratios are what to read, medians over rounds);
  * end to end: ``bigseg infer`` (one worker, all cores) on the held-out synthetic slabs, Mpx/s;
  * accuracy (trained models): per-class and mean IoU of those labels against the slabs' truth
    (``bigseg evaluate``), and the share of pixels where the variant's labels equal torch fp32's.
int8 models are calibrated on two training slabs (``--calibrate``), never on the held-out ones; a model that ships an
int8 export (the bundled one: benchmarks/ship_int8.py, calibrated on random-style slabs) is measured with it.

Models: the bundled light_unet; lraspp_mobilenet_v3_large from runs/synthetic-concrete-lraspp/model.pt
(configs/synthetic-concrete-lraspp.yaml) if it was trained; the others with random weights (speed only).
Stores: data/synthetic (made with ``bigseg synth-set data/synthetic`` if missing).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bigseg import checkpoint
from bigseg.classes import CONCRETE
from bigseg.cluster import cpu_count
from bigseg.export import export
from bigseg.infer import InferOptions, infer
from bigseg.infer.predictor import ModelSpec, get_model, predict
from bigseg.infer.windows import Grid
from bigseg.models import ARCHITECTURES, build
from bigseg.report.evaluate import evaluate

ROOT = Path(__file__).resolve().parent.parent
TRAINED = {"light_unet": checkpoint.BUNDLED,
           "lraspp_mobilenet_v3_large": ROOT / "runs" / "synthetic-concrete-lraspp" / "model.pt"}
QUIET = {"echo": lambda *_: None}


def variants(ckpt: Path, calibrate: list[str], tmp: Path) -> dict[str, tuple[str, str]]:
    """name -> (model file, backend) for torch fp32, onnxruntime fp32 and onnxruntime int8: the exports shipped
    beside the checkpoint when there are (the bundled model's: what ``bigseg infer`` and ``--precision int8``
    run), else made here."""
    from bigseg.infer.backend import ready_export

    digest = checkpoint.file_digest(ckpt)
    shipped_fp32, shipped_int8 = ready_export(ckpt, digest, None), ready_export(ckpt, digest, None, "int8")
    fp32 = shipped_fp32[0] if shipped_fp32 else tmp / f"{ckpt.stem}.onnx"
    int8 = shipped_int8[0] if shipped_int8 else tmp / f"{ckpt.stem}.int8.onnx"
    if not fp32.exists():
        export(ckpt, fp32, **QUIET)
    if not int8.exists():
        export(ckpt, int8, int8=True, calibrate=calibrate, min_agreement=0.0, **QUIET)  # measured below, not gated
    return {"torch fp32": (str(ckpt), "torch"), "onnxruntime fp32": (str(fp32), "onnxruntime"),
            "onnxruntime int8": (str(int8), "onnxruntime")}


def forward_rates(models: dict, window: int, batch: int, rounds: int, seconds: float) -> dict:
    """Median Mpx/s of each variant's predict over ``window`` windows, interleaved rounds."""
    threads = cpu_count()
    specs = {name: ModelSpec(f, name, "cpu", threads, backend=b) for name, (f, b) in models.items()}
    x = np.random.default_rng(0).integers(0, 256, (batch, window, window, 3), dtype=np.uint8)
    weight = Grid(window * 2, window * 2, window, 128).weight()
    for spec in specs.values():
        get_model(spec)
        predict(spec, x, weight)  # warm-up
    rates = {name: [] for name in specs}
    for _ in range(rounds):
        for name, spec in specs.items():
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds or n == 0:
                predict(spec, x, weight)
                n += batch
            rates[name].append(n * window * window / 1e6 / (time.perf_counter() - t0))
    return {name: statistics.median(r) for name, r in rates.items()}


def end_to_end(models: dict, held_out: list[str], tmp: Path, trained: bool) -> dict:
    """Per variant: Mpx/s of bigseg infer on copies of the held-out stores, IoU and agreement with torch fp32."""
    out, reference = {}, None
    for name, (model_file, backend) in models.items():
        stores = []
        for k, s in enumerate(held_out):
            copy = tmp / f"{name.replace(' ', '-')}-{k}.zarr"
            shutil.copytree(s, copy, ignore=shutil.ignore_patterns("labels", "probabilities", ".bigseg"))
            stores.append(copy)
        seconds = mpx = 0.0
        for s in stores:
            r = infer(s, model=model_file, options=InferOptions(workers=1, backend=backend, overwrite=True), **QUIET)
            seconds += r.seconds
            mpx += r.width * r.height / 1e6
        row = {"infer_mpx_per_s": mpx / seconds}
        labels = [_labels(s) for s in stores]
        if reference is None:
            reference = labels
        row["agreement_with_torch_fp32"] = float(np.mean([(a == b).mean() for a, b in zip(labels, reference,
                                                                                          strict=True)]))
        if trained:
            e = evaluate(stores)
            row.update({"iou": e["iou"], "mean_iou": e["mean_iou"], "pixel_accuracy": e["pixel_accuracy"]})
        out[name] = row
        for s in stores:
            shutil.rmtree(s)
    return out


def _labels(store: Path) -> np.ndarray:
    import zarr

    return zarr.open_group(str(store), mode="r")["labels"][:]  # 2048 x 2048: a small benchmark slab


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    p.add_argument("--window", type=int, default=900)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=4.0, help="Seconds per variant per round.")
    p.add_argument("--data", default=str(ROOT / "data" / "synthetic"))
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "logs" / "backends.json"))
    a = p.parse_args(argv)

    data = Path(a.data)
    if not (data / "val").is_dir():
        from bigseg.synth import make_training_set

        make_training_set(data)
    held_out = sorted(glob.glob(str(data / "val" / "*.zarr")))
    calibrate = sorted(glob.glob(str(data / "train" / "*.zarr")))[:2]
    results = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": cpu_count(),
                           "python": sys.version.split()[0], "torch": torch.__version__,
                           "onnxruntime": __import__("onnxruntime").__version__},
               "window": a.window, "batch": a.batch, "held_out": held_out, "calibrate": calibrate, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for arch in a.models:
            ckpt = TRAINED.get(arch)
            trained = ckpt is not None and Path(ckpt).exists()
            if not trained:
                torch.manual_seed(0)
                ckpt = tmp / f"{arch}.pt"
                checkpoint.save(ckpt, build(arch, 3), arch=arch, classes=CONCRETE)
            print(f"{arch}: exporting (fp32, int8)", file=sys.stderr)
            models = variants(Path(ckpt), calibrate, tmp)
            window = a.window if arch != "deeplabv3_resnet50" else min(a.window, 512)
            print(f"{arch}: forward rates", file=sys.stderr)
            fwd = forward_rates(models, window, a.batch, a.rounds, a.seconds)
            print(f"{arch}: end to end on {len(held_out)} held-out slabs", file=sys.stderr)
            e2e = end_to_end(models, held_out, tmp, trained)
            results["models"][arch] = {
                "trained": trained, "checkpoint": str(ckpt) if trained else "random weights",
                "forward_window": window,
                "variants": {name: {"forward_mpx_per_s": fwd[name],
                                    "forward_vs_torch_fp32": fwd[name] / fwd["torch fp32"],
                                    "file_mb": os.path.getsize(models[name][0]) / 1e6, **e2e[name]}
                             for name in models},
            }
            print(table({arch: results["models"][arch]}), file=sys.stderr)
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(results, indent=2))
    print(table(results["models"]))
    return 0


def table(models: dict) -> str:
    rows = ["| model | backend, precision | file MB | forward Mpx/s | vs torch | infer Mpx/s | same labels as torch "
            "| IoU stone | IoU void | mean IoU |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for arch, m in models.items():
        for name, v in m["variants"].items():
            iou = v.get("iou", {})
            acc = [f"{iou[k]:.4f}" if iou.get(k) is not None else "-" for k in ("stone", "void")]
            acc.append(f"{v['mean_iou']:.4f}" if "mean_iou" in v else "- (untrained)")
            rows.append(f"| {arch} | {name} | {v['file_mb']:.1f} | {v['forward_mpx_per_s']:.2f} | "
                        f"{v['forward_vs_torch_fp32']:.2f}x | {v['infer_mpx_per_s']:.2f} | "
                        f"{100 * v['agreement_with_torch_fp32']:.2f} % | " + " | ".join(acc) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
