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
around it in u); a tqdm progress bar shows loss and gradient norm. It stops when
the gradient's largest component in u is below `gtol` ("gradient below gtol"), or the
loss changed by less than `ftol` (relative) for 3 steps in a row ("loss change below
ftol"), or after `max_steps` ("max_steps reached", not converged). Ctrl-C
(`KeyboardInterrupt`) ends the fit with the best point seen so far, `converged=False`,
reason "interrupted" (and saves it if `save_path` is given).

**Uncertainties (Laplace approximation).** At the best point the Hessian H_u of the
loss (`jax.hessian`, exact autodiff) gives the covariance Sigma_u = H_u^-1 of u;
with D = diag(dp/du), the physical covariance is D Sigma_u D and the log-space one
D_log Sigma_u D_log (D_log = diag(d ln p / du)). 1-sigma errors are the square roots
of the diagonal, the correlation matrix is the normalized covariance. If the
residuals are not in units of known standard deviations (`absolute_sigma=False`),
Sigma is scaled by the reduced chi^2 (the curve_fit convention). Directions in which
the Hessian's eigenvalue is below `rcond` times the largest are *not determined*
by the data: they are left out of the (pseudo-)inverse, every parameter with a
sizeable share of such a direction gets an infinite error, and `FitResult.notes` says
in words which combination it is. A parameter whose log-space error exceeds 1 (a
factor e) is reported as poorly determined.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from .._io import write_json
from .._validate import check_int, check_range

#: Fittable parameters: name -> (lower bound, upper bound, unit, meaning).
PARAMETERS: dict[str, tuple[float, float, str, str]] = {
    "g": (1e-4, 0.19, "", "gamma_tau / gamma_S"),
    "J0": (1.0, 1e5, "K", "S-S coupling J_o"),
    "atilde": (0.05, 8.0, "a_o", "short-distance cutoff a~"),
    "h_rel": (1e-3, 3.0, "", "random-field width h_rel"),
    "kappa_log": (1e-3, 1.0, "", "kappa_log = 1 / ln(Delta_u / Delta_l)"),
    "kv": (1.0, 1e6, "m/s", "kappa_log * v_eff (velocity-free kappa fits)"),
    "rayleigh": (1e-55, 1e-30, "s^4/m", "Rayleigh coefficient A_R (l^-1 = A_R omega^4)"),
}

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
    """Default bounds of `PARAMETERS`, overridden by `bounds`; checked."""
    out = {}
    for n in free:
        if n not in PARAMETERS:
            raise ValueError(f"unknown free parameter {n!r}; allowed: {', '.join(PARAMETERS)}")
        lo, hi = (bounds or {}).get(n, PARAMETERS[n][:2])
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
    - `stderr`: 1-sigma errors of the free parameters (inf where not determined).
    - `stderr_log`: 1-sigma errors of ln p (relative errors).
    - `correlation`, `covariance`: matrices over `free` (physical units).
    - `loss`: the final loss (chi^2 / 2), `n_data` residuals, `dof` = n_data - len(free).
    - `converged`, `reason`: the stopping rule's verdict and why.
    - `steps`: iterations of the best start; `history`: the loss per step of each start.
    - `hessian_u`: the Hessian of the loss in unconstrained space at `u`.
    - `undetermined`: names of parameters the data do not determine.
    - `notes`: plain-words statements about identifiability and the model's fit.
    - `derived`: further numbers (e.g. C_o, T_U_K, rms_log_residual), written at the
      top level of the JSON.
    - `meta`: what was fitted (data file, material, fixed settings).
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

    _FIELDS = ("free", "params", "stderr", "stderr_log", "correlation", "covariance", "loss",
               "n_data", "dof", "converged", "reason", "steps", "history", "hessian_u", "u",
               "undetermined", "notes", "meta")

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self._FIELDS}
        clash = set(self.derived) & set(d)
        if clash:  # pragma: no cover - guarded by the fitting functions
            raise ValueError(f"derived keys {sorted(clash)} clash with FitResult fields")
        d.update(self.derived)
        d["derived_keys"] = sorted(self.derived)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FitResult:
        def num(x):
            if isinstance(x, str) and x in ("inf", "-inf"):
                return float(x)
            if x is None:
                return math.nan
            return x

        kw = {k: d[k] for k in cls._FIELDS}
        for k in ("params", "stderr", "stderr_log"):
            kw[k] = {n: num(v) for n, v in kw[k].items()}
        for k in ("correlation", "covariance", "hessian_u"):
            kw[k] = [[num(v) for v in row] for row in kw[k]]
        kw["loss"] = num(kw["loss"])
        kw["derived"] = {k: d[k] for k in d.get("derived_keys", [])}
        return cls(**kw)

    def to_json(self, path, *, overwrite: bool = False) -> Path:
        """Write as JSON (never over a file tlsjax did not write, unless `overwrite`)."""
        return write_json(path, self.to_dict(), overwrite=overwrite)

    @classmethod
    def from_json(cls, path) -> FitResult:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def summary(self) -> str:
        """A few lines: values with errors, loss, convergence, notes."""
        lines = [f"fit {'converged' if self.converged else 'NOT converged'} ({self.reason}); "
                 f"loss = {self.loss:.6g}, {self.n_data} residuals, {len(self.free)} free"]
        for n in self.free:
            unit = PARAMETERS[n][2]
            lines.append(f"  {n:10s} = {self.params[n]:.6g} +- {self.stderr[n]:.3g} {unit}")
        lines += [f"  note: {s}" for s in self.notes]
        return "\n".join(lines)


