"""The inference graph: window batches -> model -> blended label chunks written to zarr.

Two kinds of task:

- ``predict``: one batch of windows (consecutive windows of one window row; the partition is fixed by the grid
  alone) read from the store's ``image`` and run through the model: float16 logits.
- ``blend``: one chunk of the ``labels`` array: the weighted logits of every window touching it, summed in
  window order, arg-maxed, written to the chunk (and ``probabilities``), then a completion marker is written.

Chunks run in column stripes (``--stripe``, default 8192 px), each top to bottom, a few chunk rows in flight, so
memory is bounded by the stripe's width whatever the image's size; a batch on a stripe's border is kept on disk
(``STORE/.bigseg/spill``, trimmed to the columns the next stripe needs) rather than in memory for a whole stripe.

Each window is computed once (a batch feeds every chunk it touches). Summing in window order makes a pixel's
value independent of which chunk it falls in, so labels are byte-identical for any chunking, any number of
workers, and across an interruption: a rerun skips chunks whose marker exists, and computes only the batches
that pending chunks need.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bigseg import store as st
from bigseg.checkpoint import BUNDLED, classes_of, file_digest, load
from bigseg.errors import BigsegError
from bigseg.infer.predictor import ModelSpec, predict
from bigseg.infer.windows import Grid

BACKENDS = ("torch", "onnxruntime")
MAX_WINDOW = 4096
MIN_WINDOW = 32
DEFAULT_WINDOW = 900
DEFAULT_OVERLAP = 128


@dataclass
class InferOptions:
    window: int = DEFAULT_WINDOW
    overlap: int = DEFAULT_OVERLAP
    batch: int | None = None  # None: 2 on CPU, 8 on CUDA
    device: str = "cpu"
    workers: int | None = None  # None: a default from the core count; 0: in this process
    scheduler: str | None = None
    threads: int | None = None  # torch threads per CPU worker; None: cores // workers
    stripe: int | None = None  # width (px) of the column stripes processed at a time; None: STRIPE_PX
    probabilities: bool = False
    overwrite: bool = False
    progress: bool = False
    amp: bool = True
    backend: str | None = None  # "torch" or "onnxruntime"; None: onnxruntime for an ONNX file, else torch


# ---------------------------------------------------------------------------------------------------------
# tasks (run in workers)

_ARRAYS: dict = {}


def _array(path: str, name: str, mode: str = "r"):
    import zarr

    key = (path, name, mode)
    if key not in _ARRAYS:
        _ARRAYS[key] = zarr.open_array(os.path.join(path, name), mode=mode, zarr_format=3)
    return _ARRAYS[key]


def predict_batch(spec: ModelSpec, store: str, origins: list[tuple[int, int]], grid: Grid):
    """Blend-weighted float16 logits (n, C, win_h, win_w) of the windows at ``origins``.

    The windows of a batch lie in one window row; their bounding box is read in one call, so each image chunk
    is decoded once per batch rather than once per window touching it."""
    image = _array(store, "image")
    y0, y1 = min(y for y, _ in origins), max(y for y, _ in origins) + grid.win_h
    x0, x1 = min(x for _, x in origins), max(x for _, x in origins) + grid.win_w
    box = image[y0:y1, x0:x1]
    batch = np.stack([box[y - y0 : y - y0 + grid.win_h, x - x0 : x - x0 + grid.win_w] for (y, x) in origins])
    return predict(spec, batch, grid.weight())


def blend_block(store: str, bounds: tuple[int, int, int, int], grid: Grid, sources: list, marker: str,
                probabilities: bool, n_classes: int, *batches):
    """Blend the windows touching ``bounds`` and write the chunk. ``sources``: (window origin, batch, row).

    The batches hold logits already multiplied by the window weight, so blending is a sum (in float32, in
    ascending window order) and the arg-max; probabilities divide by the sum of weights first."""
    y0, y1, x0, x1 = bounds
    acc = np.zeros((n_classes, y1 - y0, x1 - x0), np.float32)
    weight = grid.weight() if probabilities else None
    wsum = np.zeros((y1 - y0, x1 - x0), np.float32) if probabilities else None
    for (wy, wx), b, row in sources:  # ascending window index: the summation order is fixed
        a0, a1 = max(y0, wy), min(y1, wy + grid.win_h)
        b0, b1 = max(x0, wx), min(x1, wx + grid.win_w)
        target = acc[:, a0 - y0 : a1 - y0, b0 - x0 : b1 - x0]
        np.add(target, batches[b][row, :, a0 - wy : a1 - wy, b0 - wx : b1 - wx], out=target)
        if wsum is not None:
            wsum[a0 - y0 : a1 - y0, b0 - x0 : b1 - x0] += weight[a0 - wy : a1 - wy, b0 - wx : b1 - wx]
    labels = np.argmax(acc, axis=0).astype(np.uint8)
    try:
        _array(store, "labels", "r+")[y0:y1, x0:x1] = labels
        if probabilities:
            z = acc / wsum
            z -= z.max(axis=0, keepdims=True)
            np.exp(z, out=z)
            z /= z.sum(axis=0, keepdims=True)
            _array(store, "probabilities", "r+")[:, y0:y1, x0:x1] = np.rint(z * 255).astype(np.uint8)
        Path(marker).touch()
    except OSError as exc:
        raise BigsegError(f"{store}: writing the labels chunk at y={y0}, x={x0} failed ({exc})") from exc
    return np.bincount(labels.ravel(), minlength=n_classes)


# ---------------------------------------------------------------------------------------------------------
# preparing a run (on the client, before any compute)


def _progress_dir(store: Path) -> Path:
    return store / ".bigseg" / "labels-done"


def _marker(store: Path, bi: int, bj: int) -> Path:
    return _progress_dir(store) / f"{bi}.{bj}"


class StoreLock:
    """An exclusive lock file in the store: a second ``infer`` on the same store refuses to start."""

    def __init__(self, store: Path):
        self.path = store / ".bigseg" / "infer.lock"

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                other = self._read()
                if other and other.get("host") == me["host"] and not st.pid_alive(other.get("pid", -1)):
                    self.path.unlink(missing_ok=True)  # stale: its process is gone (killed run)
                    continue
                who = f"pid {other.get('pid')} on {other.get('host')}" if other else "another process"
                raise BigsegError(f"{self.path.parent.parent}: another 'bigseg infer' is running on this store "
                                  f"({who}); wait for it, or remove {self.path} if it is gone") from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            return self
        raise BigsegError(f"{self.path}: cannot take the store lock")

    def _read(self):
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


def resolve_input(input_path, out: str | None, echo=print, progress: bool = False) -> Path:
    """A store for INPUT: the store itself, or (for an image) the store it was or will be ingested to."""
    from bigseg.ingest import ingest

    p = Path(input_path)
    if st.is_store(p):
        if out and Path(out).resolve() != p.resolve():
            raise BigsegError(f"{p} is already a store; -o applies only when INPUT is an image file")
        return p
    if p.is_dir():
        raise BigsegError(f"{p}: a folder but not a zarr store")
    store = Path(out) if out else p.with_suffix(".zarr")
    if store.exists():
        group = st.open_store(store)
        src = group.attrs.get("source", {})
        same = src.get("path") == str(p.resolve()) and p.exists() and src.get("file_size") == p.stat().st_size \
            and src.get("mtime") == int(p.stat().st_mtime)
        if not same:
            raise BigsegError(f"{store} exists but was not ingested from {p} as it is now; "
                              f"choose another store with -o or delete it")
        echo(f"using {store} (already ingested from {p})")
        return store
    s = ingest(p, store, progress=progress)
    echo(f"ingested {p} -> {store} ({s['width']}x{s['height']})")
    return store


def default_workers(device: str) -> int:
    if device == "cuda":
        import torch

        return max(1, torch.cuda.device_count())
    from bigseg.infer.cluster import cpu_count

    return max(1, cpu_count() // 2)


def infer(input_path, out: str | None = None, model: str | None = None, options: InferOptions | None = None,
          echo=print) -> dict:
    """Segment INPUT (image file or slab store) into the store's ``labels``; returns a summary with stats.

    Everything that can be checked is checked before any compute: the checkpoint (safe load, classes against
    the store's truth), the window, the device, the scheduler, an existing result, a concurrent run.
    """
    from bigseg.infer.cluster import cpu_count, dask_client

    o = options or InferOptions()
    if not MIN_WINDOW <= o.window <= MAX_WINDOW:
        raise BigsegError(f"--window must be between {MIN_WINDOW} and {MAX_WINDOW} pixels, got {o.window}")
    if not 0 <= o.overlap <= o.window // 2:
        raise BigsegError(f"--overlap must be between 0 and half the window ({o.window // 2}), got {o.overlap}")
    if o.stripe is not None and o.stripe < 1:
        raise BigsegError(f"--stripe must be a positive width in pixels, got {o.stripe}")
    if o.device not in ("cpu", "cuda"):
        raise BigsegError(f"unknown device {o.device!r}; use cpu or cuda")
    if o.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise BigsegError("--device cuda: no CUDA device is visible to torch on this machine")
    batch = o.batch or (8 if o.device == "cuda" else 2)
    if batch < 1:
        raise BigsegError(f"--batch must be at least 1, got {batch}")
    ckpt = Path(model) if model else BUNDLED
    if model is None:
        echo(f"model: the bundled default {BUNDLED.name} (trained on synthetic slabs; see README)")
    kind, backend, meta = _model_and_backend(ckpt, o)
    workers = o.workers if o.workers is not None else default_workers(o.device)
    if workers < 0:
        raise BigsegError(f"--workers must be 0 or more, got {workers}")
    threads = o.threads or max(1, cpu_count() // max(workers, 1))
    t_start = time.perf_counter()
    # the cluster is reached (or started) before the store is touched: an unreachable scheduler must not
    # cost the labels already there
    with dask_client(workers, o.scheduler, echo, o.device, threads) as client:
        t_ready = time.perf_counter()
        if meta is None:  # a checkpoint: loaded safely where the model runs (this process needs no torch)
            meta = _on_a_worker(client, _checkpoint_meta, ckpt)
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
        height, width = group["image"].shape[:2]
        cy, cx = group["image"].chunks[:2]
        grid = Grid(height, width, o.window, o.overlap)
        digest = file_digest(ckpt)
        run = {"checkpoint_sha256": digest, "arch": meta["arch"], "window": o.window, "overlap": o.overlap,
               "batch": batch, "classes": [c.name for c in classes], "backend": backend}
        with StoreLock(store):
            summary = _run(group, store, run, classes, o, grid, (cy, cx), batch, threads, ckpt, kind, backend,
                           digest, client, echo)
    mpx = height * width / 1e6
    computed_mpx = mpx * summary["pending"] / max(summary["chunks"], 1)
    return {"store": str(store), "width": width, "height": height, "windows": summary["windows"],
            "windows_computed": summary["windows_computed"], "chunks": summary["chunks"],
            "chunks_skipped": summary["chunks"] - summary["pending"], "seconds": summary["seconds"],
            "startup_seconds": t_ready - t_start, "megapixels_per_second": computed_mpx / summary["seconds"],
            "workers": workers, "device": o.device, "stats": summary["stats"], "run": run}


def _on_a_worker(client, function, *args):
    """``function(*args)`` on a dask worker (in this process without a cluster); its exceptions re-raised here."""
    if client is None:
        return function(*args)
    return client.submit(function, *args, pure=False).result()


def _checkpoint_meta(ckpt: Path) -> dict:
    """The checkpoint's metadata, after a full safe load (weights only, and they must fit the architecture)."""
    _, meta = load(ckpt)
    return meta


def _run(group, store: Path, run: dict, classes, o: InferOptions, grid: Grid, chunks, batch: int, threads: int,
         ckpt: Path, kind: str, backend: str, digest: str, client, echo) -> dict:
    """Prepare the outputs, plan and execute; mark the outputs complete and add their statistics."""
    from bigseg.report.stats import class_statistics

    pending, skipped_chunks = _prepare_outputs(group, store, run, classes, o, chunks, echo)
    model_file, model_digest = ckpt.resolve(), digest
    if backend == "onnxruntime" and kind == "checkpoint":
        model_file = _onnx_export_in_store(ckpt, digest, store, client, echo)
        model_digest = file_digest(model_file)
    spec = ModelSpec(str(model_file), model_digest, o.device, threads if o.device == "cpu" else 0, o.amp,
                     backend=backend)
    cx = chunks[1]
    plan = _plan(grid, store, pending, batch, cx, stripe_columns(grid, cx, batch, o.stripe))
    n_windows, n_needed = plan.n_windows, plan.n_computed
    total_chunks = len(pending) + skipped_chunks
    if skipped_chunks:
        echo(f"resuming: {skipped_chunks} of {total_chunks} chunks already done; "
             f"skipping {n_windows - n_needed} of {n_windows} windows")
    t0 = time.perf_counter()
    _execute(plan, grid, store, spec, client, o.probabilities, len(classes), o.progress)
    elapsed = time.perf_counter() - t0
    labels = group["labels"]
    st.set_complete(labels)
    if o.probabilities:
        st.set_complete(group["probabilities"])
    stats = class_statistics(store, client=client)
    labels.attrs["stats"] = stats
    shutil.rmtree(_progress_dir(store), ignore_errors=True)
    shutil.rmtree(_spill_dir(store), ignore_errors=True)
    st.consolidate(store)
    return {"pending": len(pending), "chunks": total_chunks, "windows": n_windows, "windows_computed": n_needed,
            "seconds": elapsed, "stats": stats}


def _model_and_backend(ckpt: Path, o: InferOptions) -> tuple[str, str, dict | None]:
    """(file kind, backend, metadata or None for a checkpoint) for a model file; errors for combinations that
    cannot run. Needs no torch."""
    from bigseg.export import model_kind, onnx_available, read_onnx_meta

    kind = model_kind(ckpt)
    backend = o.backend or ("onnxruntime" if kind == "onnx" else "torch")
    if backend not in BACKENDS:
        raise BigsegError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if kind == "torchscript":
        raise BigsegError(f"{ckpt}: a TorchScript export (for libtorch / torch.jit.load); bigseg infer runs a "
                          "checkpoint, or an ONNX export with --backend onnxruntime")
    if kind == "onnx" and backend != "onnxruntime":
        raise BigsegError(f"{ckpt}: an ONNX file runs with --backend onnxruntime, not {backend}")
    if backend == "onnxruntime":
        onnx_available()
        if o.device == "cuda":
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BigsegError("--backend onnxruntime --device cuda needs the onnxruntime-gpu package "
                                  "(this onnxruntime has no CUDA provider); or use --backend torch")
    if kind == "onnx":
        return kind, backend, read_onnx_meta(ckpt)
    return kind, backend, None  # a checkpoint: _checkpoint_meta loads it where torch is (a worker)


def _onnx_export_in_store(ckpt: Path, digest: str, store: Path, client, echo) -> Path:
    """The checkpoint's verified ONNX export, made once (on a worker: it needs torch) and kept in the store's
    .bigseg/models/."""
    path = store / ".bigseg" / "models" / f"{digest[:16]}.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        echo(f"exporting {ckpt.name} to ONNX for onnxruntime ({path})")
        r = _on_a_worker(client, _export_onnx, ckpt, path)
        echo(f"  checked against PyTorch: max |logit difference| {r['verified']['fp32_max_abs_logit_diff']:.1e}")
    return path


def _export_onnx(ckpt: Path, path: Path) -> dict:
    from bigseg.export import export

    return export(ckpt, path, "onnx", echo=lambda *_: None)


def _prepare_outputs(group, store: Path, run: dict, classes, o: InferOptions, chunks, echo):
    """Create (or validate for resume) labels/probabilities; return (pending chunk list, skipped count)."""
    cy, cx = chunks
    height, width = group["image"].shape[:2]
    existing = group.get("labels")
    resume = False
    if existing is not None and not o.overwrite:
        same = existing.attrs.get("run") == run and existing.shape == (height, width) \
            and existing.chunks == (cy, cx) and (not o.probabilities or "probabilities" in group)
        if st.is_complete(existing):
            raise BigsegError(f"{store}: labels are already complete; pass --overwrite to compute them again")
        if not same:
            raise BigsegError(f"{store}: holds unfinished labels of a different run (model, window, overlap or batch "
                              f"differ); rerun with the same options to resume, or pass --overwrite")
        resume = True
    if not resume:
        shutil.rmtree(_progress_dir(store), ignore_errors=True)
        shutil.rmtree(_spill_dir(store), ignore_errors=True)
        for name in ("labels", "probabilities"):
            if name in group:
                del group[name]
        st.create_array(group, "labels", (height, width), (cy, cx), ("y", "x"), attrs={"run": run})
        if o.probabilities:
            st.create_array(group, "probabilities", (len(classes), height, width), (len(classes), cy, cx),
                            ("class", "y", "x"), attrs={"encoding": "round(255 * softmax(blended logits))"})
        if "truth" not in group:
            from bigseg.classes import table_to_attrs

            group.attrs["classes"] = table_to_attrs(classes)
        st.consolidate(store)
    _progress_dir(store).mkdir(parents=True, exist_ok=True)
    pending, skipped = [], 0
    for bi, y0 in enumerate(range(0, height, cy)):
        for bj, x0 in enumerate(range(0, width, cx)):
            if resume and _marker(store, bi, bj).exists():
                skipped += 1
            else:
                pending.append((bi, bj, (y0, min(y0 + cy, height), x0, min(x0 + cx, width))))
    return pending, skipped


STRIPE_PX = 8192
"""Default width of the column stripes the image is processed in (rounded up to whole chunks, and to at least four
batches of windows). Memory holds a few window rows of one stripe, so it is bounded by the stripe's width, not the
image's; the windows on a stripe's right border are also needed by the next stripe and are kept on disk
(``.bigseg/spill``) for it, trimmed to the columns it needs."""

ROWS_IN_FLIGHT = 2
"""Chunk rows of a stripe submitted at a time (more when many workers need feeding). A window row's logits are
kept only until the last chunk row of the stripe needing them is blended. (Letting dask order one big graph held
far more: 5.9 GB for a 40000 x 25000 image on one CPU worker; whole-width chunk rows held memory proportional to
the image's width.)"""


@dataclass
class _Plan:
    """What to compute, in the order to compute it: predict batches and the chunk blends that use them.

    The pending chunks are grouped by (stripe, chunk row) and run stripe by stripe, top to bottom. A batch used by
    several stripes is computed by the first, which writes the columns the later ones need to a spill file; the
    later stripes read it back (or compute it again if the file is gone)."""

    batches: dict  # (window row, k) -> window origins of that batch
    groups: list  # [(stripe, chunk row, [(bounds, sources, deps, marker), ...])] in execution order
    last_use: dict  # ((window row, k), stripe) -> index in ``groups`` of the last group needing it in that stripe
    first_stripe: dict  # (window row, k) -> the first stripe that needs it (the one that computes it)
    last_stripe: dict  # (window row, k) -> the last stripe that needs it
    spill: dict  # (window row, k) -> (spill file, first column kept): batches needed by more than one stripe
    n_windows: int
    n_computed: int

    def release(self, inst) -> None:
        """After the last use of (batch, stripe): the spill file goes once the last stripe needing it is done."""
        key, stripe = inst
        if key in self.spill and stripe == self.last_stripe[key]:
            Path(self.spill[key][0]).unlink(missing_ok=True)

    def source(self, key, stripe) -> tuple:
        """batch_logits's (spill, keep_from, reuse) for ``key`` in ``stripe``."""
        path, keep_from = self.spill.get(key, (None, 0))
        return path, keep_from, stripe != self.first_stripe[key]


def stripe_columns(grid: Grid, chunk_w: int, batch: int, stripe_px: int | None) -> int:
    """Chunk columns per stripe: ``stripe_px`` rounded up to whole chunks; by default STRIPE_PX, but at least four
    batches of windows wide (so that few batches straddle a stripe's border)."""
    want = stripe_px or max(STRIPE_PX, 4 * batch * (grid.window - grid.overlap))
    return max(1, -(-want // chunk_w))


def _plan(grid: Grid, store: Path, pending, batch: int, chunk_w: int, stripe_cols: int) -> _Plan:
    """Batches of windows for the pending chunks; each window is computed once, in one batch."""
    windows = grid.windows()
    n_x = len(grid.xs)
    # the batch partition depends on the grid only: batch k of a window row holds its windows k*B .. k*B+B-1
    batch_of = {idx: (idx // n_x, (idx % n_x) // batch, (idx % n_x) % batch) for idx in range(len(windows))}
    batches, by_group = {}, {}
    for bi, bj, bounds in pending:
        touching = grid.windows_touching(*bounds)
        deps = sorted({batch_of[w][:2] for w in touching})
        pos = {key: i for i, key in enumerate(deps)}
        sources = [(windows[w], pos[batch_of[w][:2]], batch_of[w][2]) for w in touching]
        for row, k in deps:
            if (row, k) not in batches:
                cols = range(k * batch, min((k + 1) * batch, n_x))
                batches[(row, k)] = [windows[row * n_x + c] for c in cols]
        by_group.setdefault((bj // stripe_cols, bi), []).append((bounds, sources, deps, str(_marker(store, bi, bj))))
    groups = [(stripe, bi, by_group[(stripe, bi)]) for stripe, bi in sorted(by_group)]
    last_use, stripes_of = {}, {}
    for gi, (stripe, _, blends) in enumerate(groups):
        for _, _, deps, _ in blends:
            for key in deps:
                last_use[(key, stripe)] = gi
                stripes_of.setdefault(key, []).append(stripe)
    first_stripe = {key: min(ss) for key, ss in stripes_of.items()}
    last_stripe = {key: max(ss) for key, ss in stripes_of.items()}
    spill_dir = _spill_dir(store)
    spill = {}
    for key, ss in stripes_of.items():
        later = sorted(set(ss) - {first_stripe[key]})
        if later:
            spill[key] = (str(spill_dir / f"{key[0]}.{key[1]}.npz"), later[0] * stripe_cols * chunk_w)
    n_computed = sum(len(origins) for origins in batches.values())
    return _Plan(batches, groups, last_use, first_stripe, last_stripe, spill, len(windows), n_computed)


def _spill_dir(store: Path) -> Path:
    return store / ".bigseg" / "spill"


def batch_logits(spec: ModelSpec, store: str, origins: list[tuple[int, int]], grid: Grid, spill: str | None = None,
                 keep_from: int = 0, reuse: bool = False):
    """A batch's weighted logits: read back from its spill file (``reuse``, when the file is there), else computed
    (and, when ``spill`` is given, written there: each window's columns from image column ``keep_from`` on)."""
    if reuse and spill and os.path.exists(spill):
        saved = np.load(spill)
        out = None
        for i in range(len(origins)):
            part = saved[f"w{i}"]
            if out is None:
                out = np.zeros((len(origins), part.shape[0], grid.win_h, grid.win_w), part.dtype)
            out[i, :, :, grid.win_w - part.shape[2] :] = part
        return out
    out = predict_batch(spec, store, origins, grid)
    if spill:
        parts = {f"w{i}": out[i, :, :, min(max(0, keep_from - wx), grid.win_w) :] for i, (_, wx) in enumerate(origins)}
        tmp = f"{spill}.{os.getpid()}.tmp.npz"
        try:
            np.savez(tmp, **parts)
            os.replace(tmp, spill)
        except OSError as exc:
            raise BigsegError(f"{store}: writing window logits for the next stripe to {spill} failed ({exc})") from exc
    return out


def _execute(plan: _Plan, grid: Grid, store: Path, spec: ModelSpec, client, probabilities: bool, n_classes: int,
             progress: bool):
    """Run the plan group by group (stripe by stripe, chunk row by chunk row), in this process (client None) or
    on the dask cluster."""
    from bigseg.progress import make_bar

    store_s = str(store)
    if plan.spill:
        _spill_dir(store).mkdir(parents=True, exist_ok=True)
    n_chunks = sum(len(g[2]) for g in plan.groups)
    mpx_per_chunk = grid.height * grid.width / 1e6 / max(1, n_chunks)
    bar = make_bar(n_chunks, "infer", "chunk", enabled=progress, scale=mpx_per_chunk, scaled_unit="Mpx")
    try:
        if client is None:
            results = {}
            for gi, (stripe, _, blends) in enumerate(plan.groups):
                for bounds, sources, deps, marker in blends:
                    for key in deps:
                        if (key, stripe) not in results:
                            results[(key, stripe)] = batch_logits(spec, store_s, plan.batches[key], grid,
                                                                  *plan.source(key, stripe))
                    blend_block(store_s, bounds, grid, sources, marker, probabilities, n_classes,
                                *[results[(d, stripe)] for d in deps])
                    bar.update(1)
                for inst in [i for i in results if plan.last_use[i] <= gi]:
                    del results[inst]  # no later chunk row of this stripe needs these logits
                    plan.release(inst)
            return
        _execute_on_cluster(plan, grid, store_s, spec, client, probabilities, n_classes, bar)
    finally:
        bar.close()


def _execute_on_cluster(plan, grid, store_s, spec, client, probabilities, n_classes, bar):
    from distributed import as_completed

    futures_of, in_flight = {}, []  # in_flight: (group index, blend futures) in order
    threads = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or 1
    batches_per_group = max(1, len(plan.batches) // max(1, len(plan.groups)))
    rows_in_flight = max(ROWS_IN_FLIGHT, -(-2 * threads // batches_per_group))

    def submit(gi):
        stripe, _, blends = plan.groups[gi]
        futures = []
        for bounds, sources, deps, marker in blends:
            for key in deps:
                if (key, stripe) not in futures_of:
                    futures_of[(key, stripe)] = client.submit(
                        batch_logits, spec, store_s, plan.batches[key], grid, *plan.source(key, stripe),
                        key=f"predict-{key[0]}-{key[1]}-{stripe}-{spec.digest[:8]}")
            futures.append(client.submit(blend_block, store_s, bounds, grid, sources, marker, probabilities,
                                         n_classes, *[futures_of[(d, stripe)] for d in deps],
                                         key=f"blend-{os.path.basename(marker)}-{spec.digest[:8]}"))
        in_flight.append((gi, futures))

    next_group = 0
    try:
        while next_group < len(plan.groups) or in_flight:
            while next_group < len(plan.groups) and len(in_flight) < rows_in_flight:
                submit(next_group)
                next_group += 1
            gi, futures = in_flight.pop(0)
            for fut in as_completed(futures):
                fut.result()  # re-raises a task's exception here
                bar.update(1)
            for inst in [i for i in futures_of if plan.last_use[i] <= gi]:
                del futures_of[inst]  # releases the logits on the workers
                plan.release(inst)
    except BaseException:
        client.cancel([f for _, fs in in_flight for f in fs] + list(futures_of.values()))
        raise
