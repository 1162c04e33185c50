"""Single-flip excitation energies by species (docs/conventions.md section 6): of Monte Carlo states,
and the mean-field reference.

The single-flip energy of spin k in state s is eps_k = -2 s_k lambda_k (K), lambda = dH/ds;
n_S(E), n_tau(E) are the distributions of eps over the S and the tau spins, per impurity.
The mean-field DOS n^o is the distribution of 2 |lambda_k| in configurations drawn at
random (no correlations; each spin would align with its field). These are the raw numbers;
densities, ratios and their disorder averages are built from them by the studies.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from .._validate import check_int
from ..model._hamiltonian import Hamiltonian
from ..model._mc_run import MCResult


class SpeciesEnergies(NamedTuple):
    """Energies (K) per species in the layout of `Hamiltonian`: `S[..., i]` of S_i,
    `tau[..., i]` of tau_i; `mask[..., i]` True for real impurities (entries of padded
    sites are 0)."""

    S: Float[Array, "... n"]
    tau: Float[Array, "... n"]
    mask: Bool[Array, "... n"]


def _split(eps, mask) -> SpeciesEnergies:
    n = eps.shape[-1] // 2
    eps = jnp.where(jnp.concatenate([mask, mask], axis=-1), eps, 0.0)
    return SpeciesEnergies(eps[..., :n], eps[..., n:], mask)


def single_flip_energies(result: MCResult, which: str = "best") -> SpeciesEnergies:
    """eps_k = -2 s_k lambda_k (K) of the final Monte Carlo states, by species.

    **Arguments:**

    - `result`: an `MCResult` (of `minimize`, or of `run_mc` with its leading
      realization axis V).
    - `which`: "best" (the lowest-energy state of each realization: arrays (V, n)) or
      "all" (every replica: (V, R, n)).

    **Returns:** `SpeciesEnergies` (all >= -tol in a single-flip-stable state).
    """
    n2 = result.spins.shape[-1]
    n_sites = jnp.asarray(result.n_sites)
    # real impurities are the first n_sites of each species (`Sample.draw`)
    real = jnp.arange(n2 // 2).reshape((1,) * n_sites.ndim + (n2 // 2,)) < n_sites[..., None]
    if which == "best":
        spins, fields = result.ground_spins, result.ground_fields
        mask = real
    elif which == "all":
        spins, fields = jnp.asarray(result.spins), jnp.asarray(result.fields)
        mask = jnp.broadcast_to(real[..., None, :], spins.shape[:-1] + (n2 // 2,))
    else:
        raise ValueError(f"`single_flip_energies(which=...)` must be 'best' or 'all'; got {which!r}")
    return _split(-2.0 * spins * fields, mask)


def mean_field_energies(ham: Hamiltonian, key: PRNGKeyArray, configs: int = 4
                        ) -> Float[Array, "configs 2n"]:
    """2 |lambda_k| (K) in `configs` spin configurations drawn uniformly at random: the
    mean-field excitation energies whose distributions are n_S^o, n_tau^o (docs/conventions.md
    section 6). Zero on padded sites."""
    configs = check_int("mean_field_energies", "configs", configs, 1)
    spins = jnp.where(jax.random.bernoulli(key, 0.5, (configs, ham.size)), 1.0, -1.0)
    lam = ham.local_fields(spins.astype(ham.h.dtype))
    return jnp.where(ham.mask[None, :], 2.0 * jnp.abs(lam), 0.0)


def mean_field_flip_energies(ham: Hamiltonian, key: PRNGKeyArray, configurations: int = 16
                             ) -> SpeciesEnergies:
    """2 |lambda_k| (K) in `configurations` random spin configurations: the samples of the
    mean-field DOS n^o (docs/conventions.md section 6). Pure and jit-able.

    **Arguments:**

    - `ham`: the `Hamiltonian` of one realization.
    - `key`: PRNG key of the configurations (independent +-1 spins).
    - `configurations`: how many (>= 1, static).

    **Returns:** `SpeciesEnergies` with arrays (configurations, n).
    """
    m = check_int("mean_field_flip_energies", "configurations", configurations, 1)
    mask = jnp.broadcast_to(ham.realization.mask, (m, ham.n))
    return _split(mean_field_energies(ham, key, m), mask)
