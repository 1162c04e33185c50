"""Automatic choice among nested kappa(T) models by an information criterion.

The candidates are the constant-C standard tunneling model (the null hypothesis) and
the S-tau model, each without or with a boundary term (free l_b) and without or with a
Rayleigh term (free A_R): up to 8 models, nested (constant C is the S-tau model with
T_U -> infinity; no boundary term is l_b -> infinity; no Rayleigh term is A_R = 0).
Each is fitted from the default starting values and, where it exists, from the best
fit of the models it contains (the better of the two is kept), and the one with the
smallest criterion is chosen:

- `"aicc"` (default): the corrected Akaike criterion, AIC + 2K(K + 1)/(n - K - 1). Measured
  kappa(T) curves have 10-30 points, where plain AIC over-fits; AICc tends to AIC for
  large n (Hurvich & Tsai, Biometrika 76, 297 (1989)).
- `"aic"`: AIC = -2 ln L + 2K.
- `"bic"`: BIC = -2 ln L + K ln n (a stronger penalty for each parameter).

K counts the free parameters plus, when the data carry no errors, the scatter (see
`information`). The table of all candidates (criterion, its difference to the best,
Akaike weight exp(-Delta/2) normalized, rms log residual, convergence) is returned in
`FitResult.derived["model_selection"]`. A parameter on the edge of its range (the
nested limit) makes the chi^2 statistics of the comparison approximate: read a small
Delta (< 2) as "the data do not decide".
"""

from __future__ import annotations

import functools
import logging
import math
import threading

from .._background import in_background, overlap, stopping
from .._progress import progress_bar
from ..observables._dos import DEFAULT_DOS_REALIZATIONS
from ._fit import FitResult, with_errors
from ._fit_stau import (
    _term_options,
    fit_kappa_model,
    post_fit,
    prefetch_programs,
    prepare_kappa,
    user_choice,
)
from ._profile import DEFAULT_LEVEL

_log = logging.getLogger("tlsjax.fit")
CRITERIA = ("aicc", "aic", "bic")
DEFAULT_CRITERION = "aicc"
_MODES = ("auto", "absent", "free")
#: Seconds to wait, after Ctrl-C, for the other candidate family to reach its next step.
_SETTLE_S = 5.0


def _options(where, name, value, allowed):
    if isinstance(value, str):
        if value not in allowed:
            raise ValueError(f"`{where}({name}=...)` must be one of {allowed} or a number; "
                             f"got {value!r}")
        return ("absent", "free") if value == "auto" else (value,)
    return (value,)


def candidates(model="auto", boundary="auto", rayleigh="auto") -> list[tuple]:
    """The (model, boundary, rayleigh) options to compare, simplest first."""
    models = _options("select_kappa_model", "model", model, ("auto", "stm", "stau"))
    models = ("stm", "stau") if models == ("absent", "free") else models
    bs = _options("select_kappa_model", "boundary", boundary, _MODES)
    rs = _options("select_kappa_model", "rayleigh", rayleigh, _MODES)
    out = [(m, b, r) for m in models for b in bs for r in rs]

    def size(c):
        return (c[0] == "stau") * 2 + (c[1] == "free") + (c[2] == "free")

    return sorted(out, key=size)


def _parent_start(c, done) -> dict | None:
    """The parameters of the best fitted candidate nested in c (same model, fewer terms)."""
    best = None
    for (m, b, r), res in done.items():
        if m != c[0] or res is None:
            continue
        if (b == "free" and c[1] != "free") or (r == "free" and c[2] != "free"):
            continue
        if best is None or res.loss < best.loss:
            best = res
    return None if best is None else dict(best.params)


