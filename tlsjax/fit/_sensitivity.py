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

Each realization's values and their Jacobian come from one compiled program of one key
(`realization_values`); the means, logarithms and the chain rule are taken on the host
in float64, in key order. In a job of several processes (`tlsjax.distributed`) the keys
are split over the processes (`process_map`) and gathered, so every process gets the
same bits as one process. kappa(T) depends on the DOS averaged over all realizations
(not on a mean of per-realization values): every process computes it from all keys.

Each Jacobian is computed by `jax.jacfwd` when there are at least as many outputs as
parameters (5 tangents pushed forward at once), else by `jax.jacrev`. Elasticities are
d ln y / d ln p = p d ln y / d p; where a parameter is 0 (e.g. h_rel = 0) the elasticity
is undefined and reported as NaN, and the semi-elasticity d ln y / d p is what the
Jacobian table holds.
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
from ..parallel._ensemble import process_map

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
    """Names of the outputs, in the order of `SensitivityResult.values`
    (`outputs_from_realizations`, then kappa(T))."""
    names = ["T_U[K]", "T_U/<E_tau>", "C_o"] + [f"P_S(E={float(e):.3g})"
                                               for e in np.asarray(energies)]
    if temperatures is not None:
        names += [f"kappa(T={float(t):.3g}K)" for t in np.asarray(temperatures)]
    return names


def realization_values(
    p: Float[Array, " 5"],
    sample: Sample,
    key: PRNGKeyArray,
    energies: Float[Array, " m"],
    top_k: int = DEFAULT_TOP_K,
    block_size: int | None = None,
) -> Float[Array, " 2+m"]:
    """One realization's (T_U / (g J_o), T_U / <E_tau>, ln P_S(E_1), ..., ln P_S(E_m)) with
    the soft Theta of width w = p[4], p = (g, J_o [K], a~, h_rel, w) (may be traced);
    `energies` in units of <E_tau>; `top_k`, `block_size` as in `simulate`. The outputs
    are made from these on the host (`outputs_from_realizations`)."""
    g, j0, atilde, h_rel, w = (p[i] for i in range(5))
    params = ModelParams(g=g, J0=j0, atilde=atilde, h_rel=h_rel)
    es = simulate(sample, params, key, top_k=top_k, block_size=block_size, soft_width=w)
    theta = SoftTheta(w)
    tu = theta.crossover(es, g)
    return jnp.concatenate([jnp.stack([tu * es.e_tau_mean, tu]), theta.log_p_s(es, energies)])


def hard_realization_values(point, sample, key, energies, block_size=None):
    """`realization_values` with the hard Theta (the paper's step function) on the hard ES
    reduction, not logarithms: (T_U / (g J_o), T_U / <E_tau>, P_S(E)...); `point` =
    (g, J_o, a~, h_rel)."""
    g, j0, atilde, h_rel = (point[i] for i in range(4))
    es = simulate(sample, ModelParams(g=g, J0=j0, atilde=atilde, h_rel=h_rel), key,
                  block_size=block_size)
    tu = HardTheta().crossover(es, g)
    return jnp.concatenate([jnp.stack([tu * es.e_tau_mean, tu]), HardTheta().p_s(es, energies)])


def log_kappa(p, sample, keys, kappa_log, top_k, block_size, material, temperatures, hard=False):
    """ln kappa(T) (`thermal_conductivity` with the S-tau C(E) of `StauTLS`) from all the
    realizations of `keys` at once: its C(E) is a non-linear function of the DOS averaged
    over realizations at every quadrature energy, not a mean of per-realization values.
    Soft Theta of width p[4], or the hard Theta (`hard`)."""
    g, j0, atilde, h_rel, w = (p[i] for i in range(5))
    params = ModelParams(g=g, J0=j0, atilde=atilde, h_rel=h_rel, kappa_log=kappa_log)
    es_all = jax.vmap(lambda k: simulate(
        sample, params, k, top_k=top_k, block_size=block_size,
        soft_width=None if hard else w))(keys)
    tls = StauTLS(StauDOS(es_all, width=0.0 if hard else w), params)
    return jnp.log(thermal_conductivity(tls, material, temperatures))


