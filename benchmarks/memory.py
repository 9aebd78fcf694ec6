"""Peak memory and time of synth and ingest at several sizes, against libvips decoding alone (one run).

    python benchmarks/memory.py --sizes 4000x4000 16000x12000            # ingest + synth, two sizes 12x apart
    python benchmarks/memory.py --sizes 40000x25000 --only synth         # the gigapixel slab
    python benchmarks/memory.py --sizes 4000x4000 16000x12000 --report   # also `bigseg report --truth`

Each step runs as its own process; its peak RSS (the process and its children, sampled every 50 ms) and wall
time are printed as one JSON line per step. "decode" is libvips alone streaming the same file to a raw .v
file (what `vips copy IMAGE x.v` does): the ceiling for ingest. With --report the truth is copied into the
store's labels (chunk by chunk; standing in for `infer`, whose memory is measured in throughput.py) and
`bigseg report STORE --truth` is measured: two full passes over a mask, quicklooks, histograms, HTML.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bigseg.bench import measure_command


def measure(cmd: list[str]) -> dict:
    """Run ``cmd``; its wall time and the peak RSS of it and its children together (sampled every 50 ms)."""
    r = measure_command(cmd)
    return {"seconds": r["seconds"], "peak_rss_mb": r["peak_rss_mb"]}


COPY_TRUTH = """
import sys, zarr
from bigseg import store as st
g = zarr.open_group(sys.argv[1], mode="r+")
t = g["truth"]
lab = st.create_array(g, "labels", t.shape, t.chunks, ("y", "x"))
for y in range(0, t.shape[0], t.chunks[0]):
    lab[y:y + t.chunks[0]] = t[y:y + t.chunks[0]]
st.set_complete(lab)
"""

DECODE = ("import pyvips, sys; pyvips.Image.new_from_file(sys.argv[1], access='sequential')"
          ".write_to_file(sys.argv[2])")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["4000x4000", "16000x12000"])
    ap.add_argument("--only", choices=["synth", "ingest"], default=None)
    ap.add_argument("--format", default="tif", help="tif or jpg")
    ap.add_argument("--report", action="store_true", help="also measure `bigseg report --truth`")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)
    bigseg = [sys.executable, "-m", "bigseg"]
    for size in args.sizes:
        w, h = (int(v) for v in size.split("x"))
        mpx = w * h / 1e6
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            img = Path(tmp) / f"slab.{args.format}"
            r = measure([*bigseg, "synth", str(img), "--size", size, "--seed", "1"])
            print(json.dumps({"step": "synth", "size": size, "megapixels": mpx, **r,
                              "mpx_per_s": mpx / r["seconds"]}), flush=True)
            if args.only == "synth":
                continue
            d = measure([sys.executable, "-c", DECODE, str(img), str(Path(tmp) / "x.v")])
            (Path(tmp) / "x.v").unlink()
            print(json.dumps({"step": "decode (libvips alone)", "size": size, "megapixels": mpx, **d,
                              "mpx_per_s": mpx / d["seconds"]}), flush=True)
            store = Path(tmp) / "s.zarr"
            truth = ["--truth", str(img.with_name("slab.truth.tif"))] if args.report else []
            i = measure([*bigseg, "ingest", str(img), str(store), *truth])
            print(json.dumps({"step": "ingest" + (" (with truth)" if truth else ""), "size": size, "megapixels": mpx,
                              **i, "mpx_per_s": mpx / i["seconds"], "vs_decode": d["seconds"] / i["seconds"]}),
                  flush=True)
            if args.report:
                subprocess.run([sys.executable, "-c", COPY_TRUTH, str(store)], check=True)
                r = measure([*bigseg, "report", str(store), "--truth"])
                print(json.dumps({"step": "report --truth", "size": size, "megapixels": mpx, **r,
                                  "mpx_per_s": 2 * mpx / r["seconds"]}), flush=True)


if __name__ == "__main__":
    main()
