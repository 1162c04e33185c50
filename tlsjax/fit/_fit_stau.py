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
errors are scaled by the reduced chi^2 (`absolute_sigma=False`; the residuals then use a
nominal sigma = 0.01, which only sets the scale of the loss). The model (`KappaModel`,
`_kappa_model.py`) is the S-tau C(E), tabulated once per (a~, h_rel) and shared by every
fit at those settings (rebuilt in the loss only when a~ or h_rel is free), or a constant
C, each with optional boundary and Rayleigh terms; `select_kappa_model` (`_select.py`)
chooses among them. After the fit (`post_fit`): derived quantities from one compiled
`evaluate`, and profile-likelihood bounds (`_profile.py`) for T_U and for parameters the
Laplace errors do not describe. Ctrl-C in that stage keeps the fit (`interrupted`).

**Without sound velocities (convention of this package).** With resonant scattering
kappa = sum_alpha (branches / v_alpha) F[C(E)], and C(E) is proportional to kappa_log,
so kappa depends on kappa_log and the velocities only through kappa_log * v_eff, with
3 / v_eff = 1 / v_l + 2 / v_t (exact for C_l = C_t, the `Material` default); rho does
not enter at all. So when no `material` is given the fit uses one effective velocity
and fits the identifiable combination `kv` = kappa_log v_eff (m/s) instead of
inventing velocities; it reports C_o v_eff = kappa_log g v_eff = g kv, and `C_o` is
null. The boundary and Rayleigh terms then enter as l_b / v_eff^2 (`l_b_v2`) and
A_R v_eff^2 (`rayleigh_v2`), the combinations the data fix (see `_kappa_model.py`; with
distinct v_l, v_t this one-velocity reduction is approximate). With a `material`
(rho, v_l, v_t), kappa_log, l_b and A_R themselves are fitted and C_o = kappa_log g is
reported. Q^-1 needs the material (its relaxation part depends on rho and v).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import threading
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .._background import in_background, overlap, stopping
from .._progress import progress_bar
from .._validate import check_range, check_type, device_array, seed_key
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
from ..observables._material import HBAR, K_B, Material
from ..observables._stm import T_MAX_K, T_MIN_K
from ..observables._table import TabulatedStauTLS
from ._data import Curve, load_curve
from ._fit import (
    NOMINAL_SIGMA as _NOMINAL_SIGMA,
)
from ._fit import (
    PARAMETERS,
    FitResult,
    _unconstrained,
    information,
    jacobian_fd,
    least_squares,
    make_problem,
    param_arrays,
    propagate_gradient,
    propagate_product,
    propagate_u,
    residuals_at,
    with_errors,
)
from ._fit import (
    prefetch_programs as fit_prefetch,
)
from ._kappa_model import (
    BOUNDARY_KAPPA_CONST,
    GRID_POINTS,
    RAYLEIGH_K_PER_SI,
    KappaModel,
    _key_data,
    amplitude_name,
    boundary_name,
    evaluate,
    names_for,
    placeholder_table,
    prefetch_evaluate,
    rayleigh_name,
    rebuild_table,
    stau_table,
    stau_table_later,
)
from ._params import (
    as_parameters,
    bound_side,
    canonical_name,
    factor,
    internal,
    label,
    named,
    unit,
)
from ._profile import (
    DEFAULT_LEVEL,
    LAPLACE_TOLERANCE,
    laplace_rises,
    laplace_stands,
    profile_interval,
    profile_threshold,
    strongly_correlated,
)

#: Stage messages (the command line shows them on stderr; silent by default).
_log = logging.getLogger("tlsjax.fit")

_MODEL_FIELDS = ("g", "J0", "atilde", "h_rel", "kappa_log")
#: Default relative (log) uncertainty of the targets C_o and T_U.
DEFAULT_TARGET_SIGMA = 0.1
_CRITERIA = ("shortcut", "full")


def _dos_settings(sample, realizations, key, seed=None):
    """(sample, realizations, key, seed): defaults filled in; a `seed` (an integer in
    [0, 2^64 - 1], the command line's --seed) gives the key by `seed_key`, the same key
    in float32 and float64, and is recorded; it cannot be given with `key`."""
    sample = Sample(DEFAULT_DOS_X, DEFAULT_DOS_CELLS) if sample is None else sample
    if seed is not None:
        if key is not None:
            raise ValueError("give the DOS sample's key or its seed, not both")
        return sample, realizations, seed_key("fit", "seed", seed), int(seed)
    if key is None:
        return sample, realizations, jax.random.PRNGKey(DEFAULT_DOS_SEED), DEFAULT_DOS_SEED
    return sample, realizations, key, None


def _dos_meta(sample, realizations, key, seed=None) -> dict:
    """The DOS sample's settings for the JSON: the key's data (and the seed it came from,
    when the caller knows it: the command line's --seed)."""
    return dict(x=float(sample.x), cells=int(sample.lattice.cells),
                lattice=type(sample.lattice).__name__, realizations=realizations,
                key=[int(v) for v in _key_data(key)], seed=seed)


def _model_params(p: dict) -> ModelParams:
    return ModelParams(**{k: p[k] for k in _MODEL_FIELDS})


def _tu(criterion: str):
    def fn(dos, mp):
        c = crossover(StauTLS(dos, mp), at_bound="edge")
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
    seed: int | None = None,
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
    - `sample`, `realizations`, `key`: the ES sample of the DOS (as `stau_dos`); or
      `seed` (an integer in [0, 2^64 - 1]) instead of `key`: the same sample in float32
      and float64, recorded in the JSON.
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
    sample, realizations, key, seed = _dos_settings(sample, realizations, key, seed)
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
        criterion=criterion, dos_sample=_dos_meta(sample, realizations, key, seed),
        report_fixed=[n for n in _MODEL_FIELDS if n not in free]),
        **fit_kwargs)
    try:
        _targets_derived(res, free, C0, T_U, sigma_C0, sigma_T_U, tu_fn, dos_of)
    except KeyboardInterrupt:
        res.interrupted = True
        res.notes.insert(0, "interrupted during the post-fit stage: the derived quantities "
                         "(C_o, T_U and their errors) were not all computed")
    return res


