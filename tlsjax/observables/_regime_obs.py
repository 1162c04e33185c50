"""T_U and C_o of one realization of any regime, from its hard-Theta ES reduction.

Per impurity, with rho_tau(E) the density of the tau energies |E_tau| (1/K; Gaussian
kernel of bandwidth 0.1 <E_tau> reflected at 0, as `StauDOS`), rho_S(E) =
P_S(E) phi_S(E / J_S) / J_S the S DOS (mean-field Gaussian of width J_S times the ES
reduction, docs/conventions.md section 4) and J_SS the S-S coupling scale at R_o
(gamma_S^2 / (rho c^2 R_o^3)), the tunneling strength seen by phonons at energy E is

    C(E) = kappa_log J_SS [ g^2 rho_tau(E) + rho_S(E) ]          (Sec. II B, Eq. 3)

(for the concentrated crystal, rho_tau = phi_tau / (g J_o), J_S = J_SS = J_o, this is
docs/conventions.md's kappa_log [g phi_tau + P_S phi_S]). Hence:

- C_o = kappa_log g^2 J_SS rho_tau(0) (Eq. 3; kappa_log g phi_tau(0) for the crystal).
- T_U (full criterion, gamma_tau^2 n_tau = gamma_S^2 n_S): the least E with
  P_S(E) >= g^2 J_S rho_tau(E) / phi_S(E / J_S). With the hard Theta P_S is the
  empirical distribution of E_min, so T_U is the k-th smallest E_min for the least k
  with k / N >= that target at E_min(k) (for a constant target this is
  `HardTheta.crossover`). When the target is met already at E <= 0 (the S spins with no
  unstable tau partner outnumber it) there is no crossover at any E > 0: T_U = 0.
- T_U (shortcut, Fig. 2 caption): P_S(T_U) = 5 g, `HardTheta.crossover`; and with a fixed
  target P_S(T_U) = 0.1, which does not shrink with g.

Every energy here is a local field |lambda| (the ES convention, `E_tau = |lambda|`); a
single flip costs twice as much (`tlsjax._convention`).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jaxtyping import Array, Float

from .._validate import check_range
from ..model._regime_params import RegimeES
from ..model._theta import HardTheta
from ._dos import DEFAULT_DOS_BANDWIDTH, log_phi_s

#: The fixed crossover target P_S(T_U) = FIXED_TARGET (`T_U_fixed_target_K`): unlike
#: 5 g(x), it does not shrink with g, so it isolates the gap's own scaling.
FIXED_TARGET = 0.1
#: rho_tau is tabulated on this many points from 0 to `_GRID_TOP` <E_tau> and interpolated.
_GRID_POINTS = 301
_GRID_TOP = 6.0


def _tau_density(r: RegimeES, bandwidth) -> tuple[Float[Array, " m"], Float[Array, " m"]]:
    """(grid, rho_tau on it): energies in units of <E_tau>, rho_tau in 1/K.

    The kernel density of `StauDOS.phi_tau` (Gaussian, bandwidth in units of <E_tau>,
    reflected at 0, per impurity), evaluated on one fixed grid as a dense (grid x N) sum:
    `StauDOS` maps over energies in checkpointed chunks (for gradients at any energies),
    which takes ~15 times longer to compile, and every sample size is compiled anew.
    """
    es = r.es
    grid = jnp.linspace(0.0, _GRID_TOP, _GRID_POINTS, dtype=es.e_tau.dtype)
    pts = jnp.where(es.mask, es.e_tau, jnp.inf)[None, :]
    g = grid[:, None]
    kernel = jnp.exp(-0.5 * ((g - pts) / bandwidth) ** 2) + jnp.exp(-0.5 * ((g + pts) / bandwidth) ** 2)
    n = es.n_sites.astype(grid.dtype)
    density = jnp.sum(kernel, axis=1) / (n * bandwidth * math.sqrt(2.0 * math.pi))  # per <E_tau>
    return grid, density / (es.e_tau_mean * r.unit_K)


def _full_crossover(r: RegimeES, e_sorted, grid, rho, j_s, depletion=1.0):
    """(T_U / <E_tau>, resolution) of the full criterion g^2 rho_tau(E) = rho_S(E) with
    rho_S = depletion P_S phi_S(E / J_S) / J_S (S width `j_s`, K); T_U = 0 if the target
    is met at E <= 0, NaN if never (see the module docstring)."""
    es = r.es
    n = es.n_sites.astype(es.e_tau.dtype)
    e_k = es.e_tau_mean * r.unit_K
    finite = jnp.isfinite(e_sorted)
    e_pos = jnp.where(finite, jnp.maximum(e_sorted, 0.0), 0.0)
    rho_at = jnp.interp(e_pos, grid, rho, right=0.0)
    log_target = (2.0 * jnp.log(r.g) + jnp.log(j_s) + jnp.log(rho_at)
                  - log_phi_s(e_pos * e_k / j_s) - jnp.log(depletion))
    frac = jnp.arange(1, e_sorted.shape[0] + 1, dtype=e_sorted.dtype) / n
    ok = finite & (jnp.log(frac) >= log_target)
    k_star = jnp.argmax(ok)
    t_u = jnp.where(jnp.any(ok), jnp.maximum(e_sorted[k_star], 0.0), jnp.nan)
    return t_u, n * jnp.exp(log_target[k_star])


def regime_observables(r: RegimeES, kappa_log=0.1, *, probe_K=None, tau_probe_K=None,
                       n_s_depletion=None, bandwidth=DEFAULT_DOS_BANDWIDTH) -> dict[str, Float[Array, "*m"]]:
    """T_U (both criteria), C_o and related numbers of one realization, in kelvin.

    **Arguments:**

    - `r`: a `RegimeES` (hard-Theta ES result, `top_k` >= 1).
    - `kappa_log`: 1 / ln(Delta_o^u / Delta_o^l), in (0, 1] (Eq. 3).
    - `probe_K`: an energy (K, > 0) at which C(E) is also reported, split into its tau and
      S parts (`C_tau_probe`, `C_S_probe`); None to skip.
    - `tau_probe_K`: energies (K, array) at which the tau reduction P_tau(E) (fraction of
      tau spins with `r.tau_e_min` below E, App. B 1) is reported as `P_tau`; needs
      `r.tau_e_min`.
    - `n_s_depletion`: n_S(E-bar) / n_S^o(E-bar), the S-S correlations' depletion of the
      S DOS where P_S = 1 (from the Monte Carlo, `tlsjax mc`), in (0, 1]; adds
      `T_U_correlated_K`, the full criterion with rho_S = depletion P_S phi_S / J_S. None
      to skip.
    - `bandwidth`: kernel bandwidth of rho_tau in units of <E_tau> (> 0).

    **Returns:** a dict of scalars:

    - `T_U_K` (full criterion; 0 if there is no crossover at E > 0), `T_U_over_E_tau`;
    - `T_U_shortcut_K` (P_S = 5 g; also 0 if met at E <= 0), `T_U_fixed_target_K`
      (P_S = `FIXED_TARGET`);
    - where `r.J_S_nominal_K` is set: `T_U_nominal_JS_K` (the full criterion with the
      nominal S width) and `J_S_over_nominal`;
    - `E_tau_K` (<E_tau>), `C_o`;
    - `P_S_zero`: fraction of S spins with E_min <= 0 (no unstable tau partner at any E > 0);
    - `crossover`: 1 if T_U_K > 0 else 0;
    - `resolution`: N times the target P_S at T_U, the number of S spins expected below
      T_U (below ~2, T_U rests on the sample's extreme E_min);
    - with `probe_K`: `C_tau_probe`, `C_S_probe`, the two parts of C(E) there;
    - with `tau_probe_K`: `P_tau` at those energies.
    """
    kappa_log = check_range("regime_observables", "kappa_log", kappa_log, 0.0, 1.0,
                            lo_open=True)
    es = r.es
    n = es.n_sites.astype(es.e_tau.dtype)
    e_sorted = jnp.sort(jnp.where(es.mask, es.e_min, jnp.inf))  # units <E_tau>
    grid, rho = _tau_density(r, bandwidth)
    e_k = es.e_tau_mean * r.unit_K  # K per unit <E_tau>
    t_u, resolution = _full_crossover(r, e_sorted, grid, rho, r.J_S_K)
    out = dict(
        T_U_K=t_u * e_k,
        T_U_over_E_tau=t_u,
        T_U_shortcut_K=jnp.maximum(HardTheta().crossover(es, r.g), 0.0) * e_k,
        T_U_fixed_target_K=HardTheta().crossover(es, FIXED_TARGET / 5.0) * e_k,
        E_tau_K=e_k,
        C_o=kappa_log * r.g**2 * r.J_SS_K * rho[0],
        P_S_zero=jnp.sum(es.mask & (es.e_min <= 0.0)) / n,
        crossover=(t_u > 0).astype(e_sorted.dtype),
        resolution=resolution,
    )
    if r.J_S_nominal_K is not None:
        out["T_U_nominal_JS_K"] = _full_crossover(r, e_sorted, grid, rho,
                                                  r.J_S_nominal_K)[0] * e_k
        out["J_S_over_nominal"] = r.J_S_K / r.J_S_nominal_K
    if n_s_depletion is not None:
        d = check_range("regime_observables", "n_s_depletion", n_s_depletion, 0.0, 1.0,
                        lo_open=True)
        out["T_U_correlated_K"] = _full_crossover(r, e_sorted, grid, rho, r.J_S_K, d)[0] * e_k
    if probe_K is not None:
        probe = check_range("regime_observables", "probe_K", probe_K, 0.0, lo_open=True)
        e_probe = probe / e_k  # units <E_tau>
        p_s = jnp.sum(es.mask & (es.e_min < e_probe)) / n
        rho_probe = jnp.interp(e_probe, grid, rho, right=0.0)
        out["C_tau_probe"] = kappa_log * r.g**2 * r.J_SS_K * rho_probe
        out["C_S_probe"] = (kappa_log * r.J_SS_K / r.J_S_K * p_s
                            * jnp.exp(log_phi_s(probe / r.J_S_K)))
    if tau_probe_K is not None:
        if r.tau_e_min is None:
            raise ValueError("`regime_observables(tau_probe_K=...)` needs a RegimeES with "
                             "tau_e_min (DipolarDefects.simulate(tau_pairs=True))")
        e_tau_probe = jnp.atleast_1d(jnp.asarray(tau_probe_K))[:, None] / e_k
        below = es.mask[None, :] & (r.tau_e_min[None, :] < e_tau_probe)
        out["P_tau"] = jnp.sum(below, axis=-1) / n
    return out
