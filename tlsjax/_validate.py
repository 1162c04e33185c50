"""Argument validation shared by every module.

Concrete (plain Python / NumPy) values are checked at once and raise `ValueError`
naming the argument and the allowed range. Traced values (inside `jit`, `vmap`,
`grad`) cannot be inspected at trace time; they get an `eqx.error_if` check that
raises at run time with the same message.

Inside `checked_inputs()` (entered while a function is traced) the traced branches add
no such check: for compiled programs whose every input was checked before tracing (the
fits: data and parameters are checked before anything compiles). A program with an
`eqx.error_if` check holds a host callback, and JAX does not write such programs to its
persistent compilation cache; without them a fit compiles once per machine, not once
per process.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


class ThreadFlag:
    """A boolean of the current thread (False until set), set for the length of a block
    (`with flag.set(True):`)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self) -> bool:
        return getattr(self._local, "on", False)

    @contextlib.contextmanager
    def set(self, on: bool = True):
        previous, self._local.on = self.get(), bool(on)
        try:
            yield
        finally:
            self._local.on = previous


_CHECKED = ThreadFlag()


def checked_inputs(on: bool = True):
    """Trace the block without run-time checks of traced values (see the module
    docstring). Enter it only around code whose traced inputs were all checked before
    tracing, and only inside a function traced with that guarantee every time (a `jit`
    cache holds whichever trace came first). Concrete values are still checked.
    `on=False` restores the checks for the block."""
    return _CHECKED.set(on)


def inputs_checked() -> bool:
    """Whether this thread is tracing within `checked_inputs()` (`nested_program` keys its
    cache on it)."""
    return _CHECKED.get()


def nested_program(fn):
    """`fn` as a program nested in its callers' traces (`eqx.filter_jit`): traced once per
    argument structure, however often a caller's trace calls it (a line search evaluating
    a loss in several branches, a root found in every evaluation of a model). Its cache is
    keyed on `inputs_checked()` too, so no trace without run-time checks is shared with a
    caller that wants them. Arguments that are Python numbers are static to
    `eqx.filter_jit` (a trace per value): pass arrays."""

    @eqx.filter_jit
    def program(checked: bool, *args):
        with checked_inputs(checked):
            return fn(*args)

    @functools.wraps(fn)
    def call(*args):
        return program(inputs_checked(), *args)

    return call


def runtime_check(value, bad, msg: str):
    """`eqx.error_if(value, bad, msg)` for a check of computed values, left out inside
    `checked_inputs()`: the caller then checks the same condition on the concrete result
    (see `observables._dos.stau_dos`)."""
    return value if inputs_checked() else eqx.error_if(value, bad, msg)


