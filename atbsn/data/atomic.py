"""Atomic file writes: write a temporary file beside the target, then rename it into place."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from atbsn.errors import InputError
from atbsn.outputs import os_reason

__all__ = ["atomic_path"]


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path to write ``path``'s content to; move it onto ``path`` on success.

    The temporary file sits in the same folder (so the final ``os.replace`` is atomic) and keeps
    the suffix (writers such as cv2 pick the format from it). It is flushed to disk before the
    rename, and gets the mode a plain ``open`` would give it (0666 less the umask: some writers
    create 0600 files). If the body raises, the temporary file is removed and ``path`` is left as
    it was; an OSError (no permission, disk full, a file where a folder should be) becomes an
    InputError naming ``path`` and the reason. Missing parent folders are created.
    """
    target = Path(path)
    temporary = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:12]}.tmp{target.suffix}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        yield str(temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except OSError as error:
        _remove(temporary)
        raise InputError(f"{target}: cannot write: {os_reason(error)}") from error
    except BaseException:
        _remove(temporary)
        raise


def _remove(temporary: Path) -> None:
    try:
        temporary.unlink(missing_ok=True)
    except OSError:  # e.g. its folder could not be created
        pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
