"""Where a store's void errors are: false void pixels near a true void (a boundary) or far from any (a whole
object of another class called void), missed void pixels at a void's edge or inside it, and the same by objects.

    python benchmarks/void_errors.py STORE [STORE...]      # stores with labels and truth (concrete classes)

Reads the whole label and truth masks: for benchmark slabs (a few megapixels), not for gigapixel stores.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bigseg import store as st  # noqa: E402

VOID = 2


def void_errors(store: str) -> dict:
    labels = np.asarray(st.open_array(store, "labels")[:])
    truth = np.asarray(st.open_array(store, "truth")[:])
    true_void, said_void = truth == VOID, labels == VOID
    to_void = ndimage.distance_transform_edt(~true_void)  # outside voids: distance to the nearest void pixel
    to_edge = ndimage.distance_transform_edt(true_void)  # inside voids: distance to the void's edge
    false, missed = said_void & ~true_void, true_void & ~said_void
    objects, n_true = ndimage.label(true_void)
    found = np.bincount(objects.ravel(), weights=said_void.ravel())[1:] / np.bincount(objects.ravel())[1:]
    said, n_said = ndimage.label(said_void)
    sizes = np.bincount(said.ravel())[1:]
    real = np.bincount(said.ravel(), weights=true_void.ravel())[1:] / np.maximum(sizes, 1)
    return {
        "store": str(store), "void_iou": float((true_void & said_void).sum() / (true_void | said_void).sum()),
        "true_void_px": int(true_void.sum()), "labelled_void_px": int(said_void.sum()),
        "false_void_px": int(false.sum()), "false_far_share": float(np.mean(to_void[false] > 6)),
        "false_on_paste_px": int((false & (truth == 0)).sum()), "false_on_stone_px": int((false & (truth == 1)).sum()),
        "missed_void_px": int(missed.sum()), "missed_at_edge_share": float(np.mean(to_edge[missed] <= 2)),
        "missed_called_paste_px": int((missed & (labels == 0)).sum()),
        "true_voids": int(n_true), "true_voids_half_found": float(np.mean(found > 0.5)),
        "false_void_objects": int(np.sum(real < 0.1)), "false_void_object_px": int(sizes[real < 0.1].sum()),
        "false_void_object_median_px": float(np.median(sizes[real < 0.1])) if np.any(real < 0.1) else 0.0,
        "labelled_void_objects": int(n_said),
    }


def main(argv=None) -> None:
    for store in argv if argv is not None else sys.argv[1:]:
        r = void_errors(store)
        print(f"{Path(store).name}: void IoU {r['void_iou']:.3f}; true {r['true_void_px']} px, labelled "
              f"{r['labelled_void_px']} px")
        print(f"  false void {r['false_void_px']} px: {100 * r['false_far_share']:.0f} % more than 6 px from any "
              f"true void ({r['false_on_paste_px']} px on paste, {r['false_on_stone_px']} on stone)")
        print(f"  missed void {r['missed_void_px']} px: {100 * r['missed_at_edge_share']:.0f} % within 2 px of a "
              f"void's edge ({r['missed_called_paste_px']} px called paste)")
        print(f"  {r['true_voids']} true voids, {100 * r['true_voids_half_found']:.0f} % more than half found; "
              f"{r['false_void_objects']} false void objects ({r['false_void_object_px']} px, median "
              f"{r['false_void_object_median_px']:.0f} px) of {r['labelled_void_objects']} labelled")


if __name__ == "__main__":
    main()
