"""The fit report, read like lmfit's `fit_report`: `FitResult.report()` (text), the
`report` section of the JSON (`report_dict`), and the command line's output.

Sections: fit statistics (points, free parameters, chi^2, reduced chi^2 and p-value
with known errors, AIC / AICc / BIC), variables (physical name, value, statistical
error, sample error where a fit measured one, initial value, bounds, an "at bound"
flag, profile-likelihood bounds), fixed values, derived quantities (T_U, C_o, ...),
correlations above a threshold, and the notes (undetermined directions in words).

Every name and unit comes from `_params.DISPLAY`; a quantity that is not defined is
written as such ("not determined", "n/a"), never as inf or nan. Room for other fits:
a per-parameter sample error is read from `derived["stderr_sample"]` (name -> error,
internal units) and shown as its own column; the residual summary lists every
observable's rms log residual (`rms_log_residual`, `rms_log_residual_qinv`, ...).
"""

from __future__ import annotations

import math

from .._convention import convention_line
from ._params import bound_side, factor, label, unit

#: Correlations with |r| at or above this are listed (lmfit's default `min_correl`).
CORRELATION_THRESHOLD = 0.1
#: Derived quantities shown in the report: key in `FitResult.derived`, name, unit.
DERIVED = (
    ("C_o", "C_o", ""),
    ("C_o_v_eff_m_per_s", "C_o v_eff", "m/s"),
    ("T_U_K", "T_U", "K"),
    ("T_U_full_K", "T_U (full criterion g phi_tau = P_S phi_S)", "K"),
    ("E_tau_K", "<E_tau>", "K"),
    ("T_U_over_E_tau", "T_U / <E_tau>", ""),
)
_RESIDUALS = (("rms_log_residual", "kappa"), ("rms_log_residual_qinv", "Q^-1"),
              ("rms_log_residual_dvv", "Delta v/v"))


