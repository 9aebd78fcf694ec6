"""The slab store: one zarr v3 group per slab holding everything about it. This docstring is the layout; other
modules ask this one for names and paths instead of spelling them.

Layout (all arrays carry ``dimension_names`` so that ``xarray.open_zarr`` gives named dimensions)::

    slab.zarr/
      image          (y, x, band) uint8      the ingested picture, RGB
      truth          (y, x) uint8            ground-truth class ids (optional; 255 = unlabelled)
      labels         (y, x) uint8            predicted class ids (written by ``infer``; attrs: stats, confidence,
                                             the run record, the model's provenance)
      confidence     (conf_y, conf_x) uint8  mean top class probability per f x f block, x 255 (``infer``)
      probabilities  (class, y, x) uint8     class probabilities x 255 (``infer --probabilities``)
      annotations    (y, x) uint8            strokes painted in the viewer (255 = none; sparse: unpainted chunks
                                             are not stored) (``serve --annotate``, ``import annotations``)
      preview/xF                             image downsampled by F = 4, 8, ... (mean), for quicklooks and tiles
      preview-labels/xF, preview-truth/xF,   the masks' pyramids (most frequent class), same factors
      preview-annotations/xF                 (:func:`level_factors`; built by :mod:`bigseg.pyramid`)
      .bigseg/                               bigseg's own files, invisible to zarr and xarray:
        staged/                              a running ``infer``'s outputs (:data:`STAGED`), swapped in when done
        labels-done/BI.BJ                    one marker per finished label chunk (its measurements, JSON)
        spill/ROW.K.npz                      window logits kept for the next column stripe
        infer.lock, annotations.lock         who writes (pid, host); flock-based where marked

Root attrs: ``bigseg`` (format version, bigseg version), ``source`` (file, size, bands), ``pixel_size_um``
(or null), ``classes`` (the class table). Every array has attr ``complete``: it is false while the array is
being written and becomes true only when the last chunk is on disk, so a half-written array never looks
finished. A store made by ``ingest`` only appears under its final name once complete (it is written under a
temporary name and renamed).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import socket
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, cast

import zarr
import zarr.codecs

from bigseg import __version__
from bigseg.classes import CONCRETE, ClassInfo, table_from_attrs, table_to_attrs
from bigseg.defaults import DEFAULT_CHUNK  # noqa: F401 - re-exported: part of the store's layout
from bigseg.errors import BigsegError

FORMAT_VERSION = 1


def compressor():
    """zstd level 3 for every array: images at ~2:1, label masks (long runs of few values) to a few percent."""
    return zarr.codecs.ZstdCodec(level=3)


ALL_CHUNKS = "all_chunks_written"
"""Array attribute: every chunk is stored, even one equal to the fill value (zarr skips those by default), so a
missing chunk file means damage, not zeros. Arrays bigseg creates carry it; older stores are read as before."""

WRITE_EVERY_CHUNK = {"array.write_empty_chunks": True}


def is_store(path: str | os.PathLike) -> bool:
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
    import json

    files = [p / "zarr.json", *p.glob("*/zarr.json"), *p.glob("*/*/zarr.json")]
    for f in files:
        try:
            meta = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise BigsegError(f"{f}: unreadable zarr metadata ({_first_line(exc)}); the store is damaged") from exc
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
            with zarr.config.set(WRITE_EVERY_CHUNK if mode != "r" else {}):
                hit = zarr.open_array(path, mode=mode, zarr_format=3)
        except Exception as exc:  # missing, truncated or malformed metadata
            raise BigsegError(f"{path}: cannot open the zarr array ({_first_line(exc)})") from exc
        _OPEN[key] = hit
    return hit


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def chunk_file(array: zarr.Array, index: tuple[int, ...]) -> str | None:
    root = getattr(array.store_path.store, "root", None)
    if root is None:  # not a local store (s3://...): existence is not checked
        return None
    key = cast(Any, array.metadata).chunk_key_encoding.encode_chunk_key(index)
    return os.path.join(str(root), array.store_path.path, key)


def _location(array: zarr.Array) -> str:
    root = getattr(array.store_path.store, "root", None)
    if root is None:
        return str(array.store_path)
    return os.path.normpath(os.path.join(str(root), array.store_path.path))


def read(array: zarr.Array, *region: slice):
    """``array[region]`` (slices along the leading axes), with damage named: a chunk file missing from an array
    that stores every chunk, or a chunk that does not decode, is a BigsegError naming the array and the chunk."""
    chunks = array.chunks
    ranges = []
    for axis, sl in enumerate(region):
        start, stop, _ = sl.indices(array.shape[axis])
        ranges.append(range(start // chunks[axis], max(start, stop - 1) // chunks[axis] + 1))
    tail = (0,) * (array.ndim - len(region))
    indices = [(*idx, *tail) for idx in itertools.product(*ranges)]
    if array.attrs.get(ALL_CHUNKS):
        for idx in indices:
            f = chunk_file(array, idx)
            if f is not None and not os.path.exists(f):
                raise BigsegError(f"{_location(array)}: chunk {'.'.join(map(str, idx))} is missing (the store is "
                                  "damaged); 'bigseg info --check STORE' lists every bad chunk")
    try:
        return array[region]
    except Exception as exc:
        bad = next((idx for idx in indices if not _decodes(array, idx)), None)
        where = f"chunk {'.'.join(map(str, bad))}" if bad is not None else f"the chunks under {region}"
        raise BigsegError(f"{_location(array)}: {where} cannot be read ({_first_line(exc)}); the store is "
                          "damaged") from exc


def _decodes(array: zarr.Array, idx: tuple[int, ...]) -> bool:
    sel = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(idx, array.chunks, array.shape, strict=True))
    try:
        array[sel]
    except Exception:
        return False
    return True


class Checked:
    """``store/name`` read through :func:`read` (damage named), shaped like an array for ``dask.array.from_array``;
    pickles as its path, so dask workers reopen it themselves."""

    def __init__(self, store, name: str):
        self.store, self.name = str(store), name
        a = open_array(self.store, name)
        self.shape, self.dtype, self.ndim, self.chunks = a.shape, a.dtype, a.ndim, a.chunks

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        return read(open_array(self.store, self.name), *key)


def dask_array(store, name: str):
    """``store/name`` as a dask array, one task per zarr chunk, every read checked for damage."""
    import dask.array as da

    c = Checked(store, name)
    return da.from_array(c, chunks=c.chunks, asarray=True, fancy=False, name=f"bigseg-{c.store}-{name}")


def check_chunks(array: zarr.Array) -> list[str]:
    """Every chunk of ``array`` read once: a line per missing or undecodable chunk (empty when all is well)."""
    problems = []
    grid = [range(-(-n // c)) for n, c in zip(array.shape, array.chunks, strict=True)]
    every = bool(array.attrs.get(ALL_CHUNKS))
    for idx in itertools.product(*grid):
        f = chunk_file(array, idx) if every else None
        if f is not None and not os.path.exists(f):
            problems.append(f"chunk {'.'.join(map(str, idx))}: missing")
        elif not _decodes(array, idx):
            problems.append(f"chunk {'.'.join(map(str, idx))}: cannot be decoded")
    return problems


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


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return True


def remove_stale_partials(parent: Path, name: str, kinds: tuple[str, ...] = ("partial",)) -> None:
    """Temporary outputs left by killed runs (``.NAME.KIND-PID``, e.g. ``.NAME.partial-PID``, whose process is
    gone)."""
    for p in (q for kind in kinds for q in parent.glob(f".{name}.{kind}-*")):
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _remove_settled(path: Path, settle: float = 0.2, attempts: int = 15) -> None:
    """Remove a failed temporary output. When one chunk write fails, zarr's other writes of the same call may
    still be landing (they run on its event loop), so remove until the folder stays gone for ``settle`` s."""
    for _ in range(attempts):
        shutil.rmtree(path, ignore_errors=True)
        time.sleep(settle)
        if not path.exists():
            return


@contextlib.contextmanager
def staged_output(final: str | os.PathLike, overwrite: bool):
    """Write a new store under a temporary name and move it into place only on success.

    Refuses an existing ``final`` without ``overwrite`` (before anything is written). On failure the temporary
    store is removed and an existing ``final`` is left untouched.
    """
    given = final
    final = Path(os.path.abspath(final))  # "." and "dir/.." have names; the error messages keep what was given
    if final.exists() and not overwrite:
        raise BigsegError(f"{given} exists; pass --overwrite to replace it")
    here = Path(os.path.abspath("."))
    if final == here or final in here.parents:
        raise BigsegError(f"{given}: is the current folder or holds it; bigseg replaces an output as a whole, so name "
                          "a new folder (e.g. -o out)")
    parent = final.parent
    if not parent.is_dir():
        raise BigsegError(f"{parent}: output folder does not exist")
    if not os.access(parent, os.W_OK):
        raise BigsegError(f"{parent}: output folder is not writable")
    with output_lock(final):
        remove_stale_partials(parent, final.name)
        tmp = parent / f".{final.name}.partial-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        try:
            yield tmp
        except BaseException:
            _remove_settled(tmp)
            raise
        if final.exists():
            old = parent / f".{final.name}.old-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)


def _lock_owner(lock: Path) -> dict | None:
    """Who holds ``lock``: {"pid", "host", "since"} (or {"pid"} from a lock of an older bigseg); None if unreadable."""
    try:
        text = lock.read_text().strip()
    except OSError:
        return None
    try:
        owner = json.loads(text)
    except ValueError:
        return {"pid": int(text)} if text.isdigit() else None
    return owner if isinstance(owner, dict) else ({"pid": owner} if isinstance(owner, int) else None)


@contextlib.contextmanager
def pid_lock(lock: Path, busy: Callable[[dict | None], str]):
    """The one lock bigseg's writers take: ``lock`` created exclusively (O_EXCL) with the holder's pid and host,
    removed when the block ends. A lock whose holder is gone (same host, pid not running) is taken over; any
    other refuses with ``busy(owner)`` (never last-writer-wins)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            other = _lock_owner(lock)
            if other and other.get("host", me["host"]) == me["host"] and not pid_alive(int(other.get("pid", -1))):
                lock.unlink(missing_ok=True)  # stale: its writer is gone (a killed run)
                continue
            raise BigsegError(busy(other)) from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    else:
        raise BigsegError(f"{lock}: cannot take the lock")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def wait_for_lock(lock: Path, timeout: float, poll: float = 0.5) -> bool:
    """Wait while another process holds ``lock`` (a :func:`pid_lock`): True once it is free or its holder is gone
    (same host, pid not running), False if it is still held after ``timeout`` seconds."""
    host = socket.gethostname()
    deadline = time.monotonic() + timeout
    while lock.exists():
        other = _lock_owner(lock)
        if other and other.get("host", host) == host and not pid_alive(int(other.get("pid", -1))):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def output_lock_path(final: Path) -> Path:
    """Where :func:`output_lock` keeps its lock: ``.NAME.lock`` beside the output."""
    return final.parent / f".{final.name}.lock"


