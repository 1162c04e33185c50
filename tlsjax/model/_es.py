"""The Efros-Shklovskii reduction of the S density of states (App. B 2, Eq. B7).

Per realization (docs/conventions.md section 3):

1. E_tau_j = sum_{i != j} U_ij + h_j (pass 1: column sums, blocked over columns),
   with h_j ~ Normal(0, (h_rel <E_tau>_0)^2).
2. Flip tau_j where E_tau_j < 0: E_tau_j -> |E_tau_j|, U_ij -> sign(E_tau_j) U_ij.
3. a_ij = 2 U_ij - E_tau_j; E_min_i = max_{j != i} a_ij (pass 2: row maxima, blocked
   over rows). The soft-Theta reduction keeps the `top_k` largest a_ij of each row.
4. P_S(E) = fraction of S spins with E_min_i < E (hard Theta), or
   mean_i prod_j sigmoid((E - a_ij) / w) (soft Theta; `_theta.py`).

Both passes run in blocks of rows/columns with `jax.lax.map` under `jax.checkpoint`,
so memory is O(block N), also for reverse-mode gradients. Energies are returned in
units of the realization's mean tau energy <E_tau>.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._validate import check_int, check_range, check_type, is_traced, runtime_check
from ..parallel._sharding import index_blocks, replicate, sharded_map
from ._couplings import Couplings, draw_couplings
from ._lattice import Sample, check_sample_size
from ._params import ModelParams
from ._topk import top_k as top_k_rows

DEFAULT_TOP_K = 8
"""Default number of largest a_ij kept exactly per row for the soft-Theta reduction (the
rest enter through the tail term). 8 keeps the P_S error below 1e-4 for w = 0.02 and
3e-4 for w = 0.05 on the paper's sample (`python experiments/soft_theta_accuracy.py`)."""
#: Largest soft-Theta width accepted, in units of <E_tau>. The sigmoid stands in for a
#: step; once it is as wide as the tau energies themselves (<E_tau> = 1) it smears the
#: step over the whole distribution, and T_U grows like w ln N: a property of the
#: regularization, not of the model (w = 10 gives T_U = 29 <E_tau>). Useful widths are
#: far smaller (experiments/soft_width_bias.py).
MAX_SOFT_WIDTH = 1.0
SOFT_WIDTH_REASON = ("w is in units of <E_tau>; a sigmoid as wide as the tau energies "
                     "smears the step over the whole distribution and T_U then measures w, "
                     "not the model")
#: Target number of pair elements per block (sets the default block size), per backend.
#: CPUs: 2^18 (a block's temporaries stay in cache). Accelerators: 2^24. The blocks run
#: one after another, each costing one or more kernel launches (~10 us each on a GPU);
#: with 2^18 a realization of N = 1e6 impurities would be cut into blocks of one row,
#: 1e6 launches per pass, whatever the work. 2^24 float32 pairs are 64 MB per temporary:
#: memory stays O(N) (the block holds a fixed number of pairs).
_BLOCK_ELEMENTS = 2**18
_ACCELERATOR_BLOCK_ELEMENTS = 2**24


