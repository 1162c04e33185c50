"""What the Monte Carlo of the full Hamiltonian measures (`tlsjax mc`, `run_mc_study`):
the dumped state recomputes the energy, the ES estimator on a state reduces to the ES
shortcut, DOS normalization, mean-field widths, JSON keys, partial results, bad input;
and the runs that use the same Monte Carlo programs (compiled once per process): the main
job `tlsjax reproduce` end to end, the example of docs/explanation/monte-carlo.md."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _examples import run_examples

import tlsjax as tj
import tlsjax.model._mc_run as mc_run
from tlsjax.cli import main
from tlsjax.observables._flip import mean_field_energies
from tlsjax.observables._mc_obs import StateMeasurement, es_estimator
from tlsjax.studies._mc_study import (
    MCStudy,
    jackknife_stderr,
    measure,
    ratio_of_means,
    summarize_state,
)
from tlsjax.studies._reproduce import default_energies, power_law_slope

# The configuration of tests/test_mc.py's driver (compiled Monte Carlo stages are shared).
MC_ARGS = ["mc", "--x", "0.2", "--cells", "4", "--realizations", "2", "--anneal-sweeps", "200",
           "--sweeps", "100", "--h-S", "0.3", "--h-tau", "0.5", "--no-progress"]


ENERGY = jax.jit(lambda ham, s: ham.energy(s))  # as tests/test_mc.py


@pytest.fixture(scope="module")
def mc_json(tmp_path_factory):
    path = tmp_path_factory.mktemp("mc") / "mc.json"
    assert main([*MC_ARGS, "--json", str(path), "--dump-state"]) == 0
    return json.loads(path.read_text())


def test_json_keys_and_dumped_state_recomputes_the_energy(mc_json):
    d = mc_json
    assert d["g"] == 0.02 and d["J0"] == 500.0 and d["realizations"] == 2 and not d["partial"]
    assert len(d["energy"]) == 2
    for key in ("energies_K", "n_S", "n_tau", "n_S_mf", "n_tau_mf"):
        assert len(d["dos"][key]) == len(d["dos"]["energies_K"]), key
    for key in ("energies_over_E_tau", "mc", "mc_dos", "es"):
        assert len(d["P_S"][key]) == len(d["P_S"]["energies_over_E_tau"]), key
    assert {"mc", "es"} <= set(d["T_U_over_E_tau"])
    assert 0 < d["T_U_over_E_tau"]["mc"] < 1 and 0 < d["T_U_over_E_tau"]["es"] < 1
    assert d["unstable"]["single"] == 0 and d["unstable"]["pair"] == 0  # descended states
    # the dumped state and couplings give `energy` in docs/conventions.md section 6's sums
    c, gs = d["couplings"], d["ground_state"]
    s, t = np.asarray(gs["S"], float), np.asarray(gs["tau"], float)
    n = d["n_sites"][0]
    assert s.shape == t.shape == (n,) and set(s) | set(t) <= {-1.0, 1.0}
    jss, jst, jtt = (np.asarray(c[k]) for k in ("J_SS", "J_Stau", "J_tautau"))
    assert jss.shape == jst.shape == jtt.shape == (n, n)
    for m in (jss, jst, jtt):
        assert np.all(np.diag(m) == 0.0)
    np.testing.assert_array_equal(jss, jss.T)
    assert not np.allclose(jst, jst.T)  # J_Stau[i][j] is the coefficient of S_i tau_j
    iu = np.triu_indices(n, 1)
    energy = (np.dot(c["h_S"], s) + np.dot(c["h_tau"], t) + np.sum(jss[iu] * s[iu[0]] * s[iu[1]])
              + s @ jst @ t + np.sum(jtt[iu] * t[iu[0]] * t[iu[1]]))
    assert energy == pytest.approx(d["energy"][0], rel=1e-10)
    assert np.std(c["h_S"]) > 0 and np.std(c["h_tau"]) > 0


def test_docs_monte_carlo_example_runs(mc_json):
    """The example of docs/explanation/monte-carlo.md: the sample, realizations and
    settings of MC_ARGS, so the Monte Carlo compiled for `mc_json` serves it
    (tests/_examples.py)."""
    assert run_examples("docs/explanation/monte-carlo.md") == 1


@pytest.fixture(scope="module")
def small():
    sample = tj.Sample(0.2, cells=4)  # the shapes of MC_ARGS: `_measure` is compiled once
    params = tj.HamiltonianParams(g=0.05, J0=100.0, atilde=3.0)
    ham = jax.jit(lambda k: tj.hamiltonian(sample, params, k))(jax.random.key(3))
    return sample, params, ham


def test_mean_field_dos_widths(small):
    _, params, ham = small
    configs = 64
    mf = np.asarray(mean_field_energies(ham, jax.random.key(1), configs))
    n, mask = ham.n, np.asarray(ham.realization.mask)
    k = np.asarray(ham.dense())
    # E[(2 lambda_k)^2] over random spins = 4 sum_l K_kl^2 (no fields here): exact
    want = 4.0 * np.sum(k**2, axis=1)
    for sl, width in ((slice(0, n), params.J0), (slice(n, 2 * n), params.g * params.J0)):
        got = np.mean(mf[:, sl][:, mask] ** 2)
        assert got == pytest.approx(np.mean(want[sl][mask]), rel=0.08)
        rms_field = float(np.sqrt(got)) / 2.0  # rms |lambda|: ~ J_o (S), ~ g J_o (tau)
        assert 0.5 * width < rms_field < 2.0 * width
    ratio = np.sqrt(np.mean(mf[:, n:][:, mask] ** 2) / np.mean(mf[:, :n][:, mask] ** 2))
    assert ratio == pytest.approx(float(params.g), rel=0.1)
    assert np.all(mf[:, :n][:, ~mask] == 0)


def test_dos_normalization_and_cumulative(small):
    sample, params, ham = small
    spins = np.where(np.asarray(jax.random.bernoulli(jax.random.key(2), 0.5, (ham.size,))), 1.0, -1.0)
    m = jax.device_get(measure(sample, params, jax.random.key(3), spins, pad_to=64, mf_configs=4))
    edges = np.logspace(-12, 6, 91)  # every energy of this state and the random ones inside
    grid = np.logspace(-2, 1, 13)
    row = summarize_state(m, grid=grid, edges_K=edges, e_bar_K=5.0, g=0.05)
    w = np.diff(edges)
    # a random state: about half of the flips lower H (eps < 0, below the first edge)
    for sp in ("S", "tau"):
        assert 0.2 < row[f"below_{sp}"] < 0.8 and row[f"above_{sp}"] == 0
        total = np.sum(row[f"n_{sp}"] * w) + row[f"below_{sp}"] + row[f"above_{sp}"]
        assert total == pytest.approx(1.0, abs=1e-12), sp
        assert np.sum(row[f"n_{sp}_mf"] * w) == pytest.approx(1.0, abs=1e-12), sp
    eps = np.asarray(m.eps)
    n = ham.n
    centers = np.sqrt(edges[1:] * edges[:-1])
    mask = np.asarray(m.mask)
    np.testing.assert_allclose(row["cum_S"][-1], 1.0)
    np.testing.assert_allclose(row["cum_tau"], np.mean(eps[n:][mask][None, :] < centers[:, None], 1))
    # the state's energy from the measurement agrees with the Hamiltonian's
    assert float(m.energy) == pytest.approx(float(ENERGY(ham, jnp.asarray(spins))), rel=1e-12)
    # ratio of means with a jackknife error: exact for identical realizations
    r, se = ratio_of_means(np.ones((3, 2)), 2.0 * np.ones((3, 2)))
    np.testing.assert_allclose(r, 0.5)
    np.testing.assert_allclose(se, 0.0)


def _study_of_power_laws(exponents, amplitudes):
    """An `MCStudy` whose realization i has P_S = amplitudes[i] E^exponents[i] (all three
    estimators: P_S_mc, P_S_es and the DOS ratio), E the default grid of E / <E_tau>."""
    e = default_energies()
    p = np.stack([a * e ** k for k, a in zip(exponents, amplitudes)])
    rows = dict(P_S_mc=p, P_S_es=p, dos_u=p, n_bar_u=np.ones(len(p)), n_sites=np.ones(len(p)))
    return MCStudy(0.2, 4, "fcc", tj.HamiltonianParams(), tj.MCConfig(), e, np.ones(2), 1.0, 4,
                   rows, len(p))


def test_gap_exponents_with_jackknife_errors():
    # the jackknife of a mean is its standard error, exactly
    x = np.random.default_rng(0).normal(size=7)
    loo = (x.sum() - x) / (len(x) - 1)
    assert jackknife_stderr(loo) == pytest.approx(x.std(ddof=1) / np.sqrt(len(x)), rel=1e-12)
    assert np.isnan(jackknife_stderr(loo[:1])) and np.isnan(jackknife_stderr([1.0, np.nan]))
    # same exponent, other amplitudes: the slope and no spread
    ex = _study_of_power_laws([3.0] * 4, [0.02, 0.05, 0.03, 0.08]).exponents()
    for name in ("mc", "mc_dos", "es"):
        assert ex[name] == pytest.approx(3.0, rel=1e-10) and ex[f"{name}_stderr"] < 1e-9, name
    # other exponents: the slope of the mean curve, and the spread of the slopes without one
    ks, amps = [2.5, 3.0, 3.5, 3.2], [0.03] * 4
    ex = _study_of_power_laws(ks, amps).exponents()
    e = default_energies()
    curves = np.stack([a * e ** k for k, a in zip(ks, amps)])
    loo = [power_law_slope(e, np.delete(curves, i, 0).mean(0)) for i in range(4)]
    assert ex["mc"] == pytest.approx(power_law_slope(e, curves.mean(0)))
    assert ex["mc_stderr"] == pytest.approx(np.sqrt(3 / 4 * np.sum((loo - np.mean(loo)) ** 2)))
    assert 0.05 < ex["mc_stderr"] < 0.5
    assert np.isnan(_study_of_power_laws([3.0], [0.05]).exponents()["es_stderr"])


@pytest.mark.exact_bits
def test_es_estimator_on_the_es_configuration_is_the_es_reduction():
    """J^SS = J^tautau = 0, S_i = +1, tau spins aligned with their fields (the stable
    state with S fixed, as tests/test_mc.py checks by descent): E_min of the state equals
    2 E_min of the ES reduction (flip vs local-field convention), so P_S and T_U in units
    of each convention's <E_tau> agree exactly."""
    sample, key, h_rel, g, j0 = tj.Sample(0.2, cells=4), jax.random.key(4), 0.3, 0.02, 500.0
    model = tj.ModelParams(g=g, J0=j0, atilde=3.0, h_rel=h_rel)
    es = jax.jit(lambda k: tj.simulate(sample, model, k))(key)
    params = tj.HamiltonianParams.from_model(model, h_tau=h_rel * float(es.e_tau0_mean))

    @jax.jit
    def run(k):
        ham = tj.hamiltonian(sample, params, k).scaled(ss=0.0, tautau=0.0)
        n = ham.n
        up = jnp.ones(2 * n)
        # no tau-tau couplings: the fields on the tau spins come from the S spins alone,
        # and the stable tau configuration aligns each tau with its field
        s = jnp.concatenate([up[:n], -jnp.sign(ham.local_fields(up)[n:])])
        f = ham.local_fields(s)
        return ham.flip_energies(s, f), es_estimator(ham, s, f), ham.realization.mask, s

    eps, e_min, mask, spins = run(key)
    m = np.asarray(es.mask)
    want = 2.0 * g * j0 * np.asarray(es.e_min * es.e_tau_mean)[m]
    np.testing.assert_allclose(np.asarray(e_min)[: m.shape[0]][m], want, rtol=1e-10)
    assert np.all(np.isinf(np.asarray(e_min)[~np.asarray(mask)]))
    # the same through the per-realization summary: P_S(b) == P_S(ES), T_U(b) == T_U(ES)
    meas = StateMeasurement(eps=eps, e_min=e_min, mean_field=jnp.zeros((1, eps.shape[0])),
                            mask=mask, n_sites=es.n_sites, energy=jnp.asarray(0.0),
                            es_e_min=es.e_min, es_mask=es.mask,
                            es_e_tau_mean=es.e_tau_mean * g * j0,
                            es_t_u=tj.HardTheta().crossover(es, g), h_rel=jnp.asarray(h_rel))
    grid = np.logspace(-2, 1, 31)
    row = summarize_state(jax.device_get(meas), grid=grid, edges_K=np.logspace(-3, 4, 15),
                          e_bar_K=50.0, g=g)
    np.testing.assert_array_equal(row["P_S_mc"], row["P_S_es"])
    assert float(row["T_U_mc"]) == pytest.approx(float(row["T_U_es"]), rel=1e-10)
    # measure_state's ES part is `simulate` of the same key with the matching h_rel
    full = jax.device_get(measure(sample, params, key, np.asarray(spins), pad_to=64))
    assert float(full.h_rel) == pytest.approx(h_rel, rel=1e-10)
    np.testing.assert_array_equal(full.es_e_min, es.e_min)


