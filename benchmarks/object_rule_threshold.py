"""How an adapted model's void-object rule moves the figures at other thresholds than bigseg's (REJECT_BELOW).

Reads each store's labels as the network gave them (run ``bigseg infer STORE --model M --no-object-rule`` first;
benchmarks/adapt.py leaves them so when the model kept a rule: its last measurement is the --no-object-rule one),
applies the model's rule to the whole slab at each threshold (what ``infer`` writes, for any chunking), and prints
void IoU (off the painted pixels), air content error and spacing factor error against the store's truth. The
stores are copied; nothing in them changes.

    python benchmarks/object_rule_threshold.py MODEL.pt STORE.zarr [STORE.zarr ...] --thresholds 0.5 0.25
    python benchmarks/object_rule_threshold.py MODEL.pt STORES --floors 15 30 60   # objects under N px not judged
    python benchmarks/object_rule_threshold.py MODEL.pt STORES --by-size           # what it relabels, by area
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
from void_bias import figures  # benchmarks/void_bias.py: labels measured as benchmarks/adapt.py does

from bigseg import checkpoint
from bigseg import object_rule as orule
from bigseg import store as st
from bigseg.report.report import analyse


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("stores", nargs="+")
    ap.add_argument("--thresholds", nargs="+", type=float, default=[0.5, orule.REJECT_BELOW])
    ap.add_argument("--floors", nargs="*", type=int, default=[],
                    help="also: bigseg's threshold with objects under this many px left unjudged")
    ap.add_argument("--by-size", action="store_true",
                    help="also: per area bin, the true voids and false objects the rule relabels")
    a = ap.parse_args(argv)
    rule = orule.ObjectRule.from_dict(checkpoint.read(a.model)["meta"]["adapted"]["object_rule"])
    print(f"rule: {rule}")
    for store in a.stores:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / Path(store).name
            shutil.copytree(store, copy)
            labels = np.asarray(st.open_array(copy, "labels")[:])
            image = np.asarray(st.open_array(copy, "image")[:])
            group = st.open_store(copy)
            classes, px = st.class_table(group), st.pixel_size_um(group)
            true = analyse(str(copy), "truth", classes, px, 1.0, 1.0)["parameters"]
            found = orule.find(labels, image, rule.void)  # the network's void objects: the same at every threshold
            for thr in [None, *a.thresholds]:
                if thr is None:
                    out = labels
                else:  # the same rule with its odds moved so that P(void) = thr sits where REJECT_BELOW did
                    shift = math.log(thr / (1 - thr)) - math.log(orule.REJECT_BELOW / (1 - orule.REJECT_BELOW))
                    out = orule.apply(dataclasses.replace(rule, bias=rule.bias - shift), labels, image, found)[0]
                f = figures(copy, out, true, classes, px)
                print(f"{Path(store).name} threshold {'none' if thr is None else thr}: void IoU "
                      f"{f['void_iou']:.3f}, air error {f['air_error']:+.2f} points, spacing factor "
                      f"{100 * f['sf_error']:+.1f} %")
            area = np.bincount(found.ids.ravel(), minlength=found.n + 1)[1:]
            for floor in a.floors:
                unjudged = dataclasses.replace(found, on_border=found.on_border | (area < floor))
                f = figures(copy, orule.apply(rule, labels, image, objects=unjudged)[0], true, classes, px)
                print(f"{Path(store).name} objects under {floor} px not judged: void IoU {f['void_iou']:.3f}, air "
                      f"error {f['air_error']:+.2f} points, spacing factor {100 * f['sf_error']:+.1f} %")
            if a.by_size:
                by_size(found, area, orule.rejected(rule, found), np.asarray(st.open_array(copy, "truth")[:]),
                        rule.void)


def by_size(found, area: np.ndarray, dropped: np.ndarray, truth: np.ndarray, void: int) -> None:
    """Per area bin: judged objects, how many are true voids (half their pixels void in truth or more), and how many
    true voids and false objects the rule relabels."""
    true_void = np.bincount(found.ids[truth == void], minlength=found.n + 1)[1:] * 2 >= area
    judged = found.judged()
    for lo, hi in ((0, 30), (30, 100), (100, 300), (300, 1000), (1000, None)):
        m = (area >= lo) & (area < (hi or np.inf)) & judged
        d = m & dropped
        print(f"  objects of {lo}-{hi or ''} px: {m.sum()} judged ({(m & true_void).sum()} true voids); relabelled "
              f"{(d & true_void).sum()} true voids ({area[d & true_void].sum()} px) and {(d & ~true_void).sum()} "
              f"false objects ({area[d & ~true_void].sum()} px); false objects left {(m & ~true_void & ~d).sum()}")


if __name__ == "__main__":
    main()
