"""Whether the installed torch and Triton are in the supported range (``_version.MIN_*``)."""

from __future__ import annotations

import importlib.metadata
import re

from atbsn_kernels._version import MIN_TORCH, MIN_TRITON

MINIMUMS = {"torch": MIN_TORCH, "triton": MIN_TRITON}


def release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string: "2.13.0+cpu" -> (2, 13, 0), "3.6.0rc1" -> (3, 6, 0)."""
    match = re.match(r"\d+(\.\d+)*", version.strip())
    if match is None:
        raise ValueError(f"not a version: {version!r}")
    return tuple(int(part) for part in match.group(0).split("."))


def installed_version(package: str) -> str | None:
    """The installed distribution's version, or None when it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def range_problem(package: str, version: str | None) -> str | None:
    """Why ``version`` of ``package`` is outside the supported range, or None when it is inside
    (or not installed: Triton is optional)."""
    if version is None:
        return None
    minimum = MINIMUMS[package]
    if release(version) < release(minimum):
        return f"{package} {version} is older than the oldest supported, {minimum}: pip install '{package}>={minimum}'"
    return None


def version_problems() -> list[str]:
    """One line per installed package outside its supported range."""
    problems = (range_problem(name, installed_version(name)) for name in MINIMUMS)
    return [p for p in problems if p is not None]
