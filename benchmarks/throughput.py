"""bigseg end to end vs the model's own forward speed over exactly the windows the job needs (one run).

    python benchmarks/throughput.py --arch light_unet --size 6000x6000            # CPU, bundled model
    python benchmarks/throughput.py --arch light_unet --size 6000x6000 --monai    # ... and MONAI beside it
    python benchmarks/throughput.py --arch deeplabv3_resnet50 --device cuda --size 16384x16384 --batch 16

The same measurement as ``bigseg bench`` (bigseg/bench.py has the method); prints one JSON line (appended to
$BENCH_OUT too, when set). The figures in RESULTS.md come from it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from bigseg.bench import bench


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="light_unet")
    ap.add_argument("--checkpoint", help="default: the bundled model for light_unet, random weights otherwise")
    ap.add_argument("--size", default="6000x6000")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--window", type=int, default=900)
    ap.add_argument("--overlap", type=int, default=128)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--store", default=None, help="reuse (or make once) the test store here")
    ap.add_argument("--monai", action="store_true", help="also run MONAI's sliding_window_inference")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    result = bench(arch=args.arch, checkpoint=args.checkpoint, size=(w, h), device=args.device, window=args.window,
                   overlap=args.overlap, batch=args.batch, workers=args.workers, workdir=args.workdir,
                   store=args.store, monai=args.monai, echo=lambda *a: print(*a, file=sys.stderr)).to_dict()
    result["command"] = "python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(json.dumps(result))
    out = os.environ.get("BENCH_OUT")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(result) + "\n")
    return result


if __name__ == "__main__":
    main()
