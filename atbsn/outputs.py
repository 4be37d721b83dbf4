"""Output locations checked before any work starts: a folder or file we could not write is an
`InputError` naming it and the reason (``permission denied``, ``is a file``), not a traceback
after the data has loaded."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from atbsn.errors import InputError

__all__ = ["check_output_file", "check_output_folder", "os_reason"]


def os_reason(error: OSError) -> str:
    """The operating system's reason for `error`, as a lower-case phrase (``permission denied``)."""
    text = error.strerror or str(error)
    return text[:1].lower() + text[1:]


def _existing_ancestor(path: Path, what: str) -> Path:
    """The nearest of `path` and its parents that exists (the last parent, "." or "/", always does);
    it must be a folder."""
    existing = next(candidate for candidate in (path, *path.parents) if candidate.exists())
    if not existing.is_dir():
        where = "is a file" if existing == path else f"cannot be created: {existing} is a file"
        raise InputError(f"{what} {path}: {where}, not a folder")
    return existing


def check_output_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """`path` as a Path, once it is sure that it is, or can be created as, a folder we can write in.

    Nothing is left behind: the check creates and removes a probe folder in the nearest existing
    parent (so it also holds for root on an immutable or read-only folder, where permission bits
    say nothing). Raises InputError ``"<what> <path>: ..."`` with the reason.
    """
    path = Path(path)
    existing = _existing_ancestor(path, what)
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".atbsn-probe-", dir=existing))
    except OSError as error:
        inside = "" if existing == path else f" (in {existing})"
        raise InputError(f"{what} {path}: cannot write{inside}: {os_reason(error)}") from None
    return path


def check_output_file(path: str | os.PathLike, what: str = "output file",
                      suffixes: tuple[str, ...] | None = None) -> Path:
    """`path` as a Path, once it is sure that a file of that name can be written (or replaced).

    `suffixes`: the allowed name endings (lower case, with the dot), or None for any name.
    """
    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise InputError(f"{what} {path}: the name must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise InputError(f"{what} {path}: is a folder, not a file")
    check_output_folder(path.parent, f"{what} {path}: folder")
    return path
