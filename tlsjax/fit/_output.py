"""Output files of the fits: checked before any computation, written atomically.

`check_output_path` finds every reason a file could not be written (a folder in its
place, a missing or read-only parent folder, an existing file that tlsjax did not
write, an extension no writer knows) before a fit starts, so that a long fit is never
lost at the end. `write_json_atomic` writes to a temporary file beside the target and
renames it into place: the target is always either the old file or the new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .._io import _jsonable, check_writable


def check_output_path(path, *, overwrite: bool, what: str,
                      suffixes: Iterable[str] | None = None) -> Path:
    """Raise a `ValueError` or `FileExistsError` naming `what` if `path` cannot be written.

    **Arguments:**

    - `path`: the output file.
    - `overwrite`: whether an existing file that tlsjax did not write may be replaced.
    - `what`: the option or argument that named the path (e.g. ``"--json"``).
    - `suffixes`: allowed extensions (lower case, with the dot), or None for any.

    **Returns:** the path as a `Path`.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder; give a file name")
    if suffixes is not None:
        allowed = sorted(set(suffixes))
        if path.suffix.lower() not in allowed:
            raise ValueError(f"{what} {path}: unsupported extension {path.suffix or '(none)'!r}; "
                             f"use one of {', '.join(allowed)}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise ValueError(f"{what} {path}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise ValueError(f"{what} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: the folder {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK) and not overwrite:
        raise ValueError(f"{what} {path} exists and is read-only")
    check_writable(path, overwrite)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path, data, *, overwrite: bool = False) -> Path:
    """Write `data` as JSON (arrays allowed; non-finite floats become null/"inf") to a
    temporary file in the same folder, then rename it to `path`.

    Never replaces a file tlsjax did not write unless `overwrite` (`FileExistsError`).
    """
    path = Path(path)
    check_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_jsonable(data), indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; use the usual mode
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
