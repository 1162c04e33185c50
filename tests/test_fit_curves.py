"""Fits of Q^-1(T) and Delta v/v(T) on their own, and the DOS-sample part of the errors.

Synthetic curves come from the observables themselves (`qinv`, `sound_velocity_shift`)
at known parameters, with per-point noise of known sigma; the fits must recover the
truth within their stated errors. The DOS-sample test refits on the small sample of
test_fit.py and compares the reported sample part with fresh fits on the same samples.
"""

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import pytest

import tlsjax as tj
from tlsjax._validate import enable_x64
from tlsjax.cli._main import main
from tlsjax.fit._curve_models import dvv_basis
from tlsjax.fit._data import Curve, parse_curve
from tlsjax.fit._dos_sample_error import dos_sample_error, sample_keys, widen_interval
from tlsjax.fit._fit_curves import fit_curves
from tlsjax.fit._fit_stau import fit_kappa
from tlsjax.model._lattice import Sample
from tlsjax.observables._material import _A_CONST
from tlsjax.plot._scales import robust_diverging_norm

T = np.geomspace(0.05, 5.0, 8)
C_TRUE, A_TRUE, FREQ = 3e-4, 3e8, 1e3
SIG_Q, SIG_D = 0.01, 2e-6


def _truth():
    mat = tj.Material(3.0 * _A_CONST / A_TRUE, 1.0, 1.0)  # A k_B^3 = A_TRUE
    om = jnp.asarray([2.0 * math.pi * FREQ])
    q = np.asarray(tj.qinv(tj.ConstantC(C_TRUE), mat, T, om))[:, 0]
    d = np.asarray(tj.sound_velocity_shift(tj.ConstantC(C_TRUE), mat, T, om, T[0]))[:, 0]
    return q, d


def _check_recovered(res, name, truth):
    err = res.stderr[name]
    assert math.isfinite(err) and err > 0
    assert abs(res.params[name] - truth) < 4.0 * err, (name, res.params[name], err, truth)


def _csv(path, header, rows):
    path.write_text(header + "\n" + "".join(",".join(repr(float(v)) for v in r) + "\n" for r in rows))
    return str(path)


