"""The ``gpu`` mark, set at collection (tests/conftest.py loads this plugin), so that
``pytest -m gpu`` selects the GPU side of the suite: what ``python -m atbsn_kernels.gpu_check``
runs on a CUDA machine.

A test is marked when its parametrization id, or its ``pair`` / ``device`` parameter, mentions
"cuda" (``backend_cases.backend_params()`` yields the (backend, device) pairs, with the CUDA ones
on a GPU only), and when its name mentions "triton": the Triton kernels are the main GPU path (on
a machine without a GPU they run in the interpreter, so ``-m gpu`` selects them there too).
"""

import pytest

DEVICE_PARAMS = ("pair", "device")


def runs_on_gpu(item) -> bool:
    """True for a test of a CUDA tensor or of the Triton kernels (see the module docstring)."""
    if "triton" in item.name:
        return True
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return False
    return "cuda" in callspec.id or any("cuda" in str(callspec.params.get(name, "")) for name in DEVICE_PARAMS)


@pytest.hookimpl(tryfirst=True)  # before the -m selection reads the marks
def pytest_collection_modifyitems(items):
    for item in items:
        if runs_on_gpu(item):
            item.add_marker(pytest.mark.gpu)
