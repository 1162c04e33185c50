"""The S-tau C(E) tables of the fits, kept on disk between runs (the command line only).

A `tlsjax fit` run spends most of its time, once its programs are compiled, on the ES
reductions behind the tabulated C(E): one for the fit and one per independent DOS sample
of the error estimate. They depend only on the sample (x, L, lattice, realizations, key),
a~, h_rel and the floating-point width, so a second run with the same settings reads
them back instead (`load` / `save`). The numbers read are the numbers written (`.npz`,
exact bits): a warm run gives the same result as a cold one.

- Off unless a folder is set (`set_folder`): the library computes afresh; the `tlsjax`
  program sets `<cache folder>/tables` (`tlsjax.cli._cache`; off with `--no-cache` or
  `TLSJAX_NO_CACHE=1`).
- The key holds the settings above, the versions of JAX, NumPy and tlsjax, and a hash of
  tlsjax's source files: any change to the code computes the tables afresh.
- Files are written atomically (`_io.atomic_write_bytes`), so concurrent runs never read
  half a file; one that cannot be read is computed again (never an error).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from pathlib import Path

import numpy as np

_FIELDS = ("log_eps", "log_p_s", "d_log_p_s", "log_phi_tau", "d_log_phi_tau", "e_tau_mean")
_folder: Path | None = None


def set_folder(folder) -> Path | None:
    """Keep tables in `folder` (None: off); returns the previous folder."""
    global _folder
    previous, _folder = _folder, None if folder is None else Path(folder)
    return previous


def folder() -> Path | None:
    return _folder


@functools.lru_cache(maxsize=1)
def _code_version() -> str:
    import jax

    from .. import __version__

    h = hashlib.sha256(f"{__version__} {jax.__version__} {np.__version__}".encode())
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _path(key: tuple) -> Path | None:
    if _folder is None:
        return None
    text = json.dumps([_code_version(), *key], default=str)
    return _folder / f"stau-table-{hashlib.sha256(text.encode()).hexdigest()[:32]}.npz"


def load(key: tuple) -> dict[str, np.ndarray | None] | None:
    """The arrays stored under `key`, or None (no folder, not stored, or unreadable)."""
    path = _path(key)
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {n: np.array(z[n]) if n in z.files else None for n in _FIELDS}
    except (OSError, ValueError, KeyError, EOFError):
        return None
    return out if all(out[n] is not None for n in _FIELDS[:-1]) else None


def save(key: tuple, arrays: dict) -> None:
    """Store `arrays` (the fields of a `TabulatedStauTLS`) under `key`; a folder that
    cannot be written is passed over (the run goes on without it)."""
    from .._io import atomic_write_bytes

    path = _path(key)
    if path is None:
        return
    buf = io.BytesIO()
    np.savez(buf, **{n: np.asarray(v) for n, v in arrays.items() if v is not None})
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError:
        pass
