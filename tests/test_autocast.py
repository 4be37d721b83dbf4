"""Mixed precision: the convs under ``torch.autocast`` (atbsn_kernels.autocast), the whole model's
bf16 accuracy against fp64 beside the official-style model's, and ``precision: bf16`` training."""

import copy

import pytest
import torch
import torch.nn as nn

import atbsn_kernels
import atbsn_kernels.nn
from atbsn.errors import InputError
from atbsn.models import ATBSN
from atbsn.models.official_style import OfficialStyleATBSN
from atbsn.train import precision
from atbsn.train.config import TrainConfig, load_config
from atbsn.train.distributed import start_processes
from atbsn.train.runner import run_training
from atbsn.train.tasks import train_task

SMALL = (2, 4, 6, 7)  # N, Cin, H, W: odd width, tiny for the Triton interpreter


def _convs(backend):
    """{name: f(x, weight, bias)} of every public conv, on ``backend``."""
    return {
        "blind_spot_conv2d": lambda x, w, b: atbsn_kernels.blind_spot_conv2d(x, w, b, blind=1, negative_slope=0.1,
                                                                             backend=backend),
        "shifted_conv2d": lambda x, w, b: atbsn_kernels.shifted_conv2d(x, w, b, backend=backend),
        "dilated_conv2d": lambda x, w, b: atbsn_kernels.dilated_conv2d(x, w, b, dilation=2, backend=backend),
    }


