"""Own models, Parameters, the report, and the command line's checks of issue 18's fitting
options (all before any computing). One compiled power-law fit serves every test here."""

import json
import math
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import tlsjax as tj
from tlsjax.cli import main
from tlsjax.fit._params import canonical_name

TRUE_A, TRUE_N, SIGMA_LOG = 2e-3, 1.8, 0.05
T = np.geomspace(0.1, 3.0, 13)


def power(T, A, n):
    return A * T**n


def _params():
    return (tj.Parameters().add("A", 1e-3, min=1e-6, max=1.0, unit="W/(m K^(n+1))")
            .add("n", 2.0, min=0.5, max=4.0))


def _curve(seed):
    rng = np.random.default_rng(seed)
    y = TRUE_A * T**TRUE_N * np.exp(SIGMA_LOG * rng.standard_normal(T.size))
    return tj.Curve(T=T, y=y, weight=np.ones_like(T), quantity="kappa", source=f"seed {seed}",
                    sigma=SIGMA_LOG * y)


def test_errors_cover_the_truth_at_the_stated_rate():
    """Known per-point sigmas: the 1-sigma Laplace errors cover the true A and n in
    68.3 % of 50 synthetic curves, within 3 binomial standard deviations (one compiled
    fit for all 50: the data are inputs of the compiled step)."""
    hits, p_values = [], []
    for seed in range(50):
        r = tj.fit_model(power, _curve(seed), _params(), profile=False, progress=False)
        assert r.converged and r.meta["absolute_sigma"]
        for name, truth in (("A", TRUE_A), ("n", TRUE_N)):
            hits.append(abs(r.params[name] - truth) <= r.stderr[name])
        p_values.append(r.to_dict()["report"]["statistics"]["p_value"])
    n, rate = len(hits), 0.6827
    assert abs(sum(hits) - n * rate) <= 3.0 * math.sqrt(n * rate * (1 - rate)), sum(hits)
    # p-values of a correct model are uniform: their mean is 1/2 within 3 sd (sd 0.041)
    assert abs(np.mean(p_values) - 0.5) < 0.13


def test_report_and_parameters():
    p = _params()
    p.add("n", TRUE_N, vary=False)
    r = tj.fit_model(power, _curve(1), p, name="power law", progress=False)
    assert r.free == ["A"] and r.params["n"] == TRUE_N
    text = r.report()
    for part in ("[[Fit Statistics]]", "reduced chi-square", "p-value", "AICc", "[[Variables]]",
                 "init = 0.001", "bounds 1e-06 .. 1", "95 % one-sided profile", "(fixed)",
                 "W/(m K^(n+1))", "model              = power law"):
        assert part in text, part
    assert "inf" not in text and "nan" not in text
    d = r.to_dict()["report"]
    assert d["variables"][0]["label"] == "A" and d["fixed"][0]["name"] == "n"
    # at a bound: flagged
    p2 = tj.Parameters().add("A", 1e-3, min=1e-6, max=1.1e-3).add("n", 2.0, min=0.5, max=4.0)
    r2 = tj.fit_model(power, _curve(1), p2, profile=False, progress=False)
    assert "AT UPPER BOUND" in r2.report()
    # the precision a fit computed in is recorded (the suite runs in float64)
    assert r.meta["precision_bits"] == 64
    with jax.enable_x64(False):
        r32 = tj.fit_model(power, _curve(1), _params(), profile=False, progress=False)
    assert r32.meta["precision_bits"] == 32 and r32.converged


