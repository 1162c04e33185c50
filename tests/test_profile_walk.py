"""The profile walk (`fit._profile.profile_side`) on losses given in closed form: where it
puts a bound, where it leaves a side open, and a profile that levels off. No fit runs: the
re-minimization is replaced by the loss as a function of ln q."""

import math

import numpy as np
import pytest

from tlsjax.fit import _profile
from tlsjax.fit._profile import LEVELS_OFF, profile_interval, profile_side

THR = 1.3528  # the rise of a one-sided 95 % bound with known sigmas
LIMIT = math.exp(20.0)


def _with_loss(monkeypatch, rise):
    """Make each re-minimization return loss = THR rise(ln q) (rise(0) = 0 at the best fit,
    q = 1)."""
    calls = []

    def fixed_loss(problem, name, value, u0, max_steps, dof):
        calls.append(math.log(value))
        return THR * rise(math.log(value)), np.asarray(u0)

    monkeypatch.setattr(_profile, "_fixed_loss", fixed_loss)
    return calls


def _side(direction=+1, limit=LIMIT):
    return profile_side(None, "q", 1.0, np.zeros(1), 0.0, THR, direction,
                        limit if direction > 0 else 1.0 / limit)


def test_quadratic_bound_at_one_sigma_of_the_rise(monkeypatch):
    calls = _with_loss(monkeypatch, lambda x: (x / 0.7) ** 2)
    for direction in (+1, -1):
        s = _side(direction)
        assert s["levels_off"] is None
        assert math.log(s["bound"]) == pytest.approx(0.7 * direction, abs=0.02)
    # the walk (0.1, 0.3, 0.7, ...) crosses at 0.7 and takes one more point, 1.5, where the
    # rise is 4.6 times a bound's (>= LEVELS_OFF), before it bisects
    assert [round(c, 9) for c in calls if c > 0.75] == [1.5]


def test_open_side_stays_below_the_rise(monkeypatch):
    _with_loss(monkeypatch, lambda x: 0.9 * (1 - math.exp(-x * x)))
    assert _side() == dict(bound=None, lowest=0.0, levels_off=None, comes_back=None,
                         fails_beyond=None)


def test_profile_that_levels_off_gives_no_bound(monkeypatch):
    """Crossing at x = sqrt(ln 3) and a plateau at 1.5 times the rise up to the edge: the
    side is open, and the crossing and the rise at the edge are reported."""
    _with_loss(monkeypatch, lambda x: 1.5 * (1 - math.exp(-x * x)))
    s = _side()
    assert s["bound"] is None
    lv = s["levels_off"]
    assert math.log(lv["crossing"]) == pytest.approx(math.sqrt(math.log(3.0)), abs=0.02)
    assert lv["rise_at_edge"] == pytest.approx(1.5) and lv["rise_at_edge"] < LEVELS_OFF
    assert lv["edge"] == LIMIT
    # an edge less than twice as far out as the crossing leaves too little room to tell a
    # plateau from a profile still rising: the crossing is the bound
    near = _side(limit=math.exp(2.0))
    assert near["levels_off"] is None
    assert math.log(near["bound"]) == pytest.approx(math.sqrt(math.log(3.0)), abs=0.02)


def test_profile_that_comes_back_down_is_followed_to_its_last_crossing(monkeypatch):
    """A bump above the rise around x = 1.5 (the walk's point there sees 1.5), a valley
    below it, then a steep wall crossing at x = 6: the bound is the last crossing, not the
    bump's (x ~ 1); a bump and nothing after it leaves the side open."""
    def bump(x):
        return 1.5 * math.exp(-((x - 1.5) / 0.8) ** 2)
    _with_loss(monkeypatch, lambda x: bump(x) + (x / 6.0) ** 8)
    s = _side()
    assert s["levels_off"] is None
    assert math.log(s["bound"]) == pytest.approx(6.0, abs=0.05)
    # where it first rose past the bound's rise: between the walk's points 0.7 and 1.5
    assert math.log(s["comes_back"]) == pytest.approx(1.1)
    _with_loss(monkeypatch, bump)
    s = _side()
    assert s["bound"] is None and s["levels_off"] is None
    assert math.log(s["comes_back"]) == pytest.approx(1.1)


def test_interval_reports_only_the_sides_that_level_off(monkeypatch):
    _with_loss(monkeypatch, lambda x: (x / 0.5) ** 2 if x < 0 else 1.5 * (1 - math.exp(-x * x)))
    iv = profile_interval(None, "q", 1.0, np.zeros(1), 0.0, THR, (1 / LIMIT, LIMIT))
    assert math.log(iv["lower"]) == pytest.approx(-0.5, abs=0.02) and iv["upper"] is None
    assert set(iv["levels_off"]) == {"upper"}
    _with_loss(monkeypatch, lambda x: (x / 0.5) ** 2)
    assert "levels_off" not in profile_interval(None, "q", 1.0, np.zeros(1), 0.0, THR,
                                                (1 / LIMIT, LIMIT))


def _failing(rise, beyond):
    """rise(x) up to x = `beyond`, a failed re-minimization (inf) further out."""
    return lambda x: math.inf if x > beyond else rise(x)


