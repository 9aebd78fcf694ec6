"""The few file operations a run does beside zarr's own (markers, spill files, the stage, the lock), for a store on
this machine's disk or at an fsspec URL (``s3://bucket/slab.zarr``, ``gs://``, ``file://``...): the same calls,
so the engine does not branch on where the store is.

Local paths keep what they always did (a write to a temporary name and a rename, so a file is whole or absent). On
object storage there is no rename, and none is needed for a single object: a PUT is whole or absent. What a rename
gave the store as a whole (outputs swapped in at once) is :func:`copy_tree`'s order instead: every chunk first,
each array's metadata after its chunks, the group's last (see ``bigseg.store.staging``). Credentials come from
the environment or fsspec's configuration, never from bigseg's command line.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from bigseg.errors import BigsegError
from bigseg.store.layout import first_line, is_url, join  # noqa: F401 - join: part of this module's calls


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) for ``url``."""
    import fsspec

    return fsspec.core.url_to_fs(url)


def remote_file(url: str, what: str = "file") -> tuple[Any, str, dict]:
    """(filesystem, path, info) of a file at ``url``; one line naming the problem when it is missing, a folder,
    empty or unreachable (credentials, network, a missing fsspec backend)."""
    try:
        fs, path = filesystem(url)
        info = fs.info(path)
    except FileNotFoundError:
        raise BigsegError(f"{url}: no such {what}") from None
    except Exception as exc:
        raise BigsegError(f"{url}: cannot be read ({first_line(exc)})") from exc
    if info.get("type") == "directory":
        raise BigsegError(f"{url}: a folder, not a {what}")
    if not info.get("size"):
        raise BigsegError(f"{url}: empty {what} (0 bytes)")
    return fs, path, info


def modified(info: dict) -> float:
    """The modification time in an fsspec ``info`` (S3's LastModified, a local mtime, GCS's updated), 0 if none."""
    when: Any = info.get("LastModified") or info.get("mtime") or info.get("updated")
    return float(when.timestamp()) if hasattr(when, "timestamp") else float(when or 0)


def exists(p: str | os.PathLike) -> bool:
    if is_url(p):
        fs, path = filesystem(str(p))
        return bool(fs.exists(path))
    return os.path.exists(p)


def makedirs(p: str | os.PathLike) -> None:
    """A folder (object storage has none to make)."""
    if not is_url(p):
        Path(p).mkdir(parents=True, exist_ok=True)


def rmtree(p: str | os.PathLike) -> None:
    """Remove a folder (or prefix) and everything under it; nothing if it is not there."""
    if is_url(p):
        fs, path = filesystem(str(p))
        if fs.exists(path):
            fs.rm(path, recursive=True)
        return
    shutil.rmtree(p, ignore_errors=True)


def unlink(p: str | os.PathLike) -> None:
    if is_url(p):
        fs, path = filesystem(str(p))
        if fs.exists(path):
            fs.rm(path)
        return
    Path(p).unlink(missing_ok=True)


def write_whole(p: str | os.PathLike, data: bytes) -> None:
    """``data`` at ``p``, whole or not at all: a temporary file renamed on disk, one PUT on object storage."""
    if is_url(p):
        fs, path = filesystem(str(p))
        fs.pipe_file(path, data)
        return
    tmp = Path(f"{p}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)


def read_bytes(p: str | os.PathLike) -> bytes:
    if is_url(p):
        fs, path = filesystem(str(p))
        return bytes(fs.cat_file(path))
    return Path(p).read_bytes()


def names(p: str | os.PathLike) -> list[str]:
    """The names of the entries of folder ``p`` ([] when it is not there)."""
    if is_url(p):
        fs, path = filesystem(str(p))
        try:
            return [str(e).rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(path, detail=False, refresh=True)]
        except FileNotFoundError:
            return []
    try:
        return os.listdir(p)
    except FileNotFoundError:
        return []


def copy_tree(src: str, dst: str) -> None:
    """Copy the objects under ``src`` to ``dst`` (server-side on object storage), zarr's metadata files after
    every chunk and the deepest first, so that an array is readable only once its chunks are all there."""
    fs, root = filesystem(src)
    _, target = filesystem(dst)
    keys = sorted(fs.find(root))
    meta = [k for k in keys if k.endswith("zarr.json")]
    data = [k for k in keys if not k.endswith("zarr.json")]
    for k in [*data, *sorted(meta, key=lambda k: -k.count("/"))]:
        fs.copy(k, target + k[len(root):])
