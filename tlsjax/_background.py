"""Work in a background thread: in the caller's precision, waited for interruptibly.

The command line's fits overlap work that does not depend on each other (the ES reduction
behind the S-tau table, the compilation of the fit's programs) on the cores of a CPU.
Two things make a thread differ from its caller, and both are handled here:

- JAX's `enable_x64` can be set for one thread only (the command line's `--precision`
  does so): the worker computes in the precision of the thread that started it.
- A wait in the main thread still lets Ctrl-C and SIGTERM of the command line through
  (`tlsjax._interrupts`): it waits in short slices and raises `KeyboardInterrupt` at a
  pending request.

An error in the worker is raised again, unchanged, in the thread that asks for the result.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import jax.numpy as jnp

from ._interrupts import raise_if_interrupted
from ._validate import enable_x64

T = TypeVar("T")
_SLICE_S = 0.05


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


def in_background(fn: Callable[[], T], name: str = "tlsjax-background",
                  limit: threading.Semaphore | None = None) -> Slot[T]:
    """Start `fn()` in a daemon thread, in the caller's precision; `.get()` waits for it.
    `limit`: a semaphore the thread holds while it works (at most so many at once)."""
    slot: Slot[T] = Slot()
    x64 = jnp.result_type(float) == jnp.float64

    def work() -> None:
        try:
            with limit or contextlib.nullcontext(), enable_x64(x64):
                slot.fill(fn)
        except BaseException:  # noqa: BLE001 - kept in the slot for `get`
            pass

    threading.Thread(target=work, name=name, daemon=True).start()
    return slot
