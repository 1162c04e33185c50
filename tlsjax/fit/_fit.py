"""The fitting engine: bounded parameter transforms, an optax loop, Laplace errors.

A fit minimizes loss(u) = (1/2) sum_i r_i(p(u))^2 over the free parameters, where the
residuals r_i are already divided by their standard deviations (chi^2 / 2), and
u is the unconstrained vector of the free parameters.

**The transform (the only place it is defined).** Every fitted parameter p is
positive with bounds 0 < lo < p < hi, and lives in unconstrained space as

    ln p = ln lo + (ln hi - ln lo) sigmoid(u)          (`to_physical`)

("log-logit"): a log scale (g, J_o, a~ span decades) that cannot leave its bounds.
`PARAMETERS` lists the names, default bounds and units.

**The loop.** optax L-BFGS with its zoom line search (or any optax optimizer), one
jitted step per iteration, from several starts (the given point, then random points
around it in u); a progress bar shows loss and gradient norm. It stops when the
gradient's largest component in u is below `gtol` ("gradient below gtol"), or the loss
changed by less than `ftol` (relative, but never below 10 eps of the working precision)
for 3 steps in a row ("loss change below ftol"), or after `max_steps` ("max_steps
reached", not converged). Ctrl-C (`KeyboardInterrupt`) ends the fit with the best point
seen so far, `converged=False`, reason "interrupted" (and saves it if `save_path` is
given). The problem is a `Problem` module in which the choice of free parameters is an
array, so one compiled step serves every start, every free set and every fixed value:
profiles and model selection compile nothing new.

**Uncertainties (Laplace approximation).** At the best point the Hessian H_u of the
loss (J^T J plus the residuals' curvature, by central differences of the compiled
residuals, see `_curvature`) gives the covariance Sigma_u = H_u^-1 of u; with D = diag(dp/du), the physical
covariance is D Sigma_u D and the log-space one D_log Sigma_u D_log
(D_log = diag(d ln p / du)). 1-sigma errors are the square roots of the diagonal, the
correlation matrix is the normalized covariance. If the residuals are not in units of
known standard deviations (`absolute_sigma=False`), Sigma is scaled by the reduced
chi^2 (the curve_fit convention). Directions the data do not determine are left out of
the (pseudo-)inverse: the null space of the residual Jacobian J (singular values below
sqrt(rcond) times the largest; with fewer residuals than free parameters there are
always some, whatever the Hessian says away from the optimum), then Hessian
eigenvalues below `rcond` times the largest (rcond is raised to 50 eps of the working
precision). Every parameter with a sizeable share of such a direction gets an infinite
error, and `FitResult.notes` says in words which combination it is. A parameter whose
log-space error exceeds 1 (a factor e) is reported as poorly determined; where that, a
bound or a flat direction makes the Laplace error meaningless, `_profile.py` gives
profile-likelihood bounds. A parameter along which the loss is not smooth at the best
point (the Jacobian from two steps disagrees, or the loss one standard error away is far
from its quadratic model: `_stencil_jumps`, `_probe_jumps`) gets no error (NaN) and a
note; with a~ or h_rel free the ES reduction of a finite sample jumps
(docs/explanation/fit-uncertainties.md).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from .._convention import energy_convention
from .._interrupts import raise_if_interrupted
from .._io import write_json
from .._progress import progress_bar
from .._validate import check_int, check_range, check_type, device_array, nested_program
from .._xla import QUICK_COMPILE
from ._disk_cache import name_static, stored_jit
from ._params import (
    Parameters,
    as_parameters,
    bound_side,
    factor,
    internal,
    label,
    missing_error,
    named,
    unit,
)

PARAMETERS: dict[str, tuple[float, float, str, str]] = {
    "g": (1e-4, 0.19, "", "gamma_tau / gamma_S"),
    "J0": (1.0, 1e5, "K", "S-S coupling J_o"),
    "atilde": (0.05, 8.0, "a_o", "short-distance cutoff a~"),
    "h_rel": (1e-3, 3.0, "", "random-field width h_rel"),
    "kappa_log": (1e-3, 1.0, "", "kappa_log = 1 / ln(Delta_u / Delta_l)"),
    "kv": (1.0, 1e6, "m/s", "kappa_log * v_eff (velocity-free kappa fits)"),
    "T_U": (1e-4, 1e5, "K", "crossover T_U (P_S(T_U) = 5 g), in place of J_o"),
    "C": (1e-7, 1.0, "", "constant tunneling strength C (plain STM)"),
    "Cv": (1e-5, 1e6, "m/s", "C v_eff (plain STM without sound velocities)"),
    "l_b": (1e-7, 10.0, "m", "boundary mean free path l_b"),
    "l_b_v2": (1e-17, 1e-2, "s^2/m", "l_b / v_eff^2 (boundary term without sound velocities)"),
    "rayleigh": (1e-8, 1e8, "1/(m K^4)",
                 "Rayleigh term A_R (k_B/hbar)^4: l^-1 = rayleigh (hbar omega / k_B)^4"),
    "rayleigh_v2": (1e-4, 1e16, "m/(s^2 K^4)",
                    "rayleigh * v_eff^2 (Rayleigh term without sound velocities)"),
    "A_rel": (1e2, 1e16, "1/(s K^3)", "relaxation prefactor A k_B^3 (Q^-1, Delta v/v "
              "without a material)"),
}
"""Fittable parameters: name -> (lower bound, upper bound, unit, meaning). The bounds are
the defaults of the log-logit transform and the allowed range of what a user gives by name
(`Parameters` values and min/max, `--fix`, `--bound`: `_params.check_allowed`); the
engine's own `bounds` argument (internal callers) may narrow or move them."""

#: Residual scale of a fit whose data carry no errors (the covariance is then scaled by
#: the reduced chi^2, so the errors do not depend on it; it keeps the loss of order one).
NOMINAL_SIGMA = 0.01

#: A direction of the Hessian is "not determined" below this eigenvalue ratio.
DEFAULT_RCOND = 1e-8


# ---------------------------------------------------------------- the transform


def _log_bounds(names: Sequence[str], bounds: dict[str, tuple[float, float]]):
    lo = np.array([math.log(bounds[n][0]) for n in names])
    hi = np.array([math.log(bounds[n][1]) for n in names])
    return lo, hi


def to_physical(u: Float[Array, " p"], log_lo, log_hi) -> Float[Array, " p"]:
    """p = exp(ln lo + (ln hi - ln lo) sigmoid(u)) (see the module docstring)."""
    return jnp.exp(log_lo + (log_hi - log_lo) * jax.nn.sigmoid(u))


def to_unconstrained(p, log_lo, log_hi) -> np.ndarray:
    """The inverse of `to_physical` (p strictly inside its bounds)."""
    s = (np.log(np.asarray(p, dtype=float)) - log_lo) / (log_hi - log_lo)
    s = np.clip(s, 1e-12, 1.0 - 1e-12)
    return np.log(s) - np.log1p(-s)


def dlogp_du(u, log_lo, log_hi) -> np.ndarray:
    """d ln p / du = (ln hi - ln lo) sigmoid(u) (1 - sigmoid(u))."""
    s = 1.0 / (1.0 + np.exp(-np.asarray(u, dtype=float)))
    return (log_hi - log_lo) * s * (1.0 - s)


