"""Colours no stroke had: does a slab's share of them tell where adapted labels are off?

For every development or validation look with an adapt record in ``benchmarks/logs/adapt-*/`` (the styles crushed,
gravel, contrast and random-70000xx; never a held-out style), the painted slab and its sibling are made again as
``benchmarks/adapt.py`` makes them, the painted slab gets its first round of blind strokes again (the record's stroke
seed; round two's corrections need the round-one model and are not reproduced), the stroke colour models are fitted
as ``bigseg adapt`` fits them (the Gaussians it grows strokes with), and on both slabs the share of pixels whose
colour lies further than ``--limit`` from every class's models is set beside the slab's adapted air error (mean
|error| over the look's records, the ``--tta`` rows where run).

    python benchmarks/unpainted.py --work benchmarks/work/unpainted --out benchmarks/logs/unpainted-2026-12-06.json

Reads the truth of development slabs only (to say where the far pixels are); the figure itself reads none.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import shutil
from pathlib import Path

import grown_labels  # benchmarks/grown_labels.py: adapt's strokes and colour models, read as adapt reads them
import numpy as np

from bigseg import annotations as ann
from bigseg import store as st
from bigseg.train import grow
from bigseg.train.adapt_options import AdaptOptions
from bigseg.trust import spearman

DEV_STYLES = ("crushed", "gravel", "contrast")
NEWER = {f"random-70000{n}" for n in (75, 77, 78, 79, 80, 81, 82)}


def is_development(style: str) -> bool:
    return style in DEV_STYLES or style.startswith("random-7")


def records(pattern: str) -> dict[str, list[dict]]:
    """Adapt records per development look."""
    out = collections.defaultdict(list)
    for f in sorted(glob.glob(pattern)):
        try:
            d = json.loads(Path(f).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(d, dict) and is_development(d.get("style", "")) and ("adapted" in d or "adapted_tta" in d):
            out[d["style"]].append(d)
    return out


def stroke_models(store: Path, per_class: int, stroke_seed: int, adapt_seed: int, components: int, choice: str):
    """The colour models adapt fits on ``store`` after ``per_class`` blind strokes per class from ``stroke_seed``
    (the store's strokes are replaced)."""
    import adapt as bench  # benchmarks/adapt.py: the benchmark's own strokes

    for name in (ann.LAYER, ann.PYRAMID):
        shutil.rmtree(store / name, ignore_errors=True)
    st.consolidate(store)
    bench.paint(store, per_class, stroke_seed)
    return grown_labels.colour_models(str(store), adapt_seed, components, choice)


LIMIT = 16.0
"""Squared Mahalanobis distance beyond which a colour is no class's (about the 99.9th percentile of a chi-square
with three degrees of freedom)."""


def far_share(store: Path, models: dict, limit: float = LIMIT, step: int = 2) -> tuple[float, list[float]]:
    """Share of the slab's pixels (every ``step``-th each way) whose 3 x 3 mean colour lies further than ``limit``
    from every class's models; and (from the truth, for the reader) the share of each true class that is far."""
    from scipy import ndimage

    img = np.asarray(st.open_array(store, "image")[:]).astype(np.float32)
    smooth = np.stack([ndimage.uniform_filter(img[..., k], 3) for k in range(3)], -1)[::step, ::step]
    d = np.stack([grow._distance(smooth.reshape(-1, 3).astype(np.float64), models[c]) for c in sorted(models)])
    far = d.min(axis=0) > limit
    truth = np.asarray(st.open_array(store, "truth")[::step, ::step]).ravel()
    per = [float((far & (truth == c)).sum() / max(1, (truth == c).sum())) for c in range(3)]
    return float(far.mean()), per


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logs", default="benchmarks/logs/adapt-*/*.json")
    ap.add_argument("--work", default="benchmarks/work/unpainted")
    ap.add_argument("--out", default="benchmarks/logs/unpainted.json")
    ap.add_argument("--limit", type=float, default=LIMIT)
    ap.add_argument("--components", type=int, default=AdaptOptions.colour_components)
    a = ap.parse_args(argv)
    import adapt as bench  # benchmarks/adapt.py: the benchmark's own slabs

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for style, recs in sorted(records(a.logs).items()):
        first = recs[0]
        seed = first.get("seed", 4100)
        size = tuple(first.get("size", (3000, 2000)))
        stroke_seed = first.get("stroke_seed") or seed
        per_class = first["per_class"] if first.get("protocol") == "blind" else first["per_class"] // 2
        adapt_seed = first.get("adapt_seed") or 0
        painted = bench.make_slab(work, style, seed, size)
        sibling = bench.make_slab(work, style, seed + 1, size)
        models = stroke_models(painted, per_class, stroke_seed, adapt_seed, a.components, "all")
        for which, store in (("painted", painted), ("sibling", sibling)):
            errs = []
            for r in recs:
                m = (r.get("adapted_tta") or r.get("adapted") or {}).get(which)
                if m and m.get("air_error_points") is not None:
                    errs.append(abs(m["air_error_points"]))
            share, per = far_share(store, models, a.limit)
            row = {"style": style, "slab": which, "share": round(share, 5),
                   "far_by_true_class": [round(x, 4) for x in per],
                   "abs_air_error": round(float(np.mean(errs)), 3), "records": len(errs),
                   "group": "newer" if style in NEWER else "older"}
            rows.append(row)
            print(json.dumps(row), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=1))
    older = [r for r in rows if r["group"] == "older"]
    newer = [r for r in rows if r["group"] == "newer"]
    rho = spearman([r["share"] for r in older], [r["abs_air_error"] for r in older])
    right = sorted(r["share"] for r in older if r["abs_air_error"] <= 0.3)
    # the smallest threshold that flags no more than a fifth of the older looks' right slabs
    allowed = len(right) // 5
    t = right[len(right) - 1 - allowed] if right else float("inf")
    print(f"older looks: {len(older)} slabs, Spearman(share, |air error|) {rho or 0:+.2f}; threshold {t:.4f} "
          f"(flags {sum(s > t for s in right)} of {len(right)} slabs within 0.3 points)")
    off = [r for r in newer if r["abs_air_error"] > 0.5]
    ok = [r for r in newer if r["abs_air_error"] <= 0.3]
    print(f"newer looks: {len(newer)} slabs; flagged {sum(r['share'] > t for r in off)} of {len(off)} off by more "
          f"than 0.5 points, {sum(r['share'] > t for r in ok)} of {len(ok)} within 0.3")
    if newer:
        rho_new = spearman([r["share"] for r in newer], [r["abs_air_error"] for r in newer])
        print(f"newer looks: Spearman {rho_new or 0:+.2f}")


if __name__ == "__main__":
    main()
