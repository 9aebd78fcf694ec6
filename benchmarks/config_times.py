"""How long each shipped example config takes on this CPU: a short run of each (``--steps`` iterations after a
warm-up, the config's own model, crops, batch, loader and augmentation), and its whole length estimated from that
rate. Stores the configs name (data/synthetic/...) are replaced by a small synthetic set made here; configs that
start from an earlier run's model (``runs/...``) start from the bundled one (same architecture, same cost).

    python benchmarks/config_times.py                 # all shipped configs; a markdown table on stdout
    python benchmarks/config_times.py synthetic-concrete generalization-light-unet

Results: benchmarks/out/config_times.json. Run nothing else meanwhile (the machine's two cores are the subject).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from bigseg.train.config import config_names, find_config, load_config  # noqa: E402
from bigseg.train.loop import train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="config names (default: all shipped)")
    ap.add_argument("--steps", type=int, default=20, help="timed iterations per config (after 3 of warm-up)")
    ap.add_argument("--out", default=str(ROOT / "out" / "config_times.json"))
    args = ap.parse_args()
    import torch
    import yaml

    from bigseg.synth.slab import make_training_set

    names = args.names or config_names()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "synthetic"
        for name in names:
            raw = yaml.safe_load(find_config(name).read_text())
            if "cuda" in str(raw.get("device", "")) or name.endswith("-gpu") or name == \
                    "generalization-deeplabv3-mobilenet":
                rows.append({"config": name, "skipped": "a GPU recipe"})
                continue
            over: dict = {"val_every": 10**9, "checkpoint_every": 10**9, "out": str(tmp / "runs" / name),
                          "iterations": 10**6, "val": []}  # never the last iteration: no closing validation
            if raw.get("train"):
                if not data.exists():
                    make_training_set(data, 2, 1, 1024, 0, False, echo=lambda *a: None, progress=False)
                over["train"] = [str(p) for p in sorted((data / "train").glob("*.zarr"))]
            init = (raw.get("model") or {}).get("init")
            if init and str(init).startswith("runs/"):
                over["model"] = {**raw["model"], "init": "light_unet"}
            cfg = load_config(name, over)
            torch.manual_seed(0)
            train(cfg, stop_at=3, echo=lambda *a: None, progress=False)  # warm-up: loader processes, first steps
            t0 = time.perf_counter()
            s = train(cfg, resume=True, stop_at=args.steps + 3, echo=lambda *a: None, progress=False)
            seconds = time.perf_counter() - t0
            rate = args.steps / seconds
            full = int(raw.get("iterations") or 0)
            rows.append({"config": name, "arch": cfg.model.arch, "crop": cfg.crop, "batch": cfg.batch_size,
                         "timed_steps": args.steps, "seconds": round(seconds, 1), "it_per_s": round(rate, 3),
                         "loop_it_per_s": round(s["it_per_second"], 3), "iterations": full,
                         "estimated_minutes": round(full / rate / 60, 1) if full else None})
            print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"when": time.strftime("%Y-%m-%d %H:%M"), "threads":
                                          torch.get_num_threads(), "rows": rows}, indent=1))
    print("\n| config | model | crop x batch | s/it | iterations | whole run on this CPU |")
    print("|---|---|---|---:|---:|---:|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['config']} | | | | | {r['skipped']} |")
        else:
            print(f"| {r['config']} | {r['arch']} | {r['crop']}² x {r['batch']} | {1 / r['it_per_s']:.2f} | "
                  f"{r['iterations']} | ~{r['estimated_minutes']:.0f} min |")


if __name__ == "__main__":
    main()
