"""``infer``: check everything, reach the cluster, plan, and run the plan in one scheduling loop.

The loop submits the plan's groups (one chunk row of one stripe) a few at a time, waits for the oldest, and
releases the window logits no later group needs (and the spill files no later stripe needs). The same loop runs
on a dask cluster and, with ``workers=0``, in this process (:mod:`bigseg.infer.executors`).

Each window is computed once (a batch feeds every chunk it touches). Summing in window order makes a pixel's
value independent of which chunk it falls in, so labels are byte-identical for any chunking, any number of
workers, and across an interruption: a rerun skips chunks whose marker exists and computes only the batches that
pending chunks need.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bigseg import store as st
from bigseg.checkpoint import (
    BUNDLED_MODELS,
    WEIGHTS,
    adapt_base_note,
    bundled_name,
    classes_of,
    file_digest,
    model_path,
)
from bigseg.classes import concrete_ids
from bigseg.cluster import cpu_count, dask_client
from bigseg.errors import BigsegError
from bigseg.infer import backend as be
from bigseg.infer import outputs, stability
from bigseg.infer.executors import InProcess, InThreads, ex_for, on_a_worker
from bigseg.infer.inputs import check_input, resolve_input
from bigseg.infer.options import InferOptions, default_workers
from bigseg.infer.plan import Plan, make_plan, stripe_columns
from bigseg.infer.predictor import ModelSpec, working_scale
from bigseg.infer.tasks import batch_logits, blend_block, pyramid_strip, rule_block
from bigseg.infer.windows import Grid
from bigseg.modelfile import model_kind
from bigseg.object_rule import ObjectRule
from bigseg.progress import make_bar
from bigseg.pyramid import factors_for
from bigseg.records import ConfidenceReference, ModelProvenance, RunRecord
from bigseg.store import files

ROWS_IN_FLIGHT = 2
"""Groups (chunk rows of a stripe) submitted at a time (more when many workers need feeding). A window row's logits
are kept only until the last chunk row of the stripe needing them is blended. (Letting dask order one big graph held
far more: 5.9 GB for a 40000 x 25000 image on one CPU worker; whole-width chunk rows held memory proportional to
the image's width.)"""


@dataclass(frozen=True)
class InferResult:
    store: str
    width: int
    height: int
    windows: int
    windows_computed: int
    chunks: int
    chunks_skipped: int
    seconds: float
    startup_seconds: float
    megapixels_per_second: float
    workers: int
    device: str
    stats: dict
    confidence: dict | None
    run: dict

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PyramidStrips:
    """The label pyramid, built during the run a strip of whole chunk rows at a time."""

    height: int  # image rows
    strip: int  # rows per strip (whole chunk rows)
    factors: list[int]

    def of(self, bounds) -> int:
        return bounds[0] // self.strip

    @property
    def count(self) -> int:
        return -(-self.height // self.strip)


def execute(plan: Plan, store: Path | str, spec: ModelSpec, ex, probabilities: bool, n_classes: int, progress,
            strips: PyramidStrips, rule: dict | None = None, to_judge: list | tuple = ()) -> None:
    """Run the plan group by group: submit a few groups ahead, wait for the oldest, release what no later group
    needs. A strip of the label pyramid is submitted as soon as its chunk rows are all written, after the one
    above it (they share chunks of the coarser levels). With an adapted model's void-object ``rule``, the network's
    labels are staged apart, and once they are all written each chunk of ``to_judge`` is judged by the rule into
    the labels (:func:`bigseg.infer.tasks.rule_block`); the pyramid follows those."""
    from collections import Counter

    store_s = str(store)
    grid = plan.grid
    if plan.spill_from:
        files.makedirs(outputs.spill_dir(store))
    mpx_per_chunk = grid.height * grid.width / 1e6 / max(1, plan.n_chunks)
    bar = make_bar(plan.n_chunks, "infer", "chunk", enabled=progress, scale=mpx_per_chunk, scaled_unit="Mpx")
    held: dict = {}  # (batch, stripe) -> future of its logits
    in_flight: list = []  # (group index, blend futures), oldest first
    batches_per_group = max(1, len(plan.batches) // max(1, len(plan.groups)))
    ahead = 1 if isinstance(ex, InProcess) else max(ROWS_IN_FLIGHT, -(-2 * ex.threads // batches_per_group))
    tag = spec.digest[:8]
    labels_to = "labels" if rule is None else outputs.NETWORK_LABELS
    unwritten = (Counter(strips.of(b.bounds) for g in plan.groups for b in g.blends) if rule is None
                 else Counter(strips.of(bounds) for *_, bounds in to_judge))  # pending label chunks per strip
    pyramid: list = []  # the strips' futures, in order

    def submit_strips() -> None:
        while len(pyramid) < strips.count and not unwritten[len(pyramid)]:
            s = len(pyramid)
            pyramid.append(ex.submit(pyramid_strip, store_s, s * strips.strip, min((s + 1) * strips.strip,
                                                                                  strips.height),
                                     strips.factors, n_classes, *pyramid[-1:], key=f"pyramid-{s}-{tag}"))

    def submit(gi: int) -> None:
        g = plan.groups[gi]
        futures = []
        for blend in g.blends:
            for key in blend.deps:
                if (key, g.stripe) not in held:
                    spill = outputs.spill_file(store, key) if key in plan.spill_from else None
                    held[(key, g.stripe)] = ex.submit(
                        batch_logits, spec, store_s, plan.batches[key], grid, spill, plan.spill_from.get(key, 0),
                        plan.reuse(key, g.stripe), key=f"predict-{key.row}-{key.k}-{g.stripe}-{tag}")
            marker = str(outputs.marker(store, *blend.chunk))
            futures.append(ex.submit(blend_block, store_s, blend.bounds, grid, blend.sources, marker, probabilities,
                                     n_classes, labels_to, *[held[(d, g.stripe)] for d in blend.deps],
                                     key=f"blend-{blend.chunk[0]}.{blend.chunk[1]}-{tag}"))
        in_flight.append((gi, futures))

    judging: dict = {}  # future of a rule_block -> its chunk's bounds

    def judge() -> None:
        """Every chunk of ``to_judge`` through the rule, once the network's labels are all written."""
        jbar = make_bar(len(to_judge), "object rule", "chunk", enabled=progress, scale=mpx_per_chunk,
                        scaled_unit="Mpx")
        try:
            for bi, bj, bounds in to_judge:
                judging[ex.submit(rule_block, store_s, bounds, rule, str(outputs.ruled_marker(store, bi, bj)),
                                  n_classes, key=f"rule-{bi}.{bj}-{tag}")] = bounds
            for fut in ex.completed(list(judging)):
                fut.result()
                jbar.update(1)
                unwritten[strips.of(judging[fut])] -= 1
                submit_strips()
        finally:
            jbar.close()

    next_group = 0
    try:
        submit_strips()  # those whose rows a resumed run had finished
        while next_group < len(plan.groups) or in_flight:
            while next_group < len(plan.groups) and len(in_flight) < ahead:
                submit(next_group)
                next_group += 1
            gi, futures = in_flight.pop(0)
            for fut in ex.completed(futures):
                fut.result()  # re-raises a task's exception here
                bar.update(1)
            if rule is None:
                for blend in plan.groups[gi].blends:
                    unwritten[strips.of(blend.bounds)] -= 1
                submit_strips()
            for inst in plan.done_after(gi, list(held)):
                del held[inst]  # releases the logits on the workers
                key, stripe = inst
                if key in plan.spill_from and stripe == plan.last_stripe[key]:
                    files.unlink(outputs.spill_file(store, key))
        if rule is not None:
            bar.close()
            judge()
        for fut in pyramid:
            fut.result()
    except BaseException:
        ex.cancel([f for _, fs in in_flight for f in fs] + list(held.values()) + pyramid + list(judging))
        raise
    finally:
        bar.close()


def infer(input_path, out: str | None = None, model: str | None = None, options: InferOptions | None = None,
          echo=print) -> InferResult:
    """Segment INPUT (image file or slab store) into the store's ``labels``; returns what was done, with the
    class statistics and the confidence summary.

    Everything that can be checked is checked before any compute: the options, the model file and backend, the
    device, the scheduler, an existing result, a concurrent run; the checkpoint (safe load, classes against the
    store's truth) is validated on a worker before the store is touched.
    """
    o = options or InferOptions()
    o.check()
    check_input(input_path, out, o.overwrite)
    if o.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise BigsegError("--device cuda: no CUDA device is visible to torch on this machine")
    batch = o.batch_size()
    ckpt = model_path(model)
    digest = file_digest(ckpt)
    shipped = bundled_name(digest)
    if shipped:
        copy = "" if ckpt.parent == WEIGHTS else f" ({ckpt}, a copy)"
        echo(f"model: the bundled {BUNDLED_MODELS[shipped].name}{copy} (trained on synthetic sections only; see "
             "README)")
        note = adapt_base_note(digest)
        if note:
            echo(f"warning: {note}")
    choice = be.model_and_backend(ckpt, o, digest)
    backend, meta = choice.backend, choice.meta
    precision = (meta or {}).get("precision", "fp32")
    line = be.describe(choice, ckpt, o.backend)
    if line:
        echo(line)
    workers = o.worker_count()
    if o.device == "cpu" and not o.scheduler and workers > cpu_count():
        echo(f"warning: {workers} workers on {cpu_count()} cores: each worker holds a model and its threads share the "
             f"cores, so more workers than cores is slower and takes more memory (measured: 8 workers on 2 cores ran "
             f"2.2x slower than 1 and held 9.8 GB); the default here is {_default_workers_text()}")
    threads = o.threads or max(1, cpu_count() // max(workers, 1))
    t_start = time.perf_counter()
    # the cluster is reached (or started) before the store is touched: an unreachable scheduler must not
    # cost the labels already there
    with dask_client(workers, o.scheduler, echo, o.device, threads) as client:
        t_ready = time.perf_counter()
        if meta is None:  # a checkpoint: loaded safely where the model runs (this process needs no torch)
            meta = on_a_worker(client, be.checkpoint_meta, ckpt)
        classes = classes_of(meta)
        store = resolve_input(input_path, out, echo, o.progress)
        group = st.open_store(store, mode="r+")
        if "truth" in group:
            store_classes = st.class_table(group)
            if [c.name for c in store_classes] != [c.name for c in classes]:
                raise BigsegError(
                    f"{ckpt}: the model's classes ({', '.join(c.name for c in classes)}) differ from the store's "
                    f"({', '.join(c.name for c in store_classes)})"
                )
        image = st.array(group, "image")
        height, width = image.shape[:2]
        cy, cx = image.chunks[:2]
        if o.stripe is not None and o.stripe < cx:
            raise BigsegError(f"--stripe must be at least one chunk of the store ({cx} px), got {o.stripe}")
        grid = Grid(height, width, o.window, o.overlap)
        rule = object_rule_of(meta, classes) if o.object_rule else None
        growth_off = False  # --no-grow-void-edges on a rule that grows: it judges without the growth this run
        if rule is not None and rule.get("grow_edges") and not o.grow_void_edges:
            rule, growth_off = {**rule, "grow_edges": False}, True
        run = RunRecord(digest, meta["arch"], o.window, o.overlap, batch, tuple(c.name for c in classes), backend,
                        precision, o.tta, rule is not None, growth_off).to_attrs()
        factors, strip = factors_for(height, width, cy)
        strips = PyramidStrips(height, strip, factors)
        with outputs.StoreLock(store):
            pending, skipped, to_judge = outputs.prepare(
                group, store, run, classes, overwrite=o.overwrite, probabilities=o.probabilities, chunks=(cy, cx),
                pyramid_factors=factors, model=_provenance(ckpt, digest, meta, rule is not None, growth_off),
                rule=rule is not None)
            # exports live in the cache (once per checkpoint); an external cluster's workers may not see this
            # machine's cache, but they see the store
            exports = be.export_folder(o, store)
            assert exports is not None
            path, model_digest = be.model_file(ckpt, digest, choice, exports,
                                               lambda f, *a: on_a_worker(client, f, *a), echo)
            pixel = st.pixel_size_um(group)
            scale = working_scale(meta, pixel)
            if scale != 1.0:
                echo(f"the model reads scans at {meta['working_pixel_size_um']:g} um a pixel (trained on none finer): "
                     f"this {pixel:g} um scan is shown to it at {scale:.3g} x")
            spec = ModelSpec(str(path), model_digest, o.device, threads if o.device == "cpu" else 0, o.amp,
                             backend=backend, compile=o.compile and backend == "torch", tta=o.tta, scale=scale)
            plan = make_plan(grid, pending, batch, cx, stripe_columns(grid, cx, batch, o.stripe))
            total = len(pending) + skipped
            if skipped:
                echo(f"resuming: {skipped} of {total} chunks already done; "
                     f"skipping {plan.n_windows - plan.n_computed} of {plan.n_windows} windows")
            if rule is not None and len(to_judge) < total:
                echo(f"resuming the object rule's pass: {total - len(to_judge)} of {total} chunks already judged")
            t0 = time.perf_counter()
            try:
                ex = ex_for(client, o)
                try:
                    execute(plan, store, spec, ex, o.probabilities, len(classes), o.progress, strips, rule, to_judge)
                finally:
                    if isinstance(ex, InThreads):
                        ex.close()
            except BaseException:
                outputs.discard_if_empty(store)  # keep a partial run only when a rerun can resume something
                raise
            seconds = time.perf_counter() - t0  # the pass (the sampled check after it is not throughput)
            stability = _stability(ex_for(client, o), ckpt, digest, store, grid, classes, threads, o.device, echo)
            stats = outputs.finish(group, store, client, stability)
    computed_mpx = height * width / 1e6 * len(pending) / max(total, 1)
    return InferResult(store=str(store), width=width, height=height, windows=plan.n_windows,
                       windows_computed=plan.n_computed, chunks=total, chunks_skipped=skipped, seconds=seconds,
                       startup_seconds=t_ready - t_start, megapixels_per_second=computed_mpx / seconds,
                       workers=workers, device=o.device, stats=stats,
                       confidence=st.attr(st.array(st.open_store(store), "labels"), "confidence"), run=run)


def _default_workers_text() -> str:
    n = default_workers("cpu")
    return f"{n} worker processes" if n else "0 (this process, two task threads)"


def _stability(ex, ckpt: Path, digest: str, store: Path | str, grid: Grid, classes, threads: int, device: str,
               echo) -> dict | None:
    """The view, feature-statistics and second-model figures (:mod:`bigseg.infer.stability`) on a sample of
    windows, run on a worker from the checkpoint (None for a model given as an export: no batch-norm statistics to
    compare). A failure here costs the figures, never the labels: it is said, and the run finishes."""
    if model_kind(ckpt) != "checkpoint":
        return None
    second = second_opinion(digest)
    try:
        sums = ex.submit(stability.measure, str(ckpt), str(store), stability.sample_origins(grid), grid,
                         threads, device, None if second is None else str(second), pure=False).result()
    except Exception as exc:  # noqa: BLE001 - any failure of the check is reported, the labels are kept
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        echo(f"warning: the check on sampled windows failed ({first}); the report will lack its figures")
        return None
    finally:
        if isinstance(ex, InThreads):
            ex.close()
    return stability.figures(sums, (concrete_ids(classes) or {}).get("void"))


def object_rule_of(meta: dict, classes) -> dict | None:
    """The void-object rule an adapted model carries (``meta['adapted']['object_rule']``, :mod:`bigseg.object_rule`),
    checked; None when it has none."""
    rule = (meta.get("adapted") or {}).get("object_rule")
    if not rule:
        return None
    try:
        parsed = ObjectRule.from_dict(rule)
    except (KeyError, TypeError, ValueError) as exc:
        raise BigsegError(f"the model's object rule cannot be read ({exc}); run with --no-object-rule") from None
    if not 0 <= parsed.void < len(classes):
        raise BigsegError(f"the model's object rule judges class {parsed.void}, which its class table does not have")
    return rule


def second_opinion(digest: str) -> Path | None:
    """The model whose labels on the sampled windows are compared with those of the model file of this sha256: the
    other bundled model for a bundled one (or a copy of it), the bundled DeepLabV3 (else light_unet) for any other
    checkpoint; None when none is shipped."""
    same = bundled_name(digest)
    for name in ("deeplabv3", "light_unet"):
        path = BUNDLED_MODELS[name]
        if path.is_file() and name != same:
            return path
    return None


def _provenance(ckpt: Path, digest: str, meta: dict, rule_applied: bool = False, growth_off: bool = False) -> dict:
    """What a report says about the model: file, sha256, architecture, what it was trained on, and the confidence
    range it showed on its validation styles (when it was calibrated)."""
    bundled = bundled_name(digest) is not None  # by content: a copy of a shipped model is that model
    ref = meta.get("confidence_reference")
    return ModelProvenance(os.path.abspath(ckpt), digest, meta.get("arch"), bundled, meta.get("trained_on"),
                           meta.get("description"), ConfidenceReference.from_attrs(ref) if ref else None,
                           meta.get("precision", "fp32"),
                           _adapted_record(meta.get("adapted"), rule_applied, growth_off)).to_attrs()


def _adapted_record(adapted: dict | None, rule_applied: bool = False, growth_off: bool = False) -> dict | None:
    """What a report says of a model made by ``bigseg adapt``: its base, stores, strokes and held-back accuracy;
    ``growth_off``: the rule's edge growth was turned off for these labels (the fit's record then says so)."""
    if not adapted:
        return None
    keep = ("base", "stores", "strokes", "painted_pixels", "held_back_strokes", "held_back_pixels",
            "held_back_accuracy", "held_back_accuracy_base", "seconds", "steps", "when", "object_rule_fit",
            "painted_profiles")  # how the painted slabs looked: the report's check that this one looks alike
    record = {k: adapted.get(k) for k in keep}
    record["tta"] = (adapted.get("options") or {}).get("tta") or "none"  # the views held-back strokes were scored with
    record["object_rule_applied"] = rule_applied
    if growth_off:
        record["object_rule_fit"] = {**(record["object_rule_fit"] or {}), "grow_edges": False,
                                     "growth_off_at_infer": True}
    return record