# ---------------------------------------------------------------- the loop


def _optimizer(optimizer, learning_rate):
    if optimizer == "lbfgs":
        return optax.lbfgs(), True
    if optimizer == "adam":
        return optax.adam(learning_rate), False
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer, False
    raise ValueError(f"`fit(optimizer=...)` must be 'lbfgs', 'adam' or an optax "
                     f"GradientTransformation; got {optimizer!r}")


def _describe_direction(vec_log: np.ndarray, names: Sequence[str]) -> str:
    order = np.argsort(-np.abs(vec_log))
    parts = [f"{vec_log[i]:+.2f} ln {names[i]}" for i in order if abs(vec_log[i]) >= 0.05]
    return " ".join(parts)


def least_squares(
    residuals: Callable[[dict[str, Array]], Float[Array, " n"]],
    init: dict[str, float],
    free: Sequence[str],
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
) -> FitResult:
    """Minimize (1/2) sum r(p)^2 over the free parameters (see the module docstring).

    **Arguments:**

    - `residuals`: maps a dict of all parameters (free ones traced) to the residual
      vector, already divided by the standard deviations. Must be jit-compatible.
    - `init`: values of all parameters (free ones are the first start), physical units.
    - `free`: names of the free parameters (a subset of `PARAMETERS`).
    - `bounds`: per-parameter (lo, hi) overriding `PARAMETERS`.
    - `starts`: number of starts (>= 1): `init`, then points drawn around it in u with
      standard deviation `spread`, from `key` (default `PRNGKey(0)`).
    - `max_steps`, `gtol`, `ftol`: the stopping rule.
    - `optimizer`: `"lbfgs"` (default), `"adam"` (with `learning_rate`) or an optax
      `GradientTransformation`.
    - `absolute_sigma`: if False, scale the covariance by the reduced chi^2.
    - `rcond`: eigenvalue ratio below which a Hessian direction is not determined.
    - `progress`: show a tqdm progress bar.
    - `callback`: called as `callback(step, loss, params)` after each step (it may raise
      `KeyboardInterrupt` to stop the fit, like Ctrl-C).
    - `save_path`: if given, the result is written there as JSON (also on interrupt).
    - `meta`: stored in `FitResult.meta`.

    **Returns:** a `FitResult`.
    """
    free = list(free)
    if not free:
        raise ValueError("`fit(free=...)` must name at least one parameter")
    if len(set(free)) != len(free):
        raise ValueError(f"`fit(free=...)` names a parameter twice: {free}")
    starts = check_int("fit", "starts", starts, 1)
    max_steps = check_int("fit", "max_steps", max_steps, 1)
    check_range("fit", "gtol", gtol, 0.0)
    check_range("fit", "ftol", ftol, 0.0)
    check_range("fit", "spread", spread, 0.0)
    bnd = resolve_bounds(free, bounds)
    for n in free:
        lo, hi = bnd[n]
        if not lo < float(init[n]) < hi:
            raise ValueError(f"initial value of {n} = {init[n]:g} is outside its bounds "
                             f"({lo:g}, {hi:g})")
    log_lo, log_hi = _log_bounds(free, bnd)
    fixed = {k: v for k, v in init.items() if k not in free}

    def params_of(u):
        p = to_physical(u, log_lo, log_hi)
        return {**fixed, **{n: p[i] for i, n in enumerate(free)}}

    def loss_fn(u):
        r = residuals(params_of(u))
        return 0.5 * jnp.sum(r**2)

    opt, is_lbfgs = _optimizer(optimizer, learning_rate)
    value_and_grad = optax.value_and_grad_from_state(loss_fn) if is_lbfgs else \
        jax.value_and_grad(loss_fn)

    @jax.jit
    def step(u, state):
        if is_lbfgs:
            value, grad = value_and_grad(u, state=state)
            updates, state = opt.update(grad, state, u, value=value, grad=grad,
                                        value_fn=loss_fn)
        else:
            value, grad = value_and_grad(u)
            updates, state = opt.update(grad, state, u)
        return optax.apply_updates(u, updates), state, value, grad

    u0 = to_unconstrained([init[n] for n in free], log_lo, log_hi)
    key = jax.random.PRNGKey(0) if key is None else key
    noise = np.asarray(jax.random.normal(key, (starts, len(free))), dtype=float) * spread
    noise[0] = 0.0

    histories: list[list[float]] = []
    best = dict(loss=math.inf, u=u0, start=0, steps=0, converged=False,
                reason="no step finished")
    interrupted = False
    try:
        from tqdm.auto import tqdm

        for s in range(starts):
            u = jnp.asarray(u0 + noise[s])
            state = opt.init(u)
            hist: list[float] = []
            histories.append(hist)
            reason, converged, flat = "max_steps reached", False, 0
            bar = tqdm(range(max_steps), desc=f"fit start {s + 1}/{starts}",
                       disable=not progress, leave=False)
            for it in bar:
                u_prev = u
                u, state, value, grad = step(u, state)
                value = float(value)
                gmax = float(jnp.max(jnp.abs(grad)))
                if not math.isfinite(value):
                    reason = "non-finite loss"
                    break
                hist.append(value)
                if value < best["loss"]:
                    best.update(loss=value, u=np.asarray(u_prev), start=s, steps=it)
                bar.set_postfix(loss=f"{value:.4g}", grad=f"{gmax:.2g}")
                if callback is not None:
                    callback(it, value, {k: float(v) for k, v in params_of(u_prev).items()})
                if gmax < gtol:
                    reason, converged = "gradient below gtol", True
                    break
                if len(hist) > 1 and abs(hist[-2] - value) <= ftol * max(1.0, abs(value)):
                    flat += 1
                    if flat >= 3:
                        reason, converged = "loss change below ftol", True
                        break
                else:
                    flat = 0
            bar.close()
            if best["start"] == s:
                best.update(converged=converged, reason=reason, steps=len(hist))
    except KeyboardInterrupt:
        interrupted = True
        best.update(converged=False, reason="interrupted")

    result = _laplace(loss_fn, residuals, params_of, best, free, log_lo, log_hi,
                      absolute_sigma, rcond)
    result.history = histories
    result.meta = dict(meta or {}, bounds={n: list(bnd[n]) for n in free}, starts=starts,
                       start_losses=[h[-1] if h else None for h in histories],
                       best_start=best["start"], optimizer=str(optimizer), rcond=rcond,
                       absolute_sigma=absolute_sigma)
    if interrupted:
        result.notes.insert(0, "the fit was interrupted: this is the best point reached")
    if save_path is not None:
        result.to_json(save_path, overwrite=True)
    return result


