"""Fits of Q^-1(T) and Delta v/v(T) on their own, or jointly with kappa(T) in any
combination, with the model choice of `select_kappa_model`.

`fit_curves` takes any of the three curves (at least one). The candidates are those of
`_select.py`: constant C and the S-tau C(E) (boundary and Rayleigh terms only where
kappa is fitted, since they act on the phonons' mean free path, not on Q^-1 or
Delta v/v), each fitted with `least_squares`, chosen by AICc (or AIC, BIC), with the
same table of candidates, Laplace errors, profile-likelihood bounds for T_U and, for
the S-tau model, the DOS-sample part of the errors (`_dos_sample_error.py`). The
residual model and what the data determine without a material are in
`_curve_models.py`.

Errors given per channel (`sigma_log` of ln kappa, `sigma_log_qinv` of ln Q^-1,
`sigma_dvv` of Delta v/v itself) are absolute; without them (all channels together)
the covariance is scaled by the reduced chi^2 and each channel uses a nominal sigma:
0.01 in ln kappa and ln Q^-1, 1 % of the measured Delta v/v range. That nominal sigma
also sets the relative weight of the channels in a joint fit, so for a joint fit give
the errors.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import types
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from .._progress import progress_bar
from .._validate import check_range
from ..model._params import ModelParams
from ..observables._dos import DEFAULT_DOS_REALIZATIONS
from ..observables._material import Material
from ._curve_models import CurvesModel, evaluate_curves, make_channel
from ._data import Curve
from ._dos_sample_error import DEFAULT_DOS_SAMPLES, add_dos_sample_error
from ._fit import (
    PARAMETERS,
    FitResult,
    _unconstrained,
    least_squares,
    make_problem,
    param_arrays,
    propagate,
    propagate_gradient,
    propagate_product,
    residuals_at,
    with_errors,
)
from ._fit_stau import (
    _NOMINAL_SIGMA,
    _apply_user,
    _as_curve,
    _dos_meta,
    _dos_settings,
    _per_point,
    _profiles,
    _resolve_free,
    _starting_values,
    _user_start,
    _with_model,
    information,
    prepare_kappa,
    user_choice,
)
from ._kappa_model import (
    GRID_POINTS,
    KappaModel,
    boundary_name,
    names_for,
    placeholder_table,
    rayleigh_name,
    stau_table,
)
from ._profile import DEFAULT_LEVEL
from ._select import (
    CRITERIA,
    DEFAULT_CRITERION,
    _parent_start,
    _selection_note,
    _table,
    candidates,
)

_log = logging.getLogger("tlsjax.fit")
#: Starting A k_B^3 (1/(s K^3)) without a material: A of a glass with rho = 2200 kg/m^3,
#: v_l = 5800 m/s, v_t = 3800 m/s and gamma = 1 eV is 1.1e8.
_A_START = 1e8


@dataclasses.dataclass
class CurvesSetup:
    """Everything a fit of the curves needs besides the choice of model."""

    model: CurvesModel
    curves: dict
    freqs: dict
    velocity_free: bool
    absolute: bool
    init: ModelParams
    kappa_setup: object | None
    meta: dict
    #: the user's `Parameters` (`user_choice`), or None
    user: object | None = None


def _channel_sigma(curve: Curve, name: str, sigma):
    """Per-point 1-sigma (of ln Q^-1, or of Delta v/v itself) and whether it is absolute:
    the argument, else the file's uncertainty column, else a nominal one."""
    if sigma is None and curve.sigma is not None:
        sigma = curve.sigma_log if curve.quantity == "qinv" else curve.sigma
    if sigma is not None:
        return _per_point("fit_curves", name, sigma, curve.n, None), True
    if curve.quantity == "dvv":
        span = float(np.ptp(curve.y))
        if not span > 0:
            raise ValueError(f"{curve.source}: all Delta v/v values are equal; a shift known "
                             "up to its reference carries no information")
        return np.full(curve.n, _NOMINAL_SIGMA * span), False
    return np.full(curve.n, _NOMINAL_SIGMA), False


