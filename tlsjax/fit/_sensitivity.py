"""Sensitivity of the model's outputs to its parameters: Jacobians and elasticities.

Parameters p = (g, J_o, a~, h_rel, w), w the soft-Theta width in units of <E_tau>.
Outputs y (all positive, so their logarithms are differentiated):

- `T_U[K]`: the crossover P_S(T_U) = 5 g (soft Theta), in kelvin,
  T_U = (T_U / <E_tau>) <E_tau>, <E_tau> in units of g J_o times g J_o;
- `T_U/<E_tau>`: the same in units of the realization's <E_tau>;
- `C_o`: kappa_log g (Eq. 3);
- `P_S(E=...)`: the soft-Theta reduction factor on a grid of energies in units of
  <E_tau> (hence independent of g and J_o);
- `kappa(T=...)` (optional, with a `Material` and temperatures): the thermal
  conductivity of `thermal_conductivity` with the S-tau C(E) of `StauTLS` built from
  the same realizations (soft-Theta width w, default phi_tau bandwidth).

The soft Theta is a regularization: every output that depends on it is also reported
with the hard Theta (the paper's step function) on the same realizations
(`SensitivityResult.hard_values`), and the default w is small enough that T_U lies
within 3% of the hard value (experiments/soft_width_bias.py).

Several realizations enter through their mean (T_U and P_S averaged over keys before
the logarithm); the keys are fixed (common random numbers), so the Jacobian is that of
a smooth function of p, apart from the kinks where the sign of an E_tau or the set of
kept partners changes (measure zero; finite differences with small steps see none).

The Jacobian of ln y with respect to p is computed by `jax.jacfwd` when there are at
least as many outputs as parameters (5 tangents pushed forward at once), else by
`jax.jacrev`. Elasticities are d ln y / d ln p = p d ln y / d p; where a parameter is
0 (e.g. h_rel = 0) the elasticity is undefined and reported as NaN, and the
semi-elasticity d ln y / d p is what the Jacobian table holds.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validate import check_grid, check_int, check_range, seed_key
from ..model._es import DEFAULT_TOP_K, MAX_SOFT_WIDTH, SOFT_WIDTH_REASON, simulate
from ..model._lattice import Sample, check_sample_size
from ..model._params import DEFAULT_ATILDE, DEFAULT_G, DEFAULT_J0_K, DEFAULT_KAPPA_LOG, ModelParams
from ..model._theta import HardTheta, SoftTheta
from ..observables._dos import StauDOS, StauTLS
from ..observables._material import Material
from ..observables._stm import T_MAX_K, T_MIN_K, thermal_conductivity

#: The differentiated parameters, in order.
PARAM_NAMES = ("g", "J0", "atilde", "h_rel", "w")
#: Default h_rel of a sensitivity study: the paper's middle case 0.3 (not 0, where the
#: elasticity with respect to h_rel is undefined).
DEFAULT_SENS_H_REL = 0.3
#: Default soft-Theta width w, in units of <E_tau>: the largest width tried whose T_U
#: lies within 3% of the hard-Theta value (the paper's algorithm) on this default sample,
#: the StauDOS crossovers behind kappa(T) and the paper's sample (measured by
#: experiments/soft_width_bias.py: 1.004 x hard here, 8 realizations; w = 0.01 gives
#: 1.012, and 1.037 for the full criterion; w = 0.05, the old default, 1.40).
DEFAULT_SENS_WIDTH = 0.005


def default_sensitivity_energies() -> np.ndarray:
    """Energies (units of <E_tau>) of the default P_S grid: 0.1 to 1, 6 log-spaced."""
    return np.logspace(-1.0, 0.0, 6)


def default_params() -> np.ndarray:
    """The default point (g, J_o [K], a~, h_rel, w)."""
    return np.array([DEFAULT_G, DEFAULT_J0_K, DEFAULT_ATILDE, DEFAULT_SENS_H_REL,
                     DEFAULT_SENS_WIDTH])


def output_names(energies, temperatures=None) -> list[str]:
    """Names of the outputs, in the order of `log_outputs`."""
    names = ["T_U[K]", "T_U/<E_tau>", "C_o"] + [f"P_S(E={float(e):.3g})"
                                               for e in np.asarray(energies)]
    if temperatures is not None:
        names += [f"kappa(T={float(t):.3g}K)" for t in np.asarray(temperatures)]
    return names


def log_outputs(
    p: Float[Array, " 5"],
    sample: Sample,
    keys: PRNGKeyArray,
    energies: Float[Array, " m"],
    *,
    kappa_log: float = DEFAULT_KAPPA_LOG,
    top_k: int = DEFAULT_TOP_K,
    block_size: int | None = None,
    material: Material | None = None,
    temperatures: Float[Array, " t"] | None = None,
) -> Float[Array, " 3+m(+t)"]:
    """ln y for the outputs listed in the module docstring, as a function of p.

    **Arguments:**

    - `p`: (g, J_o [K], a~, h_rel, w), a 5-vector (may be traced).
    - `sample`: the `Sample`.
    - `keys`: (R,) PRNG keys, one realization each (averaged).
    - `energies`: (m,) energies in units of <E_tau> for P_S.
    - `kappa_log`: for C_o = kappa_log g.
    - `top_k`, `block_size`: as in `simulate`.
    - `material`, `temperatures`: if both given, ln kappa(T) at those temperatures (K)
      is appended.

    **Returns:** the vector of logarithms, ordered as `output_names(energies, temperatures)`.
    """
    g, j0, atilde, h_rel, w = (p[i] for i in range(5))
    params = ModelParams(g=g, J0=j0, atilde=atilde, h_rel=h_rel, kappa_log=kappa_log)
    theta = SoftTheta(w)

    es_all = jax.vmap(lambda k: simulate(sample, params, k, top_k=top_k,
                                         block_size=block_size, soft_width=w))(keys)

    def one(es):
        tu = theta.crossover(es, g)
        return tu * es.e_tau_mean, tu, theta.log_p_s(es, energies)

    tu_gj0, tu_over, log_ps = jax.vmap(one)(es_all)
    r = keys.shape[0]
    log_tu_k = jnp.log(jnp.mean(tu_gj0)) + jnp.log(g) + jnp.log(j0)
    log_mean_ps = jax.nn.logsumexp(log_ps, axis=0) - jnp.log(r)
    parts = [jnp.stack([log_tu_k, jnp.log(jnp.mean(tu_over)), jnp.log(kappa_log * g)]),
             log_mean_ps]
    if material is not None and temperatures is not None:
        tls = StauTLS(StauDOS(es_all, width=w), params)
        parts.append(jnp.log(thermal_conductivity(tls, material, temperatures)))
    return jnp.concatenate(parts)


#: `log_outputs` and its Jacobians, compiled once per sample, settings and shapes: the
#: keys, energies, material and temperatures are arguments of the programs, not constants,
#: so repeated calls with the same shapes (another point, other keys) reuse them.
_LOG_OUTPUTS = {"value": eqx.filter_jit(log_outputs),
                "forward": eqx.filter_jit(jax.jacfwd(log_outputs)),
                "reverse": eqx.filter_jit(jax.jacrev(log_outputs))}


def hard_outputs(
    p: np.ndarray,
    sample: Sample,
    keys: PRNGKeyArray,
    energies: Float[Array, " m"],
    *,
    kappa_log: float = DEFAULT_KAPPA_LOG,
    block_size: int | None = None,
    material: Material | None = None,
    temperatures: Float[Array, " t"] | None = None,
) -> np.ndarray:
    """The outputs of `log_outputs` (not their logs) with the hard Theta, the paper's step
    function, on the same realizations; w does not enter (C_o has no Theta at all).

    **Returns:** a NumPy vector ordered as `output_names(energies, temperatures)`.
    """
    point = jnp.asarray(np.asarray(p[:4], dtype=float))
    return np.asarray(_hard_run(point, sample, keys, energies, kappa_log, block_size, material,
                                temperatures), dtype=float)


@eqx.filter_jit
def _hard_run(point, sample, keys, energies, kappa_log, block_size, material, temperatures):
    """`hard_outputs` at `point` = (g, J_o, a~, h_rel), compiled once per sample, settings
    and shapes (the point is an argument: another point reuses the program)."""
    g, j0, atilde, h_rel = (point[i] for i in range(4))
    params = ModelParams(g=g, J0=j0, atilde=atilde, h_rel=h_rel, kappa_log=kappa_log)
    theta = HardTheta()
    es_all = jax.vmap(lambda k: simulate(sample, params, k, block_size=block_size))(keys)
    tu, ps = jax.vmap(lambda es: (theta.crossover(es, g), theta.p_s(es, energies)))(es_all)
    out = [jnp.stack([jnp.mean(tu * es_all.e_tau_mean) * g * j0, jnp.mean(tu),
                      jnp.asarray(kappa_log * g, tu.dtype)]), jnp.mean(ps, axis=0)]
    if material is not None and temperatures is not None:
        tls = StauTLS(StauDOS(es_all, width=0.0), params)
        out.append(thermal_conductivity(tls, material, temperatures))
    return jnp.concatenate(out)


@dataclasses.dataclass
class SensitivityResult:
    """Output of `sensitivity` (NumPy arrays, float64).

    - `param_names`, `params`: the 5 parameters and the point.
    - `output_names`, `values`: the outputs y at that point.
    - `jacobian`: (n_out, 5) d y / d p.
    - `log_jacobian`: (n_out, 5) d ln y / d p.
    - `elasticity`: (n_out, 5) d ln y / d ln p (NaN where p = 0).
    - `mode`: "forward" (jacfwd) or "reverse" (jacrev).
    - `fd_checks`: finite-difference checks of sampled entries (list of dicts).
    - `seconds`: wall time of the Jacobian (compile included).
    - `hard_values`: the outputs with the hard Theta on the same realizations
      (`hard_outputs`), beside `values` (soft Theta of width w).
    """

    param_names: list[str]
    params: np.ndarray
    output_names: list[str]
    values: np.ndarray
    jacobian: np.ndarray
    log_jacobian: np.ndarray
    elasticity: np.ndarray
    mode: str
    fd_checks: list[dict]
    seconds: float
    config: dict
    hard_values: np.ndarray | None = None

    @property
    def fd_max_rel_error(self) -> float:
        return max((c["rel_error"] for c in self.fd_checks), default=float("nan"))

    def to_json(self) -> dict:
        return dict(param_names=self.param_names, params=self.params,
                    output_names=self.output_names, values=self.values,
                    jacobian=self.jacobian, log_jacobian=self.log_jacobian,
                    elasticity=self.elasticity, mode=self.mode, seconds=self.seconds,
                    fd_checks=self.fd_checks, fd_max_rel_error=self.fd_max_rel_error,
                    config=self.config, values_hard_theta=self.hard_values,
                    values_hard_theta_note="the same outputs with the hard Theta (the "
                    "paper's step function) on the same realizations; `values` use the soft "
                    "Theta of width w, a regularization")


def choose_mode(n_outputs: int, n_params: int) -> str:
    """"forward" if n_outputs >= n_params (n_params JVPs), else "reverse" (n_outputs VJPs)."""
    return "forward" if n_outputs >= n_params else "reverse"


def _fd_entries(log_jac: np.ndarray, n_checks: int, seed: int) -> list[tuple[int, int]]:
    """A sample of (output, parameter) entries to check, favouring non-zero ones.

    First one entry per parameter (a random non-zero one where the column has any),
    then random further entries, non-zero ones first.
    """
    rng = np.random.default_rng(seed)
    n_out, n_par = log_jac.shape
    entries = []
    for j in range(n_par):
        rows = np.flatnonzero(log_jac[:, j]) if np.any(log_jac[:, j]) else np.arange(n_out)
        entries.append((int(rng.choice(rows)), j))
    rest = [(i, j) for i in range(n_out) for j in range(n_par) if (i, j) not in entries]
    rng.shuffle(rest)
    rest.sort(key=lambda e: log_jac[e] == 0.0)  # stable: non-zero entries first
    entries += rest[:max(0, n_checks - len(entries))]
    return entries[:n_checks]


def _checked(params, x, cells, realizations, energies, kappa_log, mode, fd_checks, fd_step,
             material, temperatures):
    """Validate `sensitivity`'s arguments; returns them converted."""
    p = np.asarray(default_params() if params is None else params, dtype=float)
    if p.shape != (5,):
        raise ValueError(f"`sensitivity(params=...)` must be 5 values {PARAM_NAMES}; "
                         f"got shape {p.shape}")
    ModelParams(g=p[0], J0=p[1], atilde=p[2], h_rel=p[3], kappa_log=kappa_log)  # validates
    check_range("sensitivity", "g", p[0], 0.0, 0.2, lo_open=True, hi_open=True)
    check_range("sensitivity", "w", p[4], 0.0, MAX_SOFT_WIDTH, lo_open=True,
                reason=SOFT_WIDTH_REASON)
    sample = Sample(x, check_int("sensitivity", "cells", cells, 2))
    check_sample_size("sensitivity", sample)
    realizations = check_int("sensitivity", "realizations", realizations, 1)
    energies = check_grid("sensitivity", "energies",
                          default_sensitivity_energies() if energies is None else energies,
                          positive=True, increasing=True)
    if mode not in ("auto", "forward", "reverse"):
        raise ValueError(f"`sensitivity(mode=...)` must be 'auto', 'forward' or 'reverse'; "
                         f"got {mode!r}")
    fd_checks = check_int("sensitivity", "fd_checks", fd_checks, 0)
    fd_step = float(check_range("sensitivity", "fd_step", fd_step, 0.0, 0.1, lo_open=True))
    if (material is None) != (temperatures is None):
        raise ValueError("`sensitivity(material=..., temperatures=...)` go together: give "
                         "both for kappa(T), or neither")
    if temperatures is not None:
        check_range("sensitivity", "temperatures", np.asarray(temperatures, dtype=float),
                    T_MIN_K, T_MAX_K, reason="in K; the range of the observables")
        temperatures = check_grid("sensitivity", "temperatures", temperatures,
                                  positive=True, increasing=True)
    return p, sample, realizations, energies, fd_checks, fd_step, temperatures