def _laplace(loss_fn, residuals, params_of, best, free, log_lo, log_hi, absolute_sigma,
             rcond) -> FitResult:
    u = jnp.asarray(best["u"])
    loss = float(loss_fn(u))
    n_data = int(residuals(params_of(u)).shape[0])
    dof = n_data - len(free)
    H = np.asarray(jax.hessian(loss_fn)(u))
    H = 0.5 * (H + H.T)
    p = np.asarray(to_physical(u, log_lo, log_hi))
    dlog = dlogp_du(np.asarray(u), log_lo, log_hi)
    evals, evecs = np.linalg.eigh(H) if np.all(np.isfinite(H)) else (
        np.full(len(free), np.nan), np.eye(len(free)))
    lam_max = np.nanmax(np.abs(evals)) if np.any(np.isfinite(evals)) else math.nan
    good = evals > rcond * lam_max
    inv = (evecs[:, good] / evals[good]) @ evecs[:, good].T
    scale = 1.0
    if not absolute_sigma:
        scale = 2.0 * loss / dof if dof > 0 else math.inf
    cov_u = inv * scale
    cov_log = dlog[:, None] * cov_u * dlog[None, :]
    cov = p[:, None] * cov_log * p[None, :]
    undetermined, notes = [], []
    # a parameter is undetermined if a null direction (in log space) loads on it
    null_log = []
    for k in np.where(~good)[0]:
        v = dlog * evecs[:, k]  # d ln p along the null direction (u-space unit vector)
        if np.linalg.norm(v) > 0:
            v = v / np.linalg.norm(v)
        else:  # pragma: no cover
            v = evecs[:, k]
        null_log.append(v)
    for i, n in enumerate(free):
        if any(abs(v[i]) >= 0.1 for v in null_log):
            undetermined.append(n)
    sig_log = np.sqrt(np.clip(np.diag(cov_log), 0.0, None))
    sig = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    for i, n in enumerate(free):
        if n in undetermined:
            sig_log[i] = sig[i] = math.inf
    for v in null_log:
        names = [free[i] for i in np.argsort(-np.abs(v)) if abs(v[i]) >= 0.1]
        what = " and ".join(names) if names else "the parameters"
        notes.append(f"{what} {'is' if len(names) == 1 else 'are'} not determined by the data: "
                     f"the loss is flat along {_describe_direction(v, free)}")
    for i, n in enumerate(free):
        if n not in undetermined and sig_log[i] > 1.0:
            notes.append(f"{n} is poorly determined: 1-sigma error of ln {n} = "
                         f"{sig_log[i]:.3g} (more than a factor e)")
        lo, hi = math.exp(log_lo[i]), math.exp(log_hi[i])
        if p[i] < lo * 1.01 or p[i] > hi / 1.01:
            notes.append(f"{n} = {p[i]:.4g} is at its bound ({lo:g}, {hi:g}); its error "
                         "is not meaningful")
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sig, sig)
    for i in range(len(free)):
        corr[i, i] = 1.0 if np.isfinite(sig[i]) and sig[i] > 0 else math.nan
    params = {k: float(v) for k, v in params_of(u).items()}
    return FitResult(
        free=list(free), params=params,
        stderr={n: float(sig[i]) for i, n in enumerate(free)},
        stderr_log={n: float(sig_log[i]) for i, n in enumerate(free)},
        correlation=corr.tolist(), covariance=cov.tolist(), loss=loss, n_data=n_data,
        dof=dof, converged=bool(best["converged"]), reason=str(best["reason"]),
        steps=int(best["steps"]), history=[], hessian_u=H.tolist(), u=np.asarray(u).tolist(),
        undetermined=undetermined, notes=notes)


