"""The Monte Carlo pipeline of the full Hamiltonian: configuration, one realization
(`minimize`, pure and jit-able) and the driver over many realizations and devices
(`run_mc`: chunks of sweeps, progress bar, Ctrl-C keeps the state reached).

Pipeline: every replica is annealed, at one common geometric cooling rate from the top
of the temperature ladder, down to its own ladder temperature; then parallel tempering
runs on the ladder; then the
zero-temperature descent over single and pair flips (`_descent.py`) ends each replica
in a single- and pair-stable state.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._validate import check_grid, check_int, check_range, check_type, is_traced
from ..parallel._sharding import device_mesh, mesh_size, round_up, shard_leading, sharded_map, to_host
from ._descent import DescentStats, Stability, _Descent, _descent_loop, _finish_descent, stability
from ._hamiltonian import DEFAULT_DENSE_BYTES, Hamiltonian, HamiltonianParams, hamiltonian
from ._lattice import Sample
from ._mc import (
    DEFAULT_REFRESH,
    MCState,
    SwapStats,
    _check_block,
    _ladder_state,
    _sweeps,
    _tempering,
    default_tol,
    init_state,
    movable_mask,
)
from ._mc_kernel import KERNELS, resolve_kernel
from ._params import ModelParams


class MCConfig(eqx.Module):
    """Controls of the Monte Carlo pipeline (`minimize`, `run_mc`): anneal, then parallel
    tempering, then the zero-temperature descent. All temperatures in K.

    **Fields (all static):**

    - `ladder`: the tempering temperatures, strictly decreasing; None (default): a
      geometric ladder of `temperatures` values from `t_max` to `t_min`.
    - `temperatures`: ladder length M for the default ladder (>= 1).
    - `t_max`, `t_min`: default-ladder ends; None: J_o and g^2 J_o / 10 (docs/conventions.md
      section 6: from the scale of the S fields to well below the tau-tau couplings).
      `t_max` also sets where the annealing starts (`anneal_top`).
    - `chains`: independent tempering chains (replicas = chains x M).
    - `anneal_sweeps`: sweeps of the annealing (>= 0): one geometric cooling from
      `anneal_top` (t_max, else the ladder's top, else J_o) to the ladder's bottom, each
      replica following it until it reaches its own ladder temperature (so every
      replica cools at the same rate, and the coldest get the whole schedule). With
      `temperatures=1` and `chains=R` this is R independent annealing runs.
    - `sweeps`: tempering sweeps (>= 0); `swap_every`: sweeps between exchange rounds.
    - `block_size`: delayed-update block (divides the padded capacity n; `run_mc` pads
      the capacity to a multiple of it).
    - `refresh_every`: sweeps between recomputing the fields from scratch.
    - `descent_rounds`, `descent_candidates`, `descent_sweeps`: `descend`'s
      `max_rounds`, `candidates`, `max_sweeps`; `tol`: its tolerance (K; None: default).
    - `kernel`: how a block's sequential attempts run: "auto" (default: the fused Pallas
      kernel on GPUs, the XLA scan elsewhere), "xla" or "pallas" (`_mc_kernel.py`; the
      same spins either way; "pallas" off a GPU runs in interpret mode, for tests).
    """

    ladder: tuple[float, ...] | None = eqx.field(static=True, default=None)
    temperatures: int = eqx.field(static=True, default=16)
    t_max: float | None = eqx.field(static=True, default=None)
    t_min: float | None = eqx.field(static=True, default=None)
    chains: int = eqx.field(static=True, default=1)
    anneal_sweeps: int = eqx.field(static=True, default=2000)
    sweeps: int = eqx.field(static=True, default=500)
    swap_every: int = eqx.field(static=True, default=1)
    block_size: int = eqx.field(static=True, default=64)
    refresh_every: int = eqx.field(static=True, default=DEFAULT_REFRESH)
    descent_rounds: int = eqx.field(static=True, default=200)
    descent_candidates: int = eqx.field(static=True, default=32)
    descent_sweeps: int = eqx.field(static=True, default=50)
    tol: float | None = eqx.field(static=True, default=None)
    kernel: str = eqx.field(static=True, default="auto")

    def __check_init__(self):
        w = "MCConfig"
        if self.kernel not in KERNELS:
            raise ValueError(f"`MCConfig(kernel=...)` must be one of {', '.join(KERNELS)}; got "
                             f"{self.kernel!r}")
        if self.ladder is not None:
            check_grid(w, "ladder", self.ladder, positive=True, decreasing=True)
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

    def anneal_top(self, ladder, J0) -> Float[Array, ""]:
        """Where the annealing starts (K): `t_max` if set, else the top of an explicit
        ladder, else J_o (so `temperatures=1, chains=R` anneals R independent replicas
        from J_o down to t_min)."""
        if self.t_max is not None:
            return jnp.asarray(self.t_max, ladder.dtype)
        return ladder[0] if self.ladder is not None else jnp.asarray(J0, ladder.dtype)

    def replicas(self, ladder) -> int:
        return self.chains * len(ladder)


class MCResult(eqx.Module):
    """Outcome of the Monte Carlo pipeline; with `run_mc` every field has a leading
    realization axis V (except `ladder`, `tol`, `interrupted`, `seconds`).

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
    - `n_sites`: number of impurities (the real ones are the first `n_sites` of each
      species: S_i at index i, tau_i at n + i).
    - `ladder`: (M,) the ladder (K); `tol`: the descent tolerance (K).
    - `interrupted`: True if Ctrl-C stopped a stage early (`run_mc`); `unfinished`: how
      many of the returned realizations (the last ones: the batch in progress) it cut short.
    - `seconds`: `run_mc`'s wall time per stage, ((stage, seconds), ...) for "build"
      (Hamiltonians, initial states, compilation), "anneal", "temper", "descent";
      `dict(result.seconds)` reads it.
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
    unfinished: int = eqx.field(static=True, default=0)
    seconds: tuple[tuple[str, float], ...] = eqx.field(static=True, default=())

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
    top = jnp.maximum(config.anneal_top(ladder, ham.J0), ladder[slots])
    start = top if config.anneal_sweeps else ladder[slots]
    state = eqx.tree_at(lambda s: s.slots, init_state(ham, key, start), slots)
    zeros = jnp.zeros(m_count - 1, int)
    return _Carry(state, SwapStats(zeros, zeros))


