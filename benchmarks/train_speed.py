"""Training and forward speed per architecture on this CPU: what the hardware gives, before choosing a recipe.

    python benchmarks/train_speed.py                       # the table of benchmarks/RESULTS.md (~10 min, quiet machine)
    python benchmarks/train_speed.py --quick               # fewer steps, no ResNet-50

Measured one after the other in one process (ratios within one run are what to read; the machine is shared):
  * training step (forward, loss, backward, AdamW) on random crops with random labels, per architecture, fp32 vs
    bf16 autocast (``torch.autocast("cpu", torch.bfloat16)``: oneDNN runs bf16 convolutions on AMX), NCHW vs
    channels_last, crop x batch, 1 vs 2 threads: seconds per step and megapixels per second;
  * the crop supply of synthetic training (``bigseg.train.synthetic``): seconds to render one styled region;
  * "keeps the labels": the same 30 steps in fp32 and in bf16 from the same weights on the same rendered batches
    (mean loss over the last 10 of each), and the forward's label agreement fp32 vs bf16 for the bundled model
    on a rendered slab window;
  * forward of a 900 x 900 window (the inference window): torch fp32 / bf16 and ONNX Runtime fp32 (and int8 where
    a shipped int8 export exists).
Writes --out (JSON lines) and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from bigseg.models import build

ARCHS = {  # name in the table -> (architecture, build kwargs): the shipped configurations
    "light_unet w16": ("light_unet", {"width": 16}),
    "light_unet w24": ("light_unet", {"width": 24}),  # the widened bundled model (bigseg.train.widen)
    "light_unet w32": ("light_unet", {"width": 32}),
    "LR-ASPP MobileNetV3": ("lraspp_mobilenet_v3_large", {}),
    "DeepLabV3 MobileNetV3 +refine": ("deeplabv3_mobilenet_v3_large", {"refine": True}),
    "DeepLabV3 ResNet-50": ("deeplabv3_resnet50", {}),
    "DeepLabV3+ MobileNetV3 +refine": ("deeplabv3plus_mobilenet_v3_large", {"refine": True}),
    "LinkNet ResNet-18": ("linknet_resnet18", {}),
    "U-Net ResNet-34": ("unet_resnet34", {}),
}


def _timed(fn, warmup: int, reps: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def step_time(arch, kwargs, crop, batch, bf16, channels_last, threads, reps) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build(arch, 3, **kwargs).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, crop, crop).contiguous(memory_format=fmt)
    y = torch.randint(0, 3, (batch, crop, crop))
    loss_fn = torch.nn.CrossEntropyLoss()

    def one():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return _timed(one, 2, reps)


def forward_time(model, x, bf16, reps) -> float:
    def one():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model(x)

    return _timed(one, 1, reps)


def ort_time(path, x, reps, threads) -> float:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    feed = {name: x.numpy()}
    return _timed(lambda: sess.run(None, feed), 1, reps)


def render_time(n: int) -> float:
    from bigseg.train.config import SyntheticConfig
    from bigseg.train.synthetic import SyntheticCrops

    ds = SyntheticCrops(SyntheticConfig(styles={"random": 0.85, "classic": 0.15}), crop=384, seed=11)
    t0 = time.perf_counter()
    for r in range(n):
        ds[r << 16]  # the first crop of region r: renders the region
    return (time.perf_counter() - t0) / n


def rendered_batches(n, batch, crop):
    from bigseg.train.config import AugmentConfig, SyntheticConfig
    from bigseg.train.synthetic import SyntheticCrops

    ds = SyntheticCrops(SyntheticConfig(styles={"random": 0.85, "classic": 0.15}), crop=crop,
                        augment=AugmentConfig(rot90=True), seed=12)
    out = []
    for b in range(n):
        items = [ds[((b * batch + i) % 16) << 16 | b] for i in range(batch)]
        out.append((torch.stack([a for a, _ in items]), torch.stack([t for _, t in items]).long()))
    return out


def bf16_training_agreement(arch, kwargs, batches, steps=30) -> dict:
    """The same steps from the same weights on the same batches, fp32 vs bf16: mean loss of the last 10."""
    torch.set_num_threads(2)
    result = {}
    for bf16 in (False, True):
        torch.manual_seed(0)
        model = build(arch, 3, **kwargs).train()
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
        losses = []
        for k in range(steps):
            x, y = batches[k % len(batches)]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = torch.nn.functional.cross_entropy(model(x).float(), y, ignore_index=255)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        result["bf16" if bf16 else "fp32"] = float(np.mean(losses[-10:]))
    return result


def bf16_forward_agreement() -> float:
    """Share of pixels whose label is the same in fp32 and bf16, bundled model, one rendered 900² window."""
    from bigseg import checkpoint
    from bigseg.synth.slab import SynthParams, render_region

    model = checkpoint.load(checkpoint.model_path("light_unet"))[0]
    image = render_region(SynthParams(900, 900, seed=4242), 0, 0, 900, 900)[0]
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        a = model(x).argmax(1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            b = model(x).argmax(1)
    return float((a == b).float().mean())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--out", default="benchmarks/logs/train_speed.jsonl")
    ap.add_argument("--models", nargs="*", choices=list(ARCHS), help="only these rows (and no render or bf16 "
                    "agreement measurements)")
    args = ap.parse_args(argv)
    reps = 2 if args.quick else args.reps
    rows = []

    def record(row):
        rows.append(row)
        print(json.dumps(row), flush=True)

    archs = {k: v for k, v in ARCHS.items() if not (args.quick and "ResNet" in k)}
    if args.models:
        archs = {k: ARCHS[k] for k in args.models}
    for label, (arch, kw) in archs.items():
        heavy = "ResNet" in label
        for crop, batch in ([(384, 4)] if heavy else [(384, 4), (256, 8), (512, 2)]):
            for bf16 in (False, True):
                for cl in ((False,) if heavy or (crop, batch) != (384, 4) else (False, True)):
                    for threads in ((2,) if heavy or (crop, batch) != (384, 4) or cl else (1, 2)):
                        s = step_time(arch, kw, crop, batch, bf16, cl, threads, 2 if heavy else reps)
                        record({"kind": "step", "model": label, "crop": crop, "batch": batch,
                                "precision": "bf16" if bf16 else "fp32", "channels_last": cl, "threads": threads,
                                "s_per_step": s, "mpx_per_s": crop * crop * batch / s / 1e6})
    if not args.models:
        record({"kind": "render", "s_per_region": render_time(3 if args.quick else 6), "region": 1024})
        batches = rendered_batches(6, 4, 384)
        for label in ("light_unet w16", "DeepLabV3 MobileNetV3 +refine"):
            arch, kw = ARCHS[label]
            record({"kind": "bf16_training", "model": label, "steps": 30,
                    **bf16_training_agreement(arch, kw, batches)})
        record({"kind": "bf16_forward_labels", "model": "bundled light_unet", "agreement": bf16_forward_agreement()})

    torch.set_num_threads(2)
    x = torch.rand(1, 3, 900, 900)
    tmp = Path("benchmarks/work/train_speed")
    tmp.mkdir(parents=True, exist_ok=True)
    for label, (arch, kw) in archs.items():
        model = build(arch, 3, **kw).eval()
        heavy = "ResNet" in label
        n = 1 if heavy else 3
        for bf16 in (False, True):
            record({"kind": "forward", "model": label, "backend": "torch bf16" if bf16 else "torch fp32",
                    "s_per_window": forward_time(model, x, bf16, n)})
        onnx = tmp / f"{arch}.onnx"
        torch.onnx.export(model, x, str(onnx), input_names=["image"], output_names=["logits"], opset_version=17,
                          dynamo=False)
        record({"kind": "forward", "model": label, "backend": "ORT fp32", "s_per_window": ort_time(onnx, x, n, 2)})
        if arch == "light_unet":
            shipped = Path("bigseg/weights/concrete-light-unet.int8.onnx")
            record({"kind": "forward", "model": label, "backend": "ORT int8 (shipped export)",
                    "s_per_window": ort_time(shipped, x, n, 2)})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        for r in rows:
            f.write(json.dumps({**r, "when": time.strftime("%Y-%m-%dT%H:%M")}) + "\n")
    table(rows)


def table(rows):
    print("\n| model | crop × batch | precision | layout | threads | s/step | Mpx/s |")
    print("|---|---|---|---|---:|---:|---:|")
    for r in rows:
        if r["kind"] == "step":
            print(f"| {r['model']} | {r['crop']}² × {r['batch']} | {r['precision']} | "
                  f"{'channels_last' if r['channels_last'] else 'NCHW'} | {r['threads']} | {r['s_per_step']:.2f} | "
                  f"{r['mpx_per_s']:.2f} |")
    print("\n| model | backend | s per 900² window |\n|---|---|---:|")
    for r in rows:
        if r["kind"] == "forward":
            print(f"| {r['model']} | {r['backend']} | {r['s_per_window']:.3f} |")
    for r in rows:
        if r["kind"] not in ("step", "forward"):
            print(r)


if __name__ == "__main__":
    main()
