"""How the shipped models do on concrete they have never seen: the held-out styles (bigseg.synth.HELD_OUT).

    python benchmarks/generalization.py [--models light_unet deeplabv3 PATH ...] [--seeds 2] [--size 3072]

For every held-out style and seed a slab is synthesized as the JPEG a lab would have (the style's JPEG quality),
ingested with its exact truth (kept in --workdir and reused), and segmented by each model. Per style and model:
IoU per class (confusion summed over the seeds), air content error in percentage points and spacing factor
error in % (mean over the seeds of labels vs truth on the same traverse), and the confidence figure the model's
calibration chose, with the report's warning. Across all slabs of a model: Spearman's rank correlation between
that figure and the absolute air-content error (does the figure tell good predictions from bad ones?).

The held-out styles are never trained or tuned on: training configs refuse them, the confidence reference comes
from validation styles (bigseg calibrate), and this script only reports. Targets for the bundled model
(issue "A model that holds up..."): void IoU >= 0.85, stone IoU >= 0.90, air content within +-0.3 points.
Writes --out (JSON) and prints the Markdown table of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

TARGETS = {"void_iou": 0.85, "stone_iou": 0.90, "air_points": 0.3}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["light_unet", "deeplabv3"])
    ap.add_argument("--styles", nargs="+", default=None, help="default: every held-out style")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--first-seed", type=int, default=3000,
                    help="seeds first-seed.. (1000 was looked at while the confidence rule was chosen, 2000 while "
                         "the shipped model was chosen between two candidates; 3000 is the clean figure)")
    ap.add_argument("--size", type=int, default=3072)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--workdir", default="benchmarks/work/generalization")
    ap.add_argument("--out", default="benchmarks/out/generalization.json",
                    help="the JSON (benchmarks/logs/generalization.json is the committed record of the last table)")
    args = ap.parse_args(argv)

    from bigseg import checkpoint
    from bigseg.metrics import scores
    from bigseg.modelfile import read_onnx_meta
    from bigseg.synth import HELD_OUT
    from bigseg.trust import doubt, measure_slab, spearman, synthetic_store

    styles = args.styles or list(HELD_OUT)
    if not set(styles) <= set(HELD_OUT) | {"classic"}:
        raise SystemExit("report on held-out styles (or classic, the generator the first models were trained on)")
    work = Path(args.workdir)
    results = {"styles": styles, "seeds": args.seeds, "first_seed": args.first_seed, "size": args.size, "models": {}}
    for name in args.models:
        path = checkpoint.model_path(name)
        meta = checkpoint.read(path)["meta"] if path.suffix == ".pt" else read_onnx_meta(path)
        reference = meta.get("confidence_reference")
        per_style, slabs = {}, []
        for style in styles:
            rows = []
            for k in range(args.seeds):
                store = synthetic_store(work, style, args.first_seed + k, args.size)
                row = measure_slab(store, str(path), args.workers)
                row["doubt"] = doubt(row["confidence"], reference)
                rows.append(row)
                slabs.append(row)
                print(json.dumps({"model": name, "style": style, "seed": args.first_seed + k, "iou": row["iou"],
                                  "air": row["air_content"], "air_truth": row["air_content_truth"],
                                  "flag": row["doubt"]["flag"], "doubt": row["doubt"].get("value"),
                                  "unfamiliar": bool(row["doubt"].get("unfamiliar")),
                                  "early_feature_shift": row["figures"].get("early_feature_shift")}), flush=True)
            cm = np.sum([r["confusion"] for r in rows], axis=0)
            sf = [r["spacing_factor_error"] for r in rows if r["spacing_factor_error"] is not None]
            per_style[style] = {
                "iou": scores(cm, ["paste", "stone", "void"])["iou"],
                "air_error_points": float(np.mean([r["air_error_points"] for r in rows])),
                "air_abs_error_points": float(np.mean([abs(r["air_error_points"]) for r in rows])),
                "air_content_truth": float(np.mean([r["air_content_truth"] for r in rows])),
                "spacing_factor_error": float(np.mean(sf)) if sf else None,
                "flagged": sum(bool(r["doubt"]["flag"]) for r in rows), "slabs": rows,
                "unfamiliar": sum(bool(r["doubt"].get("unfamiliar")) for r in rows),
                "entrapped_voids": int(sum(r["entrapped_voids"] for r in rows)),
                "entrapped_voids_truth": int(sum(r["entrapped_voids_truth"] for r in rows)),
            }
        figure = (reference or {}).get("figure", "uncertain_fraction")
        values = [r["figures"].get(figure) for r in slabs]
        errors = [abs(r["air_error_points"]) for r in slabs]
        sf_errors = [abs(r["spacing_factor_error"] or 0.0) for r in slabs]
        missed = [f"{Path(r['store']).name} ({r['air_error_points']:+.2f} points, "
                  f"SF {100 * (r['spacing_factor_error'] or 0):+.0f} %)"
                  for r in slabs if not r["doubt"]["flag"]
                  and (abs(r["air_error_points"]) > 0.5 or abs(r["spacing_factor_error"] or 0) > 0.10)]
        # flagged though right: within the accuracy (0.3 points, 10 % of spacing factor) and still warned
        needless = [Path(r["store"]).name for r in slabs if r["doubt"]["flag"]
                    and abs(r["air_error_points"]) <= 0.3 and abs(r["spacing_factor_error"] or 0) <= 0.10]
        every = {k: {"air": spearman([r["figures"].get(k, np.nan) for r in slabs], errors),
                     "spacing_factor": spearman([r["figures"].get(k, np.nan) for r in slabs], sf_errors)}
                 for k in sorted({k for r in slabs for k in r["figures"]})}
        results["models"][name] = {"path": str(path), "arch": meta.get("arch"), "reference": reference,
                                   "styles": per_style, "figure": figure,
                                   "spearman_figure_vs_air_error": spearman(values, errors),
                                   "spearman_figure_vs_spacing_factor_error": spearman(values, sf_errors),
                                   "spearman_every_figure": every,
                                   "flagged": sum(bool(r["doubt"]["flag"]) for r in slabs), "slabs": len(slabs),
                                   "missed": missed, "needless": needless}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
    print(table(results))
    return 0


def _met(ok: bool) -> str:
    return "" if ok else " ✗"


def table(results: dict) -> str:
    lines = ["| model | style | IoU paste | IoU stone | IoU void | air content truth | air error (points) | "
             "spacing factor error | flagged |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, m in results["models"].items():
        for style, s in m["styles"].items():
            iou = s["iou"]
            sf = f"{100 * s['spacing_factor_error']:+.1f} %" if s["spacing_factor_error"] is not None else "n/a"
            lines.append(
                f"| {name} | {style} | {iou['paste']:.3f} | "
                f"{iou['stone']:.3f}{_met(iou['stone'] >= TARGETS['stone_iou'])} | "
                f"{iou['void']:.3f}{_met(iou['void'] >= TARGETS['void_iou'])} | {s['air_content_truth']:.2f} % | "
                f"{s['air_error_points']:+.2f}{_met(s['air_abs_error_points'] <= TARGETS['air_points'])} | {sf} | "
                f"{s['flagged']}/{len(s['slabs'])} |")
    lines.append("")
    for name, m in results["models"].items():
        rho, rho_sf = m["spearman_figure_vs_air_error"], m.get("spearman_figure_vs_spacing_factor_error")
        lines.append(f"- {name}: Spearman's rho between {m['figure']} and |air error| over all slabs: "
                     + (f"{rho:.2f}" if rho is not None else "n/a")
                     + "; and |spacing factor error|: " + (f"{rho_sf:.2f}" if rho_sf is not None else "n/a")
                     + f"; flagged {m.get('flagged')} of {m.get('slabs')}; more than 0.5 points or 10 % of spacing "
                     f"factor off without the warning: {len(m.get('missed', []))}"
                     + (f" ({'; '.join(m['missed'])})" if m.get("missed") else "")
                     + f"; within 0.3 points and 10 % yet flagged: {len(m.get('needless', []))}"
                     + (f" ({'; '.join(m['needless'])})" if m.get("needless") else ""))
        for style, st_ in m["styles"].items():
            if st_.get("entrapped_voids_truth") is not None:
                lines.append(f"  - {style}: entrapped voids {st_['entrapped_voids']} (truth "
                             f"{st_['entrapped_voids_truth']})"
                             + (f"; unfamiliar-image gate {st_['unfamiliar']}/{len(st_['slabs'])}"
                                if "unfamiliar" in st_ else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