def _operands(device, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    n, cin, h, w = SMALL
    x = torch.randn(n, cin, h, w, generator=generator, dtype=dtype)
    weight = torch.randn(5, cin, 3, 3, generator=generator, dtype=dtype) / 3
    bias = torch.randn(5, generator=generator, dtype=dtype)
    return [t.to(device).requires_grad_() for t in (x, weight, bias)]


def _grads(leaves):
    return [t.grad for t in leaves]


@pytest.mark.parametrize("op", ["blind_spot_conv2d", "shifted_conv2d", "dilated_conv2d"])
def test_autocast_casts_as_the_explicit_bf16_call_does(pair, op):
    """Under autocast, fp32 operands give exactly what the same call on bf16 copies gives (output
    and the fp32 leaves' gradients), as ``F.conv2d`` does."""
    backend, device = pair
    conv = _convs(backend)[op]
    leaves = _operands(device)
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        got = conv(*leaves)
    assert got.dtype == torch.bfloat16
    got.float().square().sum().backward()
    explicit = _operands(device)
    want = conv(*(t.to(torch.bfloat16) for t in explicit))
    want.float().square().sum().backward()
    assert torch.equal(got, want)
    for g, w in zip(_grads(leaves), _grads(explicit)):
        assert g.dtype == torch.float32
        assert torch.equal(g, w)


def test_autocast_dtype_follows_the_context():
    x, weight, bias = _operands("cpu")
    with torch.autocast("cpu", dtype=torch.float16):
        y = atbsn_kernels.blind_spot_conv2d(x, weight, bias, blind=1)
    assert y.dtype == torch.float16


def test_float64_is_not_cast():
    x, weight, bias = _operands("cpu", torch.float64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = atbsn_kernels.blind_spot_conv2d(x, weight, bias, blind=1)
    assert y.dtype == torch.float64
    assert torch.equal(y, atbsn_kernels.blind_spot_conv2d(x, weight, bias, blind=1))


def test_without_autocast_mixed_dtypes_are_refused():
    x, weight, bias = _operands("cpu")
    with pytest.raises(TypeError, match="weight must match x in dtype"):
        atbsn_kernels.blind_spot_conv2d(x.to(torch.bfloat16), weight, bias, blind=1)


def test_modules_mix_with_nn_conv2d_under_autocast():
    """``nn.Conv2d`` hands bf16 features to a BlindSpotConv2d with fp32 weights: under autocast that runs."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), atbsn_kernels.nn.BlindSpotConv2d(8, 8, 3, blind=1),
                          nn.ReLU(inplace=True), nn.Conv2d(8, 3, 1))
    x = torch.rand(2, 3, 12, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
    assert y.dtype == torch.bfloat16
    y.float().mean().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


@pytest.mark.slow
def test_torch_compile_fullgraph_under_autocast():
    x, weight, bias = _operands("cpu")

    def conv(a, b, c):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return atbsn_kernels.blind_spot_conv2d(a, b, c, blind=1, negative_slope=0.1, backend="cpu")

    torch._dynamo.reset()
    got = torch.compile(conv, fullgraph=True)(x, weight, bias)
    assert got.dtype == torch.bfloat16
    assert torch.equal(got, conv(x, weight, bias))


def _run(model, x, autocast: bool, dtype=torch.float32):
    """(output, all parameter gradients flattened) of an L1 step at hole 3, in fp64 for comparing."""
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        y = model(x.to(dtype), 3)
        loss = (y.to(dtype) - x.to(dtype)).abs().mean()
    loss.backward()
    return y.detach().double(), torch.cat([p.grad.flatten().double() for p in model.parameters()])


@pytest.mark.parametrize("backend", ["reference", "vendor", "cpu"])
@pytest.mark.parametrize("seed", [0, 1])
def test_atbsn_bf16_is_as_accurate_as_the_official_style_model(backend, seed):
    """Both models under bf16 autocast against ours in fp64: output (relative to its largest value)
    and the whole gradient (relative norm) within 2x the official-style model's own bf16 error
    (measured: both about 1%)."""
    torch.manual_seed(seed)
    ours = ATBSN(mid=16, backend=backend)
    official = OfficialStyleATBSN(mid=16)
    official.load_state_dict(ours.state_dict())
    x = torch.rand(2, 3, 32, 32)
    y64, g64 = _run(copy.deepcopy(ours).double(), x, False, torch.float64)
    errors = {}
    for name, model in (("ours", ours), ("official-style", official)):
        y, g = _run(model, x, True)
        assert g.dtype == torch.float64 and y.isfinite().all()
        errors[name] = (float((y - y64).abs().max() / y64.abs().max()), float((g - g64).norm() / g64.norm()))
    (out, grad), (official_out, official_grad) = errors["ours"], errors["official-style"]
    assert out <= 2 * official_out and grad <= 2 * official_grad, errors
    assert max(out, grad) < 0.05, errors


TINY = ["width=4", "batch=1", "crop=32", "log_every=1", "device=cpu", "val_data=none", "steps=2"]


@pytest.fixture
def autocast_seen(monkeypatch):
    """A list that records, per ATBSN forward call, whether CPU autocast was on."""
    seen = []
    original = ATBSN.forward

    def forward(self, x, hole_size=1):
        seen.append(torch.is_autocast_enabled("cpu"))
        return original(self, x, hole_size)

    monkeypatch.setattr(ATBSN, "forward", forward)
    return seen


def _train(tmp_path, *overrides):
    config = load_config(TrainConfig, None, [f"out={tmp_path}", *TINY, *overrides])
    processes = start_processes("cpu")
    task = train_task(config, processes)
    images = [torch.randint(0, 256, (3, 40, 48), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)]
    run_training(task, config, images, [], processes)
    return task


def test_bf16_precision_trains_with_autocast(tmp_path, monkeypatch, autocast_seen):
    monkeypatch.setattr(precision, "bf16_hardware", lambda: "AMX-BF16")
    task = _train(tmp_path, "precision=bf16")
    assert autocast_seen and all(autocast_seen)
    assert all(p.dtype == torch.float32 and p.isfinite().all() for p in task.model.parameters())


def test_bf16_precision_falls_back_to_fp32_without_bf16_hardware(tmp_path, monkeypatch, autocast_seen):
    monkeypatch.setattr(precision, "bf16_hardware", lambda: None)
    with pytest.warns(UserWarning, match="precision=bf16: this CPU .* has no AVX512-BF16 or AMX.*training in fp32"):
        _train(tmp_path, "precision=bf16")
    assert autocast_seen and not any(autocast_seen)


def test_fp32_precision_runs_without_autocast(tmp_path, autocast_seen):
    _train(tmp_path)
    assert autocast_seen and not any(autocast_seen)


def test_unknown_precision_is_refused(tmp_path):
    with pytest.raises(InputError, match="config key 'precision' must be one of fp32, bf16, got 'fp16'"):
        load_config(TrainConfig, None, [f"out={tmp_path}", "precision=fp16"])


def test_uses_bf16_refuses_an_unknown_precision():
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'half'"):
        precision.uses_bf16("half", torch.device("cpu"))


@pytest.mark.parametrize("hardware, says", [("AMX-BF16", "fast on this CPU (AMX-BF16"),
                                            (None, "slow on this CPU (no AVX512-BF16 or AMX")])
def test_info_says_whether_bf16_is_fast_here(monkeypatch, hardware, says):
    from atbsn import info

    monkeypatch.setattr(info, "bf16_hardware", lambda: hardware)
    line = next(line for line in info.info_lines() if line.startswith("bf16 autocast"))
    assert says in line


@pytest.mark.parametrize("flags, hardware", [(("avx2", "fma"), None),
                                             (("avx2", "avx512f", "avx512_bf16"), "AVX512-BF16"),
                                             (("avx512_bf16", "amx_bf16", "amx_tile"), "AMX-BF16")])
def test_bf16_hardware_reads_the_isa_flags(monkeypatch, flags, hardware):
    from atbsn_kernels import machine

    monkeypatch.setattr(machine, "cpu_isa", lambda: flags)
    assert machine.bf16_hardware() == hardware