def _targets_derived(res, free, C0, T_U, sigma_C0, sigma_T_U, tu_fn, dos_of) -> None:
    # the model's C_o and T_U are in the residuals: ln X = ln target + sigma r, so their
    # values and gradients come from the compiled residual function (no new compilation)
    u = _unconstrained(res.problem, res.params)
    idx = [res.problem.names.index(n) for n in free]
    r = residuals_at(res.problem, u)
    J = jacobian_fd(res.problem, u, idx)
    c0 = C0 * math.exp(sigma_C0 * r[0])
    tu = T_U * math.exp(sigma_T_U * r[1])
    c0, c0_err = propagate_u(res, c0, c0 * sigma_C0 * J[0])
    tu, tu_err = propagate_u(res, tu, tu * sigma_T_U * J[1])
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
    for name, val, target, sig in (("C_o", c0, C0, sigma_C0), ("T_U", tu, T_U, sigma_T_U)):
        if abs(math.log(val / target)) > 3.0 * sig:
            res.notes.insert(0, f"the target {name} = {target:g} is not reached within the "
                             f"parameter bounds: the best fit gives {name} = {val:.4g} "
                             f"({abs(math.log(val / target)) / sig:.1f} sigma away)")


# ---------------------------------------------------------------- curves


def _as_curve(data, quantity) -> Curve:
    if isinstance(data, Curve):
        if data.quantity != quantity:
            raise ValueError(f"expected a {quantity} curve; got a {data.quantity} curve "
                             f"from {data.source}")
        return data
    return load_curve(data, quantity)


def _check_points(curve: Curve, n_free: int, absolute: bool = True) -> None:
    """At least k + 2 distinct temperatures for k free parameters (one more than the
    parameters to estimate the scatter or judge the fit, one more for AICc), and every
    temperature inside the model's range (reported with its line number)."""
    for i, t in enumerate(curve.T):
        if not T_MIN_K <= t <= T_MAX_K:
            line = f", line {curve.lines[i]}" if curve.lines else ""
            raise ValueError(f"{curve.source}{line}: temperature {t:g} K is outside the "
                             f"model's range [{T_MIN_K:g}, {T_MAX_K:g}] K")
    distinct = int(np.unique(curve.T).size)
    need = n_free + 2
    if distinct < need:
        raise ValueError(f"{curve.source}: {distinct} distinct temperature(s) ({curve.n} "
                         f"point(s)) for {n_free} free parameter(s); at least {need} are "
                         "needed (k + 1 to judge the fit, one more for AICc)")


def _per_point(where, name, value, n, default):
    """A scalar or length-n array of positive numbers (`ValueError` naming `name`)."""
    if value is None:
        return default
    arr = np.asarray(check_range(where, name, value, 0.0, lo_open=True), dtype=float)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.size not in (1, n)):
        raise ValueError(f"`{where}({name}=...)` must be a scalar or have one value per data "
                         f"point ({n}); got shape {arr.shape}")
    return np.broadcast_to(arr.reshape(-1)[0] if arr.size == 1 else arr, (n,)).copy()


def _sigma(where, name, sigma_log, n):
    """(sigma per point, absolute): without sigma_log, a nominal 0.01 (the covariance is
    then scaled by the reduced chi^2, so the errors do not depend on it; it only keeps
    the loss of order one for the stopping rule in float32)."""
    if sigma_log is None:
        return np.full(n, _NOMINAL_SIGMA), False
    return _per_point(where, name, sigma_log, n, None), True


#: Nominal residual scale when the data carry no errors (see `_sigma`).
_MODELS = ("stau", "stm")
_ALIASES = {"boundary": "l_b", "l_b": "l_b", "l_b_v2": "l_b", "rayleigh": "rayleigh",
            "rayleigh_v2": "rayleigh", "A_R": "rayleigh"}


@dataclasses.dataclass
class KappaSetup:
    """Everything a kappa fit needs besides the choice of model (shared by candidates)."""

    curve: Curve
    model: KappaModel
    velocity_free: bool
    absolute: bool
    init: ModelParams
    kv: float | None
    table: TabulatedStauTLS | None
    dos_meta: dict
    meta: dict
    joint: bool
    rebuild: Callable | None = None
    user: UserChoice | None = None
    #: Where the table is still being built (`need_table="later"`): waits for it.
    pending: Callable[[], TabulatedStauTLS] | None = None

    def with_table(self) -> KappaSetup:
        """This setup with its S-tau table (waiting for it where it is being built)."""
        if self.pending is None:
            return self
        table = self.pending()
        return dataclasses.replace(self, table=table, pending=None,
                                   model=eqx.tree_at(lambda m: m.table, self.model, table))


@dataclasses.dataclass
class UserChoice:
    """What a user's `Parameters` fix, free, start and bound (engine names and units)."""

    fixed: dict[str, float]
    vary: list[str]
    start: dict[str, float]
    bounds: dict[str, tuple[float, float]]


_VELOCITY_NAMES = {True: ("kv", "Cv", "l_b_v2", "rayleigh_v2"),
                   False: ("kappa_log", "C", "l_b", "rayleigh")}


def user_choice(params, velocity_free: bool, allowed=None) -> UserChoice | None:
    """Read a `Parameters` (or lmfit Parameters, or dict) for a kappa fit: every name must
    be a parameter of the kappa models, in the set that matches `velocity_free` (or one of
    `allowed`, where given)."""
    if params is None:
        return None
    values, vary, bounds = internal(as_parameters(params), PARAMETERS)
    if allowed is None:
        allowed = [k for k in PARAMETERS if k not in _VELOCITY_NAMES[not velocity_free]]
    for n in values:
        canonical_name(n, allowed)
    fixed = {n: v for n, v in values.items() if n not in vary}
    return UserChoice(fixed, vary, {n: values[n] for n in vary}, bounds)


def _term_options(user: UserChoice | None, velocity_free: bool, boundary, rayleigh):
    """boundary / rayleigh options, with what the user's Parameters say about the terms."""
    if user is None:
        return boundary, rayleigh
    out = []
    for name, opt in ((boundary_name(velocity_free), boundary),
                      (rayleigh_name(velocity_free), rayleigh)):
        if name in user.fixed:
            opt = user.fixed[name]
        elif name in user.vary:
            opt = "free"
        out.append(opt)
    return tuple(out)


def _term(where, name, value, material_value):
    """Resolve a boundary / Rayleigh option: ("absent"|"free"|"fixed", value or None)."""
    if value is None:
        return ("fixed", material_value) if material_value is not None else ("absent", None)
    if isinstance(value, str):
        if value in ("absent", "free"):
            return value, None
        raise ValueError(f"`{where}({name}=...)` must be None, 'absent', 'free' or a positive "
                         f"number; got {value!r}")
    v = float(check_range(where, name, value, 0.0))
    return ("absent", None) if v == 0.0 else ("fixed", v)


