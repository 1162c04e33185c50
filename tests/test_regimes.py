"""Sec. III B regimes: dipolar couplings, the three parametrizations, T_U/C_o per realization,
the scans and `tlsjax regimes`."""

import json
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tlsjax as tj
from tlsjax.cli import main
from tlsjax.model._dipolar import (
    ANGULAR_RMS,
    DipolarCouplings,
    angular_factor,
    random_orientations,
)
from tlsjax.model._regime_params import DiluteCrystal, DipolarDefects, RegimeES, _draw
from tlsjax.observables._regime_obs import regime_observables
from tlsjax.studies._regimes import run_regimes

X_MIXED = (0.005, 0.1)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One small `tlsjax regimes` run shared by the tests below (JSON, files, mixed crystal)."""
    out = tmp_path_factory.mktemp("regimes")
    js = out / "extra.json"
    code = main(["regimes", "--out", str(out / "res"), "--json", str(js), "--no-progress",
                 "--x-dilute", "0.05,0.1", "--x-mixed", ",".join(map(str, X_MIXED)),
                 "--n-target", "800", "--realizations", "8", "--j-ee", "1,10",
                 "--dipole-cells", "5"])
    assert code == 0
    return out, json.loads(js.read_text())


@pytest.fixture(scope="module")
def dipole_run():
    """One compiled function of (key, J_ee / g J_o) shared by the dipole tests: the plain ES
    reduction, the dipolar one (with the tau-pair bound) and the dense coupling blocks."""
    sample = tj.Sample(0.3, cells=4)
    params = tj.ModelParams(g=0.02, J0=500.0, atilde=1.0)

    @jax.jit
    def run(key, ratio):
        d = DipolarDefects(g=0.02, J0=500.0, atilde=1.0, J_ee_over_gJ0=ratio, dipole_atilde=0.5)
        couplings, _, k_c = _draw(sample, d.atilde, key)
        dip = tj.dipolar_couplings(couplings.realization, k_c, d.dipole_atilde)
        full = tj.DipolarSTauCouplings(couplings.realization, couplings.amplitudes,
                                       couplings.atilde, dip, ratio)
        idx = jnp.arange(full.n)
        return dict(ref=tj.simulate(sample, params, key), new=d.simulate(sample, key, tau_pairs=True),
                    u=full.block(idx, idx), dtt=dip.block(idx, idx, "tau", "tau"),
                    mask=couplings.realization.mask)

    return run


# -- dipolar angular factor ------------------------------------------------------------------
@pytest.mark.parametrize("u, v, rhat, expected", [
    ([1, 0, 0], [1, 0, 0], [1, 0, 0], -2.0),   # head to tail along R
    ([0, 0, 1], [0, 0, 1], [1, 0, 0], 1.0),    # side by side, perpendicular to R
    ([1, 0, 0], [-1, 0, 0], [1, 0, 0], 2.0),   # head to head
    ([0, 0, 1], [0, 0, -1], [1, 0, 0], -1.0),  # side by side, antiparallel
    ([1, 0, 0], [0, 1, 0], [1, 0, 0], 0.0),    # perpendicular dipoles
])
def test_angular_factor_hand_cases(u, v, rhat, expected):
    d = angular_factor(jnp.asarray(u, float), jnp.asarray(v, float), jnp.asarray(rhat, float))
    assert float(d) == pytest.approx(expected, abs=1e-12)


def test_dipolar_pairs_formula_and_symmetry():
    # two sites at distance 2 along x in open space, x = 0.5 (R_o^3 = 2), cutoff a_d = 1:
    # radial factor 2 / (8 + 1); S of 0 along x, tau of 1 along x: D = -2 (head to tail)
    real = tj.Realization.from_positions([[0.0, 0, 0], [2.0, 0, 0]], box=1e6, x=0.5)
    o = jnp.asarray([[[1.0, 0, 0], [0, 0, 1]], [[0, 1.0, 0], [1, 0, 0]]])
    dip = DipolarCouplings(real, o, jnp.asarray(1.0))
    idx = jnp.arange(2)
    blocks = jax.jit(lambda d: {(a, b): d.block(idx, idx, a, b) for a in ("S", "tau")
                                for b in ("S", "tau")})(dip)
    st = np.asarray(blocks["S", "tau"])
    assert st[0, 1] == pytest.approx(-2.0 * 2 / 9, rel=1e-12)   # u^S_0 = x, u^tau_1 = x
    assert st[1, 0] == pytest.approx(0.0, abs=1e-15)            # u^S_1 = y, u^tau_0 = z
    assert np.all(np.diag(st) == 0)
    tt = np.asarray(blocks["tau", "tau"])
    assert tt[0, 1] == pytest.approx(0.0, abs=1e-15) and tt[0, 1] == tt[1, 0]  # z . x, R along x
    np.testing.assert_array_equal(np.asarray(blocks["tau", "S"]), st.T)
    with pytest.raises(ValueError, match="kinds must be 'S' or 'tau'"):
        dip.pairs(idx, idx, "S", "sigma")


@pytest.mark.exact_bits
def test_angular_factor_averages_to_zero_over_orientations():
    n = 100_000
    draw = jax.jit(random_orientations, static_argnums=1)
    u = draw(jax.random.key(1), n)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(u), axis=-1), 1.0, rtol=1e-12)
    # site i's dipoles depend on (key, i) only: padding to a larger capacity keeps them
    # (to the last bit: XLA vectorizes the sampler differently for each size)
    np.testing.assert_allclose(draw(jax.random.key(1), 1000), u[:1000], rtol=1e-14, atol=1e-15)
    for rhat in ([0.0, 0.0, 1.0], [0.6, 0.0, 0.8]):
        d = np.asarray(angular_factor(u[:, 0], u[:, 1], jnp.asarray(rhat)[None, :]))
        se = d.std() / math.sqrt(n)
        assert abs(d.mean()) < 4 * se                       # mean 0
        assert d.var() == pytest.approx(ANGULAR_RMS**2, rel=0.02)  # rms sqrt(2/3)
    # and over random directions R as well
    r = draw(jax.random.key(2), n)[:, 0]
    d = np.asarray(angular_factor(u[:, 0], u[:, 1], r))
    assert abs(d.mean()) < 4 * d.std() / math.sqrt(n)


# -- J_ee = 0 is the existing ES reduction, exactly ------------------------------------------
def _leaves_equal(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(p), np.asarray(q))
                                      for p, q in zip(la, lb))


@pytest.mark.exact_bits
def test_no_dipoles_reproduces_es_exactly(dipole_run):
    for key in (jax.random.key(3), jax.random.key(4)):
        out = dipole_run(key, 0.0)
        assert _leaves_equal(out["ref"], out["new"].es)
    # the dipoles do change it when switched on
    out = dipole_run(key, 1.0)
    m = np.asarray(out["mask"])
    assert np.all(np.abs(np.asarray(out["new"].es.e_min - out["ref"].e_min)[m]) > 0)
    # the dilute crystal at x = x_c is the package's default model
    p = DiluteCrystal(J_nn=2500.0, g_c=0.02, x_c=0.2, atilde=1.5).params(0.2)
    assert (float(p.g), float(p.J0), float(p.atilde)) == pytest.approx((0.02, 500.0, 1.5))
    # a negative J_ee under jit is refused at run time
    with pytest.raises(Exception, match=r"DipolarDefects\(J_ee_over_gJ0=...\)"):
        jax.block_until_ready(dipole_run(key, -1.0))


def test_tau_pair_bound_matches_dense_numpy(dipole_run):
    out = dipole_run(jax.random.key(5), 0.7)
    m = np.asarray(out["mask"])
    bound, e_mean = np.asarray(out["new"].tau_e_min), float(out["new"].es.e_tau_mean)
    u = np.asarray(out["u"])[np.ix_(m, m)]
    jtt = 0.7 * np.asarray(out["dtt"])[np.ix_(m, m)]  # units of g J_o
    field = u.sum(axis=0)             # E_tau_j = sum_i U_ij (S spins absorbed in c_ij)
    s = -np.sign(field)               # each tau points against its field
    e = np.abs(field)
    a = -2.0 * s[:, None] * s[None, :] * jtt - e[None, :]
    np.fill_diagonal(a, -np.inf)
    np.testing.assert_allclose(bound[m] * e_mean, a.max(axis=1), rtol=1e-10, atol=1e-12)
    assert np.all(np.isneginf(bound[~m]))


# -- the dilute crystal's parametrization ----------------------------------------------------
def test_dilute_couplings_scale_as_x_and_x_7_3():
    # the typical couplings at R_o (rms over pairs within 10% of R_o), from samples
    crystal = DiluteCrystal(J_nn=2500.0, g_c=0.02, x_c=0.2, atilde=1.0)
    xs = np.array([0.004, 0.008, 0.016])
    log_rms = {"SS": [], "Stau": []}
    log_err = []
    for x in xs:
        sample = tj.Sample(float(x), cells=round((700 / (4 * x)) ** (1 / 3)))

        @jax.jit
        def draw(key, sample=sample):
            couplings, _, _ = _draw(sample, crystal.atilde, key)
            idx = jnp.arange(couplings.n)
            return couplings.realization, couplings.block(idx, idx)  # c_ij r_ij

        real, u = draw(jax.random.key(7))
        n = int(real.n_sites)
        u = np.asarray(u)[:n, :n]
        pos = np.asarray(real.positions[:n])
        d = pos[:, None, :] - pos[None, :, :]
        d -= real.box * np.round(d / real.box)
        r = np.sqrt((d**2).sum(-1))
        r0 = x ** (-1 / 3)
        shell = (np.abs(r - r0) < 0.1 * r0) & ~np.eye(n, dtype=bool)
        p = crystal.params(float(x))
        for name, scale in (("SS", float(p.J0)), ("Stau", float(p.gJ0))):
            j2 = (scale * u[shell]) ** 2
            log_rms[name].append(0.5 * np.log(j2.mean()))
        log_err.append(0.5 * j2.std() / j2.mean() / math.sqrt(shell.sum()))
    lx, err = np.log(xs), np.asarray(log_err)
    for name, law in (("SS", 1.0), ("Stau", 7.0 / 3.0)):
        (slope, _), cov = np.polyfit(lx, log_rms[name], 1, w=1 / err, cov="unscaled")
        assert abs(slope - law) < 3 * math.sqrt(cov[0, 0]), (name, slope, cov[0, 0])
        assert math.sqrt(cov[0, 0]) < 0.05
    np.testing.assert_allclose(crystal.J_Stau(xs) / crystal.J_SS(xs),
                               0.02 * (xs / 0.2) ** (4 / 3), rtol=1e-6)


# -- T_U and C_o of one realization ----------------------------------------------------------
def test_regime_observables_hand_case():
    # 4 impurities; energies in units of <E_tau> = 2 units, unit_K = 5: <E_tau> = 10 K
    e_min = jnp.asarray([-0.1, 0.05, 0.2, 1.0])
    e_tau = jnp.asarray([0.05, 0.1, 0.15, 3.7])
    es = tj.ESResult(e_min[:, None], jnp.zeros(4, int), e_tau, jnp.asarray(2.0),
                     jnp.asarray(2.0), jnp.ones(4, bool), jnp.asarray(4))
    g, j_s = 0.19, 30.0
    r = RegimeES(es, jnp.asarray(5.0), jnp.asarray(g), jnp.asarray(j_s), jnp.asarray(j_s))
    out = jax.jit(lambda r: regime_observables(r, 0.1, probe_K=1.0))(r)
    # rho_tau(E) per K: reflected Gaussian kernel, bandwidth h = 0.1 <E_tau> = 1 K
    pts, h = np.asarray(e_tau) * 10.0, 1.0

    def rho(e):
        k = np.exp(-0.5 * ((e - pts) / h) ** 2) + np.exp(-0.5 * ((e + pts) / h) ** 2)
        return k.sum() / (4 * h * math.sqrt(2 * math.pi))

    def phi_s(e):
        return math.sqrt(2 / math.pi) * math.exp(-0.5 * (e / j_s) ** 2)

    def target(e):  # g^2 J_S rho_tau(E) / phi_S(E / J_S)
        return g**2 * j_s * rho(e) / phi_s(e)

    e_k = np.sort(np.asarray(e_min)) * 10.0  # -1, 0.5, 2, 10 K
    k_star = next(k for k in range(4) if (k + 1) / 4 >= target(max(e_k[k], 0.0)))
    assert k_star == 1  # the S spin at E_min = -1 K alone does not reach the target
    assert float(out["T_U_K"]) == pytest.approx(0.5, rel=1e-6)
    assert float(out["T_U_over_E_tau"]) == pytest.approx(0.05, rel=1e-6)
    assert float(out["T_U_shortcut_K"]) == pytest.approx(10.0)  # ceil(5 g 4) = 4th E_min
    assert float(out["C_o"]) == pytest.approx(0.1 * g**2 * j_s * rho(0.0), rel=1e-3)
    assert float(out["E_tau_K"]) == pytest.approx(10.0)
    assert float(out["P_S_zero"]) == pytest.approx(0.25)
    assert float(out["crossover"]) == 1.0
    assert float(out["C_tau_probe"]) == pytest.approx(0.1 * g**2 * j_s * rho(1.0), rel=1e-3)
    # P_S(1 K) = 2/4 (E_min = -1 K and 0.5 K lie below 1 K)
    assert float(out["C_S_probe"]) == pytest.approx(0.1 * 0.5 * phi_s(1.0), rel=1e-6)
    # 5 g must lie below 1 for the shortcut
    r_bad = RegimeES(es, jnp.asarray(5.0), jnp.asarray(0.3), jnp.asarray(j_s), jnp.asarray(j_s))
    with pytest.raises(ValueError, match=r"crossover\(g=...\)"):
        regime_observables(r_bad, 0.1)


# -- the mixed crystal -----------------------------------------------------------------------
def test_mixed_field_sets_the_tau_energy(cli_run):
    # at x << x_c the tau energies are the host field |h^tau|, width h_tau g J_o = 10 K
    d = cli_run[1]["mixed"]
    assert d["x"][0] == X_MIXED[0]
    assert d["E_tau_K"]["mean"][0] == pytest.approx(math.sqrt(2 / math.pi) * 10.0, rel=0.03)


def test_mixed_c_o_linear_in_x(cli_run):
    d = cli_run[1]["mixed"]
    exp = d["exponent"]
    assert exp["of"] == "C_o" and exp["paper"] == 1.0
    assert exp["over"] == list(X_MIXED)
    assert abs(exp["mean"] - 1.0) < 0.15, exp
    assert 0 < exp["stderr"] < 0.1


def test_mixed_crystal_loses_the_s_gap_at_small_x(cli_run):
    # The paper keeps T_U ~ 0.2 g J_o for every x. The ES computation does not: the
    # S-tau couplings fall as x / x_c under x-independent fields, so at x << x_c many S
    # spins have no unstable tau partner and the crossover moves to E -> 0.
    d = cli_run[1]["mixed"]
    p0 = np.asarray(d["P_S_zero"]["mean"])
    cross = np.asarray(d["crossover"]["mean"])
    t_u = np.asarray(d["T_U_K"]["mean"])
    assert p0[0] > 0.1 and p0[-1] < 0.01
    assert cross[-1] == 1.0 and cross[0] < 1.0
    assert t_u[0] < 0.1 * t_u[-1]
    # the S spins then dominate C(E) at E = 0.05 g J_o
    assert d["C_S_probe"]["mean"][0] > 10 * d["C_tau_probe"]["mean"][0]


# -- the CLI ---------------------------------------------------------------------------------
def test_dipole_tau_reduction_shape(cli_run):
    d = cli_run[1]["dipole"]
    e = np.asarray(d["parameters"]["P_tau_energies_over_J_ee"])
    p = np.asarray(d["P_tau"]["mean"])
    assert p.shape == (2, e.size)
    assert np.all(np.diff(p, axis=1) >= 0)  # a cumulative fraction
    # |J^tautau| <= 2 J_ee r'_max < J_ee at a_d = 3, x = 0.2: no tau is gapped above J_ee
    np.testing.assert_array_equal(p[:, e >= 1.0], 1.0)


def test_cli_json_keys_and_files(cli_run):
    out, d = cli_run
    for name in ("regimes.json", "regimes_summary.txt", "regimes_concentration.png",
                 "regimes_dipole.png", "regimes_exponents.png", "dilution.csv", "mixed.csv",
                 "dipole.csv", "tlsjax-manifest.json"):
        assert (out / "res" / name).is_file(), name
    folder = json.loads((out / "res" / "regimes.json").read_text())
    # the same content; the --json copy's written_by also names its run (to be replaced by
    # the same command run again)
    assert {k: v for k, v in folder.items() if k != "written_by"} == {
        k: v for k, v in d.items() if k != "written_by"}
    required = {"dilution": ("x", "T_U_K", "T_U_over_E_tau", "exponent"),
                "mixed": ("x", "C_o", "T_U_K", "exponent"),
                "dipole": ("J_ee_over_gJ0", "T_U_K", "C_o")}
    for regime, keys in required.items():
        for k in keys:
            assert k in d[regime], (regime, k)
        for k in keys[1:]:
            v = d[regime][k]
            assert "mean" in v and "stderr" in v, (regime, k)
    assert d["dilution"]["x"] == [0.05, 0.1] and d["dipole"]["J_ee_over_gJ0"] == [1.0, 10.0]
    assert np.asarray(d["dilution"]["T_U_K"]["stderr"]).shape == (2,)
    assert d["dilution"]["exponent"]["paper"] == pytest.approx(7 / 3)
    assert d["dipole"]["realizations"] == 8
    assert d["energy_convention"]["energies"] == "local_field" and d["cutoff"] == "fixed"
    assert {"T_U_full", "T_U_shortcut", "T_U_fixed_target", "E_tau",
            "C_o"} <= set(d["dilution"]["exponents"])
    assert len(d["dilution"]["local_exponents"]["x"]) == 1
    rows = (out / "res" / "dipole.csv").read_text().strip().splitlines()
    assert rows[0].startswith("J_ee_over_gJ0,cells,n_sites_mean") and len(rows) == 3


def test_cli_never_overwrites_a_users_file(tmp_path, capsys):
    (tmp_path / "regimes.json").write_text("mine")
    code = main(["regimes", "--out", str(tmp_path), "--quick", "--no-progress"])
    assert code == 2 and "not written by tlsjax" in capsys.readouterr().err
    assert (tmp_path / "regimes.json").read_text() == "mine"


@pytest.mark.parametrize("args, match", [
    (["--x-dilute", "0,0.1"], r"argument --x-dilute: item '0': must be a finite number in \(0, 1\]"),
    (["--x-mixed", "0.1,1.5"], r"argument --x-mixed: item '1.5': must be a finite number in \(0, 1\]"),
    (["--x-dilute", "0.2,0.1"], r"regimes\(x_dilute=...\)` must be strictly increasing"),
    (["--j-ee=-1,1"], r"argument --j-ee: item '-1': must be a finite number in \[0, "),
    (["--j-ee", "3,1"], r"regimes\(J_ee_over_gJ0=...\)` must be strictly increasing"),
    (["--regimes", "dilution,glass"], r"regimes\(regimes=...\)` must be a non-empty subset"),
    (["--n-target", "5"], r"argument --n-target: must be an integer in \[20, "),
    (["--x-dilute", "1e-6"], r"x_dilute=1e-06, n_target=...\).*raise x or lower n_target"),
    (["--h-tau", "0"], r"argument --h-tau: must be a finite number in \(0, "),
])
def test_cli_bad_input(args, match, tmp_path, capsys):
    code = main(["regimes", "--out", str(tmp_path), "--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2 and "error" in err
    assert re.search(match, err), err
    assert not (tmp_path / "regimes.json").exists()


def test_bad_model_input():
    with pytest.raises(ValueError, match=r"DipolarDefects\(J_ee_over_gJ0=...\)` must be finite"):
        DipolarDefects(J_ee_over_gJ0=-0.5)
    with pytest.raises(ValueError, match=r"DiluteCrystal\(x_c=...\)` must be finite and in \(0, 1\]"):
        DiluteCrystal(x_c=1.5)
    with pytest.raises(ValueError, match=r"dilution_scan\(x=...\)` must be strictly increasing"):
        tj.dilution_scan(x=[0.1, 0.1])
    with pytest.raises(ValueError, match=r"regimes\(x_mixed=...\)` must be finite and in \(0, 1\]"):
        run_regimes(x_mixed=[-0.1, 0.2])
