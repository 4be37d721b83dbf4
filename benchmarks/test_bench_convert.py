"""A foreign BSN before and after ``convert_bsn``: training step (forward + backward) of an
AP-BSN-style network (two branches, centre-masked 3x3 and 5x5 first convs, dilated 3x3 convs)."""

import copy
import sys
from pathlib import Path

import pytest
import torch
from bench_compare import Provider

from atbsn_kernels import convert_bsn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from foreign_bsn import APStyleBSN  # noqa: E402

# bench size -> (batch, side, channels)
SIZES = {"smoke": (1, 16, 8), "quick": (4, 96, 64), "full": (4, 128, 128)}
pytestmark = pytest.mark.model_level


def test_ap_style_bsn_train_step(compare, bench_size):
    n, side, channels = SIZES[bench_size]
    torch.manual_seed(0)
    original = APStyleBSN(channels)
    converted = copy.deepcopy(original)
    assert len(convert_bsn(converted).replaced) == 2
    x = torch.randn(n, 3, side, side)

    def step(model):
        def run():
            model.zero_grad(set_to_none=True)
            model(x).abs().mean().backward()

        return run

    compare(f"AP-BSN-style BSN fwd+bwd {n}x3x{side}x{side}, {channels} ch",
            {"original": Provider(step(original), "reference", {"images": n}),
             "converted": Provider(step(converted), "fast", {"images": n})})
