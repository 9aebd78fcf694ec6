"""Make the bundled model's int8 export, check it on validation slabs, and ship it only if the rule below holds.

    python benchmarks/ship_int8.py [--slabs 8] [--size 2048]      # log: benchmarks/logs/int8-validation.json

1. Calibration: ``bigseg export --int8`` on ``--calibration-slabs`` slabs of random styles (seeds 7100000..),
   ranges from ``--calibration-windows`` of their windows, as many others checked against PyTorch fp32 (the
   export fails below 99 % equal labels).
2. Validation: the fp32 default (ONNX Runtime, the shipped fp32 export) and the int8 export each segment
   ``--slabs`` validation slabs (random styles, seeds 7000000.., the ones ``bigseg calibrate`` uses; never a
   held-out style), whole-slab ``bigseg infer``: labels equal to fp32's, void and stone IoU against the truth
   (confusion summed over the slabs), air-content error (points) per slab.
3. The rule, written before it was first run: the int8 export is shipped (and ``bigseg infer --precision int8``
   allowed for it) only if (a) the export's own check passed, (b) its labels equal fp32's on >= 99 % of the
   validation pixels, (c) void IoU >= fp32's - 0.01 and stone IoU >= fp32's - 0.01, and (d) the mean |air
   error| is at most fp32's + 0.1 points. The held-out styles (benchmarks/generalization.py) only report it.

The outcome is written into the export's metadata (``validation``), which ``bigseg infer --precision int8``
reads, and the export is copied to bigseg/weights/concrete-light-unet.int8.onnx when the rule holds.

Attempts (2026-11-30): the first candidate, calibrated on 2 slabs (32 windows), failed the rule on the validation
slabs (labels 98.35 % equal to fp32's, 93.4 % on one slab; void IoU 0.430 -> 0.407; log
benchmarks/logs/int8-validation-attempt1.json). The second is calibrated on 8 slabs (64 windows), the defaults now,
and checked by the same rule on the same validation slabs (validation, not held-out, data chooses between them).
Shipped 2026-12-03: the same recipe with the logit-making nodes kept float (``bigseg.export.logit_nodes``): labels
99.57 % equal to fp32's (the 2026-11-30 export: 99.44 %); log benchmarks/logs/int8-validation-logits-float.json.
``--qat-slabs N`` fine-tunes through the int8 simulation first (``bigseg export --qat``), measured by the same rule
with ``--dry-run`` (log benchmarks/logs/int8-validation-qat.json); ``--model`` measures another checkpoint.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

CALIBRATION_SEED = 7_100_000  # calibration slabs: random styles from these seeds, apart from validation's
QAT_SEED = 7_200_000  # --qat-slabs: the quantization-aware fine-tune's crops, apart from both
RULE = {"label_agreement_min": 0.99, "iou_loss_max": 0.01, "air_error_extra_max_points": 0.1}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slabs", type=int, default=8)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--workdir", default="benchmarks/work/int8")
    ap.add_argument("--out", default="benchmarks/logs/int8-validation.json")
    ap.add_argument("--calibration-slabs", type=int, default=8)
    ap.add_argument("--calibration-windows", type=int, default=64)
    ap.add_argument("--dry-run", action="store_true", help="measure and print; ship nothing")
    ap.add_argument("--model", help="a checkpoint other than the bundled one (measured, never shipped)")
    ap.add_argument("--qat-slabs", type=int, default=0,
                    help="quantization-aware fine-tune first, on crops of this many slabs (random styles, seeds "
                         "7200000..: apart from calibration's and validation's)")
    ap.add_argument("--qat-steps", type=int, default=300)
    ap.add_argument("--qat-lr", type=float, default=1e-5)
    args = ap.parse_args(argv)

    from bigseg import store as st
    from bigseg.checkpoint import BUNDLED
    from bigseg.export import _set_onnx_meta, export
    from bigseg.metrics import scores
    from bigseg.modelfile import read_onnx_meta
    from bigseg.trust import CALIBRATION_SEED as VALIDATION_SEED
    from bigseg.trust import measure_slab, synthetic_store

    work = Path(args.workdir)
    seeds = [CALIBRATION_SEED + k for k in range(args.calibration_slabs)]
    calib = [synthetic_store(work, "random", seed, args.size) for seed in seeds]
    model = Path(args.model) if args.model else BUNDLED
    if args.model:
        args.dry_run = True
    qat = [synthetic_store(work, "random", QAT_SEED + k, args.size) for k in range(args.qat_slabs)]
    target = BUNDLED.with_suffix(".int8.onnx")
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        int8 = Path(tmp) / target.name
        made = export(model, int8, int8=True, calibrate=[str(s) for s in calib], exporter="legacy",
                      calibration_windows=args.calibration_windows, qat=[str(s) for s in qat],
                      qat_steps=args.qat_steps, qat_lr=args.qat_lr)
        rows, cms = [], {"fp32": [], "int8": []}
        equal = pixels = 0
        for k in range(args.slabs):
            store = synthetic_store(work, "random", VALIDATION_SEED + k, args.size)
            fp = measure_slab(store, args.model)
            fp_labels = st.open_array(store, "labels")[:]
            q = measure_slab(store, str(int8))
            same = int((st.open_array(store, "labels")[:] == fp_labels).sum())
            equal, pixels = equal + same, pixels + fp_labels.size
            cms["fp32"].append(fp["confusion"])
            cms["int8"].append(q["confusion"])
            rows.append({"seed": VALIDATION_SEED + k, "air_truth": fp["air_content_truth"],
                         "air_error_fp32": fp["air_error_points"], "air_error_int8": q["air_error_points"],
                         "label_agreement": same / fp_labels.size, "mpx_s_fp32": fp["megapixels_per_second"],
                         "mpx_s_int8": q["megapixels_per_second"]})
            print(json.dumps(rows[-1]), flush=True)
        iou = {p: scores(np.sum(cms[p], axis=0), ["paste", "stone", "void"])["iou"] for p in cms}
        air = {p: float(np.mean([abs(r[f"air_error_{p}"]) for r in rows])) for p in cms}
        agreement = equal / pixels
        checks = {
            "export_check": made["verified"]["int8_label_agreement"] >= RULE["label_agreement_min"],
            "label_agreement": agreement >= RULE["label_agreement_min"],
            "void_iou": iou["int8"]["void"] >= iou["fp32"]["void"] - RULE["iou_loss_max"],
            "stone_iou": iou["int8"]["stone"] >= iou["fp32"]["stone"] - RULE["iou_loss_max"],
            "air_error": air["int8"] <= air["fp32"] + RULE["air_error_extra_max_points"],
        }
        validation = {
            "slabs": args.slabs, "size": args.size, "styles": f"random, seeds {VALIDATION_SEED}.."
                                                             f"{VALIDATION_SEED + args.slabs - 1}",
            "calibration_styles": f"random, seeds {seeds[0]}..{seeds[-1]}",
            "calibration_windows": args.calibration_windows, "model": str(model),
            "qat": made.verified.get("qat"),
            "label_agreement": agreement, "iou": iou, "mean_abs_air_error_points": air, "rule": RULE,
            "checks": checks, "allowed": all(checks.values()),
        }
        meta = read_onnx_meta(int8)
        meta["validation"] = validation
        _set_onnx_meta(int8, meta)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        record = {"export": made.to_dict(), "validation": validation, "slabs": rows}
        Path(args.out).write_text(json.dumps(record, indent=2))
        print(f"labels equal to fp32: {100 * agreement:.2f} %; void IoU fp32 {iou['fp32']['void']:.4f} int8 "
              f"{iou['int8']['void']:.4f}; stone IoU fp32 {iou['fp32']['stone']:.4f} int8 {iou['int8']['stone']:.4f}; "
              f"mean |air error| fp32 {air['fp32']:.3f} int8 {air['int8']:.3f} points; checks {checks}")
        if not validation["allowed"]:
            print("the rule does not hold: nothing shipped")
            return 1
        if not args.dry_run:
            shutil.copyfile(int8, target)
            print(f"shipped {target} ({target.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
