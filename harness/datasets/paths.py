"""Safe resolution of capture paths named in manifests.

A capture path is relative to its dataset's captures folder. One that is absolute, contains
'..', or resolves (through symbolic links) outside that folder is refused before anything is
opened: a manifest is data, and data must not be able to make the tools read arbitrary files.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from harness.errors import UnsafePathError


def lexical_problem(rel: str) -> str | None:
    """Why ``rel`` is unsafe without looking at the disk, or None."""
    if not rel or rel.strip() != rel:
        return "is empty or has surrounding whitespace"
    if "\\" in rel:
        return "contains a backslash; use '/' as the separator"
    if (
        PurePosixPath(rel).is_absolute()
        or PureWindowsPath(rel).is_absolute()
        or rel.startswith("~")
    ):
        return "is absolute; capture paths are relative to the captures folder"
    if ".." in PurePosixPath(rel).parts:
        return "contains '..'; capture paths must stay inside the captures folder"
    if "\x00" in rel:
        return "contains a NUL byte"
    return None


def resolve_inside(root: Path, rel: str, *, source: str | Path, entry: str) -> Path:
    """The real path of ``root/rel``, refusing any path that could leave ``root``.

    ``source`` (the manifest file) and ``entry`` (the capture id) name the offender in the error.
    """
    problem = lexical_problem(rel)
    if problem is None:
        real_root = Path(os.path.realpath(root))
        real = Path(os.path.realpath(root / rel))
        if real == real_root or not real.is_relative_to(real_root):
            problem = f"resolves outside the captures folder {root} (to {real})"
        else:
            return real
    raise UnsafePathError(
        f"{source}: entry '{entry}': path '{rel}' {problem}; refused, nothing read"
    )