def _stage_anneal(ham, carry, ladder, movable, start, count, config):
    """Annealing sweeps start..start+count-1 (of config.anneal_sweeps); count may be traced."""
    total = max(config.anneal_sweeps, 1)
    top, bottom = config.anneal_top(ladder, ham.J0), ladder[-1]
    target = ladder[carry.state.slots]

    def temps_at(i, st):
        return jnp.maximum(top * (bottom / top) ** ((start + i + 1) / total), target)

    b = _check_block(ham, config.block_size)
    state = _sweeps(ham, carry.state, count, temps_at, movable, b, config.refresh_every,
                    resolve_kernel(config.kernel))
    return _Carry(state, carry.swaps)


def _stage_temper(ham, carry, ladder, movable, count, config):
    state, chains = _ladder_state(carry.state, ladder, "MCConfig")
    state, swaps = _tempering(ham, state, carry.swaps, ladder, count, chains, config.swap_every,
                              movable, _check_block(ham, config.block_size), config.refresh_every,
                              resolve_kernel(config.kernel))
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
                         config.descent_candidates, config.descent_sweeps,
                         resolve_kernel(config.kernel))


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


# -- the driver: many realizations, devices, progress, Ctrl-C ----------------------------------------
#: `jax.random.fold_in` constant that derives a realization's Monte Carlo key from its key.
MC_STREAM = 0x4D43


def mc_key(key: PRNGKeyArray) -> PRNGKeyArray:
    """The Monte Carlo's own key for realization `key` (`run_mc`): fold_in(key, MC_STREAM),
    independent of the three subkeys that draw the Hamiltonian."""
    return jax.random.fold_in(key, MC_STREAM)