def select_kappa_model(
    data,
    material=None,
    *,
    model="auto",
    boundary="auto",
    rayleigh="auto",
    criterion: str = DEFAULT_CRITERION,
    init=None,
    kv: float | None = None,
    sigma_log=None,
    weights=None,
    sample=None,
    realizations: int = DEFAULT_DOS_REALIZATIONS,
    key=None,
    seed: int | None = None,
    level: float = DEFAULT_LEVEL,
    profile: bool = True,
    progress: bool = True,
    params=None,
    **fit_kwargs,
) -> FitResult:
    """Fit the candidate models of kappa(T) and keep the one the criterion prefers.

    **Arguments:**

    - `data`, `material`, `init`, `kv`, `sigma_log`, `weights`, `sample`,
      `realizations`, `key`, `seed`, `level`, `profile`: as in `fit_kappa`.
    - `model`: `"auto"` (compare constant C and S-tau), `"stau"` or `"stm"`.
    - `boundary`, `rayleigh`: `"auto"` (compare without and with the term, free),
      `"absent"`, `"free"`, or a number (fixed, in the units of `fit_kappa`).
    - `criterion`: `"aicc"` (default), `"aic"` or `"bic"` (module docstring).
    - `progress`: progress bars over the candidates and over the profile bounds.
    - `params`: a user's `Parameters` (as in `fit_kappa`), applied to every candidate;
      a boundary or Rayleigh term it fixes or frees is no longer chosen.
    - `fit_kwargs`: passed to `least_squares` for every candidate (starts, max_steps, ...).

    **Returns:** the chosen model's `FitResult` (with its errors, profile bounds and
    derived quantities), with `derived["model_selection"]` holding the table of all
    candidates. Ctrl-C keeps the best of the candidates finished so far (`interrupted`).
    """
    if criterion not in CRITERIA:
        raise ValueError(f"`select_kappa_model(criterion=...)` must be one of {CRITERIA}; "
                         f"got {criterion!r}")
    boundary, rayleigh = _term_options(user_choice(params, material is None), material is None,
                                       boundary, rayleigh)
    cands = candidates(model, boundary, rayleigh)
    if not 0.5 < level < 1.0:
        raise ValueError(f"`select_kappa_model(level=...)` must be in (0.5, 1); got {level!r}")
    # the S-tau table is built in a background thread while the constant-C candidates,
    # which do not use it, are fitted (their results do not depend on the order)
    setup = prepare_kappa(data, material, init=init, kv=kv, sigma_log=sigma_log,
                          weights=weights, sample=sample, realizations=realizations, key=key,
                          seed=seed, params=params,
                          need_table=any(c[0] == "stau" for c in cands) and "later")
    prefetch_programs(setup)  # compile while the table is built and the first fit starts
    _log.info(f"fitting {len(cands)} candidate model(s), choosing by {criterion.upper()}")
    bar = progress_bar(len(cands), desc="fit kappa: candidate models", enabled=progress,
                       unit="model")
    try:
        setup, done, skipped, interrupted = _fit_candidates(setup, cands, material, fit_kwargs,
                                                            bar)
    finally:
        bar.close()
    fitted = {c: r for c, r in done.items() if r is not None}
    if not fitted:
        if interrupted:
            raise KeyboardInterrupt
        raise ValueError("no candidate model could be fitted: " + "; ".join(skipped.values()))
    try:
        return _finish(cands, done, skipped, fitted, criterion, interrupted, setup, level,
                       profile, progress)
    except KeyboardInterrupt:  # between the fits and the post-fit stage: keep the fits
        res = min(fitted.values(), key=lambda r: r.derived.get(criterion, math.inf))
        res.interrupted = True
        res.notes.insert(0, "interrupted after the candidate fits: this is the best by the "
                         "criterion; no table, errors or bounds")
        return res


def _fit_family(setup, cands, material, fit_kwargs, bar, done, skipped, stop=None) -> bool:
    """Fit the candidates of one model, simplest first, each also from the best fit of the
    candidates it contains; results go into `done` and `skipped`. Returns True if Ctrl-C
    ended a fit. Candidates with as many free terms (a wave: boundary alone, Rayleigh alone)
    contain none of each other, so each starts from the waves before it only: where `stop`
    is given (work overlaps), a wave's candidates are fitted at once, in background threads
    and this one, the same fits as one after the other; else one by one in `cands`' order."""
    for wave in _waves(cands) if stop is not None else [[c] for c in cands]:
        if any(c[0] == "stau" for c in wave):
            setup = setup.with_table()
        jobs = [functools.partial(_fit_candidate, setup, c, _parent_start(c, done), material,
                                  fit_kwargs) for c in wave]
        bar.set_postfix(model=", ".join(f"{c[0]} b={c[1]} r={c[2]}" for c in wave),
                        refresh=False)
        side = [in_background(job, "tlsjax-candidates", stop=stop) for job in jobs[:-1]]
        try:
            last = jobs[-1]()  # here, while the others run
        except KeyboardInterrupt:  # before the fit could keep a point
            last = None
        outs = [*(_collected(slot, stop) for slot in side), last]
        for c, res in zip(wave, outs, strict=True):
            if res is None:  # stopped before it had a result: not recorded
                continue
            done[c] = None if isinstance(res, str) else res
            if isinstance(res, str):
                skipped[c] = res
            bar.update(1)
        if any(res is None or not isinstance(res, str) and res.interrupted for res in outs):
            return True
    return False


