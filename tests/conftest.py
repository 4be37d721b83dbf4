"""Test configuration and the helpers the per-op test files share.

- Triton kernels run in the interpreter on machines without a GPU.
- fp32 convolutions (cuDNN's, and the Triton kernels', which follow cuDNN's setting) use IEEE
  precision, so fp32 results can be compared with the reference at tight tolerances.
- ``backend="auto"`` takes the fixed order (``ATBSN_AUTOTUNE=0``), so results do not depend on a
  measurement; the tuner's own tests turn measuring on. Its cache goes to a temporary folder,
  never to the user's.
- ``pair``: a fixture over every (backend, device) pair that runs here (``backend_cases.py``
  holds them with the tolerance table and the comparison); the extension must be built (tests
  fail without it, never skip).
"""

import os
import tempfile

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("ATBSN_AUTOTUNE", "0")
os.environ.setdefault("ATBSN_CACHE_DIR", tempfile.mkdtemp(prefix="atbsn-test-cache-"))

from backend_cases import backend_params  # noqa: E402

pytest_plugins = ["gpu_marks"]

from atbsn_kernels import _ext  # noqa: E402

assert _ext.extension_loaded(), f"the tests need the built extension: {_ext.LOAD_ERROR}; {_ext.BUILD_HINT}"

@pytest.fixture(params=backend_params())
def pair(request):
    """(backend, device) of one implementation that runs here (backend_cases.BACKENDS)."""
    return request.param


@pytest.fixture(autouse=True)
def exact_fp32():
    """fp32 convs in IEEE precision during each test (PyTorch's default allows TF32 on a GPU)."""
    previous = torch.backends.cudnn.conv.fp32_precision
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    yield
    torch.backends.cudnn.conv.fp32_precision = previous
