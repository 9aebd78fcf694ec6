"""Outputs never overwrite or sit on top of inputs: checked before anything is touched, ``--overwrite`` or not."""

from __future__ import annotations

import os
from pathlib import Path

from bigseg.errors import BigsegError


def _real(p: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.fspath(p)))


def relation(output: str | os.PathLike, source: str | os.PathLike) -> str | None:
    """How ``output`` relates to ``source`` on disk (links resolved): "is", "lies inside", "contains" or None."""
    out, src = _real(output), _real(source)
    if out == src:
        return "is"
    if src in out.parents:
        return "lies inside"
    if out in src.parents:
        return "contains"
    return None


def refuse_overlap(output: str | os.PathLike | None, flag: str, *inputs: tuple[str, str | os.PathLike | None]) -> None:
    """BigsegError when ``output`` (given as ``flag``) is, lies inside, or contains any of ``inputs`` ((what,
    path) pairs; None entries are skipped)."""
    if output is None:
        return
    for what, path in inputs:
        if path is None:
            continue
        how = relation(output, path)
        if how:
            raise BigsegError(f"{flag} {output} {how} the {what} {path}; an output may never overwrite or sit on "
                              "top of an input: choose another path")


def display(path: str | os.PathLike) -> str:
    """A path as text for reports and metadata: a file name that is not UTF-8 shows U+FFFD where its odd bytes
    are (rather than failing to be written)."""
    return os.fsencode(os.fspath(path)).decode("utf-8", "replace")


def cache_dir() -> Path:
    """bigseg's cache (exports of users' checkpoints, models fetched from URLs): ``$BIGSEG_CACHE``, else
    ``$XDG_CACHE_HOME/bigseg``, else ``~/.cache/bigseg``."""
    if os.environ.get("BIGSEG_CACHE"):
        return Path(os.environ["BIGSEG_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bigseg"
