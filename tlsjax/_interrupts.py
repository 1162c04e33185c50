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
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None))
                 if s is not None)


class _State:
    requested: int | None = None  # the signal number of a request not yet acted on
    grace: float | None = None  # seconds before a request ends the process regardless
    timer: threading.Timer | None = None  # the pending end of the grace


_STATE = _State()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _signal_name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def force_exit(signum: int, why: str) -> None:
    """Leave at once with status 128 + `signum`, after one line on stderr (written to the
    file descriptor directly: the Python streams may be locked by the interrupted code)."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    with contextlib.suppress(OSError):
        os.write(2, f"tlsjax: interrupted ({_signal_name(signum)}): {why}\n".encode())
    os._exit(128 + int(signum))


def _handler(signum, frame):  # noqa: ARG001 - signal handler signature
    first = _STATE.requested is None
    _STATE.requested = signum
    if not first and _STATE.grace is not None:
        force_exit(signum, "second request, stopped at once; work not yet saved is lost")
    if first and _STATE.grace is not None:
        _start_timer(signum, _STATE.grace)
    raise KeyboardInterrupt


def _start_timer(signum: int, seconds: float) -> None:
    timer = threading.Timer(seconds, force_exit, (signum, (
        f"no safe point was reached within {seconds:g} s, stopped at once; work since the "
        "last batch or checkpoint is lost")))
    timer.daemon = True
    _STATE.timer = timer
    timer.start()


def extend_grace(seconds: float) -> None:
    """After a stop request, give the process `seconds` from now (instead of what is
    left of the grace) to save finished work, e.g. to measure Monte Carlo states that
    had finished before the request. A second request still stops at once. Does
    nothing without a pending request or outside the command line."""
    timer, signum = _STATE.timer, _STATE.requested
    if timer is None or signum is None or not timer.is_alive():
        return
    timer.cancel()
    _start_timer(signum, seconds)


def install_handlers(grace: float | None = None) -> Callable[[], None]:
    """Install the recording handler for SIGINT and SIGTERM; returns a function that
    restores the previous handlers. Used by the command line (not by library calls).

    With `grace` (seconds), a stop request that has not ended the process `grace`
    seconds later (code that swallowed the `KeyboardInterrupt`, or a long compiled
    batch with no safe point) ends it with `os._exit(128 + signal)`, and so does a
    second request.
    """
    if not _in_main_thread():
        return lambda: None
    _STATE.requested = None
    _STATE.grace = grace
    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    for s in _SIGNALS:
        signal.signal(s, _handler)

    def restore() -> None:
        _STATE.grace = None
        if _STATE.timer is not None:
            _STATE.timer.cancel()
            _STATE.timer = None
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)

    return restore


def guard_program_start() -> None:
    """In the `tlsjax` program only, before the (seconds-long) imports of JAX: Ctrl-C
    or SIGTERM there ends the process at once with one line and status 130/143,
    instead of a KeyboardInterrupt traceback. `install_handlers` takes over later."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if name != "tlsjax" or not _in_main_thread():
        return
    for s in _SIGNALS:
        if signal.getsignal(s) in (signal.default_int_handler, signal.SIG_DFL):
            signal.signal(s, lambda signum, frame: force_exit(signum, "while starting"))


def clear_request() -> None:
    """Forget an earlier stop request (each command run starts afresh)."""
    _STATE.requested = None


def requested_signal() -> int | None:
    """The signal (SIGINT or SIGTERM) that asked the CLI to stop, or None."""
    return _STATE.requested


_THREAD = threading.local()


def stop_thread_with(event: threading.Event | None) -> None:
    """In this thread, `raise_if_interrupted` also stops once `event` is set (a worker
    started for a caller that was interrupted or failed: `tlsjax._background`)."""
    _THREAD.stop = event


def raise_if_interrupted() -> None:
    """Raise `KeyboardInterrupt` if a stop was requested (a safe point between steps)."""
    if _STATE.requested is not None:
        raise KeyboardInterrupt
    stop = getattr(_THREAD, "stop", None)
    if stop is not None and stop.is_set():
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
