"""Ctrl-C (SIGINT) and SIGTERM: clean stops, and short sections that must not be cut.

Python turns SIGINT into a `KeyboardInterrupt` at whatever Python line runs next. Inside
JAX that may be a garbage-collection callback (where the exception is printed and
ignored, so the run goes on) or a callback of the XLA compiler (after which the process
can crash on exit). The command line therefore installs `install_handlers()`: the
handler both raises `KeyboardInterrupt` and records the request, so that code which
reaches a safe point (`raise_if_interrupted`, e.g. after each batch of an ensemble)
stops even if the exception was swallowed; the CLI then leaves with `os._exit` (exit
status 130), skipping the interpreter teardown that XLA threads can crash.

`deferred_interrupts()` holds SIGINT and SIGTERM back during a short section (a few file
renames, updating running sums) and delivers them when it ends, so such a section is
never left half done. Both work in the main thread only (a limit of `signal`); elsewhere
they do nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None))
                 if s is not None)


class _State:
    requested: int | None = None  # the signal number of a request not yet acted on


_STATE = _State()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _handler(signum, frame):  # noqa: ARG001 - signal handler signature
    _STATE.requested = signum
    raise KeyboardInterrupt


def install_handlers() -> Callable[[], None]:
    """Install the recording handler for SIGINT and SIGTERM; returns a function that
    restores the previous handlers. Used by the command line (not by library calls)."""
    if not _in_main_thread():
        return lambda: None
    _STATE.requested = None
    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    for s in _SIGNALS:
        signal.signal(s, _handler)

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)

    return restore


def clear_request() -> None:
    """Forget an earlier stop request (each command run starts afresh)."""
    _STATE.requested = None


def requested_signal() -> int | None:
    """The signal (SIGINT or SIGTERM) that asked the CLI to stop, or None."""
    return _STATE.requested


def raise_if_interrupted() -> None:
    """Raise `KeyboardInterrupt` if a stop was requested (a safe point between steps)."""
    if _STATE.requested is not None:
        raise KeyboardInterrupt


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back inside the block; deliver them (once) when it ends."""
    if not _in_main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.getsignal(s) for s in _SIGNALS}

    def record(signum, frame):  # noqa: ARG001
        caught.append(signum)

    for s in _SIGNALS:
        signal.signal(s, record)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        if caught:
            signal.raise_signal(caught[0])