#: The programs, compiled once per sample, settings and shapes: the point, keys,
#: energies, material and temperatures are arguments, not constants, so another point or
#: other keys reuse them (the finite-difference checks, repeated calls).
_PROGRAMS = {"value": eqx.filter_jit(realization_values),
             "forward": eqx.filter_jit(jax.jacfwd(realization_values)),
             "reverse": eqx.filter_jit(jax.jacrev(realization_values)),
             "hard": eqx.filter_jit(hard_realization_values),
             "kappa value": eqx.filter_jit(log_kappa),
             "kappa forward": eqx.filter_jit(jax.jacfwd(log_kappa)),
             "kappa reverse": eqx.filter_jit(jax.jacrev(log_kappa))}


def _log_mean_exp(a: np.ndarray) -> np.ndarray:
    top = a.max(axis=0)
    return top + np.log(np.mean(np.exp(a - top), axis=0))


def outputs_from_realizations(p: np.ndarray, v: np.ndarray, kappa_log: float) -> np.ndarray:
    """ln y (T_U [K], T_U / <E_tau>, C_o, P_S(E)...) from the (R, 2 + m) values of
    `realization_values`, averaged over realizations in key order (NumPy, float64)."""
    v = np.asarray(v, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):  # T_U = 0: -inf, reported by the caller
        return np.concatenate([[np.log(v[:, 0].mean()) + np.log(p[0]) + np.log(p[1]),
                                np.log(v[:, 1].mean()), np.log(kappa_log * p[0])],
                               _log_mean_exp(v[:, 2:])])


def log_jacobian_from_realizations(p: np.ndarray, v: np.ndarray, jv: np.ndarray) -> np.ndarray:
    """d ln y / d p of `outputs_from_realizations` from the values and their (R, 2 + m, 5)
    Jacobians: the realizations are fixed by their keys, so d mean / d p is the mean of
    the derivatives; the chain rule on the host in float64."""
    v, jv = np.asarray(v, dtype=float), np.asarray(jv, dtype=float)
    direct_g, direct_j0 = np.eye(5)[0] / p[0], np.eye(5)[1] / p[1]
    rel = jv[:, :2].mean(axis=0) / v[:, :2].mean(axis=0)[:, None]
    ps = v[:, 2:]
    weights = np.exp(ps - ps.max(axis=0))
    weights /= weights.sum(axis=0)  # d ln mean exp(a_r) = sum_r softmax(a)_r d a_r
    d_ps = np.einsum("rk,rkj->kj", weights, jv[:, 2:])
    return np.concatenate([(rel[0] + direct_g + direct_j0)[None], rel[1:2], direct_g[None],
                           d_ps])