def prepare_kappa(data, material=None, *, init=None, kv=None, sigma_log=None, weights=None,
                  qinv_data=None, freq=None, sigma_log_qinv=None, polarization="t",
                  sample=None, realizations=DEFAULT_DOS_REALIZATIONS, key=None, seed=None,
                  need_table=True, n_free: int = 1, params=None) -> KappaSetup:
    """Load and check the data (at least enough points for `n_free` free parameters),
    build the S-tau table (cached; `need_table="later"`: in a background thread, see
    `KappaSetup.with_table`) and the residual model. `params`: a user's `Parameters`
    (values, vary, bounds by name; see `fit_kappa`)."""
    velocity_free = material is None
    user = user_choice(params, velocity_free)
    curve = _as_curve(data, "kappa")
    _check_points(curve, n_free)
    if freq is not None and qinv_data is None:
        raise ValueError("`fit_kappa(freq=...)` is the frequency of a Q^-1 curve: give "
                         "qinv_data (--qinv FILE) with it, or leave it out")
    w = _per_point("fit_kappa", "weights", weights, curve.n, curve.weight)
    sig, absolute = _sigma("fit_kappa", "sigma_log",
                           curve.sigma_log if sigma_log is None else sigma_log, curve.n)
    joint = qinv_data is not None
    q = {}
    if joint:
        if velocity_free:
            raise ValueError("`fit_kappa(qinv_data=...)` needs a Material (rho, v_l, v_t): "
                             "the relaxation part of Q^-1 depends on them")
        if freq is None:
            raise ValueError("`fit_kappa(freq=...)` must be given with qinv_data (Hz)")
        check_range("fit_kappa", "freq", freq, 0.0, lo_open=True)
        qcurve = _as_curve(qinv_data, "qinv")
        _check_points(qcurve, 0)
        qs, qabs = _sigma("fit_kappa", "sigma_log_qinv", qcurve.sigma_log
                          if sigma_log_qinv is None else sigma_log_qinv, qcurve.n)
        if qabs != absolute:
            raise ValueError("give both sigma_log and sigma_log_qinv, or neither")
        q = dict(q_T=device_array(qcurve.T), q_log_y=device_array(np.log(qcurve.y)),
                 q_scale=device_array(np.sqrt(qcurve.weight) / qs),
                 omega=device_array([2.0 * math.pi * float(freq)]), polarization=polarization)
    sample, realizations, key, seed = _dos_settings(sample, realizations, key, seed)
    init = ModelParams() if init is None else init
    if user is not None:
        given = {**user.start, **user.fixed}
        init = ModelParams(**{k: given.get(k, float(getattr(init, k))) for k in _MODEL_FIELDS})
    atilde, h_rel = float(init.atilde), float(init.h_rel)
    table, pending = _setup_table(need_table, joint, sample, realizations, key, atilde, h_rel)
    if velocity_free:
        mat = Material(1.0, 1.0, 1.0)
    else:
        mat = Material(material.rho, material.v_l, material.v_t,
                       gamma_ratio=material.gamma_ratio, gamma_t=material.gamma_t)
    km = KappaModel(device_array(curve.T), device_array(np.log(curve.y)),
                    device_array(np.sqrt(w) / sig), table if table is not None
                    else placeholder_table(), mat, device_array(False), device_array(False),
                    velocity_free, **q)
    meta = dict(kind="kappa", data=curve.source, citation=curve.citation,
                velocity_free=velocity_free, absolute_sigma=absolute,
                sigma_source=("argument" if sigma_log is not None else "file column"
                              if curve.sigma is not None else "none (scaled by chi^2)"),
                ignored_columns=list(curve.ignored), delimiter=curve.delimiter,
                material=None if velocity_free else dict(
                    rho=float(material.rho), v_l=float(material.v_l), v_t=float(material.v_t),
                    gamma_ratio=float(material.gamma_ratio),
                    gamma_t_eV=float(material.gamma_t)),
                dos_sample=_dos_meta(sample, realizations, key, seed),
                atilde=atilde, h_rel=h_rel,
                data_T=curve.T.tolist(), data_kappa=curve.y.tolist())
    if joint:
        meta.update(qinv_data=qcurve.source, freq_Hz=float(freq), polarization=polarization,
                    data_qinv_T=qcurve.T.tolist(), data_qinv=qcurve.y.tolist())
    rebuild = functools.partial(rebuild_table, sample, realizations, key)
    if user is not None:
        kv = user.fixed.get("kv", user.start.get("kv", kv))
        meta["user_parameters"] = dict(fixed=user.fixed, vary=user.vary, bounds=user.bounds)
    return KappaSetup(curve, km, velocity_free, absolute, init, kv, table,
                      meta["dos_sample"], meta, joint, rebuild, user, pending)


def _setup_table(need_table, joint, sample, realizations, key, atilde, h_rel):
    """(table, None), (None, function that waits for it: `need_table="later"`), or
    (None, None) where no table is needed."""
    if not (need_table or joint):
        return None, None
    _log.info(f"S-tau C(E) at a~ = {atilde:g}, h_rel = {h_rel:g}: ES reduction of "
              f"{realizations} realization(s), x = {float(sample.x):g}, "
              f"L = {int(sample.lattice.cells)} (once per process)")
    if need_table == "later" and not joint:
        return None, stau_table_later(sample, realizations, key, atilde, h_rel)
    return stau_table(sample, realizations, key, atilde, h_rel), None


def _material_terms(material):
    """(l_b, Rayleigh in the fit's units) fixed by a Material, or None."""
    if material is None:
        return None, None
    lb = float(material.boundary)
    ray = float(material.rayleigh) * RAYLEIGH_K_PER_SI
    return (lb if math.isfinite(lb) else None), (ray if ray > 0 else None)


def _resolve_free(model, free, velocity_free, boundary, rayleigh, material):
    """(free names, fixed values of the extra terms, notes) for one candidate model."""
    if model not in _MODELS:
        raise ValueError(f"`fit_kappa(model=...)` must be one of {_MODELS}; got {model!r}")
    amp = amplitude_name(model, velocity_free)
    bname, rname = boundary_name(velocity_free), rayleigh_name(velocity_free)
    notes = []
    if free is None:
        free = ["g", "J0", amp] if model == "stau" else [amp]
    free = list(free)
    terms = {}
    for n in list(free):
        if n in _ALIASES:
            target = bname if _ALIASES[n] == "l_b" else rname
            if n != target:
                notes.append(f"'{n}' fitted as {target} ({PARAMETERS[target][3]})")
            free[free.index(n)] = target
    if velocity_free and "kappa_log" in free:
        raise ValueError("`fit_kappa(free=...)`: kappa_log is not determined by kappa(T) "
                         "without sound velocities (kappa depends on kappa_log * v_eff); "
                         "fit 'kv' or pass a Material")
    if amp not in free and (velocity_free or model == "stm"):
        free.append(amp)
        if velocity_free:
            notes.append(f"{amp} = {PARAMETERS[amp][3]} added to the free parameters: without "
                         "sound velocities it sets the amplitude of kappa")
    mat_lb, mat_ray = _material_terms(material)
    for name, opt, mat_v in ((bname, boundary, mat_lb), (rname, rayleigh, mat_ray)):
        mode, value = _term("fit_kappa", "boundary" if name == bname else "rayleigh", opt, mat_v)
        if name in free:
            mode = "free"
        if mode == "free" and name not in free:
            free.append(name)
        terms[name] = (mode, value)
    _check_free(free, _allowed(model, velocity_free), "fit_kappa")
    if "J0" in free and "T_U" in free:
        raise ValueError("`fit_kappa(free=...)`: J0 and T_U cannot both be free (T_U = g J_o "
                         "eps*(g) fixes one from the other)")
    return free, terms, notes


