"""Fits of the S-tau model: to the targets (C_o, T_U) and to measured kappa(T), Q^-1(T).

**Targets.** C_o = kappa_log g (Eq. 3) and T_U from the differentiable crossover of
the model (`crossover`, soft-Theta ES reduction; by default the paper's criterion
P_S(T_U) = 5 g, `criterion="shortcut"`; `"full"` uses g phi_tau = P_S phi_S). The
residuals are (ln model - ln target) / sigma with relative uncertainties sigma. C_o
fixes only kappa_log g; T_U fixes g J_o c(a~, h_rel) with c = T_U / (g J_o) from the
ES reduction, so two targets leave one combination of (g, J_o, a~) undetermined: the
Hessian's null direction finds it and `FitResult.notes` says which.

**Curves.** kappa(T) (optionally jointly with Q^-1(T) at one frequency) is fitted in log
space: r_i = sqrt(w_i) (ln model_i - ln data_i) / sigma_i. Without `sigma_log` the
errors are scaled by the reduced chi^2 (`absolute_sigma=False`). C(E) comes from the
S-tau DOS tables (`TabulatedStauTLS`), rebuilt in the loss only when a~ or h_rel is
free.

**Without sound velocities (convention of this package).** With resonant scattering
kappa = sum_alpha (branches / v_alpha) F[C(E)], and C(E) is proportional to kappa_log,
so kappa depends on kappa_log and the velocities only through kappa_log * v_eff, with
3 / v_eff = 1 / v_l + 2 / v_t (exact for C_l = C_t, the `Material` default); rho does
not enter at all. So when no `material` is given the fit uses one effective velocity
and fits the identifiable combination `kv` = kappa_log v_eff (m/s) instead of
inventing velocities; it reports C_o v_eff = kappa_log g v_eff = g kv, and `C_o` is
null. A Rayleigh term then enters as A_R / kappa_log^2 (the fitted `rayleigh` is that
combination; with distinct v_l, v_t this one-velocity reduction is approximate).
With a `material` (rho, v_l, v_t), kappa_log itself is fitted and C_o = kappa_log g is
reported. Q^-1 needs the material (its relaxation part depends on rho and v).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .._validate import check_range
from ..model._lattice import Sample
from ..model._params import ModelParams
from ..observables._dos import (
    DEFAULT_DOS_CELLS,
    DEFAULT_DOS_REALIZATIONS,
    DEFAULT_DOS_SEED,
    DEFAULT_DOS_X,
    StauTLS,
    crossover,
    stau_dos,
)
from ..observables._material import Material
from ..observables._stm import qinv as _qinv
from ..observables._stm import thermal_conductivity
from ..observables._table import tabulate_stau
from ..observables._tls import ConstantC
from ._data import Curve, load_curve
from ._fit import FitResult, least_squares, propagate

_MODEL_FIELDS = ("g", "J0", "atilde", "h_rel", "kappa_log")
#: Default relative (log) uncertainty of the targets C_o and T_U.
DEFAULT_TARGET_SIGMA = 0.1
_CRITERIA = ("shortcut", "full")


def _dos_settings(sample, realizations, key):
    sample = Sample(DEFAULT_DOS_X, DEFAULT_DOS_CELLS) if sample is None else sample
    key = jax.random.PRNGKey(DEFAULT_DOS_SEED) if key is None else key
    return sample, realizations, key


def _dos_meta(sample, realizations, seed_desc) -> dict:
    return dict(x=float(sample.x), cells=int(sample.lattice.cells),
                lattice=type(sample.lattice).__name__, realizations=realizations,
                key=seed_desc)


def _model_params(p: dict) -> ModelParams:
    return ModelParams(**{k: p[k] for k in _MODEL_FIELDS})


def _tu(criterion: str):
    def fn(dos, mp):
        c = crossover(StauTLS(dos, mp))
        return c.shortcut if criterion == "shortcut" else c.full
    return fn


def _check_criterion(criterion):
    if criterion not in _CRITERIA:
        raise ValueError(f"`fit(criterion=...)` must be one of {_CRITERIA}; got {criterion!r}")


def _check_free(free, allowed, where):
    bad = [n for n in free if n not in allowed]
    if bad:
        raise ValueError(f"`{where}(free=...)`: {', '.join(bad)} cannot be fitted here; "
                         f"allowed: {', '.join(allowed)}")


def fit_targets(
    C0: float = 1e-3,
    T_U: float = 3.0,
    *,
    sigma_C0: float = DEFAULT_TARGET_SIGMA,
    sigma_T_U: float = DEFAULT_TARGET_SIGMA,
    free: Sequence[str] = ("g", "J0", "atilde"),
    init: ModelParams | None = None,
    criterion: str = "shortcut",
    sample: Sample | None = None,
    realizations: int = DEFAULT_DOS_REALIZATIONS,
    key: PRNGKeyArray | None = None,
    **fit_kwargs,
) -> FitResult:
    """Fit (g, J_o, a~, ...) to the targets C_o and T_U (defaults as in the paper).

    **Arguments:**

    - `C0`: target C_o = kappa_log g (> 0; default 1e-3).
    - `T_U`: target crossover temperature in K (> 0; default 3).
    - `sigma_C0`, `sigma_T_U`: their relative 1-sigma uncertainties (> 0; default 0.1).
    - `free`: free parameters among g, J0, atilde, h_rel, kappa_log.
    - `init`: starting / fixed values (default `ModelParams()` with g = C0 / kappa_log
      and J_o set so that the starting model has the target T_U).
    - `criterion`: `"shortcut"` (P_S(T_U) = 5 g, default) or `"full"`.
    - `sample`, `realizations`, `key`: the ES sample of the DOS (as `stau_dos`).
    - `fit_kwargs`: passed to `least_squares` (starts, max_steps, progress, ...).

    **Returns:** a `FitResult` with `derived` C_o, T_U_K (with errors), E_tau_K and
    T_U_over_E_tau; `notes` say which combination the targets do not determine.
    """
    check_range("fit_targets", "C0", C0, 0.0, 1.0, lo_open=True, hi_open=True)
    check_range("fit_targets", "T_U", T_U, 0.0, lo_open=True)
    check_range("fit_targets", "sigma_C0", sigma_C0, 0.0, lo_open=True)
    check_range("fit_targets", "sigma_T_U", sigma_T_U, 0.0, lo_open=True)
    _check_criterion(criterion)
    free = list(free)
    _check_free(free, _MODEL_FIELDS, "fit_targets")
    sample, realizations, key = _dos_settings(sample, realizations, key)
    tu_fn = _tu(criterion)
    rebuild = any(n in free for n in ("atilde", "h_rel"))

    user_init = init is not None
    init = ModelParams() if init is None else init
    p0 = {k: float(getattr(init, k)) for k in _MODEL_FIELDS}
    if not user_init and "g" in free:
        p0["g"] = float(np.clip(C0 / p0["kappa_log"], 2e-4, 0.15))
    dos0 = stau_dos(_model_params(p0), sample, key, realizations=realizations)
    if not user_init and "J0" in free:
        c = float(tu_fn(dos0, _model_params(p0))) / (p0["g"] * p0["J0"])
        p0["J0"] = float(np.clip(T_U / (c * p0["g"]), 2.0, 5e4))

    def dos_of(p, mp):
        if rebuild:
            return stau_dos(mp, sample, key, realizations=realizations)
        return dos0

    def residuals(p):
        mp = _model_params(p)
        tu = tu_fn(dos_of(p, mp), mp)
        return jnp.stack([(jnp.log(mp.C0) - math.log(C0)) / sigma_C0,
                          (jnp.log(tu) - math.log(T_U)) / sigma_T_U])

    res = least_squares(residuals, p0, free, meta=dict(
        kind="targets", targets=dict(C_o=C0, T_U_K=T_U, sigma_C_o=sigma_C0,
                                     sigma_T_U=sigma_T_U),
        criterion=criterion, dos_sample=_dos_meta(sample, realizations, "given or PRNGKey(0)")),
        **fit_kwargs)
    c0, c0_err = propagate(lambda p: _model_params(p).C0, res)
    tu, tu_err = propagate(lambda p: tu_fn(dos_of(p, _model_params(p)), _model_params(p)), res)
    mp = _model_params(res.params)
    dos = dos_of(res.params, mp)
    e_tau = float(dos.e_tau_mean * mp.gJ0)
    res.derived.update(C_o=c0, C_o_err=c0_err, T_U_K=tu, T_U_K_err=tu_err, E_tau_K=e_tau,
                       T_U_over_E_tau=tu / e_tau, gJ0_K=float(mp.gJ0),
                       rms_log_residual=float(np.sqrt(np.mean(np.square(
                           [math.log(c0 / C0), math.log(tu / T_U)])))))
    if len(free) > 2:
        res.notes.append(f"2 targets (C_o, T_U) for {len(free)} free parameters: at most 2 "
                         "combinations can be determined")
    return res


# ---------------------------------------------------------------- curves


def _as_curve(data, quantity, min_points) -> Curve:
    if isinstance(data, Curve):
        if data.quantity != quantity:
            raise ValueError(f"expected a {quantity} curve; got a {data.quantity} curve "
                             f"from {data.source}")
        if data.n < min_points:
            raise ValueError(f"{data.source}: {data.n} data point(s), fewer than the "
                             f"{min_points} free parameters")
        return data
    return load_curve(data, quantity, min_points=min_points)


def _sigma(where, sigma_log, n):
    if sigma_log is None:
        return np.ones(n), False
    s = np.broadcast_to(np.asarray(check_range(where, "sigma_log", sigma_log, 0.0,
                                               lo_open=True), dtype=float), (n,))
    return s, True


def fit_kappa(
    data,
    material: Material | None = None,
    *,
    free: Sequence[str] | None = None,
    init: ModelParams | None = None,
    kv: float | None = None,
    rayleigh: float = 0.0,
    sigma_log=None,
    weights=None,
    qinv_data=None,
    freq: float | None = None,
    sigma_log_qinv=None,
    polarization: str = "t",
    sample: Sample | None = None,
    realizations: int = DEFAULT_DOS_REALIZATIONS,
    key: PRNGKeyArray | None = None,
    **fit_kwargs,
) -> FitResult:
    """Fit the S-tau model to a measured kappa(T) (optionally jointly with Q^-1(T)).

    **Arguments:**

    - `data`: a `Curve` of kappa or a CSV path (`load_curve`).
    - `material`: `Material` with rho, v_l, v_t; `None` fits the velocity-free combination
      `kv` = kappa_log v_eff (see the module docstring).
    - `free`: free parameters (default g, J0 and the amplitude: `kv` without material,
      `kappa_log` with it). Without material `kv` is always added, `kappa_log` refused.
    - `init`: starting / fixed model parameters (default `ModelParams()`).
    - `kv`: starting kappa_log v_eff in m/s (default: matched to the lowest-T point).
    - `rayleigh`: starting / fixed Rayleigh coefficient (A_R / kappa_log^2 without
      material), s^4/m; fit it by adding "rayleigh" to `free`.
    - `sigma_log`, `weights`: per-point (or scalar) 1-sigma of ln kappa and weights
      (default: the file's `weight` column). Without `sigma_log` the covariance is
      scaled by the reduced chi^2.
    - `qinv_data`, `freq`, `sigma_log_qinv`, `polarization`: a Q^-1(T) curve measured at
      `freq` Hz, fitted jointly (needs `material`).
    - `sample`, `realizations`, `key`: the ES sample of the DOS (as `stau_dos`).
    - `fit_kwargs`: passed to `least_squares`.

    **Returns:** a `FitResult`; `derived` holds C_o (or C_o v_eff), T_U_K, rms log
    residuals, the fitted and pure-T^2 curves for plotting, and the data.
    """
    velocity_free = material is None
    if free is None:
        free = ["g", "J0", "kv" if velocity_free else "kappa_log"]
    free = list(free)
    notes = []
    if velocity_free:
        if "kappa_log" in free:
            raise ValueError("`fit_kappa(free=...)`: kappa_log is not determined by kappa(T) "
                             "without sound velocities (kappa depends on kappa_log * v_eff); "
                             "fit 'kv' or pass a Material")
        if "kv" not in free:
            free.append("kv")
            notes.append("kv = kappa_log v_eff added to the free parameters: without sound "
                         "velocities it sets the amplitude of kappa")
        allowed = ("g", "J0", "atilde", "h_rel", "kv", "rayleigh")
    else:
        allowed = ("g", "J0", "atilde", "h_rel", "kappa_log", "rayleigh")
    _check_free(free, allowed, "fit_kappa")
    curve = _as_curve(data, "kappa", len(free))
    T = jnp.asarray(curve.T)
    y = np.log(curve.y)
    w = curve.weight if weights is None else np.broadcast_to(
        np.asarray(check_range("fit_kappa", "weights", weights, 0.0, lo_open=True),
                   dtype=float), (curve.n,))
    sig, absolute = _sigma("fit_kappa", sigma_log, curve.n)
    scale = jnp.asarray(np.sqrt(w) / sig)

    joint = qinv_data is not None
    if joint:
        if velocity_free:
            raise ValueError("`fit_kappa(qinv_data=...)` needs a Material (rho, v_l, v_t): "
                             "the relaxation part of Q^-1 depends on them")
        if freq is None:
            raise ValueError("`fit_kappa(freq=...)` must be given with qinv_data (Hz)")
        check_range("fit_kappa", "freq", freq, 0.0, lo_open=True)
        qcurve = _as_curve(qinv_data, "qinv", 1)
        qs, qabs = _sigma("fit_kappa", sigma_log_qinv, qcurve.n)
        if qabs != absolute:
            raise ValueError("give both sigma_log and sigma_log_qinv, or neither")
        q_scale = jnp.asarray(np.sqrt(qcurve.weight) / qs)
        omega = jnp.asarray([2.0 * math.pi * float(freq)])

    sample, realizations, key = _dos_settings(sample, realizations, key)
    rebuild = any(n in free for n in ("atilde", "h_rel"))
    init = ModelParams() if init is None else init
    p0 = {k: float(getattr(init, k)) for k in _MODEL_FIELDS}
    if velocity_free:
        p0["kappa_log"] = 1.0
    p0["rayleigh"] = float(rayleigh)
    dos0 = stau_dos(_model_params(p0), sample, key, realizations=realizations)
    tab0 = tabulate_stau(dos0, _model_params(p0))

    def material_of(p):
        if velocity_free:
            return Material(1.0, p["kv"], p["kv"], rayleigh=p["rayleigh"])
        return Material(material.rho, material.v_l, material.v_t,
                        gamma_ratio=material.gamma_ratio, gamma_t=material.gamma_t,
                        rayleigh=p["rayleigh"], boundary=material.boundary)

    def tls_of(p):
        mp = _model_params(p)
        if rebuild:
            return tabulate_stau(stau_dos(mp, sample, key, realizations=realizations), mp)
        return tab0.with_params(mp)

    # starting amplitude: kappa is exactly proportional to 1 / kv (1 / kappa_log)
    amp = "kv" if velocity_free else "kappa_log"
    if amp in free:
        p_try = dict(p0, kv=1.0 if kv is None else float(kv))
        k1 = float(thermal_conductivity(tls_of(p_try), material_of(p_try), T[:1])[0])
        ratio = k1 / float(curve.y[0])
        if velocity_free and kv is None:
            p0["kv"] = float(np.clip(ratio, 2.0, 5e5))
        elif not velocity_free:
            p0["kappa_log"] = float(np.clip(p0["kappa_log"] * ratio, 2e-3, 0.9))
    elif velocity_free:
        p0["kv"] = float(kv) if kv is not None else 1e3

    def model_log_kappa(p, T_):
        return jnp.log(thermal_conductivity(tls_of(p), material_of(p), T_))

    def residuals(p):
        r = (model_log_kappa(p, T) - y) * scale
        if joint:
            q = _qinv(tls_of(p), material_of(p), jnp.asarray(qcurve.T), omega,
                      polarization=polarization)[:, 0]
            r = jnp.concatenate([r, (jnp.log(q) - np.log(qcurve.y)) * q_scale])
        return r

    meta = dict(kind="kappa", data=curve.source, citation=curve.citation,
                velocity_free=velocity_free, absolute_sigma=absolute,
                material=None if velocity_free else dict(
                    rho=float(material.rho), v_l=float(material.v_l), v_t=float(material.v_t),
                    gamma_ratio=float(material.gamma_ratio), gamma_t_eV=float(material.gamma_t)),
                dos_sample=_dos_meta(sample, realizations, "given or PRNGKey(0)"),
                data_T=curve.T.tolist(), data_kappa=curve.y.tolist())
    if joint:
        meta.update(qinv_data=qcurve.source, freq_Hz=float(freq), polarization=polarization,
                    data_qinv_T=qcurve.T.tolist(), data_qinv=qcurve.y.tolist())
    res = least_squares(residuals, p0, free, absolute_sigma=absolute, meta=meta, **fit_kwargs)
    res.notes[:0] = notes
    _kappa_derived(res, curve, y, tls_of, material_of, model_log_kappa, rebuild, sample,
                   realizations, key, velocity_free)
    if joint:
        q = np.asarray(_qinv(tls_of(res.params), material_of(res.params),
                             jnp.asarray(qcurve.T), omega, polarization=polarization))[:, 0]
        rq = np.log(q) - np.log(qcurve.y)
        res.derived.update(rms_log_residual_qinv=float(np.sqrt(np.mean(rq**2))),
                           residuals_log_qinv=rq.tolist(), model_qinv=q.tolist())
    return res


def _kappa_derived(res, curve, y, tls_of, material_of, model_log_kappa, rebuild, sample,
                   realizations, key, velocity_free):
    p = res.params
    T = jnp.asarray(curve.T)
    r = np.asarray(model_log_kappa(p, T)) - y
    d = res.derived
    d["rms_log_residual"] = float(np.sqrt(np.mean(r**2)))
    d["max_abs_log_residual"] = float(np.max(np.abs(r)))
    d["residuals_log"] = r.tolist()
    for name, sel in (("below_1K", curve.T < 1.0), ("above_1K", curve.T >= 1.0)):
        if np.any(sel):
            d[f"rms_log_residual_{name}"] = float(np.sqrt(np.mean(r[sel] ** 2)))

    def dos_of(q):
        mp = _model_params(q)
        return stau_dos(mp, sample, key, realizations=realizations) if rebuild else None

    dos_fixed = stau_dos(_model_params(p), sample, key, realizations=realizations)

    def tu(q, criterion):
        mp = _model_params(q)
        dos = dos_of(q) if rebuild else dos_fixed
        c = crossover(StauTLS(dos, mp))
        return c.shortcut if criterion == "shortcut" else c.full

    for key, criterion in (("T_U_K", "shortcut"), ("T_U_full_K", "full")):
        try:
            d[key], d[f"{key}_err"] = propagate(lambda q, c=criterion: tu(q, c), res)
        except Exception as err:  # e.g. no root on a very small DOS sample
            d[key], d[f"{key}_err"] = math.nan, math.nan
            res.notes.append(f"T_U ({criterion} criterion) could not be computed: "
                             f"{str(err).splitlines()[0]}")
    mp = _model_params(p)
    d["E_tau_K"] = float(dos_fixed.e_tau_mean * mp.gJ0)
    d["gJ0_K"] = float(mp.gJ0)
    phi0 = float(dos_fixed.phi_tau(jnp.asarray([1e-4]))[0])
    d["phi_tau_0"] = phi0
    if velocity_free:
        d["C_o"] = None
        d["C_o_note"] = ("not determined without sound velocities: see C_o_v_eff_m_per_s "
                         "= kappa_log g v_eff")
        d["C_o_v_eff_m_per_s"], d["C_o_v_eff_m_per_s_err"] = propagate(
            lambda q: q["g"] * q["kv"], res)
        d["C_low_v_eff_m_per_s"] = d["C_o_v_eff_m_per_s"] * phi0
    else:
        d["C_o"], d["C_o_err"] = propagate(lambda q: q["kappa_log"] * q["g"], res)
        d["C_low"] = d["C_o"] * phi0
    # curves for the figure: the fit, and the pure T^2 law with C = C(E -> 0)
    lo, hi = float(curve.T[0]), float(curve.T[-1])
    grid = np.geomspace(lo / 1.5, hi * 1.5, 60)
    tls = tls_of(p)
    mat = material_of(p)
    c_low = float(tls.tunneling_strength(jnp.asarray([1e-6 * d["gJ0_K"]]))[0])
    d["curve_T"] = grid.tolist()
    d["curve_kappa"] = np.exp(np.asarray(model_log_kappa(p, jnp.asarray(grid)))).tolist()
    d["curve_kappa_T2"] = np.asarray(thermal_conductivity(
        ConstantC(c_low), Material(mat.rho, mat.v_l, mat.v_t, gamma_ratio=mat.gamma_ratio),
        jnp.asarray(grid))).tolist()
    if d["T_U_K"] > hi:
        res.notes.append(f"T_U = {d['T_U_K']:.3g} K lies above the data (T <= {hi:.3g} K): "
                         "the data show no crossover, so g and J_o are constrained only "
                         "through the onset of the deviation from T^2")
    if "rms_log_residual_above_1K" in d and "rms_log_residual_below_1K" in d:
        res.notes.append(f"rms log residual {d['rms_log_residual_below_1K']:.3g} below 1 K, "
                         f"{d['rms_log_residual_above_1K']:.3g} above 1 K")
