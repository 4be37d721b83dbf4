"""``shifted_conv2d``: AT-BSN's half-plane 3x3 conv, a derived op with no kernel of its own.

The 3x3 weight is placed in rows 0..2, columns 1..3 of a 5x5 weight (``F.pad(weight, (1, 1, 0, 2))``,
differentiable) and runs on :func:`~atbsn_kernels.ops.blind_spot_conv2d.blind_spot_conv2d_taps`
with only those nine taps active (``taps.SHIFTED_TAPS``), so every backend of
``blind_spot_conv2d.IMPLEMENTATIONS`` runs it, the sixteen other taps are never read and the
weight gradient is the 3x3 block of the 5x5 one. Its definition is ``reference.shifted_conv2d``
(shift down one row, 3x3 conv, crop, LeakyReLU), which the tests compare every backend with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from atbsn_kernels import _checks, autocast
from atbsn_kernels.ops.blind_spot_conv2d import blind_spot_conv2d_taps
from atbsn_kernels.taps import SHIFTED_TAPS

__all__ = ["shifted_conv2d"]


def shifted_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    negative_slope: float | None = 0.1,
    backend: str = "auto",
) -> torch.Tensor:
    """AT-BSN's half-plane 3x3 conv: output row h sees input rows h-2..h only.

    Equals the official ``shift down one row -> 3x3 conv (zero pad 1) -> crop last row ->
    LeakyReLU`` (``reference.shifted_conv2d``) in one fused pass.

    x ``[N, Cin, H, W]``, weight ``[Cout, Cin, 3, 3]``, bias ``[Cout]`` or None;
    ``negative_slope`` None or >= 0 (fused LeakyReLU, official: 0.1); ``backend`` as for
    ``blind_spot_conv2d``. Returns ``[N, Cout, H, W]``.
    """
    x, weight, bias = autocast.conv_operands(x, weight, bias)
    _checks.check_feature_tensors(x, weight, bias)
    if weight.shape[-1] != 3:
        raise ValueError(f"weight must hold a 3x3 kernel for shifted_conv2d, got {tuple(weight.shape[-2:])}")
    negative_slope = _checks.check_negative_slope(negative_slope)
    return blind_spot_conv2d_taps(x, F.pad(weight, (1, 1, 0, 2)), bias, SHIFTED_TAPS, 1, negative_slope, backend)
