"""The README's commands, and the Python examples of the README and the docs, are the
ones that work."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _blocks(lang, text=README):
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def test_two_commands_and_ci_agree():
    commands = [b.strip() for b in _blocks("bash")]
    assert len(commands) >= 2
    main_job, tests = commands[0], commands[1]
    assert "pip install" in main_job and "tlsjax reproduce" in main_job
    assert "pip install" in tests and "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == tests, "the README's test command must be exactly what .ci/run runs"


def test_readme_is_short():
    assert len(README.splitlines()) <= 250, "the README is a page or two; details go to docs/"


_RUN = set()  # examples already run in this process (the README's also stands in the docs)


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks("python", p.read_text())],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_python_examples_run(page, monkeypatch):
    """Each example runs on its own (a fresh namespace), from the repository root; an
    example that stands word for word on two pages runs once. Blocks fenced as `py`
    instead of `python` are fragments that are shown, not run here: they need a cluster,
    a user's own file, a name from the block before, or minutes of fitting."""
    monkeypatch.chdir(ROOT)  # examples name files relative to the repository root
    for code in _blocks("python", page.read_text()):
        if code in _RUN:
            continue
        exec(compile(code, str(page.relative_to(ROOT)), "exec"), {})
        _RUN.add(code)