def test_a_failed_reminimization_is_not_a_rise(monkeypatch):
    """A re-minimization that fails (inf) ends the walk: the side is judged on the points
    computed, `fails_beyond` gives the last of them and the failed one. Before any crossing
    the side is open (the old walk took the failure for a wall and put a bound before it),
    on either side and also where the very first step fails."""
    _with_loss(monkeypatch, _failing(lambda x: 0.5 * (x / 3.0) ** 2, 2.0))  # fails at 3.1
    s = _side()
    assert s["bound"] is None and s["levels_off"] is None
    assert [math.log(v) for v in s["fails_beyond"].values()] == pytest.approx([1.5, 3.1])
    _with_loss(monkeypatch, lambda x: math.inf if x < -2.0 else 0.5 * (x / 3.0) ** 2)
    s = _side(-1)
    assert s["bound"] is None
    assert [math.log(v) for v in s["fails_beyond"].values()] == pytest.approx([-1.5, -3.1])
    _with_loss(monkeypatch, _failing(lambda x: 0.0, 0.05))  # the first step, 0.1, fails
    s = _side()
    assert s["bound"] is None and s["comes_back"] is None
    assert s["fails_beyond"] == dict(computed_to=1.0, failed_at=pytest.approx(math.exp(0.1)))


def test_a_failed_walk_is_judged_on_the_points_computed(monkeypatch):
    """After a crossing: a plateau computed out to twice the crossing's distance levels off
    (open), one that fails nearer keeps the crossing as the bound; a profile that comes
    back below the rise before the failure is open, with both notes' keys."""
    plateau = lambda x: 1.5 * (1 - math.exp(-x * x))  # noqa: E731  crossing ~1.05
    _with_loss(monkeypatch, _failing(plateau, 4.0))  # computed to 3.1, fails at 6.3
    s = _side()
    assert s["bound"] is None and math.log(s["levels_off"]["edge"]) == pytest.approx(3.1)
    assert math.log(s["levels_off"]["crossing"]) == pytest.approx(1.05, abs=0.02)
    assert math.log(s["fails_beyond"]["failed_at"]) == pytest.approx(6.3)
    _with_loss(monkeypatch, _failing(plateau, 2.0))  # computed to 1.5 < 2 x 1.05
    s = _side()
    assert s["levels_off"] is None
    assert math.log(s["bound"]) == pytest.approx(math.sqrt(math.log(3.0)), abs=0.02)
    assert math.log(s["fails_beyond"]["computed_to"]) == pytest.approx(1.5)
    bump = lambda x: 1.5 * math.exp(-((x - 1.5) / 0.8) ** 2)  # noqa: E731
    _with_loss(monkeypatch, _failing(bump, 4.0))
    s = _side()
    assert s["bound"] is None and math.log(s["comes_back"]) == pytest.approx(1.1)
    assert math.log(s["fails_beyond"]["computed_to"]) == pytest.approx(3.1)


def test_a_failed_bisection_gives_the_outer_end_of_its_bracket(monkeypatch):
    """Bisecting between the walk's 0.7 (below) and 1.5 (above; the quadratic crosses at
    1.2; the walk goes on to 3.1, past LEVELS_OFF): a failure at the first midpoint, 1.1,
    stops it at 1.5, computed above the rise: a wider bound, never a narrower one."""
    calls = _with_loss(monkeypatch, lambda x: math.inf if 1.05 < x < 1.15 else (x / 1.2) ** 2)
    s = _side()
    assert s["bound"] == pytest.approx(math.exp(1.5)) and s["fails_beyond"] is None
    assert [round(c, 9) for c in calls if c > 0.75] == [1.5, 3.1, 1.1]


def test_interval_names_only_the_failing_side(monkeypatch):
    _with_loss(monkeypatch, lambda x: (x / 0.5) ** 2 if x < 0 else _failing(lambda y: 0.0, 2.0)(x))
    iv = profile_interval(None, "q", 1.0, np.zeros(1), 0.0, THR, (1 / LIMIT, LIMIT))
    assert iv["upper"] is None and set(iv["fails_beyond"]) == {"upper"}


def test_notes_name_a_side_that_could_not_be_computed_further():
    from tlsjax.fit._fit_stau import _bound_note

    failed = dict(upper=dict(computed_to=20.0, failed_at=80.0))
    note = _bound_note("T_U", dict(lower=0.5, upper=None, fails_beyond=failed), 0.95)
    assert note.startswith("T_U > 0.5 K (95 % one-sided, profile likelihood); no upper bound "
                           "is given; on the upper side the profile of T_U was computed up to "
                           "20 K: the re-minimization at 80 K gave a loss that is not finite")
    assert "the data give no" not in note and "no bound given" in note
    note = _bound_note("T_U", dict(lower=None, upper=3.0, fails_beyond=failed), 0.95)
    assert "the data give no lower bound" in note and "no bound given" not in note


def test_note_of_a_plateau_seen_up_to_a_failure_names_the_last_value():
    from tlsjax.fit._fit_stau import side_notes

    iv = dict(lower=0.5, upper=None,
              levels_off=dict(upper=dict(crossing=3.0, rise_at_edge=1.5, edge=20.0)))
    (note,) = side_notes("T_U", iv, 0.95)
    assert "1.50 times that at the edge of the range, 20 K" in note
    iv["fails_beyond"] = dict(upper=dict(computed_to=20.0, failed_at=80.0))
    plateau, failed = side_notes("T_U", iv, 0.95)
    assert "1.50 times that at the last value computed, 20 K" in plateau
    assert "the re-minimization at 80 K" in failed
