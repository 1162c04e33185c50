import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tlsjax import (
    Curve,
    FitResult,
    Material,
    ModelParams,
    Sample,
    StauTLS,
    fit_kappa,
    fit_targets,
    least_squares,
    stau_dos,
    tabulate_stau,
    thermal_conductivity,
)
from tlsjax.fit._fit import (
    _log_bounds,
    _unconstrained,
    residuals_at,
    to_physical,
    to_unconstrained,
)

SAMPLE = Sample(0.2, 6)
R = 2
TRUE = ModelParams(g=0.01, J0=1500.0, atilde=3.0)
MAT = Material(1200.0, 2500.0, 1200.0)


@pytest.fixture(scope="module")
def synthetic():
    """kappa(T) from the exact StauTLS at TRUE, 3% log-normal noise, 0.05-10 K."""
    T = np.geomspace(0.05, 10.0, 24)
    dos = stau_dos(TRUE, SAMPLE, realizations=R)
    k = np.asarray(thermal_conductivity(StauTLS(dos, TRUE), MAT, T))
    noisy = k * np.exp(0.03 * np.random.default_rng(3).standard_normal(T.size))
    return Curve(T=T, y=noisy, weight=np.ones_like(T), quantity="kappa", source="synthetic"), k


@pytest.fixture(scope="module")
def recovered(synthetic):
    curve, _ = synthetic
    return fit_kappa(curve, MAT, free=["g", "J0"], init=ModelParams(g=0.02, J0=600.0),
                     sigma_log=0.03, sample=SAMPLE, realizations=R, progress=False, starts=2,
                     profile=False)


def test_table_matches_direct_model():
    # a sample whose S spins are all gapped (E_min > 0): below its grid the table
    # continues the power-law gap, which a sample with an ungapped S spin does not have
    # (its P_S levels off at ~1/N; see `_table.DEFAULT_EPS_MIN`)
    dos = stau_dos(TRUE, SAMPLE, jax.random.PRNGKey(1), realizations=R)
    e_min = np.asarray(dos.es.top[:, :, 0])[np.asarray(dos.es.mask)]
    assert e_min.min() > 0.0
    T = jnp.geomspace(0.05, 10.0, 7)
    direct = thermal_conductivity(StauTLS(dos, TRUE), MAT, T)
    tab = thermal_conductivity(tabulate_stau(dos, TRUE), MAT, T)
    np.testing.assert_allclose(tab, direct, rtol=1e-4)


def test_transform_round_trip():
    lo, hi = _log_bounds(["g", "J0"], {"g": (1e-4, 0.19), "J0": (1.0, 1e5)})
    p = np.array([0.013, 777.0])
    np.testing.assert_allclose(to_physical(jnp.asarray(to_unconstrained(p, lo, hi)), lo, hi), p,
                               rtol=1e-12)


def test_parameter_recovery_within_two_sigma(recovered):
    r = recovered
    assert r.converged, r.reason
    for name in ("g", "J0"):
        true = float(getattr(TRUE, name))
        assert abs(r.params[name] - true) < 2.0 * r.stderr[name], (name, r.params, r.stderr)
        assert 0 < r.stderr[name] < 0.2 * true
    assert r.derived["rms_log_residual"] < 0.05
    assert r.derived["C_o"] == pytest.approx(0.1 * r.params["g"])
    assert abs(r.correlation[0][1]) < 1.0 and r.correlation[0][0] == 1.0
    assert r.loss == pytest.approx(min(min(h) for h in r.history), rel=1e-6, abs=1e-9)


def test_deferred_errors_are_the_same_numbers():
    """`least_squares(errors=False)` then `with_errors`: the result of `errors=True`, every
    field and note (model selections defer the errors of their candidates)."""
    from tlsjax.fit._fit import with_errors

    x = np.linspace(0.1, 3.0, 12)
    y = 2.0 * x**1.5 * np.exp(-0.4 * x) * np.exp(0.02 * np.sin(7.0 * x))

    def residuals(p):
        return (jnp.log(p["g"] * 200 * x ** (p["J0"] / 1000) * jnp.exp(-p["atilde"] * x))
                - np.log(y)) / 0.02

    args = (residuals, dict(g=0.01, J0=1000.0, atilde=0.3), ["g", "J0", "atilde"])
    now = least_squares(*args, progress=False)
    later = least_squares(*args, progress=False, errors=False)
    assert math.isnan(later.stderr["g"]) and later.loss == now.loss
    assert any(n.startswith("no errors computed") for n in later.notes)
    assert later.meta["null_directions_u"] is None
    later = with_errors(later)
    assert later.to_dict() == now.to_dict()
    assert with_errors(now) is now


