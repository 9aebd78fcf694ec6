"""How an adapted model's void-object rule moves the figures at other thresholds than bigseg's (REJECT_BELOW).

Reads each store's labels as the network gave them (run ``bigseg infer STORE --model M --no-object-rule`` first;
benchmarks/adapt.py leaves them so when the model kept a rule: its last measurement is the --no-object-rule one),
applies the model's rule to the whole slab at each threshold (what ``infer`` writes, for any chunking), and prints
void IoU (off the painted pixels), air content error and spacing factor error against the store's truth. The
stores are copied; nothing in them changes.

    python benchmarks/object_rule_threshold.py MODEL.pt STORE.zarr [STORE.zarr ...] --thresholds 0.5 0.25
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
            for thr in [None, *a.thresholds]:
                if thr is None:
                    out = labels
                else:  # the same rule with its odds moved so that P(void) = thr sits where REJECT_BELOW did
                    shift = math.log(thr / (1 - thr)) - math.log(orule.REJECT_BELOW / (1 - orule.REJECT_BELOW))
                    out = orule.apply(dataclasses.replace(rule, bias=rule.bias - shift), labels, image)[0]
                f = figures(copy, out, true, classes, px)
                print(f"{Path(store).name} threshold {'none' if thr is None else thr}: void IoU "
                      f"{f['void_iou']:.3f}, air error {f['air_error']:+.2f} points, spacing factor "
                      f"{100 * f['sf_error']:+.1f} %")


if __name__ == "__main__":
    main()
