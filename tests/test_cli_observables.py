import json
import math

import pytest

from tlsjax.cli import main
from tlsjax.observables._material import HBAR, K_B

MAT = ["--rho", "2200", "--vl", "5800", "--vt", "3800"]
# the sample of tests/test_dos.py (same key and settings: compiled functions are shared)
TINY = ["--cells", "6", "--realizations", "2"]


def test_kappa_constant_c_json(tmp_path, capsys):
    out = tmp_path / "k.json"
    assert main(["kappa", "--T", "0.1,1", *MAT, "--constant-C", "3e-4", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["T"] == [0.1, 1.0]
    for T, k in zip(d["T"], d["kappa"]):
        ref = K_B**3 * T**2 / (6 * math.pi * HBAR**2) * 3 / (3800.0 * 3e-4) * (
            1 / 3 * (3800.0 / 5800.0) + 2 / 3)
        assert k == pytest.approx(ref, rel=1e-6)
    assert "kappa" in capsys.readouterr().out


def test_qinv_stau_json(tmp_path):
    out = tmp_path / "q.json"
    assert main(["qinv", "--T", "0.1,3", *MAT, *TINY, "--g", "0.03", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["T"] == [0.1, 3.0] and len(d["Qinv"]) == 2
    assert d["Qinv"][1] > d["Qinv"][0] > 0
    assert d["Qinv"][0] == pytest.approx(d["Qinv_res"][0] + d["Qinv_rel"][0], rel=1e-6)


@pytest.mark.parametrize("argv,name", [
    (["kappa", "--T", "-1", *MAT, "--constant-C", "3e-4"], "--T"),
    (["kappa", "--T", "1", "--rho", "-2200", "--vl", "5800", "--vt", "3800",
      "--constant-C", "3e-4"], "--rho"),
    (["kappa", "--T", "1", "--rho", "2200", "--vl", "nan", "--vt", "3800",
      "--constant-C", "3e-4"], "--vl"),
    (["qinv", "--T", "1", *MAT, "--constant-C", "3e-4", "--freq", "0"], "--freq"),
    (["qinv", "--T", "1", *MAT, "--constant-C", "-1"], "--constant-C"),
])
def test_bad_input(argv, name, capsys):
    assert main(argv) == 2
    assert f"argument {name}" in capsys.readouterr().err  # checked while parsing


def test_json_not_overwritten(tmp_path, capsys):
    out = tmp_path / "mine.json"
    out.write_text("user data")
    argv = ["kappa", "--T", "1", *MAT, "--constant-C", "3e-4", "--json", str(out)]
    assert main(argv) == 2
    assert out.read_text() == "user data"
    assert main([*argv, "--overwrite"]) == 0


def test_observables_writes_figure_and_numbers(tmp_path):
    d = tmp_path / "obs"
    assert main(["observables", "--out", str(d), *MAT, *TINY, "--points", "4",
                 "--T-min", "0.05", "--T-max", "5"]) == 0
    for name in ("observables.png", "observables_T.csv", "c_of_e.csv", "observables.json"):
        assert (d / name).stat().st_size > 0
    s = json.loads((d / "observables.json").read_text())["summary"]
    assert 0 < s["T_U_full_K"] < s["T_U_shortcut_K"]


def test_observables_says_no_gap(tmp_path, capsys):
    """At h_rel = 10 nothing is gapped (T_U = 0): said, not printed as a number, and the
    flatness below T_U is absent. The grid of the test above: its compiled programs serve."""
    d = tmp_path / "o"
    assert main(["observables", "--out", str(d), *MAT, *TINY, "--h-rel", "10", "--points", "4",
                 "--T-min", "0.05", "--T-max", "5"]) == 0
    assert "no gap" in capsys.readouterr().out
    s = json.loads((d / "observables.json").read_text())["summary"]
    assert s["T_U_full_K"] == 0.0 and s["kappa_over_T2_flatness_below_T_U_full"] is None
