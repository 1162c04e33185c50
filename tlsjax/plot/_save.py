"""Saving a figure atomically: to a temporary name beside the target, then renamed."""

from __future__ import annotations

from pathlib import Path

from .._io import atomic_path


def save_figure(fig, path, *, dpi: int = 130) -> Path:
    """Write `fig` to `path` (format from its suffix) so that an interrupt leaves either
    the old file or the new one, never a truncated figure; closes the figure."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=Path(path).suffix.lstrip(".").lower() or None)
    finally:
        plt.close(fig)
    return Path(path)
