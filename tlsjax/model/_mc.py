"""Monte Carlo of the full Hamiltonian (Eq. 1, docs/conventions.md section 6): Metropolis sweeps,
simulated annealing and parallel tempering.

State. R replicas of one realization are held together: spins and local fields are
(R, 2n) arrays (`MCState`), the spin layout of `Hamiltonian`. Realizations are batched
on top (`run_mc`: `jax.lax.map` / `jax.vmap` per device, split over devices).

Metropolis with delayed (blocked) field updates. A sweep visits the spins in order
0, 1, ..., 2n - 1 and proposes flipping each one: accepted if eps_k < T E_k with
E_k ~ Exponential(1) (the Metropolis rule min(1, exp(-eps_k / T)); at T = 0: iff
eps_k < 0). The spins are cut into blocks of B (`block_size`, dividing n). For a block:
run the B attempts one after the other with the in-block fields corrected by the
B x B couplings for the flips made earlier in the block, then bring every field up to
date at once: lambda += delta_s[:, block] @ K[block, :], an (R x B) @ (B x 2n) matrix
product with the block's rows of K (from the stored K or generated). This is exactly
sequential single-spin Metropolis; its O(N^2 R) work per sweep is a GEMM rather than
R N rank-one updates, and every row block of K is produced at most once per sweep
(shared by the R replicas), and not at all when no replica flipped a spin of the block
(most blocks at low temperature and in the zero-temperature descent). Fields are
recomputed from scratch every `refresh_every` sweeps (they agree with the incremental
ones to rounding, `tests/test_mc.py`).

Temperatures are in K. Parallel tempering holds `chains` independent chains, each with
one replica at every temperature of a ladder; replicas keep their spins and exchange
temperatures (neighbouring ladder slots, even and odd pairs alternately, accepted with
probability min(1, exp((1/T_m - 1/T_{m+1}) (E_m - E_{m+1})))).

The zero-temperature descent over single and pair flips is in `_descent.py`; the
pipeline (anneal, temper, descend), its configuration and the driver over realizations
and devices (`run_mc`: progress bar, chunks of sweeps, Ctrl-C keeps the state reached)
in `_mc_run.py`. Everything here is pure and jit-able.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._validate import check_grid, check_int, check_range, check_type, is_traced
from ._hamiltonian import TAU, Hamiltonian, S, exact_matmul
from ._mc_kernel import block_attempts, resolve_kernel

#: Default number of sweeps between recomputing the local fields from scratch.
DEFAULT_REFRESH = 100


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


# -- helpers ---------------------------------------------------------------------------------
def default_tol(ham: Hamiltonian) -> Float[Array, ""]:
    """Energy tolerance of the descent and stability counts, in K: 4 eps sqrt(2n) J_o with
    eps the float resolution (the rounding error of a local field summed over 2n terms).
    Float32, paper size (2n ~ 1e4, J_o = 500 K): 0.024 K; float64: 4.5e-11 K."""
    check_type("default_tol", "ham", ham, Hamiltonian, "Hamiltonian (from hamiltonian())")
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


def check_count(where: str, name: str, value) -> Int[Array, ""] | int:
    """A number of sweeps (>= 0): a Python int is checked now, a traced one at run time
    (so `jax.jit` need not treat it as static)."""
    if is_traced(value):
        value = jnp.asarray(value)
        return eqx.error_if(value, value < 0, f"`{where}({name}=...)` must be >= 0")
    return check_int(where, name, value, 0)


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
    spins = jnp.where(ham.mask[None, :], spins, 1.0)
    return MCState(spins, ham.local_fields(spins), temps, jnp.arange(r), jnp.zeros(r, int),
                   jnp.asarray(0), key)


# -- the blocked Metropolis sweep ---------------------------------------------------------------
def sweep(ham: Hamiltonian, spins: Float[Array, "R 2n"], fields: Float[Array, "R 2n"],
          thresholds: Float[Array, "R 2n"], movable: Bool[Array, " 2n"], block_size: int,
          diag: Float[Array, "2 nb B B"] | None = None, kernel: str = "auto"
          ) -> tuple[Float[Array, "R 2n"], Float[Array, "R 2n"]]:
    """One Metropolis sweep over spins 0..2n-1 with delayed block updates (module docstring).

    Spin k of replica r flips iff movable[k] and eps_k < thresholds[r, k]
    (T E with E ~ Exp(1) for Metropolis at T; -tol for a zero-temperature descent).
    `diag`: `ham.diagonal_blocks(block_size)` if already at hand (loops over sweeps
    compute it once). `kernel`: how a block's B attempts run, "xla", "pallas" or "auto"
    (`_mc_kernel.resolve_kernel`: the Pallas kernel on GPUs); the same spins either way.

    **Returns:** `(spins, fields)` after the sweep (fields updated incrementally).
    """
    n, b = ham.n, block_size
    attempts = block_attempts(kernel)
    starts = jnp.arange(0, n, b)
    diag = ham.diagonal_blocks(b) if diag is None else diag
    for species in (S, TAU):
        def block(carry, x, species=species):
            spins, fields = carry
            start, kbb = x
            off = species * n + start
            s_b = jax.lax.dynamic_slice_in_dim(spins, off, b, 1)
            new = attempts(s_b, jax.lax.dynamic_slice_in_dim(fields, off, b, 1),
                           jax.lax.dynamic_slice_in_dim(thresholds, off, b, 1),
                           jax.lax.dynamic_slice_in_dim(movable, off, b), kbb)
            delta = new - s_b
            # the rows of K are fetched (or generated) only if a spin of the block flipped
            fields = jax.lax.cond(
                jnp.any(delta != 0),
                lambda f: f + exact_matmul(delta, ham.species_rows(species, start, b)),
                lambda f: f, fields)
            return (jax.lax.dynamic_update_slice_in_dim(spins, new, off, 1), fields), None

        (spins, fields), _ = jax.lax.scan(block, (spins, fields), (starts, diag[species]))
    return spins, fields


def _sweeps(ham, state, count, temps_at, movable, block_size, refresh_every, kernel="auto"):
    """`count` Metropolis sweeps; the temperatures of sweep i (0-based, in this call) are
    `temps_at(i, state)` (R,). `count` may be traced."""
    diag = ham.diagonal_blocks(block_size)

    def body(i, st):
        key, k_thr = jax.random.split(st.key)
        temps = temps_at(i, st)
        thr = temps[:, None] * jax.random.exponential(k_thr, st.spins.shape, st.spins.dtype)
        spins, fields = sweep(ham, st.spins, st.fields, thr, movable, block_size, diag, kernel)
        done = st.sweeps + 1
        fields = jax.lax.cond(done % refresh_every == 0, lambda: ham.local_fields(spins),
                              lambda: fields)
        acc = st.accepted + jnp.sum(spins != st.spins, axis=1)
        return MCState(spins, fields, temps, st.slots, acc, done, key)

    return jax.lax.fori_loop(0, count, body, state)


def metropolis(ham: Hamiltonian, state: MCState, sweeps: int | Int[Array, ""], *,
               frozen: Bool[Array, " 2n"] | None = None, block_size: int | None = None,
               refresh_every: int = DEFAULT_REFRESH, kernel: str = "auto") -> MCState:
    """`sweeps` Metropolis sweeps at the state's temperatures (detailed balance per spin).

    **Arguments:**

    - `ham`, `state`: the `Hamiltonian` and the `MCState`.
    - `sweeps`: number of sweeps (>= 0; may be traced, so one compiled function serves
      every count).
    - `frozen`: (2n,) bool, spins never flipped (None: all real spins move).
    - `block_size`: spins per delayed-update block (divides n; default `ham.block_size`).
    - `refresh_every`: recompute the fields from scratch every this many sweeps (>= 1).
    - `kernel`: how a block's attempts run: "auto" (the Pallas kernel on GPUs, XLA
      elsewhere), "xla" or "pallas" (`_mc_kernel.py`; the same spins either way).

    **Returns:** the new `MCState`.
    """
    sweeps = check_count("metropolis", "sweeps", sweeps)
    refresh_every = check_int("metropolis", "refresh_every", refresh_every, 1)
    b = _check_block(ham, block_size)
    return _sweeps(ham, state, sweeps, lambda i, st: st.temperatures, movable_mask(ham, frozen),
                   b, refresh_every, resolve_kernel(kernel))


def anneal(ham: Hamiltonian, state: MCState, schedule: Float[Array, "n_sweeps ..."], *,
           frozen: Bool[Array, " 2n"] | None = None, block_size: int | None = None,
           refresh_every: int = DEFAULT_REFRESH, kernel: str = "auto") -> MCState:
    """Simulated annealing: sweep i runs at `schedule[i]` (K; (sweeps,) for every replica
    or (sweeps, R) per replica; temperatures >= 0, 0 meaning a greedy sweep). `frozen`,
    `block_size`, `refresh_every`, `kernel`: as in `metropolis`.

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
                   b, refresh_every, resolve_kernel(kernel))


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


