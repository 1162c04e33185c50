"""The documentation: the site builds strictly, every public name has a docstring, and no
committed file points outside the repository."""

import ast
import importlib
import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tlsjax

ROOT = Path(__file__).resolve().parents[1]
# `from .fit._data import Curve as Curve`: module path and public name
EXPORT = re.compile(r"^from \.([\w.]+) import (\w+) as \2$", re.M)


def _exports():
    return EXPORT.findall((ROOT / "tlsjax" / "__init__.py").read_text())


def _attribute_docstring(module: str, name: str) -> str | None:
    """The string literal right after the module-level assignment of `name`, if any."""
    body = ast.parse(Path(importlib.import_module(module).__file__).read_text()).body
    for stmt, nxt in zip(body, body[1:] + [None]):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else (
            [stmt.target] if isinstance(stmt, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) \
                    and isinstance(nxt.value.value, str):
                return nxt.value.value
            return None
    return None


def _own_docstring(obj) -> str | None:
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
        # dataclasses (so every eqx.Module) invent "Name(field, ...)" where none is written
        return None if doc and doc.startswith(obj.__name__ + "(") else doc
    return getattr(obj, "__doc__", None)


def test_every_public_name_has_a_docstring():
    exports = _exports()
    assert len(exports) > 50, "the export pattern of tlsjax/__init__.py changed"
    missing = []
    for module, name in exports:
        obj = getattr(tlsjax, name)
        if inspect.isclass(obj) or callable(obj):
            doc = _own_docstring(obj)
        else:  # a constant: documented by a string literal after its assignment
            doc = _attribute_docstring(f"tlsjax.{module}", name)
        if not (doc and doc.strip()):
            missing.append(f"{name} (tlsjax/{module.replace('.', '/')}.py)")
    assert not missing, "public names without a docstring: " + ", ".join(missing)


def test_api_page_lists_every_public_name():
    page = (ROOT / "docs" / "reference" / "api.md").read_text()
    listed = set(re.findall(r"^::: tlsjax\.(\w+)$", page, re.M))
    names = {name for _, name in _exports()}
    assert names - listed == set(), "add these to docs/reference/api.md"
    assert listed - names == set(), "docs/reference/api.md lists names tlsjax does not export"


def _committed_text_files():
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout.decode()
        paths = [ROOT / p for p in out.split("\0") if p]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file here
        skip = {".git", ".venv", "venv", "site", "__pycache__", ".pytest_cache", ".ruff_cache"}
        paths = [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.parts)]
    for p in paths:
        if p.suffix in {".png", ".npz", ".pdf"} or not p.is_file():
            continue
        try:
            yield p, p.read_text()
        except UnicodeDecodeError:
            continue


# Built from pieces, so that this file does not match itself.
_OUTSIDE = [
    ("a document outside the repository", re.compile(r"\b(MODEL|STYLE)" + r"\.md\b")),
    ("a path beside the repository other than ../shared/data",
     re.compile(r"\.\./shared/(?!data\b)")),
    ("an absolute path of a machine", re.compile(
        r"(?<![\w.~-])/(home|root|Users|tmp|mnt|opt|work|var|srv|usr|etc)/")),
]


def test_no_committed_file_points_outside_the_repository():
    found = []
    for path, text in _committed_text_files():
        for n, line in enumerate(text.splitlines(), 1):
            if n == 1 and line.startswith("#!"):
                continue  # a shebang names the interpreter
            for what, pattern in _OUTSIDE:
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {what}: {line.strip()[:100]}")
    assert not found, "\n".join(found)


def test_markdown_links_outside_docs_resolve():
    """README.md and the other Markdown files outside docs/ (mkdocs checks docs/ itself):
    relative links only, each to a file that exists."""
    bad = []
    for path, text in _committed_text_files():
        if path.suffix != ".md" or path.is_relative_to(ROOT / "docs"):
            continue
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            file = target.split("#")[0]
            if target.startswith("/") or (file and not (path.parent / file).exists()):
                bad.append(f"{path.relative_to(ROOT)}: {target}")
    assert not bad, "broken or absolute links: " + ", ".join(bad)


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason="mkdocs is not installed (pip install -e '.[docs]')")
def test_site_builds_strict(tmp_path):
    """A broken link, a missing page or anchor, or a docstring mkdocstrings cannot render
    fails the build."""
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                          "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir",
                          str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                         env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "api" / "index.html").exists()
