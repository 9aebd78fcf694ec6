"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class BigsegError(Exception):
    """A problem the user can fix (bad input, missing option, existing output...).

    The message is one line that names the problem and, where possible, what to do about it.
    """
