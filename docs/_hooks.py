"""MkDocs hooks of the tlsjax site.

- The committed figures of `experiments/figures/` are served as `figures/` in the site, so
  pages show them (and `mkdocs build --strict` checks every link to them) without a second
  copy in `docs/`.
- Angle brackets of the physics notation (<E_tau>, <eps_tau>, <E_tau>_0) are text, not
  HTML tags: Markdown would otherwise drop them silently, in the pages and in the
  docstrings that mkdocstrings renders. Real HTML tags and <http://...> links are left alone.
- The marker `<!-- tlsjax-help -->` in a page is replaced by the `--help` text of every
  command and subcommand, drawn from the parsers themselves, so the command-line reference
  never falls behind the code.
"""

import xml.etree.ElementTree as etree
from pathlib import Path

from markdown import Extension
from markdown.inlinepatterns import InlineProcessor
from markdown.util import AtomicString
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

_EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
_HTML_TAGS = "a|b|i|em|strong|code|pre|br|span|div|sub|sup|img|p|kbd|table|tr|td|th|ul|ol|li"
# `<` + a non-space, up to 40 characters without angle brackets or a line break, `>`
_ANGLE = rf"<(?!/?(?:{_HTML_TAGS})\b)(?=[^\s<>])([^<>\n]{{1,40}})>"


class _AngleText(InlineProcessor):
    def handleMatch(self, m, data):  # noqa: N802 (Markdown's API)
        el = etree.Element("span")
        el.text = AtomicString(m.group(0))  # not parsed again (inline HTML would take it)
        return el, m.start(0), m.end(0)


class AngleBracketsAsText(Extension):
    def extendMarkdown(self, md):  # noqa: N802 (Markdown's API)
        # after autolinks (120), before inline HTML (90)
        md.inlinePatterns.register(_AngleText(_ANGLE, md), "tlsjax_angle_text", 95)


@event_priority(100)  # before mkdocstrings copies the Markdown extensions
def on_config(config):
    config.markdown_extensions.append(AngleBracketsAsText())
    return config


def on_files(files, config):
    for png in sorted((_EXPERIMENTS / "figures").glob("*.png")):
        files.append(File(f"figures/{png.name}", str(_EXPERIMENTS), config["site_dir"],
                          config["use_directory_urls"]))
    return files


_HELP_MARKER = "<!-- tlsjax-help -->"


def _help_sections() -> str:
    """`tlsjax COMMAND --help` of every command, as Markdown sections."""
    import argparse
    import os

    from tlsjax.cli._main import build_parser, iter_parsers

    os.environ.setdefault("COLUMNS", "100")  # argparse wraps help to the terminal width
    out = []
    for parser in iter_parsers(build_parser()):
        if parser.prog == "tlsjax" or any(isinstance(a, argparse._SubParsersAction)
                                          for a in parser._actions):
            continue
        out.append(f"### `{parser.prog}`\n\n```text\n{parser.format_help().rstrip()}\n```\n")
    return "\n".join(out)


def on_page_markdown(markdown, page, config, files):
    if _HELP_MARKER in markdown:
        markdown = markdown.replace(_HELP_MARKER, _help_sections())
    return markdown
