"""bigseg adapt, measured: strokes simulated from an exact truth mask the way a person paints, adapt, infer, and
the figures on the unpainted rest of the painted slab and on a sibling slab of the same style (another seed).

For each style: a painted slab (seed S) and its sibling (seed S + 1), 3000 x 2000 px, written as the JPEG a lab
would have and ingested with their truth; the base model measured on both; ``--per-class`` strokes per class
painted on the first (bigseg.synth.strokes, through the viewer's own write path); ``bigseg adapt --minutes M``;
the adapted model measured on both. Air content and spacing factor are the whole slab's (as a report gives
them, one 1 mm traverse grid); IoU on the painted slab leaves its painted pixels out.

    python benchmarks/adapt.py --styles gravel crushed contrast             # development styles
    python benchmarks/adapt.py --held-out                                    # the final table (held-out styles)
    python benchmarks/adapt.py --styles crushed --sweep 10 20 40 80          # figures against strokes per class
    python benchmarks/adapt.py --protocol corrective                         # paint, look, correct, adapt again
    python benchmarks/adapt.py --styles crushed --stroke-seed 11             # other strokes: the spread between runs
    python benchmarks/adapt.py --styles crushed --stroke-seed 11 --adapt-seed 21   # the same strokes, trained again

Protocols: ``blind`` paints every stroke at once, at random places inside each class (a person who paints
before seeing any result); ``corrective`` paints half of them so, adapts for half the budget, infers the slab,
then paints the other half over the mistakes the adapted labels show (bigseg.synth.strokes.simulate_corrections:
what a person does in the viewer) and adapts again from the first round's model for the other half of the budget
(the held-back strokes of the first round stay held back: the split hashes each stroke's position);
``suggested`` is ``corrective`` with the second round's strokes painted only inside the regions the first round's
``bigseg adapt`` listed as where to paint next (a person who cannot look over a whole gigapixel slab and follows
the viewer's list): what the list is worth, against ``corrective``'s mistakes seen everywhere.

Development styles are named styles no training config uses (gravel, crushed, contrast); the held-out styles
(bigseg.synth.styles.HELD_OUT) are run only for the final table, with the options chosen on the development
styles. Results: benchmarks/out/adapt/*.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from bigseg import annotations as ann  # noqa: E402
from bigseg import store as st  # noqa: E402
from bigseg.ingest import ingest  # noqa: E402
from bigseg.synth import SynthParams, synthesize  # noqa: E402
from bigseg.synth.strokes import simulate_corrections, simulate_dabs, simulate_strokes  # noqa: E402
from bigseg.train.adapt import adapt  # noqa: E402
from bigseg.train.adapt_options import COLOUR_PRIORS, EDGE_RULES, AdaptOptions  # noqa: E402
from bigseg.trust import measure_slab  # noqa: E402

VOID = 2  # the concrete class table's void

DEV_STYLES = ("gravel", "crushed", "contrast")
TARGETS = {"stone_iou": 0.90, "void_iou": 0.85, "air_points": 0.3, "spacing_factor": 0.10, "minutes": 10}


def make_slab(work: Path, style: str, seed: int, size: tuple[int, int]) -> Path:
    store = work / f"{style}-{seed}.zarr"
    if store.exists():
        return store
    params = SynthParams(size[0], size[1], seed=seed, style=style)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        s = synthesize(Path(tmp) / "slab.jpg", params)
        ingest(s["image"], store, truth=s["truth"], pixel_size=s["pixel_size_um"])
    return store


def iou_outside_strokes(store: Path, n: int) -> dict:
    """Per-class IoU of labels against truth on the pixels nobody painted."""
    from bigseg.metrics import confusion, scores

    labels = np.asarray(st.open_array(store, "labels")[:])
    truth = np.asarray(st.open_array(store, "truth")[:]).copy()
    if ann.has_layer(store):
        truth[np.asarray(st.open_array(store, ann.LAYER)[:]) != ann.NONE] = 255
    cm = confusion(truth, labels, n, 255)
    return scores(cm, ["paste", "stone", "void"][:n])["iou"]


def measured(store: Path, model: str | None, painted: bool, tta: str = "none", object_rule: bool = True,
             backend: str | None = None) -> dict:
    m = measure_slab(store, model, tta=tta, object_rule=object_rule, backend=backend)
    iou = iou_outside_strokes(store, 3) if painted else m["iou"]
    return {"iou": iou, "air": m["air_content"], "air_truth": m["air_content_truth"],
            "air_error_points": m["air_error_points"], "spacing_factor": m["spacing_factor"],
            "spacing_factor_truth": m["spacing_factor_truth"], "spacing_factor_error": m["spacing_factor_error"],
            "entrapped": None, "object_rule": m["object_rule"]}


def paint(store: Path, per_class: int, seed: int, labels: bool = False, within: list | None = None,
          dabs: int = 0) -> dict:
    """Simulated strokes into the store: blind ones, or (``labels``) over the mistakes of its current labels --
    only inside the regions ``within`` (x, y, width, height) where given; with ``dabs``, up to that many of the
    void strokes are dabs on small voids the labels miss instead (``simulate_dabs``)."""
    truth = np.asarray(st.open_array(store, "truth")[:])
    rng = np.random.default_rng(seed)
    if labels:
        seen = truth
        if within is not None:  # the person looks only where the list points: the rest is no class to them
            seen = np.full_like(truth, 255)
            for r in within:
                box = (slice(r["y"], r["y"] + r["height"]), slice(r["x"], r["x"] + r["width"]))
                seen[box] = truth[box]
        current = np.asarray(st.open_array(store, "labels")[:])
        strokes = simulate_corrections(seen, current, 3, per_class, rng)
        if dabs:  # their own draw: the strokes kept are the same hand's as without dabs
            dabbed = simulate_dabs(seen, current, VOID, dabs, np.random.default_rng(seed + 2000))
            voids = [k for k, x in enumerate(strokes) if x.class_id == VOID]
            drop = set(voids[max(0, len(voids) - len(dabbed)):])  # the last void strokes, as many as there are dabs
            strokes = [x for k, x in enumerate(strokes) if k not in drop] + dabbed
    else:
        strokes = simulate_strokes(truth, 3, per_class, rng)
    for s in strokes:
        ann.paint(store, s, source="benchmarks/adapt.py (simulated strokes)")
    summary = ann.summary(store)
    summary["share_of_pixels"] = sum(summary["painted"].values()) / truth.size
    return summary


def pick_voids(truth: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, list, np.ndarray]:
    """(component ids of the true voids, their boxes, ``n`` of them drawn with ``seed``): voids of 30 to 3000 px
    more than 3 px from the border, the ones a person could outline whole."""
    from scipy import ndimage

    ids, m = ndimage.label(truth == 2, structure=np.ones((3, 3)))
    area = np.bincount(ids.ravel(), minlength=m + 1)
    boxes = ndimage.find_objects(ids)
    h, w = truth.shape
    fit = [k for k in range(1, m + 1) if 30 <= area[k] <= 3000 and boxes[k - 1][0].start > 3
           and boxes[k - 1][1].start > 3 and boxes[k - 1][0].stop < h - 3 and boxes[k - 1][1].stop < w - 3]
    return ids, boxes, np.random.default_rng(seed).choice(fit, size=min(n, len(fit)), replace=False)


def outline(store: Path, n: int, seed: int) -> int:
    """An experiment: ``n`` whole voids painted as a person would outline them -- every pixel of a true void (30 to
    3000 px, not on the border) painted void and the 2 px around it painted as the truth there (paste or stone): the
    only strokes that show adapt where a void's edge lies. Returns the pixels painted."""
    from scipy import ndimage

    truth = np.asarray(st.open_array(store, "truth")[:])
    ids, boxes, chosen = pick_voids(truth, n, seed)
    ann.ensure_layer(store, "benchmarks/adapt.py (simulated outlines)")
    painted = 0
    for k in chosen:
        ys, xs = boxes[k - 1]
        box = (ys.start - 3, ys.stop + 3, xs.start - 3, xs.stop + 3)
        void = ids[box[0]:box[1], box[2]:box[3]] == k
        ring = ndimage.binary_dilation(void, iterations=2) & ~void
        values = np.where(void, 2, np.where(ring, truth[box[0]:box[1], box[2]:box[3]], 255)).astype(np.uint8).ravel()

        def select(flat, values=values):
            where = np.flatnonzero((values != 255) & (flat != values)).astype(np.int32)
            return where, values[where]

        with ann.write_lock(store):  # (the annotations' own region write; the viewer has no outline tool yet)
            where, _ = ann._rewrite(store, box, select, "outline (void, {n} px)",
                                    "benchmarks/adapt.py (simulated outlines)", 1)
        painted += int(where.size)
    return painted


