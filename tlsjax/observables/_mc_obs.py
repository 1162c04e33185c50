"""What a Monte Carlo state of the full Hamiltonian (Eq. 1) says about the paper's claims
(Fig. 2 a, App. B; docs/conventions.md section 6), per realization and jit-able.

- Single-flip energies eps_k = -2 s_k lambda_k of a state: their distributions over the
  S spins and over the tau spins are n_S(E) and n_tau(E) (per impurity).
- Mean-field energies: 2 |lambda_k| in configurations drawn at random (no correlations,
  each spin taken as aligned with its field): n_S^o(E), n_tau^o(E) of Sec. II A.
- The ES estimator on a state: S_i is pair-stable against tau_j iff
  eps_i >= -eps_j - 4 K[S_i, tau_j] S_i tau_j, so the least single-flip energy at which
  S_i is stable against every tau spin, given the state's tau energies and
  configuration, is E_min_i = max_{j != i} (-eps_{tau_j} - 4 K[S_i, tau_j] S_i tau_j).
  With J^SS = J^tautau = 0, S_i = +1 and the tau spins aligned with their fields this is
  exactly 2 (2 U_ij - E_tau_j) of the ES reduction (App. B 2): the factor 2 is the
  energy convention (a flip costs 2 |lambda|; the ES reduction counts |lambda|), so the
  two are compared in units of the mean tau energy of each convention.
- `measure_state` bundles these with the ES reduction of the same realization (same
  key, same tau fields), in one jit-able function.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._validate import check_type
from ..model._couplings import draw_couplings
from ..model._es import default_block_size, es_reduction, tau_field_sums
from ..model._hamiltonian import DEFAULT_DENSE_BYTES, Hamiltonian, HamiltonianParams, hamiltonian
from ..model._lattice import Sample
from ..model._theta import HardTheta
from ._flip import mean_field_energies

#: `jax.random.fold_in` constant deriving the mean-field configurations' key from a
#: realization's key (independent of the Hamiltonian's and the Monte Carlo's streams).
MF_STREAM = 0x4D46


def _state_vector(name: str, value, size: int) -> Array:
    """`value` as the (2n,) array of `es_estimator`, else an error naming `name`."""
    if value is None or isinstance(value, (str, bytes, dict)):
        raise TypeError(f"`es_estimator({name}=...)` must be a ({size},) array; got "
                        f"{type(value).__name__}")
    arr = jnp.asarray(value)
    if arr.shape != (size,):
        raise ValueError(f"`es_estimator({name}=...)` must have shape ({size},) (the 2n "
                         f"spins of the Hamiltonian); got {arr.shape}")
    return arr


def es_estimator(ham: Hamiltonian, spins: Float[Array, " 2n"],
                 fields: Float[Array, " 2n"] | None = None) -> Float[Array, " n"]:
    """E_min_i = max_{j != i} (-eps_{tau_j} - 4 K[S_i, tau_j] S_i tau_j) for every S spin
    of the state `spins` (module docstring; docs/conventions.md section 6), in K.

    One blocked O(N^2) pass over the S rows of K (stored or generated). Only real tau
    spins j != i enter; rows of padded sites are -inf. A pair-stable state has
    eps_{S_i} >= E_min_i (within the descent's tolerance).

    **Arguments:**

    - `ham`: the `Hamiltonian`.
    - `spins`: (2n,) +-1, the layout of `Hamiltonian`.
    - `fields`: their local fields (K) if known, else computed.

    **Returns:** (n,) E_min_i in K (flip-energy convention).
    """
    check_type("es_estimator", "ham", ham, Hamiltonian, "Hamiltonian (from hamiltonian())")
    spins = _state_vector("spins", spins, ham.size)
    fields = None if fields is None else _state_vector("fields", fields, ham.size)
    eps = ham.flip_energies(spins, fields)
    n = ham.n
    real = ham.realization.mask
    eps_tau, tau, cols = eps[n:], spins[n:], jnp.arange(n)

    def fn(idx, rows):
        a = -eps_tau[None, :] - 4.0 * rows[:, n:] * spins[idx][:, None] * tau[None, :]
        ok = real[None, :] & (idx[:, None] != cols[None, :])
        return jnp.max(jnp.where(ok, a, -jnp.inf), axis=1)

    return jnp.where(real, ham.map_row_blocks(fn, species=(0,)), -jnp.inf)


class StateMeasurement(eqx.Module):
    """`measure_state` of one realization (energies in K unless said otherwise).

    - `eps`: (2n,) single-flip energies of the state (0 on padded sites).
    - `e_min`: (n,) the ES estimator on the state (`es_estimator`; -inf on padded rows).
    - `mean_field`: (C, 2n) mean-field energies 2 |lambda| of C random configurations.
    - `mask`: (n,) real impurities; `n_sites`: their number.
    - `energy`: H of the state.
    - `es_e_min`: (n0,) the ES reduction's E_min, units of its <E_tau> (-inf on padding).
    - `es_mask`: (n0,) its real impurities (the same ones, unpadded capacity n0).
    - `es_e_tau_mean`: its <E_tau> in K (local-field convention).
    - `es_t_u`: its T_U / <E_tau> (hard Theta, P_S(T_U) = 5 g).
    - `h_rel`: the ES field width h^tau / <E_tau>_0 that gives the Hamiltonian's h^tau.
    """

    eps: Float[Array, " 2n"]
    e_min: Float[Array, " n"]
    mean_field: Float[Array, "C 2n"]
    mask: Bool[Array, " n"]
    n_sites: Int[Array, ""]
    energy: Float[Array, ""]
    es_e_min: Float[Array, " n0"]
    es_mask: Bool[Array, " n0"]
    es_e_tau_mean: Float[Array, ""]
    es_t_u: Float[Array, ""]
    h_rel: Float[Array, ""]


def measure_state(sample: Sample, params: HamiltonianParams, key: PRNGKeyArray,
                  spins: Float[Array, " 2n"], *, pad_to: int, mf_configs: int = 4,
                  max_dense_bytes: int = DEFAULT_DENSE_BYTES) -> StateMeasurement:
    """Measure the state `spins` of the realization drawn from `key`, and run the ES
    reduction (App. B 2) of the same realization for comparison.

    The Hamiltonian is rebuilt from `key` (`hamiltonian(sample, params, key, pad_to)`,
    as `run_mc` builds it: pass its `config.block_size`), the local fields recomputed
    from scratch. The ES reduction uses the same positions and U_ij and the same
    h^tau_j: its h_rel is h_tau / <E_tau>_0 (both in units of g J_o); the shortcut has
    no J^SS, J^tautau or h^S. Pure and jit-able (`pad_to`, `mf_configs`,
    `max_dense_bytes` static).

    **Arguments:**

    - `sample`, `params`, `key`: as for `hamiltonian` / `run_mc`.
    - `spins`: (2n,) the state (e.g. `MCResult.ground_spins[v]`).
    - `pad_to`: the capacity multiple the Monte Carlo used (`MCConfig.block_size`).
    - `mf_configs`: random configurations for the mean-field DOS (>= 1); their key is
      `fold_in(key, MF_STREAM)`.
    - `max_dense_bytes`: as in `hamiltonian` (K stored while it fits; 0: rows generated,
      O(N) memory).

    **Returns:** a `StateMeasurement`.
    """
    ham = hamiltonian(sample, params, key, pad_to=pad_to, max_dense_bytes=max_dense_bytes)
    spins = jnp.asarray(spins, ham.h.dtype)
    if spins.shape != (ham.size,):
        raise ValueError(f"`measure_state(spins=...)` must have shape ({ham.size},) (pad_to="
                         f"{pad_to}); got {spins.shape}")
    fields = ham.local_fields(spins)
    mf = mean_field_energies(ham, jax.random.fold_in(key, MF_STREAM), mf_configs)
    draw = draw_couplings(sample, params.atilde, key)
    couplings, real = draw.couplings, draw.couplings.realization
    block = default_block_size(couplings.n)
    sums = tau_field_sums(couplings, block)  # <E_tau>_0, as `es_reduction` computes it
    e_tau0 = jnp.sum(jnp.where(real.mask, jnp.abs(sums), 0.0)) / real.n_sites
    h_rel = params.h_tau / e_tau0
    es = es_reduction(couplings, draw.h_normals, h_rel, block_size=block)
    return StateMeasurement(
        eps=ham.flip_energies(spins, fields), e_min=es_estimator(ham, spins, fields),
        mean_field=mf, mask=ham.realization.mask, n_sites=ham.n_sites,
        energy=ham.energy(spins, fields), es_e_min=es.e_min, es_mask=es.mask,
        es_e_tau_mean=es.e_tau_mean * params.g * params.J0,
        es_t_u=HardTheta().crossover(es, params.g), h_rel=h_rel)
