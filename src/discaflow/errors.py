"""The one exception type for problems the user can fix (bad input, bad configuration).

The command line prints its message as one line, without a traceback, and exits with status 2.
Messages name the file or configuration key and say what to do.
"""


class InputError(Exception):
    """A user-fixable problem: the message is one line naming the file or key and the fix."""
