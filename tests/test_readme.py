"""README's promise: CI runs exactly the test command README gives."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", (ROOT / "README.md").read_text(encoding="utf-8"))


def test_ci_runs_readme_test_command():
    commands = readme_commands()
    assert len(commands) == 2, "README gives two commands: the main job and the tests"
    assert "pytest" in commands[1] and "roundtable demo" in commands[0]
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands[1] in ci_lines