def run_style(work: Path, style: str, seed: int, size, per_class: int, opts: AdaptOptions, protocol: str = "blind",
              echo=print, tta: str = "none", base: str | None = None, stroke_seed: int | None = None,
              adapt_seed: int | None = None, outlines: int = 0, dabs: int = 0) -> dict:
    import dataclasses
    import shutil

    painted = make_slab(work, style, seed, size)
    sibling = make_slab(work, style, seed + 1, size)
    strokes_from = seed if stroke_seed is None else stroke_seed  # the slabs stay; the person's strokes change
    row: dict = {"style": style, "seed": seed, "stroke_seed": strokes_from, "size": list(size), "per_class": per_class,
                 "adapt_seed": opts.seed, "protocol": protocol, "options": opts.__dict__,
                 "base_model": base or "bundled", "outlines": outlines}
    row["base"] = {"painted": measured(painted, base, False), "sibling": measured(sibling, base, False)}
    for name in (ann.LAYER, ann.PYRAMID):  # a store reused from an earlier run: paint afresh
        shutil.rmtree(painted / name, ignore_errors=True)
    st.consolidate(painted)
    hand = "" if stroke_seed is None else f"-strokes{stroke_seed}"
    hand += "" if adapt_seed is None else f"-run{adapt_seed}"
    hand += f"-outlines{outlines}" if outlines else ""
    model = work / f"{style}-{seed}-{per_class}-{protocol}{hand}-adapted.pt"
    t0 = time.perf_counter()
    if protocol == "blind":
        row["strokes"] = paint(painted, per_class, strokes_from)
        r = adapt([str(painted)], model, base=base, options=opts, overwrite=True, echo=echo, progress=False)
        rounds = [r]
    else:
        half = dataclasses.replace(opts, minutes=opts.minutes / 2,
                                   steps=opts.steps // 2 if opts.steps is not None else None)
        first = work / f"{style}-{seed}-{per_class}-{protocol}{hand}-round1.pt"
        paint(painted, per_class // 2, strokes_from)
        if outlines:
            row["outlined_pixels"] = outline(painted, outlines, strokes_from + 1000)
        r1 = adapt([str(painted)], first, base=base, options=half, overwrite=True, echo=echo, progress=False)
        measure_slab(painted, str(first))  # the labels the person looks at
        within = [g for g in r1.suggestions if g["store"] == str(painted)] if protocol == "suggested" else None
        if within is not None:
            if not within:
                raise SystemExit(f"{style}: the first round listed no region of {painted} to paint next")
            row["suggested_regions"] = within
        row["strokes"] = paint(painted, per_class - per_class // 2, strokes_from + 1, labels=True, within=within,
                               dabs=dabs)
        row["dabs"] = dabs
        r = adapt([str(painted)], model, base=first, options=half, overwrite=True, echo=echo, progress=False)
        rounds = [r1, r]
    row["adapt"] = {"seconds": time.perf_counter() - t0, "train_seconds": sum(x.seconds for x in rounds),
                    "steps": [x.steps for x in rounds], "stopped": [x.stopped for x in rounds],
                    "held_back_accuracy": r.held_back_accuracy, "held_back_accuracy_base": r.held_back_accuracy_base,
                    "object_rule": [x.object_rule for x in rounds]}
    if opts.steps is not None and any(x.stopped != "step budget" for x in rounds):  # not the recipe compared
        print(f"WARNING: {style}: a round stopped before its step budget ({row['adapt']['steps']} steps, "
              f"{row['adapt']['stopped']}): the machine was too loaded for --minutes; rerun with more", flush=True)
        row["adapt"]["step_budget_missed"] = True
    row["adapted"] = {"painted": measured(painted, str(model), True), "sibling": measured(sibling, str(model), False)}
    if tta != "none":
        row["adapted_tta"] = {"tta": tta, "painted": measured(painted, str(model), True, tta),
                              "sibling": measured(sibling, str(model), False, tta)}
    import grown_labels  # benchmarks/grown_labels.py: the colour models adapt fits on the final strokes
    import unpainted  # benchmarks/unpainted.py: colours no stroke had, from the final strokes (a trust figure's data)

    models = grown_labels.colour_models(str(painted), opts.seed, opts.colour_components, opts.colour_choice)
    row["unpainted_share"] = {k: round(unpainted.far_share(s, models)[0], 5)
                              for k, s in (("painted", painted), ("sibling", sibling))}
    if (r.object_rule or {}).get("kept"):  # the same model without its object rule: what the rule changed
        row["adapted_no_rule"] = {"tta": tta, "painted": measured(painted, str(model), True, tta, object_rule=False),
                                  "sibling": measured(sibling, str(model), False, tta, object_rule=False)}
    return row


def _mark(ok: bool) -> str:
    return "" if ok else " ✗"


def summary_table(rows: list[dict], key: str = "adapted") -> str:
    """One line per style and slab: base -> adapted for each figure, a ✗ where the adapted one misses its target
    (``key`` adapted_tta: the adapted model inferred with --tta)."""
    rows = [r for r in rows if key in r]
    lines = ["| style | slab | stone IoU | void IoU | air error (points) | spacing factor error "
             "| adapt (train s, steps) |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        for which in ("painted", "sibling"):
            b, m = r["base"][which], r[key][which]
            sf_b, sf = b["spacing_factor_error"], m["spacing_factor_error"]
            lines.append(
                f"| {r['style']} | {which} | {b['iou']['stone']:.3f} -> {m['iou']['stone']:.3f}"
                f"{_mark(m['iou']['stone'] >= TARGETS['stone_iou'])} | {b['iou']['void']:.3f} -> "
                f"{m['iou']['void']:.3f}{_mark(m['iou']['void'] >= TARGETS['void_iou'])} | "
                f"{b['air_error_points']:+.2f} -> {m['air_error_points']:+.2f}"
                f"{_mark(abs(m['air_error_points']) <= TARGETS['air_points'])} | "
                + (f"{100 * sf_b:+.1f} % -> {100 * sf:+.1f} %{_mark(abs(sf) <= TARGETS['spacing_factor'])}"
                   if sf is not None and sf_b is not None else "n/a")
                + (f" | {r['adapt']['train_seconds']:.0f}, {sum(r['adapt']['steps'])} |" if which == "painted"
                   else " | |"))
    return "\n".join(lines)


def meets(m: dict) -> bool:
    sf = m["spacing_factor_error"]
    return (m["iou"]["stone"] >= TARGETS["stone_iou"] and m["iou"]["void"] >= TARGETS["void_iou"]
            and abs(m["air_error_points"]) <= TARGETS["air_points"]
            and sf is not None and abs(sf) <= TARGETS["spacing_factor"])


def table(rows: list[dict]) -> str:
    head = ("| style | slab | model | stone IoU | void IoU | air (truth) % | air error (points) | spacing factor error "
            "| targets |\n|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        for which in ("painted", "sibling"):
            for model in ("base", "adapted", "adapted_tta", "adapted_no_rule"):
                if model not in r:
                    continue
                m = r[model][which]
                sf = m["spacing_factor_error"]
                name = model if model in ("base", "adapted") else f"adapted, --tta {r[model]['tta']}"
                if model == "adapted_no_rule":
                    name += ", --no-object-rule"
                lines.append(f"| {r['style']} | {which} | {name} | {m['iou']['stone']:.3f} | {m['iou']['void']:.3f} "
                             f"| {m['air']:.2f} ({m['air_truth']:.2f}) | {m['air_error_points']:+.2f} | "
                             + (f"{100 * sf:+.1f} %" if sf is not None else "n/a")
                             + f" | {'met' if meets(m) else 'missed'} |")
    return "\n".join(lines)


def sweep_plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["per_class"])
    n = [r["per_class"] for r in rows]
    key = "adapted_tta" if all("adapted_tta" in r for r in rows) else "adapted"  # what infer --tta labels
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for which, style in (("painted", "-o"), ("sibling", "--s")):
        axes[0].plot(n, [r[key][which]["iou"]["void"] for r in rows], style, label=f"void, {which}")
        axes[0].plot(n, [r[key][which]["iou"]["stone"] for r in rows], style, label=f"stone, {which}")
        axes[1].plot(n, [abs(r[key][which]["air_error_points"]) for r in rows], style, label=which)
        axes[2].plot(n, [100 * abs(r[key][which]["spacing_factor_error"] or 0) for r in rows], style,
                     label=which)
    base = rows[0]["base"]
    axes[0].axhline(base["painted"]["iou"]["void"], color="grey", lw=0.8, ls=":", label="void, base")
    axes[1].axhline(abs(base["painted"]["air_error_points"]), color="grey", lw=0.8, ls=":", label="base")
    axes[2].axhline(100 * abs(base["painted"]["spacing_factor_error"] or 0), color="grey", lw=0.8, ls=":",
                    label="base")
    axes[0].axhline(0.85, color="red", lw=0.6)
    axes[1].axhline(0.3, color="red", lw=0.6)
    axes[2].axhline(10, color="red", lw=0.6)
    for ax, title in zip(axes, ("IoU", "|air content error| (points)", "|spacing factor error| (%)"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xticks(n, [str(v) for v in n])
        ax.set_xlabel("strokes per class")
        ax.set_title(title)
        ax.legend(fontsize=7)
    r0 = rows[0]
    how = f"{r0['protocol']} strokes" + (f", --tta {r0[key]['tta']}" if key == "adapted_tta" else "")
    fig.suptitle(f"bigseg adapt on {r0['style']} ({how}): figures against the number of strokes (red: targets)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    from bigseg.synth.styles import HELD_OUT

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--styles", nargs="*", default=list(DEV_STYLES))
    ap.add_argument("--held-out", action="store_true", help="the held-out styles (final table only)")
    ap.add_argument("--seed", type=int, default=4100)
    ap.add_argument("--stroke-seed", type=int, help="seed of the simulated strokes and of adapt's own sampling "
                    "(default: --seed): the same slabs painted by another hand, to measure the spread between runs")
    ap.add_argument("--adapt-seed", type=int, help="seed of adapt's own sampling alone (default: the stroke seed): "
                    "the same hand's first strokes, adapted again -- the spread that training itself adds")
    ap.add_argument("--held-back-seed", type=int, help="seed of which strokes adapt holds back alone (default: the "
                    "adapt seed): with another --adapt-seed, splits the held-back draw from the crops' draw")
    ap.add_argument("--size", default="3000x2000")
    ap.add_argument("--per-class", type=int, default=40)
    ap.add_argument("--sweep", type=int, nargs="*", help="strokes per class to sweep (one style)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--steps", type=int, help="a step budget (split between the corrective protocol's two rounds; "
                    "--minutes still caps it): runs that compare recipes repeat exactly, whatever the machine's load")
    ap.add_argument("--prior", type=float, default=AdaptOptions.prior)
    ap.add_argument("--lr", type=float, default=AdaptOptions.lr)
    ap.add_argument("--grow", type=int, default=AdaptOptions.grow)
    ap.add_argument("--balance", default=AdaptOptions.balance)
    ap.add_argument("--grow-by", default=AdaptOptions.grow_by, choices=["class", "stroke"])
    ap.add_argument("--colour-components", type=int, default=AdaptOptions.colour_components,
                    help="Gaussians per class's colour model when strokes grow by class")
    ap.add_argument("--colour-choice", default=AdaptOptions.colour_choice, choices=["all", "per-class"],
                    help="every class --colour-components Gaussians, or each class its own number up to it")
    ap.add_argument("--edges", default=AdaptOptions.edges, choices=EDGE_RULES,
                    help="where grown classes meet: the nearer colour model, or mixing (AdaptOptions.edges)")
    ap.add_argument("--colour-prior", default=AdaptOptions.colour_prior, choices=COLOUR_PRIORS,
                    help="a colour's class when growing: least distance, or stroke-weighted density "
                    "(AdaptOptions.colour_prior)")
    ap.add_argument("--replay", type=float, default=AdaptOptions.replay,
                    help="weight of synthetic crops with exact truth trained on beside the strokes")
    ap.add_argument("--replay-batch", type=int, default=AdaptOptions.replay_batch)
    ap.add_argument("--replay-band", type=int, default=AdaptOptions.replay_band,
                    help="replay's loss only within this many px of a void (0: every pixel)")
    ap.add_argument("--void-shift", type=float, default=AdaptOptions.void_shift,
                    help="added to the adapted model's void logit (0: none)")
    ap.add_argument("--crf", type=float, default=AdaptOptions.crf,
                    help="weight of the local CRF loss on each crop (an experiment; 0: none)")
    ap.add_argument("--dabs", type=int, default=0, help="corrective/suggested: up to this many of the second "
                    "round's void strokes are dabs on small voids the first round's labels miss (a person clicking "
                    "a small brush where no stroke fits)")
    ap.add_argument("--zoom-out", type=float, default=AdaptOptions.zoom_out,
                    help="half the crops read from up to this many times their size and shrunk (an experiment)")
    ap.add_argument("--work", default=str(ROOT / "work" / "adapt"))
    ap.add_argument("--out", default=str(ROOT / "out" / "adapt"))
    ap.add_argument("--tag", default="")
    ap.add_argument("--protocol", choices=["blind", "corrective", "suggested"], default="blind")
    ap.add_argument("--table", nargs="*", help="only print the summary table of these result files (JSON)")
    ap.add_argument("--plot", help="with --table: also draw them as a sweep over strokes per class (PNG)")
    ap.add_argument("--base", help="the model to adapt (default: the bundled one); its own figures are the base row")
    ap.add_argument("--outlines", type=int, default=0, help="an experiment: also paint this many whole voids "
                    "with a 2 px ring of what surrounds them, with the first round's strokes (corrective protocol)")
    ap.add_argument("--tta", default="none", choices=["none", "flip", "flip4", "multiscale", "flip-multiscale"],
                    help="also measure the adapted model inferred with this --tta")
    a = ap.parse_args(argv)
    if a.table:
        rows = [json.loads(Path(f).read_text()) for f in a.table]
        print(summary_table(rows))
        if any("adapted_tta" in r for r in rows):
            print("\nwith --tta:\n" + summary_table(rows, "adapted_tta"))
        if any("adapted_no_rule" in r for r in rows):
            print("\nthe same without the object rule:\n" + summary_table(rows, "adapted_no_rule"))
        if a.plot:
            sweep_plot(rows, Path(a.plot))
            print(f"plot: {a.plot}")
        return
    work, out = Path(a.work), Path(a.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    size = tuple(int(v) for v in a.size.lower().split("x"))
    styles = list(HELD_OUT) if a.held_out else a.styles
    adapt_seed = a.adapt_seed if a.adapt_seed is not None else (0 if a.stroke_seed is None else a.stroke_seed)
    opts = AdaptOptions(seed=adapt_seed, held_back_seed=a.held_back_seed,
                        minutes=a.minutes, steps=a.steps, prior=a.prior, lr=a.lr, grow=a.grow, grow_by=a.grow_by,
                        colour_components=a.colour_components, colour_choice=a.colour_choice, balance=a.balance,
                        edges=a.edges, colour_prior=a.colour_prior, replay=a.replay,
                        replay_batch=a.replay_batch,
                        replay_band=a.replay_band or None, void_shift=a.void_shift, crf=a.crf,
                        zoom_out=a.zoom_out)
    rows = []
    for style in styles:
        for per_class in a.sweep or [a.per_class]:
            print(f"== {style}, {per_class} strokes per class ({a.protocol}), {a.minutes:g} min", flush=True)
            row = run_style(work, style, a.seed, size, per_class, opts, a.protocol, tta=a.tta, base=a.base,
                            stroke_seed=a.stroke_seed, adapt_seed=a.adapt_seed, outlines=a.outlines,
                            dabs=a.dabs)
            rows.append(row)
            budget = f"{a.steps}steps" if a.steps else f"{a.minutes:g}min"
            name = (f"{style}-{per_class}-{a.protocol}-{budget}-prior{a.prior:g}-grow{a.grow}-{a.balance}"
                    f"{a.tag}.json")
            (out / name).write_text(json.dumps(row, indent=2))
            print(table([row]), flush=True)
    print(table(rows))
    if a.sweep:
        plot = out / f"sweep-{styles[0]}{a.tag}.png"
        sweep_plot(rows, plot)
        print(f"plot: {plot}")


if __name__ == "__main__":
    main()