def output_lock(final: Path):
    """``.NAME.lock`` beside an output while it is written: a second writer of the same output is refused."""
    lock = output_lock_path(final)

    def busy(other):
        who = f"pid {other.get('pid')}" if other else "another process"
        return f"{final}: another bigseg process ({who}) is writing it; wait for it, or remove {lock} if it is gone"

    return pid_lock(lock, busy)


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


def labels_done_dir(store: Path) -> Path:
    """The folder of a running (or interrupted) ``infer``'s per-chunk markers."""
    return Path(store) / BIGSEG_DIR / "labels-done"


def clean_stale_stages(store: str | os.PathLike) -> list[str]:
    """Remove what killed writers left in ``STORE/.bigseg`` (``stage-*-PID``, ``replaced-*-PID`` folders of
    processes no longer running); returns their names."""
    root = Path(store) / BIGSEG_DIR
    gone: list[str] = []
    if not root.is_dir():
        return gone
    for p in root.iterdir():
        head, _, pid = p.name.rpartition("-")
        if p.is_dir() and head.startswith(("stage-", "replaced-")) and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p.name)
    return gone


def swap_in(store: Path, source: Path, names, tag: str) -> None:
    """Replace the store's ``names`` (all of them: they belong together) by those in ``source``: the old ones are
    moved aside to ``.bigseg/replaced-TAG-PID`` first, then the new ones renamed in, then the old ones removed."""
    trash = Path(store) / BIGSEG_DIR / f"replaced-{tag}-{os.getpid()}"
    shutil.rmtree(trash, ignore_errors=True)
    trash.mkdir(parents=True)
    for name in names:
        if (store / name).exists():
            os.replace(store / name, trash / name)
    for name in names:
        if (source / name).exists():
            os.replace(source / name, store / name)
    shutil.rmtree(trash, ignore_errors=True)


@contextlib.contextmanager
def staged_swap(store: str | os.PathLike, names: tuple[str, ...], lock=None):
    """Write arrays (or groups) ``names`` of ``store`` elsewhere first, then swap them in.

    Yields a zarr group at ``STORE/.bigseg/stage-NAME-PID`` to create them in. When the block ends normally, the
    store's old ``names`` go (all of them: they belong together) and the staged ones take their place, and the
    consolidated metadata is refreshed; when it raises, the store is exactly as it was and the staging folder is
    removed. Stale stages of killed writers are removed first. ``lock``: a context manager held during the swap
    (e.g. :func:`bigseg.annotations.write_lock`)."""
    store = Path(store)
    clean_stale_stages(store)
    tmp = store / BIGSEG_DIR / f"stage-{names[0].replace('/', '_')}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        stage = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        yield stage
        with lock if lock is not None else contextlib.nullcontext():
            swap_in(store, tmp, names, names[0].replace("/", "_"))
            consolidate(store)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