def propagate(fn: Callable[[dict[str, Array]], Float[Array, ""]], result: FitResult
              ) -> tuple[float, float]:
    """Value and 1-sigma error of a derived quantity f(params) at the optimum.

    Linear propagation with the physical covariance, sigma_f^2 = grad f . Sigma . grad f
    (gradient over the free parameters). A quantity that changes along a direction the
    data do not determine gets an infinite error; one that is constant along it (e.g.
    T_U when J_o and a~ trade off at fixed T_U) keeps a finite error.
    """
    free = result.free
    base = dict(result.params)

    def f(vec):
        return fn({**base, **{n: vec[i] for i, n in enumerate(free)}})

    x = jnp.asarray([base[n] for n in free])
    val, grad = jax.value_and_grad(f)(x)
    grad = np.asarray(grad, dtype=float)
    H = np.asarray(result.hessian_u, dtype=float)
    rcond = float(result.meta.get("rcond", DEFAULT_RCOND))
    if np.all(np.isfinite(H)):
        evals, evecs = np.linalg.eigh(H)
        null = evecs[:, evals <= rcond * np.max(np.abs(evals))]
        # d f / d u = d f / d p * d p / d u, with d p / d u = p d ln p / d u
        lo, hi = (np.log(np.asarray([result.meta["bounds"][n][k] for n in free]))
                  for k in (0, 1))
        g_u = grad * np.asarray(x) * dlogp_du(np.asarray(result.u), lo, hi)
        if null.size and np.linalg.norm(g_u @ null) > 1e-6 * max(np.linalg.norm(g_u), 1e-300):
            return float(val), math.inf
    cov = np.nan_to_num(np.asarray(result.covariance, dtype=float), posinf=0.0)
    var = float(grad @ cov @ grad)
    return float(val), math.sqrt(max(var, 0.0))
