"""Model selection, profile-likelihood bounds and robustness of the kappa fits.

Synthetic curves are made by the fit's own model (the same tabulated C(E), the same
compiled residual function), so that the criterion and the parameters can be checked
against the truth; the DOS sample is the small one of test_fit.py (shared table).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import need_shared_kappa

from tlsjax import Curve, fit_kappa, least_squares
from tlsjax.fit import _fit_stau as fs
from tlsjax.fit._fit import make_problem, residuals_at
from tlsjax.fit._kappa_model import names_for
from tlsjax.fit._select import select_kappa_model
from tlsjax.model._lattice import Sample
from tlsjax.model._params import ModelParams
from tlsjax.observables._dos import StauTLS, crossover, stau_tls

SAMPLE = Sample(0.2, 6)
R = 2
T = np.geomspace(0.05, 5.0, 20)
NOISE = 0.03


def model_log_kappa(T, model, **params):
    """ln kappa of the fit's model (velocity-free units) at the given parameters."""
    curve = Curve(T=T, y=np.ones_like(T), weight=np.ones_like(T), quantity="kappa",
                  source="model")
    setup = fs.prepare_kappa(curve, sample=SAMPLE, realizations=R)
    p = {n: 1.0 for n in names_for(True)}
    p.update({"l_b_v2": math.inf, "rayleigh_v2": 0.0, "atilde": 3.0, "h_rel": 0.0, **params})
    km = fs._with_model(setup.model, model)
    # nominal sigma 0.01 without errors: r = (ln kappa - 0) / 0.01
    return residuals_at(make_problem(km, p, [], {}), np.zeros(len(p))) * 0.01, setup, km, p


def noisy(T, model, seed, **params):
    lk = model_log_kappa(T, model, **params)[0]
    y = np.exp(lk + NOISE * np.random.default_rng(seed).standard_normal(T.size))
    return Curve(T=T, y=y, weight=np.ones_like(T), quantity="kappa", source=f"synthetic {model}")


