"""Which windows "where to paint next" lists, and how much of a model's void mistakes they hold (issue #28).

For each (store, model) pair -- a slab with its truth and, e.g., the first-round model of a recorded
``benchmarks/adapt.py --protocol suggested`` run -- every window of the grid that ``bigseg adapt`` ranks is scored
both ways (every class's doubt; the doubt about voids) and read against the truth: the false-void and missed-void
pixels of the network's labels in it. Printed per ranking: the void mistakes inside the five windows it lists, and
its Spearman with the windows' void mistakes; the oracle's five (ranked by the mistakes themselves) for scale.
The labels are the network's arg-max without the object rule or flips -- a proxy for what a person sees.

    python benchmarks/suggest_rank.py STORE MODEL [STORE MODEL ...]
"""

from __future__ import annotations

import argparse

import numpy as np

VOID = 2  # the concrete class table's void


def windows(store: str, model_path: str, size: int = 512) -> list[dict]:
    from bigseg import checkpoint as ckpt
    from bigseg import store as st
    from bigseg.train.suggest import window_doubt, window_origins

    model, _ = ckpt.load(model_path)
    model.eval()
    image = st.open_array(store, "image")
    truth = np.asarray(st.open_array(store, "truth")[:])
    found = []
    for y0, x0 in window_origins(*truth.shape, size):
        row, _, labels = window_doubt(model, np.asarray(image[y0 : y0 + size, x0 : x0 + size]), VOID)
        t = truth[y0 : y0 + size, x0 : x0 + size]
        fv, mv = int(((labels == VOID) & (t != VOID)).sum()), int(((labels != VOID) & (t == VOID)).sum())
        found.append({"x": x0, "y": y0, "width": size, "height": size, "all": row["score"],
                      "void": row["void_score"], "false_void": fv, "missed_void": mv, "void_mistakes": fv + mv})
    return found


def main() -> None:
    from scipy.stats import spearmanr

    from bigseg.train.suggest import best_windows

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pairs", nargs="+", help="STORE MODEL pairs")
    a = ap.parse_args()
    if len(a.pairs) % 2:
        ap.error("give STORE MODEL pairs")
    for store, model in zip(a.pairs[::2], a.pairs[1::2], strict=True):
        found = windows(store, model)
        fv, mv = sum(r["false_void"] for r in found), sum(r["missed_void"] for r in found)
        print(f"{store} {model}: {len(found)} windows, false void {fv} px, missed void {mv} px over them")
        for key, name in (("all", "every class's doubt"), ("void", "doubt about voids"),
                          ("void_mistakes", "oracle (the mistakes)")):
            ch = best_windows(found, 5, key)
            rho = spearmanr([r[key] for r in found], [r["void_mistakes"] for r in found])[0]
            print(f"  {name:22s}: five windows hold false void {sum(r['false_void'] for r in ch):6d} px, "
                  f"missed void {sum(r['missed_void'] for r in ch):6d} px; Spearman with void mistakes {rho:.2f}")


if __name__ == "__main__":
    main()
