"""The eager fast path of every op (``DispatchOps``): an eager call on plain tensors skips the
dispatcher's custom ops but must compute exactly what they compute, and every other call (tensor
subclasses, dispatch modes, torch.compile) must still go through the custom ops."""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

from atbsn_kernels import blind_spot_conv2d, shifted_max_pool2d, taps, unrotate_cat, upsample_cat
from atbsn_kernels.ops import blind_spot_conv2d as conv_module
from atbsn_kernels.ops import shifted_max_pool2d as pool_module
from atbsn_kernels.ops import unrotate_cat as unrotate_module
from atbsn_kernels.ops import upsample_cat as upsample_module
from atbsn_kernels.ops.implementation import plain_eager_call

CONV_TAPS = list(taps.active_taps(taps.blind_spot_mask(3, 1)))


def _conv_inputs():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(2, 3, 7, 6, generator=g), torch.randn(4, 3, 3, 3, generator=g), torch.randn(4, generator=g))


def _case(name):
    """(public call, dispatch custom op, inputs, the custom op's extra arguments before backend)."""
    g = torch.Generator().manual_seed(1)
    if name == "blind_spot_conv2d":
        return (lambda *t, backend: blind_spot_conv2d(*t, blind=1, negative_slope=0.1, backend=backend),
                conv_module._dispatch, _conv_inputs(), (CONV_TAPS, 1, 0.1))
    if name == "shifted_max_pool2d":
        return (lambda x, backend: shifted_max_pool2d(x, backend=backend), pool_module._dispatch,
                (torch.randn(2, 3, 6, 8, generator=g),), ())
    if name == "upsample_cat":
        return (lambda x, s, backend: upsample_cat(x, s, backend=backend), upsample_module._dispatch,
                (torch.randn(2, 3, 4, 5, generator=g), torch.randn(2, 2, 8, 10, generator=g)), ())
    return (lambda f, backend: unrotate_cat(f, 2, backend=backend), unrotate_module._dispatch,
            (torch.randn(8, 3, 5, 5, generator=g),), (2,))


OPS = ["blind_spot_conv2d", "shifted_max_pool2d", "upsample_cat", "unrotate_cat"]


def _forward_backward(call, inputs):
    leaves = [t.clone().requires_grad_() for t in inputs]
    out = call(*leaves)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    out.backward(grad)
    return out, [t.grad for t in leaves], out.grad_fn


@pytest.mark.parametrize("backend", ["reference", "vendor", "cpu"])
@pytest.mark.parametrize("name", OPS)
def test_eager_path_equals_the_custom_op(name, backend):
    public, dispatch, inputs, extra = _case(name)
    eager_out, eager_grads, eager_node = _forward_backward(lambda *t: public(*t, backend=backend), inputs)

    op_out, op_grads, op_node = _forward_backward(lambda *t: dispatch(*t, *extra, backend), inputs)
    assert type(eager_node).__name__ == "EagerOpBackward"  # the public call took the eager path
    assert "dispatch" in type(op_node).__name__  # the custom op's own autograd node
    assert torch.equal(eager_out, op_out)
    for got, want in zip(eager_grads, op_grads):
        assert torch.equal(got, want)


@pytest.mark.parametrize("name", OPS)
def test_without_grad_no_graph_is_built(name):
    public, _, inputs, _ = _case(name)
    leaves = [t.clone().requires_grad_() for t in inputs]
    with torch.no_grad():
        out = public(*leaves, backend="cpu")
    assert out.grad_fn is None and not out.requires_grad
    out = public(*inputs, backend="cpu")  # nothing requires grad
    assert out.grad_fn is None


def test_fake_tensors_take_the_custom_op():
    with FakeTensorMode():
        out = blind_spot_conv2d(*_conv_inputs(), blind=1)
    assert isinstance(out, FakeTensor) and out.shape == (2, 4, 7, 6)


class _RecordOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def test_a_dispatch_mode_sees_the_custom_op():
    x, weight, bias = _conv_inputs()
    assert plain_eager_call((x, weight, bias))
    with _RecordOps() as mode:
        assert not plain_eager_call((x, weight, bias))
        blind_spot_conv2d(x, weight, bias, blind=1, backend="cpu")
    assert "atbsn.blind_spot_conv2d_dispatch.default" in mode.ops


def test_parameters_are_plain_and_subclasses_are_not():
    x, weight, _ = _conv_inputs()
    assert plain_eager_call((x, torch.nn.Parameter(weight), None, [1, 2], 1, "cpu"))

    class Marked(torch.Tensor):
        pass

    assert not plain_eager_call((x.as_subclass(Marked), weight))


def test_double_backward_is_refused_with_a_clear_error():
    x, weight, bias = (t.clone().requires_grad_() for t in _conv_inputs())
    out = blind_spot_conv2d(x, weight, bias, blind=1, backend="cpu")
    with pytest.raises(RuntimeError, match="atbsn::blind_spot_conv2d has no double backward"):
        torch.autograd.grad(out.square().sum(), x, create_graph=True)


def test_saved_output_changed_in_place_is_caught():
    """With a fused LeakyReLU the output is saved; changing it in place must fail the backward,
    as it does through the custom op, never give a wrong gradient."""
    x, weight, bias = (t.clone().requires_grad_() for t in _conv_inputs())
    out = blind_spot_conv2d(x, weight, bias, blind=1, negative_slope=0.1, backend="cpu")
    out.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()
