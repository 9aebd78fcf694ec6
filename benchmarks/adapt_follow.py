"""Does following the report's advice mend a slab it warned about? A recorded ``benchmarks/adapt.py`` run, one of its
slabs where the adapted model's report says "low confidence" and what to do: "paint a few strokes on this slab and
adapt again (bigseg adapt THIS_STORE --model THE_ADAPTED_MODEL)" (a sibling unlike the slab adapted on) or "paint more
<class> strokes where it is wrong and adapt again" (a painted slab whose held-back strokes read wrong).

The person follows it: on a copy of that slab (the recorded stores stay as they were), ``--per-class`` strokes per
class painted over the mistakes the adapted labels show (``bigseg.synth.strokes.simulate_corrections``, mistakes seen
anywhere: benchmarks/adapt.py's corrective second round), then ``bigseg adapt COPY --model ADAPTED`` for ``--steps``
steps with the run's own options; the followed model measured on that slab (its painted pixels left out of IoU) and on
the run's other slab, with ``--tta flip4``, and the report's warning read again. It reads the truth: development and
validation slabs only.

    python benchmarks/adapt_follow.py RUN.json:sibling [RUN.json:painted ...] --work benchmarks/work/adapt-random \
        --out benchmarks/logs/adapt-follow-2026-12-05
    ... --with-adapted-on     # a sibling adapted on together with the slab the model was adapted on
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from adapt import measured, paint  # noqa: E402  (benchmarks/adapt.py)
from outline_shift import model_path  # noqa: E402  (benchmarks/outline_shift.py)

from bigseg import annotations as ann  # noqa: E402
from bigseg import store as st  # noqa: E402
from bigseg.report.report import make_report  # noqa: E402
from bigseg.train.adapt import adapt  # noqa: E402
from bigseg.train.adapt_options import AdaptOptions  # noqa: E402


def warning(store: Path, out: Path) -> str:
    """The report's low-confidence line for ``store``'s labels ('' when it warns of nothing)."""
    doc = make_report(str(store), str(out), overwrite=True, echo=lambda *a: None)
    return next((w for w in doc.get("warnings", []) if "low confidence" in w), "")


def follow(spec: str, work: Path, out: Path, per_class: int, steps: int, with_adapted_on: bool = False) -> dict:
    path, slab = spec.rsplit(":", 1)
    run = json.loads(Path(path).read_text())
    adapted = model_path(run, work)
    stores = {"painted": work / f"{run['style']}-{run['seed']}.zarr",
              "sibling": work / f"{run['style']}-{run['seed'] + 1}.zarr"}
    other = "sibling" if slab == "painted" else "painted"
    copy = out / f"{stores[slab].stem}-followed{'-both' if with_adapted_on else ''}.zarr"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(stores[slab], copy)
    row: dict = {"run": path, "slab": slab, "per_class": per_class, "steps": steps, "with_adapted_on": with_adapted_on}
    row["before"] = {slab: measured(copy, str(adapted), slab == "painted", "flip4")}
    row["warning_before"] = warning(copy, out / f"{copy.stem}-report-before")
    if slab == "sibling":
        for name in (ann.LAYER, ann.PYRAMID):
            shutil.rmtree(copy / name, ignore_errors=True)
        st.consolidate(copy)
    measured(copy, str(adapted), False)  # the labels the person looks at (no tta, as infer's default)
    row["strokes"] = paint(copy, per_class, run["stroke_seed"] + 2, labels=True)
    opts = AdaptOptions(**{**run["options"], "steps": steps})
    followed = out / f"{copy.stem}.pt"
    train = [str(copy)] + ([str(stores["painted"])] if with_adapted_on and slab == "sibling" else [])
    r = adapt(train, followed, base=str(adapted), options=opts, overwrite=True, progress=False)
    row["adapt"] = {"seconds": r.seconds, "steps": r.steps, "stopped": r.stopped,
                    "held_back_accuracy": r.held_back_accuracy, "object_rule": r.object_rule}
    row["after"] = {slab: measured(copy, str(followed), True, "flip4"),
                    other: measured(stores[other], str(followed), other == "painted", "flip4")}
    row["warning_after"] = warning(copy, out / f"{copy.stem}-report-after")
    row["other_before"] = run["adapted_tta"][other]
    return row


def line(name: str, m: dict) -> str:
    return (f"{name}: stone IoU {m['iou']['stone']:.3f}, void IoU {m['iou']['void']:.3f}, air "
            f"{m['air_error_points']:+.2f}, sf {100 * m['spacing_factor_error']:+.1f} %")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="RUN.json:painted|sibling")
    ap.add_argument("--work", default=str(ROOT / "work" / "adapt"))
    ap.add_argument("--out", default=str(ROOT / "out" / "adapt-follow"))
    ap.add_argument("--per-class", type=int, default=20)
    ap.add_argument("--steps", type=int, default=1350)
    ap.add_argument("--with-adapted-on", action="store_true",
                    help="adapt on the slab the model was adapted on too (bigseg adapt PAINTED COPY --model ADAPTED)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for spec in a.runs:
        row = follow(spec, Path(a.work), out, a.per_class, a.steps, a.with_adapted_on)
        name = Path(row["run"]).name.split("-40-")[0] + f"-{row['slab']}" + ("-both" if a.with_adapted_on else "")
        (out / f"{name}.json").write_text(json.dumps(row, indent=2))
        other = "sibling" if row["slab"] == "painted" else "painted"
        print(f"== {name}\n  " + line("before", row["before"][row["slab"]]) + f"\n  warning: {row['warning_before']}"
              + "\n  " + line("after", row["after"][row["slab"]]) + f"\n  warning: {row['warning_after'] or 'none'}"
              + "\n  " + line(f"{other} before", row["other_before"]) + "\n  "
              + line(f"{other} after", row["after"][other]), flush=True)


if __name__ == "__main__":
    main()
