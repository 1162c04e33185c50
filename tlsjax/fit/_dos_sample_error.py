"""The part of a fit's error that comes from the random ES sample behind the S-tau C(E).

The S-tau C(E) of a fit is computed from a random sample of impurities (x, L,
realizations, key; `stau_dos`). A different sample gives a slightly different C(E) and
so different best-fit parameters: a second, independent source of error that the
Laplace (statistical) errors of `least_squares` do not contain.

`dos_sample_error` measures it directly: the chosen model is refitted K times, each
time with the C(E) of an independent sample of the same size (keys never used by the
fit itself), starting from the fit's best point; the sample part of the error of each
free parameter, of T_U and of C_o (or C_o v_eff) is the standard deviation of the K
refitted values. The statistical and the sample part are reported side by side, and
combined in quadrature, total = sqrt(stat^2 + sample^2) (they are independent: one
comes from the noise of the data, the other from the model's sample). A standard
deviation from K values has a relative uncertainty of about 1 / sqrt(2 (K - 1)) (41 %
for K = 4), which is stored beside it.

The profile-likelihood bounds of T_U (statistical) are widened by the sample part in
log space: ln(T_U / bound_total) = sqrt(ln(T_U / bound)^2 + (z s)^2), with s the
sample standard deviation of ln T_U and z = Phi^-1(level).

The constant-C model uses no ES sample: its sample part is exactly zero.
"""

from __future__ import annotations

import math
import threading
from statistics import NormalDist

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._background import cores, in_background, overlap, stopping
from .._interrupts import raise_if_interrupted
from .._progress import progress_bar
from .._validate import check_int
from .._xla import QUICK_COMPILE
from ..model._lattice import Sample
from ..observables._dos import DEFAULT_DOS_SEED
from ._disk_cache import stored_jit
from ._fit import FitResult, least_squares, param_arrays
from ._kappa_model import stau_table

#: Default number of independent ES samples of the refits.
DEFAULT_DOS_SAMPLES = 4
#: Offset of the refits' keys (fold_in of the seed): far from any key a fit uses.
_KEY_OFFSET = 1_000_003
#: Optimizer steps of each refit (it starts at the fit's optimum).
_REFIT_STEPS = 200


def sample_keys(count: int, seed: int = DEFAULT_DOS_SEED) -> list:
    """`count` PRNG keys independent of `PRNGKey(seed)` and of each other."""
    base = jax.random.PRNGKey(seed)
    return [jax.random.fold_in(base, _KEY_OFFSET + k) for k in range(count)]


@stored_jit(compiler_options=QUICK_COMPILE)  # run once per refit
def _crossover(model, p):
    full, short = model.crossovers(p)
    return jnp.stack([short, full])


def _amplitude(free, p: dict, stau: bool, velocity_free: bool) -> tuple[str, float]:
    """(name, value) of C_o = kappa_log g (S-tau) or C (constant C), or of C_o v_eff
    where the fit has no velocities and fits only that combination."""
    if stau:
        if velocity_free and "kappa_log" not in free:
            return "C_o_v_eff_m_per_s", float(p["g"] * p["kv"])
        return "C_o", float(p["g"] * p["kappa_log"])
    if velocity_free and "C" not in free:
        return "C_o_v_eff_m_per_s", float(p["Cv"])
    return "C_o", float(p["C"])


def _refits(result: FitResult, model, keys, sample, realizations, steps,
            stop: threading.Event) -> list:
    """Functions that return the refit of each sample of `keys` (`_refit` on its C(E)
    table). Where the fits overlap work (`tlsjax._background.overlap`), each runs in a background
    thread, as many at once as the CPU has cores, ending early once `stop` is set; each is
    its own ES reduction and fit, so the results are those of one after the other."""
    meta = result.meta

    def job(key):
        raise_if_interrupted()  # queued behind others when the caller stopped
        table = stau_table(sample, realizations, key, float(meta["atilde"]),
                           float(meta["h_rel"]))
        return _refit(result, model, table, steps)

    if not overlap():
        return [lambda key=key: job(key) for key in keys]
    limit = threading.Semaphore(cores())
    return [in_background(lambda key=key: job(key), "tlsjax-dos-sample", limit, stop).get
            for key in keys]


