"""What test-time augmentation buys on concrete, and what it costs: the bundled model with each ``--tta`` mode on
validation slabs (random styles; never a held-out style), measured like the losses (benchmarks/losses.py). Issue #34.

    python benchmarks/tta.py [--slabs 4]        # log: benchmarks/logs/tta.json

Whole-slab ``bigseg infer`` in this process (ONNX Runtime, the shipped export), one mode after the other on the
same slabs: void and stone IoU (confusion summed over the slabs), mean |air error| and |spacing-factor error|, and
megapixels per second end to end (start-up included: 4 Mpx slabs) -- read the speed as a ratio to ``none`` in the
same run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from losses import measure, metric_cells, validation_stores  # noqa: E402

MODES = ("none", "flip", "flip4", "multiscale", "flip-multiscale")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slabs", type=int, default=4)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--validation-workdir", default="benchmarks/work/int8")
    ap.add_argument("--out", default="benchmarks/logs/tta.json")
    args = ap.parse_args(argv)

    stores = validation_stores(args.validation_workdir, args.slabs, args.size)
    measure(None, stores[:1])  # warm the caches (the export, the slabs' pages) before anything is timed
    results = {}
    for mode in MODES:
        results[mode] = measure(None, stores, tta=mode)
        print(json.dumps({"tta": mode, **{k: v for k, v in results[mode].items() if k != "slabs"}}), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    base = results["none"]
    print("| `--tta` | void IoU | stone IoU | mean abs air error | mean abs spacing factor error | Mpx/s | cost |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode, r in results.items():
        print(f"| {mode} | {metric_cells(r)} | {r['megapixels_per_second']:.2f} | "
              f"{base['megapixels_per_second'] / r['megapixels_per_second']:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
