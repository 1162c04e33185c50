"""`jax.lax.top_k` that stays fast for float64 on CPUs.

XLA's CPU top-k is a fast partial selection for float32 only; for float64 it sorts every
row. On the rows of the ES reduction's row pass (1011 columns, k = 8) that is 47 times
slower: 138 ms against 2.6 ms per 1011 x 1011 matrix (`python experiments/bench_es.py
--case topk --cells 10`), which made the float64 ES reduction of a fit's DOS sample 17
times slower than the float32 one (0.50 s against 0.03 s for its 4 realizations).

Used by the row pass of the soft ES reduction (`_es.py`) and by the Monte Carlo's choice of
candidate pairs (`_descent.py`). `top_k` first narrows each float64 row to k + `_SPARE`
candidates by the float32 top-k of its rounded values, then orders the candidates exactly
in float64. Rounding to float32 is monotonic (x <= y implies f32(x) <= f32(y)), so an
element of the exact top k can be missed only if `_SPARE` + 1 others of lower or equal
float64 value (and, where equal, lower index) round to its float32 value: for values that
are not tied in float64 that takes nine more of them within one float32 spacing of it at
the cut or, outside float32's normal range (|x| > 3.4e38 become inf, |x| < 1.2e-38 may
flush to 0), nine more of them out there; the ES reduction's and the Monte Carlo's values
are O(1e-3..1e3). Otherwise the values and indices are those of `jax.lax.top_k` on the
float64 rows (ties keep the lower index; tested bit for bit in `tests/test_es.py`), and so
are the gradients. It takes 6.0 ms per matrix above.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

#: Candidates kept beyond k by the float32 pass.
_SPARE = 8


def top_k(a: Float[Array, "... n"], k: int
          ) -> tuple[Float[Array, "... k"], Int[Array, "... k"]]:
    """The `k` largest entries of `a` along its last axis and their indices, in descending
    order (ties: lower index first), as `jax.lax.top_k`; float64 rows through a float32
    preselection (module docstring, which says where the two can differ)."""
    n = a.shape[-1]
    if a.dtype != jnp.float64 or k + _SPARE >= n:
        return jax.lax.top_k(a, k)
    _, cand = jax.lax.top_k(a.astype(jnp.float32), k + _SPARE)
    values = jnp.take_along_axis(a, cand, axis=-1)
    # candidates come in float32 order, ties by index: exact float64 ties keep that order
    top, pos = jax.lax.top_k(values, k)
    return top, jnp.take_along_axis(cand, pos, axis=-1)
