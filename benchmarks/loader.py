"""Crop loader vs training step: does reading random crops from zarr keep up with training? (one run)

    python benchmarks/loader.py                                   # the bundled model's config, this machine
    python benchmarks/loader.py --arch deeplabv3_mobilenet_v3_large --crop 900 --batch 4 --steps 3

Measures, one after the other in the same run:
  * loader: crops/s delivered by the training DataLoader (``CropDataset``: random crops read from the zarr
    stores chunk by chunk, flips/rot90/colour jitter/rescale as in the config, rare-class sampling), with
    ``--workers`` loader processes;
  * step: crops/s consumed by one training step (forward, loss, backward, optimizer) of the model on the device,
    fed from memory.
The ratio loader/step is how much faster crops arrive than they are used (issue target: >= 5 on this machine).
Stores: ``--stores`` (globs), default ``data/synthetic/train/*.zarr`` (``bigseg synth-set data/synthetic``).
"""

from __future__ import annotations

import argparse
import glob
import json
import time

import torch

from bigseg.models import build
from bigseg.train.config import AugmentConfig, RareClassConfig
from bigseg.train.sampler import CropDataset, IndexRange


def loader_rate(stores, crop, batch, workers, batches, augment, rare) -> float:
    ds = CropDataset(stores, crop, augment, seed=0, rare_class=rare, n_classes=3)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, sampler=IndexRange(0, (batches + 2) * batch),
                                     num_workers=workers, persistent_workers=False)
    it = iter(dl)
    next(it), next(it)  # start-up: worker processes, first chunk reads
    t0 = time.perf_counter()
    n = 0
    for image, _ in it:
        n += image.shape[0]
    return n / (time.perf_counter() - t0)


def step_rate(arch, width, crop, batch, steps, device) -> float:
    kwargs = {"width": width} if width else {}
    model = build(arch, 3, **kwargs).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=255)
    x = torch.rand(batch, 3, crop, crop, device=device)
    y = torch.randint(0, 3, (batch, crop, crop), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = loss_fn(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stores", nargs="+", default=["data/synthetic/train/*.zarr"])
    ap.add_argument("--arch", default="light_unet")
    ap.add_argument("--width", type=int, default=16, help="light_unet width (ignored by other models)")
    ap.add_argument("--crop", type=int, default=384)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2, help="loader processes")
    ap.add_argument("--batches", type=int, default=20, help="loader batches timed")
    ap.add_argument("--steps", type=int, default=5, help="training steps timed")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    stores = sorted(p for g in args.stores for p in glob.glob(g))
    if not stores:
        raise SystemExit(f"no stores match {args.stores}; make them with 'bigseg synth-set data/synthetic'")
    # the bundled model's augmentations and rare-class sampling (configs/synthetic-concrete.yaml)
    augment = AugmentConfig(hflip=True, vflip=True, rot90=True, color_jitter=0.15, scale=(0.7, 1.4))
    rare = RareClassConfig(class_id=2, fraction=0.4)
    torch.set_num_threads(torch.get_num_threads())
    loader = loader_rate(stores, args.crop, args.batch, args.workers, args.batches, augment, rare)
    step = step_rate(args.arch, args.width if args.arch == "light_unet" else None, args.crop, args.batch,
                     args.steps, torch.device(args.device))
    print(json.dumps({"arch": args.arch, "crop": args.crop, "batch": args.batch, "device": args.device,
                      "loader_workers": args.workers, "torch_threads": torch.get_num_threads(),
                      "loader_crops_per_s": round(loader, 2), "step_crops_per_s": round(step, 2),
                      "loader_over_step": round(loader / step, 2)}))


if __name__ == "__main__":
    main()