def test_deferred_errors_with_a_file_or_an_interrupt(tmp_path, monkeypatch):
    """A result written to `save_path` has its errors in the file; Ctrl-C where a deferred
    result takes its loss keeps the fitted point (`interrupted`), as in the error estimate."""
    import json

    from tlsjax.fit import _fit

    x = np.linspace(0.1, 3.0, 10)

    def residuals(p):
        return (jnp.log(p["g"] * 200 * x ** (p["J0"] / 1000)) - np.log(3.0 * x**1.2)) / 0.02

    args = (residuals, dict(g=0.01, J0=1000.0), ["g", "J0"])
    with pytest.raises(TypeError, match=r"least_squares\(errors=...\)"):
        least_squares(*args, progress=False, errors="no")
    path = tmp_path / "fit.json"
    r = least_squares(*args, progress=False, errors=False, save_path=path)
    assert json.loads(path.read_text())["stderr"]["g"] == r.stderr["g"] > 0

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(_fit, "residuals_at", interrupted)
    r = least_squares(*args, progress=False, errors=False)
    assert r.interrupted and r.params["J0"] > 1000.0 and math.isnan(r.stderr["g"])


def test_laplace_hessian_matches_finite_differences():
    """Exact autodiff Hessian at the optimum vs central second differences in u."""
    x = np.linspace(0.1, 3.0, 15)
    rng = np.random.default_rng(0)
    y = 2.0 * x**1.5 * np.exp(-0.4 * x) * np.exp(0.02 * rng.standard_normal(x.size))

    def residuals(p):
        return (jnp.log(p["g"] * 200 * x ** (p["J0"] / 1000) * jnp.exp(-p["atilde"] * x))
                - np.log(y)) / 0.02

    free = ["g", "J0", "atilde"]
    r = least_squares(residuals, dict(g=0.01, J0=1000.0, atilde=0.3), free, progress=False)
    assert r.converged
    assert r.params["J0"] == pytest.approx(1500.0, rel=0.05)
    lo, hi = _log_bounds(free, {n: tuple(r.meta["bounds"][n]) for n in free})

    def loss(u):
        p = to_physical(jnp.asarray(u), lo, hi)
        return 0.5 * float(jnp.sum(residuals(dict(zip(free, p))) ** 2))

    u = np.asarray(r.u)
    h = 1e-4
    fd = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            e_i, e_j = np.eye(3)[i] * h, np.eye(3)[j] * h
            fd[i, j] = (loss(u + e_i + e_j) - loss(u + e_i - e_j) - loss(u - e_i + e_j)
                        + loss(u - e_i - e_j)) / (4 * h * h)
    H = np.asarray(r.hessian_u)
    np.testing.assert_allclose(H, fd, rtol=1e-4, atol=1e-6 * np.max(np.abs(H)))
    # covariance = D H^-1 D, D = dp/du
    assert r.stderr["J0"] == pytest.approx(
        math.sqrt(np.linalg.inv(H)[1, 1]) * r.params["J0"] * (hi[1] - lo[1]) / (
            (1 + math.exp(-u[1])) * (1 + math.exp(u[1]))), rel=1e-6)


def test_targets_report_undetermined_combination():
    r = fit_targets(1e-3, 3.0, free=("g", "J0", "atilde"), sample=Sample(0.2, 4),
                    realizations=1, progress=False)
    assert r.converged
    assert r.params["g"] == pytest.approx(0.01, rel=1e-4)  # C_o = kappa_log g, kappa_log 0.1
    assert r.derived["T_U_K"] == pytest.approx(3.0, rel=1e-4)
    assert r.derived["T_U_K_err"] == pytest.approx(0.3, rel=1e-3)  # determined although
    assert "atilde" in r.undetermined and math.isinf(r.stderr["atilde"])  # a~ is not
    assert any("not determined" in n and "atilde" in n for n in r.notes)
    assert math.isfinite(r.stderr["g"])


def test_interrupt_returns_and_saves_best(tmp_path, synthetic):
    curve, _ = synthetic
    seen = []

    def stop(step, loss, params):
        seen.append(loss)
        if step == 2:
            raise KeyboardInterrupt

    out = tmp_path / "partial.json"
    r = fit_kappa(curve, None, free=["g", "J0", "kv"], init=ModelParams(g=0.03, J0=300.0),
                  sample=SAMPLE, realizations=R, progress=False, callback=stop,
                  save_path=out, starts=3)
    assert not r.converged and r.reason == "interrupted"
    assert len(seen) == 3 and r.loss == pytest.approx(min(seen), rel=1e-9)
    back = FitResult.from_json(out)
    assert back.reason == "interrupted" and back.params == r.params
    assert "interrupted" in back.notes[0]


