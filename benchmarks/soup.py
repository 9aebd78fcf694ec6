"""Adapted models averaged weight by weight (a "model soup", Wortsman et al. 2022): do two adaptations of the same
slab, each off by its own draw of training, come closer to the truth averaged?

Every ingredient must be fine-tuned from the same base (``bigseg adapt`` of one base model: the same architecture
and start, so their weights lie near each other); the soup keeps the first ingredient's metadata (void shift, look)
without its object rule (a rule belongs to one network's labels). Each store is copied before it is measured
(``measure_slab`` writes labels), so a benchmark running on the originals is not disturbed.

    python benchmarks/soup.py A-adapted.pt B-adapted.pt --out soup.pt --stores painted.zarr sibling.zarr --tta flip4

``--weights`` makes it a weighted soup, e.g. a base model interpolated towards one of its fine-tunes (WiSE-FT,
Wortsman et al. 2022: the fine-tune's gains on its own data, much of the start's robustness elsewhere); without
``--stores`` the soup is only written (then ``bigseg calibrate`` and ``benchmarks/edge_head.py`` measure it). A
soup carries no calibration (``confidence_reference``): that belongs to one network.

    python benchmarks/soup.py bigseg/weights/concrete-light-unet.pt FINE.pt --weights 0.3 0.7 --out wise-0.7.pt
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from adapt import measured  # noqa: E402  benchmarks/adapt.py: the adapt benchmark's own measure

from bigseg import checkpoint  # noqa: E402


def soup(models: list[str], out: Path, weights: list[float] | None = None) -> Path:
    import torch

    weights = weights or [1.0] * len(models)
    if len(weights) != len(models) or min(weights) < 0 or sum(weights) <= 0:
        raise SystemExit("--weights: one non-negative weight per model, not all zero")
    w = torch.tensor(weights, dtype=torch.float64) / sum(weights)

    blobs = [checkpoint.read(m) for m in models]
    keys = blobs[0]["state_dict"].keys()
    if any(b["state_dict"].keys() != keys for b in blobs):
        raise SystemExit("the ingredients are not the same architecture")
    mean = {}
    for k in keys:
        v = blobs[0]["state_dict"][k]
        if v.is_floating_point():
            stacked = torch.stack([b["state_dict"][k].double() for b in blobs])
            mean[k] = torch.tensordot(w, stacked, dims=1).to(v.dtype)
        else:
            mean[k] = v
    blob = dict(blobs[0])
    blob["state_dict"] = mean
    meta = json.loads(json.dumps(blob["meta"]))
    meta.get("adapted", {}).pop("object_rule", None)
    meta.pop("confidence_reference", None)
    meta["soup_of"] = [str(m) for m in models]
    meta["soup_weights"] = [float(x) for x in w]
    blob["meta"] = meta
    torch.save(blob, out)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--weights", nargs="+", type=float, help="one per model (normalised); default equal")
    ap.add_argument("--stores", nargs="*", default=[], help="the painted slab first (IoU off its strokes)")
    ap.add_argument("--tta", default="flip4")
    a = ap.parse_args(argv)
    out = soup(a.models, Path(a.out), a.weights)
    if not a.stores:
        print(f"wrote {out}")
        return
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, store in enumerate(a.stores):
            copy = Path(tmp) / Path(store).name
            shutil.copytree(store, copy)
            for name, model in [*((f"ingredient {k}", m) for k, m in enumerate(a.models)), ("soup", str(out))]:
                m = measured(copy, model, i == 0, a.tta, backend="torch")  # a soup has no ONNX export of its own
                rows.setdefault(Path(store).name, {})[name] = m
                print(f"{Path(store).name} {name}: void IoU {m['iou']['void']:.3f}, stone IoU {m['iou']['stone']:.3f}, "
                      f"air {m['air_error_points']:+.2f} points, spacing factor {m['spacing_factor_error']:+.1%}",
                      flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