def resolve_bounds(free: Sequence[str], bounds: dict | None) -> dict[str, tuple[float, float]]:
    """Default bounds of `PARAMETERS`, overridden by `bounds` (required for a parameter
    that is not built in); checked."""
    out = {}
    for n in free:
        if n not in PARAMETERS and n not in (bounds or {}):
            raise ValueError(f"free parameter {n!r} is not built in ({', '.join(PARAMETERS)}): "
                             "give its bounds (bounds={name: (lo, hi)}, or min and max in "
                             "Parameters)")
        lo, hi = (bounds or {}).get(n, PARAMETERS[n][:2] if n in PARAMETERS else (None, None))
        check_range("fit", f"bounds[{n!r}] lower", lo, 0.0, lo_open=True)
        check_range("fit", f"bounds[{n!r}] upper", hi, lo, lo_open=True)
        out[n] = (float(lo), float(hi))
    return out


# ---------------------------------------------------------------- the result


@dataclasses.dataclass
class FitResult:
    """The outcome of a fit (see the module docstring for how errors are defined).

    **Fields:**

    - `free`: names of the free parameters, in the order of the matrices.
    - `params`: all parameter values (free at the optimum, fixed as given), physical units.
    - `stderr`: 1-sigma errors of the free parameters (inf where not determined; NaN
      where not computed or where the loss is not smooth, `meta["not_smooth"]`).
    - `stderr_log`: 1-sigma errors of ln p (relative errors).
    - `correlation`, `covariance`: matrices over `free` (physical units; NaN rows where
      `stderr` is NaN).
    - `loss`: the final loss (chi^2 / 2), `n_data` residuals, `dof` = n_data - len(free).
    - `converged`, `reason`: the stopping rule's verdict and why.
    - `steps`: iterations of the best start; `history`: the loss per step of each start.
    - `hessian_u`: the Hessian of the loss in unconstrained space at `u`.
    - `undetermined`: names of parameters the data do not determine.
    - `notes`: plain-words statements about identifiability and the model's fit.
    - `derived`: further numbers (e.g. C_o, T_U_K, rms_log_residual), written at the
      top level of the JSON.
    - `meta`: what was fitted (data file, material, fixed settings).
    - `interrupted`: True if Ctrl-C ended the fit or its post-fit stage early (the
      result is the best point reached; `notes` say what is missing).
    - `problem`: the compiled least-squares `Problem` (not saved; used for profiles).
    """

    free: list[str]
    params: dict[str, float]
    stderr: dict[str, float]
    stderr_log: dict[str, float]
    correlation: list[list[float]]
    covariance: list[list[float]]
    loss: float
    n_data: int
    dof: int
    converged: bool
    reason: str
    steps: int
    history: list[list[float]]
    hessian_u: list[list[float]]
    u: list[float]
    undetermined: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    derived: dict = dataclasses.field(default_factory=dict)
    meta: dict = dataclasses.field(default_factory=dict)
    interrupted: bool = False
    problem: object = dataclasses.field(default=None, repr=False, compare=False)

    _FIELDS = ("free", "params", "stderr", "stderr_log", "correlation", "covariance", "loss",
               "n_data", "dof", "converged", "reason", "steps", "history", "hessian_u", "u",
               "undetermined", "notes", "meta", "interrupted")
    #: Fields added after the first release: optional when reading a JSON file.
    _OPTIONAL = {"interrupted": False}

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self._FIELDS}
        clash = set(self.derived) & set(d)
        if clash:  # pragma: no cover - guarded by the fitting functions
            raise ValueError(f"derived keys {sorted(clash)} clash with FitResult fields")
        d.update(self.derived)
        d["derived_keys"] = sorted(self.derived)
        d["energy_convention"] = energy_convention("local_field")
        from ._report import report_dict

        d["report"] = report_dict(self)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FitResult:
        def num(x):
            if isinstance(x, str) and x in ("inf", "-inf"):
                return float(x)
            if x is None:
                return math.nan
            return x

        kw = {k: d.get(k, cls._OPTIONAL[k]) if k in cls._OPTIONAL else d[k]
              for k in cls._FIELDS}
        for k in ("params", "stderr", "stderr_log"):
            kw[k] = {n: num(v) for n, v in kw[k].items()}
        for k in ("correlation", "covariance", "hessian_u"):
            kw[k] = [[num(v) for v in row] for row in kw[k]]
        kw["loss"] = num(kw["loss"])
        kw["derived"] = {k: (float(d[k]) if d[k] in ("inf", "-inf") else d[k])
                         for k in d.get("derived_keys", [])}
        return cls(**kw)

    def to_json(self, path, *, overwrite: bool = False, run: str | None = None) -> Path:
        """Write as JSON (never over a file tlsjax did not write, unless `overwrite`, nor
        over another run's result: `run`, a `run_id`, lets the same run replace its own),
        through a temporary file renamed into place."""
        return write_json(path, self.to_dict(), overwrite=overwrite, run=run)

    @classmethod
    def from_json(cls, path) -> FitResult:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def summary(self) -> str:
        """A few lines: values with errors, loss, convergence, notes."""
        lines = [f"fit {'converged' if self.converged else 'NOT converged'} ({self.reason}); "
                 f"loss = {self.loss:.6g}, {self.n_data} residuals, {len(self.free)} free"]
        for n in self.free:
            err = self.stderr[n] * factor(n)
            err = f"+- {err:.3g}" if math.isfinite(err) else f"(error: {missing_error(err)})"
            lines.append(f"  {label(n):10s} = {self.params[n] * factor(n):.6g} {err} {unit(n)}")
        lines += [f"  note: {s}" for s in self.notes]
        return "\n".join(lines)

    def report(self, min_correl: float = 0.1) -> str:
        """The full report, read like lmfit's `fit_report` (see `_report.py`): fit
        statistics (chi^2, reduced chi^2, p-value, AIC / AICc / BIC), each parameter by
        its physical name with value, errors, initial value, bounds and an "at bound"
        flag, derived quantities, correlations with |r| >= `min_correl`, and notes."""
        from ._report import report_text

        return report_text(self, min_correl)


# ---------------------------------------------------------------- the loop