def _allowed(model, velocity_free) -> tuple[str, ...]:
    """The parameters of one kappa model."""
    amp = amplitude_name(model, velocity_free)
    terms = (boundary_name(velocity_free), rayleigh_name(velocity_free))
    return ("g", "J0", "T_U", "atilde", "h_rel", amp, *terms) if model == "stau" else (amp, *terms)


def _apply_user(user, velocity_free, model, free, fit_kwargs, allowed=None) -> list[str]:
    """The free set after the user's Parameters (vary=False fixes, vary=True frees what the
    model has, `allowed`: default the kappa model's parameters); their bounds go to
    `fit_kwargs["bounds"]` (explicit `bounds` win)."""
    if user is None:
        return free
    allowed = _allowed(model, velocity_free) if allowed is None else allowed
    free = [n for n in free if n not in user.fixed]
    free += [n for n in user.vary if n not in free and n in allowed
             and not (n == "J0" and "T_U" in free) and not (n == "T_U" and "J0" in free)]
    fit_kwargs["bounds"] = {**user.bounds, **(fit_kwargs.get("bounds") or {})}
    return free


def _user_start(setup, p0, free, bounds, start) -> dict:
    """p0 with the user's fixed values and starts (not over a nested model's fit), and
    every free start moved inside its bounds."""
    if setup.user is not None:
        p0.update(setup.user.fixed)
        if start is None:
            p0.update({n: v for n, v in setup.user.start.items() if n in free})
    for n in free:
        if n in (bounds or {}):
            lo, hi = bounds[n]
            p0[n] = float(min(max(p0[n], lo * 1.001), hi / 1.001))
    return p0


def _model_label(model, terms):
    parts = ["S-tau" if model == "stau" else "constant C"]
    for name, word in (("l_b", "boundary"), ("rayleigh", "Rayleigh")):
        for n, (mode, _) in terms.items():
            if n.startswith(name) and mode != "absent":
                parts.append(word + (" (fixed)" if mode == "fixed" else ""))
    return " + ".join(parts)


def _starting_values(setup: KappaSetup, model, free, terms, start: dict | None):
    """Starting values of every parameter of the model (physical units)."""
    km, curve, vf = setup.model, setup.curve, setup.velocity_free
    p0 = {n: 1.0 for n in names_for(vf)}
    init = setup.init
    p0.update(g=float(init.g), J0=float(init.J0), atilde=float(init.atilde),
              h_rel=float(init.h_rel))
    if not vf:
        p0.update(kappa_log=float(init.kappa_log), C=float(init.kappa_log * init.g))
    p0[boundary_name(vf)] = math.inf
    p0[rayleigh_name(vf)] = 0.0
    for name, (mode, value) in terms.items():
        if mode == "fixed":
            p0[name] = value
    km1 = _with_model(km, model)
    amp = amplitude_name(model, vf)
    if vf:
        p0["kv"] = p0["Cv"] = float(setup.kv) if setup.kv is not None else 1.0
    if start:  # a nested model's fit; its absent terms (inf, 0) are not starting values
        start = {k: v for k, v in start.items() if k in p0 and (
            k not in PARAMETERS or PARAMETERS[k][0] < v < PARAMETERS[k][1])}
        p0.update(start)
    if "T_U" in free:
        p0["T_U"] = float(_evaluate(km1, p0, curve)["T_U"][0])
        if not (math.isfinite(p0["T_U"]) and p0["T_U"] > 0):
            p0["T_U"] = float(curve.T[-1])
    if amp in free and not (start and amp in start) and (setup.kv is None or not vf):
        # kappa is proportional to 1 / amplitude without the extra terms; the residuals
        # come from the compiled residual function that the error estimate needs anyway
        pr = make_problem(km1, p0, [], {})  # all fixed: the model at p0
        r = residuals_at(pr, np.zeros(len(pr.names)))
        n = curve.n
        lk = r[:n] / np.asarray(km.scale) + np.log(curve.y)
        ratio = float(np.exp(np.median(lk - np.log(curve.y))))
        lo, hi = PARAMETERS[amp][:2]
        p0[amp] = float(np.clip(p0[amp] * ratio, lo * 2.0, hi / 2.0))
    _extra_starts(setup, km1, p0, terms, start)
    return p0


def prefetch_programs(setup: KappaSetup) -> None:
    """Start compiling the programs every candidate model of `setup` shares (residuals,
    L-BFGS step, `evaluate`) in background threads (`_fit.prefetch_programs`)."""
    km, curve, vf = setup.model, setup.curve, setup.velocity_free
    p0 = {n: 1.0 for n in names_for(vf)}
    amp = amplitude_name("stm", vf)
    fit_prefetch(make_problem(km, p0, [amp], {amp: PARAMETERS[amp][:2]}))
    _prefetch_evaluate(km, p0, curve)


def _extra_starts(setup, km1, p0, terms, start):
    """Boundary term: alone it would give 3x the data at the lowest T. Rayleigh term:
    0.3 x the resonant l^-1 of the thermal phonon (hbar omega = 4 k_B T) at the highest T."""
    vf, curve = setup.velocity_free, setup.curve
    bname, rname = boundary_name(vf), rayleigh_name(vf)
    mat = setup.model.material
    v2_inv = 1.0 if vf else float((1.0 / mat.v_l**2 + 2.0 / mat.v_t**2) / 3.0)
    if terms[bname][0] == "free" and not (start and bname in start):
        T0, k0 = float(curve.T[0]), float(curve.y[0])
        lb_v2 = 3.0 * k0 / (BOUNDARY_KAPPA_CONST * T0**3)
        val = lb_v2 if vf else lb_v2 / v2_inv
        lo, hi = PARAMETERS[bname][:2]
        p0[bname] = float(np.clip(val, lo * 2.0, hi / 2.0))
    if terms[rname][0] == "free" and not (start and rname in start):
        T1 = float(curve.T[-1])
        E = 4.0 * T1
        c = float(_evaluate(km1, p0, curve)["strength"][1])
        omega = E * K_B / HBAR
        if vf:  # `KappaModel.amplitude`, on the host
            v = float(np.asarray(p0["Cv" if bool(km1.stm) else "kv"],
                                 dtype=jnp.result_type(float)))
        else:
            v = float(mat.v_t)
        inv_res = math.pi * c * omega / v * math.tanh(2.0)
        ray = 0.3 * inv_res / E**4
        val = ray * v * v if vf else ray
        lo, hi = PARAMETERS[rname][:2]
        p0[rname] = float(np.clip(val, lo * 2.0, hi / 2.0))


