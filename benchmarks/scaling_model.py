"""Where the dask scheduler, not the model, becomes the limit as GPU workers are added: a model from measured parts.

    python benchmarks/scaling_model.py                    # ~2 min on the 2-core machine
    python benchmarks/scaling_model.py --tasks 20000 --workers 2 8 16

1. **Per-task cost of the scheduler**, measured here: a local cluster of W worker processes (one thread each) runs
   N no-op tasks submitted at once (as bigseg's plan is); the rate the whole cluster gets through them is the most
   tasks per second the scheduler can hand out (on these 2 cores the workers compete with the scheduler for CPU,
   so this is a lower bound for a cluster whose scheduler has a core of its own).
2. **Tasks of the job**: bigseg's own plan (:func:`bigseg.infer.plan.make_plan`) for a 40000 x 100000 image
   (the design's gigapixel section) for each chunk size and window batch size: predict tasks (one per batch of
   windows) and blend tasks (one per label chunk), plus the pyramid strips.
3. **Work per GPU worker**, from benchmarks/RESULTS.md (H100, end to end per worker: 16.7 Mpx/s with DeepLabV3-R50
   bf16, 29.2 Mpx/s with light_unet); not measured here (no GPU).

Model: N workers need ``N x rate_per_worker / Mpx_per_task`` tasks a second; the scheduler hands out at most its
measured rate, so efficiency(N) = min(1, scheduler rate x Mpx per task / (N x rate per worker)). Output: a table on
stdout, benchmarks/out/scaling_model.json and a plot (benchmarks/out/scaling_model.png).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

WORKER_MPX_S = {"deeplabv3_resnet50 (H100, bf16)": 16.7, "light_unet (H100, bf16)": 29.2}
"""End-to-end Mpx/s of one GPU worker (benchmarks/RESULTS.md, "Inference: bigseg end to end")."""


def _noop(x):
    return x


def scheduler_rate(workers: int, n_tasks: int) -> dict:
    """Tasks per second a local cluster of ``workers`` single-thread processes gets through ``n_tasks`` no-ops."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.gather(client.map(_noop, range(workers * 4), pure=False))  # warm-up: every worker has run a task
        t0 = time.perf_counter()
        client.gather(client.map(_noop, range(n_tasks), pure=False))
        seconds = time.perf_counter() - t0
    return {"workers": workers, "tasks": n_tasks, "seconds": round(seconds, 3),
            "tasks_per_second": round(n_tasks / seconds, 1), "ms_per_task": round(1000 * seconds / n_tasks, 3)}


def plan_tasks(width: int, height: int, batch: int, window: int = 900, overlap: int = 128, chunk: int = 1024) -> dict:
    """Tasks of bigseg's plan for a whole image (every chunk pending)."""
    from bigseg.infer.plan import make_plan, stripe_columns
    from bigseg.infer.windows import Grid

    grid = Grid(height, width, window, overlap)
    pending = [(i, j, (y, min(y + chunk, height), x, min(x + chunk, width)))
               for i, y in enumerate(range(0, height, chunk)) for j, x in enumerate(range(0, width, chunk))]
    plan = make_plan(grid, pending, batch, chunk, stripe_columns(grid, chunk, batch, None))
    n_batches = len({k for g in plan.groups for b in g.blends for k in b.deps})
    n_blends = sum(len(g.blends) for g in plan.groups)
    strips = -(-height // chunk)
    return {"batch": batch, "chunk": chunk, "windows": plan.n_windows, "predict_tasks": n_batches,
            "blend_tasks": n_blends, "pyramid_tasks": strips, "tasks": n_batches + n_blends + strips,
            "mpx_per_task": width * height / 1e6 / (n_batches + n_blends + strips)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--workers", type=int, nargs="*", default=[2, 8, 16])
    ap.add_argument("--size", default="40000x100000")
    ap.add_argument("--batches", type=int, nargs="*", default=[8, 32])
    ap.add_argument("--chunks", type=int, nargs="*", default=[1024, 2048, 4096])
    ap.add_argument("--out", default=str(ROOT / "out" / "scaling_model.json"))
    a = ap.parse_args(argv)
    width, height = (int(v) for v in a.size.lower().split("x"))
    rates = [scheduler_rate(w, a.tasks) for w in a.workers]
    for r in rates:
        print(json.dumps(r), flush=True)
    rate = min(r["tasks_per_second"] for r in rates)  # the slowest: the many-worker case is the one that matters
    plans = [plan_tasks(width, height, b, chunk=c) for c in a.chunks for b in a.batches]
    for p in plans:
        print(json.dumps(p), flush=True)
    gpus = [1, 8, 64, 256]
    rows = []
    for model, per_worker in WORKER_MPX_S.items():
        for p in plans:
            for n in gpus:
                eff = min(1.0, rate * p["mpx_per_task"] / (n * per_worker))
                rows.append({"model": model, "batch": p["batch"], "chunk": p["chunk"], "gpus": n,
                             "efficiency": round(eff, 3),
                             "minutes": round(width * height / 1e6 / (n * per_worker * eff) / 60, 2)})
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"scheduler": rates, "rate_used": rate, "plans": plans, "model": rows},
                                      indent=1))
    print(f"\nscheduler: {rate:.0f} tasks/s (the slowest of {', '.join(str(w) for w in a.workers)} workers)")
    print("\n| model | chunk | windows per task (batch) | tasks | Mpx per task | "
          + " | ".join(f"{n} GPUs" for n in gpus) + " |")
    print("|---|---:|---:|---:|---:|" + "---:|" * len(gpus))
    for model in WORKER_MPX_S:
        for p in plans:
            cells = [next(r for r in rows if r["model"] == model and r["batch"] == p["batch"]
                          and r["chunk"] == p["chunk"] and r["gpus"] == n) for n in gpus]
            print(f"| {model} | {p['chunk']} | {p['batch']} | {p['tasks']} | {p['mpx_per_task']:.2f} | "
                  + " | ".join(f"{c['efficiency']:.2f} ({c['minutes']:.1f} min)" for c in cells) + " |")
    _plot(rows, plans, gpus, Path(a.out).with_suffix(".png"))


def _plot(rows, plans, gpus, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(WORKER_MPX_S), figsize=(11, 3.8), sharey=True)
    for ax, model in zip(axes, WORKER_MPX_S, strict=True):
        for p in plans:
            ys = [next(r["efficiency"] for r in rows if r["model"] == model and r["batch"] == p["batch"]
                       and r["chunk"] == p["chunk"] and r["gpus"] == n) for n in gpus]
            ax.plot(gpus, ys, "-o", label=f"chunk {p['chunk']}, batch {p['batch']} ({p['tasks']} tasks)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(gpus, [str(n) for n in gpus])
        ax.set_xlabel("GPU workers")
        ax.set_title(model, fontsize=10)
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("predicted efficiency (scheduler-bound share)")
    axes[-1].legend(fontsize=8)
    fig.suptitle("bigseg infer on a 40000 x 100000 image: where the dask scheduler becomes the limit")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
