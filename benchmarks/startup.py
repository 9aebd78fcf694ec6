"""Where a `bigseg infer` command's seconds go besides the compute, and how the default compares.

    python benchmarks/startup.py [--size 8000x6000] [--repeats 2]

Makes a synthetic slab store once (benchmarks/out/startup-WxH.zarr), then times the whole command
`bigseg infer STORE --overwrite --workers N` in a fresh process (wall clock, interpreter start included) for
N = 0 (threads in this process) and N = 1 (a local cluster of one worker process), each with the default backend,
and reads the compute time the command reports ("in X s"). Overhead = whole - compute. Also times
`bigseg demo` whole. Writes benchmarks/out/startup.json.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "out"


def timed(args: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bigseg", "--no-progress", *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bigseg {' '.join(args)} failed: {proc.stderr}")
    return wall, proc.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="8000x6000")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    w, h = map(int, a.size.split("x"))
    store = OUT / f"startup-{w}x{h}.zarr"
    if not store.exists():
        jpg = OUT / f"startup-{w}x{h}.jpg"
        timed(["synth", str(jpg), "--size", a.size, "--seed", "5"])
        timed(["ingest", str(jpg), str(store)])
    rows = []
    for rep in range(a.repeats):
        for workers in (0, 1):
            wall, out = timed(["infer", str(store), "--overwrite", "--workers", str(workers)])
            compute = float(re.search(r" in ([0-9.]+) s \(", out).group(1))
            backend = "onnxruntime" if "backend: onnxruntime" in out else "torch"
            rows.append({"workers": workers, "repeat": rep, "backend": backend, "whole_s": wall, "compute_s": compute,
                         "overhead_s": wall - compute, "whole_mpx_s": w * h / 1e6 / wall,
                         "compute_mpx_s": w * h / 1e6 / compute})
            r = rows[-1]
            print(f"workers {workers} ({backend}): whole {wall:.1f} s, compute {compute:.1f} s, overhead "
                  f"{r['overhead_s']:.1f} s ({100 * r['overhead_s'] / compute:.0f} % of compute); "
                  f"{r['whole_mpx_s']:.2f} Mpx/s whole", flush=True)
    demo_wall, _ = timed(["demo", "--out", str(OUT / "startup-demo")])
    print(f"bigseg demo: {demo_wall:.1f} s whole")
    (OUT / "startup.json").write_text(json.dumps({"size": [w, h], "rows": rows, "demo_s": demo_wall}, indent=2))


if __name__ == "__main__":
    main()
