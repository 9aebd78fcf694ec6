"""The store a run works on: INPUT itself when it is a store, else the store its image is (or will be) ingested to."""

from __future__ import annotations

from pathlib import Path

from bigseg import store as st
from bigseg.errors import BigsegError
from bigseg.infer.outputs import refuse_finished
from bigseg.ingest import ingest
from bigseg.paths import refuse_overlap


def check_input(input_path, out: str | None, overwrite: bool = False) -> None:
    """What can be said about INPUT and -o before a cluster is started or a model loaded: cheap, and never a
    traceback. Finished labels without ``overwrite`` are refused here, not after seconds of loading a model."""
    if st.is_url(input_path):  # a store on object storage (an image there is ingested first: bigseg ingest URL URL)
        _check_url_store(str(input_path), out)
        refuse_finished(st.open_store(str(input_path)), input_path, overwrite)
        return
    p = Path(input_path)
    if not p.exists():
        raise BigsegError(f"{p}: no such image or store")
    store = p if st.is_store(p) else (Path(out) if out else p.with_suffix(".zarr"))
    if st.is_store(store):
        refuse_finished(st.open_store(store), store, overwrite)
    if st.is_store(p):
        if out and Path(out).resolve() != p.resolve():
            raise BigsegError(f"{p} is already a store; -o applies only when INPUT is an image file")
        return
    if p.is_dir():
        raise BigsegError(f"{p}: a folder but not a zarr store")
    refuse_overlap(out, "-o", ("image", p))


def _check_url_store(url: str, out: str | None) -> None:
    if not st.is_store(url):
        raise BigsegError(f"{url}: no slab store there (an image on object storage is ingested first: "
                          f"bigseg ingest {url} STORE-URL)")
    if out and out.rstrip("/") != url.rstrip("/"):
        raise BigsegError(f"{url} is already a store; -o applies only when INPUT is an image file")


def resolve_input(input_path, out: str | None, echo=print, progress: bool | None = False) -> Path | str:
    """A store for INPUT: the store itself (a path, or an fsspec URL kept as text), or (for an image) the store it
    was or will be ingested to."""
    if st.is_url(input_path):
        _check_url_store(str(input_path), out)
        return str(input_path).rstrip("/")
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
        src = st.attr(group, "source", {})
        same = src.get("path") == str(p.resolve()) and p.exists() and src.get("file_size") == p.stat().st_size \
            and src.get("mtime") == int(p.stat().st_mtime)
        if not same:
            raise BigsegError(f"{store} exists but was not ingested from {p} as it is now; "
                              f"choose another store with -o or delete it")
        echo(f"using {store} (already ingested from {p})")
        return store
    truth = truth_beside(p)
    s = ingest(p, store, truth=truth, progress=progress)
    echo(f"ingested {p} -> {store} ({s.width}x{s.height})"
         + (f", with the truth mask found beside it ({truth.name}; 'bigseg evaluate' and 'report --truth' use it)"
            if truth else ""))
    return store


TRUTH_SUFFIXES = (".truth", "_truth", "_mask", ".mask", "_gt")
"""Names of a truth mask beside an image (``slab.jpg`` -> ``slab.truth.png``: what ``bigseg synth`` writes; the
importers' ``_mask``, ``_gt``...)."""


def truth_beside(image: Path) -> Path | None:
    """A truth mask next to ``image`` by the names bigseg and the importers use, or None."""
    for suffix in TRUTH_SUFFIXES:
        for ext in (".png", ".tif", ".tiff"):
            candidate = image.with_name(image.stem + suffix + ext)
            if candidate.is_file() and candidate != image:
                return candidate
    return None