def default_block_size(n: int, batch: int = 1, backend: str | None = None) -> int:
    """Rows (or columns) per block so that a block holds ~2^18 pairs per batch element on
    CPUs, ~2^24 on accelerators (`backend`: default `jax.default_backend()`). Results do
    not depend on the block size."""
    backend = jax.default_backend() if backend is None else backend
    target = _BLOCK_ELEMENTS if backend == "cpu" else _ACCELERATOR_BLOCK_ELEMENTS
    return max(1, min(n, target // max(1, n * batch)))


class ESResult(eqx.Module):
    """The ES reduction of one realization.

    **Fields:**

    - `top`: (n, k) the k largest a_ij = 2 U_ij - E_tau_j of each row i, in units of
      <E_tau>, sorted in decreasing order; `top[:, 0]` is E_min (hard Theta). Rows of
      padded sites, and entries beyond a row's partners, hold -inf.
    - `tail_count`: (n,) number of partners of each row not kept in `top`.
    - `e_tau`: (n,) tau energies |E_tau_j| after flips, in units of <E_tau>.
    - `e_tau_mean`: <E_tau> in units of g J_o (mean over impurities, with field).
    - `e_tau0_mean`: <E_tau>_0 = mean |sum_i U_ij| without field, units of g J_o.
    - `mask`: (n,) True for real impurities.
    - `n_sites`: number of impurities.
    - `tail_lse`: (n,) or None. With `es_reduction(soft_width=w)`: for each row i,
      log sum_{j not in top} exp(a_ij / w) (a_ij in units of <E_tau>; -inf if no such
      partner), which gives the soft-Theta factors of all partners left out of `top` to
      first order: sum_j log sigmoid((E - a_ij)/w) ~ -exp(tail_lse_i - E / w).
    - `soft_width`: the w of `tail_lse` (units of <E_tau>), or None.
    """

    top: Float[Array, "n k"]
    tail_count: Int[Array, " n"]
    e_tau: Float[Array, " n"]
    e_tau_mean: Float[Array, ""]
    e_tau0_mean: Float[Array, ""]
    mask: Bool[Array, " n"]
    n_sites: Int[Array, ""]
    tail_lse: Float[Array, " n"] | None = None
    soft_width: Float[Array, ""] | None = None

    @property
    def e_min(self) -> Float[Array, " n"]:
        """E_min per S spin in units of <E_tau> (App. B 2); -inf on padded rows."""
        return self.top[:, 0]


def tau_field_sums(couplings: Couplings, block_size: int, mesh: Mesh | None = None
                   ) -> Float[Array, " n"]:
    """sum_{i != j} U_ij for every tau spin j (pass 1), in units of g J_o.

    With a `mesh`, the column blocks are split over its devices (`sharded_map`).
    """
    n = couplings.n
    rows = jnp.arange(n)[None, :]

    @jax.checkpoint
    def column_block(cols):
        # (B, n) layout: each tau spin's sum runs along the minor axis, so the order of
        # summation, hence the result, does not depend on the block size.
        return jnp.sum(couplings.pairs(rows, cols[:, None]), axis=1)

    sums = sharded_map(column_block, index_blocks(n, block_size, mesh), mesh)
    return replicate(sums, mesh).reshape(-1)[:n]  # gathered: later means as on one device


PAIR_CONDITIONS = ("signed", "unsigned")


def _bond(u, sign, unsigned: bool):
    """The S-tau bond entering a_ij: U_ij after the tau flips (sign_j U_ij, the paper's
    "accordingly redefined" couplings; default), or |U_ij| (`pair_condition="unsigned"`)."""
    return jnp.abs(u) if unsigned else u * sign


def _select(couplings, sign, e_tau, top_k, block_size, mesh, with_index, unsigned=False):
    """The O(N^2) selection pass: the `top_k` largest a_ij of each row (and their j).

    Without `with_index` and for `top_k == 1` it is a plain maximum, much cheaper on
    CPUs than an arg-maximum or `top_k`.
    """
    n = couplings.n
    cols = jnp.arange(n)
    valid_col = couplings.realization.mask

    def row_block(rows):
        a = 2.0 * _bond(couplings.block(rows, cols), sign[None, :], unsigned) - e_tau[None, :]
        ok = valid_col[None, :] & (rows[:, None] != cols[None, :])
        a = jnp.where(ok, a, -jnp.inf)
        if top_k == 1 and not with_index:
            return jnp.max(a, axis=1, keepdims=True)
        return top_k_rows(a, top_k)

    out = replicate(sharded_map(row_block, index_blocks(n, block_size, mesh), mesh), mesh)
    return jax.tree_util.tree_map(lambda v: v.reshape(-1, top_k)[:n], out)


def _recompute(couplings, sign, e_tau, values, idx, unsigned=False):
    """The selected a_ij from their N x k indices (differentiable, O(N k))."""
    n = couplings.n
    a = 2.0 * _bond(couplings.pairs(jnp.arange(n)[:, None], idx), sign[idx], unsigned) \
        - e_tau[idx]
    return jnp.where(jnp.isfinite(values), a, -jnp.inf)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3, 4, 5))
def _row_max(couplings, sign, e_tau, block_size, mesh, unsigned=False):
    return _select(couplings, sign, e_tau, 1, block_size, mesh, with_index=False,
                   unsigned=unsigned)


