"""The README's commands and example are the ones that work."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def test_two_commands_and_ci_agree():
    commands = [b.strip() for b in _blocks("bash")]
    assert len(commands) >= 2
    main_job, tests = commands[0], commands[1]
    assert "pip install" in main_job and "tlsjax reproduce" in main_job
    assert "pip install" in tests and "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == tests, "the README's test command must be exactly what .ci/run runs"


def test_python_examples_run():
    blocks = _blocks("python")
    assert blocks
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