def _refit(result: FitResult, model, table, steps):
    """The fit's model with the C(E) `table` of another sample, refitted from its optimum."""
    meta = result.meta
    m = eqx.tree_at(lambda q: q.table, model, table)
    bounds = {n: tuple(b) for n, b in meta["bounds"].items()}
    r = least_squares(m, dict(result.params), result.free, bounds=bounds, starts=1,
                      max_steps=steps, absolute_sigma=bool(meta.get("absolute_sigma", True)),
                      progress=False, errors=False)  # only the refitted values are used
    if r.interrupted:  # a half-finished refit is no sample: the refits end here
        raise KeyboardInterrupt
    tu = np.asarray(_crossover(m, param_arrays(r.params)), dtype=float)
    return r, float(tu[0]), _amplitude(result.free, r.params, True, m.velocity_free)


def _tu_stat(d: dict) -> float:
    """The statistical 1-sigma of T_U: from its profile bounds where both exist
    (T_U ln(upper / lower) / 2z, the Laplace error being infinite or meaningless when
    T_U lies outside the data), else the Laplace error."""
    lo, hi, tu = d.get("T_U_K_lower"), d.get("T_U_K_upper"), d.get("T_U_K", math.nan)
    if lo and hi and tu and math.isfinite(tu):
        z = NormalDist().inv_cdf(d.get("T_U_K_bound_level", 0.95))
        return tu * math.log(hi / lo) / (2.0 * z)
    return d.get("T_U_K_err", math.nan)


def _spread(values) -> float:
    v = np.asarray(values, dtype=float)
    return float(np.std(v, ddof=1)) if v.size > 1 and np.all(np.isfinite(v)) else math.nan


def dos_sample_error(result: FitResult, samples: int = DEFAULT_DOS_SAMPLES, *,
                     seed: int = DEFAULT_DOS_SEED, keys=None, max_steps: int = _REFIT_STEPS,
                     progress: bool = True) -> dict:
    """The DOS-sample part of the error of an S-tau fit, from K refits (module docstring).

    **Arguments:**

    - `result`: a `FitResult` of `fit_kappa`, `select_kappa_model` or `fit_curves` (its
      `problem` must be present, i.e. not read back from JSON).
    - `samples`: K, the number of independent ES samples (>= 2; default 4).
    - `seed`, `keys`: the refits use `sample_keys(K, seed)`, or the given `keys`.
    - `max_steps`: optimizer steps of each refit (they start at the optimum).
    - `progress`: a progress bar over the refits.

    **Returns:** dict with `samples` (K), `values` (per quantity, the K refitted values),
    `stat` / `sample` / `total` (1-sigma errors of the free parameters and of the
    derived `T_U_K` and C_o or C_o v_eff), `sample_log` (standard deviations of ln),
    `sample_rel_uncertainty` (1 / sqrt(2 (K - 1))), `dominant` (quantities whose sample
    part exceeds the statistical part) and `converged` (per refit). The constant-C model
    gives zero sample parts without refitting.
    """
    if result.problem is None:
        raise ValueError("`dos_sample_error(result=...)` needs a result fitted in this "
                         "process (its compiled problem), not one read from JSON")
    keys = list(keys) if keys is not None else None
    k = check_int("dos_sample_error", "samples", len(keys) if keys else samples, 2)
    model = result.problem.residuals
    stau = result.meta.get("model") == "stau"
    d = result.derived
    amp_name, amp_value = _amplitude(result.free, result.params, stau, model.velocity_free)
    names = list(result.free) + ["T_U_K", amp_name]
    stat = {n: result.stderr[n] for n in result.free}
    stat[amp_name] = d.get(f"{amp_name}_err", math.nan)
    stat["T_U_K"] = _tu_stat(d)
    if not stau:
        zero = {n: 0.0 for n in names if n != "T_U_K"}
        return dict(samples=0, values={}, stat=stat, sample=zero, sample_log=zero, total=stat,
                    sample_rel_uncertainty=0.0, dominant=[], converged=[],
                    note="constant C: no ES sample enters the model, the sample part is 0")
    if getattr(model, "rebuild", None) is not None:
        raise ValueError("`dos_sample_error`: not available with a~ or h_rel free (the ES "
                         "sample is rebuilt inside the fit)")
    ds = result.meta["dos_sample"]
    sample = Sample(float(ds["x"]), int(ds["cells"]))
    keys = keys or sample_keys(k, seed)
    values = {n: [] for n in names}
    converged = []
    stop = threading.Event()
    if overlap():  # the refits' T_U program compiles while their tables are built
        _crossover.prefetch(model, param_arrays(result.params))
    refits = _refits(result, model, keys, sample, int(ds["realizations"]), max_steps, stop)
    bar = progress_bar(k, desc="DOS-sample refits", enabled=progress, unit="sample")
    try:
        for refit in refits:
            with stopping(stop):
                r, tu, (_, amp) = refit()
            for n in result.free:
                values[n].append(r.params[n])
            values["T_U_K"].append(tu)
            values[amp_name].append(amp)
            converged.append(bool(r.converged))
            bar.update(1)
    finally:
        bar.close()
    return _combine(names, values, stat, converged, amp_name, amp_value, d)


