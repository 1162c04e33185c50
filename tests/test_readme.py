"""The README's commands, and the Python examples of the README and the docs, are the
ones that work."""

import re

import pytest
from _examples import ROOT, RUN_WITH, blocks, run_examples

README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _blocks(lang, text=README):
    return blocks(lang, text)


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
_EXAMPLE_PAGES = [p for p in PAGES if _blocks("python", p.read_text())]


@pytest.mark.parametrize("page", [p for p in _EXAMPLE_PAGES
                                  if str(p.relative_to(ROOT)) not in RUN_WITH],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_python_examples_run(page):
    """Each example runs on its own (a fresh namespace), from the repository root; an
    example that stands word for word on two pages runs once. Blocks fenced as `py`
    instead of `python` are fragments that are shown, not run here: they need a cluster,
    a user's own file, a name from the block before, or minutes of fitting. The pages of
    `RUN_WITH` (tests/_examples.py) run in the test file named there."""
    run_examples(str(page.relative_to(ROOT)), _RUN)


@pytest.mark.parametrize("page", sorted(RUN_WITH))
def test_examples_run_elsewhere_are_run_there(page):
    """A page of `RUN_WITH` has examples, and its test file runs them (by name)."""
    assert _blocks("python", (ROOT / page).read_text()), page
    source = (ROOT / "tests" / RUN_WITH[page]).read_text()
    assert re.search(rf"run_examples\(\s*\"{re.escape(page)}\"\s*\)\s*==\s*\d", source), (
        f"{RUN_WITH[page]} must run the examples of {page}")
