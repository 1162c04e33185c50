"""Your own model: a JAX function of T and named parameters, fitted by the same machinery
as the built-in models, and compared with them by AICc.

`fit_model(fn, data, params)` fits y(T) = fn(T, **params) to a measured curve in log
space, exactly as `fit_kappa` fits its models: residuals sqrt(w_i) (ln fn_i - ln y_i) /
sigma_i with sigma from `sigma_log` or the file's uncertainty column (known errors:
chi^2, p-value), else a nominal sigma with the errors scaled by the scatter; optax
L-BFGS in the log-logit coordinates of `_fit.py`, Laplace errors, undetermined
directions in words, and profile-likelihood bounds of every free parameter. The
parameters come from a `Parameters` (value, vary, min, max, unit; every fitted value
is positive and bounded, see `_params.py`).

`compare_models(...)` puts own fits and the built-in candidates of `select_kappa_model`
in one table (AIC, AICc or BIC, Delta and Akaike weights). The numbers are comparable
because every fit uses the same residuals on the same points; the table refuses fits
of different data or different error treatment.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ._data import Curve
from ._fit import FitResult, _unconstrained, information, least_squares
from ._fit_stau import _as_curve, _check_points, _per_point, _sigma, side_notes
from ._params import as_parameters, internal
from ._profile import DEFAULT_LEVEL, profile_interval, profile_threshold


class _LogResiduals(eqx.Module):
    """sqrt(w) (ln fn(T, **p) - ln y) / sigma over the parameters `names`; the data are
    arrays (inputs of the compiled step), so fits of other data with the same shapes,
    e.g. many synthetic curves, share one compilation."""

    fn: Callable = eqx.field(static=True)
    names: tuple[str, ...] = eqx.field(static=True)
    T: jnp.ndarray
    log_y: jnp.ndarray
    scale: jnp.ndarray

    def __call__(self, p):
        y = self.fn(self.T, **{n: p[n] for n in self.names})
        return self.scale * (jnp.log(y) - self.log_y)


def fit_model(
    fn: Callable,
    data,
    params,
    *,
    quantity: str = "kappa",
    name: str | None = None,
    sigma_log=None,
    weights=None,
    level: float = DEFAULT_LEVEL,
    profile: bool = True,
    **fit_kwargs,
) -> FitResult:
    """Fit a user's model y = fn(T, **params) to a measured curve.

    **Arguments:**

    - `fn`: a JAX function `fn(T, **params)` returning y > 0 at the temperatures T (K),
      jit-compatible (e.g. ``lambda T, A, n: A * T**n``).
    - `data`: a `Curve` or a file (`load_curve`; comma, tab or whitespace).
    - `params`: a `Parameters` (or an lmfit `Parameters`) naming every argument of `fn`
      besides T, with start values, `vary`, and `min`/`max` for those that vary.
    - `quantity`: the curve's quantity when `data` is a file: `"kappa"` or `"qinv"`.
    - `name`: the model's label in the report and the comparison table.
    - `sigma_log`, `weights`: as in `fit_kappa` (default: the file's columns).
    - `level`, `profile`: profile-likelihood bounds of every free parameter.
    - `fit_kwargs`: passed to `least_squares` (starts, max_steps, progress, ...).

    **Returns:** a `FitResult` (`report()` prints it; `derived` holds AIC / AICc / BIC
    and the rms log residual; `derived["profile"]` the bounds).
    """
    if not callable(fn):
        raise TypeError(f"`fit_model(fn=...)` must be a function of (T, **params); got "
                        f"{type(fn).__name__}")
    curve = _as_curve(data, quantity) if not isinstance(data, Curve) else data
    values, free, bounds = internal(as_parameters(params))
    _check_points(curve, len(free))
    w = _per_point("fit_model", "weights", weights, curve.n, curve.weight)
    sig, absolute = _sigma("fit_model", "sigma_log",
                           curve.sigma_log if sigma_log is None else sigma_log, curve.n)
    dtype = jnp.result_type(float)
    residuals = _LogResiduals(fn, tuple(values), *(jnp.asarray(a, dtype=dtype) for a in (
        curve.T, np.log(curve.y), np.sqrt(w) / sig)))
    label = name or getattr(fn, "__name__", "own model")
    meta = dict(kind="own model", model="own", model_label=label, data=curve.source,
                citation=curve.citation, quantity=curve.quantity, absolute_sigma=absolute,
                data_T=curve.T.tolist(), data_y=curve.y.tolist(),
                units={n: p.unit for n, p in as_parameters(params).items()},
                report_fixed=[n for n in values if n not in free])
    res = least_squares(residuals, values, free, bounds=bounds, absolute_sigma=absolute,
                        meta=meta, **fit_kwargs)
    res.derived.update(model="own", model_label=label, **information(res))
    r = np.asarray(residuals({k: jnp.asarray(v) for k, v in res.params.items()})) / (
        np.sqrt(w) / sig)
    res.derived["rms_log_residual"] = float(np.sqrt(np.mean(r**2)))
    if profile and not res.interrupted:
        _own_profiles(res, level, absolute)
    return res


def _own_profiles(res: FitResult, level: float, absolute: bool) -> None:
    """Profile-likelihood bounds of every free parameter (own models are cheap)."""
    thr = profile_threshold(level, res.loss, res.dof, absolute)
    if not math.isfinite(thr):
        return
    u = _unconstrained(res.problem, res.params)
    out = {}
    for n in res.free:
        iv = profile_interval(res.problem, n, res.params[n], u, res.loss, thr,
                              tuple(res.meta["bounds"][n]), dof=None if absolute else res.dof)
        iv.pop("lowest_loss")
        out[n] = dict(best=res.params[n], level=level, **iv)
        res.notes += side_notes(n, iv, level)
    res.derived["profile"] = dict(level=level, delta_loss=thr, bounds=out)


def compare_models(*results: FitResult, criterion: str = "aicc") -> list[dict]:
    """One table of information criteria over fits of the same curve: own models
    (`fit_model`) and built-in ones (a `select_kappa_model` result brings its whole
    candidate table). Rows sorted by the criterion, with Delta and Akaike weights;
    a row whose criterion is not defined (too few points) has None there."""
    if criterion not in ("aicc", "aic", "bic"):
        raise ValueError(f"`compare_models(criterion=...)` must be aicc, aic or bic; got "
                         f"{criterion!r}")
    if not results:
        raise ValueError("`compare_models` needs at least one FitResult")
    ref = results[0].meta
    rows = []
    for res in results:
        if res.meta.get("data_T") != ref.get("data_T") or bool(res.meta.get(
                "absolute_sigma")) != bool(ref.get("absolute_sigma")):
            raise ValueError("`compare_models`: the fits are of different data or with a "
                             "different error treatment; their criteria do not compare")
        sel = res.derived.get("model_selection")
        if sel:
            rows += [dict(label=c["label"], k=c["k"], value=c[criterion])
                     for c in sel["candidates"] if "skipped" not in c]
        else:
            rows.append(dict(label=res.meta.get("model_label", "?"), k=len(res.free),
                             value=res.derived.get(criterion, information(res)[criterion])))
    finite = [r["value"] for r in rows if math.isfinite(r["value"])]
    best = min(finite) if finite else None
    total = sum(math.exp(-0.5 * (v - best)) for v in finite) if finite else 1.0
    for r in rows:
        ok = best is not None and math.isfinite(r["value"])
        r["value"] = r["value"] if ok else None
        r["delta"] = r["value"] - best if ok else None
        r["weight"] = math.exp(-0.5 * r["delta"]) / total if ok else None
    return sorted(rows, key=lambda r: (r["delta"] is None, r["delta"] or 0.0))