def _evaluate(km: KappaModel, p: dict, curve: Curve) -> dict:
    """`evaluate` on the figure's grid, at C(E -> 0) and at the thermal phonon of the
    highest temperature (hbar omega = 4 k_B T)."""
    grid, energies = _evaluate_at(p, curve)
    out = evaluate(km, param_arrays(p), grid, energies)
    return dict(jax.tree_util.tree_map(np.asarray, out), grid=np.asarray(grid))


def _evaluate_at(p: dict, curve: Curve):
    lo, hi = float(curve.T[0]), float(curve.T[-1])
    grid = device_array(np.geomspace(lo / 1.5, hi * 1.5, GRID_POINTS))
    g, J0 = float(p.get("g", 0.02)), float(p.get("J0", 500.0))
    return grid, device_array([1e-6 * g * J0, 4.0 * hi])


def _prefetch_evaluate(km: KappaModel, p: dict, curve: Curve) -> None:
    """`_evaluate`'s program, started (`stored_jit.prefetch`)."""
    grid, energies = _evaluate_at(p, curve)
    prefetch_evaluate(km, param_arrays(p), grid, energies)


def _with_model(km: KappaModel, model: str, use_tu: bool = False) -> KappaModel:
    return eqx.tree_at(lambda m: (m.stm, m.use_tu), km,
                       (device_array(model == "stm"), device_array(use_tu)))


def fit_kappa_model(setup: KappaSetup, model: str = "stau", *, free=None, boundary=None,
                    rayleigh=None, material=None, starts_from: Sequence[dict | None] = (None,),
                    level: float = DEFAULT_LEVEL, profile: bool = True, post: bool = True,
                    **fit_kwargs) -> FitResult:
    """One candidate model fitted on a prepared setup (see `fit_kappa`).

    `starts_from`: starting points to fit from (None: the default starting values; a
    dict: values to start from, e.g. a nested model's fit); the best fit is kept, and only
    its errors are computed. `post=False` (a candidate of a model selection) leaves them to
    `with_errors`, for the candidate that is chosen.
    """
    check_range("fit_kappa", "level", level, 0.5, 1.0, lo_open=True, hi_open=True)
    boundary, rayleigh = _term_options(setup.user, setup.velocity_free, boundary, rayleigh)
    free, terms, notes = _resolve_free(model, free, setup.velocity_free, boundary, rayleigh,
                                       material)
    free = _apply_user(setup.user, setup.velocity_free, model, free, fit_kwargs)
    if setup.joint and model == "stm":
        raise ValueError("a joint kappa and Q^-1 fit needs the S-tau model")
    _check_points(setup.curve, len(free), setup.absolute)
    km = _with_model(setup.model, model, use_tu="T_U" in free)
    if any(n in free for n in ("atilde", "h_rel")):
        km = dataclasses.replace(km, rebuild=setup.rebuild)
        notes.append("a~ or h_rel free: the ES reduction and the C(E) table are rebuilt at "
                     "every evaluation (slow; with both fixed the table is built once)")
    model_label = _model_label(model, terms)
    shown = (["g", "J0", "atilde", "h_rel"] + ([] if setup.velocity_free else ["kappa_log"])
             if model == "stau" else []) + [n for n, (m, _) in terms.items() if m == "fixed"] + [
                 amplitude_name(model, setup.velocity_free)]
    meta = dict(setup.meta, model=model, model_label=model_label, report_fixed=shown,
                terms={n: dict(mode=m, value=v) for n, (m, v) in terms.items()})
    res, losses = None, []
    for start in starts_from:
        p0 = _user_start(setup, _starting_values(setup, model, free, terms, start), free,
                         fit_kwargs.get("bounds"), start)
        r = least_squares(km, p0, free, absolute_sigma=setup.absolute, meta=meta,
                          errors=False, **fit_kwargs)
        losses.append(r.loss)
        if res is None or r.loss < res.loss or r.interrupted:
            res = r
        if r.interrupted:
            break
    res.meta["start_point_losses"] = losses
    res.notes[:0] = notes
    if post:
        res = with_errors(res)
    res.derived.update(model=model, model_label=model_label, **information(res))
    if not res.interrupted:
        r = residuals_at(res.problem, _unconstrained(res.problem, res.params))[:setup.curve.n]
        r = r / np.asarray(km.scale, dtype=float)
        res.derived["rms_log_residual"] = float(np.sqrt(np.mean(r**2)))
    if post and not res.interrupted:
        post_fit(res, setup, level=level, profile=profile,
                 progress=fit_kwargs.get("progress", True))
    return res