def test_compare_models_and_lmfit_like_parameters():
    class LmfitLike:  # the attributes tlsjax reads from an lmfit.Parameter
        def __init__(self, value, vary=True, min=-math.inf, max=math.inf):
            self.value, self.vary, self.min, self.max = value, vary, min, max

    def power_c(T, A, n, c):
        return A * T**n + c

    a = tj.fit_model(power, _curve(2), _params(), profile=False, progress=False)
    b = tj.fit_model(power_c, _curve(2), {"A": LmfitLike(1e-3, min=1e-6, max=1.0),
                                          "n": LmfitLike(2.0, min=0.5, max=4.0),
                                          "c": LmfitLike(1e-6, min=1e-9, max=1e-3)},
                     profile=False, progress=False)
    table = tj.compare_models(a, b)
    assert [r["label"] for r in table][0] == "power" and table[0]["delta"] == 0.0
    assert math.isclose(sum(r["weight"] for r in table), 1.0)
    with pytest.raises(ValueError, match="give min and max"):
        tj.fit_model(power, _curve(2), {"A": LmfitLike(1e-3), "n": LmfitLike(2.0)})
    other = _curve(3)
    other = tj.Curve(T=T * 1.1, y=other.y, weight=other.weight, quantity="kappa",
                     sigma=other.sigma)
    with pytest.raises(ValueError, match="different data"):
        tj.compare_models(a, tj.fit_model(power, other, _params(), profile=False,
                                          progress=False))


def test_physical_names():
    for text, key in (("J_o", "J0"), ("J0", "J0"), ("a~", "atilde"), ("T_U", "T_U"),
                      ("kappa_log v_eff", "kv"), ("A_R", "rayleigh"), ("l_b / v_eff^2", "l_b_v2")):
        assert canonical_name(text) == key
    with pytest.raises(ValueError, match="unknown parameter 'foo'"):
        canonical_name("foo", ["g", "J0"])


def _kappa_file(tmp_path, rows, name="k.csv"):
    p = tmp_path / name
    p.write_text("T(K),k(W/m/K)\n" + "".join(f"{t},{k}\n" for t, k in rows))
    return str(p)


@pytest.mark.parametrize("extra,match", [
    (["--fix", "J_o=abc"], "--fix J_o: not a number"),
    (["--fix", "furlong=3"], "unknown parameter 'furlong'"),
    (["--bound", "g=0.1:0.01"], "--bound g: needs LO < HI"),
    (["--bound", "g=0.1"], "expected LO:HI"),
    # values far outside a parameter's range: refused, not overflowed (1e300 was run, exit 0)
    (["--fix", "C=1e300"], "parameter C: value 1e+300 is outside its allowed range [1e-07, 1]"),
    (["--bound", "J_o=1:1e9"], "parameter J_o: max 1e+09 K is outside its allowed range"),
    (["--bound", "J_o=1e200:1e300"], "parameter J_o: min 1e+200 K is outside its allowed"),
    (["--fix", "g=0.5"], "parameter g: value 0.5 is outside its allowed range [0.0001, 0.19]"),
    (["--seed", str(2**64)], "seed"),
    (["--seed", "-1"], "seed"),
    (["--freq", "1000"], "--freq is the frequency of a Q^-1 measurement"),
])
def test_cli_fit_options_checked_first(tmp_path, capsys, extra, match):
    f = _kappa_file(tmp_path, [(0.1, 1e-4), (0.2, 4e-4), (0.4, 1e-3), (0.8, 3e-3)])
    assert main(["fit", "kappa", f, "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("rows,match", [
    ([(0.1, 1e-4), (0.1, 2e-4), (0.1, 3e-4), (0.1, 4e-4)], "1 distinct temperature(s) (4"),
    ([(0.1, 1e-4), (0.2, 4e-4), (2e4, 1e-3), (0.8, 3e-3)], "line 4: temperature 20000 K is "
     "outside the model's range"),
])
def test_cli_fit_data_checked_first(tmp_path, capsys, rows, match):
    f = _kappa_file(tmp_path, rows)
    assert main(["fit", "kappa", f, "--model", "stm", "--no-progress"]) == 2
    assert match in capsys.readouterr().err