class Problem(eqx.Module):
    """A least-squares problem over a fixed list of parameters, some free, some fixed.

    Which parameters are free is data (`free_mask`), not structure, so one compiled step
    serves every choice of free parameters, every fixed value and every start (the
    profile likelihood and the model selection re-use it without compiling again).

    **Fields:**

    - `residuals`: maps a dict of all parameters to the residual vector (a plain
      function, or an `eqx.Module` whose arrays are then ordinary inputs).
    - `names`: all parameter names, in the order of the vectors below.
    - `free_mask`: True where a parameter is free.
    - `log_lo`, `log_hi`: log bounds of each parameter (unused where fixed).
    - `fixed`: the values of the fixed parameters (unused where free).
    """

    residuals: Callable
    names: tuple[str, ...] = eqx.field(static=True)
    free_mask: Array
    log_lo: Array
    log_hi: Array
    fixed: Array

    def params(self, u) -> dict[str, Array]:
        p = jnp.exp(self.log_lo + (self.log_hi - self.log_lo) * jax.nn.sigmoid(u))
        p = jnp.where(self.free_mask, p, self.fixed)
        return {n: p[i] for i, n in enumerate(self.names)}

    def params_numpy(self, u) -> dict[str, float]:
        """`params` evaluated with NumPy (no device work, nothing to compile)."""
        lo, hi, fixed = (np.asarray(a, dtype=float) for a in (self.log_lo, self.log_hi,
                                                               self.fixed))
        u = np.asarray(u, dtype=float)
        with np.errstate(over="ignore"):
            p = np.exp(lo + (hi - lo) / (1.0 + np.exp(-u)))
        p = np.where(np.asarray(self.free_mask), p, fixed)
        return {n: float(p[i]) for i, n in enumerate(self.names)}

    def residual_vector(self, u):
        return self.residuals(self.params(u))

    def loss(self, u):
        r = self.residual_vector(u)
        return 0.5 * jnp.sum(r**2)

    def with_fixed(self, name: str, value) -> Problem:
        """The same problem with `name` fixed at `value` (not free)."""
        i = self.names.index(name)
        mask, fixed = np.array(self.free_mask), np.array(self.fixed)
        mask[i], fixed[i] = False, value
        return eqx.tree_at(lambda q: (q.free_mask, q.fixed), self,
                           (device_array(mask), device_array(fixed, dtype=self.fixed.dtype)))

    def with_free(self, names: Sequence[str], bounds: dict[str, tuple[float, float]]
                  ) -> Problem:
        """The same problem with exactly `names` free, within `bounds`."""
        mask = np.array([n in names for n in self.names])
        lo, hi = np.asarray(self.log_lo), np.asarray(self.log_hi)
        lo, hi = lo.copy(), hi.copy()
        for n in names:
            i = self.names.index(n)
            lo[i], hi[i] = math.log(bounds[n][0]), math.log(bounds[n][1])
        return eqx.tree_at(lambda q: (q.free_mask, q.log_lo, q.log_hi), self,
                           (device_array(mask), device_array(lo, dtype=self.log_lo.dtype),
                            device_array(hi, dtype=self.log_hi.dtype)))


def make_problem(residuals, init: dict[str, float], free: Sequence[str],
                 bounds: dict[str, tuple[float, float]]) -> Problem:
    """A `Problem` over the parameters of `init` (all of them, in that order)."""
    names = tuple(init)
    dtype = jnp.result_type(float)
    lo = np.array([math.log(bounds[n][0]) if n in free else 0.0 for n in names])
    hi = np.array([math.log(bounds[n][1]) if n in free else 1.0 for n in names])
    fixed = np.array([float(init[n]) for n in names])
    return Problem(residuals, names, device_array([n in free for n in names]),
                   device_array(lo, dtype=dtype), device_array(hi, dtype=dtype),
                   device_array(fixed, dtype=dtype))


def _unconstrained(problem: Problem, values: dict[str, float]) -> np.ndarray:
    """u for the free parameters of `values` (0 for the fixed ones)."""
    u = np.zeros(len(problem.names))
    lo, hi, mask = (np.asarray(a, dtype=float) for a in (problem.log_lo, problem.log_hi,
                                                          problem.free_mask))
    for i, n in enumerate(problem.names):
        if mask[i]:
            u[i] = to_unconstrained([values[n]], lo[i:i + 1], hi[i:i + 1])[0]
    return u


def _describe_direction(vec_log: np.ndarray, names: Sequence[str]) -> str:
    order = np.argsort(-np.abs(vec_log))
    parts = [f"{vec_log[i]:+.2f} ln {names[i]}" for i in order if abs(vec_log[i]) >= 0.05]
    return " ".join(parts)


#: Stopping rule on the chi^2 decrease (see `minimize`).
CHI2_TOL = 1e-3
CHI2_WINDOW = 10

#: One optimizer object per kind, so that compiled steps are shared between fits.
_LBFGS = optax.lbfgs()
name_static(_LBFGS.init, "optax.lbfgs().init")
name_static(_LBFGS.update, "optax.lbfgs().update")
name_static(_LBFGS, "optax.lbfgs()")


def _optimizer(optimizer, learning_rate):
    if optimizer == "lbfgs":
        return _LBFGS, True
    if optimizer == "adam":
        return optax.adam(learning_rate), False
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer, False
    raise ValueError(f"`fit(optimizer=...)` must be 'lbfgs', 'adam' or an optax "
                     f"GradientTransformation; got {optimizer!r}")


@nested_program
def _loss(problem, u):
    """`problem.loss`, nested: the line search of `_lbfgs_step` evaluates it and its
    gradient in several branches, each of which traced the model anew (an S-tau step: 2.3 s
    of tracing, now 0.9 s)."""
    return problem.loss(u)


@stored_jit
def _lbfgs_step(problem, opt, u, state):
    loss = functools.partial(_loss, problem)
    value, grad = optax.value_and_grad_from_state(loss)(u, state=state)
    updates, state = opt.update(grad, state, u, value=value, grad=grad, value_fn=loss)
    return optax.apply_updates(u, updates), state, value, grad


@eqx.filter_jit
def _grad_step(problem, opt, u, state):
    value, grad = jax.value_and_grad(problem.loss)(u)
    updates, state = opt.update(grad, state, u)
    return optax.apply_updates(u, updates), state, value, grad


@stored_jit
def _init_state(opt, u):
    return opt.init(u)


def _strong(tree):
    """Strip weak types, so that the first step does not compile a second time."""
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, x.dtype) if isinstance(
        x, jax.Array) else x, tree)


def minimize(problem: Problem, u0, *, optimizer=("lbfgs", 0.05), max_steps: int = 200,
             gtol: float = 1e-6, ftol: float = 1e-12, best: dict | None = None,
             tag: dict | None = None, history: list | None = None, bar=None,
             on_step=None, chi2_tol: float | None = CHI2_TOL, dof: int | None = None) -> dict:
    """Run the optimizer from u0 (one start).

    Returns dict(u, loss, steps, converged, reason, history). The best point is also
    written into `best` (with the items of `tag`) as soon as it is found, and the loss
    history into `history`, so that a `KeyboardInterrupt` loses neither.

    Stops when the largest gradient component is below `gtol`, or the loss changed by
    less than `ftol` (relative) for 3 steps in a row, or chi^2 = 2 loss fell by less than
    `chi2_tol` over the last `CHI2_WINDOW` steps (in units of the reduced chi^2 when `dof`
    is given, i.e. when the residuals are not in units of known errors: a decrease that
    no error bar or criterion can see; along a direction the data do not determine the
    loss can keep creeping down for thousands of steps), or after `max_steps`.
    """
    opt, is_lbfgs = _optimizer(*optimizer)
    step = _lbfgs_step if is_lbfgs else _grad_step
    # a relative change below ~10 eps cannot be resolved in the working precision
    ftol = max(float(ftol), 10.0 * float(jnp.finfo(problem.log_lo.dtype).eps))
    u = device_array(u0, dtype=problem.log_lo.dtype)
    state = _strong(_init_state(opt, u))
    hist = [] if history is None else history
    out = dict(u=np.asarray(u0, dtype=float), loss=math.inf, steps=0, converged=False,
               reason="max_steps reached", history=hist)
    flat = 0
    for it in range(max_steps):
        raise_if_interrupted()  # a Ctrl-C that JAX swallowed while compiling (_interrupts.py)
        u_prev = u
        u, state, value, grad = step(problem, opt, u, state)
        value = float(value)
        if not math.isfinite(value):
            out["reason"] = "non-finite loss"
            break
        gmax = float(np.max(np.abs(np.asarray(grad))))  # NumPy: no program to compile
        hist.append(value)
        if value < out["loss"]:
            out.update(u=np.asarray(u_prev, dtype=float), loss=value, steps=it)
            if best is not None and value < best["loss"]:
                best.update(u=out["u"], loss=value, steps=it, **(tag or {}))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4g}", grad=f"{gmax:.2g}", refresh=False)
        if on_step is not None:
            on_step(it, value, u_prev)
        if gmax < gtol:
            out.update(reason="gradient below gtol", converged=True)
            break
        if chi2_tol is not None and len(hist) > CHI2_WINDOW:
            scale = 1.0 if dof is None else max(2.0 * value / max(dof, 1), 1e-300)
            if 2.0 * (hist[-CHI2_WINDOW - 1] - value) / scale < chi2_tol:
                out.update(reason=f"chi^2 change below {chi2_tol:g} over {CHI2_WINDOW} steps",
                           converged=True)
                break
        if len(hist) > 1 and abs(hist[-2] - value) <= ftol * max(1.0, abs(value)):
            flat += 1
            if flat >= 3:
                out.update(reason="loss change below ftol", converged=True)
                break
        else:
            flat = 0
    out["steps"] = len(hist)
    return out