def test_qinv_only_fit_recovers_truth(tmp_path, capsys):
    """`tlsjax fit qinv`: the file's uncertainty column, --bound by physical name, --plot
    (PNG + CSV); the truth is recovered within the stated errors."""
    q, _ = _truth()
    rng = np.random.default_rng(1)
    y = q * np.exp(SIG_Q * rng.normal(size=T.size))
    f = _csv(tmp_path / "qdata.csv", "T(K),Qinv,dQinv", zip(T, y, SIG_Q * y))
    out, png = tmp_path / "q.json", tmp_path / "q.png"
    assert main(["fit", "qinv", f, "--freq", str(FREQ), "--model", "stm", "--dos-samples", "0",
                 "--no-profile", "--no-progress", "--bound", "C=1e-5:1e-2", "--json", str(out),
                 "--plot", str(png)]) == 0
    res = tj.FitResult.from_json(out)
    assert res.converged and res.free == ["C", "A_rel"]
    assert res.meta["absolute_sigma"] and res.meta["bounds"]["C"] == [1e-5, 1e-2]
    _check_recovered(res, "C", C_TRUE)
    _check_recovered(res, "A_rel", A_TRUE)
    assert res.derived["rms_residual_qinv"] < 3 * SIG_Q
    assert "without a material" in res.notes[1]
    assert png.stat().st_size > 10_000
    table = (tmp_path / "q.csv").read_text().splitlines()
    assert table[0] == "kind,curve,T_K,value,sigma" and len(table) == 1 + T.size + 32
    # --fix by physical name (the same compiled program: what is free is an array)
    assert main(["fit", "qinv", f, "--freq", str(FREQ), "--model", "stm", "--dos-samples", "0",
                 "--no-profile", "--no-progress", "--fix", f"A k_B^3={A_TRUE}", "--json",
                 str(out), "--overwrite"]) == 0
    fixed = tj.FitResult.from_json(out)
    assert fixed.free == ["C"] and fixed.params["A_rel"] == A_TRUE
    _check_recovered(fixed, "C", C_TRUE)
    printed = capsys.readouterr().out
    assert "A k_B^3 = 3e+08 (fixed)" in printed
    assert "rms ln residual (Q^-1)" in printed and "rms ln residual (kappa)" not in printed
    # a name no candidate has: refused before anything is computed
    assert main(["fit", "qinv", f, "--freq", "1e3", "--fix", "l_b=1", "--json",
                 str(tmp_path / "x.json")]) == 2
    assert "unknown parameter 'l_b'; allowed: C, A k_B^3" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
    # a value far outside the parameter's range: refused too (1e300 once ran, exit 0)
    assert main(["fit", "qinv", f, "--freq", "1e3", "--fix", "C=1e300", "--json",
                 str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "parameter C: value 1e+300 is outside its allowed range" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "x.json").exists()


def test_dvv_only_fit_recovers_truth(tmp_path):
    """`tlsjax fit dvv` (A k_B^3 free within a --bound given by its physical name)."""
    _, d = _truth()
    rng = np.random.default_rng(2)
    offset = 3e-5  # a measured shift is known up to its reference: the fit removes it
    f = _csv(tmp_path / "d.csv", "T(K),dv/v", zip(T, d + offset + SIG_D * rng.normal(size=T.size)))
    out = tmp_path / "d.json"
    assert main(["fit", "dvv", f, "--freq", str(FREQ), "--model", "stm", "--sigma", str(SIG_D),
                 "--dos-samples", "0", "--no-profile", "--no-progress",
                 "--bound", "A k_B^3=1e6:1e12", "--json", str(out)]) == 0
    res = tj.FitResult.from_json(out)
    assert res.converged and res.free == ["C", "A_rel"]
    assert res.meta["bounds"]["A_rel"] == [1e6, 1e12]
    assert res.n_data == T.size - 1  # the offset is minimized out
    _check_recovered(res, "C", C_TRUE)
    assert abs(res.derived["dvv_offset"] - offset) < 5 * SIG_D
    # float64 takes --rho, --vl, --vt as given, not their float32 rounding (as in `tlsjax`
    # run as a program, where the global setting is float32)
    with enable_x64(False):
        assert main(["fit", "dvv", f, "--freq", str(FREQ), "--model", "stm", "--sigma",
                     str(SIG_D), "--dos-samples", "0", "--no-profile", "--no-progress",
                     "--rho", "1234.5678", "--vl", "3456.789", "--vt", "1987.6543",
                     "--json", str(out), "--overwrite"]) == 0
    material = tj.FitResult.from_json(out).meta["material"]
    assert (material["rho"], material["v_l"], material["v_t"]) == (1234.5678, 3456.789, 1987.6543)


def test_dos_sample_part_matches_refit_spread():
    """The sample part is the spread of the best fits over independent ES samples: the
    same K keys fitted from scratch give the same values, hence the same spread."""
    sample, r = Sample(0.2, 6), 2
    tg = np.geomspace(0.05, 5.0, 20)
    table_curve = Curve(tg, 1e-4 * tg**2 / (1.0 + (tg / 1.5) ** 1.5), np.ones(tg.size), "kappa")
    kw = dict(model="stau", sample=sample, realizations=r, progress=False, profile=False)
    res = fit_kappa(table_curve, **kw)
    keys = sample_keys(3, seed=7)
    err = dos_sample_error(res, keys=keys, progress=False)
    fresh = [fit_kappa(table_curve, key=k, **kw).derived["T_U_K"] for k in keys]
    measured = float(np.std(fresh, ddof=1))
    assert measured > 0
    # fresh fits start from the default point, the refits from the optimum: along the
    # flat (g, J_o) direction they may settle a little apart, not by a factor
    assert err["sample"]["T_U_K"] == pytest.approx(measured, rel=0.25)
    assert err["values"]["T_U_K"] == pytest.approx(fresh, rel=0.15)
    assert set(err["stat"]) == set(err["sample"]) == set(err["total"])
    # the constant-C model has no ES sample: zero sample part, no refit
    stm = dataclasses.replace(res, meta={**res.meta, "model": "stm"})
    zero = dos_sample_error(stm, progress=False)
    assert zero["samples"] == 0 and all(v == 0.0 for v in zero["sample"].values())


def test_widened_interval():
    lo, hi = widen_interval(5.0, 4.0, 6.0, 0.1, 0.95)
    z = 1.6448536269514722
    assert math.log(5.0 / lo) == pytest.approx(math.hypot(math.log(5 / 4), z * 0.1))
    assert math.log(hi / 5.0) == pytest.approx(math.hypot(math.log(6 / 5), z * 0.1))
    assert widen_interval(5.0, None, 6.0, 0.1, 0.95)[0] is None


def test_dvv_basis_and_signed_loading():
    s = np.array([1.0, 2.0, 0.5, 3.0])
    b = dvv_basis(s)
    assert b.shape == (4, 3)
    np.testing.assert_allclose(b.T @ b, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(b.T @ s, 0.0, atol=1e-12)
    c = parse_curve("T(K),dv/v (ppm)\n0.1,0\n1,-12.5\n", "dvv")
    np.testing.assert_allclose(c.y, [0.0, -12.5e-6])
    with pytest.raises(ValueError, match="non-positive internal friction"):
        parse_curve("T(K),Qinv\n0.1,-1e-4\n", "qinv")


@pytest.mark.parametrize("kwargs, match", [
    (dict(), "at least one of kappa, qinv, dvv"),
    (dict(qinv="x.csv"), r"freq_qinv=\.\.\.\)` must be given"),
    (dict(qinv="x.csv", freq_qinv=-1.0), "freq_qinv"),
    (dict(qinv="x.csv", freq_qinv=1.0, criterion="xic"), "criterion"),
    (dict(qinv="x.csv", freq_qinv=1.0, dos_samples=1), "dos_samples"),
])
def test_fit_curves_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_curves(**kwargs)


def test_cli_curves_checks_before_computing(tmp_path, capsys):
    f = tmp_path / "q.csv"
    f.write_text("T(K),Qinv\n0.1,1e-4\n1,2e-4\n")
    assert main(["fit", "qinv", str(f), "--freq", "1e3", "--dos-samples", "1"]) == 2
    assert "--dos-samples must be 0 or >= 2" in capsys.readouterr().err
    assert main(["fit", "dvv", str(f), "--freq", "1e3", "--rho", "1000"]) == 2
    assert "give all of --rho, --vl, --vt" in capsys.readouterr().err
    assert main(["fit", "qinv", str(f)]) == 2  # --freq is required
    assert "--freq" in capsys.readouterr().err


def test_robust_colour_scale_keeps_small_cells_visible():
    e = np.full((9, 3), 0.5)
    e[0, 0] = 27.0
    norm = robust_diverging_norm(e)
    # linear scale: 0.5 would sit at 0.509 of the range (white); here well away from it
    assert norm(0.5) > 0.65 and norm(27.0) == pytest.approx(1.0)
    assert norm(-0.5) < 0.35

