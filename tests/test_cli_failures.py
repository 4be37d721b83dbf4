"""Every failure a user can cause is one line `atbsn <cmd>: error: ...` and exit 2, found before
any work, with nothing lost: each case runs the real CLI in a subprocess (exit code, no traceback)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from synthetic_data import random_rgb, tiny_weights, write_rgb

TINY_RUN = ["width=4", "batch=1", "crop=32", "log_every=1", "device=cpu", "val_data=none"]


def atbsn(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "atbsn", *map(str, args)], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=300)


def one_error_line(result: subprocess.CompletedProcess, command: str) -> str:
    """The error message of a run that must fail with exit 2, one line on stderr and no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"atbsn {command}: error: "), result.stderr[-2000:]
    return lines[0]


@pytest.fixture
def unwritable(tmp_path):
    """A folder nobody may write in, root included (root ignores permission bits: chattr +i then)."""
    folder = tmp_path / "unwritable"
    folder.mkdir()
    (folder / "existing.png").write_bytes(b"old")
    folder.chmod(0o555)
    immutable = os.geteuid() == 0 and shutil.which("chattr")
    if immutable:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        (folder / "probe").mkdir()
    except OSError:
        pass
    else:
        pytest.fail(f"could not make {folder} unwritable here (root without chattr?); the cases need one")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)


@pytest.fixture
def files(tmp_path):
    """An image, a corrupt image (so a check that ran after reading inputs would name it), tiny weights."""
    write_rgb(tmp_path / "photo.png", random_rgb(24, 20, seed=3))
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "bad.png").write_bytes(b"not an image")
    tiny_weights(tmp_path / "tiny.safetensors")
    return tmp_path


UNWRITABLE_REASONS = ("permission denied", "operation not permitted", "read-only file system")


@pytest.mark.parametrize("where", ["sub", "existing.png"])
def test_denoise_into_an_unwritable_folder(files, unwritable, where):
    target = unwritable / where
    line = one_error_line(atbsn("denoise", "corrupt/bad.png", "-o", target, cwd=files), "denoise")
    assert str(target) in line and "cannot write" in line and any(r in line for r in UNWRITABLE_REASONS), line
    assert (unwritable / "existing.png").read_bytes() == b"old"


def test_denoise_below_a_file(files):
    line = one_error_line(atbsn("denoise", "corrupt/bad.png", "-o", "photo.png/out.png", cwd=files), "denoise")
    assert "photo.png/out.png" in line and "photo.png: is a file" in line, line


def test_eval_into_an_unwritable_folder(files, unwritable):
    line = one_error_line(atbsn("eval", "--data", "missing", "-o", unwritable / "e", cwd=files), "eval")
    assert "--output" in line and "cannot write" in line, line


@pytest.mark.parametrize("out,reason", [("unwritable", "cannot write"), ("photo.png/run", "photo.png is a file")])
def test_train_output_is_checked_before_the_data_is_read(files, unwritable, out, reason):
    out = unwritable / "run" if out == "unwritable" else out
    line = one_error_line(atbsn("train", f"out={out}", "data=corrupt", *TINY_RUN, cwd=files), "train")
    assert "config key 'out'" in line and reason in line and "bad.png" not in line, line


@pytest.mark.parametrize("args,env,expected", [
    (["--backend", "foo"], {}, "--backend must be one of auto, reference, vendor, cpu, cuda, triton, got 'foo'"),
    (["--backend", "triton"], {"TRITON_INTERPRET": "0"}, "--backend 'triton' is unavailable here: "),
    ([], {"ATBSN_BACKEND": "foo"}, "environment variable ATBSN_BACKEND must be one of auto, reference"),
])
def test_denoise_with_a_bad_or_unavailable_backend(files, args, env, expected):
    line = one_error_line(atbsn("denoise", "photo.png", "-o", "out", *args, cwd=files, env=env), "denoise")
    assert expected in line, line
    assert not (files / "out").exists()


def test_train_with_an_unavailable_backend_before_the_data_is_read(files):
    result = atbsn("train", "out=run", "data=corrupt", "backend=cuda", *TINY_RUN, cwd=files)
    line = one_error_line(result, "train")
    assert "config key 'backend' 'cuda' is unavailable here" in line and "bad.png" not in line, line