@dataclasses.dataclass
class SensitivityResult:
    """Output of `sensitivity` (NumPy arrays, float64).

    - `param_names`, `params`: the 5 parameters and the point.
    - `output_names`, `values`: the outputs y at that point.
    - `jacobian`: (n_out, 5) d y / d p.
    - `log_jacobian`: (n_out, 5) d ln y / d p.
    - `elasticity`: (n_out, 5) d ln y / d ln p (NaN where p = 0).
    - `mode`: "forward" (jacfwd) or "reverse" (jacrev), of the per-realization Jacobians
      (`config["kappa_mode"]`: that of kappa(T)).
    - `fd_checks`: finite-difference checks of sampled entries (list of dicts).
    - `seconds`: wall time of the Jacobian (compile included).
    - `hard_values`: the outputs with the hard Theta on the same realizations
      (`hard_realization_values`), beside `values` (soft Theta of width w).
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
    # per realization: 2 + m outputs; kappa(T) (all realizations at once): one per T
    k_mode = None if temperatures is None else (
        choose_mode(len(temperatures), 5) if mode == "auto" else mode)
    mode = choose_mode(2 + len(energies), 5) if mode == "auto" else mode
    kappa = None if material is None else (kappa_log, top_k, block_size, material, temperatures)

    def per_key(name, pv):
        program = _PROGRAMS[name]
        return process_map(lambda k: program(pv, sample, k, energies, top_k, block_size), keys)

    def f_log(pv, v=None) -> np.ndarray:  # ln y at pv (also for the finite differences)
        v = per_key("value", jnp.asarray(pv)) if v is None else v
        out = outputs_from_realizations(np.asarray(pv), v, kappa_log)
        if kappa is not None:
            out = np.concatenate([out, np.asarray(_PROGRAMS["kappa value"](
                jnp.asarray(pv), sample, keys, *kappa), dtype=float)])
        return out

    pj = jnp.asarray(p)
    v0 = per_key("value", pj)
    log_y = f_log(p, v0)
    if not np.all(np.isfinite(log_y)):
        bad = [n for n, v in zip(names, log_y) if not np.isfinite(v)]
        raise ValueError(f"`sensitivity`: {', '.join(bad)} is 0 or not finite at this point, so "
                         "its logarithmic derivatives are undefined (T_U = 0 means no gap: "
                         "P_S(0+) >= 5 g, e.g. under strong random fields h_rel)")
    start = time.perf_counter()
    log_jac = log_jacobian_from_realizations(p, v0, per_key(mode, pj))
    if kappa is not None:
        log_jac = np.concatenate([log_jac, np.asarray(_PROGRAMS[f"kappa {k_mode}"](
            pj, sample, keys, *kappa), dtype=float)])
    seconds = time.perf_counter() - start
    y = np.exp(log_y)
    with np.errstate(invalid="ignore"):
        elasticity = np.where(p[None, :] != 0.0, log_jac * p[None, :], np.nan)

    checks = _fd_checks(f_log, p, log_y, log_jac, names, fd_checks, fd_step, seed)
    config = dict(x=x, cells=cells, n_sites_capacity=sample.capacity,
                  realizations=realizations, seed=seed, kappa_log=kappa_log, top_k=top_k,
                  energies_over_E_tau=np.asarray(energies), fd_step=fd_step,
                  temperatures_K=None if temperatures is None else np.asarray(temperatures),
                  material=None if material is None else {
                      k: float(getattr(material, k)) for k in ("rho", "v_l", "v_t", "gamma_ratio",
                                                               "gamma_t", "rayleigh", "boundary")},
                  x64=bool(jax.config.jax_enable_x64), kappa_mode=k_mode)
    hard = _hard_values(p, sample, keys, energies, kappa_log, block_size, material, temperatures)
    return SensitivityResult(list(PARAM_NAMES), p, names, y, log_jac * y[:, None], log_jac,
                             elasticity, mode, checks, seconds, config, hard)


def _hard_values(p, sample, keys, energies, kappa_log, block_size, material, temperatures):
    """The outputs (not their logarithms) with the hard Theta on the same realizations;
    w does not enter (C_o has no Theta at all). Means over realizations in key order."""
    point = jnp.asarray(np.asarray(p[:4], dtype=float))
    v = process_map(lambda k: _PROGRAMS["hard"](point, sample, k, energies, block_size), keys)
    v = np.asarray(v, dtype=float)
    out = [[v[:, 0].mean() * p[0] * p[1], v[:, 1].mean(), kappa_log * p[0]], v[:, 2:].mean(0)]
    if material is not None:  # top_k = 1: the hard reduction's plain maximum
        out.append(np.exp(np.asarray(_PROGRAMS["kappa value"](
            jnp.asarray(p), sample, keys, kappa_log, 1, block_size, material,
            temperatures, True), dtype=float)))
    return np.concatenate(out)


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