def _combine(names, values, stat, converged, amp_name, amp_value, d) -> dict:
    k = len(converged)
    sample = {n: _spread(values[n]) for n in names}
    with np.errstate(divide="ignore", invalid="ignore"):
        sample_log = {n: _spread(np.log(np.asarray(values[n], dtype=float))) for n in names}
    total = {n: math.hypot(stat[n], sample[n]) if stat[n] is not None else math.nan
             for n in names}
    dominant = [n for n in names if math.isfinite(sample[n]) and stat[n] is not None
                and math.isfinite(stat[n]) and sample[n] > stat[n]]
    return dict(samples=k, values=values, stat=stat, sample=sample, sample_log=sample_log,
                total=total, sample_rel_uncertainty=1.0 / math.sqrt(2.0 * (k - 1)),
                dominant=dominant, converged=converged,
                best={"T_U_K": d.get("T_U_K"), amp_name: amp_value})


def widen_interval(value: float, lower, upper, sample_log: float, level: float):
    """The (lower, upper) bounds widened by a sample standard deviation of ln value."""
    if not (math.isfinite(sample_log) and value and value > 0):
        return lower, upper
    zs = NormalDist().inv_cdf(level) * sample_log

    def widen(bound, sign):
        if bound is None or not bound > 0:
            return bound
        return value * math.exp(sign * math.hypot(math.log(bound / value), zs))

    return widen(lower, -1.0), widen(upper, 1.0)


def add_dos_sample_error(result: FitResult, samples: int = DEFAULT_DOS_SAMPLES, *,
                         seed: int = DEFAULT_DOS_SEED, progress: bool = True) -> FitResult:
    """`dos_sample_error` stored in `result.derived["dos_sample_error"]`, with the T_U
    bounds widened (`T_U_K_lower_total`, `T_U_K_upper_total`) and a note saying how the
    two parts compare. Ctrl-C keeps the result without them (a note says so)."""
    try:
        err = dos_sample_error(result, samples, seed=seed, progress=progress)
    except KeyboardInterrupt:
        result.interrupted = True
        result.notes.insert(0, "interrupted during the DOS-sample refits: the errors are "
                            "statistical only")
        return result
    d = result.derived
    d["dos_sample_error"] = err
    if "T_U_K_lower" in d or "T_U_K_upper" in d:
        lo, hi = widen_interval(d.get("T_U_K", math.nan), d.get("T_U_K_lower"),
                                d.get("T_U_K_upper"), err["sample_log"].get("T_U_K", math.nan),
                                d.get("T_U_K_bound_level", 0.95))
        d["T_U_K_lower_total"], d["T_U_K_upper_total"] = lo, hi
    result.notes.append(sample_note(err))
    return result


def sample_note(err: dict) -> str:
    """One sentence: how large the DOS-sample part is against the statistical part."""
    if err["samples"] == 0:
        return err["note"]
    if err["dominant"]:
        return (f"the DOS-sample part of the error exceeds the statistical part for "
                f"{', '.join(err['dominant'])} ({err['samples']} independent ES samples): "
                "a larger sample (cells, realizations) would narrow it")
    return (f"the DOS-sample part of the error is below the statistical part for every "
            f"quantity ({err['samples']} independent ES samples)")


def format_sample_error(err: dict) -> str:
    """The statistical, sample and total errors as aligned text (command line)."""
    lines = [f"  error parts (1 sigma; sample part from {err['samples']} independent ES "
             f"samples, +-{100 * err['sample_rel_uncertainty']:.0f} % itself):",
             f"  {'quantity':20s} {'statistical':>12s} {'DOS sample':>12s} {'total':>12s}"]
    for n, s in err["stat"].items():
        cells = (s, err["sample"].get(n), err["total"].get(n))
        lines.append(f"  {n:20s} " + " ".join(_cell(v) for v in cells))
    if any(v is None or not math.isfinite(v) for v in err["stat"].values()):
        lines.append("  n/a: not determined by the data (see the notes and the profile bounds)")
    return "\n".join(lines)


def _cell(v) -> str:
    """A 12-wide number, or "n/a" where it is undefined (never nan or inf)."""
    return f"{v:12.4g}" if v is not None and math.isfinite(v) else f"{'n/a':>12s}"