def fit_kappa(
    data,
    material: Material | None = None,
    *,
    model: str = "stau",
    free: Sequence[str] | None = None,
    init: ModelParams | None = None,
    kv: float | None = None,
    boundary=None,
    rayleigh=None,
    sigma_log=None,
    weights=None,
    qinv_data=None,
    freq: float | None = None,
    sigma_log_qinv=None,
    polarization: str = "t",
    sample: Sample | None = None,
    realizations: int = DEFAULT_DOS_REALIZATIONS,
    key: PRNGKeyArray | None = None,
    seed: int | None = None,
    level: float = DEFAULT_LEVEL,
    profile: bool = True,
    params=None,
    **fit_kwargs,
) -> FitResult:
    """Fit one model of kappa(T) (optionally jointly with Q^-1(T)): S-tau or constant C,
    with optional boundary and Rayleigh terms. `select_kappa_model` chooses among them.

    **Arguments:**

    - `data`: a `Curve` of kappa or a CSV path (`load_curve`).
    - `material`: `Material` with rho, v_l, v_t (its `boundary` and `rayleigh`, if set,
      are fixed terms); `None` fits the velocity-free combinations (module docstring).
    - `model`: `"stau"` (C(E) of the S-tau model, default) or `"stm"` (constant C, the
      plain standard tunneling model: the null hypothesis).
    - `free`: free parameters (default g, J0 and the amplitude for S-tau, the amplitude
      alone for constant C; the amplitude is kv / kappa_log (S-tau) or Cv / C (constant
      C) without / with a material; without a material it is always added, since it
      sets the size of kappa there). `T_U` may replace `J0`.
      "boundary" and "rayleigh" in `free` are the same as the options below set to
      "free".
    - `init`: starting / fixed model parameters (default `ModelParams()`); its a~ and
      h_rel fix the S-tau table.
    - `kv`: starting kv in m/s (default: matched to the data).
    - `boundary`: None (absent, or the material's l_b), "absent", "free", or a fixed value
      (l_b in m with a material, l_b / v_eff^2 in s^2/m without).
    - `rayleigh`: None or 0 (absent, or the material's A_R), "absent", "free", or a fixed
      value (A_R (k_B/hbar)^4 in 1/(m K^4) with a material, times v_eff^2 without).
    - `sigma_log`, `weights`: per-point (or scalar) 1-sigma of ln kappa and weights
      (default: the file's `weight` column). Without `sigma_log` the covariance is
      scaled by the reduced chi^2, and one more point than free parameters is needed.
    - `qinv_data`, `freq`, `sigma_log_qinv`, `polarization`: a Q^-1(T) curve measured at
      `freq` Hz, fitted jointly (needs `material` and the S-tau model).
    - `sample`, `realizations`, `key`: the ES sample of the DOS (as `stau_dos`); or
      `seed` (an integer in [0, 2^64 - 1]) instead of `key`: the same sample in float32
      and float64, recorded in the JSON.
    - `level`: confidence of the profile-likelihood bounds (default 0.95, one-sided).
    - `profile`: compute profile-likelihood bounds for T_U and for parameters the
      Laplace errors do not describe (at a bound, undetermined, poorly determined, or
      correlated at |r| >= 0.99 with another where the profile at the Laplace bounds
      departs from a quadratic loss, `fit._profile.laplace_rises`).
    - `params`: a `Parameters` (or an lmfit `Parameters`, or a dict of values) by
      physical name, in displayed units (`J_o` in K, `A_R` in s^4/m, ...): `vary=False`
      fixes a value, `vary=True` fits it (added to the model's free parameters where the
      model has it), `min` / `max` bound it, and the value is the start. It wins over
      `init`, `kv`, `boundary` and `rayleigh` for the names it holds.
    - `fit_kwargs`: passed to `least_squares` (starts, max_steps, progress, ...).

    **Returns:** a `FitResult`; `derived` holds the model label, information criteria,
    C_o (or C_o v_eff), T_U_K with its profile bounds, the extra-scattering parameters in
    SI units, rms log residuals, the curves for plotting, and the data. If Ctrl-C ends
    the fit or its post-fit stage, the result so far is returned with `interrupted`.
    """
    # check the options before the (seconds-long) ES reduction of the table
    check_range("fit_kappa", "level", level, 0.5, 1.0, lo_open=True, hi_open=True)
    check_type("fit_kappa", "sample", sample, (Sample, type(None)), "Sample or None")
    user = user_choice(params, material is None)
    b, r = _term_options(user, material is None, boundary, rayleigh)
    free0 = _resolve_free(model, free, material is None, b, r, material)[0]
    n_free = len(_apply_user(user, material is None, model, free0, {}))
    setup = prepare_kappa(data, material, init=init, kv=kv, sigma_log=sigma_log,
                          weights=weights, qinv_data=qinv_data, freq=freq,
                          sigma_log_qinv=sigma_log_qinv, polarization=polarization,
                          sample=sample, realizations=realizations, key=key, seed=seed,
                          need_table=model == "stau", n_free=n_free, params=params)
    return fit_kappa_model(setup, model, free=free, boundary=boundary, rayleigh=rayleigh,
                           material=material, level=level, profile=profile, **fit_kwargs)


# ---------------------------------------------------------------- after the fit


def post_fit(res: FitResult, setup: KappaSetup, *, level: float = DEFAULT_LEVEL,
             profile: bool = True, progress: bool = True) -> FitResult:
    """Derived quantities and profile bounds (`progress`: a bar over the profiled
    quantities); Ctrl-C here keeps the fit (`interrupted`)."""
    check_range("fit_kappa", "level", level, 0.5, 1.0, lo_open=True, hi_open=True)
    res.meta["post_fit"] = "started"
    try:
        _log.info("post-fit stage: derived quantities and profile-likelihood bounds "
                  f"({res.meta.get('model_label', '')})")
        _kappa_derived(res, setup)
        if profile and any(n in res.free for n in ("atilde", "h_rel")):
            res.notes.append("no profile-likelihood bounds with a~ or h_rel free (each "
                             "point would rebuild the ES reduction many times)")
        elif profile:
            _profiles(res, setup, level, progress)
        res.meta["post_fit"] = "done"
    except KeyboardInterrupt:
        res.interrupted = True
        res.meta["post_fit"] = "interrupted"
        res.notes.insert(0, "interrupted during the post-fit stage (derived quantities, "
                         "profile bounds): the best-fit parameters and their errors are "
                         "complete, what is missing below was not computed")
    return res


def _kappa_derived(res: FitResult, setup: KappaSetup) -> None:
    km = _with_model(setup.model, res.meta["model"], use_tu="T_U" in res.free)
    vf, curve, d = setup.velocity_free, setup.curve, res.derived
    r_all = residuals_at(res.problem, _unconstrained(res.problem, res.params))
    r = r_all[:curve.n] / np.asarray(km.scale, dtype=float)
    d["rms_log_residual"] = float(np.sqrt(np.mean(r**2)))
    d["max_abs_log_residual"] = float(np.max(np.abs(r)))
    d["residuals_log"] = r.tolist()
    for name, sel in (("below_1K", curve.T < 1.0), ("above_1K", curve.T >= 1.0)):
        if np.any(sel):
            d[f"rms_log_residual_{name}"] = float(np.sqrt(np.mean(r[sel] ** 2)))
    ev = _evaluate(km, res.params, curve)
    stau = res.meta["model"] == "stau"
    if stau:
        _stau_derived(res, km, ev)
    _amplitude_derived(res, vf, stau)
    _terms_derived(res, vf)
    d["curve_T"] = ev["grid"].tolist()
    d["curve_kappa"] = np.exp(ev["log_kappa"]).tolist()
    if any(t["mode"] != "absent" for t in res.meta["terms"].values()):
        d["curve_kappa_tls_only"] = np.exp(ev["log_kappa_tls"]).tolist()
    d["curve_kappa_T2"] = ev["kappa_T2"].tolist()
    if setup.joint:
        rq = r_all[curve.n:] / np.asarray(km.q_scale, dtype=float)
        d.update(rms_log_residual_qinv=float(np.sqrt(np.mean(rq**2))),
                 residuals_log_qinv=rq.tolist(),
                 model_qinv=np.exp(np.asarray(km.q_log_y) + rq).tolist())
    if "rms_log_residual_above_1K" in d and "rms_log_residual_below_1K" in d:
        res.notes.append(f"rms log residual {d['rms_log_residual_below_1K']:.3g} below 1 K, "
                         f"{d['rms_log_residual_above_1K']:.3g} above 1 K")


