"""How a model's figures move when each window is resized before the network (and its logits resized back): is
there a pixel size the network reads best, so that a coarse or fine scan would be read better resampled to it?

Each scale is registered as a one-view ``--tta`` mode (``x2``: every window read at twice its size; ``1+2``: the
logits of both views averaged), then
``bigseg.trust.measure_slab`` runs the real infer path on each store (its labels overwritten: use copies).

    python benchmarks/scale_sweep.py STORE.zarr ... --scales 0.5 0.75 1 1.5 2 1+2 [--model M.pt] [--json OUT.jsonl]
Development and validation stores only: it reads the truth.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from stroke_reach import by_size  # benchmarks/stroke_reach.py

from bigseg import store as st
from bigseg.annotations import NONE
from bigseg.infer import options, predictor
from bigseg.trust import measure_slab


def register(spec: str) -> str:
    """The ``--tta`` mode of one scale ("2": one view at twice the size) or of several averaged ("1+2")."""
    scales = [float(v) for v in spec.split("+")]
    if scales == [1.0]:
        return "none"
    name = "x" + "+".join(f"{v:g}" for v in scales)
    if name not in predictor.TTA_VIEWS:
        predictor.TTA_VIEWS[name] = tuple(((), v) for v in scales)
        options.TTA = (*options.TTA, name)
    return name


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stores", nargs="+")
    ap.add_argument("--scales", nargs="+", default=["0.5", "0.75", "1", "1.5", "2"],
                    help="scales, each one view; 1+2: the logits of views at 1 and 2 averaged")
    ap.add_argument("--model")
    ap.add_argument("--sizes", action="store_true", help="also: the share of the true voids labelled void, by size")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    print("| store | pixel size um | scale | stone IoU | void IoU | air error (points) | spacing factor error |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for store in a.stores:
        px = st.pixel_size_um(st.open_store(store))
        truth = np.asarray(st.open_array(store, "truth")[:]) if a.sizes else None
        for s in a.scales:
            m = measure_slab(Path(store), a.model, tta=register(s))
            sf = m["spacing_factor_error"]
            sf_text = f"{100 * sf:+.1f} %" if sf is not None else "-"
            print(f"| {Path(store).stem} | {px:g} | {s} | {m['iou']['stone']:.3f} | {m['iou']['void']:.3f} | "
                  f"{m['air_error_points']:+.2f} | {sf_text} |", flush=True)
            if truth is not None:
                labels = np.asarray(st.open_array(store, "labels")[:])
                print("\n".join("    " + r for r in by_size(labels, truth, np.full_like(truth, NONE))), flush=True)
            if a.json:
                with open(a.json, "a") as f:
                    f.write(json.dumps({"store": store, "pixel_size_um": px, "scale": s, "model": a.model,
                                        "iou": m["iou"], "air_error_points": m["air_error_points"],
                                        "spacing_factor_error": sf}) + "\n")


if __name__ == "__main__":
    main()
