"""The slab's names and how to open them: arrays, attributes, pyramids' factors, the ``.bigseg`` folder's paths
(the layout itself is :mod:`bigseg.store`'s docstring)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Literal, cast

import zarr
import zarr.codecs

from bigseg import __version__
from bigseg.classes import CONCRETE, ClassInfo, table_from_attrs, table_to_attrs
from bigseg.errors import BigsegError

FORMAT_VERSION = 1


def compressor():
    """zstd level 3 for every array: images at ~2:1, label masks (long runs of few values) to a few percent."""
    return zarr.codecs.ZstdCodec(level=3)


ALL_CHUNKS = "all_chunks_written"
"""Array attribute: every chunk is stored, even one equal to the fill value (zarr skips those by default), so a
missing chunk file means damage, not zeros. Arrays bigseg creates carry it; older stores are read as before."""


def is_store(path: str | os.PathLike) -> bool:
    if is_url(path):
        import fsspec

        try:
            fs, root = fsspec.core.url_to_fs(str(path))
            return bool(fs.exists(f"{root.rstrip('/')}/zarr.json"))
        except Exception:  # no backend for the protocol, no credentials, no network: not a store we can open
            return False
    p = Path(path)
    return p.is_dir() and (p / "zarr.json").is_file()


def is_url(path) -> bool:
    """An fsspec URL (``s3://bucket/slab.zarr``, ``gs://``, ``https://``, ``file://``...) rather than a path."""
    return "://" in str(path)


Mode = Literal["r", "r+", "a", "w", "w-"]


def _open_url(url: str, mode: Mode) -> zarr.Group:
    try:
        return zarr.open_group(url, mode=mode, zarr_format=3, use_consolidated=False)
    except FileNotFoundError as exc:
        raise BigsegError(f"{url}: no such store") from exc
    except Exception as exc:  # missing fsspec backend (s3fs, gcsfs...), credentials, network, broken metadata
        raise BigsegError(f"{url}: cannot open as a zarr v3 group ({type(exc).__name__}: {exc})") from exc


def open_store(path: str | os.PathLike, mode: Mode = "r") -> zarr.Group:
    """Open an existing slab store (``mode`` 'r' or 'r+'); clear error if it is not one.

    ``path`` may be an fsspec URL (read by training and ``info``; the backend package, e.g. s3fs, must be
    installed); local paths are checked first for a clearer message."""
    if is_url(path):
        group = _open_url(str(path), mode)
        return _check_slab(group, path)
    p = Path(path)
    if not p.exists():
        raise BigsegError(f"{p}: no such store")
    if p.is_file():
        raise BigsegError(f"{p}: a file, not a zarr store; a store is a folder made by 'bigseg ingest IMAGE STORE'")
    if not is_store(p):
        raise BigsegError(f"{p}: not a zarr store (no zarr.json); make one with 'bigseg ingest IMAGE {p}'")
    _check_metadata(p)
    try:
        # never through consolidated metadata (kept for xarray's benefit; stale while a writer works)
        group = zarr.open_group(str(p), mode=mode, zarr_format=3, use_consolidated=False)
    except Exception as exc:  # zarr raises many kinds for broken metadata
        raise BigsegError(f"{p}: cannot open as a zarr v3 group ({exc})") from exc
    return _check_slab(group, p)


def _check_metadata(p: Path) -> None:
    """Every metadata file of the store (group and arrays, two levels down) parses: a truncated or edited one is
    named here, in one line, rather than failing somewhere inside zarr."""
    files = [p / "zarr.json", *p.glob("*/zarr.json"), *p.glob("*/*/zarr.json")]
    for f in files:
        try:
            meta = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise BigsegError(f"{f}: unreadable zarr metadata ({first_line(exc)}); the store is damaged") from exc
        if not isinstance(meta, dict) or meta.get("zarr_format") != 3:
            raise BigsegError(f"{f}: not zarr v3 metadata; the store is damaged")


def _check_slab(group: zarr.Group, p) -> zarr.Group:
    if "bigseg" not in group.attrs:
        raise BigsegError(f"{p}: a zarr group, but not a bigseg slab store (no 'bigseg' attrs)")
    if "image" not in group or not is_complete(group["image"]):
        raise BigsegError(f"{p}: its image array is missing or incomplete; ingest the image again with --overwrite")
    return group


def array(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of ``group`` (an error naming it when it is a group)."""
    member = group[name]
    if not isinstance(member, zarr.Array):
        raise BigsegError(f"{group.store_path}/{name}: a group where an array belongs; the store is damaged")
    return member


def subgroup(group: zarr.Group, name: str) -> zarr.Group:
    """The group ``name`` of ``group`` (a pyramid); an error naming it when it is an array."""
    member = group[name]
    if not isinstance(member, zarr.Group):
        raise BigsegError(f"{group.store_path}/{name}: an array where a group belongs; the store is damaged")
    return member


def attr(obj, key: str, default: Any = None) -> Any:
    """An attribute of a zarr group or array as plain JSON data (zarr types them as a JSON union)."""
    return cast(Any, obj.attrs.get(key, default))


def class_table(group: zarr.Group) -> tuple[ClassInfo, ...]:
    items = attr(group, "classes")
    return table_from_attrs(items) if items else CONCRETE


def pixel_size_um(group: zarr.Group) -> float | None:
    v = attr(group, "pixel_size_um")
    return float(v) if v else None


def is_complete(array) -> bool:
    return bool(array.attrs.get("complete", False))


def set_complete(array, complete: bool = True) -> None:
    array.attrs["complete"] = bool(complete)


def create_array(group: zarr.Group, name: str, shape, chunks, dims, dtype="uint8", fill_value=0, compressors=None,
                 attrs=None, overwrite=False):
    """Create an array marked incomplete; the writer marks it complete when done."""
    arr = group.create_array(
        name,
        shape=tuple(int(s) for s in shape),
        chunks=tuple(int(c) for c in chunks),
        dtype=dtype,
        fill_value=fill_value,
        compressors=compressors if compressors is not None else compressor(),
        config={"write_empty_chunks": True},
        dimension_names=tuple(dims),
        overwrite=overwrite,
    )
    arr.attrs.update({"complete": False, ALL_CHUNKS: True, **(attrs or {})})
    return arr


_OPEN: dict = {}


def open_array(store: str | os.PathLike, name: str, mode: Mode = "r") -> zarr.Array:
    """``store/name`` as a zarr array, opened once per process (dask workers read and write many blocks of the
    same arrays); reopened when the array's metadata file changes (a store replaced by --overwrite). Arrays
    opened for writing store every chunk (see ALL_CHUNKS)."""
    path = os.path.join(str(store), name)
    try:
        st = os.stat(os.path.join(path, "zarr.json"))
        key = (path, mode, st.st_ino, st.st_mtime_ns)
    except OSError:
        key = (path, mode, -1, -1)
    hit = _OPEN.get(key)
    if hit is None:
        try:
            hit = zarr.open_array(path, mode=mode, zarr_format=3)
            if mode != "r":  # per array, not zarr.config.set: that is global, and two threads opening arrays at
                # once could each restore the other's old value (an array that dropped all-zero chunks, seen)
                hit = hit.with_config({"write_empty_chunks": True})
        except Exception as exc:  # missing, truncated or malformed metadata
            raise BigsegError(f"{path}: cannot open the zarr array ({first_line(exc)})") from exc
        _OPEN[key] = hit
    return hit


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def zarr_open_new(path: str | os.PathLike) -> zarr.Group:
    return zarr.open_group(str(path), mode="w", zarr_format=3)


def consolidate(path: str | os.PathLike) -> None:
    """Refresh consolidated metadata (what xarray reads first); call after every change of arrays or attrs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr warns that consolidated metadata is not in the v3 spec yet
        zarr.consolidate_metadata(str(path), zarr_format=3)


def init_root_attrs(group: zarr.Group, *, source: dict, pixel_size: float | None, classes) -> None:
    group.attrs.update(
        {
            "bigseg": {"format": FORMAT_VERSION, "version": __version__},
            "source": source,
            "pixel_size_um": pixel_size,
            "classes": table_to_attrs(classes),
        }
    )


def open_dataset(path: str | os.PathLike):
    """The store as an ``xarray.Dataset`` (lazy, dask-backed): ``image`` (y, x, band), ``truth`` (y, x),
    ``labels`` (y, x), ``probabilities`` (class, y, x) where present; class table and pixel size in attrs."""
    import xarray as xr

    open_store(path)  # clear errors for non-stores
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return xr.open_zarr(str(path), zarr_format=3, consolidated=None)


def level_factors(group, name: str = "preview") -> list[int]:
    """The factors of the pyramid ``name`` (its arrays ``xF``: ``preview`` is the image's, ``preview-labels``,
    ``preview-truth``, ``preview-annotations`` the masks') in ``group``, smallest first ([] without one)."""
    levels = group.get(name)
    return sorted(int(k[1:]) for k in levels.array_keys()) if isinstance(levels, zarr.Group) else []


BIGSEG_DIR = ".bigseg"


STAGED = f"{BIGSEG_DIR}/staged"
"""Where a run writes its outputs (a zarr group inside the store's .bigseg folder, invisible to the store's own
hierarchy and to xarray), swapped in place of the store's when the run is complete."""


def staged(name: str) -> str:
    """The path, relative to the store, of a run's output array ``name`` while the run writes it."""
    return f"{STAGED}/{name}"


LABELS_DONE = f"{BIGSEG_DIR}/labels-done"
"""A running (or interrupted) ``infer``'s per-chunk markers, relative to the store."""
RULED_DONE = f"{BIGSEG_DIR}/labels-ruled-done"
"""Its markers of the chunks an adapted model's void-object rule has judged (the labels written)."""
SPILL = f"{BIGSEG_DIR}/spill"
"""Window logits kept for the next column stripe, relative to the store."""
INFER_LOCK = f"{BIGSEG_DIR}/infer.lock"


def name_of(path: str | os.PathLike) -> str:
    """The last part of a path or URL (``s3://bucket/slab.zarr`` -> ``slab.zarr``)."""
    return str(path).rstrip("/").rsplit("/", 1)[-1] if is_url(path) else Path(path).name


def location(store: str | os.PathLike) -> str:
    """How a store is named in reports and metadata: its URL as given, or its absolute path."""
    return str(store).rstrip("/") if is_url(store) else os.path.abspath(store)


def join(base: str | os.PathLike, *parts: str) -> str:
    """``base/part/...`` for a path or a URL (a URL keeps its ``//``, which ``Path`` would fold)."""
    text = str(base).rstrip("/") if is_url(base) else str(base)
    return "/".join([text, *parts]) if is_url(text) else os.path.join(text, *parts)