def test_denoise_output_with_a_suffix_we_cannot_write(files):
    line = one_error_line(atbsn("denoise", "photo.png", "-o", "out/o.bmp", cwd=files), "denoise")
    assert ".bmp is not an image format atbsn writes" in line, line
    assert not (files / "out").exists()


@pytest.mark.parametrize("name", ["e.pt", "e.pth", "e"])
def test_export_refuses_a_name_that_is_not_safetensors(files, name):
    line = one_error_line(atbsn("export", "tiny.safetensors", name, cwd=files), "export")
    assert f"output {name}: the name must end in .safetensors" in line, line
    assert not (files / name).exists()


def test_export_writes_safetensors_readable_by_denoise(files):
    assert atbsn("export", "tiny.safetensors", "e.safetensors", cwd=files).returncode == 0
    result = atbsn("denoise", "photo.png", "-o", "o.png", "--weights", "e.safetensors", cwd=files)
    assert result.returncode == 0 and (files / "o.png").is_file(), result.stderr[-2000:]


def run_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def test_a_run_is_never_replaced_without_overwrite(files):
    assert atbsn("train", "out=run", "steps=2", *TINY_RUN, cwd=files).returncode == 0
    before = run_files(files / "run")
    line = one_error_line(atbsn("train", "out=run", "steps=2", "resume=false", *TINY_RUN, cwd=files), "train")
    assert "holds a run (last.pt, model.safetensors, metrics.jsonl) and resume=false" in line, line
    assert "overwrite=true" in line
    assert run_files(files / "run") == before
    mismatch = one_error_line(atbsn("train", "out=run", "steps=3", *TINY_RUN, cwd=files), "train")
    assert "written with steps=2 but this run has steps=3" in mismatch and "resume=false overwrite=true" in mismatch
    assert run_files(files / "run") == before
    replaced = atbsn("train", "out=run", "steps=3", "resume=false", "overwrite=true", *TINY_RUN, cwd=files)
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert "removed the old run's last.pt, model.safetensors, metrics.jsonl" in replaced.stdout


def test_overwrite_removes_nothing_when_a_later_check_fails(files):
    assert atbsn("train", "out=run", "steps=2", *TINY_RUN, cwd=files).returncode == 0
    before = run_files(files / "run")
    result = atbsn("train", "out=run", "data=corrupt", "resume=false", "overwrite=true", *TINY_RUN, cwd=files)
    assert "bad.png" in one_error_line(result, "train")
    assert run_files(files / "run") == before


def test_resume_says_where_it_starts_and_logs_plain_lines(files):
    assert atbsn("train", "out=run", "steps=4", "stop_after=2", *TINY_RUN, cwd=files).returncode == 0
    result = atbsn("train", "out=run", "steps=4", *TINY_RUN, cwd=files)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"train: resuming from step 2 of 4 ({Path('run') / 'last.pt'})" in result.stdout
    assert "\r" not in result.stderr  # stderr is a pipe here: no progress-bar frames
    assert [line.split(" (")[0] for line in result.stderr.splitlines()] == [
        "train: 3/4 steps", "train: 4/4 steps"]


def test_the_outputs_get_the_modes_of_the_umask(files):
    result = subprocess.run(["sh", "-c", f"umask 022 && {sys.executable} -m atbsn train out=run steps=1 "
                             + " ".join(TINY_RUN)], cwd=files, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    modes = {path.name: path.stat().st_mode & 0o777 for path in (files / "run").iterdir()}
    assert modes == dict.fromkeys(modes, 0o644) and "model.safetensors" in modes, modes


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["train", "--help"], ["denoise", "--help"]])
def test_help_and_version_start_without_torch(args):
    code = ("import sys\nfrom atbsn.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]\n")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-2000:]
    assert seconds < 1.0, f"atbsn {' '.join(args)} took {seconds:.2f} s"


def test_importing_the_kernels_does_not_import_inductor():
    code = "import sys, atbsn_kernels\nassert 'torch._inductor' not in sys.modules\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
