"""Put the fused kernels into a foreign blind-spot network: :func:`convert_bsn`.

Masked convolutions in the wild are ``nn.Conv2d`` modules that hold a 0/1 weight multiplier
(AP-BSN's ``CentralMaskedConv2d``, MM-BSN's line and cross masks, AM-BSN's X) and apply it in
``forward`` or in a forward pre-hook. ``convert_bsn`` finds them, replaces each in place with a
:class:`~atbsn_kernels.nn.BlindSpotConv2d` holding the same weights and the same mask (the
multiplier stays a buffer under its own name, so checkpoints load both ways), and proves on a
probe input that the replacement computes what the original did before swapping it in.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from atbsn_kernels import _checks, taps
from atbsn_kernels.backends import check_backend_name
from atbsn_kernels.nn import PADDING_MODES, BlindSpotConv2d

__all__ = ["ConversionReport", "convert_bsn", "find_weight_multiplier"]


@dataclass
class ConversionReport:
    """What :func:`convert_bsn` did: ``replaced`` and ``left_alone`` as (module name, detail)."""

    replaced: list[tuple[str, str]] = field(default_factory=list)
    left_alone: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        """One line per replaced conv; the convs left alone grouped by reason, with a count and
        their first few names."""
        lines = [f"converted {len(self.replaced)} masked conv(s), left {len(self.left_alone)} conv(s) alone"]
        lines += [f"  replaced  {name or '<root>'}: {detail}" for name, detail in self.replaced]
        for reason, names in self.left_alone_by_reason().items():
            shown = ", ".join(n or "<root>" for n in names[:_NAMES_SHOWN])
            more = f" and {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN else ""
            lines.append(f"  left {len(names):>3}  {reason}: {shown}{more}")
        return "\n".join(lines)

    def left_alone_by_reason(self) -> dict[str, list[str]]:
        """{reason: names of the convs left alone for it}, in the order first met."""
        groups: dict[str, list[str]] = {}
        for name, reason in self.left_alone:
            groups.setdefault(reason, []).append(name)
        return groups


_NAMES_SHOWN = 3


def find_weight_multiplier(conv: nn.Conv2d) -> tuple[str, torch.Tensor] | None:
    """(name, tensor) of the 0/1 buffer or parameter that masks ``conv``'s weight, else None.

    A multiplier has the kernel's spatial shape ``[k, k]`` or the weight's full shape and holds
    only zeros and ones, with at least one zero.
    """
    kernel_shape, weight_shape = tuple(conv.weight.shape[-2:]), tuple(conv.weight.shape)
    tensors = list(conv.named_buffers(recurse=False)) + [
        (name, p) for name, p in conv.named_parameters(recurse=False) if name not in ("weight", "bias")
    ]
    for name, tensor in tensors:
        if tensor is None or tuple(tensor.shape) not in (kernel_shape, weight_shape):
            continue
        values = tensor.detach()
        if bool(((values == 0) | (values == 1)).all()) and bool((values == 0).any()):
            return name, tensor
    return None


def _unsupported_geometry(conv: nn.Conv2d) -> str | None:
    """Why the fused op cannot run this conv, or None."""
    k = conv.kernel_size
    if conv.groups != 1:
        return f"groups={conv.groups} (the fused op needs groups=1)"
    if conv.stride != (1, 1):
        return f"stride={conv.stride} (the fused op needs stride 1)"
    if conv.padding_mode not in PADDING_MODES:
        return f"padding_mode={conv.padding_mode!r} (the fused module supports {PADDING_MODES})"
    if k[0] != k[1] or k[0] % 2 == 0:
        return f"kernel_size={k} (the fused op needs a square odd kernel)"
    if conv.dilation[0] != conv.dilation[1]:
        return f"dilation={conv.dilation} (the fused op needs equal dilations)"
    same = conv.dilation[0] * (k[0] // 2)
    if conv.padding not in ("same", (same, same)):
        return f"padding={conv.padding} (the fused op is a 'same' conv: padding {same})"
    return None


def _replacement(conv: nn.Conv2d, mask_name: str, multiplier: torch.Tensor, backend: str) -> BlindSpotConv2d:
    weight = conv.weight
    new = BlindSpotConv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size[0], dilation=conv.dilation[0],
        bias=conv.bias is not None, padding_mode=conv.padding_mode, device=weight.device, dtype=weight.dtype,
        mask=taps.mask_from_multiplier(multiplier), backend=backend,
    )
    with torch.no_grad():
        new.weight.copy_(weight)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    new.weight.requires_grad_(weight.requires_grad)
    if conv.bias is not None:
        new.bias.requires_grad_(conv.bias.requires_grad)
    new.keep_mask_buffer(mask_name, multiplier)
    new.train(conv.training)
    return new


def _same_output(original: nn.Conv2d, new: BlindSpotConv2d) -> bool:
    """Run both on a random probe (the original on a copy: its forward may edit its weights)."""
    pad = new.padding[0]
    probe = torch.randn(1, new.in_channels, 2 * pad + 5, 2 * pad + 4, device=new.weight.device, dtype=new.weight.dtype)
    with torch.no_grad():
        expected = copy.deepcopy(original)(probe)
        got = new(probe)
    scale = float(expected.abs().max()) if expected.numel() else 1.0
    return expected.shape == got.shape and torch.allclose(got, expected, rtol=1e-3, atol=1e-4 * max(1.0, scale))


def _conversion(conv: nn.Conv2d, backend: str) -> tuple[BlindSpotConv2d | None, str]:
    """(replacement, detail) or (None, why not)."""
    found = find_weight_multiplier(conv)
    if found is None:
        return None, "no 0/1 weight mask: a plain conv"
    mask_name, multiplier = found
    why = _unsupported_geometry(conv)
    if why is not None:
        return None, f"masked by '{mask_name}' but {why}"
    tap_mask = taps.mask_from_multiplier(multiplier)
    if tap_mask is None:
        return None, f"'{mask_name}' differs between channels (the fused op takes one [k, k] tap mask)"
    k = conv.kernel_size[0]
    grid = taps.lattice(taps.active_taps(tap_mask), k)
    if k > _checks.MAX_KERNEL_SIZE and grid.kernel_size > _checks.MAX_KERNEL_SIZE:
        return None, (f"masked by '{mask_name}' but kernel_size={k} and its active taps lie on no lattice that "
                      f"makes it at most {_checks.MAX_KERNEL_SIZE}")
    new = _replacement(conv, mask_name, multiplier, backend)
    if not _same_output(conv, new):
        return None, f"'{mask_name}' looks like a mask but the module's output is not the masked conv's"
    masked = int(new.tap_mask.sum())
    extras = [f"padding_mode {conv.padding_mode}"] if conv.padding_mode != "zeros" else []
    if k > _checks.MAX_KERNEL_SIZE:
        extras.append(f"runs as {grid.kernel_size}x{grid.kernel_size} at dilation {conv.dilation[0] * grid.step}")
    return new, (f"{type(conv).__name__} {k}x{k}, {masked} masked tap(s), mask '{mask_name}'"
                 + "".join(f", {e}" for e in extras))


def convert_bsn(model: nn.Module, *, backend: str = "auto") -> ConversionReport:
    """Replace, in place, every masked convolution of ``model`` by a fused ``BlindSpotConv2d``.

    Outputs and gradients of the model are unchanged; its state dict keeps the same keys (the
    mask buffers included), so checkpoints of the original load into the converted model and
    back. Returns a :class:`ConversionReport` of what was replaced and what was left alone (and
    why). A model that is itself a masked conv cannot be replaced in place: wrap it first.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_backend_name(backend)
    report = ConversionReport()
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.Conv2d) or isinstance(module, BlindSpotConv2d):
            continue
        new, detail = _conversion(module, backend)
        if new is None or not name:
            report.left_alone.append((name, detail if new is None else "the model itself: wrap it in a module first"))
            continue
        parent_name, _, child = name.rpartition(".")
        model.get_submodule(parent_name)._modules[child] = new
        report.replaced.append((name, detail))
    return report