def test_json_round_trip(tmp_path, recovered):
    p = recovered.to_json(tmp_path / "fit.json")
    d = __import__("json").loads(p.read_text())
    for key in ("params", "stderr", "C_o", "T_U_K", "rms_log_residual", "converged"):
        assert key in d
    back = FitResult.from_json(p)
    assert back.params == recovered.params and back.stderr == recovered.stderr
    assert back.derived["T_U_K"] == recovered.derived["T_U_K"]
    with pytest.raises(FileExistsError):
        recovered.to_json(p.parent / "mine.txt") if (p.parent / "mine.txt").write_text("x") \
            else None


def test_velocity_free_fits_identifiable_combination(synthetic):
    curve, _ = synthetic
    r = fit_kappa(curve, None, free=["g", "J0"], sample=SAMPLE, realizations=R,
                  progress=False, sigma_log=0.03, profile=False)
    assert "kv" in r.free and any("kv" in n for n in r.notes)
    v_eff = 3.0 / (1 / 2500.0 + 2 / 1200.0)
    assert r.params["kv"] == pytest.approx(0.1 * v_eff, abs=3 * r.stderr["kv"])
    assert r.derived["C_o"] is None
    assert r.derived["C_o_v_eff_m_per_s"] == pytest.approx(r.params["g"] * r.params["kv"])


@pytest.mark.parametrize("kwargs,match", [
    (dict(free=["kappa_log"]), "kappa_log is not determined"),
    (dict(free=["g", "bogus"]), "bogus"),
    (dict(qinv_data="x.csv", freq=1e3), "needs a Material"),
])
def test_bad_fit_input(synthetic, kwargs, match):
    curve, _ = synthetic
    with pytest.raises(ValueError, match=match):
        fit_kappa(curve, None, sample=Sample(0.2, 3), realizations=1, progress=False, **kwargs)


def test_too_few_points():
    c = Curve(T=np.array([0.1, 0.2]), y=np.array([1e-4, 4e-4]), weight=np.ones(2),
              quantity="kappa", source="two.csv")
    with pytest.raises(ValueError, match=r"two.csv: 2 distinct temperature\(s\) \(2 point\(s\)\) for 3"):
        fit_kappa(c, None, free=["g", "J0", "kv"], progress=False)


@pytest.mark.slow
def test_atilde_identifiability_reported():
    """With a~ free too (ES reduction inside the loss), the report says whether kappa(T)
    determines a~, and an error it gives agrees with the loss. On one realization of a
    small sample the loss jumps along a~ (where a tau field of the sample changes sign)
    and this fit stops at such a jump: a~ gets no error, with a note saying why (the
    stencil across the jump gave an ln-error of 1e-7 before), and the jump is real."""
    small = Sample(0.2, 4)
    T = np.geomspace(0.05, 10.0, 16)
    k = np.asarray(thermal_conductivity(StauTLS(stau_dos(TRUE, small, realizations=1), TRUE),
                                        MAT, T))
    k = k * np.exp(0.03 * np.random.default_rng(5).standard_normal(T.size))
    curve = Curve(T=T, y=k, weight=np.ones_like(T), quantity="kappa", source="synthetic")
    r = fit_kappa(curve, MAT, free=["g", "J0", "atilde"], sigma_log=0.03, sample=small,
                  realizations=1, progress=False, max_steps=20)
    sig = r.stderr_log["atilde"]

    def loss_at(factor=1.0, du=0.0):  # a~ times `factor` or u_a + du, the rest held
        u = _unconstrained(r.problem, dict(r.params, atilde=r.params["atilde"] * factor))
        u[r.problem.names.index("atilde")] += du
        return 0.5 * float(np.sum(residuals_at(r.problem, u) ** 2))

    if math.isfinite(sig):  # an error given: one conditional sigma away the loss rises ~1/2
        s_u = 1.0 / math.sqrt(np.asarray(r.hessian_u)[2, 2])
        assert all(0.05 < loss_at(du=d) - r.loss < 5.0 for d in (-s_u, s_u))
    else:
        assert math.isnan(sig) and "a jump" in r.meta["not_smooth"]["atilde"]
        assert any(n.startswith("a~ (atilde): no Laplace error") and "changes sign" in n
                   for n in r.notes), r.notes
        assert max(abs(loss_at(f) - r.loss) for f in (1 - 1e-3, 1 + 1e-3)) > 100.0
    print(f"\na~ = {r.params['atilde']:.3g} +- {r.stderr['atilde']:.3g} (ln-error {sig:.3g}); "
          f"g = {r.params['g']:.4g} +- {r.stderr['g']:.2g}; J0 = {r.params['J0']:.4g} +- "
          f"{r.stderr['J0']:.2g}; {r.reason}; notes: {r.notes}")


