"""Argument validation shared by every module.

Concrete (plain Python / NumPy) values are checked at once and raise `ValueError`
naming the argument and the allowed range. Traced values (inside `jit`, `vmap`,
`grad`) cannot be inspected at trace time; they get an `eqx.error_if` check that
raises at run time with the same message.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


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
    if is_traced(value):
        arr = jnp.asarray(value, dtype=dtype)
        bad = ~jnp.isfinite(arr)
        bad = bad | ((arr <= lo) if lo_open else (arr < lo))
        bad = bad | ((arr >= hi) if hi_open else (arr > hi))
        return eqx.error_if(arr, jnp.any(bad), msg)
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
    return jnp.asarray(value, dtype=dtype)


def check_grid(where: str, name: str, values, *, positive: bool = False, increasing: bool = False):
    """Check a 1-D grid (energies, temperatures, frequencies) and return it as an array.

    Empty, non-1-D, non-finite, non-positive (if `positive`) or non-increasing (if
    `increasing`) grids raise `ValueError` naming `name`.
    """
    if is_traced(values):
        arr = jnp.asarray(values)
        if arr.ndim != 1 or arr.shape[0] == 0:
            raise ValueError(f"`{where}({name}=...)` must be a non-empty 1-D array")
        bad = ~jnp.all(jnp.isfinite(arr))
        if positive:
            bad = bad | jnp.any(arr <= 0)
        return eqx.error_if(arr, bad, f"`{where}({name}=...)` must be finite" + (
            " and > 0" if positive else ""))
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
    return jnp.asarray(a, dtype=jnp.result_type(float))


def check_int(where: str, name: str, value, lo: int, hi: int | None = None) -> int:
    """Check a static integer argument (sizes, counts)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"`{where}({name}=...)` must be an integer; got {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"`{where}({name}=...)` must be {rng}; got {value}")
    return value