@functools.lru_cache(maxsize=64)
def _compiled(stage: str, config: MCConfig, mesh, vmap_size: int, build: tuple | None = None):
    """Jitted `stage` over a batch of realizations (leading axis), split over `mesh`.

    `build` = (sample, impl, pad_to, max_dense_bytes) for the "build" stage. Cached, so
    repeated runs with the same configuration compile once.
    """

    def body(batched, shared):
        def one(xs):
            x, shared = xs
            if stage == "build":
                sample, impl, pad_to, budget = build
                params, = shared
                key = jax.random.wrap_key_data(x, impl=impl)
                ham = hamiltonian(sample, params, key, pad_to=pad_to, max_dense_bytes=budget)
                ladder = config.ladder_for(ham.g, ham.J0).astype(ham.h.dtype)
                return ham, _stage_init(ham, mc_key(key), ladder, config)
            ham, carry = x[0], x[1]
            ladder, free, tol = shared[:3]
            movable = ham.mask & free  # this realization's impurities, not frozen
            if stage == "anneal":
                return _stage_anneal(ham, carry, ladder, movable, shared[3], shared[4], config)
            if stage == "temper":
                return _stage_temper(ham, carry, ladder, movable, shared[3], config)
            if stage == "descent_start":
                return _stage_descent_start(ham, carry, movable, tol)
            if stage == "descent":
                return _stage_descent(ham, x[2], movable, tol, shared[3], config)
            return _stage_finish(ham, carry, x[2], x[3], movable, tol, ladder, shared[3])

        # the shared arguments travel with every realization rather than being closed over:
        # inside `shard_map`, gathers from closed-over arrays fail on several devices
        count = jax.tree_util.tree_leaves(batched)[0].shape[0]
        shared = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (count, *jnp.shape(a))),
                                        shared)
        return sharded_map(one, (batched, shared), mesh, batch_size=vmap_size)

    return jax.jit(body)


class _Progress:
    """A tqdm bar over sweeps (or nothing)."""

    def __init__(self, enabled: bool, total: int, desc: str):
        self.bar = None
        if enabled and jax.process_index() == 0:
            from .._progress import progress_bar

            self.bar = progress_bar(total, desc=desc, unit="sweep", leave=True)

    def update(self, k: int, **postfix):
        if self.bar is not None:
            self.bar.update(k)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _run_batch(key_data, impl, sample, params, config, frozen, mesh, vmap_size, budget, chunk,
               bar):
    """The pipeline on one batch of realizations, in chunks; returns (MCResult on the host,
    interrupted, wall seconds per stage)."""
    run = functools.partial(_compiled, config=config, mesh=mesh, vmap_size=vmap_size)
    seconds = dict.fromkeys(("build", "anneal", "temper", "descent"), 0.0)
    t = time.perf_counter()
    hams, carry = jax.block_until_ready(run("build", build=(sample, impl, config.block_size, budget))(
        shard_leading(key_data, mesh), (params,)))
    seconds["build"] = time.perf_counter() - t
    # the first realization's fields and mask, without a copy of its stored K
    ham0 = jax.tree_util.tree_map(lambda a: a[0], hams.on_the_fly())
    ladder = config.ladder_for(params.g, params.J0).astype(ham0.h.dtype)
    movable_mask(ham0, frozen)  # validates the shape of `frozen`
    free = jnp.ones(ham0.size, bool) if frozen is None else ~jnp.asarray(frozen, bool)
    tol = jnp.asarray(default_tol(ham0) if config.tol is None else config.tol, ham0.h.dtype)
    shared = (ladder, free, tol)
    done = [0, 0]
    interrupted = False
    try:
        for stage, total in (("anneal", config.anneal_sweeps), ("temper", config.sweeps)):
            while done[stage == "temper"] < total:
                t = time.perf_counter()
                k = min(chunk, total - done[stage == "temper"])
                extra = (done[0], k) if stage == "anneal" else (k,)
                carry = jax.block_until_ready(
                    run(stage)((hams, carry), (*shared, *(jnp.asarray(e) for e in extra))))
                done[stage == "temper"] += k
                seconds[stage] += time.perf_counter() - t
                bar.update(k, stage=stage)
    except KeyboardInterrupt:
        interrupted = True
    t = time.perf_counter()
    d, before = run("descent_start")((hams, carry), shared)
    try:
        rounds, step = 0, 1
        while rounds < config.descent_rounds:
            rounds = min(rounds + step, config.descent_rounds)
            t_call = time.perf_counter()
            d = run("descent")((hams, carry, d), (*shared, jnp.asarray(rounds)))
            pending = int(np.sum(np.asarray(to_host(d.pending))))
            step = _next_descent_step(step, time.perf_counter() - t_call)
            bar.update(0, stage="descent", rounds=int(np.max(to_host(d.rounds))), pending=pending)
            if pending == 0:
                break
    except KeyboardInterrupt:
        interrupted = True
    result = to_host(run("finish")((hams, carry, d, before), (*shared, jnp.asarray(done))))
    seconds["descent"] = time.perf_counter() - t
    return result, interrupted, seconds