@_row_max.defjvp
def _row_max_jvp(block_size, mesh, unsigned, primals, tangents):
    # Only when differentiating: find the maximizing partners, then differentiate
    # their O(N) recomputed values.
    values, idx = _select(*primals, 1, block_size, mesh, with_index=True, unsigned=unsigned)
    return jax.jvp(lambda c, s, e: _recompute(c, s, e, values, idx, unsigned), primals,
                   tangents)


def _row_top_and_tail(couplings, sign, e_tau, top_k, block_size, mesh, tail_scale,
                      unsigned=False):
    """Top-k selection plus, for each row, log sum over the other partners of
    exp(a_ij / tail_scale) (differentiable; each block is rematerialized in reverse mode)."""
    n = couplings.n
    cols = jnp.arange(n)
    valid_col = couplings.realization.mask

    @jax.checkpoint
    def row_block(rows):
        a = 2.0 * _bond(couplings.block(rows, cols), sign[None, :], unsigned) - e_tau[None, :]
        ok = valid_col[None, :] & (rows[:, None] != cols[None, :])
        a = jnp.where(ok, a, -jnp.inf)
        values, idx = top_k_rows(jax.lax.stop_gradient(a), top_k)
        # the partners not kept, marked by index (exact with ties; comparing with the
        # k-th value instead defeats XLA's fast top-k on CPUs: 10x slower)
        kept = jnp.zeros(a.shape, bool).at[jnp.arange(a.shape[0])[:, None], idx].set(True)
        tail = ok & ~kept
        has = jnp.any(tail, axis=1)
        # double where: no gradient may flow through the -inf entries
        logits = jnp.where(tail, jnp.where(tail, a, 0.0) / tail_scale, -jnp.inf)
        lse = jax.nn.logsumexp(jnp.where(has[:, None], logits, 0.0), axis=1)
        return values, idx, jnp.where(has, lse, -jnp.inf)

    # Not split over a mesh: reverse-mode differentiation of this pass inside
    # `shard_map` fails in JAX (closed-over sharded operands); realizations of an
    # ensemble are still spread over devices by `disorder_average`.
    values, idx, lse = jax.lax.map(row_block, index_blocks(n, block_size))
    values, idx = values.reshape(-1, top_k)[:n], idx.reshape(-1, top_k)[:n]
    return _recompute(couplings, sign, e_tau, values, idx, unsigned), lse.reshape(-1)[:n]


def row_top(
    couplings: Couplings,
    sign: Float[Array, " n"],
    e_tau: Float[Array, " n"],
    top_k: int,
    block_size: int,
    mesh: Mesh | None = None,
    tail_scale: Float[Array, ""] | None = None,
    unsigned: bool = False,
) -> tuple[Float[Array, "n k"], Float[Array, " n"] | None]:
    """The `top_k` largest a_ij = 2 sign_j U_ij - e_tau_j of each row i (pass 2).

    The O(N^2) pass only selects the partners j (no gradient flows through it); the
    kept values are then recomputed from their N x k indices, differentiably. So
    derivatives of the reduction cost O(N k) here instead of a second O(N^2) pass
    (the selection itself is piecewise constant). For `top_k == 1` (hard Theta) the
    forward pass is a plain maximum and the partners are located only when a
    derivative is taken (`jax.custom_jvp`). Entries that are not partners (diagonal,
    padding, rows with fewer than k partners) are -inf.

    With `tail_scale` (the soft width in units of g J_o) the pass also returns, per
    row, log sum_{j not kept} exp(a_ij / tail_scale), differentiably (then the O(N^2)
    pass is differentiated too); else the second return value is None. `unsigned` uses
    2 |U_ij| - e_tau_j instead (see `es_reduction(pair_condition=...)`).
    """
    if tail_scale is not None:
        return _row_top_and_tail(couplings, sign, e_tau, top_k, block_size, mesh, tail_scale,
                                 unsigned)
    if top_k == 1:
        return _row_max(couplings, sign, e_tau, block_size, mesh, unsigned), None
    values, idx = _select(*jax.lax.stop_gradient((couplings, sign, e_tau)), top_k, block_size,
                          mesh, with_index=True, unsigned=unsigned)
    return _recompute(couplings, sign, e_tau, values, idx, unsigned), None


