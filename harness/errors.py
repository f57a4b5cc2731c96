"""Exceptions and exit codes shared by the library and the CLI.

Every error a user can cause (bad input, unsafe paths, schema violations) is a
``HarnessError`` whose message is one line naming the file and what is wrong; the
CLI prints it without a traceback and exits with ``EXIT_BAD_INPUT``. Anything else that
escapes a command is a bug: the CLI writes its traceback to a file, prints one line naming
that file and exits with ``EXIT_INTERNAL``.
"""

from __future__ import annotations

# Exit codes of the ``harness`` CLI (documented in the README and docs/architecture.md).
EXIT_OK = 0
EXIT_PROBLEMS = 1  # the command ran and found problems (integrity, quality)
EXIT_BAD_INPUT = 2  # bad arguments or input files; nothing was written
EXIT_ROLLED_BACK = 3  # training ran, a gate failed, and the run rolled back (nothing promoted)
EXIT_INTERNAL = (
    70  # an unexpected error (a bug): traceback written to a file (sysexits' EX_SOFTWARE)
)
EXIT_BUSY = 75  # another process held the lock too long; nothing written, try again (EX_TEMPFAIL)


class HarnessError(Exception):
    """A problem with user input, reported as one line and exit code 2."""

    exit_code = EXIT_BAD_INPUT


class SchemaError(HarnessError):
    """A JSON or YAML document does not match its schema."""


class UnsafePathError(HarnessError):
    """A path in a manifest is absolute, contains '..' or resolves outside its folder."""


class CaptureError(HarnessError):
    """A capture file cannot be read as a capture."""


class IntegrityError(HarnessError):
    """The dataset failed its checksum verification, so training refused to start."""

    exit_code = EXIT_PROBLEMS


class LockBusyError(HarnessError):
    """Another process held a lock for longer than this one would wait; nothing was written."""

    exit_code = EXIT_BUSY
