"""Zero-temperature descent of the full Hamiltonian over single and pair flips, and the
counts of unstable spins (docs/conventions.md section 6).

A state is single-stable when no eps_k = -2 s_k lambda_k is negative, pair-stable when
no pair flip lowers H: eps_k + eps_l + 4 K_kl s_k s_l >= 0 for all k != l. Both are
checked within a tolerance `tol` (K) that covers the rounding of the local fields.

Descent: zero-temperature sweeps (`sweep` with thresholds -tol) until single-stable;
then a blocked O(N^2 R) scan finds, for every spin k, its most negative pair flip; the
`candidates` most negative per replica are applied one after the other, each re-checked
against the current state (so every applied flip lowers H by more than tol, and the
descent cannot cycle); the round repeats until a scan finds nothing (or `max_rounds`).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from .._validate import check_int, check_range, check_type
from ._hamiltonian import Hamiltonian
from ._mc import MCState, _check_block, default_tol, movable_mask, sweep
from ._mc_kernel import resolve_kernel
from ._topk import top_k

#: Largest row block of the pair scan (its temporaries are R x B x 2n).
_PAIR_BLOCK = 16


class Stability(eqx.Module):
    """Counts of unstable spins per replica and species (column 0: S, 1: tau).

    - `single`: spins k with eps_k < -tol.
    - `pair`: spins k with some partner l != k and eps_k + eps_l + 4 K_kl s_k s_l < -tol
      (a single-unstable spin is usually pair-unstable too: any l with a small eps_l).

    Only spins that may move (real, not frozen) count, as partners too.
    """

    single: Int[Array, "R 2"]
    pair: Int[Array, "R 2"]


class DescentStats(eqx.Module):
    """What the zero-temperature descent did, per replica.

    - `single_flips`, `pair_flips`: (R,) flips applied.
    - `rounds`: rounds run (one pair scan each).
    - `converged`: (R,) True if the final state is single- and pair-stable within `tol`.
    """

    single_flips: Int[Array, " R"]
    pair_flips: Int[Array, " R"]
    rounds: Int[Array, ""]
    converged: Bool[Array, " R"]


def _pair_min(ham, spins, fields, movable):
    """min over l != k (movable) of eps_k + eps_l + 4 K_kl s_k s_l, per replica and k;
    +inf for k that may not move. Blocked O(N^2 R)."""
    eps = -2.0 * spins * fields
    cols = jnp.arange(ham.size)
    pb = math.gcd(ham.block_size, _PAIR_BLOCK)

    def fn(idx, rows):
        s_b, e_b = spins[:, idx], eps[:, idx]
        q = eps[:, None, :] + 4.0 * rows[None] * (s_b[:, :, None] * spins[:, None, :])
        ok = movable[None, :] & (idx[:, None] != cols[None, :])
        m = e_b + jnp.min(jnp.where(ok[None], q, jnp.inf), axis=2)
        return jnp.where(movable[idx][None, :], m, jnp.inf).T

    return ham.map_row_blocks(fn, pb).T


def _partners(ham, spins, fields, movable, ks):
    """For the spins ks (R, C): the best partner l (R, C) and the rows K[ks] (R, C, 2n)."""
    r, c = ks.shape
    rows = ham.rows(ks.reshape(-1)).reshape(r, c, ham.size)
    eps = -2.0 * spins * fields
    s_k = jnp.take_along_axis(spins, ks, axis=1)
    q = eps[:, None, :] + 4.0 * rows * (s_k[:, :, None] * spins[:, None, :])
    ok = movable[None, None, :] & (ks[:, :, None] != jnp.arange(ham.size)[None, None, :])
    return jnp.argmin(jnp.where(ok, q, jnp.inf), axis=2), rows


def _apply_pairs(ham, spins, fields, ks, ls, rows_k, wanted, tol):
    """Flip the pairs (ks[:, c], ls[:, c]) one after the other where `wanted` and where,
    in the current state, the pair flip lowers H by more than tol. Returns (spins,
    fields, flips per replica)."""
    rr = jnp.arange(spins.shape[0])

    def step(c, carry):
        s, f, count = carry
        k, l = ks[:, c], ls[:, c]  # noqa: E741
        rk = rows_k[:, c]
        sk, sl = s[rr, k], s[rr, l]
        de = -2.0 * sk * f[rr, k] - 2.0 * sl * f[rr, l] + 4.0 * rk[rr, l] * sk * sl
        ok = wanted[:, c] & (de < -tol)
        dk, dl = jnp.where(ok, -2.0 * sk, 0.0), jnp.where(ok, -2.0 * sl, 0.0)
        s = s.at[rr, k].add(dk).at[rr, l].add(dl)
        f = f + dk[:, None] * rk + dl[:, None] * ham.rows(l)
        return s, f, count + ok

    return jax.lax.fori_loop(0, ks.shape[1], step, (spins, fields, jnp.zeros(spins.shape[0], int)))


def _greedy(ham, spins, fields, movable, b, tol, max_sweeps, kernel="auto"):
    """Zero-temperature sweeps (flip iff eps < -tol) until single-stable or max_sweeps."""
    thr = jnp.full(spins.shape, -tol, spins.dtype)
    diag = ham.diagonal_blocks(b)

    def unstable(s, f):
        return jnp.any((-2.0 * s * f < -tol) & movable[None, :])

    def body(c):
        s, f, i, flips = c
        s2, f2 = sweep(ham, s, f, thr, movable, b, diag, kernel)
        return s2, f2, i + 1, flips + jnp.sum(s2 != s, axis=1)

    s, f, _, flips = jax.lax.while_loop(
        lambda c: (c[2] < max_sweeps) & unstable(c[0], c[1]), body,
        (spins, fields, jnp.asarray(0), jnp.zeros(spins.shape[0], int)))
    return s, f, flips


class _Descent(eqx.Module):
    spins: Array
    fields: Array
    single: Array
    pair: Array
    rounds: Array
    pending: Array


def _descent_loop(ham, d: _Descent, limit, movable, b, tol, candidates, max_sweeps,
                  kernel="auto") -> _Descent:
    """Descent rounds until no replica is pending or `limit` rounds (may be traced)."""
    c = min(candidates, ham.size)

    def body(d):
        f = ham.local_fields(d.spins)  # from scratch each round
        s, f, singles = _greedy(ham, d.spins, f, movable, b, tol, max_sweeps, kernel)
        pmin = _pair_min(ham, s, f, movable)
        neg, ks = top_k(-pmin, c)
        wanted = neg > tol
        ls, rows_k = _partners(ham, s, f, movable, ks)
        s, f, pairs = _apply_pairs(ham, s, f, ks, ls, rows_k, wanted, tol)
        return _Descent(s, f, d.single + singles, d.pair + pairs, d.rounds + 1,
                        jnp.any(wanted, axis=1))

    return jax.lax.while_loop(lambda d: (d.rounds < limit) & jnp.any(d.pending), body, d)


def stability(ham: Hamiltonian, spins: Float[Array, "R 2n"],
              fields: Float[Array, "R 2n"] | None = None, *,
              frozen: Bool[Array, " 2n"] | None = None, tol=None) -> Stability:
    """Counts of single- and pair-unstable spins (see `Stability`) of the states `spins`.

    **Arguments:** `ham`; `spins` (R, 2n); their `fields` if known (else computed);
    `frozen` spins (excluded); `tol` in K (default `default_tol(ham)`).

    **Returns:** a `Stability`.
    """
    check_type("stability", "ham", ham, Hamiltonian, "Hamiltonian (from hamiltonian())")
    spins = jnp.atleast_2d(spins)
    fields = ham.local_fields(spins) if fields is None else jnp.atleast_2d(fields)
    tol = default_tol(ham) if tol is None else check_range("stability", "tol", tol, 0.0)
    movable = movable_mask(ham, frozen)

    def per_species(bad):
        return jnp.sum(bad.reshape(bad.shape[0], 2, ham.n), axis=2)

    single = (-2.0 * spins * fields < -tol) & movable[None, :]
    return Stability(per_species(single), per_species(_pair_min(ham, spins, fields, movable) < -tol))


def descend(ham: Hamiltonian, state: MCState, *, frozen: Bool[Array, " 2n"] | None = None,
            tol=None, max_rounds: int = 200, candidates: int = 32, max_sweeps: int = 50,
            block_size: int | None = None, kernel: str = "auto") -> tuple[MCState, DescentStats]:
    """Zero-temperature descent over single and pair flips (module docstring).

    **Arguments:**

    - `ham`, `state`: the `Hamiltonian` and `MCState` (its temperatures are not used).
    - `frozen`: (2n,) bool, spins never flipped (nor used as pair partners).
    - `tol`: energy tolerance in K (>= 0; default `default_tol(ham)`): a flip is made
      only if it lowers H by more than tol.
    - `max_rounds`: most pair-scan rounds (>= 1); `candidates`: pair flips tried per
      replica and round (>= 1); `max_sweeps`: most zero-temperature sweeps per round.
    - `block_size`, `kernel`: as in `metropolis`.

    **Returns:** `(state, DescentStats)`; the state's fields are recomputed from scratch.
    """
    check_type("descend", "ham", ham, Hamiltonian, "Hamiltonian (from hamiltonian())")
    check_type("descend", "state", state, MCState, "MCState (from init_state or the Monte Carlo)")
    tol = default_tol(ham) if tol is None else check_range("descend", "tol", tol, 0.0)
    max_rounds = check_int("descend", "max_rounds", max_rounds, 1)
    candidates = check_int("descend", "candidates", candidates, 1)
    max_sweeps = check_int("descend", "max_sweeps", max_sweeps, 1)
    b = _check_block(ham, block_size)
    movable = movable_mask(ham, frozen)
    r = state.replicas
    d = _Descent(state.spins, state.fields, jnp.zeros(r, int), jnp.zeros(r, int),
                 jnp.asarray(0), jnp.ones(r, bool))
    d = _descent_loop(ham, d, max_rounds, movable, b, tol, candidates, max_sweeps,
                      resolve_kernel(kernel))
    state, stats, _ = _finish_descent(ham, state, d, movable, tol)
    return state, stats


def _finish_descent(ham, state, d, movable, tol):
    """(state, DescentStats, Stability) of the descended spins, fields from scratch."""
    fields = ham.local_fields(d.spins)
    stab = stability(ham, d.spins, fields, frozen=~movable, tol=tol)
    converged = (jnp.sum(stab.single, axis=1) == 0) & (jnp.sum(stab.pair, axis=1) == 0)
    state = eqx.tree_at(lambda s: (s.spins, s.fields), state, (d.spins, fields))
    return state, DescentStats(d.single, d.pair, d.rounds, converged), stab


