"""Work in a background thread: in the caller's precision, waited for interruptibly.

The command line's fits overlap work that does not depend on each other (the ES reduction
behind the S-tau table, the compilation of the fit's programs, the two sides of a profile
walk, independent fits) on the cores of a CPU. What makes a thread differ from its
caller is handled here:

- JAX's `enable_x64` can be set for one thread only (the command line's `--precision`
  does so): the worker computes in the precision of the thread that started it. (Other
  thread-local JAX settings, e.g. a default device, are not copied: the fits therefore
  overlap work only where the command line asks for it, `overlapping`.)
- A wait in the main thread still lets Ctrl-C and SIGTERM of the command line through
  (`tlsjax._interrupts`): it waits in short slices and raises `KeyboardInterrupt` at a
  pending request.
- Workers given a `stop` event end at their next safe point once it is set
  (`raise_if_interrupted` in them raises): `stopping(stop)` sets it when the caller is
  interrupted or fails, so no worker fits on after its caller has given up.

An error in the worker is raised again, unchanged, in the thread that asks for the result.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import jax.numpy as jnp

from ._interrupts import raise_if_interrupted, stop_thread_with
from ._validate import ThreadFlag, enable_x64

T = TypeVar("T")
_SLICE_S = 0.05
_OVERLAP = ThreadFlag()


def overlapping(on: bool = True):
    """In this thread (and the workers it starts), inside the block, the fits overlap
    independent work in background threads (`overlap`). The command line runs its commands
    so; a library call, which may run under thread-local JAX settings that threads do not
    share (a default device, `debug_nans`; only the precision is copied), keeps its work in
    the caller's thread."""
    return _OVERLAP.set(on)


def overlap() -> bool:
    """Whether work may be overlapped in background threads (`overlapping`)."""
    return _OVERLAP.get()


def wait_for(event: threading.Event) -> None:
    """Wait until `event` is set; in the main thread, a stop request interrupts the wait."""
    main = threading.current_thread() is threading.main_thread()
    while not event.wait(_SLICE_S if main else None):
        raise_if_interrupted()


class Slot(Generic[T]):
    """A value that one thread computes (`fill`) and others wait for (`get`)."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    def fill(self, fn: Callable[[], T]) -> T:
        try:
            self._value = fn()
        except BaseException as err:  # noqa: BLE001 - handed to whoever asks (`get`)
            self._error = err
            raise
        finally:
            self._done.set()
        return self._value

    def get(self) -> T:
        wait_for(self._done)
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def abandon(self, error: BaseException) -> None:
        """Fill it with `error` unless it is filled already (its filler will not come)."""
        if not self._done.is_set():
            self._error = error
            self._done.set()

    def failed(self) -> bool:
        """Whether it was filled with an error (its computation raised)."""
        return self._done.is_set() and self._error is not None

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until it is filled (or failed), whatever a stop request says, at most
        `timeout` seconds; returns whether it is."""
        return self._done.wait(timeout)


def in_background(fn: Callable[[], T], name: str = "tlsjax-background",
                  limit: threading.Semaphore | None = None,
                  stop: threading.Event | None = None) -> Slot[T]:
    """Start `fn()` in a daemon thread, in the caller's precision; `.get()` waits for it.
    `limit`: a semaphore the thread holds while it works (at most so many at once);
    `stop`: an event that ends the work at its next safe point (`stopping`)."""
    slot: Slot[T] = Slot()
    x64, lap = jnp.result_type(float) == jnp.float64, overlap()

    def work() -> None:
        stop_thread_with(stop)
        try:
            with limit or contextlib.nullcontext(), enable_x64(x64), overlapping(lap):
                slot.fill(fn)
        except BaseException:  # noqa: BLE001 - kept in the slot for `get`
            pass

    try:
        threading.Thread(target=work, name=name, daemon=True).start()
    except BaseException as err:  # e.g. no thread can be started: the error, for `get`
        slot.abandon(err)
        raise
    return slot


@contextlib.contextmanager
def stopping(stop: threading.Event) -> Iterator[None]:
    """Set `stop` (the workers sharing it end at their next safe point) if the block is
    interrupted or fails."""
    try:
        yield
    except BaseException:
        stop.set()
        raise


def cores() -> int:
    """The CPU cores this process may run on (its affinity, where the system tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
