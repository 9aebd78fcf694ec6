"""Peak memory and throughput of `bigseg infer` against image size (and stripe width), in one run.

    python benchmarks/scaling.py                                         # 36, 160 and 1000 Mpx, default stripes
    python benchmarks/scaling.py --sizes 6000x6000 40000x4000 --stripes 8192 1000000   # vs whole-width rows

Each size is a synthetic slab tile replicated and ingested (as `bigseg bench` makes it; kept in --workdir for
reuse); each run is `bigseg infer STORE --workers 1 --overwrite [--stripe S]` in its own process, its peak RSS
summed over the process tree (client, nanny, worker) sampled every 50 ms. A stripe wider than the image
(--stripe 1000000) is the engine before column stripes: chunk rows across the whole width. One JSON line per run
(appended to $BENCH_OUT too, when set); a table at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from bigseg.bench import make_store, measure_command


def run_infer(store: Path, stripe: int | None, workers: int) -> dict:
    cmd = [sys.executable, "-m", "bigseg", "infer", str(store), "--workers", str(workers), "--overwrite"]
    if stripe:
        cmd += ["--stripe", str(stripe)]
    r = measure_command(cmd)
    line = next(t for t in r["stdout"].splitlines() if t.startswith("labels written"))
    seconds = float(line.split(" windows in ")[1].split(" s ")[0])  # the job itself, not the cluster start
    return {"wall_seconds": r["seconds"], "infer_seconds": seconds, "peak_rss_mb": r["peak_rss_mb"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["6000x6000", "40000x4000", "40000x25000"])
    ap.add_argument("--stripes", nargs="+", type=int, default=[0], help="0: the default stripe")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--workdir", default="benchmarks/work", help="stores are made once here and reused")
    args = ap.parse_args(argv)
    rows = []
    for size in args.sizes:
        w, h = (int(v) for v in size.lower().split("x"))
        store = Path(args.workdir) / f"scaling-{w}x{h}.zarr"
        if not (store / "image").exists():
            Path(args.workdir).mkdir(parents=True, exist_ok=True)
            print(f"making {store}", file=sys.stderr)
            with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
                os.replace(make_store((w, h), Path(tmp)), store)
        for stripe in args.stripes:
            r = run_infer(store, stripe or None, args.workers)
            mpx = w * h / 1e6
            r.update({"size": [w, h], "megapixels": mpx, "stripe": stripe or "default", "workers": args.workers,
                      "mpx_per_s": mpx / r["infer_seconds"]})
            print(json.dumps(r))
            if os.environ.get("BENCH_OUT"):
                with open(os.environ["BENCH_OUT"], "a") as f:
                    f.write(json.dumps(r) + "\n")
            rows.append(r)
    print("\n| image | Mpx | stripe | Mpx/s | peak RSS (tree) |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size'][0]} x {r['size'][1]} | {r['megapixels']:.0f} | {r['stripe']} | {r['mpx_per_s']:.2f} | "
              f"{r['peak_rss_mb'] / 1024:.2f} GB |")
    for r in rows:
        base = min((b for b in rows if b["stripe"] == r["stripe"]), key=lambda b: b["megapixels"])
        print(f"{r['megapixels']:.0f} Mpx, stripe {r['stripe']}: {r['peak_rss_mb'] / base['peak_rss_mb']:.2f}x the "
              f"peak RSS and {r['mpx_per_s'] / base['mpx_per_s']:.2f}x the throughput of {base['megapixels']:.0f} Mpx")


if __name__ == "__main__":
    main()
