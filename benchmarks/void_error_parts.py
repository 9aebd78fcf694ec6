"""Where an adapted model's void errors are: the air error taken apart into missed and false void pixels.

For each recorded adapt run (its JSON from ``benchmarks/adapt.py``), both slabs are labelled from the adapted model's
probabilities (``--tta flip4``, cached by ``benchmarks/outline_shift.py``) with its shift and object rule, as infer
labels them, and the void pixels are split, in points of the slab's area:

- missed: within 2 px of a true void's edge ("edges"), farther in ("inside"), or of true voids that no labelled void
  touches ("whole");
- false: within 3 px of a true void ("rim"); in a labelled void object that also holds a true void, farther than
  3 px from it ("merged"); in labelled void objects that hold no true void ("separate").

    python benchmarks/void_error_parts.py logs/adapt-2026-12-04c/*gone.json [--picture RUN.json:sibling:OUT.png]
    ... --built: labelled by the rule pass as built since 2026-12-04 (cut, rule, growth), not the rule on whole objects
    ... --bright: also the void brighter than the paste (deposits, fillings) apart from the rest

``--chords``: the spacing factor's side -- chords on rows and columns every 10 px (as a traverse reads them), true
against labelled: true chords no labelled chord touches (missed), labelled chords no true chord touches (false),
true chords cut in two or more (split), labelled chords over two or more true ones (merged), and the mean chord;
the spacing factor moves with the chord count n (l = A / n), so a slab whose count is off by a third is off in
spacing factor whatever its air.

``--picture RUN.json:SLAB:OUT.png[:missed|rim|separate]``: the six largest merged parts of one slab (or missed
void parts, false rims, false separate objects), each as image / truth edges (green) / label edges (red).
Development slabs only: it reads the truth.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from outline_shift import HERE, as_built, label, model_path, probabilities  # benchmarks/outline_shift.py
from scipy import ndimage
from void_bias import rule_of  # benchmarks/void_bias.py: the rule an adapted checkpoint carries

from bigseg import store as st
from bigseg.report.measure import _runs as row_runs  # the runs the report's chords are read from

EIGHT = np.ones((3, 3), bool)


def labelled(run: dict, slab: str, work: Path, cache: Path, built: bool = False
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, truth, labels) of one slab of ``run`` ("painted" or "sibling"); ``built``: the rule pass as infer
    runs it since 2026-12-04 (cut, rule, growth: ``object_rule.judge``) instead of the rule on whole objects."""
    model = model_path(run, work)
    rule = rule_of(model)
    store = work / f"{run['style']}-{run['seed'] + (slab == 'sibling')}.zarr"
    prob = probabilities(model, store, "flip4", cache)
    logp = np.log(prob.astype(np.float32) + 0.5)
    image = np.asarray(st.open_array(store, "image")[:])
    truth = np.asarray(st.open_array(store, "truth")[:])
    if built and rule is not None:
        return image, truth, as_built(rule, logp.argmax(0).astype(np.uint8), image)
    return image, truth, label(logp, 0.0, 2, rule, image if rule is not None else None)


def parts(truth: np.ndarray, labels: np.ndarray, void: int = 2) -> dict[str, np.ndarray]:
    """The masks of the missed and false void pixels, split as the module says."""
    t, lab = truth == void, labels == void
    missed = t & ~lab
    edge = t & ~ndimage.binary_erosion(t, iterations=2)
    ids, m = ndimage.label(t, structure=EIGHT)
    touched = np.bincount(ids[t & lab], minlength=m + 1) > 0
    false = lab & ~t
    rim = false & ndimage.binary_dilation(t, iterations=3)
    lids, lm = ndimage.label(lab, structure=EIGHT)
    holds = np.bincount(lids[lab & t], minlength=lm + 1) > 0
    whole = missed & ~touched[ids]
    return {"missed: edges": missed & edge & ~whole, "missed: inside": missed & ~edge & ~whole, "missed: whole": whole,
            "false: rim": rim,
            "false: merged": false & ~rim & holds[lids], "false: separate": false & ~holds[lids]}