def _collected(slot, stop):
    """The fit of a wave's background thread; on Ctrl-C while waiting for it, what it
    reached (a stopped fit ends at its next step with its best point), or None where it
    ended without a result or is still compiling after the grace."""
    try:
        return slot.get()
    except KeyboardInterrupt:
        stop.set()
        if not slot.settle(_SETTLE_S) or slot.failed():
            return None
        return slot.get()


def _fit_candidate(setup, c, parent, material, fit_kwargs):
    """The fit of candidate `c` (from `parent`'s parameters too, where given), or why it
    cannot be fitted (e.g. more parameters than points)."""
    try:
        return fit_kappa_model(setup, c[0], boundary=c[1], rayleigh=c[2], material=material,
                               starts_from=(None,) if parent is None else (None, parent),
                               post=False, progress=False, **fit_kwargs)
    except ValueError as err:
        return str(err)


def _waves(cands) -> list[list]:
    """`cands` grouped by their number of free terms, fewest first, in `cands`' order."""
    count = [sum(term == "free" for term in c[1:]) for c in cands]
    return [[c for c, k in zip(cands, count) if k == n] for n in sorted(set(count))]


def _fit_candidates(setup, cands, material, fit_kwargs, bar):
    """(setup with its table where needed, done, skipped, interrupted) of all candidates.

    A candidate starts from fits of the same model only, so the constant-C family and the
    S-tau family are independent: where the fits overlap work (`tlsjax._background.overlap`, the
    command line), the constant-C family is fitted in a background thread while this one
    fits the S-tau family (after waiting for its table), the same fits in about half the
    time on two cores; within a family, the candidates of a wave too (`_fit_family`).
    Ctrl-C stops all at their next step and keeps what they reached. Otherwise, and with a
    user's `callback` or `save_path`, they run in `cands`' order."""
    families = [[c for c in cands if c[0] == m] for m in ("stm", "stau")]
    overlapped = overlap() and not {"callback", "save_path"} & set(fit_kwargs)
    parallel = overlapped and all(families)
    if not parallel:
        families = [cands, []]
    results = [({}, {}), ({}, {})]
    stop, interrupted, side = threading.Event(), False, None
    try:
        with stopping(stop):
            if parallel:
                side = in_background(lambda: _fit_family(
                    setup, families[0], material, fit_kwargs, bar, *results[0], stop),
                    "tlsjax-candidates", stop=stop)
            interrupted = _fit_family(setup, families[1] if parallel else families[0],
                                      material, fit_kwargs, bar, *results[int(parallel)],
                                      stop if overlapped else None)
            if interrupted:
                stop.set()
            if side is not None:
                interrupted |= side.get()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if side is not None:  # a stopped fit ends at its next step, with its best point;
            side.settle(_SETTLE_S)  # one still compiling is left (the grace is 10 s)
    if any(c[0] == "stau" for c in cands) and not interrupted:
        setup = setup.with_table()
    done = {c: r for d, _ in results for c, r in list(d.items())}
    skipped = {c: e for _, k in results for c, e in list(k.items())}
    return setup, done, skipped, interrupted


def _finish(cands, done, skipped, fitted, criterion, interrupted, setup, level, profile,
            progress):
    table, chosen = _table(cands, done, skipped, criterion)
    res = fitted[chosen]
    res.derived["model_selection"] = dict(criterion=criterion, chosen=res.meta["model_label"],
                                          candidates=table, interrupted=interrupted)
    res.notes.insert(0, _selection_note(table, criterion, res))
    res = with_errors(res)  # the candidates were fitted without (`fit_kappa_model`)
    if interrupted or res.interrupted:
        res.interrupted = True
        res.notes.insert(0, "interrupted during the model selection: the chosen model is "
                         "the best of those fitted so far; no errors of derived quantities "
                         "or profile bounds were computed")
        return res
    return post_fit(res, setup, level=level, profile=profile, progress=progress)


