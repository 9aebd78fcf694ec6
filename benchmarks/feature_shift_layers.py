"""Which batch-norm layers tell an image unlike the training data: the bundled model's per-layer feature shift
(``bigseg.infer.stability``: channel means against the running statistics, in running standard deviations,
squared, averaged over channels) on validation slabs (random styles) and on copies of them seen through views no
training image had -- channels swapped, inverted, and "green paste" (red and blue damped, green lifted, in the
manner of a UV-fluorescent section). Validation side only: no held-out style is read.

    python benchmarks/feature_shift_layers.py benchmarks/work/calibration/random-70000*-2048.zarr
    # log: benchmarks/logs/feature-shift-layers.json; prints how many copies each gate flags

Gates compared (each at 1.5 x the largest value on the validation slabs, as ``bigseg calibrate`` sets the
unfamiliar-image gate): the mean over all layers (the gate today), the mean over the first k layers, and the
largest per-layer ratio (leave-one-out for the validation slabs themselves).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

VIEWS = {
    "plain": lambda a: a,
    "bgr": lambda a: a[..., ::-1],
    "gbr": lambda a: a[..., [1, 2, 0]],
    "invert": lambda a: 255 - a,
    "green paste": lambda a: np.clip(a * np.array([0.35, 1.25, 0.45]), 0, 255).astype(np.uint8),
}
WINDOW = 512


def layer_shifts(model, bns, image: np.ndarray) -> list[float]:
    import torch

    out: list[float] = []

    def hook(module, inputs, _output):
        mean = inputs[0].float().mean(dim=(0, 2, 3))
        out.append(float(((mean - module.running_mean) ** 2 / (module.running_var + module.eps)).mean()))

    handles = [b.register_forward_hook(hook) for b in bns]
    try:
        with torch.inference_mode():
            model(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255))
    finally:
        for h in handles:
            h.remove()
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stores", nargs="+")
    ap.add_argument("--out", default="benchmarks/logs/feature-shift-layers.json")
    a = ap.parse_args(argv)

    import torch

    from bigseg import store as st
    from bigseg.checkpoint import load, model_path

    torch.set_num_threads(2)
    model, _ = load(model_path(None))
    model.eval()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) and m.running_mean is not None]
    shifts: dict[str, list] = {k: [] for k in VIEWS}
    for store in sorted(set(a.stores)):
        image = st.open_array(store, "image")
        h, w = image.shape[:2]
        corners = [(0, 0), (h - WINDOW, w - WINDOW), (h // 2 - WINDOW // 2, w // 2 - WINDOW // 2), (0, w - WINDOW)]
        per: dict[str, list] = {k: [] for k in VIEWS}
        for y, x in corners:
            window = np.asarray(image[y : y + WINDOW, x : x + WINDOW])
            for k, view in VIEWS.items():
                per[k].append(layer_shifts(model, bns, view(window)))
        for k in VIEWS:
            shifts[k].append(np.mean(per[k], axis=0).tolist())
    Path(a.out).write_text(json.dumps({"stores": sorted(set(a.stores)), "shifts": shifts}, indent=1))
    ref = np.array(shifts["plain"])
    n = len(ref)
    print(f"{n} validation slabs, {ref.shape[1]} batch-norm layers; flagged of {n} at 1.5 x the validation maximum:")
    gates = {"all layers (today)": ref.shape[1], "first 2": 2, "first 4": 4, "first 8": 8}
    for name, k in gates.items():
        top = 1.5 * ref[:, :k].mean(axis=1).max()
        flagged = {v: int((np.array(s)[:, :k].mean(axis=1) > top).sum()) for v, s in shifts.items() if v != "plain"}
        mine = ref[:, :k].mean(axis=1)
        alone = sum(mine[i] > 1.5 * np.delete(mine, i).max() for i in range(n))
        print(f"  mean over {name}: {flagged}; plain (leave-one-out): {alone}")
    loo = [float((ref[i] / np.delete(ref, i, axis=0).max(axis=0)).max()) for i in range(n)]
    top = ref.max(axis=0)
    flagged = {v: int(((np.array(s) / top).max(axis=1) > 1.5).sum()) for v, s in shifts.items() if v != "plain"}
    print(f"  largest per-layer ratio: {flagged}; plain (leave-one-out): {sum(x > 1.5 for x in loo)}")


if __name__ == "__main__":
    main()
