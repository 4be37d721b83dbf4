"""Backend names and availability: explicit requests, the env override, the fixed auto order,
truthful statuses on a CPU-only torch, clear errors."""

import pytest
import torch

import atbsn_kernels
from atbsn_kernels import _ext, backends
from atbsn_kernels.backends import (
    BackendUnavailableError,
    auto_candidates,
    resolve_backend,
)

CPU = torch.device("cpu")


def test_auto_stays_auto_until_the_op_measures(monkeypatch):
    monkeypatch.delenv(backends.ENV_VAR, raising=False)
    assert resolve_backend("auto", CPU) == "auto"


def test_auto_candidates_on_the_cpu_are_our_kernels_then_the_vendor_conv():
    assert auto_candidates("cpu") == ("cpu", "vendor")


def test_auto_candidates_without_the_extension_are_the_vendor_conv(monkeypatch):
    monkeypatch.setattr(_ext, "_C", None)
    assert auto_candidates("cpu") == ("vendor",)
    with pytest.raises(BackendUnavailableError, match="pip install --no-build-isolation"):
        resolve_backend("cpu", CPU)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without a GPU reports")
def test_no_backend_runs_cuda_tensors_without_a_gpu():
    status = atbsn_kernels.available_backends("cuda")
    assert not any(ok for ok, _ in status.values())
    assert all("torch.cuda.is_available() is False" in reason for _, reason in status.values())
    assert auto_candidates("cuda") == ()


@pytest.mark.parametrize("override", ["reference", "vendor", "cpu"])
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
    with pytest.raises(BackendUnavailableError, match="environment variable ATBSN_BACKEND 'cuda' is unavailable here"):
        resolve_backend("auto", CPU)


@pytest.mark.parametrize("bad", ["CPU", "gpu", "", None, 3])
def test_unknown_backend_names_the_allowed_values(bad):
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend(bad, CPU)


def test_cuda_backend_needs_cuda_tensors():
    with pytest.raises(BackendUnavailableError, match="CUDA tensors"):
        resolve_backend("cuda", CPU)


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_backend("triton", CPU) == "triton"
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(BackendUnavailableError, match="TRITON_INTERPRET=1"):
        resolve_backend("triton", CPU)


def test_available_backends_reports_every_backend_with_a_reason():
    status = atbsn_kernels.available_backends("cpu")
    assert set(status) == {"reference", "vendor", "cpu", "cuda", "triton"}
    assert all(isinstance(reason, str) and reason for _, reason in status.values())
    assert status["reference"][0] and status["vendor"][0] and status["cpu"][0] and not status["cuda"][0]