def _from_parameters(init, free, bounds):
    """(values, free, bounds) from a dict `init` with `free`, or from a `Parameters`."""
    if isinstance(init, Parameters) or (free is None and isinstance(init, Mapping) and any(
            hasattr(v, "vary") for v in init.values())):
        if free is not None:
            raise ValueError("`least_squares`: with a Parameters object, say what varies in "
                             "it (vary=...), not in free=")
        values, free, pbounds = internal(as_parameters(init), PARAMETERS)
        return values, free, {**pbounds, **(bounds or {})}
    if free is None:
        raise ValueError("`least_squares(free=...)` is needed when init is a dict of values")
    return init, free, bounds


def _checked_arguments(init, free, bounds, starts, max_steps, gtol, ftol, spread):
    """Validate `least_squares`' arguments; returns (free, starts, max_steps, bounds)."""
    free = list(free)
    if not free:
        raise ValueError("`fit(free=...)` must name at least one parameter")
    if len(set(free)) != len(free):
        raise ValueError(f"`fit(free=...)` names a parameter twice: {free}")
    missing = [n for n in free if n not in init]
    if missing:
        raise ValueError(f"`least_squares(init=...)` must give a starting value for every "
                         f"free parameter; missing: {', '.join(missing)}")
    starts = check_int("fit", "starts", starts, 1)
    max_steps = check_int("fit", "max_steps", max_steps, 1)
    check_range("fit", "gtol", gtol, 0.0)
    check_range("fit", "ftol", ftol, 0.0)
    check_range("fit", "spread", spread, 0.0)
    bnd = resolve_bounds(free, bounds)
    for n in free:
        lo, hi = bnd[n]
        if not lo < float(init[n]) < hi:
            raise ValueError(f"initial value of {n} = {float(init[n]):g} is outside its bounds "
                             f"({lo:g}, {hi:g})")
    return free, starts, max_steps, bnd


def _multistart(problem, u0, noise, max_steps, gtol, ftol, optimizer, dof, progress, callback):
    """Minimize from u0 + noise[s] for every start s, keeping the best point (also when
    Ctrl-C stops it). Returns (best, loss histories, interrupted)."""
    starts = noise.shape[0]
    histories: list[list[float]] = []
    best: dict = dict(loss=math.inf, u=u0, start=0, steps=0, converged=False,
                      reason="no step finished")
    interrupted = False
    on_step = None
    if callback is not None:
        def on_step(it, value, u_prev):
            callback(it, value, problem.params_numpy(u_prev))
    try:
        for s in range(starts):
            bar = progress_bar(max_steps, desc=f"fit start {s + 1}/{starts}", enabled=progress)
            hist: list[float] = []
            histories.append(hist)
            try:
                out = minimize(problem, u0 + noise[s], optimizer=optimizer,
                               max_steps=max_steps, gtol=gtol, ftol=ftol, best=best,
                               tag=dict(start=s), history=hist, bar=bar, on_step=on_step,
                               dof=dof)
            finally:
                bar.close()
            if best["start"] == s:
                best.update(converged=out["converged"], reason=out["reason"],
                            steps=out["steps"])
    except KeyboardInterrupt:
        interrupted = True
        best.update(converged=False, reason="interrupted")
    return best, histories, interrupted


def least_squares(
    residuals: Callable[[dict[str, Array]], Float[Array, " n"]],
    init,
    free: Sequence[str] | None = None,
    *,
    bounds: dict[str, tuple[float, float]] | None = None,
    starts: int = 1,
    key: PRNGKeyArray | None = None,
    spread: float = 1.0,
    max_steps: int = 200,
    gtol: float = 1e-6,
    ftol: float = 1e-12,
    optimizer="lbfgs",
    learning_rate: float = 0.05,
    absolute_sigma: bool = True,
    rcond: float = DEFAULT_RCOND,
    progress: bool = True,
    callback: Callable[[int, float, dict[str, float]], None] | None = None,
    save_path=None,
    meta: dict | None = None,
    errors: bool = True,
) -> FitResult:
    """Minimize (1/2) sum r(p)^2 over the free parameters (see the module docstring).

    **Arguments:**

    - `residuals`: maps a dict of all parameters (free ones traced) to the residual
      vector, already divided by the standard deviations. Must be jit-compatible. An
      `eqx.Module` with the same structure from call to call shares one compilation.
    - `init`: values of all parameters (free ones are the first start), physical units;
      or a `Parameters` (or an lmfit `Parameters`) holding values, `vary` and bounds,
      with `free` left out. Names outside `PARAMETERS` are allowed with bounds.
    - `free`: names of the free parameters (with a dict `init`).
    - `bounds`: per-parameter (lo, hi) overriding `PARAMETERS` (or the `Parameters`).
    - `starts`: number of starts (>= 1): `init`, then points drawn around it in u with
      standard deviation `spread`, from `key` (default `PRNGKey(0)`).
    - `max_steps`, `gtol`, `ftol`: the stopping rule.
    - `optimizer`: `"lbfgs"` (default), `"adam"` (with `learning_rate`) or an optax
      `GradientTransformation`.
    - `absolute_sigma`: if False, scale the covariance by the reduced chi^2.
    - `rcond`: eigenvalue ratio below which a Hessian direction is not determined.
    - `progress`: show a progress bar (a line every few seconds at most when stderr is
      not a terminal).
    - `callback`: called as `callback(step, loss, params)` after each step (it may raise
      `KeyboardInterrupt` to stop the fit, like Ctrl-C).
    - `save_path`: if given, the result is written there as JSON (also on interrupt).
    - `meta`: stored in `FitResult.meta`.
    - `errors`: compute the Laplace errors (default). False leaves them NaN (with a note)
      until `with_errors(result)` computes them at the same point, the same numbers: for
      fits of which only some keep their errors (the candidates of a model selection, the
      DOS-sample refits); they cost 2k + 2k(k + 1) residual evaluations for k free
      parameters, and up to 4k more for the smoothness checks (`_laplace`). Ignored with
      `save_path` (the file holds the errors).

    **Returns:** a `FitResult` (`interrupted` is True if Ctrl-C ended the optimization
    or the error estimate).
    """
    check_type("least_squares", "errors", errors, bool, "bool (True or False)")
    init, free, bounds = _from_parameters(init, free, bounds)
    free, starts, max_steps, bnd = _checked_arguments(init, free, bounds, starts, max_steps, gtol,
                                                      ftol, spread)
    _optimizer(optimizer, learning_rate)  # validate before compiling anything
    problem = make_problem(residuals, init, free, bnd)
    u0 = _unconstrained(problem, init)
    n_res = _n_residuals(problem)
    dof = None if absolute_sigma else n_res - len(free)
    noise = _start_noise(problem, starts, spread, key)
    best, histories, interrupted = _multistart(
        problem, u0, noise, max_steps, gtol, ftol, (optimizer, learning_rate), dof, progress,
        callback)

    try:
        if errors or save_path is not None:  # the file holds the errors
            result = _laplace(problem, best, free, absolute_sigma, rcond)
        else:
            result = _deferred(problem, best, free, absolute_sigma, rcond)
    except KeyboardInterrupt:
        interrupted = True
        result = _no_errors(problem, best, free, _ERRORS_INTERRUPTED)
    result.history = histories
    result.problem = problem
    result.interrupted = interrupted
    result.meta = dict(meta or {}, bounds={n: list(bnd[n]) for n in free},
                       init={n: float(init[n]) for n in free}, starts=starts,
                       start_losses=[h[-1] if h else None for h in histories],
                       best_start=best["start"], optimizer=str(optimizer), rcond=rcond,
                       absolute_sigma=absolute_sigma,
                       precision_bits=int(jnp.finfo(jnp.result_type(float)).bits),
                       **result.meta)
    if interrupted and best["reason"] == "interrupted":
        result.notes.insert(0, "the fit was interrupted: this is the best point reached")
    if save_path is not None:
        result.to_json(save_path, overwrite=True)
    return result