def _stau_derived(res, km, ev) -> None:
    d = res.derived
    for i, key in enumerate(("T_U_K", "T_U_full_K")):
        val = float(ev["T_U"][i])
        grad = {n: float(ev["T_U_grad"][n][i]) for n in res.free}
        d[key], d[f"{key}_err"] = propagate_gradient(res, val, grad)
        if not math.isfinite(val):
            d[key], d[f"{key}_err"] = math.nan, math.nan
            res.notes.append(f"T_U ({'P_S = 5 g' if i == 0 else 'full'} criterion): no "
                             "crossover on the tabulated energy range")
    # g in the working precision; J0 computed with `ev` (op-by-op it compiled ~40 programs)
    g, J0 = float(np.asarray(res.params["g"], dtype=jnp.result_type(float))), float(ev["J0"])
    d["J0_K"] = J0
    d["gJ0_K"] = g * J0
    d["E_tau_K"] = float(km.table.e_tau_mean) * g * J0
    d["phi_tau_0"] = float(np.exp(np.interp(math.log(1e-4), np.asarray(km.table.log_eps),
                                            np.asarray(km.table.log_phi_tau))))
    hi = res.meta["data_T"][-1]
    if math.isfinite(d["T_U_K"]) and d["T_U_K"] > hi:
        res.notes.append(f"T_U = {d['T_U_K']:.3g} K lies above the data (T <= {hi:.3g} K): "
                         "the data show no crossover, so g and J_o are constrained only "
                         "through the onset of the deviation from T^2")


def _amplitude_derived(res, vf, stau) -> None:
    d = res.derived
    if stau:
        phi0 = d["phi_tau_0"]
        if vf:
            d["C_o"] = None
            d["C_o_note"] = ("not determined without sound velocities: see C_o_v_eff_m_per_s "
                             "= kappa_log g v_eff")
            d["C_o_v_eff_m_per_s"], d["C_o_v_eff_m_per_s_err"] = propagate_product(
                res, "g", "kv")
            d["C_low_v_eff_m_per_s"] = d["C_o_v_eff_m_per_s"] * phi0
        else:
            d["C_o"], d["C_o_err"] = propagate_product(res, "kappa_log", "g")
            d["C_low"] = d["C_o"] * phi0
    elif vf:
        d["C_o"] = None
        d["C_o_note"] = "not determined without sound velocities: see C_o_v_eff_m_per_s"
        d["C_o_v_eff_m_per_s"], d["C_o_v_eff_m_per_s_err"] = res.params["Cv"], res.stderr.get("Cv", 0.0)
        d["C_low_v_eff_m_per_s"] = d["C_o_v_eff_m_per_s"]
    else:
        d["C_o"], d["C_o_err"] = res.params["C"], res.stderr.get("C", 0.0)
        d["C_low"] = d["C_o"]


def _terms_derived(res, vf) -> None:
    """The boundary and Rayleigh terms in SI units (see the `KappaModel` docstring)."""
    d = res.derived
    bname, rname = boundary_name(vf), rayleigh_name(vf)
    terms = res.meta["terms"]

    def err(n):  # None for a fixed term
        return res.stderr.get(n)

    if terms[bname]["mode"] != "absent":
        v, e = res.params[bname], err(bname)
        if vf:
            d["l_b_over_v_eff2_s2_per_m"], d["l_b_over_v_eff2_s2_per_m_err"] = v, e
        else:
            d["l_b_m"], d["l_b_m_err"] = v, e
    if terms[rname]["mode"] != "absent":
        v, e = res.params[rname], err(rname)
        if vf:
            d["A_R_v_eff2_s2_m"] = v / RAYLEIGH_K_PER_SI
            d["A_R_v_eff2_s2_m_err"] = None if e is None else e / RAYLEIGH_K_PER_SI
        else:
            d["A_R_s4_per_m"] = v / RAYLEIGH_K_PER_SI
            d["A_R_s4_per_m_err"] = None if e is None else e / RAYLEIGH_K_PER_SI


def _profiles(res: FitResult, setup: KappaSetup, level: float, progress: bool = True) -> None:
    """Profile-likelihood intervals of T_U and of the parameters Laplace does not describe
    (at a bound, undetermined, poorly determined, or correlated at |r| >=
    `STRONG_CORRELATION` with another where the profile does not bear the Laplace error
    out, `_check_correlated`), with a progress bar over them (`progress`)."""
    d = res.derived
    thr = profile_threshold(level, res.loss, res.dof, setup.absolute)
    if not math.isfinite(thr):
        return
    bounds = {n: tuple(b) for n, b in res.meta["bounds"].items()}
    out, lowest = {}, res.loss
    targets = [n for n in res.free if n in res.undetermined
               or not res.stderr_log[n] <= 1.0 or bound_side(res.params[n], *bounds[n])]
    paired, pair_notes = _check_correlated(res, setup, bounds, thr, level, skip=targets)
    targets += paired
    stau = res.meta["model"] == "stau"
    tu = d.get("T_U_K", math.nan)
    if stau and ("J0" in res.free or "T_U" in res.free) and math.isfinite(tu) and tu > 0:
        targets.insert(0, "T_U")
    names = list(dict.fromkeys(targets))
    with progress_bar(len(names), desc="profile bounds", enabled=progress,
                      unit="quantity") as bar:
        for name, (out[name], low) in _each_profile(res, setup, names, bounds, tu, thr,
                                                    level):
            lowest = min(lowest, low)
            bar.set_postfix(done=name, refresh=False)
            bar.update()
    d["profile"] = dict(level=level, delta_loss=thr, bounds=out)
    res.notes += pair_notes  # after the walks: an interrupted one leaves no promise behind
    if "T_U" in out:
        d["T_U_K_lower"], d["T_U_K_upper"] = out["T_U"]["lower"], out["T_U"]["upper"]
        d["T_U_K_bound_level"] = level
    for name, iv in out.items():
        res.notes.append(_bound_note(name, iv, level))
    if lowest < res.loss - 0.05 * thr:
        res.notes.append(f"the profile found a lower loss ({lowest:.6g}) than the fit "
                         f"({res.loss:.6g}): the fit had not reached its optimum")


