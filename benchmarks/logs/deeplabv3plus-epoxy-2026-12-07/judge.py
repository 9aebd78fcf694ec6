"""The shipping rule's first two parts for the candidates named: python judge.py LOGDIR NAME... -- prints each
candidate's classic stone / void IoU (100 / 101, pooled) and validation median abs air, and last line the name of
the candidate that passes both with the lower median (or "none")."""
import json
import re
import statistics
import sys
from pathlib import Path

logdir, names = Path(sys.argv[1]), sys.argv[2:]
passing = []
for name in names:
    d = json.loads((logdir / f"classic-{name}.json").read_text())
    (model,) = d["models"].values()
    iou = model["styles"]["classic"]["iou"]
    pairs = re.findall(r"air ([\d.]+) % vs truth ([\d.]+) %", (logdir / f"calibrate-{name}.log").read_text())
    errs = [float(a) - float(t) for a, t in pairs]
    median = statistics.median(abs(e) for e in errs)
    ok = iou["stone"] >= 0.85 and iou["void"] >= 0.85 and len(errs) == 16 and median <= 1.48
    print(f"{name}: classic stone {iou['stone']:.3f} void {iou['void']:.3f}; validation median |air error| "
          f"{median:.2f} over {len(errs)} slabs ({' '.join(f'{e:+.2f}' for e in errs)}): {'pass' if ok else 'fail'}")
    if ok:
        passing.append((median, name))
print(min(passing)[1] if passing else "none")