def _table(cands, done, skipped, criterion):
    rows, values = [], {}
    for c in cands:
        res = done.get(c)
        if res is None:
            if c in skipped:
                rows.append(dict(model=c[0], boundary=c[1], rayleigh=c[2], skipped=skipped[c]))
            continue
        d = res.derived
        values[c] = d[criterion]
        rows.append(dict(model=c[0], boundary=c[1], rayleigh=c[2], label=d["model_label"],
                         free=list(res.free), k=len(res.free), loss=res.loss,
                         rms_log_residual=d.get("rms_log_residual"), aic=d["aic"],
                         aicc=d["aicc"], bic=d["bic"], converged=res.converged))
    finite = {c: v for c, v in values.items() if math.isfinite(v)}
    pool = finite or values
    chosen = min(pool, key=lambda c: (pool[c], len(done[c].free)))
    best = pool[chosen]
    weights = {c: math.exp(-0.5 * (v - best)) for c, v in finite.items()}
    total = sum(weights.values()) or 1.0
    for row in rows:
        c = (row["model"], row["boundary"], row["rayleigh"])
        if c in values:
            ok = math.isfinite(values[c]) and math.isfinite(best)
            row["delta"] = values[c] - best if ok else None
            row["weight"] = weights.get(c, 0.0) / total if ok else None
            row["chosen"] = c == chosen
    return rows, chosen


def _selection_note(table, criterion, res) -> str:
    fitted = sorted((r for r in table if r.get("delta") is not None), key=lambda r: r["delta"])
    undefined = sum(1 for r in table if "delta" in r and r["delta"] is None)
    text = (f"model chosen by {criterion.upper()} among {len(fitted)} candidates: "
            f"{res.meta['model_label']}")
    if undefined:
        text += (f" ({undefined} more fitted, but with too few points for their "
                 f"{criterion.upper()} to be defined)")
    if len(fitted) > 1:
        nxt = fitted[1]
        text += (f"; next {nxt['label']} (Delta {criterion.upper()} = {nxt['delta']:.3g}"
                 + (", the data do not decide between them" if nxt["delta"] < 2 else "") + ")")
    return text


def _cell(value, fmt: str, width: int) -> str:
    """A number for the table, or "n/a" (right-aligned) where it is not defined."""
    if value is None or not math.isfinite(value):
        return f"{'n/a':>{width}s}"
    return f"{value:{width}{fmt}}"


def format_selection_table(selection: dict) -> str:
    """The candidate table as aligned text (for the command line). A criterion that is not
    defined (AICc with n <= K + 1 points) is shown as n/a, with the reason below."""
    crit = selection["criterion"]
    lines = [f"  {'model':38s} {'k':>2s} {'rms ln':>8s} {crit.upper():>9s} {'Delta':>7s} "
             f"{'weight':>6s}"]
    undefined = False
    for r in sorted(selection["candidates"], key=lambda r: (
            r.get("delta") is None, r.get("delta") or 0.0)):
        if "skipped" in r:
            lines.append(f"  {r['model']} b={r['boundary']} r={r['rayleigh']}: skipped "
                         f"({r['skipped']})")
            continue
        mark = "*" if r.get("chosen") else " "
        undefined |= not math.isfinite(r[crit])
        lines.append(f"{mark} {r['label']:38s} {r['k']:2d} "
                     f"{_cell(r['rms_log_residual'], '.4f', 8)} {_cell(r[crit], '.2f', 9)} "
                     f"{_cell(r.get('delta'), '.2f', 7)} {_cell(r.get('weight'), '.3f', 6)}"
                     + ("" if r["converged"] else "  (not converged)"))
    if undefined:
        lines.append(f"  n/a: {crit.upper()} is not defined with n <= K + 1 points for K "
                     "estimated parameters (the scatter counts as one without known errors)")
    return "\n".join(lines)
