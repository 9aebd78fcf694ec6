"""Which figure of doubt tracks the errors? Every candidate figure against |air error| and |spacing factor error|
on synthetic slabs with exact truth (one run; the figures of bigseg.trust.FIGURES).

    python benchmarks/confidence_figures.py --model light_unet --styles random --slabs 16 --size 2048
    python benchmarks/confidence_figures.py --model deeplabv3 --styles random --slabs 16

``--styles random`` draws validation styles from the calibration seeds (bigseg.trust.CALIBRATION_SEED...): the
rule may be chosen on these. Held-out styles are for reporting only (benchmarks/generalization.py).
Writes --out (JSON: one row per slab) and prints Spearman's rho per figure.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="light_unet")
    ap.add_argument("--styles", nargs="+", default=["random"])
    ap.add_argument("--slabs", type=int, default=16, help="per style")
    ap.add_argument("--first-seed", type=int, default=None, help="default: the calibration seeds")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--workdir", default="benchmarks/work/calibration")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from bigseg import checkpoint
    from bigseg.synth import HELD_OUT, resolve
    from bigseg.trust import CALIBRATION_SEED, measure_slab, spearman, synthetic_store

    if set(args.styles) & set(HELD_OUT):
        raise SystemExit("held-out styles are reported by benchmarks/generalization.py, not explored here")
    first = CALIBRATION_SEED if args.first_seed is None else args.first_seed
    model = str(checkpoint.model_path(args.model))
    rows = []
    for style in args.styles:
        for k in range(args.slabs):
            store = synthetic_store(Path(args.workdir), style, first + k, args.size)
            r = measure_slab(store, model)
            rows.append({"style": style, "seed": first + k, "look": resolve(style, first + k).description,
                         "iou": r["iou"], "air_error_points": r["air_error_points"],
                         "spacing_factor_error": r["spacing_factor_error"], "air_content_truth": r["air_content_truth"],
                         "figures": r["figures"]})
            print(json.dumps(rows[-1]), flush=True)
    air = [abs(r["air_error_points"]) for r in rows]
    sf = [abs(r["spacing_factor_error"] or 0) for r in rows]
    print(f"\n{len(rows)} slabs; |air error| median {np.median(air):.2f} points; |SF error| median {np.median(sf):.1%}")
    print("| figure | Spearman with abs air error | with abs spacing factor error |\n|---|---:|---:|")
    for name in rows[0]["figures"]:
        v = [r["figures"].get(name, np.nan) for r in rows]
        a, s = spearman(v, air), spearman(v, sf)
        print(f"| {name} | {a if a is None else round(a, 2)} | {s if s is None else round(s, 2)} |")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"model": model, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
