"""Sec. III B under both cutoff conventions, the consistent S width, the energy convention
record, Fig. 2 a's merged bins, and what `tlsjax regimes` prints where a number is undefined."""

import math
import types

import numpy as np
import pytest

import tlsjax.cli._cli_regimes as cli_regimes
from tlsjax._convention import MC_CONVENTION, convention_line, energy_convention
from tlsjax.cli import main
from tlsjax.model._regime_params import DiluteCrystal
from tlsjax.studies._mc_study import MIN_BIN_COUNT, fig2a_table, merge_sparse_bins
from tlsjax.studies._regimes import (
    DILUTION_EXPONENTS,
    RegimeScan,
    dilution_scan,
    summary_text,
)

X = (0.05, 0.1)
ATILDE = 3.0


@pytest.fixture(scope="module", params=["fixed", "scaled"])
def scan(request):
    """One moderate dilute-crystal scan per cutoff convention (~700 impurities, 3 keys)."""
    crystal = DiluteCrystal(atilde=ATILDE, cutoff=request.param)
    return dilution_scan(crystal, X, n_target=700, realizations=3, progress=False)


def _continuum_rms(x, atilde):
    """rms tau field / J^Stau(R_o) for a~ >> R_o: sum_j r_ij^2 -> rho int d^3R r(R)^2 with
    rho = sqrt(2) x / a_o^3 (fcc) and R_o^3 = 1 / x: 4 pi sqrt(2) / (3 x a~^3)."""
    return math.sqrt(4.0 * math.pi * math.sqrt(2.0) / (3.0 * x * atilde**3))


def test_each_cutoff_has_its_own_closed_form_exponent(scan):
    """a~/R_o fixed: every energy scales with J^Stau(R_o) ~ x^{7/3}. a~ fixed with a~ > R_o:
    <E_tau> ~ J^Stau(R_o) x^{-1/2} (the continuum sum above), i.e. x^{11/6}."""
    e = scan.exponents()["E_tau"]
    expected = 7.0 / 3.0 if scan.params["cutoff"] == "scaled" else 11.0 / 6.0
    assert e["value"] == pytest.approx(expected, abs=3 * e["stderr"] + 0.03)
    assert e["over"] == [0.05, 0.1]


def test_consistent_width_is_the_lattice_sum(scan):
    """J_S / J^SS(R_o) is the rms tau field over J^Stau(R_o): with a~ fixed, the continuum
    sum at x = 0.1 (within 5%: lattice and box corrections); with a~/R_o fixed, the same
    number at every x (it depends on a~/R_o only), and T_U of the nominal width beside it."""
    ratio = np.asarray(scan.mean["J_S_over_nominal"])
    if scan.params["cutoff"] == "fixed":
        assert ratio[1] == pytest.approx(_continuum_rms(0.1, ATILDE), rel=0.05)
        assert ratio[0] > ratio[1]
    else:
        assert np.ptp(ratio) < 0.05 * ratio.mean()
    assert np.all(np.asarray(scan.mean["T_U_nominal_JS_K"]) > 0)


def test_json_exponents_local_exponents_and_convention(scan):
    d = scan.to_json()
    assert d["cutoff"] == scan.params["cutoff"]
    assert set(d["exponents"]) == set(DILUTION_EXPONENTS)  # every one computed by default
    for name, e in d["exponents"].items():
        assert set(e) >= {"value", "stderr"}, name
    loc = d["local_exponents"]
    assert len(loc["x"]) == len(X) - 1
    for name in DILUTION_EXPONENTS:
        assert len(loc[name]["value"]) == len(X) - 1
    # the local exponent of a two-point window is the window's slope
    assert loc["E_tau"]["value"][0] == pytest.approx(
        math.log(d["E_tau_K"]["mean"][1] / d["E_tau_K"]["mean"][0]) / math.log(2.0), abs=0.05)
    for key, flip in d["flip_energy_K"].items():  # flip energy = 2 x local field
        np.testing.assert_allclose(flip["mean"], 2.0 * np.asarray(d[key]["mean"]))
    assert "T_U_correlated_K" in d and "T_U_fixed_target_K" in d


def test_correlated_ns_raises_the_target_and_t_u(scan):
    """n_S(E-bar) < n_S^o: the same g^2 n_tau needs a larger P_S, so T_U moves up."""
    full, corr = np.asarray(scan.mean["T_U_K"]), np.asarray(scan.mean["T_U_correlated_K"])
    assert np.all(corr > full)