def es_reduction(
    couplings: Couplings,
    h_normals: Float[Array, " n"],
    h_rel: Float[Array, ""] | float = 0.0,
    *,
    top_k: int = 1,
    block_size: int | None = None,
    mesh: Mesh | None = None,
    soft_width: Float[Array, ""] | float | None = None,
    pair_condition: str = "signed",
    field: Float[Array, " n"] | None = None,
) -> ESResult:
    """The ES reduction (App. B 2) of one realization with given couplings.

    **Arguments:**

    - `couplings`: the `Couplings` of the realization (positions, c_ij, a~).
    - `h_normals`: (n,) standard normals for the random fields h^tau_j; the field is
      h_j = h_rel <E_tau>_0 h_normals_j.
    - `h_rel`: field width relative to <E_tau>_0 (>= 0).
    - `top_k`: how many of the largest a_ij per row to keep (1 suffices for the hard
      reduction; the soft one needs more, see `SoftTheta`).
    - `block_size`: rows/columns per block (default from the size); results do not
      depend on it.
    - `mesh`: a 1-D device `Mesh` (`device_mesh()`) to split the row and column
      blocks of this one realization over its devices; results do not depend on it.
      (With `soft_width`, the row pass runs unsplit; see `_row_top_and_tail`.)
    - `soft_width`: for a soft-Theta P_S of width w (units of <E_tau>, in (0, 1]): also sum
      the partners beyond `top_k` (`ESResult.tail_lse`), so that `SoftTheta(w)` covers
      every partner j of the product, as its definition requires. None (default): only
      the `top_k` largest are kept (enough for the hard Theta).
    - `pair_condition`: `"signed"` (default): E_min_i = max_j (2 U_ij - E_tau_j) with the
      U_ij redefined by the tau flips (an anti-aligned bond, U_ij < 0, cannot destabilize
      the pair); `"unsigned"`: max_j (2 |U_ij| - E_tau_j), the reading that ignores the
      sign of the bond (it comes close to the paper's T_U ~ 0.2 <E_tau>; docs/explanation/paper-numbers.md,
      "Where the paper's 0.2 comes from"). Not the default: the text says the U_ij are
      "accordingly redefined" after the flips.
    - `field`: (n,) absolute tau fields h_j in units of g J_o (finite), added to the
      column sums: E_tau_j = sum_i U_ij + h_rel <E_tau>_0 h_normals_j + field_j. The
      alternative to `h_rel` when the field's width is known in units of the couplings
      (it needs no <E_tau>_0 beforehand); None (default): no such term.

    **Returns:** an `ESResult`.
    """
    check_type("es_reduction", "couplings", couplings, Couplings)
    if pair_condition not in PAIR_CONDITIONS:
        raise ValueError(f"`es_reduction(pair_condition=...)` must be one of "
                         f"{PAIR_CONDITIONS}; got {pair_condition!r}")
    unsigned = pair_condition == "unsigned"
    n = couplings.n
    top_k = check_int("es_reduction", "top_k", top_k, 1)
    top_k = min(top_k, n)
    block_size = default_block_size(n) if block_size is None else check_int(
        "es_reduction", "block_size", block_size, 1)
    block_size = min(block_size, n)
    h_rel = check_range("es_reduction", "h_rel", h_rel, 0.0)
    if field is not None:
        field = check_range("es_reduction", "field", field)
        if field.shape != (n,):
            raise ValueError(f"`es_reduction(field=...)` must have shape ({n},) (one field per "
                             f"tau spin of the realization's capacity); got {field.shape}")
    if soft_width is not None:
        soft_width = check_range("es_reduction", "soft_width", soft_width, 0.0, MAX_SOFT_WIDTH,
                                 lo_open=True, reason=SOFT_WIDTH_REASON)
    n_sites = couplings.realization.n_sites  # here, not in the shared compiled body
    if is_traced(n_sites):
        couplings = eqx.tree_at(lambda c: c.realization.n_sites, couplings,
                                runtime_check(n_sites, jnp.any(n_sites < 2), TOO_FEW_SITES))
    elif int(np.min(np.asarray(n_sites))) < 2:  # NumPy: concrete also inside a caller's jit
        raise ValueError(TOO_FEW_SITES)
    return _es_reduction(couplings, h_normals, h_rel, soft_width, field, top_k=top_k,
                         block_size=block_size, mesh=mesh, unsigned=unsigned)


#: The run-time check of `es_reduction` (a realization without a pair of spins).
TOO_FEW_SITES = ("`es_reduction`: a realization holds fewer than 2 impurities (no pair of spins "
                 "to couple); use a larger sample (more cells or a larger x)")