def is_traced(value) -> bool:
    """True if `value` (or any leaf of it) is a JAX tracer."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(value))


def _interval(lo: float, hi: float, lo_open: bool, hi_open: bool) -> str:
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    lo_s = "-inf" if lo == -math.inf else f"{lo:g}"
    hi_s = "inf" if hi == math.inf else f"{hi:g}"
    return f"{left}{lo_s}, {hi_s}{right}"


def check_range(
    where: str,
    name: str,
    value,
    lo: float = -math.inf,
    hi: float = math.inf,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    dtype=None,
    reason: str = "",
):
    """Return `value` as a JAX array after checking `lo <= value <= hi` and finiteness.

    **Arguments:**

    - `where`: the caller, used in the message (e.g. ``"ModelParams"``).
    - `name`: the argument's name, used in the message.
    - `value`: scalar or array, concrete or traced.
    - `lo`, `hi`, `lo_open`, `hi_open`: the allowed interval.
    - `reason`: why the interval is what it is (appended to the message in parentheses).

    **Returns:** the value as an array (of the default float dtype unless `dtype`).

    **Raises:** `ValueError` for concrete values outside the interval or not finite;
    for traced values an `eqx.error_if` check raising at run time.
    """
    interval = _interval(lo, hi, lo_open, hi_open)
    msg = f"`{where}({name}=...)` must be finite and in {interval}"
    if reason:
        msg += f" ({reason})"
    _reject_non_numeric(where, name, value, msg)
    if is_traced(value):
        arr = jnp.asarray(value, dtype=dtype)
        bad = ~jnp.isfinite(arr)
        bad = bad | ((arr <= lo) if lo_open else (arr < lo))
        bad = bad | ((arr >= hi) if hi_open else (arr > hi))
        return arr if inputs_checked() else eqx.error_if(arr, jnp.any(bad), msg)
    _check_host(value, lo, hi, lo_open, hi_open, msg)
    if isinstance(value, jax.Array):
        return jnp.asarray(value, dtype=dtype)
    return device_array(value, dtype)


def check_number(where: str, name: str, value, lo: float = -math.inf, hi: float = math.inf,
                 *, lo_open: bool = False, hi_open: bool = False) -> float:
    """`check_range` for one concrete number, returned as a Python float (never through a
    JAX array, whose default dtype may be float32: 1e300 stays 1e300 for the message)."""
    msg = f"`{where}({name}=...)` must be finite and in {_interval(lo, hi, lo_open, hi_open)}"
    _reject_non_numeric(where, name, value, msg)
    a = _check_host(value, lo, hi, lo_open, hi_open, msg)
    if a.ndim != 0:
        raise ValueError(f"{msg}; got an array of shape {a.shape}, expected one number")
    return float(a)


def _check_host(value, lo, hi, lo_open, hi_open, msg: str) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{msg}; got a non-numeric value {value!r}") from err
    if a.size == 0:
        raise ValueError(f"{msg}; got an empty array")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{msg}; got {value!r}")
    bad = (a <= lo) if lo_open else (a < lo)
    bad = bad | ((a >= hi) if hi_open else (a > hi))
    if np.any(bad):
        shown = a.item() if a.ndim == 0 else a[bad][0].item()
        raise ValueError(f"{msg}; got {shown:g}")
    return a


def _reject_non_numeric(where: str, name: str, value, msg: str) -> None:
    """Strings, bytes and other non-numeric objects: `ValueError` (NumPy would turn
    ``"0.2"`` into a number, and JAX then fail with a bare TypeError)."""
    if is_traced(value):
        return
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{msg}; got a non-numeric value, the string {value!r} (pass a number)")
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{msg}; got the boolean {value!r}")
    try:
        kind = np.asarray(value).dtype.kind
    except (TypeError, ValueError):  # ragged nested lists and the like
        kind = "O"
    if kind in "USVO":
        raise ValueError(f"{msg}; got a non-numeric value {value!r}")


def check_grid(where: str, name: str, values, *, positive: bool = False, increasing: bool = False,
               decreasing: bool = False):
    """Check a 1-D grid (energies, temperatures, frequencies) and return it as an array.

    Empty, non-1-D, non-finite, non-positive (if `positive`), non-increasing (if
    `increasing`) or non-decreasing (if `decreasing`, e.g. a temperature ladder) grids
    raise `ValueError` naming `name`.
    """
    if is_traced(values):
        arr = jnp.asarray(values)
        if arr.ndim != 1 or arr.shape[0] == 0:
            raise ValueError(f"`{where}({name}=...)` must be a non-empty 1-D array")
        if inputs_checked():
            return arr
        bad = ~jnp.all(jnp.isfinite(arr))
        if positive:
            bad = bad | jnp.any(arr <= 0)
        if decreasing:
            bad = bad | jnp.any(jnp.diff(arr) >= 0)
        return eqx.error_if(arr, bad, f"`{where}({name}=...)` must be finite" + (
            " and > 0" if positive else "") + (", strictly decreasing" if decreasing else ""))
    _reject_non_numeric(where, name, values, f"`{where}({name}=...)` must be numeric")
    try:
        a = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`{where}({name}=...)` must be numeric; got {values!r}") from err
    if a.ndim == 0:
        a = a[None]
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"`{where}({name}=...)` must be a non-empty 1-D array; got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"`{where}({name}=...)` must contain only finite values")
    if positive and np.any(a <= 0):
        raise ValueError(f"`{where}({name}=...)` must be > 0; got {a[a <= 0][0]:g}")
    if increasing and a.size > 1 and np.any(np.diff(a) <= 0):
        raise ValueError(f"`{where}({name}=...)` must be strictly increasing")
    if decreasing and a.size > 1 and np.any(np.diff(a) >= 0):
        raise ValueError(f"`{where}({name}=...)` must be strictly decreasing")
    return jnp.asarray(a, dtype=jnp.result_type(float))


def check_static(where: str, name: str, value) -> None:
    """Refuse a traced value for an argument that fixes array sizes (must be static)."""
    if is_traced(value):
        raise TypeError(
            f"`{where}({name}=...)` is static: it fixes array sizes, so it cannot be a traced "
            "value inside `jit`, `vmap` or `grad`. Pass a Python number (for `jax.jit`, mark "
            "it static: `static_argnums`/`static_argnames`, or close over it)")


def check_int(where: str, name: str, value, lo: int, hi: int | None = None) -> int:
    """Check a static integer argument (sizes, counts)."""
    check_static(where, name, value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"`{where}({name}=...)` must be an integer; got {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"`{where}({name}=...)` must be {rng}; got {value}")
    return value


#: Seeds are 64-bit unsigned integers (two 32-bit words of key data).
SEED_MAX = 2**64 - 1


def check_seed(where: str, name: str, seed) -> int:
    """Check a PRNG seed: an integer in [0, 2**64 - 1]."""
    return check_int(where, name, seed, 0, SEED_MAX)


def seed_key(where: str, name: str, seed):
    """Check a seed (`check_seed`) and make its JAX PRNG key, the same with and without
    `jax_enable_x64`: `jax.random.key(seed)` for seeds below 2^32 (JAX keeps only the
    low 32 bits of larger seeds unless x64 is on), and for larger ones the key of the
    low word folded with the high word."""
    seed = check_seed(where, name, seed)
    low, high = seed & 0xFFFFFFFF, seed >> 32
    key = jax.random.key(low)
    return key if high == 0 else jax.random.fold_in(key, np.uint32(high))


def device_array(value, dtype=None) -> jax.Array:
    """`jnp.asarray(value, dtype)` for a host value (number or NumPy array), with the same
    dtype and weak type, put on the device without compiling anything (`jnp.asarray`
    compiles a small program for each new shape and dtype: ~30 ms each, which adds up in
    a short command)."""
    if dtype is None and type(value) in (bool, int, float, complex):
        return jax.device_put(value)  # a weak-typed scalar, as jnp.asarray gives
    a = np.asarray(value, dtype=dtype)
    return jax.device_put(np.asarray(a, dtype=jax.dtypes.canonicalize_dtype(a.dtype)))


def enable_x64(enabled: bool = True):
    """A context in which JAX computes in float64 (`enabled`) or float32, in this thread
    only: the process-wide configuration is left as it is."""
    context = getattr(jax, "enable_x64", None)
    if context is None:  # JAX < 0.7 spelled it jax.experimental.enable_x64
        from jax.experimental import enable_x64 as context
    return context(bool(enabled))


def check_type(where: str, name: str, value, cls, expected: str | None = None) -> None:
    """Raise `TypeError` naming the argument if `value` is not an instance of `cls`."""
    if not isinstance(value, cls):
        what = expected or (cls.__name__ if isinstance(cls, type)
                            else " or ".join(c.__name__ for c in cls))
        raise TypeError(f"`{where}({name}=...)` must be a {what}; got "
                        f"{type(value).__name__} {value!r:.80}")


def physical_memory_bytes() -> int | None:
    """The machine's physical memory in bytes, or None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def _bytes_text(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} EiB"  # pragma: no cover


def check_memory(where: str, what: str, needed: float, fraction: float = 0.8) -> None:
    """Refuse (`ValueError`) work whose estimated memory `needed` (bytes) exceeds
    `fraction` of the physical memory, with the estimate in the message."""
    total = physical_memory_bytes()
    if total is not None and needed > fraction * total:
        raise ValueError(f"`{where}`: {what} needs about {_bytes_text(needed)} of memory; "
                         f"this machine has {_bytes_text(total)}. Choose a smaller size")
