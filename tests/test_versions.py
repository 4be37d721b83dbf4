"""The supported torch / Triton range: one source (``_version``), read by setup.py, requirements,
``atbsn info`` and the oldest-Triton CI run."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from atbsn_kernels import versions
from atbsn_kernels._version import MIN_TORCH, MIN_TRITON

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("text,release", [("2.13.0+cpu", (2, 13, 0)), ("3.6.0rc1", (3, 6, 0)), ("2.11", (2, 11)),
                                          ("3.7.1", (3, 7, 1))])
def test_release_reads_the_numeric_part(text, release):
    assert versions.release(text) == release


def test_release_refuses_what_is_not_a_version():
    with pytest.raises(ValueError, match="not a version"):
        versions.release("nightly")


def test_versions_below_the_minimum_are_named_with_the_fix():
    assert versions.range_problem("triton", "3.5.1") == (
        f"triton 3.5.1 is older than the oldest supported, {MIN_TRITON}: pip install 'triton>={MIN_TRITON}'")
    assert "torch 2.10.0+cu128 is older" in versions.range_problem("torch", "2.10.0+cu128")
    assert versions.range_problem("torch", MIN_TORCH + ".0") is None
    assert versions.range_problem("triton", "3.9.0") is None
    assert versions.range_problem("triton", None) is None  # Triton is optional


def test_this_environment_is_in_range():
    assert versions.version_problems() == []


def test_setup_and_requirements_declare_the_same_minimums():
    setup = (ROOT / "setup.py").read_text()
    assert "read_version('MIN_TORCH')" in setup and "read_version('MIN_TRITON')" in setup
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(rf"^triton>={re.escape(MIN_TRITON)}$", requirements, re.M)
    assert not re.search(r"^triton==", requirements, re.M)  # the public index's torch pins its own triton


def test_info_prints_the_supported_range():
    command = "import sys, atbsn.cli; sys.exit(atbsn.cli.main(['info']))"
    result = subprocess.run([sys.executable, "-c", command], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"supported        torch >= {MIN_TORCH}, triton >= {MIN_TRITON}: the installed versions are in range" \
        in result.stdout
