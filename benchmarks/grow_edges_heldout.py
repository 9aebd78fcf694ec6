"""Held-out adapt runs read once more with the voids their object rule keeps grown to their edges.

    python benchmarks/grow_edges_heldout.py RECORD.json [RECORD.json ...] [--work benchmarks/work/adapt]

For each run ``benchmarks/adapt.py`` recorded (its JSON; the blind/corrective held-out runs, whose adapted model
``STYLE-SEED-PER-PROTOCOL-adapted.pt`` is still in the work folder) whose object rule was kept: a copy of the
adapted model whose rule also grows the voids it keeps (``grow_edges``, as ``bigseg adapt`` now writes it) runs
``bigseg infer`` with the run's ``--tta`` on copies of both slabs (the painted one keeps the run's strokes), and
the figures are printed beside the run's own. Runs without a kept rule are skipped: growth follows a rule.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from adapt import measured  # benchmarks/adapt.py: the adapt benchmark's own measure

from bigseg import checkpoint as ckpt


def growing_copy(model: Path, out: Path) -> None:
    """``model`` written to ``out`` with its object rule set to grow the voids it keeps."""
    net, meta = ckpt.load(model)
    meta = json.loads(json.dumps(meta))
    meta["adapted"]["object_rule"]["grow_edges"] = True
    extra = {k: v for k, v in meta.items() if k not in ("arch", "arch_kwargs", "classes", "stored_as")}
    ckpt.save(out, net, arch=meta["arch"], classes=ckpt.classes_of(meta), arch_kwargs=meta.get("arch_kwargs"),
              extra_meta=extra, half=meta.get("stored_as") == "float16")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", nargs="+")
    ap.add_argument("--work", default=str(Path(__file__).parent / "work" / "adapt"))
    ap.add_argument("--jsonl", help="append each run's figures here")
    a = ap.parse_args(argv)
    work = Path(a.work)
    for path in a.records:
        rec = json.loads(Path(path).read_text())
        style, seed = rec["style"], rec["seed"]
        if not (rec["adapt"]["object_rule"][-1] or {}).get("kept"):
            print(f"{style}: no rule kept, nothing grows (figures as recorded)", flush=True)
            continue
        model = work / f"{style}-{seed}-{rec['per_class']}-{rec['protocol']}-adapted.pt"
        tta = rec["adapted_tta"]["tta"]
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            grows = Path(tmp) / "grows.pt"
            growing_copy(model, grows)
            got = {}
            for which, s, painted in (("painted", seed, True), ("sibling", seed + 1, False)):
                copy = Path(tmp) / f"{style}-{s}.zarr"
                shutil.copytree(work / copy.name, copy)
                got[which] = measured(copy, str(grows), painted, tta)
                was = rec["adapted_tta"][which]
                now = got[which]
                print(f"{style} {which}: stone {was['iou']['stone']:.3f} -> {now['iou']['stone']:.3f}, void "
                      f"{was['iou']['void']:.3f} -> {now['iou']['void']:.3f}, air {was['air_error_points']:+.2f} -> "
                      f"{now['air_error_points']:+.2f}, spacing factor {100 * was['spacing_factor_error']:+.1f} -> "
                      f"{100 * now['spacing_factor_error']:+.1f} % (grown {now['object_rule'].get('grown_pixels')} px)",
                      flush=True)
        if a.jsonl:
            with open(a.jsonl, "a") as f:
                f.write(json.dumps({"record": path, "grown": got}, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
