"""The README's adapt walk-through, timed: a lab's JPEG of 3000 x 2000 px to a report from an adapted model.

Runs the commands of README "Right on your own concrete" as a person types them (the `bigseg` command line, each
one a fresh process), on a synthetic slab of a development style written as a JPEG. The painting is the only
step a person does by hand: here the strokes are simulated from the slab's exact truth (bigseg.synth.strokes) and
written through the viewer's own write path (bigseg.annotations.paint), 20 per class blind, then 20 per class over
the mistakes the first adapted labels show; the time a person takes to paint them is not measured here (the
output counts the strokes). Every other step is timed as it runs, on this machine.

    python benchmarks/adapt_walkthrough.py                      # crushed, seed 4300 (a development style)
    python benchmarks/adapt_walkthrough.py --style gravel --seed 4310

Writes benchmarks/out/adapt-walkthrough.json and prints one line per step and the total. The report is run with
``--truth`` at the end (outside the timed steps) so the figures can be compared with the slab's truth.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent


def bigseg(*args, cwd: Path) -> float:
    """Run one bigseg command as a person would; its wall time in seconds. Fails loudly."""
    cmd = [str(Path(sys.executable).with_name("bigseg")), "--no-progress", *map(str, args)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"{shlex.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return took


def paint(store: Path, truth: np.ndarray, per_class: int, seed: int, over_mistakes: bool) -> int:
    """Simulated strokes into the store's annotations (the viewer's write path); how many."""
    from bigseg import annotations as ann
    from bigseg import store as st
    from bigseg.synth.strokes import simulate_corrections, simulate_strokes

    rng = np.random.default_rng(seed)
    if over_mistakes:
        labels = np.asarray(st.open_array(store, "labels")[:])
        strokes = simulate_corrections(truth, labels, 3, per_class, rng)
    else:
        strokes = simulate_strokes(truth, 3, per_class, rng)
    for s in strokes:
        ann.paint(store, s, source="benchmarks/adapt_walkthrough.py (simulated strokes)")
    return len(strokes)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--style", default="crushed", help="a development style (default crushed)")
    ap.add_argument("--seed", type=int, default=4300)
    ap.add_argument("--size", default="3000x2000", help="the README's slab; smaller only to try the script")
    ap.add_argument("--minutes", type=float, nargs=2, default=[10, 5], help="the two adapt budgets (README: 10, 5)")
    ap.add_argument("--work", default=str(ROOT / "work" / "walkthrough"))
    ap.add_argument("--out", default=str(ROOT / "out" / "adapt-walkthrough.json"))
    a = ap.parse_args(argv)

    import pyvips

    from bigseg.synth.styles import HELD_OUT

    if a.style in HELD_OUT:
        raise SystemExit(f"{a.style} is held out: the walk-through times the workflow, on a development style")
    work = Path(a.work) / f"{a.style}-{a.seed}"
    if work.exists():
        import shutil

        shutil.rmtree(work)
    work.mkdir(parents=True)
    bigseg("synth", "scan.jpg", "--size", a.size, "--seed", a.seed, "--style", a.style,
           "--truth", "truth.png", cwd=work)
    truth = np.asarray(pyvips.Image.new_from_file(str(work / "truth.png")).numpy())
    if truth.ndim == 3:
        truth = truth[..., 0]
    store = work / "scan.zarr"
    steps: list[dict] = []

    def timed(name: str, *args) -> None:
        took = bigseg(*args, cwd=work)
        steps.append({"step": name, "command": "bigseg " + shlex.join(map(str, args)), "seconds": took})
        print(f"{took:7.1f} s  bigseg {shlex.join(map(str, args))}", flush=True)

    def painted(name: str, over_mistakes: bool, seed: int) -> None:
        t = time.perf_counter()
        n = paint(store, truth, 20, seed, over_mistakes)
        took = time.perf_counter() - t
        steps.append({"step": name, "strokes": n, "seconds": took, "by_hand": True})
        print(f"{took:7.1f} s  {n} strokes painted ({name}; by hand in the viewer: a person's time, not measured)",
              flush=True)

    timed("infer (bundled model)", "infer", "scan.jpg")
    painted("paint, round one", False, a.seed)
    timed("adapt, round one", "adapt", "scan.zarr", "-o", "mine-adapted.pt", "--minutes", a.minutes[0])
    timed("infer (adapted)", "infer", "scan.zarr", "--model", "mine-adapted.pt", "--overwrite", "--tta", "flip4")
    painted("paint over the mistakes", True, a.seed + 1)
    timed("adapt, round two", "adapt", "scan.zarr", "-o", "mine-adapted-2.pt", "--model", "mine-adapted.pt",
          "--minutes", a.minutes[1])
    timed("infer (adapted again)", "infer", "scan.zarr", "--model", "mine-adapted-2.pt", "--overwrite", "--tta",
          "flip4")
    timed("report", "report", "scan.zarr", "--overwrite")
    machine = sum(s["seconds"] for s in steps if not s.get("by_hand"))
    strokes = sum(s.get("strokes", 0) for s in steps)
    print(f"machine time {machine / 60:.1f} min for the {sum(not s.get('by_hand') for s in steps)} commands; "
          f"{strokes} strokes painted by hand besides")

    # the figures against the truth (not part of the walk-through): the same JPEG ingested with its truth, the
    # final model run on it as above, measured the way benchmarks/adapt.py measures (whole slab, strokes included)
    from bigseg.ingest import ingest
    from bigseg.trust import measure_slab

    check = ingest(work / "scan.jpg", work / "check.zarr", truth=work / "truth.png").store
    m = measure_slab(check, str(work / "mine-adapted-2.pt"), tta="flip4")
    base = measure_slab(check, None)
    keys = ("iou", "air_content", "air_content_truth", "air_error_points", "spacing_factor_error")
    result = {"style": a.style, "seed": a.seed, "size": a.size, "minutes": a.minutes, "steps": steps,
              "machine_seconds": machine, "strokes": strokes,
              "adapted": {k: m[k] for k in keys}, "base": {k: base[k] for k in keys}}
    for name, r in (("base", base), ("adapted", m)):
        print(f"{name}: stone IoU {r['iou']['stone']:.3f}, void IoU {r['iou']['void']:.3f}, air "
              f"{r['air_content']:.2f} % (truth {r['air_content_truth']:.2f} %), spacing factor "
              f"{100 * (r['spacing_factor_error'] or 0):+.1f} %")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1, default=str))
    print(f"written {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
