"""The median absolute air error (points) of each calibrate log given: python median.py LOG..."""
import re
import statistics
import sys
from pathlib import Path

for path in sys.argv[1:]:
    pairs = [(float(a), float(t)) for a, t in re.findall(r"air ([\d.]+) % vs truth ([\d.]+) %", Path(path).read_text())]
    errs = [a - t for a, t in pairs]
    print(f"{path}: {len(errs)} slabs, median |air error| {statistics.median(abs(e) for e in errs):.2f} points; "
          + " ".join(f"{e:+.2f}" for e in errs))
