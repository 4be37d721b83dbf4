"""The README's two commands: the test command is exactly what CI runs; the main job is the demo."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("python3 -m venv")]
    assert len(ci_lines) == 1
    assert f"```bash\n{ci_lines[0]}\n```" in readme


def test_the_main_command_sets_up_and_runs_the_demo():
    readme = (ROOT / "README.md").read_text()
    main = ("python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && "
            ".venv/bin/pip install --no-build-isolation -e . && .venv/bin/atbsn demo")
    assert f"```bash\n{main}\n```" in readme
