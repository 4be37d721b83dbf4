"""atbsn.train.memory: the training commands keep freed memory (glibc's mmap and trim thresholds)."""

import os
import subprocess
import sys

import pytest

from atbsn.commands import training
from atbsn.train import memory


class FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, parameter, value):
        self.calls.append((parameter, value))
        return 1


@pytest.fixture
def libc(monkeypatch):
    fake = FakeLibc()
    monkeypatch.setattr(memory, "_libc", lambda: fake)
    for name in memory.ALLOCATOR_ENV:
        monkeypatch.delenv(name, raising=False)
    return fake


def test_raises_both_thresholds(libc):
    assert memory.keep_freed_memory()
    assert libc.calls == [(memory.M_MMAP_THRESHOLD, 1 << 30), (memory.M_TRIM_THRESHOLD, 2**31 - 1)]


@pytest.mark.parametrize("name, value", [("MALLOC_MMAP_THRESHOLD_", "65536"),
                                         ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0"),
                                         ("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")])
def test_a_users_own_allocator_settings_are_left_alone(libc, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert not memory.keep_freed_memory()
    assert libc.calls == []


def test_a_preloaded_library_that_is_no_allocator_does_not_count(libc, monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libgomp.so.1")
    assert memory.keep_freed_memory()
    assert len(libc.calls) == 2


def test_other_c_libraries_are_left_alone(monkeypatch):
    monkeypatch.setattr(memory, "_libc", lambda: None)
    assert not memory.keep_freed_memory()


def test_a_refused_setting_reports_false(libc, monkeypatch):
    monkeypatch.setattr(libc, "mallopt", lambda parameter, value: 0)
    assert not memory.keep_freed_memory()


def test_this_machines_glibc_takes_the_settings():
    """The real mallopt accepts both values here (glibc on Linux; elsewhere nothing is set). In a
    child process, so that this test process keeps glibc's defaults."""
    env = {k: v for k, v in os.environ.items() if k not in memory.ALLOCATOR_ENV}
    code = "from atbsn.train import memory; print(memory.keep_freed_memory(), memory._libc() is not None)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    kept, glibc = out.split()
    assert kept == glibc


def test_the_training_commands_keep_freed_memory(monkeypatch):
    called = []
    monkeypatch.setattr(training, "keep_freed_memory", lambda: called.append(True))
    monkeypatch.setattr(training, "train_with", lambda kind, config: (_ for _ in ()).throw(SystemExit(0)))
    args = type("Args", (), {"config": None, "overrides": ["out=unused", "device=cpu"]})()
    with pytest.raises(SystemExit):
        training.run("train", args)
    assert called == [True]