def _load(kappa, qinv, dvv, freq_qinv, freq_dvv):
    given = {k: v for k, v in (("kappa", kappa), ("qinv", qinv), ("dvv", dvv)) if v is not None}
    if not given:
        raise ValueError("`fit_curves`: give at least one of kappa, qinv, dvv")
    freqs = {}
    for name, f in (("qinv", freq_qinv), ("dvv", freq_dvv)):
        if name in given:
            if f is None:
                raise ValueError(f"`fit_curves(freq_{name}=...)` must be given with {name} (Hz)")
            freqs[name] = float(check_range("fit_curves", f"freq_{name}", f, 0.0,
                                            lo_open=True))
    curves = {k: _as_curve(v, k) for k, v in given.items()}
    return curves, freqs


def prepare_curves(kappa=None, qinv=None, dvv=None, material: Material | None = None, *,
                   freq_qinv=None, freq_dvv=None, sigma_log=None, sigma_log_qinv=None,
                   sigma_dvv=None, init=None, sample=None,
                   realizations=DEFAULT_DOS_REALIZATIONS, key=None, seed=None,
                   polarization="t", need_table: bool = True) -> CurvesSetup:
    """Load and check the curves, build the S-tau table (cached; only if `need_table`)
    and the residual model."""
    curves, freqs = _load(kappa, qinv, dvv, freq_qinv, freq_dvv)
    init = ModelParams() if init is None else init
    vf = material is None
    sig = {"qinv": sigma_log_qinv, "dvv": sigma_dvv}
    channels, absolute, sigmas = {}, set(), {}
    for name in CHANNEL_ORDER[1:]:
        if name in curves:
            s, a = _channel_sigma(curves[name], f"sigma_{'log_qinv' if name == 'qinv' else name}",
                                  sig[name])
            absolute.add(a)
            sigmas[name] = (s / np.sqrt(curves[name].weight)).tolist()
            channels[name] = make_channel(curves[name], freqs[name], s, polarization)
    ks = None
    if "kappa" in curves:
        absolute.add(sigma_log is not None)
        ks = prepare_kappa(curves["kappa"], material, init=init, sigma_log=sigma_log,
                           sample=sample, realizations=realizations, key=key, seed=seed,
                           need_table=need_table)
        base, dos_meta = ks.model, ks.dos_meta
    else:
        sample, realizations, key, seed = _dos_settings(sample, realizations, key, seed)
        table = (stau_table(sample, realizations, key, float(init.atilde), float(init.h_rel))
                 if need_table else None)
        mat = Material(1.0, 1.0, 1.0) if vf else material
        z = jnp.zeros(0)
        base = KappaModel(z, z, z, table if table is not None else placeholder_table(), mat,
                          jnp.asarray(False), jnp.asarray(False), vf)
        dos_meta = _dos_meta(sample, realizations, key, seed)
    if len(absolute) > 1:
        raise ValueError("give the errors of every curve (sigma_log, sigma_log_qinv, "
                         "sigma_dvv), or of none")
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    model = CurvesModel(**fields, has_kappa="kappa" in curves, qinv_ch=channels.get("qinv"),
                        dvv_ch=channels.get("dvv"))
    meta = dict(kind="curves", channels=[c for c in CHANNEL_ORDER if c in curves],
                data={k: c.source for k, c in curves.items()},
                citation={k: c.citation for k, c in curves.items()}, freq_Hz=freqs,
                velocity_free=vf, absolute_sigma=absolute.pop(), dos_sample=dos_meta,
                atilde=float(init.atilde), h_rel=float(init.h_rel), polarization=polarization,
                data_T={k: c.T.tolist() for k, c in curves.items()},
                data_y={k: c.y.tolist() for k, c in curves.items()},
                data_sigma=sigmas,
                material=None if vf else dict(rho=float(material.rho),
                                              v_l=float(material.v_l), v_t=float(material.v_t)))
    meta["data_T_max"] = max(max(c.T) for c in curves.values())
    return CurvesSetup(model, curves, freqs, vf, meta["absolute_sigma"], init, ks, meta)


CHANNEL_ORDER = ("kappa", "qinv", "dvv")


