"""Progress bars that suit both a terminal and a log file.

On a terminal, tqdm redraws one line in place. When stderr is not a terminal (a log
file, a pipe, a batch job), every redraw would be a new line in the log, so there the
bar redraws at most every `LOG_INTERVAL_S` seconds, and postfix updates (loss, gradient)
never force a redraw of their own.
"""

from __future__ import annotations

import sys

#: Seconds between redraws when stderr is not a terminal.
LOG_INTERVAL_S = 10.0


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
    from tqdm.auto import tqdm

    terminal = stderr_is_terminal()
    kw = {} if terminal else dict(mininterval=LOG_INTERVAL_S, maxinterval=LOG_INTERVAL_S,
                                  miniters=1, ncols=100)
    return tqdm(total=total, desc=desc, disable=not enabled, leave=leave if terminal else False,
                unit=unit, initial=initial, file=sys.stderr, **kw)