def test_strongly_correlated_pairs():
    """Pairs at |r| >= 0.99 (either sign) are named once, NaN entries (an undefined error)
    and the parameters in `skip` (undetermined ones, profiled anyway) are left out."""
    from tlsjax.fit._profile import STRONG_CORRELATION, strongly_correlated

    nan = math.nan
    free = ["g", "J0", "kappa_log", "A_rel"]
    corr = [[1.0, nan, 0.2, 0.0],
            [nan, 1.0, 0.995, 0.0],
            [0.2, 0.995, 1.0, -0.9901],
            [0.0, 0.0, -0.9901, 1.0]]
    assert STRONG_CORRELATION == 0.99
    assert strongly_correlated(free, corr) == [("J0", "kappa_log", 0.995),
                                               ("kappa_log", "A_rel", -0.9901)]
    assert strongly_correlated(free, corr, skip=["J0"]) == [("kappa_log", "A_rel", -0.9901)]
    assert strongly_correlated(free, corr, threshold=0.999) == []


@pytest.mark.parametrize("r, rises, profiled, absolute", [
    (-0.995, {"kappa_log": [0.3, 1.1], "A_rel": [0.9, 1.0]}, True, True),  # one side fails
    (-0.995, {"kappa_log": [0.9, 1.2], "A_rel": [1.0, 1.9]}, False, True),  # both stand
    (0.995, {"kappa_log": [0.9, 1.2], "A_rel": [2.5, 1.0]}, True, False),  # no known sigma
    (-0.98, {"kappa_log": [0.3, 1.1], "A_rel": [0.3, 1.1]}, False, True),  # below 0.99
    (math.nan, {"kappa_log": [0.3, 1.1], "A_rel": [0.3, 1.1]}, False, True)])
def test_profiles_take_strongly_correlated_pairs(monkeypatch, r, rises, profiled, absolute):
    """`_profiles` walks T_U and the undetermined parameters, and a determined pair
    correlated at |r| >= 0.99 only where the profile at its Laplace bounds rises by less
    than half or more than twice what a bound needs; a note says which, after the walks."""
    import types

    from tlsjax.fit import _fit_stau

    walked, checked = [], []

    def fake_one(res, setup, name, bounds, tu, thr, level):
        walked.append(name)
        return dict(best=1.0, level=level, lower=0.5, upper=2.0), res.loss

    def fake_rises(problem, name, value, sigma_log, u, loss, thr, box, level, dof):
        assert (value, sigma_log, box) == (res.params[name], res.stderr_log[name],
                                           res.meta["bounds"][name])
        assert loss == res.loss and level == 0.95 and dof == (None if absolute else res.dof)
        assert thr == pytest.approx(0.5 * 1.6448536269514722**2 * (
            1.0 if absolute else 2 * res.loss / res.dof))
        checked.append(name)
        return rises[name]

    monkeypatch.setattr(_fit_stau, "_profile_one", fake_one)
    monkeypatch.setattr(_fit_stau, "laplace_rises", fake_rises)
    monkeypatch.setattr(_fit_stau, "_unconstrained", lambda problem, params: None)
    free = ["g", "J0", "kappa_log", "A_rel"]
    nan = math.nan
    res = types.SimpleNamespace(
        free=free, undetermined=["g", "J0"], loss=6.5, dof=11, notes=[], problem=None,
        correlation=[[1.0, nan, nan, nan], [nan, 1.0, nan, nan], [nan, nan, 1.0, r],
                     [nan, nan, r, 1.0]],
        stderr_log=dict(g=math.inf, J0=math.inf, kappa_log=0.13, A_rel=0.47),
        params=dict(g=3e-4, J0=2.7e4, kappa_log=0.38, A_rel=2.0e4),
        meta=dict(model="stau", bounds=dict(g=(1e-4, 0.19), J0=(1.0, 1e5),
                                            kappa_log=(1e-3, 1.0), A_rel=(100.0, 1e16))),
        derived=dict(T_U_K=0.175))
    _fit_stau._profiles(res, types.SimpleNamespace(absolute=absolute), 0.95, progress=False)
    strong = abs(r) >= 0.99
    assert checked == (["kappa_log", "A_rel"] if strong else [])
    assert walked == ["T_U", "g", "J0", *(["kappa_log", "A_rel"] if profiled else [])]
    assert set(res.derived["profile"]["bounds"]) == set(walked)
    notes = [n for n in res.notes if "are correlated at" in n]
    assert len(notes) == (1 if strong else 0)
    if strong:
        values = rises["kappa_log"] + rises["A_rel"]
        span = f"{min(values):.2g}-{max(values):.2g} times what a bound needs"
        assert notes[0].startswith(f"kappa_log and A k_B^3 (A_rel) are correlated at {r:+.3f}")
        assert span in notes[0]
        assert ("their profile-likelihood bounds are given" in notes[0]) == profiled
        assert res.derived["laplace_check"]["rises"] == rises


