"""Put the fused kernels into a foreign blind-spot network: :func:`convert_bsn`.

Masked convolutions in the wild are ``nn.Conv2d`` modules that hold a 0/1 weight multiplier
(AP-BSN's ``CentralMaskedConv2d``, MM-BSN's line and cross masks, AM-BSN's X, LG-BPN's diamond
and 21x21 lattice) and apply it in ``forward`` or in a forward pre-hook. ``convert_bsn`` finds
them and proves on a probe input that the fused version computes what the original did:

- a module whose ``forward`` takes only the input is replaced by a
  :class:`~atbsn_kernels.nn.BlindSpotConv2d` holding the same weights and the same mask (the
  multiplier stays a buffer under its own name, so checkpoints load both ways);
- a module whose ``forward`` takes more (LG-BPN's ``DSPMC_21(x, refine, dict=, SIDD=)``, which
  also runs a different, chopped computation in eval mode) keeps its class and its forward: only
  the conv that ``nn.Conv2d.forward`` computes inside it (``_conv_forward`` of its own weight)
  becomes the fused op (:class:`FusedConvForward`).
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field

import torch
from torch import nn

from atbsn_kernels import _checks, taps
from atbsn_kernels.backends import check_backend_name
from atbsn_kernels.nn import PADDING_MODES, BlindSpotConv2d, masked_conv, tap_lattice

__all__ = ["ConversionReport", "FusedConvForward", "convert_bsn", "find_weight_multiplier"]


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


class FusedConvForward:
    """Stands in for a masked ``nn.Conv2d``'s ``_conv_forward`` (what ``nn.Conv2d.forward`` calls),
    so that the module's own forward, with whatever else it does, runs the fused op: a conv of the
    module's own weight takes the active taps of its mask buffer (read again whenever the buffer
    changes, as after loading a checkpoint); a conv of any other weight is ``nn.Conv2d``'s."""

    def __init__(self, conv: nn.Conv2d, mask_name: str, backend: str):
        self.conv, self.mask_name, self.backend = conv, mask_name, backend
        self.calls = 0
        self._cached = None  # ((buffer data pointer, version), lattice)

    def lattice(self):
        buffer = getattr(self.conv, self.mask_name)
        key = (buffer.data_ptr(), buffer._version)
        if self._cached is None or self._cached[0] != key:
            tap_mask = taps.mask_from_multiplier(buffer)
            if tap_mask is None:
                raise ValueError(f"{self.mask_name}: the mask differs between channels "
                                 "(the fused op takes one [k, k] mask)")
            self._cached = (key, tap_lattice(taps.active_taps(tap_mask), self.conv.kernel_size[0]))
        return self._cached[1]

    def __call__(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        conv = self.conv
        if weight is not conv.weight:
            return nn.Conv2d._conv_forward(conv, input, weight, bias)
        self.calls += 1
        return masked_conv(input, weight, bias, self.lattice(), conv.dilation[0], conv.padding_mode, None, self.backend)


def _extra_forward_arguments(conv: nn.Conv2d) -> list[str]:
    """The parameters of ``conv``'s forward besides the input."""
    return list(inspect.signature(type(conv).forward).parameters)[2:]  # after self and the input


def _probe(conv: nn.Conv2d) -> torch.Tensor:
    """A random input for ``conv``, larger than its padding (reflect padding needs that)."""
    pad = conv.dilation[0] * (conv.kernel_size[0] // 2)
    return torch.randn(1, conv.in_channels, 2 * pad + 5, 2 * pad + 4, device=conv.weight.device,
                       dtype=conv.weight.dtype)


def _close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    scale = float(expected.abs().max()) if expected.numel() else 1.0
    return expected.shape == got.shape and torch.allclose(got, expected, rtol=1e-3, atol=1e-4 * max(1.0, scale))


def _outputs_match(original: nn.Module, fused: nn.Module, probe: torch.Tensor, training: bool) -> bool:
    """Both give the same output on ``probe`` in the given mode (run on copies: a forward may edit
    its weights or its mode)."""
    with torch.no_grad():
        return _close(copy.deepcopy(fused).train(training)(probe), copy.deepcopy(original).train(training)(probe))


def _same_output(original: nn.Conv2d, new: BlindSpotConv2d) -> bool:
    """The replacement gives the original's output in training and in eval mode."""
    probe = _probe(original)
    return all(_outputs_match(original, new, probe, training) for training in (True, False))


def _fuse_in_place(conv: nn.Conv2d, mask_name: str, backend: str) -> tuple[str | None, str]:
    """Make ``conv``'s own conv the fused op (:class:`FusedConvForward`): (None, note) when done,
    else (why not, "") and ``conv`` is left as it was. Probed in training mode, and in eval mode
    when the original's eval forward runs on the probe (LG-BPN's chopped eval forward does not)."""
    trial = copy.deepcopy(conv)  # a throwaway: run as it is, its calls counted
    trial._conv_forward = FusedConvForward(trial, mask_name, backend)
    probe = _probe(conv)
    try:
        with torch.no_grad():
            same = _close(trial.train()(probe), copy.deepcopy(conv).train()(probe))
    except Exception as error:  # the original's forward on the probe: nothing to compare with
        return f"its forward raised {type(error).__name__} on a probe", ""
    if not same:
        return "the module's output is not the masked conv's", ""
    if trial._conv_forward.calls == 0:
        return "its forward never runs nn.Conv2d's conv of its weight", ""
    note = "probed in training and eval mode"
    try:
        same_in_eval = _outputs_match(conv, trial, probe, False)
    except Exception as error:  # the original's own eval code, which the fused module runs unchanged
        same_in_eval = True
        note = f"probed in training mode (its eval forward raised {type(error).__name__} on the probe)"
    if not same_in_eval:
        return "its eval-mode output is not the masked conv's", ""
    conv._conv_forward = FusedConvForward(conv, mask_name, backend)
    return None, note


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
    extras = [f"padding_mode {conv.padding_mode}"] if conv.padding_mode != "zeros" else []
    if k > _checks.MAX_KERNEL_SIZE:
        extras.append(f"runs as {grid.kernel_size}x{grid.kernel_size} at dilation {conv.dilation[0] * grid.step}")
    extra_arguments = _extra_forward_arguments(conv)
    if extra_arguments:
        why, note = _fuse_in_place(conv, mask_name, backend)
        if why is not None:
            return None, f"'{mask_name}' looks like a mask but {why}"
        new = conv
        extras.append(f"fused in place (its forward also takes {', '.join(extra_arguments)}; {note})")
    else:
        new = _replacement(conv, mask_name, multiplier, backend)
        try:
            same = _same_output(conv, new)
        except Exception as error:  # the original's forward on the probe: nothing to compare with
            return None, f"'{mask_name}' looks like a mask but its forward raised {type(error).__name__} on a probe"
        if not same:
            return None, f"'{mask_name}' looks like a mask but the module's output is not the masked conv's"
    masked = int(tap_mask.sum())
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
        if (not isinstance(module, nn.Conv2d) or isinstance(module, BlindSpotConv2d)
                or isinstance(module.__dict__.get("_conv_forward"), FusedConvForward)):
            continue
        new, detail = _conversion(module, backend)
        if new is module:
            report.replaced.append((name, detail))
            continue
        if new is None or not name:
            report.left_alone.append((name, detail if new is None else "the model itself: wrap it in a module first"))
            continue
        parent_name, _, child = name.rpartition(".")
        model.get_submodule(parent_name)._modules[child] = new
        report.replaced.append((name, detail))
    return report
