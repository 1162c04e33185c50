"""The Python examples of the README and the docs pages (```python blocks), run as a user
would: each block in a fresh namespace, from the repository root."""

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Pages whose examples run in the test file named here, beside tests that compile the
#: same programs (same shapes and settings: one compilation serves both), rather than in
#: tests/test_readme.py. That file's test checks the name is called there.
RUN_WITH = {
    "docs/explanation/monte-carlo.md": "test_mc_study.py",
    "docs/explanation/model.md": "test_dos.py",
}


def blocks(lang: str, text: str) -> list[str]:
    """The code of every ```lang block of a Markdown text."""
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def run_examples(page: str, done: set | None = None) -> int:
    """Run the ```python blocks of `page` (relative to the repository root) from the root;
    blocks already in `done` are skipped and the ones run are added. Returns how many ran."""
    here = Path.cwd()
    os.chdir(ROOT)  # examples name files relative to the repository root
    ran = 0
    try:
        for code in blocks("python", (ROOT / page).read_text()):
            if done is not None and code in done:
                continue
            exec(compile(code, page, "exec"), {})
            ran += 1
            if done is not None:
                done.add(code)
    finally:
        os.chdir(here)
    return ran
