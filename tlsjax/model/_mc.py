"""Monte Carlo of the full Hamiltonian (Eq. 1): Metropolis, annealing, parallel tempering
and a zero-temperature descent over single and pair flips (MODEL.md section 6).

State. R replicas of one realization are held together: spins and local fields are
(R, 2n) arrays (`MCState`), the spin layout of `Hamiltonian`. Realizations are batched
on top (`run_mc`: `jax.lax.map` / `jax.vmap` per device, split over devices).

Metropolis with delayed (blocked) field updates. A sweep visits the spins in order
0, 1, ..., 2n - 1 and proposes flipping each one: accepted if eps_k < T E_k with
E_k ~ Exponential(1) (the Metropolis rule min(1, exp(-eps_k / T)); at T = 0: iff
eps_k < 0). The spins are cut into blocks of B (`block_size`, dividing n). For a block:
take its rows K[block, :] (B x 2n, from the stored K or generated), run the B attempts
one after the other with the in-block fields corrected by the B x B couplings for the
flips made earlier in the block, then bring every field up to date at once:
lambda += delta_s[:, block] @ K[block, :], an (R x B) @ (B x 2n) matrix product. This
is exactly sequential single-spin Metropolis; its O(N^2 R) work per sweep is a GEMM
rather than R N rank-one updates, and every row block of K is produced once per sweep
(shared by the R replicas). Fields are recomputed from scratch every `refresh_every`
sweeps (they agree with the incremental ones to rounding, `tests/test_mc.py`).

Temperatures are in K. Parallel tempering holds `chains` independent chains, each with
one replica at every temperature of a ladder; replicas keep their spins and exchange
temperatures (neighbouring ladder slots, even and odd pairs alternately, accepted with
probability min(1, exp((1/T_m - 1/T_{m+1}) (E_m - E_{m+1})))).

Descent (T = 0): zero-temperature sweeps until no single flip lowers H by more than
`tol`; then a blocked O(N^2) scan for pair flips k, l with
eps_k + eps_l + 4 K_kl s_k s_l < -tol; the most negative few per replica are applied one
after the other (each re-checked against the current state), and the round repeats
until a state is single- and pair-stable (within `tol`) or `max_rounds` is reached.

Everything here is pure and jit-able; `run_mc` is the Python driver (progress bar,
chunks of sweeps, Ctrl-C keeps the state reached).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._validate import check_int, check_range, is_traced
from ._hamiltonian import TAU, Hamiltonian, S

#: Default number of sweeps between recomputing the local fields from scratch.
DEFAULT_REFRESH = 100
#: Largest row block of the pair scan (its temporaries are R x B x 2n).
_PAIR_BLOCK = 16


class MCState(eqx.Module):
    """R replicas of one realization.

    **Fields:**

    - `spins`: (R, 2n) +-1 (the layout of `Hamiltonian`; padded sites hold +1).
    - `fields`: (R, 2n) local fields lambda = h + K s in K.
    - `temperatures`: (R,) the temperature of each replica in K.
    - `slots`: (R,) the ladder index each replica holds (parallel tempering).
    - `accepted`: (R,) accepted Metropolis flips so far.
    - `sweeps`: number of sweeps done (sets the refresh and swap parities).
    - `key`: the PRNG key of the next step.
    """

    spins: Float[Array, "R 2n"]
    fields: Float[Array, "R 2n"]
    temperatures: Float[Array, " R"]
    slots: Int[Array, " R"]
    accepted: Int[Array, " R"]
    sweeps: Int[Array, ""]
    key: PRNGKeyArray

    @property
    def replicas(self) -> int:
        return self.spins.shape[0]


class SwapStats(eqx.Module):
    """Replica-exchange counts per neighbouring ladder pair (m, m + 1), summed over chains."""

    accepted: Int[Array, " M-1"]
    attempted: Int[Array, " M-1"]

    @property
    def acceptance(self) -> Float[Array, " M-1"]:
        """Accepted / attempted (NaN where none was attempted)."""
        att = self.attempted.astype(jnp.result_type(float))
        return jnp.where(att > 0, self.accepted / jnp.maximum(att, 1), jnp.nan)


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


# -- helpers ---------------------------------------------------------------------------------
def default_tol(ham: Hamiltonian) -> float:
    """Energy tolerance of the descent and stability counts, in K: 4 eps sqrt(2n) J_o with
    eps the float resolution (the rounding error of a local field summed over 2n terms).
    Float32, paper size (2n ~ 1e4, J_o = 500 K): 0.024 K; float64: 4.5e-11 K."""
    eps = float(jnp.finfo(ham.h.dtype).eps)
    j0 = ham.J0
    return 4.0 * eps * math.sqrt(ham.size) * j0


def movable_mask(ham: Hamiltonian, frozen: Bool[Array, " 2n"] | None) -> Bool[Array, " 2n"]:
    """Spins that may flip: real impurities not in `frozen` ((2n,) bool or None)."""
    if frozen is None:
        return ham.mask
    frozen = jnp.asarray(frozen, bool)
    if frozen.shape != (ham.size,):
        raise ValueError(f"`frozen` must have shape ({ham.size},) (the 2n spins); got {frozen.shape}")
    return ham.mask & ~frozen


def _check_block(ham: Hamiltonian, block_size: int | None) -> int:
    b = ham.block_size if block_size is None else check_int("mc", "block_size", block_size, 1)
    if ham.n % b:
        raise ValueError(f"`block_size` must divide the capacity n = {ham.n} (see "
                         f"`hamiltonian(pad_to=...)`); got {b}")
    return b


def init_state(ham: Hamiltonian, key: PRNGKeyArray, temperatures: Float[Array, " R"], *,
               spins: Float[Array, "R 2n"] | None = None) -> MCState:
    """Replicas with random spins (or the given `spins`) at `temperatures` (K, >= 0).

    **Arguments:**

    - `ham`: the `Hamiltonian`.
    - `key`: PRNG key (initial spins and all later Monte Carlo steps).
    - `temperatures`: (R,) temperatures in K, one per replica.
    - `spins`: (R, 2n) +-1 initial spins, or None for independent random ones.

    **Returns:** an `MCState` (fields computed from scratch; `slots` = 0..R-1).
    """
    temps = jnp.atleast_1d(check_range("init_state", "temperatures", temperatures, 0.0,
                                       dtype=ham.h.dtype))
    r = temps.shape[0]
    key, k_init = jax.random.split(key)
    if spins is None:
        spins = jnp.where(jax.random.bernoulli(k_init, 0.5, (r, ham.size)), 1.0, -1.0)
    spins = jnp.asarray(spins, ham.h.dtype)
    if spins.shape != (r, ham.size):
        raise ValueError(f"`init_state(spins=...)` must have shape ({r}, {ham.size}); got "
                         f"{spins.shape}")
    spins = jnp.where(ham.mask, spins, 1.0)
    return MCState(spins, ham.local_fields(spins), temps, jnp.arange(r), jnp.zeros(r, int),
                   jnp.asarray(0), key)


# -- the blocked Metropolis sweep ---------------------------------------------------------------
def _block_attempts(s_b, l_b, thr_b, mov_b, kbb):
    """Sequential attempts on one block: (R, B) spins, fields, thresholds; (B,) movable;
    (B, B) couplings. Returns the new (R, B) spins."""

    def step(t, carry):
        s, lam = carry
        st = s[:, t]
        accept = (-2.0 * st * lam[:, t] < thr_b[:, t]) & mov_b[t]
        d = jnp.where(accept, -2.0 * st, 0.0)
        return s.at[:, t].add(d), lam + d[:, None] * kbb[t][None, :]

    s_new, _ = jax.lax.fori_loop(0, s_b.shape[1], step, (s_b, l_b))
    return s_new


def sweep(ham: Hamiltonian, spins: Float[Array, "R 2n"], fields: Float[Array, "R 2n"],
          thresholds: Float[Array, "R 2n"], movable: Bool[Array, " 2n"], block_size: int
          ) -> tuple[Float[Array, "R 2n"], Float[Array, "R 2n"]]:
    """One Metropolis sweep over spins 0..2n-1 with delayed block updates (module docstring).

    Spin k of replica r flips iff movable[k] and eps_k < thresholds[r, k]
    (T E with E ~ Exp(1) for Metropolis at T; -tol for a zero-temperature descent).

    **Returns:** `(spins, fields)` after the sweep (fields updated incrementally).
    """
    n, b = ham.n, block_size
    starts = jnp.arange(0, n, b)
    for species in (S, TAU):
        def block(carry, start, species=species):
            spins, fields = carry
            off = species * n + start
            rows = ham.species_rows(species, start, b)
            kbb = jax.lax.dynamic_slice_in_dim(rows, off, b, 1)
            s_b = jax.lax.dynamic_slice_in_dim(spins, off, b, 1)
            new = _block_attempts(s_b, jax.lax.dynamic_slice_in_dim(fields, off, b, 1),
                                  jax.lax.dynamic_slice_in_dim(thresholds, off, b, 1),
                                  jax.lax.dynamic_slice_in_dim(movable, off, b), kbb)
            fields = fields + (new - s_b) @ rows
            return (jax.lax.dynamic_update_slice_in_dim(spins, new, off, 1), fields), None

        (spins, fields), _ = jax.lax.scan(block, (spins, fields), starts)
    return spins, fields


def _sweeps(ham, state, count, temps_at, movable, block_size, refresh_every):
    """`count` Metropolis sweeps; the temperatures of sweep i (0-based, in this call) are
    `temps_at(i, state)` (R,). `count` may be traced."""

    def body(i, st):
        key, k_thr = jax.random.split(st.key)
        temps = temps_at(i, st)
        thr = temps[:, None] * jax.random.exponential(k_thr, st.spins.shape, st.spins.dtype)
        spins, fields = sweep(ham, st.spins, st.fields, thr, movable, block_size)
        done = st.sweeps + 1
        fields = jax.lax.cond(done % refresh_every == 0, lambda: ham.local_fields(spins),
                              lambda: fields)
        acc = st.accepted + jnp.sum(spins != st.spins, axis=1)
        return MCState(spins, fields, temps, st.slots, acc, done, key)

    return jax.lax.fori_loop(0, count, body, state)


def metropolis(ham: Hamiltonian, state: MCState, sweeps: int, *,
               frozen: Bool[Array, " 2n"] | None = None, block_size: int | None = None,
               refresh_every: int = DEFAULT_REFRESH) -> MCState:
    """`sweeps` Metropolis sweeps at the state's temperatures (detailed balance per spin).

    **Arguments:**

    - `ham`, `state`: the `Hamiltonian` and the `MCState`.
    - `sweeps`: number of sweeps (>= 0).
    - `frozen`: (2n,) bool, spins never flipped (None: all real spins move).
    - `block_size`: spins per delayed-update block (divides n; default `ham.block_size`).
    - `refresh_every`: recompute the fields from scratch every this many sweeps (>= 1).

    **Returns:** the new `MCState`.
    """
    sweeps = check_int("metropolis", "sweeps", sweeps, 0)
    refresh_every = check_int("metropolis", "refresh_every", refresh_every, 1)
    b = _check_block(ham, block_size)
    return _sweeps(ham, state, sweeps, lambda i, st: st.temperatures, movable_mask(ham, frozen),
                   b, refresh_every)


def check_schedule(where: str, name: str, temps, *, decreasing: bool) -> Float[Array, ...]:
    """A non-empty 1-D array of finite temperatures > 0 (K), strictly decreasing if asked."""
    a = np.asarray(temps, dtype=float)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"`{where}({name}=...)` must be a non-empty 1-D array of temperatures "
                         f"(K); got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"`{where}({name}=...)` must hold finite temperatures > 0 (K)")
    if decreasing and np.any(np.diff(a) >= 0):
        raise ValueError(f"`{where}({name}=...)` must be strictly decreasing (hottest first)")
    return jnp.asarray(a)


def anneal(ham: Hamiltonian, state: MCState, schedule: Float[Array, "n_sweeps ..."], *,
           frozen: Bool[Array, " 2n"] | None = None, block_size: int | None = None,
           refresh_every: int = DEFAULT_REFRESH) -> MCState:
    """Simulated annealing: sweep i runs at `schedule[i]` (K; (sweeps,) for every replica
    or (sweeps, R) per replica; temperatures >= 0, 0 meaning a greedy sweep).

    **Returns:** the `MCState` after the last sweep (at the last temperatures).
    """
    sched = jnp.asarray(check_range("anneal", "schedule", schedule, 0.0), state.spins.dtype)
    if sched.ndim == 1:
        sched = jnp.broadcast_to(sched[:, None], (sched.shape[0], state.replicas))
    if sched.ndim != 2 or sched.shape[1] != state.replicas:
        raise ValueError(f"`anneal(schedule=...)` must have shape (sweeps,) or (sweeps, "
                         f"{state.replicas}); got {sched.shape}")
    refresh_every = check_int("anneal", "refresh_every", refresh_every, 1)
    b = _check_block(ham, block_size)
    return _sweeps(ham, state, sched.shape[0], lambda i, st: sched[i], movable_mask(ham, frozen),
                   b, refresh_every)


# -- parallel tempering ---------------------------------------------------------------------------
def _swap(ham, state, ladder, chains, parity):
    """One round of neighbour exchanges (slots m, m + 1 with m % 2 == parity) per chain."""
    m_count = ladder.shape[0]
    key, k_u = jax.random.split(state.key)
    energy = ham.energy(state.spins, state.fields).reshape(chains, m_count)
    who = jnp.argsort(state.slots.reshape(chains, m_count), axis=1)  # replica at each slot
    e_slot = jnp.take_along_axis(energy, who, axis=1)
    beta = 1.0 / ladder
    active = (jnp.arange(m_count - 1) % 2) == parity
    delta = (beta[:-1] - beta[1:])[None, :] * (e_slot[:, :-1] - e_slot[:, 1:])
    u = jax.random.uniform(k_u, delta.shape, delta.dtype)
    acc = active[None, :] & (jnp.log(u) < delta)
    take_next = jnp.pad(acc, ((0, 0), (0, 1)))
    take_prev = jnp.pad(acc, ((0, 0), (1, 0)))
    who = jnp.where(take_next, jnp.roll(who, -1, axis=1),
                    jnp.where(take_prev, jnp.roll(who, 1, axis=1), who))
    slots = jnp.argsort(who, axis=1).reshape(-1)
    state = eqx.tree_at(lambda s: (s.slots, s.temperatures, s.key), state,
                        (slots, ladder[slots], key))
    return state, jnp.sum(acc, axis=0), jnp.sum(jnp.broadcast_to(active, acc.shape), axis=0)


def _tempering(ham, state, stats, ladder, count, chains, swap_every, movable, b, refresh):
    """`count` (may be traced) tempering sweeps, each followed by a swap round every
    `swap_every` sweeps; returns (state, stats)."""
    m_count = ladder.shape[0]
    zeros = jnp.zeros(max(m_count - 1, 0), int)

    def body(i, carry):
        st, acc, att = carry
        st = _sweeps(ham, st, 1, lambda i, s: s.temperatures, movable, b, refresh)
        if m_count == 1:
            return st, acc, att
        parity = (st.sweeps // swap_every) % 2
        st, a, t = jax.lax.cond(st.sweeps % swap_every == 0,
                                lambda: _swap(ham, st, ladder, chains, parity),
                                lambda: (st, zeros, zeros))
        return st, acc + a, att + t

    st, acc, att = jax.lax.fori_loop(0, count, body, (state, stats.accepted, stats.attempted))
    return st, SwapStats(acc, att)


def _ladder_state(state: MCState, ladder, where: str) -> tuple[MCState, int]:
    """Put every replica on its ladder slot (slots mod M) and check R = chains x M."""
    m_count = ladder.shape[0]
    if state.replicas % m_count:
        raise ValueError(f"`{where}`: the number of replicas ({state.replicas}) must be a "
                         f"multiple of the ladder length ({m_count})")
    slots = state.slots % m_count
    return eqx.tree_at(lambda s: (s.slots, s.temperatures), state,
                       (slots, ladder[slots].astype(state.temperatures.dtype))), \
        state.replicas // m_count


def tempering(ham: Hamiltonian, state: MCState, ladder, sweeps: int, *, swap_every: int = 1,
              frozen: Bool[Array, " 2n"] | None = None, block_size: int | None = None,
              refresh_every: int = DEFAULT_REFRESH) -> tuple[MCState, SwapStats]:
    """Parallel tempering (replica exchange) over a temperature `ladder`.

    The R replicas form R / M independent chains of M = len(ladder) replicas (replica r
    in chain r // M); each replica runs Metropolis at its slot's temperature, and after
    every `swap_every` sweeps neighbouring slots of each chain try to exchange (even
    pairs, then odd pairs, alternately).

    **Arguments:**

    - `ham`, `state`: the `Hamiltonian` and `MCState` (replica r starts on slot
      `state.slots[r] % M`; `init_state` gives r % M).
    - `ladder`: (M,) temperatures in K, finite, > 0, strictly decreasing.
    - `sweeps`: number of sweeps (>= 0).
    - `swap_every`: sweeps between exchange rounds (>= 1).
    - `frozen`, `block_size`, `refresh_every`: as in `metropolis`.

    **Returns:** `(state, SwapStats)`.
    """
    lad = check_schedule("tempering", "ladder", ladder, decreasing=True).astype(state.spins.dtype)
    sweeps = check_int("tempering", "sweeps", sweeps, 0)
    swap_every = check_int("tempering", "swap_every", swap_every, 1)
    refresh_every = check_int("tempering", "refresh_every", refresh_every, 1)
    b = _check_block(ham, block_size)
    state, chains = _ladder_state(state, lad, "tempering")
    zeros = jnp.zeros(lad.shape[0] - 1, int)
    return _tempering(ham, state, SwapStats(zeros, zeros), lad, sweeps, chains, swap_every,
                      movable_mask(ham, frozen), b, refresh_every)


# -- zero-temperature descent ---------------------------------------------------------------------
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


def _greedy(ham, spins, fields, movable, b, tol, max_sweeps):
    """Zero-temperature sweeps (flip iff eps < -tol) until single-stable or max_sweeps."""
    thr = jnp.full(spins.shape, -tol, spins.dtype)

    def unstable(s, f):
        return jnp.any((-2.0 * s * f < -tol) & movable)

    def body(c):
        s, f, i, flips = c
        s2, f2 = sweep(ham, s, f, thr, movable, b)
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


def _descent_loop(ham, d: _Descent, limit, movable, b, tol, candidates, max_sweeps) -> _Descent:
    """Descent rounds until no replica is pending or `limit` rounds (may be traced)."""
    c = min(candidates, ham.size)

    def body(d):
        f = ham.local_fields(d.spins)  # from scratch each round
        s, f, singles = _greedy(ham, d.spins, f, movable, b, tol, max_sweeps)
        pmin = _pair_min(ham, s, f, movable)
        neg, ks = jax.lax.top_k(-pmin, c)
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
    spins = jnp.atleast_2d(spins)
    fields = ham.local_fields(spins) if fields is None else jnp.atleast_2d(fields)
    tol = default_tol(ham) if tol is None else check_range("stability", "tol", tol, 0.0)
    movable = movable_mask(ham, frozen)

    def per_species(bad):
        return jnp.sum(bad.reshape(bad.shape[0], 2, ham.n), axis=2)

    single = (-2.0 * spins * fields < -tol) & movable
    return Stability(per_species(single), per_species(_pair_min(ham, spins, fields, movable) < -tol))


def descend(ham: Hamiltonian, state: MCState, *, frozen: Bool[Array, " 2n"] | None = None,
            tol=None, max_rounds: int = 200, candidates: int = 32, max_sweeps: int = 50,
            block_size: int | None = None) -> tuple[MCState, DescentStats]:
    """Zero-temperature descent over single and pair flips (module docstring).

    **Arguments:**

    - `ham`, `state`: the `Hamiltonian` and `MCState` (its temperatures are not used).
    - `frozen`: (2n,) bool, spins never flipped (nor used as pair partners).
    - `tol`: energy tolerance in K (>= 0; default `default_tol(ham)`): a flip is made
      only if it lowers H by more than tol.
    - `max_rounds`: most pair-scan rounds (>= 1); `candidates`: pair flips tried per
      replica and round (>= 1); `max_sweeps`: most zero-temperature sweeps per round.
    - `block_size`: as in `metropolis`.

    **Returns:** `(state, DescentStats)`; the state's fields are recomputed from scratch.
    """
    tol = default_tol(ham) if tol is None else check_range("descend", "tol", tol, 0.0)
    max_rounds = check_int("descend", "max_rounds", max_rounds, 1)
    candidates = check_int("descend", "candidates", candidates, 1)
    max_sweeps = check_int("descend", "max_sweeps", max_sweeps, 1)
    b = _check_block(ham, block_size)
    movable = movable_mask(ham, frozen)
    r = state.replicas
    d = _Descent(state.spins, state.fields, jnp.zeros(r, int), jnp.zeros(r, int),
                 jnp.asarray(0), jnp.ones(r, bool))
    d = _descent_loop(ham, d, max_rounds, movable, b, tol, candidates, max_sweeps)
    state, stats, _ = _finish_descent(ham, state, d, movable, tol)
    return state, stats


def _finish_descent(ham, state, d, movable, tol):
    """(state, DescentStats, Stability) of the descended spins, fields from scratch."""
    fields = ham.local_fields(d.spins)
    stab = stability(ham, d.spins, fields, frozen=~movable, tol=tol)
    converged = (jnp.sum(stab.single, axis=1) == 0) & (jnp.sum(stab.pair, axis=1) == 0)
    state = eqx.tree_at(lambda s: (s.spins, s.fields), state, (d.spins, fields))
    return state, DescentStats(d.single, d.pair, d.rounds, converged), stab


# -- configuration, one realization, results ------------------------------------------------------
class MCConfig(eqx.Module):
    """Controls of the Monte Carlo pipeline (`minimize`, `run_mc`): anneal, then parallel
    tempering, then the zero-temperature descent. All temperatures in K.

    **Fields (all static):**

    - `ladder`: the tempering temperatures, strictly decreasing; None (default): a
      geometric ladder of `temperatures` values from `t_max` to `t_min`.
    - `temperatures`: ladder length M for the default ladder (>= 1).
    - `t_max`, `t_min`: default-ladder ends; None: J_o and g^2 J_o / 10 (MODEL.md
      section 6: from the scale of the S fields to well below the tau-tau couplings).
    - `chains`: independent tempering chains (replicas = chains x M).
    - `anneal_sweeps`: sweeps of the annealing that brings each replica from the top
      of the ladder geometrically down to its own slot temperature (>= 0).
    - `sweeps`: tempering sweeps (>= 0); `swap_every`: sweeps between exchange rounds.
    - `block_size`: delayed-update block (divides the padded capacity n; `run_mc` pads
      the capacity to a multiple of it).
    - `refresh_every`: sweeps between recomputing the fields from scratch.
    - `descent_rounds`, `descent_candidates`, `descent_sweeps`: `descend`'s
      `max_rounds`, `candidates`, `max_sweeps`; `tol`: its tolerance (K; None: default).
    """

    ladder: tuple[float, ...] | None = eqx.field(static=True, default=None)
    temperatures: int = eqx.field(static=True, default=16)
    t_max: float | None = eqx.field(static=True, default=None)
    t_min: float | None = eqx.field(static=True, default=None)
    chains: int = eqx.field(static=True, default=1)
    anneal_sweeps: int = eqx.field(static=True, default=1000)
    sweeps: int = eqx.field(static=True, default=1000)
    swap_every: int = eqx.field(static=True, default=1)
    block_size: int = eqx.field(static=True, default=64)
    refresh_every: int = eqx.field(static=True, default=DEFAULT_REFRESH)
    descent_rounds: int = eqx.field(static=True, default=200)
    descent_candidates: int = eqx.field(static=True, default=32)
    descent_sweeps: int = eqx.field(static=True, default=50)
    tol: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        w = "MCConfig"
        if self.ladder is not None:
            check_schedule(w, "ladder", self.ladder, decreasing=True)
        check_int(w, "temperatures", self.temperatures, 1)
        for name in ("t_max", "t_min", "tol"):
            value = getattr(self, name)
            if value is not None:
                check_range(w, name, value, 0.0, lo_open=name != "tol")
        if self.t_max is not None and self.t_min is not None and self.t_min >= self.t_max \
                and self.temperatures > 1:
            raise ValueError(f"`MCConfig(t_min=...)` must be below t_max = {self.t_max:g} K; "
                             f"got {self.t_min:g}")
        for name, lo in (("chains", 1), ("anneal_sweeps", 0), ("sweeps", 0), ("swap_every", 1),
                         ("block_size", 1), ("refresh_every", 1), ("descent_rounds", 1),
                         ("descent_candidates", 1), ("descent_sweeps", 1)):
            check_int(w, name, getattr(self, name), lo)

    def ladder_for(self, g, J0) -> Float[Array, " M"]:
        """The tempering ladder (K) for coupling ratio g and J_o (K; may be traced)."""
        if self.ladder is not None:
            return jnp.asarray(self.ladder, dtype=jnp.result_type(float))
        t_max = J0 if self.t_max is None else self.t_max
        t_min = g**2 * J0 / 10.0 if self.t_min is None else self.t_min
        if self.temperatures == 1:
            return jnp.reshape(jnp.asarray(t_min, jnp.result_type(float)), (1,))
        if not is_traced((t_max, t_min)) and float(t_min) >= float(t_max):
            raise ValueError(f"`MCConfig`: the ladder needs t_min < t_max; got t_min = "
                             f"{float(t_min):g} K, t_max = {float(t_max):g} K")
        e = jnp.linspace(0.0, 1.0, self.temperatures)
        return jnp.asarray(t_max, jnp.result_type(float)) * (jnp.asarray(t_min) / t_max) ** e

    def replicas(self, ladder) -> int:
        return self.chains * len(ladder)


def anneal_schedule(ladder, slots, start, count, total):
    """Temperatures (count, R) of annealing sweeps start..start+count-1 of `total`: replica
    r goes geometrically from ladder[0] to ladder[slots[r]]."""
    i = (start + jnp.arange(count) + 1)[:, None] / max(total, 1)
    top, target = ladder[0], ladder[slots][None, :]
    return top * (target / top) ** i


class MCResult(eqx.Module):
    """Outcome of the Monte Carlo pipeline; with `run_mc` every field has a leading
    realization axis V (except `ladder`, `tol`, `interrupted`, `stages`).

    **Fields:**

    - `spins`: (R, 2n) final states (after the descent), layout of `Hamiltonian`.
    - `fields`: (R, 2n) their local fields lambda (K, from scratch); the single-flip
      energies are eps = -2 spins fields (`flip_energies`).
    - `energies`: (R,) H of the final states (K).
    - `temperatures`: (R,) the temperature each replica held before the descent.
    - `before`, `after`: `Stability` (R, 2) counts before and after the descent.
    - `descent`: `DescentStats`.
    - `swaps`: `SwapStats` of the tempering.
    - `accepted`: (R,) accepted Metropolis flips (annealing and tempering).
    - `sweeps`: (2,) sweeps done in annealing and tempering.
    - `n_sites`: number of impurities.
    - `ladder`: (M,) the ladder (K); `tol`: the descent tolerance (K).
    - `interrupted`: True if Ctrl-C stopped a stage early (`run_mc`).
    """

    spins: Float[Array, "R 2n"]
    fields: Float[Array, "R 2n"]
    energies: Float[Array, " R"]
    temperatures: Float[Array, " R"]
    before: Stability
    after: Stability
    descent: DescentStats
    swaps: SwapStats
    accepted: Int[Array, " R"]
    sweeps: Int[Array, 2]
    n_sites: Int[Array, ""]
    ladder: Float[Array, " M"]
    tol: Float[Array, ""]
    interrupted: bool = eqx.field(static=True, default=False)

    @property
    def best(self) -> Int[Array, ...]:
        """Index of the lowest-energy replica (per realization)."""
        return jnp.argmin(self.energies, axis=-1)

    @property
    def lowest_energy(self) -> Float[Array, ...]:
        """The lowest energy found (K), per realization."""
        return jnp.min(self.energies, axis=-1)

    @property
    def ground_spins(self) -> Float[Array, "... 2n"]:
        """The lowest-energy state found, per realization."""
        return jnp.take_along_axis(self.spins, self.best[..., None, None], axis=-2)[..., 0, :]

    @property
    def ground_fields(self) -> Float[Array, "... 2n"]:
        """The local fields of `ground_spins`."""
        return jnp.take_along_axis(self.fields, self.best[..., None, None], axis=-2)[..., 0, :]


# -- the pipeline, stage by stage (shared by `minimize` and the chunked driver `run_mc`) -----
class _Carry(eqx.Module):
    state: MCState
    swaps: SwapStats


def _stage_init(ham, key, ladder, config):
    m_count = ladder.shape[0]
    r = config.chains * m_count
    slots = jnp.arange(r) % m_count
    top = jnp.full(r, ladder[0]) if config.anneal_sweeps else ladder[slots]
    state = eqx.tree_at(lambda s: s.slots, init_state(ham, key, top), slots)
    zeros = jnp.zeros(m_count - 1, int)
    return _Carry(state, SwapStats(zeros, zeros))


def _stage_anneal(ham, carry, ladder, movable, start, count, config):
    """Annealing sweeps start..start+count-1 (of config.anneal_sweeps); count may be traced."""
    total = max(config.anneal_sweeps, 1)
    top = ladder[0]
    target = ladder[carry.state.slots]

    def temps_at(i, st):
        return top * (target / top) ** ((start + i + 1) / total)

    b = _check_block(ham, config.block_size)
    state = _sweeps(ham, carry.state, count, temps_at, movable, b, config.refresh_every)
    return _Carry(state, carry.swaps)


def _stage_temper(ham, carry, ladder, movable, count, config):
    state, chains = _ladder_state(carry.state, ladder, "MCConfig")
    state, swaps = _tempering(ham, state, carry.swaps, ladder, count, chains, config.swap_every,
                              movable, _check_block(ham, config.block_size), config.refresh_every)
    return _Carry(state, swaps)


def _stage_descent_start(ham, carry, movable, tol):
    st = carry.state
    before = stability(ham, st.spins, st.fields, frozen=~movable, tol=tol)
    r = st.replicas
    d = _Descent(st.spins, st.fields, jnp.zeros(r, int), jnp.zeros(r, int), jnp.asarray(0),
                 jnp.ones(r, bool))
    return d, before


def _stage_descent(ham, d, movable, tol, limit, config):
    return _descent_loop(ham, d, limit, movable, _check_block(ham, config.block_size), tol,
                         config.descent_candidates, config.descent_sweeps)


def _stage_finish(ham, carry, d, before, movable, tol, ladder, sweeps, interrupted=False):
    temps = carry.state.temperatures
    state, dstats, after = _finish_descent(ham, carry.state, d, movable, tol)
    return MCResult(state.spins, state.fields, ham.energy(state.spins, state.fields), temps,
                    before, after, dstats, carry.swaps, state.accepted, jnp.asarray(sweeps),
                    ham.n_sites, ladder, jnp.asarray(tol), interrupted)


def minimize(ham: Hamiltonian, key: PRNGKeyArray, config: MCConfig | None = None, *,
             frozen: Bool[Array, " 2n"] | None = None) -> MCResult:
    """The whole pipeline on one realization: anneal, temper, descend (pure, jit-able).

    **Arguments:**

    - `ham`: the `Hamiltonian` (its capacity must be a multiple of `config.block_size`).
    - `key`: PRNG key of the Monte Carlo (initial spins, Metropolis, swaps).
    - `config`: an `MCConfig` (None: the defaults).
    - `frozen`: (2n,) bool, spins held fixed at their initial (random) values; to fix
      them at chosen values, use the stage functions (`init_state(spins=...)`, ...).

    **Returns:** an `MCResult`.
    """
    config = MCConfig() if config is None else config
    ladder = config.ladder_for(ham.g, ham.J0).astype(ham.h.dtype)
    movable = movable_mask(ham, frozen)
    tol = default_tol(ham) if config.tol is None else config.tol
    carry = _stage_init(ham, key, ladder, config)
    carry = _stage_anneal(ham, carry, ladder, movable, 0, config.anneal_sweeps, config)
    carry = _stage_temper(ham, carry, ladder, movable, config.sweeps, config)
    d, before = _stage_descent_start(ham, carry, movable, tol)
    d = _stage_descent(ham, d, movable, tol, config.descent_rounds, config)
    return _stage_finish(ham, carry, d, before, movable, tol, ladder,
                         [config.anneal_sweeps, config.sweeps])
