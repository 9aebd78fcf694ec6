"""The exception types the CLI turns into a one-line message and a non-zero exit."""


class BigsegError(Exception):
    """A problem the user can fix (bad input, missing option, existing output...).

    The message is one line that names the problem and, where possible, what to do about it.
    """


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's kill, ``kill PID``): unwinds like Ctrl-C, so the cluster is closed, the store lock
    released and staged outputs left resumable."""


def raise_terminated(signum, frame):
    """The SIGTERM handler ``bigseg`` installs."""
    raise Terminated()