def _resolve(setup: CurvesSetup, model: str, boundary, rayleigh, free, fit_kwargs):
    """(free names, terms, notes) of one candidate; the user's Parameters (`setup.user`)
    fix or free names and put their bounds into `fit_kwargs`."""
    vf, has_kappa = setup.velocity_free, setup.model.has_kappa
    if has_kappa:
        kfree, terms, notes = _resolve_free(model, None, vf, boundary, rayleigh, None)
    else:
        kfree = ["g", "J0"] if model == "stau" else []
        terms = {boundary_name(vf): ("absent", None), rayleigh_name(vf): ("absent", None)}
        notes = []
    amp = "kappa_log" if model == "stau" else "C"
    if amp not in kfree:
        kfree.append(amp)
    if vf:
        kfree.append("A_rel")
    if free is not None:
        allowed = set(kfree) | ({"T_U"} if model == "stau" else set())
        bad = [n for n in free if n not in allowed]
        if bad:
            raise ValueError(f"`fit_curves(free=...)`: {', '.join(bad)} not in this model's "
                             f"parameters ({', '.join(sorted(allowed))})")
        if "J0" in free and "T_U" in free:
            raise ValueError("`fit_curves(free=...)`: J0 and T_U cannot both be free")
        kfree = list(free)
    kfree = _apply_user(setup.user, vf, model, kfree, fit_kwargs, allowed=_allowed_curves(
        setup, model, kfree))
    return kfree, terms, notes


def _allowed_curves(setup, model: str, default) -> tuple[str, ...]:
    """The parameters a user may fix or free in one candidate of these curves."""
    extra = ("g", "J0", "T_U") if model == "stau" else ()
    return tuple(dict.fromkeys([*default, *extra]))


def _curves_user(params, velocity_free: bool, has_kappa: bool, cands):
    """The user's Parameters (`user_choice`): every name must belong to some candidate of
    these curves (never dropped); checked before anything is computed."""
    if params is None:
        return None
    bare = types.SimpleNamespace(velocity_free=velocity_free, user=None,
                                 model=types.SimpleNamespace(has_kappa=has_kappa))
    allowed = {}
    for c in cands:
        names, _, _ = _resolve(bare, *c, None, {})
        allowed.update(dict.fromkeys(_allowed_curves(bare, c[0], names)))
    return user_choice(params, velocity_free, allowed=list(allowed))


def _names(vf: bool) -> tuple:
    return tuple(dict.fromkeys(names_for(vf) + ("kappa_log", "C", "A_rel")))


def _start(setup: CurvesSetup, model: str, free, terms, start) -> dict:
    """Starting values: the kappa fit's where kappa is fitted, then the amplitude of the
    other channels matched to their data."""
    vf, init = setup.velocity_free, setup.init
    p0 = {n: 1.0 for n in _names(vf)}
    p0.update(g=float(init.g), J0=float(init.J0), atilde=float(init.atilde),
              h_rel=float(init.h_rel), kappa_log=float(init.kappa_log),
              C=float(init.kappa_log * init.g), A_rel=_A_START)
    p0[boundary_name(vf)], p0[rayleigh_name(vf)] = math.inf, 0.0
    if setup.user is not None:  # fixed values before the amplitude is matched to the data
        p0.update(setup.user.fixed)
    if setup.kappa_setup is not None:
        p0.update(_starting_values(setup.kappa_setup, model, [n for n in free if n in
                                                              names_for(vf)], terms, start))
    if start:  # a nested model's fit (its absent terms, inf and 0, are not starts)
        p0.update({k: v for k, v in start.items() if k in p0 and k in PARAMETERS
                   and PARAMETERS[k][0] < v < PARAMETERS[k][1]})
    if "T_U" in free:
        p0["T_U"] = float(evaluate_curves(_with_model(setup.model, model), param_arrays(p0),
                                          {})["T_U"][0])
        if not (math.isfinite(p0["T_U"]) and p0["T_U"] > 0):
            p0["T_U"] = float(setup.meta["data_T_max"])
    amp = "kappa_log" if model == "stau" else "C"
    if amp in free and not (start and amp in start) and (vf or setup.kappa_setup is None):
        p0[amp] = _matched_amplitude(setup, model, p0, amp)
    return p0


