"""The Triton kernels under the oldest Triton the package claims (``_version.MIN_TRITON``), in the
interpreter, beside the newer Triton of the test environment.

That release is installed once, without dependencies, into a cache folder (``pip --target``;
``ATBSN_CI_CACHE``, default ``~/.cache/atbsn-ci``) and put first on the path of a subprocess that
runs every Triton case of the per-op test files. The first run downloads it (about 200 MB from the
public index); later runs reuse the folder. Triton 3.6's interpreter converts 1-element arrays to
Python ints, which NumPy 2.4 refuses, so the folder also holds the last NumPy before 2.4 (only the
interpreter needs it; a GPU never runs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from atbsn_kernels._version import MIN_TRITON

ROOT = Path(__file__).resolve().parent.parent
OLDEST = f"{MIN_TRITON}.0"
ITS_NUMPY = "numpy<2.4"
TRITON_TEST_FILES = ("tests/test_op_blind_spot_conv2d.py", "tests/test_op_shifted_max_pool2d.py",
                     "tests/test_op_shifted_conv2d.py")


def oldest_triton_folder() -> Path:
    """A folder holding only triton==OLDEST, installed on first use (atomically: a failed or
    interrupted install leaves nothing that a later run would take for complete)."""
    cache = Path(os.environ.get("ATBSN_CI_CACHE", Path.home() / ".cache" / "atbsn-ci"))
    folder = cache / f"triton-{OLDEST}-numpy-2.3"
    if (folder / "triton" / "__init__.py").exists():
        return folder
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(partial),
                             f"triton=={OLDEST}", ITS_NUMPY], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"could not install triton=={OLDEST} (is the package index reachable?):\n" \
                                   f"{result.stderr[-2000:]}"
    partial.rename(folder)
    return folder


def with_oldest_triton() -> dict:
    folder = oldest_triton_folder()
    path = os.pathsep.join([str(folder), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path, "TRITON_INTERPRET": "1"}


def test_the_subprocess_imports_the_oldest_triton():
    result = subprocess.run([sys.executable, "-c", "import triton; print(triton.__version__)"],
                            env=with_oldest_triton(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == OLDEST


def test_triton_kernels_pass_their_tests_under_the_oldest_triton():
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "triton",
                             *TRITON_TEST_FILES], cwd=ROOT, env=with_oldest_triton(), capture_output=True, text=True,
                            timeout=1200)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary and "skipped" not in summary, summary