def test_profiles_check_only_the_member_not_profiled_anyway(monkeypatch):
    """A pair whose one member is poorly determined (profiled anyway): only the other is
    checked, and the note speaks of it alone; a pair of two such members is not checked."""
    import types

    from tlsjax.fit import _fit_stau

    checked = []
    monkeypatch.setattr(_fit_stau, "_profile_one", lambda res, setup, name, *a: (
        dict(best=1.0, level=0.95, lower=None, upper=None), res.loss))
    monkeypatch.setattr(_fit_stau, "laplace_rises",
                        lambda problem, name, *a: checked.append(name) or [0.2, 1.0])
    monkeypatch.setattr(_fit_stau, "_unconstrained", lambda problem, params: None)
    res = types.SimpleNamespace(
        free=["kappa_log", "A_rel"], undetermined=[], loss=6.5, dof=11, notes=[], problem=None,
        correlation=[[1.0, -0.995], [-0.995, 1.0]],
        stderr_log=dict(kappa_log=0.13, A_rel=1.7), params=dict(kappa_log=0.38, A_rel=2.0e4),
        meta=dict(model="stau", bounds=dict(kappa_log=(1e-3, 1.0), A_rel=(100.0, 1e16))),
        derived={})
    _fit_stau._profiles(res, types.SimpleNamespace(absolute=True), 0.95, progress=False)
    assert checked == ["kappa_log"]
    assert set(res.derived["profile"]["bounds"]) == {"A_rel", "kappa_log"}
    note = next(n for n in res.notes if "are correlated at" in n)
    assert "the Laplace error of kappa_log puts" in note and "its profile-likelihood" in note


def test_profiles_walk_the_quantities_at_once_where_work_overlaps(monkeypatch):
    """Under `overlapping()` (the command line) the quantities' walks run at once, each in
    its own thread; the bounds come back in the order of the quantities, whatever order the
    walks end in, and a walk's error reaches the caller."""
    import threading
    import time
    import types

    from tlsjax._background import overlapping
    from tlsjax.fit import _fit_stau

    names = ["T_U", "g", "J0"]
    together = threading.Barrier(len(names), timeout=30)  # broken unless all run at once
    fail = set()

    def fake_one(res, setup, name, bounds, tu, thr, level):
        together.wait()
        time.sleep(0.05 * (len(names) - names.index(name)))  # the last ends first
        if name in fail:
            raise RuntimeError(f"walk of {name} failed")
        return dict(best=1.0, level=level, lower=names.index(name), upper=None), res.loss

    monkeypatch.setattr(_fit_stau, "_profile_one", fake_one)

    def fresh():
        return types.SimpleNamespace(
            free=["g", "J0"], undetermined=["g", "J0"], loss=6.5, dof=11, notes=[],
            problem=None, correlation=[[1.0, 0.0], [0.0, 1.0]],
            stderr_log=dict(g=math.inf, J0=math.inf), params=dict(g=3e-4, J0=2.7e4),
            meta=dict(model="stau", bounds=dict(g=(1e-4, 0.19), J0=(1.0, 1e5))),
            derived=dict(T_U_K=0.175))

    res = fresh()
    with overlapping():
        _fit_stau._profiles(res, types.SimpleNamespace(absolute=True), 0.95, progress=False)
    bounds = res.derived["profile"]["bounds"]
    assert list(bounds) == names and [b["lower"] for b in bounds.values()] == [0, 1, 2]
    fail.add("g")
    together.reset()
    with overlapping(), pytest.raises(RuntimeError, match="walk of g failed"):
        _fit_stau._profiles(fresh(), types.SimpleNamespace(absolute=True), 0.95,
                            progress=False)