def _matched_amplitude(setup, model, p0, amp) -> float:
    """The amplitude that matches Q^-1 (median ratio; Q^-1 is proportional to it) or
    else Delta v/v (least squares; linear in it), from the compiled residuals."""
    km = _with_model(setup.model, model, use_tu=False)
    pr = make_problem(km, p0, [], {})
    r1 = residuals_at(pr, np.zeros(len(pr.names)))
    n_k = setup.curves["kappa"].n if "kappa" in setup.curves else 0
    lo, hi = PARAMETERS[amp][:2]
    if km.qinv_ch is not None:
        n_q = setup.curves["qinv"].n
        ratio = np.median(r1[n_k:n_k + n_q] / np.asarray(km.qinv_ch.scale))
        return float(np.clip(p0[amp] * math.exp(-ratio), lo * 2.0, hi / 2.0))
    r2 = residuals_at(make_problem(km, {**p0, amp: 2.0 * p0[amp]}, [], {}),
                      np.zeros(len(pr.names)))
    u = (r2 - r1)[n_k:]  # residual change per unit of amp / p0[amp]
    v = -r1[n_k:] + u  # the data part: r = a u - v at amp = a p0[amp]
    a = float(u @ v / (u @ u)) if u @ u > 0 else 1.0
    return float(np.clip(p0[amp] * abs(a), lo * 2.0, hi / 2.0))


def _fit_candidate(setup: CurvesSetup, c: tuple, free, parent, fit_kwargs) -> FitResult:
    model, boundary, rayleigh = c
    fit_kwargs = dict(fit_kwargs)
    names, terms, notes = _resolve(setup, model, boundary, rayleigh, free, fit_kwargs)
    need = len(names) + (0 if setup.absolute else 1)
    n_res = sum(cv.n - (1 if k == "dvv" else 0) for k, cv in setup.curves.items())
    if n_res < need:
        raise ValueError(f"{n_res} residuals for {len(names)} free parameters; at least "
                         f"{need} are needed")
    km = _with_model(setup.model, model, use_tu="T_U" in names)
    label = " + ".join(["S-tau" if model == "stau" else "constant C"]
                       + [lab for n, lab in ((boundary_name(setup.velocity_free), "boundary"),
                                             (rayleigh_name(setup.velocity_free), "Rayleigh"))
                          if terms[n][0] != "absent"])
    meta = dict(setup.meta, model=model, model_label=label,
                terms={n: dict(mode=m, value=v) for n, (m, v) in terms.items()})
    best = None
    for start in (None,) if parent is None else (None, parent):
        p0 = _user_start(setup, _start(setup, model, names, terms, start), names,
                         fit_kwargs.get("bounds"), start)
        r = least_squares(km, p0, names, absolute_sigma=setup.absolute, meta=meta,
                          errors=False, **fit_kwargs)  # the chosen one's: `fit_curves`
        if best is None or r.loss < best.loss or r.interrupted:
            best = r
        if r.interrupted:
            break
    best.notes[:0] = notes
    best.derived.update(model=model, model_label=label, **information(best),
                        rms_log_residual=_rms_first(setup, km, best))
    return best


def _rms_first(setup: CurvesSetup, km: CurvesModel, res: FitResult) -> float:
    """rms residual of the first curve (ln kappa or ln Q^-1; Delta v/v for Delta v/v
    alone) for the table of candidates."""
    r = residuals_at(res.problem, _unconstrained(res.problem, res.params))
    first = setup.meta["channels"][0]
    ch = {"kappa": km, "qinv": km.qinv_ch, "dvv": km.dvv_ch}[first]
    scale = np.asarray(ch.scale, dtype=float)
    if first == "dvv":
        return float(np.sqrt(np.mean(r[:scale.size - 1] ** 2)) / np.mean(scale))
    return float(np.sqrt(np.mean((r[:scale.size] / scale) ** 2)))


