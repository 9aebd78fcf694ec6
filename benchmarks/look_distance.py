"""Is this the concrete it was adapted to? The look distance of an adapted model's report, measured.

A model adapted to strokes on one slab carries how that slab looked to its first batch-norm layers
(``bigseg.infer.stability.early_profile``); a report of another slab compares that slab's look with it
(``bigseg.report.doubt.profile_distance``) and warns above ``ADAPTED_LOOK_LIMIT``. This prints the distances
between every pair of the given slabs as each model sees them: a painted slab against its sibling (same style,
another seed) should be near zero, slabs of other styles far.

    W=benchmarks/work
    python benchmarks/look_distance.py --models light_unet $W/adapt/{crushed,contrast}-4100-40-corrective-adapted.pt \
        --stores $W/adapt/crushed-410[01].zarr $W/adapt/contrast-410[01].zarr \
        $W/generalization/classic-10[01]-2048.zarr $W/calibration/random-700000[0-5]-2048.zarr \
        --out benchmarks/logs/look-distance.json

Development and validation slabs only (no held-out style). Writes --out (JSON) and prints a matrix per model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["light_unet"])
    ap.add_argument("--stores", nargs="+", required=True)
    ap.add_argument("--out", default=str(ROOT / "out" / "look-distance.json"))
    a = ap.parse_args(argv)

    import torch

    from bigseg import store as st
    from bigseg.checkpoint import load, model_path
    from bigseg.infer import stability
    from bigseg.infer.options import DEFAULT_OVERLAP, DEFAULT_WINDOW
    from bigseg.infer.windows import Grid
    from bigseg.report.doubt import ADAPTED_LOOK_LIMIT, profile_distance
    from bigseg.synth.styles import HELD_OUT

    torch.set_num_threads(2)
    stores = list(dict.fromkeys(a.stores))
    if any(Path(s).name.startswith(tuple(f"{h}-" for h in HELD_OUT)) for s in stores):
        raise SystemExit("development and validation slabs only: a held-out style is named")
    result: dict = {"limit": ADAPTED_LOOK_LIMIT, "stores": stores, "models": {}}
    for name in a.models:
        model, _ = load(model_path(name))
        model.eval()
        profiles = {}
        for s in stores:
            h, w = st.open_array(s, "image").shape[:2]
            grid = Grid(h, w, DEFAULT_WINDOW, DEFAULT_OVERLAP)
            profiles[s] = stability.early_profile(model, s, stability.sample_origins(grid), grid)
        matrix = [[profile_distance(profiles[p], profiles[q]) for q in stores] for p in stores]
        result["models"][name] = matrix
        short = [Path(s).name.removesuffix(".zarr").removesuffix("-2048") for s in stores]
        print(f"\n{name} (limit {ADAPTED_LOOK_LIMIT}):")
        print(" " * 16 + " ".join(f"{n[:8]:>8}" for n in short))
        for n, row in zip(short, matrix, strict=True):
            print(f"{n[:15]:<16}" + " ".join(f"{d:8.3f}" for d in row))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
