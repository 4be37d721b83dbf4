"""Without the C++ extension the package imports and its reference, vendor and Triton paths work
(``auto`` then runs the vendor conv)."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os, sys
    sys.modules["atbsn_kernels._C"] = None  # makes `import atbsn_kernels._C` raise ImportError
    import torch
    import atbsn_kernels
    from atbsn_kernels import reference
    from atbsn_kernels.backends import BackendUnavailableError, auto_candidates

    x, w = torch.randn(1, 2, 6, 5), torch.randn(3, 2, 3, 3)
    expected = reference.blind_spot_conv2d(x, w, None, atbsn_kernels.taps.blind_taps(3, 1))
    assert auto_candidates("cpu") == ("vendor",)
    for backend in ("auto", "vendor", "reference", "triton"):
        torch.testing.assert_close(atbsn_kernels.blind_spot_conv2d(x, w, backend=backend), expected)
    try:
        atbsn_kernels.blind_spot_conv2d(x, w, backend="cpu")
    except BackendUnavailableError as exc:
        print("ERROR:", exc)
    else:
        raise SystemExit("backend='cpu' should have failed")
    """
)


def test_package_works_without_the_extension():
    env = dict(os.environ, TRITON_INTERPRET="1")
    env.pop("ATBSN_BACKEND", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "pip install --no-build-isolation -e ." in proc.stdout
    assert "atbsn_kernels._C" in proc.stdout
