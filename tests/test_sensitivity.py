"""Sensitivity: Jacobians by forward and reverse mode, finite differences, elasticities."""

import jax
import numpy as np
import pytest

from tlsjax.fit._sensitivity import (
    PARAM_NAMES,
    choose_mode,
    sensitivity,
)

_KW = dict(x=0.2, cells=5, realizations=2, energies=[0.2, 0.5, 1.0])
_TEMPERATURES = [0.5, 3.0]


@pytest.fixture(scope="module")
def forward():
    """One forward-mode run with every kind of output (T_U, C_o, P_S and kappa(T)),
    shared by the tests below (one compilation)."""
    import tlsjax as tj

    material = tj.Material(rho=2200.0, v_l=5800.0, v_t=3800.0)
    return sensitivity(mode="forward", fd_checks=12, material=material,
                       temperatures=_TEMPERATURES, **_KW)


def test_auto_mode_follows_shape():
    assert choose_mode(8, 5) == "forward"
    assert choose_mode(3, 5) == "reverse"
    assert choose_mode(5, 5) == "forward"


def test_jacobian_agrees_with_finite_differences(forward):
    assert jax.config.jax_enable_x64
    assert len(forward.fd_checks) == 12
    assert {c["param"] for c in forward.fd_checks} == set(PARAM_NAMES)
    nonzero = [c for c in forward.fd_checks if c["d_log_y_d_p_ad"] != 0.0]
    assert len(nonzero) >= 5
    assert [c for c in forward.fd_checks if c["output"].startswith("kappa")]
    for c in forward.fd_checks:
        assert c["abs_error"] <= 1e-5 * max(abs(c["d_log_y_d_p_fd"]), 1.0), c


def test_forward_and_reverse_agree(forward):
    rev = sensitivity(mode="reverse", fd_checks=0, **_KW)  # without kappa(T): 6 outputs
    assert rev.mode == "reverse" and forward.mode == "forward"
    assert rev.output_names == forward.output_names[:6]
    # Each mode is its own program of one realization (jacfwd, jacrev). Compiled at the
    # suite's XLA optimization level 0 the two differ by up to 1.5e-6 relative (measured on
    # one realization's d ln P_S / d a~, with XLA's default emitters too; 1e-14 at XLA's
    # default level, where a standalone run of this comparison gives 9e-15), and by 2.1e-7
    # absolute on d ln P_S(E = 1) / d a~ = -0.0208 (1.0e-5 relative) where XLA runs on one
    # thread (a suite worker on 2 cores, conftest.py): compared within 1e-5 relative and
    # 1e-6 absolute (the J_o column is ~1/J_o = 2e-3, so to 5e-4 of its size).
    np.testing.assert_allclose(rev.log_jacobian, forward.log_jacobian[:6], rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(rev.hard_values, forward.hard_values[:6], rtol=1e-12)


def test_hard_theta_values_beside_soft(forward):
    """Every output is also reported with the paper's hard Theta, close to the soft value
    at the default width (within 3% on the default sample, test_numeric_guards.py; here,
    ~100 impurities, the hard 5 g quantile itself moves in steps of ~3%)."""
    from tlsjax.fit._sensitivity import DEFAULT_SENS_WIDTH, elasticity_table

    assert forward.params[4] == DEFAULT_SENS_WIDTH
    v = dict(zip(forward.output_names, forward.values))
    h = dict(zip(forward.output_names, forward.hard_values))
    assert h["T_U/<E_tau>"] == pytest.approx(v["T_U/<E_tau>"], rel=0.06)
    assert h["T_U[K]"] == pytest.approx(v["T_U[K]"], rel=0.06)
    assert h["C_o"] == pytest.approx(v["C_o"], rel=1e-12)
    for name in forward.output_names[3:]:
        assert h[name] > 0 and np.isfinite(h[name]), name
    assert "hard Theta" in elasticity_table(forward)


def test_exact_elasticities(forward):
    names = forward.output_names
    e = dict(zip(names, forward.elasticity))
    # C_o = kappa_log g: elasticity 1 in g, 0 elsewhere.
    np.testing.assert_allclose(e["C_o"], [1.0, 0.0, 0.0, 0.0, 0.0], atol=1e-12)
    # T_U[K] = (T_U / <E_tau>) (<E_tau> / g J_o) g J_o: elasticity exactly 1 in J_o.
    np.testing.assert_allclose(e["T_U[K]"][1], 1.0, rtol=1e-12)
    # P_S(E) with E in units of <E_tau> depends on neither g nor J_o.
    for name in names[3:6]:
        assert name.startswith("P_S")
        np.testing.assert_array_equal(e[name][:2], 0.0)
    np.testing.assert_allclose(forward.jacobian, forward.log_jacobian * forward.values[:, None])


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(params=[0.02, 500.0, 3.0]), "params"),
     (dict(params=[0.3, 500.0, 3.0, 0.3, 0.05]), "g"),
     (dict(params=[0.02, 500.0, 3.0, 0.3, 0.0]), "w"),
     (dict(params=[0.02, -1.0, 3.0, 0.3, 0.05]), "J0"),
     (dict(mode="sideways"), "mode"),
     (dict(realizations=0), "realizations"),
     (dict(energies=[1.0, 0.5]), "energies")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sensitivity(**kwargs)