def _start_noise(problem: Problem, starts: int, spread: float, key) -> np.ndarray:
    """Offsets in u of each start from the given point (the first start: none; one start
    draws nothing, so no random program is compiled)."""
    noise = np.zeros((starts, len(problem.names)))
    if starts > 1:
        key = jax.random.PRNGKey(0) if key is None else key
        mask = np.asarray(problem.free_mask, dtype=float)
        noise = np.asarray(jax.random.normal(key, (starts, len(problem.names))), dtype=float)
        noise = noise * spread * mask[None, :]
        noise[0] = 0.0
    return noise


def information(res: FitResult) -> dict:
    """Information criteria of a least-squares fit (smaller is better).

    With known errors (absolute sigma), -2 ln L = chi^2 + const and K = k free
    parameters; without, the scatter is a further parameter profiled out:
    -2 ln L = n ln(RSS / n) + const and K = k + 1. AIC = -2 ln L + 2 K;
    AICc = AIC + 2 K (K + 1) / (n - K - 1) (Hurvich & Tsai 1989; inf if n <= K + 1);
    BIC = -2 ln L + K ln n.
    """
    n, k = res.n_data, len(res.free)
    chi2 = 2.0 * res.loss
    absolute = bool(res.meta.get("absolute_sigma", True))
    if absolute:
        m2lnl, K = chi2, k
    else:
        rss = chi2 * float(res.meta.get("nominal_sigma", NOMINAL_SIGMA))**2
        m2lnl, K = n * math.log(max(rss, 1e-300) / n), k + 1
    aic = m2lnl + 2.0 * K
    aicc = aic + 2.0 * K * (K + 1) / (n - K - 1) if n - K - 1 > 0 else math.inf
    out = dict(n_points=n, n_params_ic=K, minus_2_log_likelihood=m2lnl, aic=aic, aicc=aicc,
               bic=m2lnl + K * math.log(n))
    if absolute:
        out.update(goodness_of_fit(chi2, n - k))
    return out


def goodness_of_fit(chi2: float, dof: int) -> dict:
    """chi^2, reduced chi^2 and the p-value P(chi^2_dof >= chi2) of a fit with known errors
    (None where dof <= 0)."""
    if dof <= 0:
        return dict(chi2=chi2, reduced_chi2=None, p_value=None)
    import scipy.special  # here: importing it costs ~0.3 s that most runs do not need

    return dict(chi2=chi2, reduced_chi2=chi2 / dof,
                p_value=float(scipy.special.gammaincc(0.5 * dof, 0.5 * chi2)))


@stored_jit(compiler_options=QUICK_COMPILE)
def _residuals(problem: Problem, u):
    """The residual vector at u (compiled once per problem structure; where programs are
    stored, with `QUICK_COMPILE`: an S-tau model's compiles with 0.24 instead of 0.87
    CPU-seconds and runs in 0.50 instead of 0.38 ms, a few hundred times per fit)."""
    return problem.residual_vector(u)


_N_RESIDUALS: dict = {}
_N_RESIDUALS_MAX = 64
_N_RESIDUALS_LOCK = threading.Lock()


