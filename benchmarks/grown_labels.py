"""How right are the labels adapt trains on: a store's strokes grown as `bigseg adapt` grows them, against its truth.

For each painted store (its ``annotations`` as the last adapt run left them), the strokes are read with the run's
seed (which strokes are held back), grown by class with each number of colour components asked for, and the grown
pixels are counted by grown class against the truth: per class, how many were grown and the share right, and the
wrong ones over all classes.

    python benchmarks/grown_labels.py benchmarks/work/adapt-random/random-7000041-4100.zarr --components 1 2 --seed 11
    python benchmarks/grown_labels.py --looks random-7000059 random-7000060 --work benchmarks/work/grown-screen

``--chosen`` prints only how many Gaussians the per-class choice gives each class (no truth read: how test looks
are picked). ``--looks`` makes each named style's slab (seed 4100, 3000 x 2000, as benchmarks/adapt.py makes it)
and paints it blind, 40 strokes per class with stroke seed ``--seed`` (adapt.py's ``blind`` protocol), where it has
no strokes yet.

Development slabs only (it reads the truth), unless a look at held-out data is meant and said.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bigseg import store as st
from bigseg.train import grow
from bigseg.train.adapt_options import COLOUR_PRIORS, EDGE_RULES, AdaptOptions
from bigseg.train.strokes import ChunkReader, read_strokes


def _training_strokes(store: str, seed: int, n_classes: int):
    """``store``'s strokes as an adapt run with ``seed`` reads them (which are held back), and the generator after."""
    rng = np.random.default_rng(seed)
    return read_strokes(store, n_classes, AdaptOptions.held_back, rng, seed=seed), rng


def grown_against_truth(store: str, components: int, seed: int, n_classes: int = 3,
                        choice: str = "all", edges: str = "model", prior: str = "none") -> np.ndarray:
    """(grown class, true class) pixel counts of the strokes of ``store`` grown as adapt grows them."""
    strokes, rng = _training_strokes(store, seed, n_classes)
    grow.grow_strokes(ChunkReader(strokes), rng, AdaptOptions.grow, "class", components, choice, edges, prior)
    truth = st.open_array(store, "truth")
    counts = np.zeros((n_classes, n_classes), np.int64)
    for (y0, x0), (idx, ids) in strokes.grown.items():
        h, w = min(strokes.chunk[0], strokes.shape[0] - y0), min(strokes.chunk[1], strokes.shape[1] - x0)
        true = np.asarray(truth[y0 : y0 + h, x0 : x0 + w]).ravel()[idx]
        np.add.at(counts, (ids, true), 1)
    return counts


def colour_models(store: str, seed: int, components: int, choice: str = "all", n_classes: int = 3) -> dict:
    """The colour models (per class, Gaussians) an adapt run with ``seed`` fits on ``store``'s strokes as they are."""
    strokes, rng = _training_strokes(store, seed, n_classes)
    return grow._colour_models(ChunkReader(strokes), rng, components, choice)


def chosen_numbers(store: str, components: int, seed: int, n_classes: int = 3) -> dict[int, int]:
    """Gaussians per class that the per-class choice takes on ``store``'s training strokes (reads no truth)."""
    models = colour_models(store, seed, components, "per-class", n_classes)
    return {c: len(m) for c, m in sorted(models.items())}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stores", nargs="*")
    ap.add_argument("--components", type=int, nargs="+", default=[1, AdaptOptions.colour_components])
    ap.add_argument("--seed", type=int, default=11, help="the adapt run's seed (which strokes were held back)")
    ap.add_argument("--choice", nargs="+", default=["all"], choices=["all", "per-class"],
                    help="colour models: every class the same number, or each its own (AdaptOptions.colour_choice)")
    ap.add_argument("--edges", nargs="+", default=[AdaptOptions.edges], choices=EDGE_RULES,
                    help="where grown classes meet: the nearer colour model, or mixing (AdaptOptions.edges)")
    ap.add_argument("--prior", nargs="+", default=[AdaptOptions.colour_prior], choices=COLOUR_PRIORS,
                    help="a colour's class: least distance, or stroke-weighted density (AdaptOptions.colour_prior)")
    ap.add_argument("--looks", nargs="*", default=[], help="styles to make and paint first (see above)")
    ap.add_argument("--work", default="benchmarks/work/grown-screen")
    ap.add_argument("--chosen", action="store_true", help="only print the per-class choice's Gaussians per class "
                    "(reads no truth: how test looks are picked)")
    a = ap.parse_args(argv)
    stores = list(a.stores)
    if a.looks:
        import adapt as bench  # benchmarks/adapt.py: the benchmark's own slabs and strokes

        from bigseg import annotations as ann

        work = Path(a.work)
        work.mkdir(parents=True, exist_ok=True)
        for look in a.looks:
            store = bench.make_slab(work, look, 4100, (3000, 2000))
            if not ann.has_layer(store):
                bench.paint(store, 40, a.seed)
            stores.append(str(store))
    for store in stores:
        if a.chosen:
            print(f"{Path(store).name:30s} per-class choice: {chosen_numbers(store, max(a.components), a.seed)}")
            continue
        for k, choice, edges, prior in [(k, c, e, p) for k in a.components for c in a.choice for e in a.edges
                                        for p in a.prior if k > 1 or c == "all"]:
            counts = grown_against_truth(store, k, a.seed, choice=choice, edges=edges, prior=prior)
            right = counts.diagonal() / counts.sum(axis=1).clip(1)
            print(f"{Path(store).name:30s} components {k} {choice} edges {edges} prior {prior}: "
                  f"grown {counts.sum(axis=1).tolist()} right "
                  f"{np.round(right, 4).tolist()} wrong {int(counts.sum() - counts.trace())} void "
                  f"+{int(counts[2].sum() - counts[2, 2])} / -{int(counts[:, 2].sum() - counts[2, 2])}", flush=True)


if __name__ == "__main__":
    main()
