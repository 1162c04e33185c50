"""Progress bars that suit both a terminal and a log file.

On a terminal, tqdm redraws one line in place. When stderr is not a terminal (a log
file, a pipe, a batch job), every redraw would be a new line in the log, so there the
bar redraws at most every `LOG_INTERVAL_S` seconds (the environment variable
`TLSJAX_LOG_INTERVAL`, in seconds, sets another interval), and postfix updates (loss,
gradient) never force a redraw of their own.
"""

from __future__ import annotations

import os
import sys

#: Seconds between redraws when stderr is not a terminal.
LOG_INTERVAL_S = 10.0


def log_interval() -> float:
    """Seconds between redraws in a log: `TLSJAX_LOG_INTERVAL` if set (> 0), else 10."""
    try:
        value = float(os.environ.get("TLSJAX_LOG_INTERVAL", LOG_INTERVAL_S))
    except ValueError:
        return LOG_INTERVAL_S
    return value if value > 0 else LOG_INTERVAL_S


def stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # closed or replaced stream
        return False


def progress_bar(total: int | None = None, *, desc: str = "", enabled: bool = True,
                 leave: bool = False, unit: str = "it", initial: int = 0):
    """A tqdm bar (disabled if not `enabled`) with log-friendly redraw intervals.

    Use `set_postfix(..., refresh=False)` for per-step statistics: the numbers are shown
    at the next redraw instead of forcing one.
    """
    if not enabled:  # nothing to show: no tqdm object (its first one costs ~0.2 s)
        return _NoBar(initial)
    from tqdm.auto import tqdm

    terminal = stderr_is_terminal()
    every = log_interval()
    kw = {} if terminal else dict(mininterval=every, maxinterval=every,
                                  miniters=1, ncols=100)
    return tqdm(total=total, desc=desc, leave=leave if terminal else False,
                unit=unit, initial=initial, file=sys.stderr, **kw)


class _NoBar:
    """A disabled progress bar: what tqdm(disable=True) offers the callers, for nothing."""

    def __init__(self, initial: int = 0):
        self.n = initial

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def set_description(self, *args, **kwargs) -> None:
        pass

    def refresh(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass
