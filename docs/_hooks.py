"""MkDocs hook: serve the committed figures of `experiments/figures/` as `figures/` in the
site, so that pages show them (and `mkdocs build --strict` checks every link to them)
without a second copy in `docs/`."""

from pathlib import Path

from mkdocs.structure.files import File

_FIGURES = Path(__file__).resolve().parents[1] / "experiments"


def on_files(files, config):
    for png in sorted((_FIGURES / "figures").glob("*.png")):
        files.append(File(f"figures/{png.name}", str(_FIGURES), config["site_dir"],
                          config["use_directory_urls"]))
    return files
