"""What inference writes besides the chunks themselves: the store lock, per-chunk completion markers (resume),
spill files (window logits kept for the next stripe), and the creation and completion of the output arrays.

Layout under ``STORE/.bigseg/``: ``infer.lock`` (pid, host), ``labels-done/BI.BJ`` (one per finished label chunk;
its content is the chunk's measurements, JSON), ``labels-ruled-done/BI.BJ`` (with an adapted model's void-object
rule: one per chunk it judged, with the counts of the labels written), ``spill/ROW.K.npz``. Markers and spill
files are removed when the run completes; a killed run leaves them for the next run to resume from.
"""

from __future__ import annotations

import json
from pathlib import Path

from bigseg import pyramid
from bigseg import store as st
from bigseg.classes import table_to_attrs
from bigseg.errors import BigsegError
from bigseg.infer.confidence import create_array as create_confidence
from bigseg.infer.confidence import summarize
from bigseg.infer.plan import BatchKey, Bounds
from bigseg.report.stats import class_statistics, statistics_from_counts
from bigseg.store import files


def progress_dir(store) -> str:
    return st.join(store, st.LABELS_DONE)


def marker(store, bi: int, bj: int) -> str:
    return st.join(progress_dir(store), f"{bi}.{bj}")


def ruled_dir(store) -> str:
    return st.join(store, st.RULED_DONE)


def ruled_marker(store, bi: int, bj: int) -> str:
    return st.join(ruled_dir(store), f"{bi}.{bj}")


def spill_dir(store) -> str:
    return st.join(store, st.SPILL)


def spill_file(store, key: BatchKey) -> str:
    return st.join(spill_dir(store), f"{key.row}.{key.k}.npz")


def clear_run_files(store) -> None:
    files.rmtree(progress_dir(store))
    files.rmtree(ruled_dir(store))
    files.rmtree(spill_dir(store))


def done_markers(store, folder: str | None = None) -> list[str]:
    """The names of the finished chunks' markers (``BI.BJ``) in ``folder`` (default: the network's chunks)."""
    return [n for n in files.names(folder or progress_dir(store)) if not n.endswith(".tmp")]


def read_markers(store, folder: str | None = None) -> list[dict]:
    """The measurements every finished chunk recorded ({} for a marker without them: an older bigseg's)."""
    folder = folder or progress_dir(store)
    out = []
    for name in done_markers(store, folder):
        try:
            out.append(json.loads(files.read_bytes(st.join(folder, name)) or b"{}"))
        except (OSError, ValueError):
            out.append({})
    return out


def StoreLock(store):  # noqa: N802 - used as a context manager, as the class it was
    """An exclusive lock in the store (``.bigseg/infer.lock``): a second ``infer`` on the same store refuses to
    start (:func:`bigseg.store.pid_lock`; on object storage :func:`bigseg.store.object_lock`)."""
    lock = st.join(store, st.INFER_LOCK)

    def busy(other):
        who = f"pid {other.get('pid')} on {other.get('host', '?')}" if other else "another process"
        return (f"{store}: another 'bigseg infer' is running on this store ({who}); wait for it, or remove {lock} if "
                "it is gone")

    return st.object_lock(lock, busy) if st.is_url(store) else st.pid_lock(Path(lock), busy)


STAGED = st.STAGED  # (the layout is the store module's)
OUTPUTS = ("labels", "confidence", "probabilities")
NETWORK_LABELS = "labels_network"
"""Where the network's labels are staged when an adapted model's void-object rule judges them into ``labels``;
removed with the stage when the run finishes."""
LABEL_PYRAMID = pyramid.LABEL_PYRAMIDS["labels"]
"""Built strip by strip during the run (:func:`bigseg.infer.tasks.pyramid_strip`), staged with the outputs."""


staged = st.staged


def refuse_finished(group, store, overwrite: bool) -> None:
    """Finished labels are replaced only with ``overwrite`` (checked before a model is read, and again under the
    store's lock)."""
    if not overwrite and "labels" in group and st.is_complete(st.array(group, "labels")):
        raise BigsegError(f"{store}: labels are already complete; pass --overwrite to compute them again")