def _runs(line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the runs of True in a 1-d boolean array (the report's chord runs)."""
    _, starts, ends = row_runs(line[None])
    return starts, ends


def _chords_over(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lengths of the runs of ``a`` and how many runs of ``b`` each holds (1-d boolean arrays)."""
    starts, ends = _runs(a)
    inside = np.array([len(_runs(b[s:e])[0]) for s, e in zip(starts, ends, strict=True)], int)
    return ends - starts, inside


def chord_parts(truth: np.ndarray, labels: np.ndarray, void: int = 2, step: int = 10) -> dict:
    """Void chords on every ``step``-th row and column, true against labelled: counts of each and of the missed,
    false, split and merged ones (as the module says), their total lengths (px) and the median missed and false
    chord length."""
    t, lab = truth == void, labels == void
    lines = [(t[r], lab[r]) for r in range(0, t.shape[0], step)] + [(t[:, c], lab[:, c])
                                                                      for c in range(0, t.shape[1], step)]
    true_len, true_in, lab_len, lab_in = [], [], [], []
    for a, b in lines:
        length, inside = _chords_over(a, b)
        true_len.append(length)
        true_in.append(inside)
        length, inside = _chords_over(b, a)
        lab_len.append(length)
        lab_in.append(inside)
    tl, ti, ll, li = (np.concatenate(x) for x in (true_len, true_in, lab_len, lab_in))
    missed, false = tl[ti == 0], ll[li == 0]
    return {"truth": len(tl), "labelled": len(ll), "missed": len(missed), "false": len(false),
            "split": int(np.maximum(ti - 1, 0).sum()), "merged": int(np.maximum(li - 1, 0).sum()),
            "true_px": int(tl.sum()), "labelled_px": int(ll.sum()),
            "missed_median_px": float(np.median(missed)) if len(missed) else 0.0,
            "false_median_px": float(np.median(false)) if len(false) else 0.0}


def chord_line(c: dict) -> str:
    """One line of :func:`chord_parts`."""
    return (f"chords: truth {c['truth']}, labelled {c['labelled']} ({c['labelled'] / max(c['truth'], 1) - 1:+.1%}) "
            f"= missed -{c['missed']} (median {c['missed_median_px']:.0f} px), false +{c['false']} (median "
            f"{c['false_median_px']:.0f} px), split +{c['split']}, merged -{c['merged']}; mean chord "
            f"{c['true_px'] / max(c['truth'], 1):.1f} -> {c['labelled_px'] / max(c['labelled'], 1):.1f} px")


def bright_split(image: np.ndarray, truth: np.ndarray, labels: np.ndarray, void: int = 2) -> str:
    """The true void brighter than the paste's median grey (a deposit or filling a person can see) against the rest:
    each one's share of the void and of it labelled void, and its missed pixels in points of the slab."""
    grey = image.mean(2)
    paste = float(np.median(grey[truth == 0]))
    t, lab = truth == void, labels == void
    bright = t & (grey > paste)
    n = truth.size

    def part(m: np.ndarray) -> str:
        return (f"{100 * m.sum() / max(t.sum(), 1):.0f} % of the void, {100 * (m & lab).sum() / max(m.sum(), 1):.0f} % "
                f"of it labelled void, missed {100 * (m & ~lab).sum() / n:.2f} points")

    return f"paste median grey {paste:.0f}; brighter: {part(bright)}; darker: {part(t & ~bright)}"


def picture(image: np.ndarray, truth: np.ndarray, labels: np.ndarray, out: str, n: int = 6, which: str = "merged"
            ) -> None:
    from PIL import Image

    chosen = (truth == 2) & (labels != 2) if which == "missed" else parts(truth, labels)[f"false: {which}"]
    ids, _ = ndimage.label(chosen, structure=EIGHT)
    area = np.bincount(ids.ravel())[1:]
    tiles = []
    for k in np.argsort(area)[::-1][:n]:
        cy, cx = (int(v) for v in ndimage.center_of_mass(ids == k + 1))
        y0, x0 = max(0, cy - 40), max(0, cx - 40)
        box = (slice(y0, y0 + 80), slice(x0, x0 + 80))
        views = []
        for mask, colour in ((None, None), (truth[box] == 2, (0, 255, 0)), (labels[box] == 2, (255, 0, 0))):
            im = image[box].copy()
            pad = ((0, 80 - im.shape[0]), (0, 80 - im.shape[1]))  # a part near the slab's edge
            im = np.pad(im, (*pad, (0, 0)))
            if mask is not None:
                mask = np.pad(mask, pad)
                im[mask & ~ndimage.binary_erosion(mask)] = colour
            views.append(im)
        tiles.append(np.concatenate(views, 1))
    big = np.concatenate(tiles, 0)
    Image.fromarray(big).resize((big.shape[1] * 3, big.shape[0] * 3), Image.NEAREST).save(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*")
    ap.add_argument("--work", default=str(HERE / "work" / "adapt"))
    ap.add_argument("--cache", default=str(HERE / "work" / "outline-shift"))
    ap.add_argument("--picture", help="RUN.json:painted|sibling:OUT.png[:missed|rim|separate]")
    ap.add_argument("--built", action="store_true", help="the rule pass as built: cut, rule, growth")
    ap.add_argument("--bright", action="store_true", help="also: how much of the true void is brighter than the "
                    "paste's median grey (deposits, fillings), and the share of it and of the rest labelled void")
    ap.add_argument("--chords", action="store_true", help="also: the void chords on rows and columns every 10 px, "
                    "true against labelled (missed, false, split, merged; the mean chord)")
    a = ap.parse_args(argv)
    work, cache = Path(a.work), Path(a.cache)
    if a.picture:
        path, slab, out, *which = a.picture.split(":")
        picture(*labelled(json.loads(Path(path).read_text()), slab, work, cache, a.built), out,
                which=which[0] if which else "merged")
        return
    for path in a.runs:
        run = json.loads(Path(path).read_text())
        for slab in ("painted", "sibling"):
            image, truth, labels = labelled(run, slab, work, cache, a.built)
            n = truth.size
            t = 100 * (truth == 2).sum() / n
            split = {k: 100 * v.sum() / n for k, v in parts(truth, labels).items()}
            error = 100 * (labels == 2).sum() / n - t
            print(f"{run['style']} hand {run['stroke_seed']} seed {run['adapt_seed']} {slab}: truth {t:.2f} %, "
                  f"void area error {error:+.2f} points = "
                  + ", ".join(f"{k} {(-v if k.startswith('missed') else v):+.2f}" for k, v in split.items()),
                  flush=True)
            if a.bright:
                print("    " + bright_split(image, truth, labels), flush=True)
            if a.chords:
                print("    " + chord_line(chord_parts(truth, labels)), flush=True)


if __name__ == "__main__":
    main()