#: Rounds per compiled descent call start at 1, double while a call takes less than this
#: (s), up to `_DESCENT_STEP_MAX`, and halve when one takes over twice this. Ctrl-C (seen
#: between calls) then stops a large system's descent within about one round, a small
#: one's within 10 rounds. The spins do not depend on the steps (the loop state is carried).
_DESCENT_CALL_SECONDS = 2.0
_DESCENT_STEP_MAX = 10


def _next_descent_step(step: int, seconds: float) -> int:
    """Rounds for the next descent call, from the last call's `seconds` with `step`."""
    if seconds < _DESCENT_CALL_SECONDS:
        return min(2 * step, _DESCENT_STEP_MAX)
    return max(step // 2, 1) if seconds > 2 * _DESCENT_CALL_SECONDS else step


#: How realizations are batched on a device (`run_mc(vmap_size=...)`).
BATCHES = ("auto", "map", "vmap")

#: Share of an accelerator's memory that one vmapped batch of realizations may take.
_BATCH_MEMORY_SHARE = 0.25


def _realization_bytes(sample: Sample, config: MCConfig, max_dense_bytes: int) -> int:
    """Device memory of one realization in the pipeline: K if stored, plus ~16 (R, 2n)
    arrays (spins, fields, thresholds, the descent's copies)."""
    size = 2 * round_up(sample.capacity, config.block_size)
    item = jnp.dtype(jnp.result_type(float)).itemsize
    dense = size * size * item
    replicas = config.chains * (len(config.ladder) if config.ladder else config.temperatures)
    return (dense if dense <= max_dense_bytes else 0) + 16 * replicas * size * item


def batch_size(vmap_size: int | str, n_keys: int, mesh: Mesh, per_realization: int) -> int:
    """Realizations vmapped together per device for `run_mc(vmap_size=...)`: an int is
    used as given; "map" is 1 (one realization after another: best on CPUs, where `vmap`
    turns the sweep's `lax.cond` into both branches and its slices into gathers); "vmap"
    is every realization of the device's share in one program (realizations x chains x
    rungs batched: what an accelerator needs), at most as many as fit a quarter of the
    device's memory; "auto" is "map" on CPUs and "vmap" elsewhere."""
    if isinstance(vmap_size, str):
        if vmap_size not in BATCHES:
            raise ValueError(f"`run_mc(vmap_size=...)` must be an int >= 1 or one of "
                             f"{', '.join(BATCHES)}; got {vmap_size!r}")
        device = mesh.devices.flat[0]
        if vmap_size == "auto":
            vmap_size = "map" if device.platform == "cpu" else "vmap"
        if vmap_size == "map":
            return 1
        share = -(-n_keys // mesh_size(mesh))
        stats = device.memory_stats() or {}
        limit = stats.get("bytes_limit", 4 << 30) * _BATCH_MEMORY_SHARE
        return max(1, min(share, int(limit // max(per_realization, 1))))
    return check_int("run_mc", "vmap_size", vmap_size, 1)


def run_mc(
    sample: Sample,
    params: HamiltonianParams | ModelParams,
    keys: PRNGKeyArray,
    config: MCConfig | None = None,
    *,
    frozen: Bool[Array, " 2n"] | None = None,
    devices: int | Sequence[jax.Device] | Mesh | None = None,
    vmap_size: int | str = "auto",
    max_dense_bytes: int = DEFAULT_DENSE_BYTES,
    chunk: int = 50,
    progress: bool = False,
) -> MCResult:
    """Anneal, temper and descend the full Hamiltonian of many realizations.

    Realization v is `hamiltonian(sample, params, keys[v], pad_to=config.block_size)` (so
    its positions and J^Stau are those of `simulate(sample, ..., keys[v])`), and its Monte
    Carlo uses `mc_key(keys[v])`. Realizations are processed in batches of
    `vmap_size` x (number of devices), each device taking its share (`jax.lax.map` one
    realization after another, or `jax.vmap` of `vmap_size` realizations in one program:
    realizations x chains x rungs). Results do not depend on the number of devices; with
    the same `vmap_size`, not on the backend's choice of kernel (`MCConfig.kernel`).

    **Arguments:**

    - `sample`, `params`: the `Sample` and `HamiltonianParams` (or `ModelParams`).
    - `keys`: (V,) PRNG keys, one per realization.
    - `config`: an `MCConfig` (None: the defaults).
    - `frozen`: (2n,) bool spins held fixed at their random initial values (n the padded
      capacity: `sample.capacity` rounded up to a multiple of `config.block_size`).
    - `devices`: as in `disorder_average` (None: every device).
    - `vmap_size`: realizations vmapped together per device: an int >= 1, "map" (1),
      "vmap" (the device's whole share, at most what fits a quarter of its memory) or
      "auto" (default: "map" on CPUs, where it is fastest, "vmap" on accelerators).
    - `max_dense_bytes`: per-realization budget for storing K (else rows are generated).
      A batch holds `vmap_size` x devices realizations at once.
    - `chunk`: sweeps per compiled call (progress granularity, >= 1).
    - `progress`: show a tqdm bar over sweeps.

    A `KeyboardInterrupt` during the sweeps ends them and goes on to the descent of the
    state reached; during the descent it keeps the state reached; either way the
    realizations of the current batch are returned (with `interrupted=True`) and later
    batches are skipped.

    **Returns:** an `MCResult` whose fields have a leading realization axis (NumPy).
    """
    check_type("run_mc", "sample", sample, Sample)
    check_type("run_mc", "params", params, (HamiltonianParams, ModelParams))
    check_type("run_mc", "config", config, (MCConfig, type(None)), "MCConfig or None")
    check_type("run_mc", "keys", keys, jax.Array,
               "JAX array of PRNG keys (e.g. jax.random.split(jax.random.key(0), 4))")
    config = MCConfig() if config is None else config
    if isinstance(params, ModelParams):
        params = HamiltonianParams.from_model(params)
    if not jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
        keys = jax.random.wrap_key_data(keys)
    n_keys = keys.shape[0] if keys.ndim else 0
    check_int("run_mc", "number of keys", n_keys, 1)
    chunk = check_int("run_mc", "chunk", chunk, 1)
    check_int("run_mc", "max_dense_bytes", max_dense_bytes, 0)
    config.ladder_for(params.g, params.J0)  # validates the ladder ends before any work
    mesh = device_mesh(devices)
    vmap_size = batch_size(vmap_size, n_keys, mesh,
                           _realization_bytes(sample, config, max_dense_bytes))
    unit = vmap_size * mesh_size(mesh)
    impl = jax.random.key_impl(keys)
    key_data = np.asarray(jax.random.key_data(keys))
    bar = _Progress(progress, round_up(n_keys, unit) // unit * (config.anneal_sweeps + config.sweeps),
                    "Monte Carlo")
    results, interrupted, seconds, keep = [], False, {}, 0
    try:
        for lo in range(0, n_keys, unit):
            chunk_keys = key_data[lo:lo + unit]
            if chunk_keys.shape[0] < unit:  # pad the last batch (same compiled shapes)
                chunk_keys = np.concatenate(
                    [chunk_keys, np.repeat(chunk_keys[-1:], unit - chunk_keys.shape[0], 0)])
            res, interrupted, secs = _run_batch(chunk_keys, impl, sample, params, config, frozen,
                                                mesh, vmap_size, max_dense_bytes, chunk, bar)
            seconds = {k: seconds.get(k, 0.0) + v for k, v in secs.items()}
            keep = min(unit, n_keys - lo)
            results.append(jax.tree_util.tree_map(lambda a, keep=keep: a[:keep], res))
            if interrupted:
                break
    finally:
        bar.close()
    out = jax.tree_util.tree_map(lambda *a: np.concatenate(a), *results)
    return dataclasses.replace(out, ladder=np.asarray(out.ladder[0]), tol=np.asarray(out.tol[0]),
                               interrupted=interrupted, unfinished=keep if interrupted else 0,
                               seconds=tuple(seconds.items()))