def fit_curves(kappa=None, qinv=None, dvv=None, material: Material | None = None, *,
               freq_qinv: float | None = None, freq_dvv: float | None = None,
               model: str = "auto", boundary="auto", rayleigh="auto",
               criterion: str = DEFAULT_CRITERION, free: Sequence[str] | None = None,
               sigma_log=None, sigma_log_qinv=None, sigma_dvv=None, init=None,
               sample=None, realizations: int = DEFAULT_DOS_REALIZATIONS, key=None, seed=None,
               polarization: str = "t", level: float = DEFAULT_LEVEL, profile: bool = True,
               dos_samples: int = DEFAULT_DOS_SAMPLES, progress: bool = True,
               params=None, **fit_kwargs) -> FitResult:
    """Fit Q^-1(T), Delta v/v(T) and kappa(T), any of them alone or together.

    **Arguments:**

    - `kappa`, `qinv`, `dvv`: `Curve`s or CSV paths (`load_curve`); at least one.
    - `material`: `Material` (rho, v_l, v_t; its A sets the relaxation rate), or None:
      the combinations the data determine are fitted (`_curve_models.py`).
    - `freq_qinv`, `freq_dvv`: the measuring frequencies in Hz (required with the curve).
    - `model`, `boundary`, `rayleigh`, `criterion`: as `select_kappa_model` (the
      boundary and Rayleigh terms only with kappa; otherwise absent).
    - `free`: the free parameters of every candidate (default: those the data determine).
    - `sigma_log`, `sigma_log_qinv`, `sigma_dvv`: per-point (or scalar) 1-sigma of ln
      kappa, ln Q^-1 and Delta v/v; all or none (module docstring).
    - `init`, `sample`, `realizations`, `key`, `seed`: as `fit_kappa`.
    - `polarization`: `"t"` (default) or `"l"`, the sound wave of Q^-1 and Delta v/v.
    - `level`, `profile`: the profile-likelihood bounds of T_U and of the parameters the
      Laplace errors do not describe (as `fit_kappa`).
    - `dos_samples`: K independent ES samples for the sample part of the S-tau errors
      (0: none).
    - `progress`: progress bars over the candidates, the profile bounds and the
      DOS-sample refits.
    - `params`: a user's `Parameters` (values, vary, bounds by name, as in `fit_kappa`),
      applied to every candidate; a name that no candidate has is refused.
    - `fit_kwargs`: passed to `least_squares` (starts, max_steps, ...).

    **Returns:** the chosen model's `FitResult`; `derived` holds the candidate table
    (`model_selection`), C_o (or C), A_rel, T_U with its bounds, v_eff (joint with kappa,
    no material), per-channel rms residuals and model curves, and `dos_sample_error`.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"`fit_curves(criterion=...)` must be one of {CRITERIA}; "
                         f"got {criterion!r}")
    check_range("fit_curves", "level", level, 0.5, 1.0, lo_open=True, hi_open=True)
    if dos_samples != 0:
        check_range("fit_curves", "dos_samples", dos_samples, 2)
    if polarization not in ("l", "t"):
        raise ValueError(f"`fit_curves(polarization=...)` must be 'l' or 't'; got "
                         f"{polarization!r}")
    has_kappa = kappa is not None
    cands = candidates(model, boundary if has_kappa else "absent",
                       rayleigh if has_kappa else "absent")
    user = _curves_user(params, material is None, has_kappa, cands)
    setup = prepare_curves(kappa, qinv, dvv, material, freq_qinv=freq_qinv, freq_dvv=freq_dvv,
                           sigma_log=sigma_log, sigma_log_qinv=sigma_log_qinv,
                           sigma_dvv=sigma_dvv, init=init, sample=sample,
                           realizations=realizations, key=key, seed=seed,
                           polarization=polarization,
                           need_table=any(c[0] == "stau" for c in cands))
    setup.user = user
    done, skipped = _fit_all(setup, cands, free, criterion, progress, fit_kwargs)
    fitted = {c: r for c, r in done.items() if r is not None}
    if not fitted:
        raise ValueError("no candidate model could be fitted: " + "; ".join(skipped.values()))
    table, chosen = _table(cands, done, skipped, criterion)
    res = with_errors(fitted[chosen])  # the candidates were fitted without
    res.derived["model_selection"] = dict(criterion=criterion, chosen=res.meta["model_label"],
                                          candidates=table, interrupted=False)
    res.notes.insert(0, _selection_note(table, criterion, res))
    res.notes.insert(1, determined_note(setup))
    _curves_derived(res, setup)
    if profile and res.meta["model"] == "stau" and not res.interrupted:
        _profiles(res, types.SimpleNamespace(absolute=setup.absolute), level, progress)
    if dos_samples and not res.interrupted:
        add_dos_sample_error(res, dos_samples, progress=progress)
    return res


def _fit_all(setup, cands, free, criterion, progress, fit_kwargs):
    done, skipped = {}, {}
    _log.info(f"fitting {len(cands)} candidate model(s), choosing by {criterion.upper()}")
    bar = progress_bar(len(cands), desc="fit curves: candidate models", enabled=progress,
                       unit="model")
    try:
        for c in cands:
            try:
                done[c] = _fit_candidate(setup, c, free, _parent_start(c, done),
                                         dict(fit_kwargs, progress=False))
            except ValueError as err:
                skipped[c], done[c] = str(err), None
            bar.update(1)
    finally:
        bar.close()
    return done, skipped


def determined_note(setup: CurvesSetup) -> str:
    """In words: which combinations these curves determine (module docstring of
    `_curve_models.py`)."""
    ch = [c for c in CHANNEL_ORDER if c in setup.curves]
    if not setup.velocity_free:
        return (f"fitted {', '.join(ch)} with the given material: C_o = kappa_log g (or C) is "
                "shared by every curve, and A k_B^3 comes from the material")
    parts = []
    if "qinv" in ch or "dvv" in ch:
        parts.append("Q^-1 and Delta v/v determine C (C_o = kappa_log g) without velocities, "
                     "and the relaxation prefactor A k_B^3 (A_rel) where the data reach the "
                     "relaxation regime")
    if "kappa" in ch:
        parts.append("kappa determines only kappa_log v_eff (kv, or C v_eff)")
    if "kappa" in ch and len(ch) > 1:
        parts.append("together they give v_eff = kv / kappa_log")
    return f"fitted {', '.join(ch)} without a material: " + "; ".join(parts)


def _grids(setup: CurvesSetup) -> dict:
    return {k: jnp.asarray(np.geomspace(c.T[0] / 1.5 if k != "dvv" else c.T[0],
                                        c.T[-1] * 1.5, GRID_POINTS))
            for k, c in setup.curves.items()}


def _curves_derived(res: FitResult, setup: CurvesSetup) -> None:
    d, km = res.derived, _with_model(setup.model, res.meta["model"],
                                     use_tu="T_U" in res.free)
    grids = _grids(setup)
    ev = evaluate_curves(km, param_arrays(res.params), grids)
    r_all = residuals_at(res.problem, _unconstrained(res.problem, res.params))
    at_data = _model_at_data(km, r_all, setup.curves)
    if "dvv" in setup.curves:
        at_data["dvv"] = np.asarray(ev["dvv_at_data"], dtype=float)
    stau = res.meta["model"] == "stau"
    if stau:
        for i, name in enumerate(("T_U_K", "T_U_full_K")):
            grad = {n: float(ev["T_U_grad"][n][i]) for n in res.free}
            d[name], d[f"{name}_err"] = propagate_gradient(res, float(ev["T_U"][i]), grad)
        d["C_o"], d["C_o_err"] = propagate_product(res, "kappa_log", "g")
    else:
        d["C_o"], d["C_o_err"] = res.params["C"], res.stderr.get("C", 0.0)
    if setup.velocity_free:
        d["A_rel_per_s_K3"], d["A_rel_per_s_K3_err"] = res.params["A_rel"], res.stderr.get(
            "A_rel")
        d["A_rel_per_s_K3_fixed"] = "A_rel" not in res.free
        kv = "kv" if stau else "Cv"
        if kv in res.free:
            amp = "kappa_log" if stau else "C"
            d["v_eff_m_per_s"], d["v_eff_m_per_s_err"] = propagate(
                lambda q: q[kv] / q[amp], res)
    for k, c in setup.curves.items():
        d[f"curve_T_{k}"] = np.asarray(grids[k]).tolist()
        d[f"curve_{k}"] = np.asarray(ev[k]).tolist()
        at = at_data[k]
        resid = np.log(at / c.y) if k != "dvv" else at - c.y
        d[f"rms_residual_{k}"] = float(np.sqrt(np.mean(resid**2)))
        d[f"model_at_data_{k}"] = np.asarray(at).tolist()
    if "dvv" in setup.curves:
        d["dvv_offset"] = float(ev["dvv_offset"])
    if "kappa" in setup.curves or "qinv" in setup.curves:
        d["rms_log_residual"] = d.get("rms_residual_kappa", d.get("rms_residual_qinv"))
    else:  # Delta v/v alone: not a log residual (it is in rms_residual_dvv)
        d.pop("rms_log_residual", None)


def _model_at_data(km, r_all, curves: dict) -> dict:
    """The model at the measured points: from the residuals for kappa and Q^-1 (log
    space), from the Delta v/v channel (with its best offset) for Delta v/v."""
    out, at = {}, 0
    for k, ch in (("kappa", None), ("qinv", km.qinv_ch)):
        if k in curves:
            n = curves[k].n
            scale = np.asarray(km.scale if k == "kappa" else ch.scale, dtype=float)
            out[k] = curves[k].y * np.exp(r_all[at:at + n] / scale)
            at += n
    return out
