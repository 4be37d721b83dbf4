"""Test configuration: Triton kernels run in the interpreter on machines without a GPU, and fp32
convolutions (cuDNN's, and the Triton kernels', which follow cuDNN's setting) use IEEE precision
so that fp32 results can be compared with the reference at tight tolerances."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def exact_fp32():
    """fp32 convs in IEEE precision during each test (PyTorch's default allows TF32 on a GPU)."""
    previous = torch.backends.cudnn.conv.fp32_precision
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    yield
    torch.backends.cudnn.conv.fp32_precision = previous