_CACHED_FIT = textwrap.dedent("""
    import json, logging
    import jax
    jax.config.update("jax_enable_x64", True)
    from tlsjax.cli._cache import enable_compilation_cache
    from tlsjax.fit import _disk_cache
    import tlsjax as tj
    import numpy as np

    class Hits(logging.Handler):
        count = 0
        def emit(self, record):
            Hits.count += "cache hit" in record.getMessage().lower()

    log = logging.getLogger("jax._src.compiler")
    log.addHandler(Hits())
    log.setLevel(logging.DEBUG)
    assert enable_compilation_cache() is not None
    T = np.geomspace(0.1, 3.0, 13)
    y = 2e-3 * T**1.8 * np.exp(0.05 * np.sin(7 * T))
    c = tj.Curve(T=T, y=y, weight=np.ones_like(T), quantity="kappa", sigma=0.05 * y)
    out = []
    for run in ("cold", "warm"):
        p = tj.Parameters().add("A", 1e-3, min=1e-6, max=1.0).add("n", 2.0, min=0.5, max=4.0)
        r = tj.fit_model(lambda T, A, n: A * T**n, c, p, profile=False, progress=False)
        k = tj.fit_kappa(c, None, model="stm", profile=False, progress=False)
        out.append([r.params["A"].hex(), r.params["n"].hex(), r.stderr["A"].hex(),
                    float(r.loss).hex(), k.params["Cv"].hex(), k.stderr["Cv"].hex(),
                    Hits.count])
        jax.clear_caches()  # the warm run compiles nothing: it loads from the disk cache
        _disk_cache.forget()  # and reads the stored (exported) programs back from disk
    print(json.dumps(out))
""")


def test_warm_compilation_cache_is_bit_identical(tmp_path):
    """The same fits (an own model; a kappa fit, whose programs are also stored traced)
    cold (cache empty: compiled and written) and warm (in-memory caches cleared, every
    program loaded from the disk cache) give the same bits."""
    env = dict(os.environ, TLSJAX_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("TLSJAX_NO_CACHE", None)
    out = subprocess.run([sys.executable, "-c", _CACHED_FIT], env=env, capture_output=True,
                         text=True, timeout=300, check=True).stdout
    cold, warm = json.loads(out)
    assert cold[:6] == warm[:6]
    assert cold[6] == 0 and warm[6] > 0  # the warm run read programs from the cache
    entries = [e.name for e in (tmp_path / "cache").iterdir()]
    assert any(e.startswith("jit__lbfgs_step") for e in entries), entries  # own model
    # the kappa fit's traced programs, stored with jax.export (`_disk_cache`)
    assert any(e.name.startswith("program-") for e in (tmp_path / "cache" / "fit").iterdir())


def test_laplace_rises_near_one_where_the_loss_is_quadratic():
    """`laplace_rises` on a power law (ln y linear in ln A and n; known sigmas): at the
    points where the Laplace errors put the one-sided 95 % bounds the profile rises by
    about what a bound needs (1), and a point beyond the box counts as infinite."""
    from tlsjax.fit._fit import _unconstrained
    from tlsjax.fit._profile import laplace_rises, laplace_stands, profile_threshold

    r = tj.fit_model(power, _curve(3), _params(), profile=False, progress=False)
    thr = profile_threshold(0.95, r.loss, r.dof, True)
    u = _unconstrained(r.problem, r.params)
    for name in ("A", "n"):
        rises = laplace_rises(r.problem, name, r.params[name], r.stderr_log[name], u, r.loss,
                              thr, tuple(r.meta["bounds"][name]), 0.95)
        assert all(abs(x - 1.0) < 0.1 for x in rises), (name, rises)
        assert laplace_stands(rises)
    tight = (r.params["n"] * 0.999, r.params["n"] * 1.001)
    rises = laplace_rises(r.problem, "n", r.params["n"], r.stderr_log["n"], u, r.loss, thr,
                          tight, 0.95)
    assert rises == [math.inf, math.inf] and not laplace_stands(rises)