def _n_residuals(problem: Problem) -> int:
    """The length of the residual vector, from a trace of the residual function (`eval_shape`,
    nothing is computed), once per problem structure and process."""
    leaves, tree = jax.tree_util.tree_flatten(problem)
    key = (tree, tuple(jax.typeof(x) if eqx.is_array(x) else x for x in leaves))
    try:
        return _N_RESIDUALS[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable static field: traced every time
        key = None
    u = jax.ShapeDtypeStruct((len(problem.names),), problem.log_lo.dtype)
    n = int(eqx.filter_eval_shape(_residuals, problem, u).shape[0])
    if key is not None:
        with _N_RESIDUALS_LOCK:  # threads of the command line fit at once
            while len(_N_RESIDUALS) >= _N_RESIDUALS_MAX:  # it keeps the problems' functions
                _N_RESIDUALS.pop(next(iter(_N_RESIDUALS)), None)
            _N_RESIDUALS[key] = n
    return n


def prefetch_programs(problem: Problem) -> None:
    """Start making the fit's compiled programs for problems of this structure (the
    residuals, the L-BFGS step) in background threads, so that they compile while the
    caller does other work; only where programs are stored (the command line,
    `_disk_cache.stored_jit`), a no-op otherwise."""
    u = device_array(np.zeros(len(problem.names)), problem.log_lo.dtype)
    # the step's program first: it is the longest to make and every fit waits for it;
    # its optimizer state as `minimize` passes it (strongly typed), from its shapes
    state = jax.tree_util.tree_map(lambda s: device_array(np.zeros(s.shape, s.dtype)),
                                   jax.eval_shape(_LBFGS.init, u))
    _lbfgs_step.prefetch(problem, _LBFGS, u, state)
    _residuals.prefetch(problem, u)


def param_arrays(params: dict) -> dict:
    """Parameter values as device arrays of the working precision (no program compiled:
    `device_array`), as the compiled evaluations of a fit take them."""
    dtype = jnp.result_type(float)
    return {k: device_array(v, dtype=dtype) for k, v in params.items()}


def residuals_at(problem: Problem, u) -> np.ndarray:
    return np.asarray(_residuals(problem, device_array(u, dtype=problem.log_lo.dtype)),
                      dtype=float)


def jacobian_fd(problem: Problem, u, idx) -> np.ndarray:
    """d r / d u over the parameters `idx` by central differences (step eps^(1/3))."""
    u = np.asarray(u, dtype=float)
    h = float(jnp.finfo(problem.log_lo.dtype).eps) ** (1.0 / 3.0)
    cols = []
    for j in idx:
        up, um = u.copy(), u.copy()
        up[j] += h
        um[j] -= h
        cols.append((residuals_at(problem, up) - residuals_at(problem, um)) / (2.0 * h))
    return np.stack(cols, axis=1) if cols else np.zeros((residuals_at(problem, u).size, 0))


def propagate_u(result: FitResult, value: float, grad_u) -> tuple[float, float]:
    """`propagate` for a value whose gradient in u (over `result.free`) is known."""
    free = result.free
    lo, hi = (np.log(np.asarray([result.meta["bounds"][n][k] for n in free])) for k in (0, 1))
    p = np.asarray([result.params[n] for n in free], dtype=float)
    dp_du = p * dlogp_du(np.asarray(result.u), lo, hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        grad = np.where(dp_du != 0, np.asarray(grad_u, dtype=float) / dp_du, 0.0)
    return propagate_gradient(result, value, dict(zip(free, grad)))


def _curvature(problem: Problem, u, idx: np.ndarray):
    """Loss, Hessian and Jacobian over the free parameters `idx`, residuals, at u, and
    the Jacobian again from the second-derivative step (compared with J by `_stencil_jumps`).

    By central differences of the compiled residual function (no second compilation:
    an autodiff Jacobian or Hessian of the kappa model costs more to compile than the
    whole fit costs to run). J: step eps^(1/3) in u (relative error ~eps^(2/3));
    H = J^T J + sum_i r_i d^2 r_i, the second derivatives with step eps^(1/4) (relative
    error ~eps^(1/2): 1e-8 in float64, 3e-4 in float32). 2k + 2k(k+1) residual
    evaluations for k free parameters (the smoothness checks of `_laplace` add up to 4k).
    """
    u = np.asarray(u, dtype=float)
    eps = float(jnp.finfo(problem.log_lo.dtype).eps)
    r0 = residuals_at(problem, u)
    k = len(idx)

    def at(shift):
        v = u.copy()
        for j, h in shift:
            v[idx[j]] += h
        return residuals_at(problem, v)

    J = jacobian_fd(problem, u, idx)
    h2 = eps ** 0.25
    D = np.zeros((k, k, r0.size))  # second derivatives of the residuals
    J2 = np.zeros_like(J)  # the same Jacobian from the wider step (`_stencil_jumps`)
    for a in range(k):
        up, down = at([(a, h2)]), at([(a, -h2)])
        D[a, a] = (up - 2.0 * r0 + down) / (h2 * h2)
        J2[:, a] = (up - down) / (2.0 * h2)
        for b in range(a):
            D[a, b] = D[b, a] = (at([(a, h2), (b, h2)]) - at([(a, h2), (b, -h2)])
                                 - at([(a, -h2), (b, h2)]) + at([(a, -h2), (b, -h2)])) / (
                                     4.0 * h2 * h2)
    H = J.T @ J + np.einsum("abn,n->ab", D, r0)
    return 0.5 * float(np.sum(r0**2)), 0.5 * (H + H.T), J, r0, J2


def _free_index(problem: Problem, free: Sequence[str]) -> np.ndarray:
    return np.array([problem.names.index(n) for n in free])


def _null_space(H: np.ndarray, J: np.ndarray, rcond: float):
    """Split u-space (free parameters) into what the data determine and what they don't.

    Directions the residuals cannot see (the null space of J: always at least
    k - n of them with k parameters and n residuals) are not determined, whatever the
    Hessian says away from the optimum; within the rest, Hessian eigenvalues below
    `rcond` times the largest are not determined either.

    **Returns:** (inverse of H on the determined subspace, list of null vectors).
    """
    k = H.shape[0]
    _, s, vt = np.linalg.svd(J, full_matrices=True)
    s_full = np.zeros(k)
    s_full[:s.size] = s[:k]
    s_max = s_full.max() if s_full.size else 0.0
    jnull = s_full <= math.sqrt(rcond) * s_max if s_max > 0 else np.ones(k, bool)
    Q, null = vt[~jnull].T, [vt[i] for i in np.where(jnull)[0]]
    if Q.shape[1] == 0:
        return np.zeros((k, k)), null
    evals, V = np.linalg.eigh(Q.T @ H @ Q)
    lam_max = np.max(np.abs(evals))
    good = evals > rcond * lam_max
    W = Q @ V
    inv = (W[:, good] / evals[good]) @ W[:, good].T
    null += [W[:, i] for i in np.where(~good)[0]]
    return inv, null


def _effective_rcond(rcond: float, dtype) -> float:
    """rcond, but never below what the working precision can resolve."""
    return max(float(rcond), 50.0 * float(jnp.finfo(dtype).eps))


#: Why the loss may jump along a parameter (appended to its note of `_laplace_notes`).
ROUGH_HINTS = {n: ("; a~ and h_rel enter through the ES reduction of a finite DOS sample, "
                   "whose tau ground state changes where a tau field changes sign; more "
                   "realizations or a larger sample made the largest jumps smaller where "
                   "measured, or fix it (docs: explanation/fit-uncertainties)")
               for n in ("atilde", "h_rel")}
#: `_stencil_jumps`: the two Jacobian estimates differ by more than this fraction of their size.
JUMP_RATIO = 0.1
#: `_probe_jumps`: the loss change one standard error away may differ from its quadratic
#: model by this many times its Laplace value (1/2 of the chi^2 scale).
PROBE_TOLERANCE = 10.0


def _stencil_jumps(problem: Problem, u_full, idx, free, J, J2, r, skip) -> dict[str, str]:
    """Free parameters (not in `skip`) along which the loss jumps within the
    second-derivative step, each with what was measured (in words).

    The residual Jacobian column from the steps h1 = eps^(1/3) and h2 = eps^(1/4) in u
    agrees for a smooth loss; a jump within h2 makes the two differ by about the jump
    over the step. Flagged where they differ by more than `JUMP_RATIO` of their size plus
    30 times the rounding noise of a derivative at h1, the noise measured as the part of
    r(u +- h0) - r(u) that J h0 does not explain, h0 = 64 eps max(1, |u_a|), on the
    quieter side (a fit may stop within h0 of a jump; 2 residual evaluations per
    parameter; a float32 model rounds far above eps |r|).
    """
    eps = float(jnp.finfo(problem.log_lo.dtype).eps)
    h1, h2 = eps ** (1 / 3), eps ** 0.25
    found = {}
    for a, name in enumerate(free):
        if name in skip:
            continue
        h0 = 64.0 * eps * max(1.0, abs(float(u_full[idx[a]])))
        noise = math.inf
        for side in (h0, -h0):  # a fit may stop within h0 of a jump: the quieter side
            shifted = np.array(u_full, dtype=float)
            shifted[idx[a]] += side
            noise = min(noise, float(np.linalg.norm(residuals_at(problem, shifted) - r
                                                    - J[:, a] * side)))
        j1, j2 = float(np.linalg.norm(J[:, a])), float(np.linalg.norm(J2[:, a]))
        gap = float(np.linalg.norm(J[:, a] - J2[:, a]))
        if not gap <= JUMP_RATIO * max(j1, j2) + 30.0 * noise / h1:
            found[name] = (f"the loss is not smooth at the best point: |d residuals / du| is "
                           f"{j1:.3g} from a step of {h1:.2g} and {j2:.3g} from a step of "
                           f"{h2:.2g} in u, a jump")
    return found


def _probe_jumps(problem: Problem, u_full, idx, free, H, J, r, scale, skip) -> dict[str, str]:
    """Free parameters (not in `skip`) whose loss one standard error away is far from
    its quadratic model: a jump within the error bar, or a Hessian that misstates it.

    At u_a +- s, s = sqrt(scale / H_aa) (one conditional standard error of a, the others
    held), the quadratic model of the loss changes by -+(J^T r)_a s + scale / 2 (the
    gradient term: a fit stopped before its minimum). Flagged where a measured change
    is further from it than `PROBE_TOLERANCE` times scale / 2 (plus a tenth of the
    gradient term), or where their mean (the gradient term cancels) lies outside
    [1 / `PROBE_TOLERANCE`, `PROBE_TOLERANCE`] times scale / 2. 2 residual evaluations
    per parameter.
    """
    loss0, unit_rise = 0.5 * float(np.sum(r**2)), 0.5 * scale
    grad = J.T @ r
    found = {}
    if not (np.isfinite(unit_rise) and unit_rise > 0):
        return found
    for a, name in enumerate(free):
        if name in skip or not (np.isfinite(H[a, a]) and H[a, a] > 0.0):
            continue
        step = np.zeros_like(u_full)
        step[idx[a]] = math.sqrt(scale / H[a, a])
        slope = float(grad[a]) * step[idx[a]]
        change = [0.5 * float(np.sum(residuals_at(problem, u_full + sgn * step) ** 2)) - loss0
                  for sgn in (-1.0, 1.0)]
        model = [-slope + unit_rise, slope + unit_rise]
        off = max(abs(c - m) for c, m in zip(change, model))
        mean = 0.5 * (change[0] + change[1]) / unit_rise
        if (not off <= PROBE_TOLERANCE * unit_rise + 0.1 * abs(slope)
                or not 1.0 / PROBE_TOLERANCE <= mean <= PROBE_TOLERANCE):
            found[name] = (f"the loss one standard error away (the others held) is far from "
                           f"its quadratic model, a jump or a loss far from quadratic: it "
                           f"changes by {change[0] / unit_rise:.3g} and "
                           f"{change[1] / unit_rise:.3g} times the Laplace value, the model "
                           f"by {model[0] / unit_rise:.3g} and {model[1] / unit_rise:.3g}")
    return found


def _covariance_u(H, J, rc: float, keep: np.ndarray):
    """`_null_space` over the parameters `keep` (the others held fixed): the inverse
    embedded with zeros, and the null vectors with zeros at the others."""
    k = H.shape[0]
    inv, null = np.zeros((k, k)), []
    if keep.size and np.all(np.isfinite(H[np.ix_(keep, keep)])) and np.all(np.isfinite(J[:, keep])):
        sub, sub_null = _null_space(H[np.ix_(keep, keep)], J[:, keep], rc)
        inv[np.ix_(keep, keep)] = sub
        for v in sub_null:
            full = np.zeros(k)
            full[keep] = v
            null.append(full)
    elif keep.size:
        inv[np.ix_(keep, keep)] = math.nan
    return inv, null


def _undetermined(free, dlog, null_u) -> tuple[list, list[str]]:
    """The null directions in ln p (normalized) and the parameters with a sizeable share
    (>= 0.1) of one: not determined by the data."""
    null_log = []
    for v in null_u:
        w = dlog * v
        null_log.append(w / np.linalg.norm(w) if np.linalg.norm(w) > 0 else v)
    return null_log, [n for i, n in enumerate(free) if any(abs(v[i]) >= 0.1 for v in null_log)]


def _laplace(problem: Problem, best, free, absolute_sigma, rcond) -> FitResult:
    """Laplace errors at the best point (module docstring), with `_stencil_jumps` and
    `_probe_jumps`: a parameter along which the loss is not smooth gets no error (NaN),
    and the others' errors are those with it held fixed (stencil) or as they are."""
    u_full = np.asarray(best["u"], dtype=float)
    idx = _free_index(problem, free)
    loss, H, J, r, J2 = _curvature(problem, u_full, idx)
    n_data, dof = int(r.shape[0]), int(r.shape[0]) - len(free)
    u = u_full[idx]
    log_lo, log_hi = (np.asarray(a, dtype=float)[idx] for a in (problem.log_lo, problem.log_hi))
    p = np.exp(log_lo + (log_hi - log_lo) / (1.0 + np.exp(-u)))
    dlog = dlogp_du(u, log_lo, log_hi)
    rc = _effective_rcond(rcond, problem.log_lo.dtype)
    scale = 1.0
    if not absolute_sigma:
        scale = 2.0 * loss / dof if dof > 0 else math.inf
    keep = np.arange(len(free))
    inv, null_u = _covariance_u(H, J, rc, keep)
    undetermined = _undetermined(free, dlog, null_u)[1]
    jumps = _stencil_jumps(problem, u_full, idx, free, J, J2, r, set(undetermined))
    if jumps:  # held fixed: the others' errors without the jumping parameters
        keep = np.array([i for i, n in enumerate(free) if n not in jumps], dtype=int)
        inv, null_u = _covariance_u(H, J, rc, keep)
    null_log, undetermined = _undetermined(free, dlog, null_u)
    cov_u = inv * scale
    at_bound = [n for i, n in enumerate(free)
                if bound_side(p[i], math.exp(log_lo[i]), math.exp(log_hi[i]))]
    rough = dict(jumps, **_probe_jumps(problem, u_full, idx, free, H, J, r, scale,
                                       set(undetermined) | set(jumps) | set(at_bound)))
    cov_log = dlog[:, None] * cov_u * dlog[None, :]
    cov = p[:, None] * cov_log * p[None, :]
    for i, n in enumerate(free):
        if n in rough:
            cov[i, :] = cov[:, i] = cov_log[i, :] = cov_log[:, i] = math.nan
    sig_log = np.sqrt(np.clip(np.diag(cov_log), 0.0, None))
    sig = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    for i, n in enumerate(free):
        if n in undetermined:
            sig_log[i] = sig[i] = math.inf
    notes = _laplace_notes(free, p, log_lo, log_hi, sig_log, null_log, undetermined, rough,
                           set(jumps), n_data, dof, absolute_sigma)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sig, sig)
    for i in range(len(free)):
        corr[i, i] = 1.0 if np.isfinite(sig[i]) and sig[i] > 0 else math.nan
    return FitResult(
        free=list(free), params=problem.params_numpy(u_full),
        stderr={n: float(sig[i]) for i, n in enumerate(free)},
        stderr_log={n: float(sig_log[i]) for i, n in enumerate(free)},
        correlation=corr.tolist(), covariance=cov.tolist(), loss=loss, n_data=n_data,
        dof=dof, converged=bool(best["converged"]), reason=str(best["reason"]),
        steps=int(best["steps"]), history=[], hessian_u=H.tolist(), u=u.tolist(),
        undetermined=undetermined, notes=notes,
        meta=dict(null_directions_u=[np.asarray(v).tolist() for v in null_u],
                  not_smooth=rough))


def _laplace_notes(free, p, log_lo, log_hi, sig_log, null_log, undetermined, rough, held,
                   n_data, dof, absolute_sigma) -> list[str]:
    """The plain-words notes of `_laplace` (`held`: parameters held fixed for the others'
    errors)."""
    notes = []
    for n, why in rough.items():
        fixed = f"; the other errors hold at fixed {label(n)}" if n in held else ""
        notes.append(f"{named(n)}: no Laplace error ({why}){fixed}{ROUGH_HINTS.get(n, '')}")
    if dof <= 0 and not absolute_sigma:
        notes.append(f"{n_data} residuals for {len(free)} free parameters: no degrees of "
                     "freedom left to estimate the scatter, so no errors")
    for v in null_log:
        names = [named(free[i]) for i in np.argsort(-np.abs(v)) if abs(v[i]) >= 0.1]
        what = " and ".join(names) if names else "the parameters"
        notes.append(f"{what} {'is' if len(names) == 1 else 'are'} not determined by the data: "
                     f"the loss is flat along {_describe_direction(v, [label(n) for n in free])}")
    for i, n in enumerate(free):
        if n not in undetermined and sig_log[i] > 1.0:
            notes.append(f"{named(n)} is poorly determined: 1-sigma error of its logarithm = "
                         f"{sig_log[i]:.3g} (more than a factor e)")
        lo, hi = math.exp(log_lo[i]), math.exp(log_hi[i])
        if bound_side(p[i], lo, hi):
            f = factor(n)
            notes.append(f"{named(n)} = {p[i] * f:.4g} is at its bound ({lo * f:g}, {hi * f:g}"
                         f"{(' ' + unit(n)) if unit(n) else ''}); its error is not meaningful")
    return notes


_ERRORS_INTERRUPTED = ("interrupted while computing the errors (Laplace approximation): no "
                       "errors reported")
_ERRORS_DEFERRED = ("no errors computed: this fit was not chosen, or its errors were not "
                    "asked for (`with_errors`)")


def _deferred(problem: Problem, best, free, absolute_sigma, rcond) -> FitResult:
    """A result at the best point whose errors `with_errors` computes later: NaN errors,
    the loss and residual count from the residual function (as `_laplace` has them)."""
    u_full = np.asarray(best["u"], dtype=float)
    r = residuals_at(problem, u_full)
    res = _no_errors(problem, best, free, _ERRORS_DEFERRED)
    res.loss, res.n_data, res.dof = 0.5 * float(np.sum(r**2)), int(r.size), int(r.size) - len(free)
    res.converged = bool(best["converged"])
    res.meta = dict(null_directions_u=None, not_smooth=None)  # the keys `_laplace` fills
    res._deferred = (best, absolute_sigma, rcond)
    return res


def with_errors(result: FitResult) -> FitResult:
    """`result` (fitted with `least_squares(errors=False)`) with its Laplace errors, the
    numbers `least_squares` gives at once; a result that has them is returned as it is
    (also a copy made by `dataclasses.replace`, which does not keep what this needs).
    Ctrl-C here leaves them NaN, with a note, as in `least_squares`."""
    deferred = getattr(result, "_deferred", None)
    if deferred is None:
        return result
    best, absolute_sigma, rcond = deferred
    del result._deferred
    result.notes.remove(_ERRORS_DEFERRED)
    try:
        lap = _laplace(result.problem, best, result.free, absolute_sigma, rcond)
    except KeyboardInterrupt:
        result.interrupted, result.converged = True, False
        result.notes.append(_ERRORS_INTERRUPTED)
        return result
    for name in ("stderr", "stderr_log", "correlation", "covariance", "loss", "n_data", "dof",
                 "hessian_u", "u", "undetermined"):
        setattr(result, name, getattr(lap, name))
    result.notes.extend(lap.notes)
    for key in ("null_directions_u", "not_smooth"):
        result.meta[key] = lap.meta[key]
    return result


def _no_errors(problem: Problem, best, free, note: str | None) -> FitResult:
    """A result at the best point without errors (the error estimate was interrupted)."""
    idx = _free_index(problem, free)
    u_full = np.asarray(best["u"], dtype=problem.log_lo.dtype)
    n_data = _n_residuals(problem)
    nan_k = [[math.nan] * len(free) for _ in free]
    return FitResult(
        free=list(free), params=problem.params_numpy(u_full),
        stderr={n: math.nan for n in free}, stderr_log={n: math.nan for n in free},
        correlation=nan_k, covariance=nan_k, loss=float(best["loss"]), n_data=n_data,
        dof=n_data - len(free), converged=False, reason=str(best["reason"]), steps=int(best["steps"]),
        history=[], hessian_u=nan_k, u=np.asarray(best["u"], dtype=float)[idx].tolist(),
        notes=[] if note is None else [note])


def propagate(fn: Callable[[dict[str, Array]], Float[Array, ""]], result: FitResult
              ) -> tuple[float, float]:
    """Value and 1-sigma error of a derived quantity f(params) at the optimum.

    Linear propagation with the physical covariance, sigma_f^2 = grad f . Sigma . grad f
    (gradient over the free parameters). A quantity that changes along a direction the
    data do not determine gets an infinite error; one that is constant along it (e.g.
    T_U when J_o and a~ trade off at fixed T_U) keeps a finite error. One that depends
    on a parameter without an error (NaN: not computed, or the loss not smooth) gets NaN.
    """
    free = result.free
    base = dict(result.params)

    def f(vec):
        return fn({**base, **{n: vec[i] for i, n in enumerate(free)}})

    x = jnp.asarray([base[n] for n in free])
    val, grad = jax.value_and_grad(f)(x)
    return propagate_gradient(result, float(val), dict(zip(free, np.asarray(grad, float))))


def propagate_product(result: FitResult, a: str, b: str) -> tuple[float, float]:
    """`propagate` for params[a] * params[b], with its gradient written out (nothing to
    trace or compile: op by op, `propagate` costs ~0.2 s in a short command)."""
    p = result.params
    value = float(p[a]) * float(p[b])
    grad = {n: (float(p[b]) if n == a else 0.0) + (float(p[a]) if n == b else 0.0)
            for n in result.free}
    return propagate_gradient(result, value, grad)


def propagate_gradient(result: FitResult, value: float, grad: dict[str, float]
                       ) -> tuple[float, float]:
    """`propagate` for a value whose gradient over the free parameters is known."""
    free = result.free
    grad = np.asarray([grad[n] for n in free], dtype=float)
    if not np.all(np.isfinite(grad)):
        return value, math.nan
    x = np.asarray([result.params[n] for n in free], dtype=float)
    H = np.asarray(result.hessian_u, dtype=float)
    null = result.meta.get("null_directions_u")
    if null is None and np.all(np.isfinite(H)):  # results saved before null directions were
        rcond = float(result.meta.get("rcond", DEFAULT_RCOND))
        evals, evecs = np.linalg.eigh(H)
        null = evecs[:, evals <= rcond * np.max(np.abs(evals))].T
    null = np.asarray(null if null is not None else [], dtype=float).reshape(-1, len(free))
    if null.size:
        # d f / d u = d f / d p * d p / d u, with d p / d u = p d ln p / d u
        lo, hi = (np.log(np.asarray([result.meta["bounds"][n][k] for n in free]))
                  for k in (0, 1))
        g_u = grad * x * dlogp_du(np.asarray(result.u), lo, hi)
        if np.linalg.norm(null @ g_u) > 1e-6 * max(np.linalg.norm(g_u), 1e-300):
            return value, math.inf
    cov = np.asarray(result.covariance, dtype=float)
    if np.any(np.isnan(cov).any(axis=0) & (grad != 0)):  # a parameter without an error
        return value, math.nan
    var = float(grad @ np.nan_to_num(cov, posinf=0.0) @ grad)
    return value, math.sqrt(max(var, 0.0))
