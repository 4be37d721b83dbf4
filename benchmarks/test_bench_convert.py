"""A foreign BSN before and after ``convert_bsn``: training step (forward + backward) of an
AP-BSN-style network (two branches, centre-masked 3x3 and 5x5 first convs, dilated 3x3 convs)."""

import sys
from pathlib import Path

import pytest
import torch

from atbsn_kernels import convert_bsn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from foreign_bsn import APStyleBSN  # noqa: E402

# bench size -> (batch, side, channels)
SIZES = {"smoke": (1, 16, 8), "quick": (4, 96, 64), "full": (4, 128, 128)}
pytestmark = pytest.mark.model_level


@pytest.mark.parametrize("provider", ["original", "converted"])
def test_ap_style_bsn_train_step(timed, benchmark, bench_size, provider):
    n, side, channels = SIZES[bench_size]
    torch.manual_seed(0)
    model = APStyleBSN(channels)
    if provider == "converted":
        assert len(convert_bsn(model).replaced) == 2
    x = torch.randn(n, 3, side, side)
    benchmark.group = f"AP-BSN-style BSN fwd+bwd {n}x3x{side}x{side}, {channels} ch"

    def step():
        model.zero_grad(set_to_none=True)
        model(x).abs().mean().backward()

    timed(step, provider, reference=provider == "original")