def test_cli_writes_table_figure_and_checks(tmp_path, capsys):
    """Also the case h_rel = 0, where the elasticity w.r.t. h_rel is undefined. The sample,
    energies and mode of test_forward_and_reverse_agree: its compiled programs serve."""
    import json

    from tlsjax.cli import main

    out = tmp_path / "sens"
    rc = main(["sensitivity", "--cells", "5", "--realizations", "2", "--energies", "0.2,0.5,1",
               "--h-rel", "0", "--mode", "reverse", "--fd-checks", "5", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Elasticities" in text and "max rel. error" in text
    assert "d ln y / d p shown" in text
    assert "hard Theta" in text
    assert (out / "elasticities.csv").read_text().startswith("output,value,value_hard_theta,")
    for name in ("sensitivity.json", "elasticities.csv", "jacobian.csv", "elasticities.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "sensitivity.json").read_text())
    elasticity = np.array(saved["elasticity"], dtype=float)  # null (NaN) where p = 0
    assert np.all(np.isnan(elasticity[:, 3]))
    assert np.all(np.isfinite(elasticity[:, [0, 1, 2, 4]]))
    assert np.all(np.isfinite(np.array(saved["log_jacobian"], dtype=float)))
    assert saved["fd_max_rel_error"] < 1e-4


def test_cli_refuses_undefined_logarithms(capsys, tmp_path):
    """At h_rel = 10 the S spins are not gapped (T_U = 0): ln T_U and its derivatives are
    undefined, and the command says so (one line, exit 2) instead of printing -inf or nan.
    The shapes of test_forward_and_reverse_agree: its compiled program serves."""
    from tlsjax.cli import main

    rc = main(["sensitivity", "--cells", "5", "--realizations", "2", "--energies", "0.2,0.5,1",
               "--h-rel", "10", "--fd-checks", "0", "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "error" in err, err
    assert "T_U[K], T_U/<E_tau>" in err and "no gap" in err, err
    assert not (tmp_path / "s" / "sensitivity.json").exists()


def test_cli_refuses_foreign_file(tmp_path):
    from tlsjax.cli import main

    out = tmp_path / "sens"
    out.mkdir()
    (out / "sensitivity.json").write_text("{}")
    assert main(["sensitivity", "--cells", "5", "--fd-checks", "0", "--out", str(out)]) == 2
    assert (out / "sensitivity.json").read_text() == "{}"


def test_kappa_entries(forward):
    import tlsjax as tj

    assert forward.output_names[-2:] == ["kappa(T=0.5K)", "kappa(T=3K)"]
    assert np.all(np.isfinite(forward.log_jacobian))
    with pytest.raises(ValueError, match="together"):
        sensitivity(material=tj.Material(rho=2200.0, v_l=5800.0, v_t=3800.0))
