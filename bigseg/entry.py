"""The ``bigseg`` program's first lines: SIGTERM and Ctrl-C are answered from the first moment, not only once the
command modules are imported (on a loaded machine that takes seconds, and a signal in that window used to end the
process with no word, or with a KeyboardInterrupt traceback). Nothing heavy is imported here."""

from __future__ import annotations

import atexit
import signal
import sys

from bigseg.errors import Terminated, raise_terminated


def _ignore_signals_from_here():
    """The last exit callback (registered first): from here Python finalises and would restore the default
    handlers, so a signal in these last moments would end a finished run with status -15; it is ignored instead
    (nothing is left to stop)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run(argv=None):
    """Console entry point: install the SIGTERM handler, then import and run the click command."""
    atexit.register(_ignore_signals_from_here)
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        from bigseg.cli import main
    except KeyboardInterrupt as exc:  # signalled while starting: nothing was begun, nothing to resume
        sys.stderr.write("bigseg: error: " + ("terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted")
                         + " while starting; nothing was written\n")
        sys.exit(143 if isinstance(exc, Terminated) else 130)
    main(argv)
