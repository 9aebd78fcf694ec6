"""A measurement: two adapted models of one hand (two ``--seed``s of ``bigseg adapt``), their probabilities averaged.

The same strokes adapted with another seed read air content 0.4-1.4 points differently on development slabs
(benchmarks/RESULTS.md, "The spread that training itself adds"), and averaging the two models' *weights* did not
narrow it. Averaging their *predictions* is the other way to use two seeds. For each pair of recorded runs of one
hand (the same stroke seed, two adapt seeds; their round-two strokes follow each seed's own round-one labels, so
the pair is a proxy for two seeds on identical strokes), both slabs: the two models' class probabilities under
``--tta flip4`` (cached by ``benchmarks/outline_shift.py``) averaged and labelled, then, like each member, with no
rule and with the rule pass as built (cut, rule, growth; the ensemble takes the first member's rule), measured as
``benchmarks/adapt.py`` measures, beside each member alone (the ensemble also with the second member's rule: which
rule it takes matters as much as the averaging).

    python benchmarks/seed_ensemble.py logs/adapt-2026-12-04c/crushed-*s11run11gone.json:...s11run21gone.json ...
    python benchmarks/seed_ensemble.py --summary F.jsonl

Development slabs only: it reads the truth.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from grey_split import summary  # benchmarks/grey_split.py: the cells table per variant
from outline_shift import HERE, append_jsonl, figures, model_path, probabilities  # benchmarks/outline_shift.py
from void_bias import rule_of  # benchmarks/void_bias.py: the rule an adapted checkpoint carries

from bigseg import object_rule as orule
from bigseg import store as st
from bigseg.annotations import LAYER, NONE, has_layer
from bigseg.report.report import analyse


def labels_of(prob: np.ndarray) -> np.ndarray:
    """Labels from (C, H, W) uint8 probabilities, as the replays make them."""
    return np.log(prob.astype(np.float32) + 0.5).argmax(0).astype(np.uint8)


def run_pair(paths: list[Path], work: Path, cache: Path) -> dict:
    runs = [json.loads(p.read_text()) for p in paths]
    models = [model_path(r, work) for r in runs]
    rules = [rule_of(m) for m in models]
    style, seed = runs[0]["style"], runs[0]["seed"]
    tag = f"{style} hand {runs[0]['stroke_seed']} seeds " + "+".join(str(r["adapt_seed"]) for r in runs)
    out: dict = {"pair": [str(p) for p in paths], "style": style, "slabs": {}}
    for slab in ("painted", "sibling"):
        store = work / f"{style}-{seed + (slab == 'sibling')}.zarr"
        group = st.open_store(store)
        classes, px = st.class_table(group), st.pixel_size_um(group)
        probs = [probabilities(m, store, "flip4", cache) for m in models]
        image = np.asarray(st.open_array(store, "image")[:])
        truth = np.asarray(st.open_array(store, "truth")[:])
        skip = (np.asarray(st.open_array(store, LAYER)[:]) != NONE) if slab == "painted" and has_layer(store) \
            else None
        mean = np.mean([p.astype(np.float32) for p in probs], axis=0)
        nets = {f"member {k + 1}": labels_of(p) for k, p in enumerate(probs)}
        nets["ensemble"] = np.log(mean + 0.5).argmax(0).astype(np.uint8)
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / store.name
            shutil.copytree(store, copy)
            true = analyse(str(copy), "truth", classes, px, 1.0, 1.0)["parameters"]
            for name, lab in nets.items():
                rows.append({"variant": f"{name}, no rule", **figures(copy, lab, truth, true, skip, classes, px)})
                # a member with its own rule; the ensemble with each member's rule in turn
                own = [(int(name[-1]) - 1, "")] if name.startswith("member") else \
                    [(0, ""), (1, " (member 2's rule)")]
                for k, suffix in own:
                    if rules[k] is None:
                        continue
                    both = dataclasses.replace(rules[k], cut_merged=True, grow_edges=True)
                    ruled = orule.judge(both, lab, image)[0]
                    rows.append({"variant": f"{name}, as built{suffix}",
                                 **figures(copy, ruled, truth, true, skip, classes, px)})
        for row in rows:
            print(f"{tag} {slab}: {row['variant']}: void IoU {row['void_iou']:.3f}, air {row['air_error']:+.2f}, sf "
                  f"{100 * row['sf_error']:+.1f} %", flush=True)
        out["slabs"][slab] = rows
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs", nargs="*", help="RUN_A.json:RUN_B.json (one hand, two adapt seeds)")
    ap.add_argument("--work", default=str(HERE / "work" / "adapt"))
    ap.add_argument("--cache", default=str(HERE / "work" / "outline-shift"))
    ap.add_argument("--json")
    ap.add_argument("--summary")
    a = ap.parse_args(argv)
    if a.summary:
        summary(a.summary, unit="pairs")
        return
    for pair in a.pairs:
        append_jsonl(a.json, run_pair([Path(p) for p in pair.split(":")], Path(a.work), Path(a.cache)))


if __name__ == "__main__":
    main()