def test_interrupt_writes_finished_realizations_marked_partial(tmp_path, monkeypatch, mc_json):
    calls = {"n": 0}
    original = mc_run._run_batch

    def second_batch_interrupted(*args, **kwargs):
        calls["n"] += 1
        res, interrupted, secs = original(*args, **kwargs)
        return res, interrupted or calls["n"] == 2, secs

    monkeypatch.setattr(mc_run, "_run_batch", second_batch_interrupted)
    path = tmp_path / "partial.json"
    args = [a if a != "2" else "3" for a in MC_ARGS]  # 3 realizations; the 2nd is cut short
    assert main([*args, "--json", str(path)]) == 130
    d = json.loads(path.read_text())
    assert d["partial"] is True and d["realizations"] == 1 and d["realizations_requested"] == 3
    assert d["energy"] == mc_json["energy"][:1]  # the same first realization


def test_interrupt_while_measuring_keeps_the_finished_runs(tmp_path, monkeypatch, mc_json):
    """Ctrl-C during the first measurement: every realization had run, so all are still
    measured and written, marked partial (exit 130), instead of "nothing written"."""
    import tlsjax.studies._mc_study as study

    calls = {"n": 0}
    original = study.measure

    def first_measure_interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(study, "measure", first_measure_interrupted)
    path = tmp_path / "measured.json"
    assert main([*MC_ARGS, "--json", str(path)]) == 130
    d = json.loads(path.read_text())
    assert d["partial"] is True and d["realizations"] == 2 == d["realizations_requested"]
    assert d["energy"] == mc_json["energy"]
    assert calls["n"] == 3  # the interrupted measurement was done again