CASES = {
    "neither": ("stau", dict(g=0.01, J0=1500.0, kv=300.0), "S-tau"),
    "boundary": ("stau", dict(g=0.01, J0=1500.0, kv=300.0, l_b_v2=2e-12), "S-tau + boundary"),
    "rayleigh": ("stm", dict(Cv=2.0, rayleigh_v2=3e8), "constant C + Rayleigh"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_criterion_picks_generating_model(case):
    model, true, label = CASES[case]
    curve = noisy(T, model, 1, **true)
    res = select_kappa_model(curve, sigma_log=NOISE, sample=SAMPLE, realizations=R,
                             progress=False, profile=False)
    sel = res.derived["model_selection"]
    assert sel["criterion"] == "aicc" and len(sel["candidates"]) == 8
    assert res.derived["model_label"] == label, sel
    assert res.converged, res.reason
    for name, value in true.items():
        err = res.stderr[name]
        assert math.isfinite(err) and abs(res.params[name] - value) < 2.0 * err, (
            name, res.params[name], err, value)


def test_one_sided_lower_bound_on_T_U_above_the_data():
    true = dict(g=0.01, J0=20000.0, kv=300.0)
    T_low = np.geomspace(0.05, 1.0, 16)
    curve = noisy(T_low, "stau", 2, **true)
    _, setup, km, p = model_log_kappa(T_low, "stau", **true)
    tu_true = float(fs._evaluate(km, p, setup.curve)["T_U"][0])
    assert tu_true > 3.0 * T_low[-1]  # the crossover lies well above the data
    res = fit_kappa(curve, sigma_log=NOISE, sample=SAMPLE, realizations=R, progress=False)
    d = res.derived
    lower = d["T_U_K_lower"]
    # The data exclude T_U from just above them down into their range, but a T_U below them
    # fits again (kappa ~ T^2 on either side of T_U, kv free): the profile comes back below
    # the bound's rise, and the one-sided bound lies beyond that gap, below the data.
    back = d["profile"]["bounds"]["T_U"]["comes_back"]["lower"]
    assert T_low[-1] < back < tu_true, (back, tu_true, res.notes)
    assert lower is not None and lower < T_low[0], (lower, res.notes)
    assert any("comes back below it further out" in n for n in res.notes)
    assert d["T_U_K_upper"] is None or d["T_U_K_upper"] > tu_true
    assert d["T_U_K_bound_level"] == 0.95 and "T_U_K" in res.to_dict()
    assert any("T_U >" in n or "< T_U <" in n for n in res.notes)


def test_ptfe_anderson_with_a_free_boundary_term():
    path = need_shared_kappa() / "ptfe_anderson1963_s1.csv"
    res = fit_kappa(path, boundary="free", sample=SAMPLE, realizations=R, progress=False,
                    profile=False)
    assert res.converged, res.reason
    assert "l_b_v2" in res.free
    assert res.derived["rms_log_residual"] < 0.06


@pytest.mark.parametrize("kwargs,match", [
    (dict(weights=[1.0, 2.0]), r"weights=.*one value per data point \(20\)"),
    (dict(sigma_log=np.full(3, 0.03)), r"sigma_log=.*one value per data point \(20\)"),
    (dict(sigma_log=-0.1), "sigma_log"),
    (dict(level=1.5), "level"),
    (dict(boundary="sometimes"), "boundary"),
    (dict(model="plain"), "model"),
])
def test_bad_kappa_options_name_the_argument(kwargs, match):
    curve = Curve(T=T, y=np.exp(T), weight=np.ones_like(T), quantity="kappa", source="x")
    with pytest.raises(ValueError, match=match):
        fit_kappa(curve, sample=SAMPLE, realizations=R, progress=False, **kwargs)


def test_as_many_points_as_free_parameters_is_refused():
    c = Curve(T=np.array([0.1, 0.2, 0.4]), y=np.array([1e-4, 4e-4, 1.6e-3]),
              weight=np.ones(3), quantity="kappa", source="three.csv")
    with pytest.raises(ValueError, match=r"three.csv: 3 distinct temperature\(s\) .* at least 5"):
        fit_kappa(c, free=["g", "J0", "kv"], progress=False)


def test_least_squares_without_initial_value():
    with pytest.raises(ValueError, match="init=.*missing: J0"):
        least_squares(lambda p: jnp.stack([p["g"]]), dict(g=0.1), ["g", "J0"], progress=False)


def test_unconverged_fit_does_not_invent_errors():
    """2 residuals, 3 parameters, stopped after one step: the combination the residuals
    cannot see gets infinite errors whatever the Hessian looks like there."""

    def residuals(p):
        return jnp.stack([jnp.log(p["g"] / 0.01) / 0.1,
                          (jnp.log(p["J0"] * p["atilde"]) - math.log(3000.0)) / 0.1
                          + 0.3 * jnp.log(p["atilde"]) ** 2])

    r = least_squares(residuals, dict(g=0.05, J0=100.0, atilde=1.0), ["g", "J0", "atilde"],
                      max_steps=1, progress=False)
    assert not r.converged
    assert math.isfinite(r.stderr["g"])
    assert math.isinf(r.stderr["J0"]) and math.isinf(r.stderr["atilde"])
    assert any("not determined" in n for n in r.notes)


def _step_residuals(jump_at: float):
    """ln g about 0.01 (sigma 0.1) with +40 for g > `jump_at`; ln J_o about 500, smooth."""
    def residuals(p):
        return jnp.stack([jnp.log(p["g"] / 0.01) / 0.1 + 40.0 * (p["g"] > jump_at),
                          jnp.log(p["J0"] / 500.0) / 0.1])
    return residuals


def test_error_not_given_where_the_fit_stops_at_a_jump():
    """The smooth part's minimum lies beyond a jump (g = 0.012 against a step at 0.01): the
    fit stops at the step, where the two Jacobian steps disagree; g gets no Laplace error
    (NaN, not the ~1e-7 the stencil across the step gives), J_o its error at fixed g."""
    def residuals(p):
        return _step_residuals(0.01)(p) - jnp.stack([jnp.log(1.2) / 0.1, 0.0])

    r = least_squares(residuals, dict(g=0.005, J0=300.0), ["g", "J0"], progress=False)
    assert r.params["g"] == pytest.approx(0.01, rel=1e-3)
    assert math.isnan(r.stderr["g"]) and math.isnan(r.stderr_log["g"])
    assert "a jump" in r.meta["not_smooth"]["g"] and "J0" not in r.meta["not_smooth"]
    assert r.stderr_log["J0"] == pytest.approx(0.1, rel=1e-3)
    note = [n for n in r.notes if n.startswith("g: no Laplace error")]
    assert len(note) == 1 and "the other errors hold at fixed g" in note[0], r.notes
    assert math.isnan(r.covariance[0][1]) and math.isnan(r.correlation[0][1])


def test_error_not_given_where_the_loss_jumps_within_it():
    """A step half a standard error from the minimum (ln 1.05 = 0.49 sigma): invisible to
    the derivative steps, seen by the loss one standard error away; J_o keeps its error."""
    r = least_squares(_step_residuals(0.0105), dict(g=0.008, J0=300.0), ["g", "J0"],
                      progress=False)
    assert r.params["g"] == pytest.approx(0.01, rel=1e-4)
    why = r.meta["not_smooth"]["g"]
    assert why.startswith("the loss one standard error away") and math.isnan(r.stderr["g"])
    assert r.stderr_log["J0"] == pytest.approx(0.1, rel=1e-3)
    # the same without the step: no note, the Laplace errors
    smooth = least_squares(_step_residuals(1.0), dict(g=0.008, J0=300.0), ["g", "J0"],
                           progress=False)
    assert smooth.meta["not_smooth"] == {}
    assert smooth.stderr_log["g"] == pytest.approx(0.1, rel=1e-3)


def test_crossover_beyond_the_search_range_is_the_edge_for_fits():
    """`crossover(at_bound="edge")` (fit targets) gives the end of the search range beyond
    which the root lies, with no derivative through the root; the default refuses."""
    params = ModelParams()
    tls = stau_tls(params, sample=SAMPLE, realizations=R)
    gJ0 = float(params.g * params.J0)
    eps = float(crossover(tls).shortcut) / gJ0
    lo, hi = eps / 10.0, eps / 2.0  # the root lies above hi
    edge = crossover(tls, lo=lo, hi=hi, at_bound="edge")
    assert float(edge.shortcut) == pytest.approx(hi * gJ0, rel=1e-6)
    d = jax.grad(lambda a: crossover(StauTLS(tls.dos, params.replace(g=a)), lo=lo, hi=hi,
                                     at_bound="edge").shortcut)(params.g)
    assert float(d) == pytest.approx(hi * float(params.J0), rel=1e-5)  # T_U = hi g J_o
    with pytest.raises(ValueError, match="no crossover below hi"):
        crossover(tls, lo=lo, hi=hi)
    low = crossover(tls, lo=2.0 * eps, hi=10.0 * eps, at_bound="edge")  # root below lo
    assert float(low.shortcut) == pytest.approx(2.0 * eps * gJ0, rel=1e-6)


def test_rayleigh_start_with_a_material():
    """The Rayleigh term's starting value with sound velocities (the default selection
    frees it): taken from v_t, not from the velocity-free amplitude (which such a fit
    does not have)."""
    from tlsjax import Material

    mat = Material(1200.0, 2500.0, 1200.0)
    curve = Curve(T=T, y=1e-4 * T**2, weight=np.ones_like(T), quantity="kappa", source="T^2")
    setup = fs.prepare_kappa(curve, mat, need_table=False)
    free, terms, _ = fs._resolve_free("stm", None, False, "absent", "free", mat)
    p0 = fs._starting_values(setup, "stm", free, terms, None)
    assert set(free) == {"C", "rayleigh"} and 0.0 < p0["rayleigh"] < math.inf


def test_candidates_of_a_wave_are_fitted_at_once_with_the_same_starts(monkeypatch):
    """Where work overlaps (the command line), the candidates with as many free terms are
    fitted at once; each starts from the same parent as one after the other would give it
    (the best nested candidate of its own model), and the results are kept per candidate."""
    import threading
    import types

    from tlsjax._background import overlapping
    from tlsjax.fit import _select

    cands = _select.candidates()
    assert [[c[1:] for c in w] for w in _select._waves(cands)] == [
        [("absent", "absent")] * 2, [("absent", "free"), ("free", "absent")] * 2,
        [("free", "free")] * 2]
    loss = {c: 10.0 - i for i, c in enumerate(cands)}  # later candidates fit better

    def run(parallel: bool):
        calls, wave_of = {}, {c: i for i, w in enumerate(_select._waves(cands)) for c in w}
        meet = {i: threading.Barrier(len(w), timeout=30)
                for i, w in enumerate(_select._waves([c for c in cands if c[0] == "stau"]))}

        def fake(setup, model, *, boundary, rayleigh, starts_from, **kw):
            c = (model, boundary, rayleigh)
            if parallel and model == "stau":
                meet[wave_of[c]].wait()  # broken unless the wave's fits run at once
            calls[c] = starts_from[-1]
            return types.SimpleNamespace(loss=loss[c], params={"of": c}, interrupted=False)

        monkeypatch.setattr(_select, "fit_kappa_model", fake)
        setup = types.SimpleNamespace(with_table=lambda: setup)
        bar = types.SimpleNamespace(set_postfix=lambda **k: None, update=lambda n: None)
        with overlapping(parallel):
            _, done, skipped, stopped = _select._fit_candidates(setup, cands, None, {}, bar)
        assert not skipped and not stopped and set(done) == set(cands)
        return calls

    sequential, at_once = run(False), run(True)
    assert at_once == sequential
    assert sequential[("stau", "free", "free")] == {"of": ("stau", "free", "absent")}
    assert sequential[("stau", "absent", "free")] == {"of": ("stau", "absent", "absent")}
    assert sequential[("stm", "absent", "absent")] is None


def test_ctrl_c_during_a_wave_keeps_what_each_fit_reached(monkeypatch):
    """Ctrl-C while a wave's candidates are fitted at once: each fit ends with its best
    point (interrupted), both are kept, and no later wave starts."""
    import signal
    import threading
    import types

    from tlsjax import _interrupts
    from tlsjax._background import overlapping
    from tlsjax.fit import _select

    cands = _select.candidates(model="stau")
    meet, ran = threading.Barrier(2, timeout=30), []

    def fake(setup, model, *, boundary, rayleigh, starts_from, **kw):
        c = (model, boundary, rayleigh)
        ran.append(c)
        stopped = False
        if c[1:] == ("free", "absent"):  # the wave's fit in this thread: Ctrl-C arrives
            meet.wait()
            _interrupts._STATE.requested = signal.SIGINT
            stopped = True
        elif c[1:] == ("absent", "free"):  # in a background thread: ends at its next step
            meet.wait()
            for _ in range(3000):
                try:
                    _interrupts.raise_if_interrupted()
                except KeyboardInterrupt:  # its step takes longer than a wait's slice
                    threading.Event().wait(0.3)
                    stopped = True
                    break
                threading.Event().wait(0.01)
        return types.SimpleNamespace(loss=1.0, params={"of": c}, interrupted=stopped)

    monkeypatch.setattr(_select, "fit_kappa_model", fake)
    setup = types.SimpleNamespace(with_table=lambda: setup)
    bar = types.SimpleNamespace(set_postfix=lambda **k: None, update=lambda n: None)
    try:
        with overlapping():
            _, done, skipped, stopped = _select._fit_candidates(setup, cands, None, {}, bar)
    finally:
        _interrupts.clear_request()
    assert stopped and not skipped
    assert set(done) == {("stau", "absent", "absent"), ("stau", "absent", "free"),
                         ("stau", "free", "absent")}
    assert all(done[c].interrupted for c in done if c[1:] != ("absent", "absent"))
    assert ("stau", "free", "free") not in ran