def prepare(group, store, run: dict, classes, *, overwrite: bool, probabilities: bool,
            chunks: tuple[int, int], pyramid_factors: list[int], model: dict | None = None, rule: bool = False
            ) -> tuple[list[tuple[int, int, Bounds]], int, list[tuple[int, int, Bounds]]]:
    """Create (or validate for resume) the staged labels / confidence / probabilities (with ``rule``: the
    network's labels too); return (pending chunks, skipped count, chunks the rule has yet to judge: all of them
    with ``rule``, else none). Refuses finished labels without ``overwrite``, before anything is touched."""
    import zarr

    cy, cx = chunks
    height, width = st.array(group, "image").shape[:2]
    refuse_finished(group, store, overwrite)
    stage_path = st.join(store, STAGED)
    stage = zarr.open_group(stage_path, mode="r+", zarr_format=3) if files.exists(st.join(stage_path, "zarr.json")) \
        else None
    resume = False
    if stage is not None and "labels" in stage and not overwrite:
        old = st.array(stage, "labels")
        made = "confidence" in stage  # the last array a run stages: without it the staging itself was cut short
        same = old.attrs.get("run") == run and old.shape == (height, width) and old.chunks == (cy, cx) \
            and (not probabilities or "probabilities" in stage or not made) \
            and (not rule or NETWORK_LABELS in stage or not made)  # (an older bigseg judged inside the blend)
        if not same:
            raise BigsegError(f"{store}: holds unfinished labels of a different run (model, window, overlap or batch "
                              f"differ); rerun with the same options to resume, or pass --overwrite")
        resume = made  # a stage cut short while it was made (a full disk) holds no chunk: made again
    if not resume:
        clear_run_files(store)
        files.rmtree(stage_path)
        stage = zarr.open_group(stage_path, mode="w", zarr_format=3)
        st.create_array(stage, "labels", (height, width), (cy, cx), ("y", "x"), attrs={"run": run, "model": model})
        if rule:  # the run record says so: a resume never mixes runs with and without a rule
            st.create_array(stage, NETWORK_LABELS, (height, width), (cy, cx), ("y", "x"))
        if probabilities:
            st.create_array(stage, "probabilities", (len(classes), height, width), (len(classes), cy, cx),
                            ("class", "y", "x"), attrs={"encoding": "round(255 * softmax(blended logits))"})
        create_confidence(stage, (height, width), (cy, cx))
        if "truth" not in group:
            group.attrs["classes"] = table_to_attrs(classes)
            st.consolidate(store)
    assert stage is not None
    if LABEL_PYRAMID not in stage:  # also for a stage an older bigseg left without one
        pyramid.create_levels(stage, LABEL_PYRAMID, height, width, pyramid_factors)
    files.makedirs(progress_dir(store))
    if rule:
        files.makedirs(ruled_dir(store))
    done = set(done_markers(store)) if resume else set()
    judged = set(done_markers(store, ruled_dir(store))) if resume and rule else set()
    pending, skipped, to_judge = [], 0, []
    for bi, y0 in enumerate(range(0, height, cy)):
        for bj, x0 in enumerate(range(0, width, cx)):
            bounds = (y0, min(y0 + cy, height), x0, min(x0 + cx, width))
            if f"{bi}.{bj}" in done:
                skipped += 1
            else:
                pending.append((bi, bj, bounds))
            if rule and f"{bi}.{bj}" not in judged:
                to_judge.append((bi, bj, bounds))
    return pending, skipped, to_judge


def discard_if_empty(store) -> None:
    """After a failed run: its staged outputs and run files go when no chunk was finished (nothing to resume;
    a model that fails on its first batch leaves the store as it was)."""
    if not done_markers(store):
        files.rmtree(st.join(store, STAGED))
        clear_run_files(store)


def counted_by_chunks(chunks: list[dict], labels):
    """The labels' class counts summed from the chunks' markers, or None unless every chunk of ``labels`` has one
    with its counts (a run resumed from an older bigseg's markers is counted again from the labels)."""
    import numpy as np

    n_chunks = -(-labels.shape[0] // labels.chunks[0]) * -(-labels.shape[1] // labels.chunks[1])
    if len(chunks) != n_chunks or any("hard_counts" not in c for c in chunks):
        return None
    return np.sum([c["hard_counts"] for c in chunks], axis=0, dtype=np.int64)


def finish(group, store, client, stability: dict | None = None) -> dict:
    """Attach the statistics (summed from the chunks' markers: no second pass over the labels) and the confidence
    summary (with ``stability``: the sampled windows' view and feature figures) to the staged labels, mark the
    staged outputs and label pyramid complete, move them into the store in place of the old ones, remove the
    run's files."""
    import zarr

    chunks = read_markers(store)  # the network's chunks: the confidence figures are the network's
    summary = summarize(chunks, group)
    if summary is not None and stability is not None:
        summary["stability"] = stability
    stage = zarr.open_group(st.join(store, STAGED), mode="r+", zarr_format=3)
    labels = st.array(stage, "labels")  # one Array object per array: each holds its own copy of the attributes
    if NETWORK_LABELS in stage:  # a void-object rule judged the labels: their counts are in its markers
        chunks = read_markers(store, ruled_dir(store))
    counts = counted_by_chunks(chunks, labels)
    if counts is not None:  # every chunk counted its labels when it wrote them: no second pass over the mask
        stats = statistics_from_counts(counts, st.class_table(group), st.pixel_size_um(group))
    else:
        stats = class_statistics(store, client=client, array=staged("labels"))
    stats["array"] = "labels"
    if any("relabelled_objects" in c for c in chunks):  # an adapted model's void-object rule ran
        stats["object_rule"] = {"relabelled_objects": sum(int(c.get("relabelled_objects", 0)) for c in chunks),
                                "relabelled_pixels": sum(int(c.get("relabelled_pixels", 0)) for c in chunks)}
        if any("grown_pixels" in c for c in chunks):  # the rule grows the voids it keeps to their edges
            stats["object_rule"]["grown_pixels"] = sum(int(c.get("grown_pixels", 0)) for c in chunks)
    labels.attrs.update({"stats": stats, **({"confidence": summary} if summary is not None else {})})
    st.set_complete(labels)
    for name in OUTPUTS[1:]:
        if name in stage:
            st.set_complete(st.array(stage, name))
    levels = stage[LABEL_PYRAMID]
    assert isinstance(levels, zarr.Group)
    for level in levels.array_values():
        st.set_complete(level)
    # the old outputs go, all of them: they would not match the new labels
    if st.is_url(store):  # object storage: copied in, the labels' metadata last (no rename there)
        st.swap_in_objects(str(store), st.join(store, STAGED), (*OUTPUTS, LABEL_PYRAMID))
    else:
        st.swap_in(Path(store), Path(store) / STAGED, (*OUTPUTS, LABEL_PYRAMID), "outputs")
    files.rmtree(st.join(store, STAGED))
    clear_run_files(store)
    st.consolidate(store)
    return stats
