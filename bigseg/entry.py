"""The ``bigseg`` program's first lines: SIGTERM and Ctrl-C are answered from the first moment, not only once the
command modules are imported (on a loaded machine that takes seconds, and a signal in that window used to end the
process with no word, or with a KeyboardInterrupt traceback). Nothing heavy is imported here."""

from __future__ import annotations

import signal
import sys

from bigseg.errors import Terminated, raise_terminated


def run(argv=None):
    """Console entry point: install the SIGTERM handler, then import and run the click command."""
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        from bigseg.cli import main
    except KeyboardInterrupt as exc:  # signalled while starting: nothing was begun, nothing to resume
        sys.stderr.write("bigseg: error: " + ("terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted")
                         + " while starting; nothing was written\n")
        sys.exit(143 if isinstance(exc, Terminated) else 130)
    main(argv)
