"""What the void-object rule's pass costs in ``bigseg infer``: the same slab inferred by the same adapted model with
``--no-object-rule`` and with its rule, alternately, in one run (read the ratio, not the seconds: this machine is
shared).

    python benchmarks/object_rule_pass.py MODEL.pt [--size 4096] [--repeats 2]   # MODEL: an adapted model with a rule

Without MODEL's rule the script makes one: the bundled model carrying a rule that judges every void object and
keeps them all (the whole pass is run, nothing relabelled) -- the pass's cost, not its effect. The slab is a
synthetic classic section (``bigseg.synth``), ingested with the default chunks; the default backend, in this
process (``--workers 0``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def model_with_rule(model: str | None, folder: Path, grow: bool = False, cut: bool = False) -> str:
    from bigseg import checkpoint as ckpt
    from bigseg import object_rule as orule

    if model and (ckpt.read(model)["meta"].get("adapted") or {}).get("object_rule"):
        return model
    net, meta = ckpt.load(ckpt.model_path(model))
    keep_all = orule.ObjectRule(2, (0.0,) * 3, (1.0,) * 3, (0.0,) * 3, 10.0, {"void": 5, "not void": 5},
                                grow_edges=grow, cut_merged=cut)
    out = folder / f"with-rule{'-grow' if grow else ''}{'-cut' if cut else ''}.pt"
    ckpt.save(out, net, arch=meta["arch"], classes=ckpt.classes_of(meta), arch_kwargs=meta.get("arch_kwargs"),
              extra_meta={"adapted": {"object_rule": keep_all.to_dict()}})
    return str(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--grow", action="store_true",
                    help="also time the rule with its kept voids grown to their edges (grow_edges; made rules only)")
    ap.add_argument("--cut", action="store_true",
                    help="also time the rule judging objects cut at grey ridges, then growing (cut_merged, grow_edges)")
    a = ap.parse_args(argv)

    from bigseg.infer import InferOptions, infer
    from bigseg.ingest import ingest
    from bigseg.synth import SynthParams, synthesize

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        synthesize(d / "slab.png", SynthParams(a.size, a.size, seed=5, pixel_size_um=10))
        store = d / "slab.zarr"
        ingest(d / "slab.png", store)
        model = model_with_rule(a.model, d)
        runs = [("no rule", model, False), ("rule", model, True)]
        if a.grow:
            runs.append(("rule, voids grown", model_with_rule(a.model, d, grow=True), True))
        if a.cut:
            runs.append(("objects cut, rule, voids grown", model_with_rule(a.model, d, grow=True, cut=True), True))
        seconds: dict[str, list[float]] = {name: [] for name, *_ in runs}
        relabelled = {}
        for i in range(a.repeats + 1):  # the first round warms the export cache and the slab's pages: not counted
            for name, m, rule in runs:
                t0 = time.perf_counter()
                r = infer(store, model=m, options=InferOptions(workers=0, overwrite=True, progress=False,
                                                               object_rule=rule), echo=lambda *_: None)
                if i:
                    seconds[name].append(time.perf_counter() - t0)
                if rule:
                    relabelled[name] = r.stats.get("object_rule")
        best = {k: min(v) for k, v in seconds.items()}
        print(json.dumps({"size": a.size, "model": a.model or "bundled + a rule keeping every object",
                          "seconds": seconds, "relabelled": relabelled,
                          **{f"{k} over no rule": round(best[k] / best["no rule"], 3)
                             for k in best if k != "no rule"}}))


if __name__ == "__main__":
    main()