def _fd_checks(f_jit, p, log_y, log_jac, names, fd_checks, fd_step, seed) -> list[dict]:
    """Central finite differences of ln y (one-sided at a boundary) for `fd_checks`
    entries of the Jacobian, each against the autodiff value."""
    checks = []
    cache: dict[int, np.ndarray] = {}
    for i, j in _fd_entries(log_jac, fd_checks, seed):
        h = fd_step * max(abs(p[j]), 1e-3)
        if j not in cache:
            plus, minus = p.copy(), p.copy()
            plus[j] += h
            minus[j] -= h
            if minus[j] < 0.0:  # one-sided at a boundary (h_rel = 0)
                minus[j] = p[j]
                cache[j] = (np.asarray(f_jit(jnp.asarray(plus))) - log_y) / h
            else:
                cache[j] = (np.asarray(f_jit(jnp.asarray(plus)))
                            - np.asarray(f_jit(jnp.asarray(minus)))) / (2.0 * h)
        fd = float(cache[j][i])
        ad = float(log_jac[i, j])
        err = abs(ad - fd)
        checks.append(dict(output=names[i], param=PARAM_NAMES[j], d_log_y_d_p_ad=ad,
                           d_log_y_d_p_fd=fd, step=h, abs_error=err,
                           rel_error=err / max(abs(ad), abs(fd), 1e-12)))
    return checks


