"""An inference checkpoint from a training checkpoint (``last.pt`` of a run stopped by --time-limit, or model.pt):
the weights and metadata only, optionally stored as float16, with the iterations it was trained for.

    python benchmarks/pack_checkpoint.py runs/x/last.pt out.pt [--half] [--description TEXT]
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--half", action="store_true")
    ap.add_argument("--description")
    args = ap.parse_args(argv)

    from bigseg import checkpoint
    from bigseg.checkpoint import classes_of
    from bigseg.models import build

    blob = checkpoint.read(args.src)
    meta = dict(blob["meta"])
    state = blob.get("train_state") or {}
    if "step" in state:
        meta["trained_iterations"] = int(state["step"])
    if args.description:
        meta["description"] = args.description
    model = build(meta["arch"], len(classes_of(meta)), **meta.get("arch_kwargs", {}))
    model.load_state_dict(blob["state_dict"])
    extra = {k: v for k, v in meta.items() if k not in ("arch", "arch_kwargs", "classes", "stored_as")}
    checkpoint.save(args.dst, model, arch=meta["arch"], classes=classes_of(meta),
                    arch_kwargs=meta.get("arch_kwargs"), extra_meta=extra, half=args.half)
    print(f"{args.dst}: {meta['arch']}, {meta.get('trained_iterations', '?')} iterations"
          + (", float16" if args.half else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
