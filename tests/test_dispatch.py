"""Backend selection rules: auto order, env override, explicit requests, clear errors."""

import logging

import pytest
import torch

import atbsn_kernels
from atbsn_kernels import _ext, backends
from atbsn_kernels.backends import BackendUnavailableError, resolve_backend

CPU = torch.device("cpu")


def test_auto_on_cpu_picks_the_cpp_kernels(monkeypatch):
    monkeypatch.delenv(backends.ENV_VAR, raising=False)
    assert _ext.extension_loaded(), "the C++ extension must be built for the test suite"
    assert resolve_backend("auto", CPU) == "cpu"


def test_auto_logs_its_reason(monkeypatch, caplog):
    monkeypatch.delenv(backends.ENV_VAR, raising=False)
    with caplog.at_level(logging.DEBUG, logger="atbsn_kernels"):
        resolve_backend("auto", CPU)
    assert any("auto -> cpu" in r.getMessage() for r in caplog.records)


def test_auto_falls_back_to_reference_without_extension(monkeypatch):
    monkeypatch.delenv(backends.ENV_VAR, raising=False)
    monkeypatch.setattr(_ext, "_C", None)
    assert resolve_backend("auto", CPU) == "reference"
    with pytest.raises(BackendUnavailableError, match="pip install --no-build-isolation"):
        resolve_backend("cpu", CPU)


def test_auto_on_cuda_prefers_triton(monkeypatch):
    monkeypatch.delenv(backends.ENV_VAR, raising=False)
    assert resolve_backend("auto", torch.device("cuda")) == ("triton" if backends.triton_installed() else "reference")


@pytest.mark.parametrize("override", ["reference", "cpu"])
def test_env_var_overrides_auto(monkeypatch, override):
    monkeypatch.setenv(backends.ENV_VAR, override)
    assert resolve_backend("auto", CPU) == override
    assert resolve_backend("reference", CPU) == "reference", "an explicit backend wins over the env var"


def test_env_var_with_unknown_name_is_refused(monkeypatch):
    monkeypatch.setenv(backends.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="ATBSN_BACKEND"):
        resolve_backend("auto", CPU)


def test_env_var_naming_an_unavailable_backend_is_refused(monkeypatch):
    monkeypatch.setenv(backends.ENV_VAR, "cuda")
    with pytest.raises(BackendUnavailableError, match="ATBSN_BACKEND=cuda"):
        resolve_backend("auto", CPU)


@pytest.mark.parametrize("bad", ["CPU", "gpu", "", None, 3])
def test_unknown_backend_names_the_allowed_values(bad):
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend(bad, CPU)


def test_cuda_backend_needs_cuda_tensors():
    with pytest.raises(BackendUnavailableError, match="CUDA tensors"):
        resolve_backend("cuda", CPU)


def test_cpu_backend_needs_cpu_tensors():
    with pytest.raises(BackendUnavailableError, match="CPU tensors"):
        resolve_backend("cpu", torch.device("cuda"))


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_backend("triton", CPU) == "triton"
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(BackendUnavailableError, match="TRITON_INTERPRET=1"):
        resolve_backend("triton", CPU)


def test_available_backends_reports_every_backend_with_a_reason():
    status = atbsn_kernels.available_backends("cpu")
    assert set(status) == {"triton", "cuda", "cpu", "reference"}
    assert all(isinstance(reason, str) and reason for _, reason in status.values())
    assert status["reference"][0] and status["cpu"][0] and not status["cuda"][0]


def test_public_op_dispatches_to_the_requested_backend(monkeypatch):
    calls = []
    real = atbsn_kernels.ops.conv_op

    def spy(name):
        calls.append(name)
        return real(name)

    monkeypatch.setattr(atbsn_kernels.ops, "conv_op", spy)
    x, w = torch.randn(1, 2, 5, 5), torch.randn(2, 2, 3, 3)
    atbsn_kernels.blind_spot_conv2d(x, w, backend="cpu")
    atbsn_kernels.blind_spot_conv2d(x, w, backend="triton")
    atbsn_kernels.blind_spot_conv2d(x, w, backend="reference")
    assert calls == ["cpu", "triton"]


def test_cuda_backend_refuses_float64(monkeypatch):
    monkeypatch.setattr(atbsn_kernels.ops, "resolve_backend", lambda backend, device: "cuda")
    x, w = torch.randn(1, 2, 5, 5, dtype=torch.float64), torch.randn(2, 2, 3, 3, dtype=torch.float64)
    with pytest.raises(TypeError, match="backend 'cuda' supports float16, bfloat16 and float32"):
        atbsn_kernels.blind_spot_conv2d(x, w, backend="cuda")
