"""The ``atbsn`` command line: --version and info."""

import subprocess
import sys

import atbsn_kernels
from atbsn.cli import main


def test_version_via_python_m():
    proc = subprocess.run([sys.executable, "-m", "atbsn", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"atbsn {atbsn_kernels.__version__}"


def test_info_lists_backends_and_reasons(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "triton" in out
    assert "extension        loaded" in out
    for device_type, name in [("cpu", "cpu"), ("cpu", "reference"), ("cuda", "triton"), ("cuda", "cuda")]:
        assert any(line.split()[:2] == [device_type, name] for line in out.splitlines()), (device_type, name)
    assert "the C++ CPU kernels take CPU tensors, not cuda tensors" in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: atbsn" in capsys.readouterr().out