@pytest.mark.slow
def test_reproduce_quick_end_to_end(tmp_path, capsys, monkeypatch):
    """The main job end to end, in-process, on samples smaller than --quick's (the
    property does not need their size: every file, the comparison with the paper, and
    that a second run replaces its own files but never one the user wrote). Its Monte
    Carlo part runs MC_ARGS' sample and settings: here, it is compiled once."""
    import tlsjax.cli._cli_es as cli_es

    monkeypatch.setattr(cli_es, "QUICK_SAMPLES", ((0.2, 5), (0.5, 4)))
    monkeypatch.setattr(cli_es, "QUICK_REALIZATIONS", 2)
    # the Monte Carlo part on the shapes and schedule of MC_ARGS (compiled once)
    monkeypatch.setattr(cli_es, "MC_QUICK", dict(x=0.2, cells=4, realizations=2,
                                                 anneal_sweeps=200, sweeps=100))
    out = tmp_path / "results"
    argv = ["reproduce", "--quick", "--out", str(out), "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err[-2000:]
    printed = capsys.readouterr().out
    for name in ("ps_x0.2_L5.png", "ps_x0.5_L4.png", "tu_summary.png", "tu_table.csv",
                 "summary.json", "summary.txt", "ps_x0.2_L5.csv", "ps_x0.5_L4.json",
                 "mc_fig2a.png", "mc_fig2a.csv", "mc_ps.png", "mc_ps.csv", "mc.json"):
        assert (out / name).is_file(), name
    s = json.loads((out / "summary.json").read_text())
    mc = s["monte_carlo"]
    assert [c["atilde"] for c in mc["cases"]] == [1.5, 3.0, 6.0]
    for c in mc["cases"]:
        assert 0 < c["T_U_over_E_tau_mc"] < 1 and 0 < c["T_U_over_E_tau_es"] < 1
        assert c["unstable_single"] == 0 and c["unstable_pair"] == 0
    assert "Full Hamiltonian (Eq. 1) by Monte Carlo" in printed
    cmp = s["comparison_with_paper"]
    assert cmp["paper"] == 0.2 and cmp["n"] == 2 * 4 * 3  # a~ = 1.5, 3, 4.5, 6
    assert 0 < cmp["measured_min"] <= cmp["measured_mean"] <= cmp["measured_max"] < 1
    assert "Paper: T_U ~ 0.2 <E_tau>" in printed
    rows = (out / "tu_table.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2 * 5 * 3
    # a second run replaces its own files, but never a file the user wrote
    (out / "notes.txt").write_text("mine")
    (out / "extra").mkdir()
    assert main([*argv, "--no-mc"]) == 0, capsys.readouterr().err[-2000:]
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / "mc_ps.png").exists()  # the previous run's files it does not write go
    user = tmp_path / "user"
    user.mkdir()
    (user / "summary.txt").write_text("my summary")
    assert main(["reproduce", "--quick", "--out", str(user), "--no-progress"]) == 2
    assert "not written by tlsjax" in capsys.readouterr().err
    assert (user / "summary.txt").read_text() == "my summary"


@pytest.mark.parametrize("args, match", [
    (["--h-S", "-1"], r"argument --h-S: must be a finite number in \[0"),
    (["--h-tau", "-0.5"], r"argument --h-tau: must be"),
    (["--sweeps", "-3"], r"argument --sweeps: must be an integer in \[0,"),
    (["--anneal-sweeps", "-1"], r"argument --anneal-sweeps: must be an integer in \[0,"),
    (["--ladder", "1,2,3"], r"MCConfig\(ladder=...\)` must be strictly decreasing"),
    (["--ladder", "5,-1"], r"argument --ladder: item '-1': must be a finite number in \(0,"),
    (["--t-min", "600"], r"t_min < t_max"),
    (["--realizations", "0"], r"argument --realizations: must be an integer in \[1,"),
    (["--e-bar", "0"], r"argument --e-bar: must be a finite number in \(0"),
    (["--cells", "14", "--dump-state"], r"--dump-state .* at most 2000 impurities"),
])
def test_bad_input(args, match, capsys, tmp_path):
    path = tmp_path / "never.json"
    code = main(["mc", "--cells", "3", "--realizations", "1", "--no-progress", "--json", str(path),
                 *args])
    err = capsys.readouterr().err
    assert code == 2, err
    import re

    assert re.search(match, err), err
    assert not path.exists()


def test_empty_ladder_is_refused(capsys):
    assert main(["mc", "--ladder", ""]) == 2
    assert "argument --ladder: must be a list" in capsys.readouterr().err


def test_energy_convention_and_t_u_in_both_conventions(mc_json):
    """The record names which output uses which convention; T_U as a flip energy is twice
    T_U as a local field, and each equals its ratio times its own convention's <E_tau>."""
    d = mc_json
    assert d["energy_convention"]["keys"]["dos"] == "flip_energy"
    tu = d["T_U_K"]
    assert tu["mc_flip_energy"]["mean"] == pytest.approx(2.0 * tu["mc_local_field"]["mean"])
    assert tu["es_flip_energy"]["mean"] == pytest.approx(2.0 * tu["es_local_field"]["mean"])
    ratio = np.asarray(d["T_U_over_E_tau"]["es_per_realization"])
    e_tau = d["P_S"]["E_tau_mean_K"]["es"]  # mean over realizations of the local <E_tau>
    assert tu["es_local_field"]["mean"] == pytest.approx(ratio.mean() * e_tau, rel=0.3)