def _finite(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _num(x, fmt: str = ".5g") -> str:
    return format(x, fmt) if _finite(x) else "n/a"


def _variables(res) -> list[dict]:
    bounds = res.meta.get("bounds", {})
    init = res.meta.get("init", {})
    sample = res.derived.get("stderr_sample") or {}
    profile = (res.derived.get("profile") or {}).get("bounds", {})
    rows = []
    for n in res.free:
        f = factor(n)
        lo, hi = bounds.get(n, (math.nan, math.nan))
        err = res.stderr.get(n)
        pr = profile.get(n, {})
        rows.append(dict(
            name=n, label=label(n), unit=res.meta.get("units", {}).get(n, unit(n)),
            value=res.params[n] * f, stderr=err * f if _finite(err) else None,
            stderr_sample=sample[n] * f if _finite(sample.get(n)) else None,
            initial=init[n] * f if n in init else None, min=lo * f, max=hi * f,
            at_bound=bound_side(res.params[n], lo, hi) if _finite(lo) else None,
            determined=n not in res.undetermined,
            smooth=n not in (res.meta.get("not_smooth") or {}),
            profile_level=pr.get("level"),
            profile_lower=pr["lower"] * f if _finite(pr.get("lower")) else None,
            profile_upper=pr["upper"] * f if _finite(pr.get("upper")) else None))
    return rows


def _fixed(res) -> list[dict]:
    names = res.meta.get("report_fixed", [])
    return [dict(name=n, label=label(n), unit=unit(n), value=res.params[n] * factor(n))
            for n in names if n in res.params and n not in res.free
            and _finite(res.params[n])]


def _statistics(res) -> dict:
    from ._fit import goodness_of_fit, information

    absolute = bool(res.meta.get("absolute_sigma", True))
    ic = {k: res.derived.get(k) for k in ("aic", "aicc", "bic")}
    if ic["aic"] is None and res.n_data > 0:
        ic = {k: v for k, v in information(res).items() if k in ic}
    out = dict(n_data=res.n_data, n_free=len(res.free), dof=res.dof, absolute_sigma=absolute,
               converged=res.converged, reason=res.reason, loss=res.loss,
               **{k: (v if _finite(v) else None) for k, v in ic.items()})
    if absolute:
        out.update(goodness_of_fit(2.0 * res.loss, res.dof))
    else:
        out.update(chi2=None, reduced_chi2=None, p_value=None)
    for key, what in _RESIDUALS:
        if key == "rms_log_residual":  # the first observable of the fit
            what = _first_observable(res.meta)
        if _finite(res.derived.get(key)):
            out[f"rms_log_residual_{what}"] = res.derived[key]
    return out


def _first_observable(meta: dict) -> str:
    """What `rms_log_residual` measures: the targets, or the first log-fitted curve (kappa
    where the fit has it, else Q^-1: a Delta v/v residual is not a log one)."""
    if meta.get("kind") == "targets":
        return "targets"
    channels = meta.get("channels")
    quantity = ("kappa" if "kappa" in channels else "qinv") if channels else meta.get(
        "quantity", "kappa")
    return quantity.replace("qinv", "Q^-1")


def _correlations(res, threshold) -> list[dict]:
    out = []
    free = res.free
    for i in range(len(free)):
        for j in range(i):
            r = res.correlation[i][j]
            if _finite(r) and abs(r) >= threshold:
                out.append(dict(a=label(free[j]), b=label(free[i]), r=float(r)))
    return sorted(out, key=lambda c: -abs(c["r"]))


def _derived(res) -> list[dict]:
    d, out = res.derived, []
    for key, name, u in DERIVED:
        if key not in d or d[key] is None:
            continue
        row = dict(key=key, label=name, unit=u, value=d[key] if _finite(d[key]) else None,
                   lower=d.get(f"{key}_lower"), upper=d.get(f"{key}_upper"),
                   level=d.get(f"{key}_bound_level"))
        if f"{key}_err" in d:  # a quantity without an error estimate is shown without one
            row["stderr"] = d[f"{key}_err"] if _finite(d[f"{key}_err"]) else None
        out.append(row)
    return out


def report_dict(res, threshold: float = CORRELATION_THRESHOLD) -> dict:
    """The report as plain data (the JSON's `report` section)."""
    return dict(statistics=_statistics(res), variables=_variables(res), fixed=_fixed(res),
                derived=_derived(res), correlations=_correlations(res, threshold),
                correlation_threshold=threshold,
                undetermined=[label(n) for n in res.undetermined], notes=list(res.notes))


def _value_text(v: dict) -> str:
    u = f" {v['unit']}" if v.get("unit") else ""
    if v["value"] is None:
        return "not defined"
    text = f"{v['value']:.5g}"
    if v.get("stderr") == 0.0:
        text += " (from fixed parameters)"
    elif v.get("stderr") is not None:
        rel = abs(v["stderr"] / v["value"]) if v["value"] else math.inf
        text += f" +- {v['stderr']:.3g}" + (f" ({100 * rel:.2g} %)" if _finite(rel) else "")
    elif "stderr" in v:
        why = ("not determined" if v.get("determined") is False else
               "not given, the loss is not smooth" if v.get("smooth") is False else
               "not determined or not given")
        text += f" (error: {why}, see the notes)"
    if v.get("stderr_sample") is not None:
        text += f" +- {v['stderr_sample']:.3g} (sample)"
    return text + u


def _bounds_text(v: dict) -> str:
    lo, hi = v.get("profile_lower", v.get("lower")), v.get("profile_upper", v.get("upper"))
    if lo is None and hi is None:
        return ""
    level = v.get("profile_level") or v.get("level")
    what = f"{100 * level:g} % one-sided profile" if level else "profile"
    if lo is not None and hi is not None:
        return f"; {what} {lo:.3g} .. {hi:.3g}"
    return f"; {what} {'>' if lo is not None else '<'} {lo if lo is not None else hi:.3g}"


def _statistics_lines(st: dict, res) -> list[str]:
    lines = ["[[Fit Statistics]]"]
    if res.meta.get("data"):
        lines.append(f"    data               = {res.meta['data']}")
    if res.meta.get("citation"):
        lines.append(f"    source             = {res.meta['citation']}")
    if res.meta.get("model_label"):
        lines.append(f"    model              = {res.meta['model_label']}")
    lines += [f"    data points        = {st['n_data']}",
              f"    free parameters    = {st['n_free']}",
              f"    converged          = {'yes' if st['converged'] else 'NO'} ({st['reason']})"]
    if st["absolute_sigma"]:
        lines += [f"    chi-square         = {_num(st['chi2'])}",
                  f"    reduced chi-square = {_num(st['reduced_chi2'])}",
                  f"    p-value            = {_num(st['p_value'], '.3g')}"]
        if st["reduced_chi2"] is None:
            lines[-2:] = [f"{line} (no degrees of freedom: {st['dof']})" for line in lines[-2:]]
    else:
        lines.append("    chi-square         = not defined: the data carry no uncertainties; the "
                     "errors are scaled by the scatter of the residuals")
    for key in ("aic", "aicc", "bic"):
        val = st[key]
        why = "" if val is not None else " (too few points for the parameters)"
        lines.append(f"    {key.upper().replace('AICC', 'AICc'):18s} = {_num(val, '.4f')}{why}")
    for key, value in st.items():
        if key.startswith("rms_log_residual_"):
            lines.append(f"    rms ln residual ({key[17:]}) = {value:.4g}")
    lines.append(f"    energies           = {convention_line('local_field')}")
    return lines


def report_text(res, threshold: float = CORRELATION_THRESHOLD) -> str:
    """The report as text (see the module docstring)."""
    rep = report_dict(res, threshold)
    lines = _statistics_lines(rep["statistics"], res)
    lines.append("[[Variables]]")
    for v in rep["variables"]:
        flag = f"  AT {v['at_bound'].upper()} BOUND" if v["at_bound"] else ""
        init = f"init = {_num(v['initial'])}, " if v["initial"] is not None else ""
        lines.append(f"    {v['label']:16s} = {_value_text(v)}  ({init}bounds "
                     f"{_num(v['min'], '.3g')} .. {_num(v['max'], '.3g')}{_bounds_text(v)})"
                     f"{flag}")
    for v in rep["fixed"]:
        u = f" {v['unit']}" if v["unit"] else ""
        lines.append(f"    {v['label']:16s} = {v['value']:.5g}{u} (fixed)")
    if rep["derived"]:
        lines.append("[[Derived]]")
        for v in rep["derived"]:
            lines.append(f"    {v['label']:16s} = {_value_text(v)}{_bounds_text(v)}")
    lines.append(f"[[Correlations]] (|r| >= {threshold:g})")
    lines += [f"    C({c['a']}, {c['b']}) = {c['r']:+.3f}" for c in rep["correlations"]] or [
        "    none"]
    if rep["notes"]:
        lines.append("[[Notes]]")
        lines += [f"    - {s}" for s in rep["notes"]]
    return "\n".join(lines)