@functools.partial(jax.jit, static_argnames=("top_k", "block_size", "mesh", "unsigned"))
def _es_reduction(couplings, h_normals, h_rel, soft_width, field, *, top_k, block_size, mesh,
                  unsigned):
    """The body of `es_reduction` (arguments checked). Compiled once per shape and static
    settings, so that calls outside `jit` (scripts, tests) do not re-trace and recompile
    its blocked passes every time; inside a caller's `jit`, `vmap` or `grad` it inlines."""
    mask = couplings.realization.mask
    n_sites = couplings.realization.n_sites
    nf = n_sites.astype(jnp.result_type(float))

    sums = tau_field_sums(couplings, block_size, mesh)
    e_tau0_mean = jnp.sum(jnp.where(mask, jnp.abs(sums), 0.0)) / nf
    e_raw = sums + h_rel * e_tau0_mean * h_normals
    if field is not None:
        e_raw = e_raw + field
    sign = jnp.where(e_raw < 0, -1.0, 1.0)
    e_tau = jnp.where(mask, jnp.abs(e_raw), 0.0)
    e_tau_mean = jnp.sum(e_tau) / nf
    if soft_width is not None:
        top, tail_lse = row_top(couplings, sign, e_tau, top_k, block_size, mesh,
                                soft_width * e_tau_mean, unsigned)
        tail_lse = jnp.where(mask, tail_lse, -jnp.inf)
    else:
        top, tail_lse = row_top(couplings, sign, e_tau, top_k, block_size, mesh,
                                unsigned=unsigned)
    keep = mask[:, None] & jnp.isfinite(top)
    # double where: -inf / <E_tau> would give NaN cotangents for <E_tau>
    top = jnp.where(keep, jnp.where(keep, top, 0.0) / e_tau_mean, -jnp.inf)
    tail = jnp.where(mask, jnp.maximum(n_sites - 1 - top_k, 0), 0)
    return ESResult(top, tail, e_tau / e_tau_mean, e_tau_mean, e_tau0_mean, mask, n_sites,
                    tail_lse, soft_width)


def _check_key(where: str, key) -> None:
    """A PRNG key: a new-style key (`jax.random.key`) or a legacy uint32[2] one."""
    dtype = getattr(key, "dtype", None)
    ok = dtype is not None and (jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) or (
        dtype == jnp.uint32 and getattr(key, "shape", None) == (2,)))
    if not ok:
        raise TypeError(f"`{where}(key=...)` must be a JAX PRNG key, e.g. "
                        f"`jax.random.key(0)`; got {type(key).__name__} {key!r:.60}")


def simulate(
    sample: Sample,
    params: ModelParams,
    key: PRNGKeyArray,
    *,
    top_k: int = 1,
    block_size: int | None = None,
    mesh: Mesh | None = None,
    soft_width: Float[Array, ""] | float | None = None,
    pair_condition: str = "signed",
) -> ESResult:
    """Draw one realization from `key` and run the ES reduction.

    The key is split into three: impurity positions, c_ij, and h^tau normals. The
    same key gives the same positions and c_ij for every a~ and h_rel (common random
    numbers), so `jax.vmap` over parameters compares like with like and shares the
    random-number work.

    **Arguments:**

    - `sample`: the `Sample` (lattice, x).
    - `params`: `ModelParams`; only `atilde` and `h_rel` enter (energies are in units
      of g J_o and then of <E_tau>).
    - `key`: a JAX PRNG key.
    - `top_k`, `block_size`, `mesh`, `soft_width`, `pair_condition`: as in `es_reduction`.

    **Returns:** an `ESResult`.

    **Raises:** `ValueError` if the sample is expected to hold fewer than
    `MIN_IMPURITIES` (20) impurities; at run time, if a realization holds fewer than 2.
    """
    check_type("simulate", "sample", sample, Sample)
    check_type("simulate", "params", params, ModelParams)
    _check_key("simulate", key)
    check_sample_size("simulate", sample)
    if is_traced(params):
        params = params.checked()
    couplings, h_normals, _, _ = draw_couplings(sample, params.atilde, key)
    return es_reduction(couplings, h_normals, params.h_rel, top_k=top_k, block_size=block_size,
                        mesh=mesh, soft_width=soft_width, pair_condition=pair_condition)
