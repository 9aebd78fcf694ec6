"""Progress for long jobs: a tqdm bar in a terminal, a plain line every few seconds in logs.

``progress_bar(iterable, total=..., enabled=...)`` always returns an *iterator* (some consumers, tifffile among
them, call ``next()`` on what they are given). ``enabled``: True/False force it on or off; None follows
:func:`default_enabled` (on, unless ``BIGSEG_PROGRESS=0``). On a terminal the bar redraws in place; elsewhere
(nohup, a batch scheduler, a CI log) one line ``desc: done/total unit (rate/s, ETA m:ss)`` is written to stderr
every ``BIGSEG_PROGRESS_INTERVAL`` seconds (default 10), the first only after that long, so short commands
print nothing.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator


def default_enabled() -> bool:
    return os.environ.get("BIGSEG_PROGRESS", "1") != "0"


def interval() -> float:
    try:
        return max(0.05, float(os.environ.get("BIGSEG_PROGRESS_INTERVAL", "10")))
    except ValueError:
        return 10.0


class LogProgress:
    """tqdm's small interface (update, set_postfix, write, close) as periodic log lines on stderr."""

    def __init__(self, total: int | None, desc: str, unit: str, scale: float = 1.0, scaled_unit: str | None = None):
        self.total, self.desc, self.unit = total, desc, unit
        self.scale, self.scaled_unit = scale, scaled_unit
        self.n = 0
        self.t0 = self.last = time.monotonic()
        self.every = interval()
        self.postfix = ""

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._line(now)

    def _line(self, now: float) -> None:
        elapsed = max(now - self.t0, 1e-9)
        rate = self.n / elapsed
        text = f"{self.desc}: {self.n}" + (f"/{self.total}" if self.total else "") + f" {self.unit}"
        if self.scaled_unit:
            text += f" ({rate * self.scale:.2f} {self.scaled_unit}/s"
        else:
            text += f" ({rate:.2f} {self.unit}/s"
        if self.total and rate > 0:
            left = (self.total - self.n) / rate
            text += f", ETA {int(left // 60)}:{int(left % 60):02d}"
        text += ")" + (f" {self.postfix}" if self.postfix else "")
        print(text, file=sys.stderr, flush=True)

    def set_postfix(self, **kwargs) -> None:
        self.postfix = " ".join(f"{k}={v}" for k, v in kwargs.items())

    def write(self, text: str) -> None:
        print(text, flush=True)

    def close(self) -> None:
        pass


def _has_width() -> bool:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns > 0
    except (OSError, ValueError):
        return False


class _Off:
    def update(self, k: int = 1) -> None:
        pass

    def set_postfix(self, **kwargs) -> None:
        pass

    def write(self, text: str) -> None:
        print(text, flush=True)

    def close(self) -> None:
        pass


def make_bar(total: int | None, desc: str, unit: str, enabled: bool | None = None, scale: float = 1.0,
             scaled_unit: str | None = None):
    """A progress object with tqdm's update/set_postfix/write/close: a bar on a terminal, log lines elsewhere,
    or nothing when disabled. ``scale`` and ``scaled_unit`` turn the rate into another unit in log lines (chunks
    into Mpx, say)."""
    on = default_enabled() if enabled is None else enabled
    if not on:
        return _Off()
    if sys.stderr.isatty():
        import shutil

        from tqdm import tqdm

        # a terminal that reports no size (a pseudo-terminal without a window size: `script`, `docker run -t`)
        # would get a bar of zero columns, i.e. nothing: COLUMNS/LINES, else 100 x 24
        # (tqdm then also draws nothing unless it is told the number of rows)
        if _has_width():
            return tqdm(total=total, desc=desc, unit=unit, leave=False)
        size = shutil.get_terminal_size((100, 24))
        return tqdm(total=total, desc=desc, unit=unit, leave=False, ncols=size.columns or 100,
                    nrows=size.lines or 24)
    return LogProgress(total, desc, unit, scale, scaled_unit)


def progress_bar(iterable: Iterable, total: int | None = None, desc: str = "", unit: str = "it",
                 enabled: bool | None = None) -> Iterator:
    """An iterator over ``iterable`` that shows progress as :func:`make_bar` does."""
    bar = make_bar(total, desc, unit, enabled)

    def gen():
        try:
            for item in iterable:
                yield item
                bar.update(1)
        finally:
            bar.close()

    return gen()
