"""The held-out veto's figures from the per-slab lines of generalization.py logs: python veto.py LOG... -- per style
(4 slabs) mean stone / void IoU, mean signed air error, flagged; over all slabs the mean void IoU and mean absolute
air error the veto compares with the bundled's 0.557 / 1.47."""
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

rows = [json.loads(line) for path in sys.argv[1:] for line in Path(path).read_text().splitlines()
        if line.startswith("{")]
by = defaultdict(list)
for r in rows:
    by[r["style"]].append(r)
for style, rs in by.items():
    air = statistics.mean(r["air"] - r["air_truth"] for r in rs)
    print(f"{style:20s} stone {statistics.mean(r['iou']['stone'] for r in rs):.3f} void "
          f"{statistics.mean(r['iou']['void'] for r in rs):.3f} air {air:+.2f} "
          f"flagged {sum(r['flag'] for r in rs)}/{len(rs)}")
void = statistics.mean(r["iou"]["void"] for r in rows)
air = statistics.mean(abs(r["air"] - r["air_truth"]) for r in rows)
missed = sum(not r["flag"] and abs(r["air"] - r["air_truth"]) > 0.5 for r in rows)
print(f"all {len(rows)}: mean void IoU {void:.3f} (veto: >= 0.557), mean abs air {air:.2f} (veto: <= 1.47), "
      f"flagged {sum(r['flag'] for r in rows)}, more than 0.5 points off unflagged {missed}: "
      f"{'passes' if len(rows) == 32 and void >= 0.557 and air <= 1.47 else 'fails'}")
