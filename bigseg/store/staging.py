"""Complete only when complete: new outputs written under a temporary name and moved into place on success, and a
store's arrays replaced as a set (staged, then swapped in); what killed writers left is cleaned up."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

import zarr

from bigseg.errors import BigsegError
from bigseg.store import files
from bigseg.store.layout import BIGSEG_DIR, consolidate, join
from bigseg.store.locks import object_lock, output_lock, pid_alive


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


def swap_in_objects(store: str, source: str, names) -> None:
    """:func:`swap_in` on object storage, where nothing renames: ``names[0]``'s metadata goes first (the array
    whose completeness stands for the set: the labels), then the old ``names`` entirely, then the new ones are
    copied from ``source`` (chunks before metadata, :func:`bigseg.store.files.copy_tree`), ``names[0]`` last. A
    run killed in between leaves ``names[0]`` absent or incomplete, never complete beside old or partial others;
    ``source`` is removed by the caller once this returns, so a rerun can copy again."""
    files.unlink(join(store, names[0], "zarr.json"))
    for name in names:
        files.rmtree(join(store, name))
    for name in (*names[1:], names[0]):
        if files.exists(join(source, name)):
            files.copy_tree(join(source, name), join(store, name))


@contextlib.contextmanager
def object_output(url: str, overwrite: bool):
    """:func:`staged_output` for a new store at an fsspec URL, where nothing renames: written in place, and a slab
    store only once complete (:func:`bigseg.store.open_store` refuses a store whose image is not marked complete,
    and that mark is the last thing written). Refuses an existing store without ``overwrite``; with it, the old
    store is removed first (object storage cannot swap a folder: say so where it matters). A second writer of the
    same URL is refused by a lock object beside it; on failure what was written is removed."""
    url = url.rstrip("/")
    if files.exists(url) and not overwrite:
        raise BigsegError(f"{url} exists; pass --overwrite to replace it")
    parent, _, name = url.rpartition("/")

    def busy(other):
        who = f"pid {other.get('pid')} on {other.get('host', '?')}" if other else "another process"
        return f"{url}: another bigseg process ({who}) is writing it; wait for it, or remove {parent}/.{name}.lock"

    with object_lock(f"{parent}/.{name}.lock", busy):
        files.rmtree(url)
        try:
            yield url
        except BaseException:
            files.rmtree(url)
            raise