def _tempering(ham, state, stats, ladder, count, chains, swap_every, movable, b, refresh,
               kernel="auto"):
    """`count` (may be traced) tempering sweeps, each followed by a swap round every
    `swap_every` sweeps; returns (state, stats)."""
    m_count = ladder.shape[0]
    zeros = jnp.zeros(max(m_count - 1, 0), int)

    def body(i, carry):
        st, acc, att = carry
        st = _sweeps(ham, st, 1, lambda i, s: s.temperatures, movable, b, refresh, kernel)
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


def tempering(ham: Hamiltonian, state: MCState, ladder: Float[Array, " M"],
              sweeps: int | Int[Array, ""], *,
              swap_every: int = 1,
              frozen: Bool[Array, " 2n"] | None = None, block_size: int | None = None,
              refresh_every: int = DEFAULT_REFRESH, kernel: str = "auto"
              ) -> tuple[MCState, SwapStats]:
    """Parallel tempering (replica exchange) over a temperature `ladder`.

    The R replicas form R / M independent chains of M = len(ladder) replicas (replica r
    in chain r // M); each replica runs Metropolis at its slot's temperature, and after
    every `swap_every` sweeps neighbouring slots of each chain try to exchange (even
    pairs, then odd pairs, alternately).

    **Arguments:**

    - `ham`, `state`: the `Hamiltonian` and `MCState` (replica r starts on slot
      `state.slots[r] % M`; `init_state` gives r % M).
    - `ladder`: (M,) temperatures in K, finite, > 0, strictly decreasing.
    - `sweeps`: number of sweeps (>= 0; may be traced).
    - `swap_every`: sweeps between exchange rounds (>= 1).
    - `frozen`, `block_size`, `refresh_every`, `kernel`: as in `metropolis`.

    **Returns:** `(state, SwapStats)`.
    """
    lad = check_grid("tempering", "ladder", ladder, positive=True, decreasing=True)
    lad = lad.astype(state.spins.dtype)
    sweeps = check_count("tempering", "sweeps", sweeps)
    swap_every = check_int("tempering", "swap_every", swap_every, 1)
    refresh_every = check_int("tempering", "refresh_every", refresh_every, 1)
    b = _check_block(ham, block_size)
    state, chains = _ladder_state(state, lad, "tempering")
    zeros = jnp.zeros(lad.shape[0] - 1, int)
    return _tempering(ham, state, SwapStats(zeros, zeros), lad, sweeps, chains, swap_every,
                      movable_mask(ham, frozen), b, refresh_every, resolve_kernel(kernel))