def _check_correlated(res: FitResult, setup: KappaSetup, bounds: dict, thr: float,
                      level: float, skip) -> tuple[list[str], list[str]]:
    """The parameters of pairs correlated at |r| >= `STRONG_CORRELATION` whose Laplace
    errors the profile does not bear out (`laplace_rises`), to be profiled, and a note per
    pair checked. Parameters in `skip` (profiled anyway) are not checked, nor is a pair of
    two of them. The rises are kept in `derived["laplace_check"]`."""
    pairs = strongly_correlated(res.free, res.correlation, skip=res.undetermined)
    checked = list(dict.fromkeys(n for a, b, _ in pairs for n in (a, b) if n not in skip))
    if not checked:
        return [], []
    u = _unconstrained(res.problem, res.params)
    dof = None if setup.absolute else res.dof
    rises = {n: laplace_rises(res.problem, n, res.params[n], res.stderr_log[n], u, res.loss,
                              thr, bounds[n], level, dof) for n in checked}
    res.derived["laplace_check"] = dict(level=level, tolerance=LAPLACE_TOLERANCE, rises=rises)
    profiled, notes = [], []
    for a, b, r in pairs:
        mine = [n for n in (a, b) if n in rises]
        if not mine:
            continue
        pair_rises = [x for n in mine for x in rises[n]]
        span = f"{min(pair_rises):.2g}-{max(pair_rises):.2g}"
        both = len(mine) == 2
        whose = ("their Laplace errors put" if both else
                 f"the Laplace error of {named(mine[0])} puts")
        where = (f"at the points where {whose} "
                 f"the one-sided {100 * level:g} % bounds the profile rises by {span} times "
                 "what a bound needs")
        if laplace_stands(pair_rises):
            notes.append(f"{named(a)} and {named(b)} are correlated at {r:+.3f}; {where}: "
                         + ("the Laplace errors describe" if both else "its Laplace error "
                            "describes") + " the loss there")
            continue
        profiled += mine
        beyond = " (inf: the point lies beyond the parameter's range)" if math.inf in \
            pair_rises else ""
        notes.append(f"{named(a)} and {named(b)} are correlated at {r:+.3f}, and the loss is not "
                     f"quadratic along them: {where}{beyond}, so {'their' if both else 'its'} "
                     "profile-likelihood bounds are given")
    return list(dict.fromkeys(profiled)), notes


def _each_profile(res: FitResult, setup: KappaSetup, names, bounds, tu, thr, level):
    """(name, `_profile_one`) for each of `names`, in their order. Where the fits overlap
    work (`tlsjax._background.overlap`), all the quantities' walks run at once in background
    threads (each walk its own sequence of fits, so the results are those of one after the
    other); a stop or failure here ends them all."""
    def one(name):
        return _profile_one(res, setup, name, bounds, tu, thr, level)

    if not overlap():
        yield from ((name, one(name)) for name in names)
        return
    stop = threading.Event()
    with stopping(stop):
        slots = [in_background(lambda n=name: one(n), "tlsjax-profile", stop=stop)
                 for name in names]
        for name, slot in zip(names, slots):
            yield name, slot.get()


def _profile_one(res: FitResult, setup: KappaSetup, name: str, bounds: dict, tu: float,
                 thr: float, level: float) -> tuple[dict, float]:
    """The profile interval of one quantity (`_profiles`) and the lowest loss it met."""
    pr, value = res.problem, res.params[name]
    box = bounds.get(name, PARAMETERS[name][:2])
    if name == "T_U" and "T_U" not in res.free:
        value = tu
        box = PARAMETERS["T_U"][:2]
        new_free = [n if n != "J0" else "T_U" for n in res.free]
        pr = res.problem.with_free(new_free, {**bounds, "T_U": box})
        pr = eqx.tree_at(lambda q: q.residuals.use_tu, pr, jnp.asarray(True))
    if not box[0] < value < box[1]:
        value = min(max(value, box[0] * 1.0001), box[1] / 1.0001)
    u = _unconstrained(pr, {**res.params, "T_U": value})
    iv = profile_interval(pr, name, value, u, res.loss, thr, box,
                          dof=None if setup.absolute else res.dof)
    lowest = iv.pop("lowest_loss")
    return dict(best=value, level=level, **iv), lowest


def _bound_note(name, iv, level) -> str:
    """A profile bound in words, by physical name and in the report's units, with the sides
    whose profile levels off, comes back or could not be computed further (`side_notes`)."""
    return "; ".join([_bounds_in_words(name, iv, level), *side_notes(name, iv, level)])


def _bounds_in_words(name, iv, level) -> str:
    u = f" {unit(name)}" if unit(name) else ""
    f, full, short = factor(name), named(name), label(name)
    pct = f"{100 * level:g} %"
    lo, hi = (None if v is None else v * f for v in (iv["lower"], iv["upper"]))
    if lo is not None and hi is not None:
        return (f"{full}: {lo:.3g} < {short} < {hi:.3g}{u} (each side one-sided {pct}, "
                "profile likelihood)")
    failed = iv.get("fails_beyond", {})  # a walk that failed: the data beyond are not known

    def none(side):
        return f"no {side} bound is given" if side in failed else f"the data give no {side} bound"

    if lo is not None:
        return f"{full} > {lo:.3g}{u} ({pct} one-sided, profile likelihood); {none('upper')}"
    if hi is not None:
        return f"{full} < {hi:.3g}{u} ({pct} one-sided, profile likelihood); {none('lower')}"
    if failed:
        return f"{full}: no bound is given on either side within its range ({pct} profile)"
    return f"{full}: the data bound it on neither side within its range ({pct} profile)"


def side_notes(name, iv, level) -> list[str]:
    """Notes on the sides of a profile interval `iv` whose profile levels off (given as open),
    comes back below the bound's rise beyond its first crossing, or could not be computed
    further out (`fit._profile`)."""
    f, u = factor(name), f" {unit(name)}" if unit(name) else ""
    failed = iv.get("fails_beyond", {})
    notes = []
    for side, lv in iv.get("levels_off", {}).items():
        edge = "the last value computed" if side in failed else "the edge of the range"
        notes.append(f"on the {side} side the profile of {label(name)} passes the rise of a "
                     f"{100 * level:g} % bound at {lv['crossing'] * f:.3g}{u} but has risen "
                     f"only {lv['rise_at_edge']:.2f} times that at {edge}, "
                     f"{lv['edge'] * f:.3g}{u}, twice as far out or more: a bound on a profile "
                     "that levels off is not calibrated (docs/explanation/"
                     "fit-uncertainties.md), so that side is given as open")
    for side, x in iv.get("comes_back", {}).items():
        notes.append(f"on the {side} side the profile rises past the bound's rise near "
                     f"{x * f:.3g}{u} but comes back below it further out: the values in "
                     "between are excluded, the side's bound (or its openness) lies beyond them")
    for side, x in failed.items():
        notes.append(f"on the {side} side the profile of {label(name)} was computed up to "
                     f"{x['computed_to'] * f:.3g}{u}: the re-minimization at "
                     f"{x['failed_at'] * f:.3g}{u} gave a loss that is not finite, so the side "
                     "is judged on the values computed" + (
                         "" if iv[side] is not None else
                         " (no bound given, though the data may exclude values beyond them)"))
    return notes
