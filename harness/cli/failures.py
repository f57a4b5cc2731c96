"""How a command's failure becomes one line on stderr: the wording of operating-system errors,
and where the traceback of an unexpected error (a bug) is written.

An unexpected error's traceback goes to a file, never to the terminal: in the run's log folder
for ``harness train`` (``<log dir>/traceback-<time>-<pid>-*.txt``), else in the system's
temporary folder (``$TMPDIR``, usually ``/tmp``: ``harness-traceback-<time>-<pid>-*.txt``).
"""

from __future__ import annotations

import errno
import os
import sys
import tempfile
import traceback
from pathlib import Path

from harness import __version__
from harness.formatting import utc_now

_SHOWN = 300  # characters of an exception's message shown on the one line


def _first_non_folder(path: Path) -> Path | None:
    """``path`` or its nearest ancestor that exists and is not a folder."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None


def os_error_line(exc: OSError) -> str:
    """An operating-system error in words, naming the file the user named.

    A rename's error names the hidden temporary file first: its target (``filename2``) is the
    file the user asked for.
    """
    name = exc.filename2 if exc.filename2 is not None else exc.filename
    if name is None:
        return exc.strerror or str(exc)
    path = Path(os.fsdecode(name))
    if exc.errno == errno.EISDIR:
        return f"{path}: is a folder; give a file name"
    if exc.errno in (errno.EEXIST, errno.ENOTDIR) and (blocker := _first_non_folder(path)):
        if blocker == path:
            return f"{path}: is a file where a folder is needed"
        return f"{path}: {blocker} is a file, not a folder"
    return f"{path}: {exc.strerror or exc}"


def _traceback_text(exc: BaseException) -> str:
    header = (
        f"harness {__version__}, {utc_now()}, pid {os.getpid()}\ncommand: {' '.join(sys.argv)}\n\n"
    )
    return header + "".join(traceback.format_exception(exc))


def write_traceback(exc: BaseException, folder: Path | None) -> Path | None:
    """Write ``exc``'s traceback to a new file in ``folder`` (the run's log folder), or in the
    temporary folder if there is none or it cannot be written; None if neither can."""
    stamp = utc_now().replace("-", "").replace(":", "")
    text = _traceback_text(exc).encode("utf-8", errors="replace")
    places = [(folder, "traceback-")] if folder is not None else []
    places.append((Path(tempfile.gettempdir()), "harness-traceback-"))
    for where, prefix in places:
        try:
            where.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(
                prefix=f"{prefix}{stamp}-{os.getpid()}-", suffix=".txt", dir=where
            )
            with os.fdopen(fd, "wb") as out:
                out.write(text)
            return Path(name)
        except OSError:
            continue
    return None


def internal_error_line(exc: BaseException, written: Path | None) -> str:
    """The one line of an unexpected error: what it was and where its traceback went."""
    message = " ".join(str(exc).split())
    if len(message) > _SHOWN:
        message = message[: _SHOWN - 3] + "..."
    what = type(exc).__name__ + (f": {message}" if message else "")
    where = (
        f"traceback written to {written}"
        if written is not None
        else "the traceback could not be written anywhere"
    )
    return f"harness: internal error (a bug, please report it): {what}; {where}"