def sensitivity(
    params=None,
    *,
    x: float = 0.2,
    cells: int = 8,
    realizations: int = 2,
    seed: int = 0,
    energies=None,
    kappa_log: float = DEFAULT_KAPPA_LOG,
    top_k: int = DEFAULT_TOP_K,
    block_size: int | None = None,
    mode: str = "auto",
    fd_checks: int = 8,
    fd_step: float = 1e-6,
    material: Material | None = None,
    temperatures=None,
) -> SensitivityResult:
    """Jacobian and elasticities of (T_U, C_o, P_S(E)) with respect to (g, J_o, a~, h_rel, w).

    **Arguments:**

    - `params`: (g, J_o [K], a~, h_rel, w); default `default_params()` (h_rel = 0.3,
      w = `DEFAULT_SENS_WIDTH`; w in (0, 1] in units of <E_tau>).
    - `x`, `cells`: the fcc sample (default x = 0.2, L = 8, ~410 impurities).
    - `realizations`, `seed`: keys `jax.random.split(jax.random.key(seed), realizations)`.
    - `energies`: P_S grid in units of <E_tau> (default `default_sensitivity_energies()`).
    - `kappa_log`, `top_k`, `block_size`: model and reduction settings.
    - `mode`: "auto" (cheaper for the shape, `choose_mode`), "forward" or "reverse".
    - `fd_checks`: how many entries to check by central finite differences (0: none).
    - `fd_step`: relative step of the finite differences, h_j = fd_step max(|p_j|, 1e-3).
    - `material`, `temperatures`: a `Material` and temperatures in K; if given, the
      outputs include kappa(T) (`thermal_conductivity` with the S-tau C(E)).

    Compute in float64 for meaningful finite-difference checks: call it inside
    ``with jax.enable_x64(True):`` (as the CLI does; this changes no global setting).
    The samples drawn from `seed` are the same with and without float64.

    **Returns:** a `SensitivityResult`.
    """
    import time

    p, sample, realizations, energies, fd_checks, fd_step, temperatures = _checked(
        params, x, cells, realizations, energies, kappa_log, mode, fd_checks, fd_step, material,
        temperatures)
    keys = jax.random.split(seed_key("sensitivity", "seed", seed), realizations)
    names = output_names(energies, temperatures)
    n_out = len(names)
    mode = choose_mode(n_out, 5) if mode == "auto" else mode

    settings = dict(kappa_log=kappa_log, top_k=top_k, block_size=block_size, material=material,
                    temperatures=temperatures)

    def f_jit(pv):
        return _LOG_OUTPUTS["value"](pv, sample, keys, energies, **settings)

    def jac_fn(pv):
        return _LOG_OUTPUTS[mode](pv, sample, keys, energies, **settings)

    pj = jnp.asarray(p)
    log_y = np.asarray(f_jit(pj), dtype=float)
    if not np.all(np.isfinite(log_y)):
        bad = [n for n, v in zip(names, log_y) if not np.isfinite(v)]
        raise ValueError(f"`sensitivity`: {', '.join(bad)} is 0 or not finite at this point, so "
                         "its logarithmic derivatives are undefined (T_U = 0 means no gap: "
                         "P_S(0+) >= 5 g, e.g. under strong random fields h_rel)")
    start = time.perf_counter()
    log_jac = np.asarray(jac_fn(pj), dtype=float)
    seconds = time.perf_counter() - start
    y = np.exp(log_y)
    with np.errstate(invalid="ignore"):
        elasticity = np.where(p[None, :] != 0.0, log_jac * p[None, :], np.nan)

    checks = _fd_checks(f_jit, p, log_y, log_jac, names, fd_checks, fd_step, seed)
    config = dict(x=x, cells=cells, n_sites_capacity=sample.capacity,
                  realizations=realizations, seed=seed, kappa_log=kappa_log, top_k=top_k,
                  energies_over_E_tau=np.asarray(energies), fd_step=fd_step,
                  temperatures_K=None if temperatures is None else np.asarray(temperatures),
                  material=None if material is None else {
                      k: float(getattr(material, k)) for k in ("rho", "v_l", "v_t", "gamma_ratio",
                                                               "gamma_t", "rayleigh", "boundary")},
                  x64=bool(jax.config.jax_enable_x64))
    hard = hard_outputs(p, sample, keys, energies, kappa_log=kappa_log, block_size=block_size,
                        material=material, temperatures=temperatures)
    return SensitivityResult(list(PARAM_NAMES), p, names, y, log_jac * y[:, None], log_jac,
                             elasticity, mode, checks, seconds, config, hard)


def elasticity_table(res: SensitivityResult) -> str:
    """A plain-text table of d ln y / d ln p (d ln y / d p, marked *, where p = 0), with
    each output's value (soft Theta) and, beside it, its hard-Theta value."""
    hard = res.hard_values if res.hard_values is not None else np.full(len(res.values), np.nan)
    head = (f"{'output':<18}{'value':>12}{'hard Theta':>12}"
            + "".join(f"{n:>12}" for n in res.param_names))
    lines = [head, "-" * len(head)]
    for i, name in enumerate(res.output_names):
        cells = []
        for j in range(len(res.param_names)):
            e = res.elasticity[i, j]
            cells.append(f"{e:>12.4g}" if np.isfinite(e) else f"{res.log_jacobian[i, j]:>11.4g}*")
        lines.append(f"{name:<18}{res.values[i]:>12.4g}{hard[i]:>12.4g}" + "".join(cells))
    lines.append(f"value: soft Theta (w = {res.params[4]:g} <E_tau>, a regularization); hard "
                 "Theta: the paper's step function on the same realizations")
    if np.any(res.params == 0.0):
        lines.append("* the parameter is 0: d ln y / d p shown instead of the elasticity")
    return "\n".join(lines)
