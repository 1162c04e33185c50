"""Writing results without overwriting what a user wrote.

An output folder written by tlsjax holds `tlsjax-manifest.json`, the list of files
tlsjax put there. A later run may replace those files; any other existing file is
left alone, and writing over it raises `FileExistsError` unless `overwrite=True`.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

MANIFEST = "tlsjax-manifest.json"


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return _jsonable(np.asarray(obj).tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def check_writable(path: Path, overwrite: bool, owned: set[str] | None = None) -> None:
    """Raise `FileExistsError` if `path` exists, is not ours, and `overwrite` is off."""
    path = Path(path)
    if path.exists() and not overwrite and (owned is None or path.name not in owned):
        raise FileExistsError(
            f"{path} exists and was not written by tlsjax; pass --overwrite "
            "(overwrite=True) or choose another output path")


def write_json(path, data, *, overwrite: bool = False) -> Path:
    """Write `data` (NumPy/JAX arrays allowed; non-finite floats become null/"inf")."""
    path = Path(path)
    check_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(data), indent=2) + "\n")
    return path


class OutputDir:
    """A folder of results; see the module docstring for the overwrite rule."""

    def __init__(self, root, *, overwrite: bool = False):
        self.root = Path(root)
        self.overwrite = overwrite
        if self.root.exists() and not self.root.is_dir():
            raise FileExistsError(f"{self.root} exists and is not a folder")
        self.root.mkdir(parents=True, exist_ok=True)
        manifest = self.root / MANIFEST
        self.owned: set[str] = set()
        if manifest.exists():
            try:
                self.owned = set(json.loads(manifest.read_text()).get("files", []))
            except (json.JSONDecodeError, AttributeError) as err:
                raise FileExistsError(f"{manifest} is not a tlsjax manifest") from err
        self.written: list[str] = []

    def path(self, name: str) -> Path:
        p = self.root / name
        check_writable(p, self.overwrite, self.owned)
        self.written.append(name)
        self.owned.add(name)
        (self.root / MANIFEST).write_text(json.dumps({"files": sorted(self.owned)}, indent=2))
        return p

    def json(self, name: str, data) -> Path:
        return write_json(self.path(name), data, overwrite=True)

    def csv(self, name: str, header: list[str], rows) -> Path:
        p = self.path(name)
        with p.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            for row in rows:
                w.writerow([f"{v:.8g}" if isinstance(v, float) else v for v in row])
        return p
