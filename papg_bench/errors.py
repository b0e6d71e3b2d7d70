"""The one exception type that reaches the user as a clear message (exit status 2, no traceback)."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or state the user can fix. The message names the file or option and the fix."""

    exit_code = 2
