"""Errors that reach the user as one clear message (exit status 2, no traceback), not as a bug report."""

from __future__ import annotations

import errno
import os
from pathlib import Path

# Failures of the file system or its permissions, never of the code: they reach the user as a message.
ENVIRONMENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
WRITE_ONLY_ERRNOS = FULL_ERRNOS | {errno.EROFS}
WRITE_HINT = "Choose a writable --work or --out."
FULL_HINT = "Free some space, or choose another --work or --out."
ACCESS_HINT = "Check its permissions, or choose another --work or --out."


class UserError(Exception):
    """Bad input or state the user can fix. The message names the file or option and the fix."""

    exit_code = 2


class WriteError(UserError):
    """Writing ``path`` failed with ``cause``; the message names the file, the reason and the fix."""

    def __init__(self, path: Path | str, cause: OSError) -> None:
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"cannot write {self.path}: {_reason(self.path, cause)}. {_hint(cause)}")


def _reason(path: Path, cause: OSError) -> str:
    if cause.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = file_in_the_way(path)
        if blocker is not None:
            return f"{blocker} is a file, not a folder"
        if cause.errno == errno.ENOTDIR and path.is_file():
            return f"{path} is a file, not a folder"
    return cause.strerror or type(cause).__name__


def _hint(cause: OSError) -> str:
    return FULL_HINT if cause.errno in FULL_ERRNOS else WRITE_HINT


def file_in_the_way(path: Path | str) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is not a folder (``None`` when it is)."""
    for parent in Path(path).parents:
        if os.path.lexists(parent):
            return None if parent.is_dir() else parent
    return None


def os_error_message(exc: OSError) -> str | None:
    """The user's message for a permission or disk-space failure that no writer translated; else ``None``."""
    if exc.errno not in ENVIRONMENT_ERRNOS:
        return None
    where = exc.filename if exc.filename is not None else "a file"
    hint = FULL_HINT if exc.errno in FULL_ERRNOS else ACCESS_HINT
    return f"cannot use {where}: {exc.strerror or type(exc).__name__}. {hint}"
