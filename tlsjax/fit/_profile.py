"""One-sided and two-sided bounds by profile likelihood.

Where the data do not determine a quantity in one direction (T_U above the measured
range, J_o running into its bound), a symmetric Laplace error means nothing. The
profile likelihood does: fix the quantity q at a value, minimize the loss over all
the other free parameters, and compare with the best fit. With loss = chi^2 / 2, the
one-sided bound at confidence `level` is where the profile rises by

    Delta loss = z^2 / 2 * s^2,    z = Phi^-1(level)  (1.645 at 95 %),

with s^2 = 1 when the residuals are in units of known standard deviations, and
s^2 = chi^2_min / dof (the reduced chi^2) when they are not (the covariance is scaled
the same way in `_fit.py`). A side on which the profile stays below that rise all the
way to the edge of the parameter box is open: the data give no bound there.

The walk starts at the best fit and moves ln q outwards in growing steps (0.1, 0.2,
0.4, ... in ln q), each re-minimization warm-started from the previous one, until the
profile has risen by `LEVELS_OFF` times that rise (or reaches the edge of the box), then
brackets the last crossing and bisects it (6 halvings). A profile that crosses but levels
off below `LEVELS_OFF` times the rise up to the edge leaves that side open (see
`LEVELS_OFF`). A re-minimization that fails (a loss that is not finite, e.g. a model that
overflows far out) ends the walk: the profile is unknown beyond the last point computed,
so the failure is not taken for a rise, and the side is judged on the points computed
(`profile_side`'s `fails_beyond`). It uses the fit's own compiled
step (`Problem.with_fixed`), so it compiles nothing new.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Collection, Sequence
from statistics import NormalDist

import numpy as np

from .._background import in_background, overlap, stopping
from ._fit import Problem, minimize

#: Default confidence of the one-sided bounds.
DEFAULT_LEVEL = 0.95
#: |correlation| at or above which two free parameters have their Laplace errors checked
#: against the profile (`laplace_rises`), and get profile-likelihood bounds where the check
#: fails. Along so narrow a valley of the loss the quadratic (Laplace) picture may fail
#: within one sigma: on the example Delta v/v curve (docs/how-to/fit-qinv-and-dvv.md)
#: kappa_log and A k_B^3 are correlated at -0.995, and the truth lies 5.8 Laplace sigmas of
#: kappa_log away at a chi^2 only 6.1 above the best fit, where a quadratic loss would put
#: it 34 above.
STRONG_CORRELATION = 0.99
#: The Laplace error of a strongly correlated parameter stands where the profile, at the
#: two points where that error puts the one-sided bounds, rises by between
#: 1 / LAPLACE_TOLERANCE and LAPLACE_TOLERANCE times the rise that marks a bound (a factor
#: ~1.4 in the distance to the bound, for a loss quadratic in between).
LAPLACE_TOLERANCE = 2.0
#: A profile that crosses the rise marking a bound but whose rise at the edge of the
#: parameter's range is still below LEVELS_OFF times that rise, an edge at least twice as
#: far out (in ln q) as the crossing, gives no bound on that side (it is reported open,
#: with the crossing and the rise at the edge). There the quantity has stopped changing the
#: curves (A k_B^3 of a Delta v/v fit once the relaxation maximum lies below the lowest
#: temperature), and the chi^2_1 calibration of the rise fails (docs/explanation/
#: fit-uncertainties.md; the coverage study of experiments/dvv_coverage.py). The walk goes
#: on past a crossing until the rise reaches this factor, so a profile that comes back down
#: beyond its first crossing is followed too. Only the walk's points are looked at: a
#: profile still rising, but slowly, between them and the edge also counts as levelling off.
LEVELS_OFF = 2.0
#: Optimizer steps per point of the profile.
_PROFILE_STEPS = 60


def profile_threshold(level: float, loss_min: float, dof: int, absolute_sigma: bool) -> float:
    """The rise of the loss (chi^2 / 2) that marks a one-sided bound at `level`."""
    if not 0.5 < level < 1.0:
        raise ValueError(f"`profile(level=...)` must be in (0.5, 1); got {level!r}")
    z = NormalDist().inv_cdf(level)
    s2 = 1.0 if absolute_sigma else (2.0 * loss_min / dof if dof > 0 else math.inf)
    return 0.5 * z * z * s2


def strongly_correlated(free: Sequence[str], correlation, skip: Collection[str] = (),
                        threshold: float = STRONG_CORRELATION) -> list[tuple[str, str, float]]:
    """The pairs (a, b, r) of `free` parameters, neither in `skip`, correlated at
    |r| >= `threshold` (`correlation`: the fit's matrix over `free`; NaN entries, where an
    error is not defined, are skipped)."""
    pairs = []
    for i, a in enumerate(free):
        for j in range(i + 1, len(free)):
            r = float(correlation[i][j])
            if a not in skip and free[j] not in skip and math.isfinite(r) \
                    and abs(r) >= threshold:
                pairs.append((a, free[j], r))
    return pairs


def laplace_rises(problem: Problem, name: str, value: float, sigma_log: float, u_best,
                  loss_min: float, threshold: float, box: tuple[float, float], level: float,
                  dof: int | None = None) -> list[float]:
    """The profile's rise above `loss_min`, in units of `threshold`, at the two points where
    the Laplace error puts the one-sided bounds at `level`: `value` exp(-+ z sigma_log).
    1 for a loss quadratic in ln `name` out to there; inf for a point outside `box` (the
    Laplace interval leaves the parameter's range). Two re-minimizations, as in the walk."""
    z = NormalDist().inv_cdf(level)
    rises = []
    for direction in (-1, 1):
        point = value * math.exp(direction * z * sigma_log)
        if not (math.isfinite(point) and box[0] < point < box[1]):
            rises.append(math.inf)
            continue
        loss = _fixed_loss(problem, name, point, u_best, _PROFILE_STEPS, dof)[0]
        rises.append((loss - loss_min) / threshold)
    return rises


def laplace_stands(rises: Sequence[float]) -> bool:
    """Whether every rise of `laplace_rises` lies within the tolerance."""
    return all(1.0 / LAPLACE_TOLERANCE <= r <= LAPLACE_TOLERANCE for r in rises)


def _fixed_loss(problem: Problem, name: str, value: float, u0, max_steps: int, dof):
    out = minimize(problem.with_fixed(name, value), u0, max_steps=max_steps, dof=dof)
    if not math.isfinite(out["loss"]):
        return math.inf, np.asarray(u0)
    return out["loss"], out["u"]


def profile_side(problem: Problem, name: str, value: float, u_best, loss_min: float,
                 threshold: float, direction: int, limit: float, *,
                 max_steps: int = _PROFILE_STEPS, dof: int | None = None) -> dict:
    """Walk `name` from `value` towards `limit` (direction +1 or -1) until the profile
    loss exceeds loss_min + `LEVELS_OFF` threshold, or to `limit`; the bound is the last
    crossing of loss_min + threshold on the way.

    **Arguments:**

    - `problem`: the fit's `Problem`, in which `name` is free or fixed (it is fixed
      at each value of the walk; the other free parameters are minimized).
    - `value`: the best-fit value of `name`; `u_best` the best fit in u.
    - `loss_min`, `threshold`: the best loss and the rise that marks the bound.
    - `limit`: the edge of the box in that direction (> 0).
    - `dof`: degrees of freedom where the residuals are not in units of known errors
      (the stopping rule of each re-minimization then works in reduced chi^2 units).

    **Returns:** dict(bound, lowest, levels_off, comes_back, fails_beyond): the bound (None
    where the side is open), the lowest profile loss seen (below `loss_min` only if the fit
    had not reached its optimum), and, where the profile crosses the bound's rise but levels
    off below `LEVELS_OFF` times it all the way to `limit` (or to the last point computed,
    see `fails_beyond`), that point lying at least twice as far from `value` as the crossing
    (in ln q; a nearer edge leaves too little room to tell a plateau, and the crossing stays
    the bound) (the side is then given as open), dict(crossing, rise_at_edge, edge): the
    crossing a plain walk would have called the bound, the rise at that farthest point in
    units of `threshold`, and the point; else None. `comes_back`: where the profile first
    rose past the bound's rise (to a step of the walk), where it came back below it further
    out (the confidence set is then not one interval, and the bound or the open side lies
    beyond a gap); else None. `fails_beyond`: where a re-minimization of the walk failed (a
    loss that is not finite), which ends the walk since the profile is unknown beyond the
    last point computed: dict(computed_to, failed_at); the side is then judged on the
    points computed (open where the last is below the bound's rise); else None. A failed
    re-minimization while bisecting ends the bisection at the outer end of its bracket (a
    point computed above the bound's rise: a wider bound, never a narrower one). A
    re-minimization that meets a non-finite loss after some steps keeps its best point
    (`minimize`): an upper bound of the profile there, counted as computed.
    """
    points = _walk(problem, name, value, u_best, loss_min, threshold, direction, limit,
                   max_steps, dof)
    fails, edge = None, float(limit)
    if not math.isfinite(points[-1][1]):  # the profile is unknown beyond the last point
        failed_at, points = math.exp(points[-1][0]), points[:-1]
        edge = math.exp(points[-1][0])
        fails = dict(computed_to=edge, failed_at=failed_at)
    lowest = min(loss_min, min(p[1] for p in points))
    rises = [(p[1] - lowest) / threshold for p in points]
    below = max((i for i, r in enumerate(rises) if r < 1.0), default=0)
    first = next((i for i, r in enumerate(rises) if r >= 1.0), None)
    if below == len(points) - 1:  # below the bound's rise at the edge (or the failure): open
        return dict(bound=None, lowest=lowest, levels_off=None, fails_beyond=fails,
                    comes_back=None if first is None else _first_rise(points, first))
    crossing, lowest = _bisect(problem, name, points[below], points[below + 1][0], lowest,
                               threshold, max_steps, dof)
    lv = math.log(value)
    if rises[-1] < LEVELS_OFF and abs(math.log(edge) - lv) >= 2.0 * abs(math.log(crossing) - lv):
        # the walk reached an edge (or its last point) at least twice as far out as the
        # crossing (where a quadratic profile would have risen by 4) without rising to
        # LEVELS_OFF
        return dict(bound=None, lowest=lowest, levels_off=dict(  # rise against the lowest
            crossing=crossing, rise_at_edge=(points[-1][1] - lowest) / threshold,  # seen
            edge=edge), comes_back=None, fails_beyond=fails)
    back = None if first == below + 1 else _first_rise(points, first)
    return dict(bound=crossing, lowest=lowest, levels_off=None, comes_back=back,
                fails_beyond=fails)


def _bisect(problem, name, inside_point, outside: float, lowest: float, threshold: float,
            max_steps: int, dof) -> tuple[float, float]:
    """The crossing between the walk's last point below the bound's rise (`inside_point`:
    ln q, loss, u) and the next (`outside`, ln q), by 6 halvings, each re-minimization
    started from the inner end; (crossing, lowest loss seen). A failed re-minimization
    stops it at the bracket's outer end."""
    inside, u_in = inside_point[0], inside_point[2]
    for _ in range(6):
        mid = 0.5 * (inside + outside)
        lm, um = _fixed_loss(problem, name, math.exp(mid), u_in, max_steps, dof)
        if not math.isfinite(lm):  # tells nothing: the outer end, computed above the rise
            return math.exp(outside), lowest
        lowest = min(lowest, lm)
        if lm - lowest >= threshold:
            outside = mid
        else:
            inside, u_in = mid, um
    return math.exp(0.5 * (inside + outside)), lowest


def _first_rise(points, first: int) -> float:
    """Where the walk first rose past the bound's rise, between its points (`profile_side`,
    a profile that comes back below it further out): the geometric midpoint of the two
    points around it (no more re-minimizations); the best fit's own point where it already
    lies above (a fit short of its optimum)."""
    if first == 0:
        return math.exp(points[0][0])
    return math.exp(0.5 * (points[first - 1][0] + points[first][0]))


def _walk(problem, name, value, u_best, loss_min, threshold, direction, limit, max_steps,
          dof) -> list[tuple[float, float, np.ndarray]]:
    """The points (ln q, profile loss, u) of `profile_side`'s walk, the best fit first: steps
    0.1, 0.2, 0.4, ... in ln q, each re-minimization warm-started from the previous one,
    until the rise reaches `LEVELS_OFF` times `threshold`, the walk reaches `limit`, or a
    re-minimization fails (a loss that is not finite: the last point)."""
    lv, lim = math.log(value), math.log(limit)
    step, u = 0.1, np.asarray(u_best, dtype=float)
    points, lowest = [(lv, loss_min, u)], loss_min
    while True:
        nxt = lv + direction * step
        at_edge = (nxt - lim) * direction >= 0
        if at_edge:
            nxt = lim
        loss, u = _fixed_loss(problem, name, math.exp(nxt), u, max_steps, dof)
        points.append((nxt, loss, u))
        lowest = min(lowest, loss)
        if at_edge or not math.isfinite(loss) or loss - lowest >= LEVELS_OFF * threshold:
            return points
        lv, step = nxt, step * 2.0


def profile_interval(problem: Problem, name: str, value: float, u_best, loss_min: float,
                     threshold: float, box: tuple[float, float], dof: int | None = None) -> dict:
    """Both sides of the profile of `name` (see `profile_side`): dict(lower, upper,
    lowest_loss[, levels_off][, comes_back][, fails_beyond]), lower/upper None where open;
    levels_off, comes_back and fails_beyond, only where a side's profile levels off, comes
    back or could not be computed further, map that side to what `profile_side` gives for
    it. Where the fits overlap work (`tlsjax._background.overlap`), the lower side is walked
    in a background thread while this one walks the upper side: each is its own sequence of
    fits, so the result is the same as one after the other, in about half the time on two
    cores."""
    def side(direction: int, limit: float):
        return profile_side(problem, name, value, u_best, loss_min, threshold, direction,
                            limit, dof=dof)

    stop = threading.Event()
    lower_side = (in_background(lambda: side(-1, box[0]), "tlsjax-profile", stop=stop)
                  if overlap() else None)
    with stopping(stop):
        lower = side(-1, box[0]) if lower_side is None else None
        upper = side(+1, box[1])
        if lower_side is not None:
            lower = lower_side.get()
    out = dict(lower=lower["bound"], upper=upper["bound"],
               lowest_loss=min(lower["lowest"], upper["lowest"]))
    for key in ("levels_off", "comes_back", "fails_beyond"):
        sides = {k: s[key] for k, s in (("lower", lower), ("upper", upper))
                 if s[key] is not None}
        if sides:
            out[key] = sides
    return out
