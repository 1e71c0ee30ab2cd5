"""The one exception type users see: a one-line message naming the problem and the fix."""


class WorkbenchError(Exception):
    """Bad input or a missing resource; the CLI prints the message and exits with code 2."""
