"""JAX's persistent compilation cache for the command line (on by default; `--no-cache`).

Most of a short fit's time is compiling: the residual function, the L-BFGS step and the
evaluation of the model compile once per process. With the cache, a second run with the
same shapes and settings loads the compiled programs from disk instead.

- Where: `TLSJAX_CACHE_DIR` if set, else the user's cache folder: `$XDG_CACHE_HOME`
  (default `~/.cache`) on Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on
  Windows, each followed by `tlsjax/jax`. Created with mode 0700.
- Size: at most `TLSJAX_CACHE_MAX_BYTES` bytes (default 1 GiB); the least recently
  used entries are removed beyond it.
- Concurrent runs: with a size limit JAX reads and writes every entry under a file lock
  (the `filelock` package), so two runs never see each other's half-written entry; an
  entry that cannot be read is compiled again (JAX warns), it never fails a run.
- Results: a program loaded from the cache is the program that was compiled; the test
  suite checks that a warm run gives bit-identical numbers to a cold one.
- The fits' S-tau C(E) tables (the ES reductions behind them) and their largest traced
  programs (`jax.export`) are kept beside, in `fit/` (`tlsjax.fit._disk_cache`), so a
  warm run neither reduces nor traces them again; read back bit for bit.

Only the command line (`tlsjax ...` as a program) turns it on: the library never changes
JAX's global configuration, and `tlsjax.cli.main([...])` called from Python leaves it
alone. `TLSJAX_NO_CACHE=1` is the same as `--no-cache`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DEFAULT_MAX_BYTES = 1 << 30
#: Programs that compile faster than this are not written (reading them costs as much).
MIN_COMPILE_SECONDS = 0.05


def cache_dir() -> Path:
    """The folder of the compilation cache (see the module docstring)."""
    env = os.environ.get("TLSJAX_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "tlsjax" / "jax"


def _max_bytes() -> int:
    text = os.environ.get("TLSJAX_CACHE_MAX_BYTES", "")
    try:
        value = int(text) if text else DEFAULT_MAX_BYTES
    except ValueError:
        raise ValueError(f"TLSJAX_CACHE_MAX_BYTES must be an integer number of bytes > 0; got "
                         f"{text!r}") from None
    if value <= 0:
        raise ValueError(f"TLSJAX_CACHE_MAX_BYTES must be > 0; got {value}")
    return value


def enable_compilation_cache(disabled: bool = False) -> Path | None:
    """Point JAX's persistent compilation cache at `cache_dir()`; returns the folder, or
    None when disabled (`disabled`, `TLSJAX_NO_CACHE=1`) or when the folder cannot be
    created (then a one-line note on stderr, and the run goes on without a cache)."""
    if disabled or os.environ.get("TLSJAX_NO_CACHE", "") not in ("", "0"):
        return None
    max_bytes = _max_bytes()
    path = cache_dir()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        import filelock  # noqa: F401  (JAX locks the entries with it)
    except (OSError, ImportError) as err:
        print(f"tlsjax: note: no compilation cache ({type(err).__name__}: {err}); every run "
              "compiles afresh", file=sys.stderr)
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_compilation_cache_max_size", max_bytes)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    from ..fit import _disk_cache

    _disk_cache.set_folder(path / "fit")
    return path