def test_energy_convention_record():
    rec = energy_convention("local_field")
    assert rec["energies"] == "local_field" and rec["flip_energy_over_local_field"] == 2.0
    assert MC_CONVENTION["keys"]["dos"] == "flip_energy"
    assert "2|lambda|" in convention_line("flip_energy")
    with pytest.raises(ValueError, match=r"energy_convention\(kind=...\)` must be one of"):
        energy_convention("kelvin")


def test_bad_cutoff():
    with pytest.raises(ValueError, match=r"DiluteCrystal\(cutoff=...\)` must be one of"):
        DiluteCrystal(cutoff="relative")


def _scan(mean_tu, stderr_tu, realizations):
    n = len(mean_tu)
    ones = np.ones(n)
    mean = dict(T_U_K=np.asarray(mean_tu), T_U_shortcut_K=ones, C_o=ones, crossover=ones,
                n_sites=ones)
    err = dict(T_U_K=np.asarray(stderr_tu), T_U_shortcut_K=ones * np.nan, C_o=ones * np.nan,
               crossover=ones, n_sites=ones)
    laws = dict(T_U_K=ones, C_o=ones)
    return RegimeScan("mixed", "x", np.arange(1.0, n + 1), [4] * n, mean, err, realizations,
                      1.0, {}, laws, np.zeros(n, bool))


@pytest.mark.parametrize("mean_tu, stderr_tu, realizations, expected", [
    ([0.395], [np.nan], 1, "1 realization: no standard error"),
    ([np.nan], [np.nan], 4, "undefined (in some realization P_S never reaches the target"),
])
def test_summary_never_prints_nan(mean_tu, stderr_tu, realizations, expected):
    text = summary_text({"mixed": _scan(mean_tu, stderr_tu, realizations)})
    assert expected in text
    assert "nan" not in text and "inf" not in text.replace("information", "")


def test_explicit_options_win_over_quick(monkeypatch, tmp_path):
    seen = {}

    def fake(regimes, **kw):
        seen.update(kw)
        raise SystemExit(0)

    monkeypatch.setattr(cli_regimes, "run_regimes", fake)
    with pytest.raises(SystemExit):
        main(["regimes", "--quick", "--realizations", "1", "--n-target", "60", "--out",
              str(tmp_path / "o"), "--no-progress"])
    assert seen["realizations"] == 1 and seen["n_target"] == 60
    assert seen["x_dilute"] == cli_regimes.QUICK["x_dilute"]  # the rest from --quick
    assert seen["cutoff"] == "fixed"


# -- Fig. 2 a: no density drawn from fewer than MIN_BIN_COUNT spins ------------------------
def test_merge_sparse_bins():
    edges = np.geomspace(0.01, 100.0, 33)  # 8 bins per decade
    counts = np.zeros(32)
    counts[[2, 6]] = 1.0        # isolated single counts, < 1 decade apart: one sparse group
    counts[12:] = 20.0
    kept, sparse = merge_sparse_bins(edges, counts, 10)
    assert sparse == [(2, 10)] and kept[0] == (12, 13) and len(kept) == 20


def test_fig2a_table_flat_mean_field_and_min_count():
    """A flat mean-field density sampled by isolated counts at low E comes out flat on the
    merged bins; no row of the figure's numbers holds fewer than MIN_BIN_COUNT spins."""
    rng = np.random.default_rng(0)
    edges = np.geomspace(0.01, 1000.0, 41)
    w = np.diff(edges)
    n_sites, configs, realizations = np.full(4, 400.0), 4, 4
    density = 7.5e-4  # per impurity per K, flat
    lam = density * w * n_sites[0] * configs
    counts = rng.poisson(lam, size=(realizations, 40))
    per_k = counts / (w * n_sites[:, None] * configs)  # per impurity per K
    rows = dict(n_S_mf=per_k, n_tau_mf=per_k, n_S=per_k * configs, n_tau=per_k * configs,
                n_sites=n_sites)
    st = types.SimpleNamespace(edges_K=edges, rows=rows, mf_configs=configs)
    header, table = fig2a_table(st)
    assert header[-1] == "count"
    assert table and min(r[-1] for r in table) >= MIN_BIN_COUNT
    mf = [r for r in table if r[0] == "n_S_mf"]
    vals = np.array([r[4] for r in mf])
    assert np.all(np.abs(vals / density - 1.0) < 0.6)  # no 10x spikes from single counts
    assert {r[0] for r in table} == {"n_S", "n_tau", "n_S_mf", "n_tau_mf", "tau_ratio"}
