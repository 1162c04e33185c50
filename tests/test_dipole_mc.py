"""Monte Carlo check of the dipole regime's tau DOS: single-flip energies by species, the
mean-field reference, the window ratios and their jackknife, the study and its checkpoint."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tlsjax as tj
from tlsjax.observables._flip import mean_field_flip_energies, single_flip_energies
from tlsjax.plot._plot_dipole_mc import plot_tau_dos_mc
from tlsjax.studies import _dipole_mc
from tlsjax.studies._dipole_mc import _jackknife_ratio, eq_b5, eq_b6, tau_dos_mc

SAMPLE = tj.Sample(0.3, cells=3)
CONFIG = tj.MCConfig(temperatures=4, anneal_sweeps=30, sweeps=10, block_size=16)
STUDY = dict(x=0.2, cells=3, realizations=2, config=CONFIG, configurations=4, progress=False,
             edges=(0.01, 0.1, 1.0, 10.0, 1e4), probes=(0.1, 1.0, 1e4))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    path = tmp_path_factory.mktemp("dipole_mc") / "ckpt.json"
    return tau_dos_mc((0.0, 1.0), checkpoint=path, **STUDY), path


def test_jackknife_ratio_hand_case():
    num = np.array([[1.0, 2.0], [3.0, 4.0]])
    den = np.array([[2.0, 2.0], [2.0, 4.0]])
    ratio, se = _jackknife_ratio(num, den)
    np.testing.assert_allclose(ratio, [1.0, 1.0])
    # leave-one-out ratios 1.5, 0.5 (column 0) and 1, 1 (column 1)
    np.testing.assert_allclose(se, [0.5, 0.0])
    r1, s1 = _jackknife_ratio(num[:1], den[:1])
    np.testing.assert_allclose(r1, [0.5, 1.0])
    assert np.all(np.isnan(s1))
    r0, _ = _jackknife_ratio(np.zeros((2, 1)), np.zeros((2, 1)))
    assert np.isnan(r0[0])


def test_paper_formulas():
    # Eq. B6 with c = 0.1, J_tt = 1: 1 - 0.1 ln(100) at E = 0.01; 1 above J_tt; >= 0
    np.testing.assert_allclose(eq_b6([0.01, 1.0, 5.0, 1e-300], 1.0, 0.1),
                               [1 - 0.1 * math.log(100), 1.0, 1.0, 0.0])
    # Eq. B5 with g = 0.02, g J_o = 10: 1 - 0.08 ln(20 / E)
    np.testing.assert_allclose(eq_b5([0.2, 20.0, 50.0], 0.02, 10.0),
                               [1 - 0.08 * math.log(100), 1.0, 1.0])


@jax.jit
def _ham_and_states(key):
    ham = tj.hamiltonian(SAMPLE, tj.HamiltonianParams(g=0.1, J0=10.0, J_ee_over_gJ0=0.5), key,
                         pad_to=16)
    spins = jnp.where(jax.random.bernoulli(jax.random.key(1), 0.5, (2, 3, ham.size)), 1.0, -1.0)
    spins = jnp.where(ham.mask, spins, 1.0)
    fields = ham.local_fields(spins)
    return ham, spins, fields, ham.energy(spins, fields)


def test_single_flip_and_mean_field_energies():
    ham, spins, fields, energies = _ham_and_states(jax.random.key(0))
    n = ham.n
    res = tj.MCResult(spins, fields, energies, None, None, None, None, None, None, None,
                      jnp.full(2, ham.n_sites), None, None)
    best = single_flip_energies(res)
    mask = np.asarray(ham.realization.mask)
    m2 = np.concatenate([mask, mask])
    s, f = np.asarray(spins), np.asarray(fields)
    eps = np.where(m2, -2.0 * s * f, 0.0)  # (2, 3, 2n), docs/conventions.md section 6
    for v in range(2):
        r = int(np.argmin(np.asarray(energies[v])))
        np.testing.assert_array_equal(np.asarray(best.S[v]), eps[v, r, :n])
        np.testing.assert_array_equal(np.asarray(best.tau[v]), eps[v, r, n:])
        np.testing.assert_array_equal(np.asarray(best.mask[v]), mask)
    every = single_flip_energies(res, "all")
    assert every.tau.shape == (2, 3, n) and every.mask.shape == (2, 3, n)
    np.testing.assert_array_equal(np.asarray(every.S), eps[..., :n])
    np.testing.assert_array_equal(np.asarray(every.tau), eps[..., n:])
    with pytest.raises(ValueError, match=r"single_flip_energies\(which=...\)"):
        single_flip_energies(res, "worst")
    key = jax.random.key(9)
    mf = jax.jit(mean_field_flip_energies, static_argnums=2)(ham, key, 4)
    rand = np.where(np.asarray(jax.random.bernoulli(key, 0.5, (4, ham.size))), 1.0, -1.0)
    lam = np.abs(np.asarray(ham.h) + np.where(m2, rand, 1.0) @ np.asarray(ham.matrix))  # h + K s
    np.testing.assert_allclose(np.asarray(mf.tau), np.where(mask, 2 * lam[:, n:], 0.0), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(mf.S), np.where(mask, 2 * lam[:, :n], 0.0), rtol=1e-12)
    with pytest.raises(ValueError, match=r"mean_field_flip_energies\(configurations=...\)"):
        mean_field_flip_energies(ham, key, 0)


def test_study_counts_and_limits(study):
    check, _ = study
    assert check.unstable[:, :2].sum() == 0  # pair-stable final states
    assert 0 < check.tol_K < 1e-9  # float64 (tests): the descent tolerance is tiny
    np.testing.assert_allclose(check.J_tt_K, [0.02 * 0.02 * 500.0, 0.02 * 500.0])
    np.testing.assert_allclose(check.c, [0.02, 1.0])
    # the last cumulative window [0, 1e4 J_tt) holds every tau spin, in MC and mean field
    n_total = check.n_sites_mean * check.realizations
    np.testing.assert_allclose(check.cumulative_counts["mc"][:, -1], n_total)
    np.testing.assert_allclose(check.cumulative_counts["mean_field"][:, -1], n_total)
    np.testing.assert_allclose(check.cumulative["mc"][0][:, -1], 1.0)
    # the windows partition (0, 1e4 J_tt) (nothing below 0.01 J_tt is counted there)
    assert np.all(check.counts["mc"].sum(1) <= n_total)
    # without dipoles the ES tau-pair bound never binds (the elastic tau-tau is left out)
    ok = check.counts["mean_field"][0] > 0
    np.testing.assert_allclose(check.binned["es"][0][0][ok], 1.0)
    # at J_ee = g J_o it does, at low energy (ES and Eq. B6 depleted)
    assert check.cumulative["es"][0][1, 0] < 0.5 and check.cumulative["B6"][0][1, 0] == 0.0
    # the MC tau energies are not below the mean field's on average (correlations gap them)
    assert np.all(check.e_tau_K["mc"][0] > 0.8 * check.e_tau_K["mean_field"][0])


def test_study_outputs(study, tmp_path):
    check, _ = study
    d = check.to_json()
    assert d["J_ee_over_gJ0"] == [0.0, 1.0]
    assert set(d["reduction"]) == {"mc", "es", "B6", "B5"}
    assert np.asarray(d["reduction"]["mc"]["mean"]).shape == (2, 4)
    assert np.asarray(d["cumulative_reduction"]["es"]["stderr"]).shape == (2, 3)
    header, rows = check.table()
    assert len(rows) == 2 * (4 + 3) and len(rows[0]) == len(header)
    assert "E < 0.1 J_tt" in check.summary()
    plot_tau_dos_mc(check, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_checkpoint_resumes_and_refuses_other_settings(study, monkeypatch):
    check, path = study

    def no_mc(*args, **kwargs):
        raise AssertionError("the checkpoint should have been used")

    monkeypatch.setattr(_dipole_mc, "run_mc", no_mc)
    again = tau_dos_mc((0.0, 1.0), checkpoint=path, **STUDY)
    np.testing.assert_array_equal(again.binned["mc"][0], check.binned["mc"][0])
    with pytest.raises(ValueError, match="holds a run with other settings"):
        tau_dos_mc((0.0, 1.0), checkpoint=path, **{**STUDY, "realizations": 3})


@pytest.mark.parametrize("kwargs, match", [
    (dict(J_ee_over_gJ0=(1.0, 0.5)), r"tau_dos_mc\(J_ee_over_gJ0=...\)` must be strictly increasing"),
    (dict(J_ee_over_gJ0=(-1.0,)), r"tau_dos_mc\(J_ee_over_gJ0=...\)` must be finite and in \[0"),
    (dict(cells=1), r"tau_dos_mc\(cells=...\)` must be >= 2"),
    (dict(edges=(1.0,)), r"tau_dos_mc\(edges=...\)` needs at least 2 edges"),
    (dict(probes=(0.0, 1.0)), r"tau_dos_mc\(probes=...\)` must be > 0"),
    (dict(g=0.3), r"DipolarDefects\(g=...\)` must be finite and in \(0, 0.2\)"),
    (dict(seed=-1), r"tau_dos_mc\(seed=...\)"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tau_dos_mc(**{**dict(progress=False), **kwargs})
