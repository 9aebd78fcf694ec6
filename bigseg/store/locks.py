"""The one lock bigseg's writers take (a pid file created exclusively), and the one way to wait for it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from bigseg.errors import BigsegError


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return True


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


@contextlib.contextmanager
def object_lock(url: str, busy: Callable[[dict | None], str]):
    """:func:`pid_lock` for a store on object storage: the lock object is created exclusively (S3's conditional
    PUT, ``If-None-Match: *``; AWS S3 and servers that follow it), holding the holder's pid and host, and removed
    when the block ends; a lock left by a run killed on this host (pid gone) is taken over. Where the store cannot
    create exclusively, the lock is checked, then written: two runs started in the same instant could both go on."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    data = json.dumps(me).encode()
    for _ in range(2):
        try:
            try:
                fs.pipe_file(path, data, mode="create")
            except TypeError:  # a filesystem without exclusive create
                if fs.exists(path):
                    raise FileExistsError(path) from None
                fs.pipe_file(path, data)
            break
        except (FileExistsError, OSError):
            try:
                other = json.loads(fs.cat_file(path))
            except (OSError, ValueError):
                other = None
            if other is None and not fs.exists(path):
                raise  # not a lock held by someone: a real error (permissions, the bucket...)
            if isinstance(other, dict) and other.get("host") == me["host"] and not pid_alive(int(other.get("pid", -1))):
                fs.rm(path)  # stale: its writer is gone (a killed run)
                continue
            raise BigsegError(busy(other)) from None
    else:
        raise BigsegError(f"{url}: cannot take the lock")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            fs.rm(path)
