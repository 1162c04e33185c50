import json
import re

import jax
import numpy as np
import pytest

from tlsjax.cli import main


def test_es_json_single_case(tmp_path, capsys):
    out = tmp_path / "es.json"
    assert main(["es", "--x", "0.2", "--cells", "6", "--atilde", "3", "--realizations", "3",
                 "--energies", "0.05,0.1,0.5,1,3", "--json", str(out), "--no-progress"]) == 0
    d = json.loads(out.read_text())
    assert d["n_sites_mean"] == pytest.approx(0.2 * 4 * 216, rel=0.2)
    assert d["P_S"]["energies"] == [0.05, 0.1, 0.5, 1, 3]
    mean, err = np.array(d["P_S"]["mean"]), np.array(d["P_S"]["stderr"])
    assert mean.shape == (5,) and err.shape == (5,)
    assert np.all(np.diff(mean) >= 0) and mean[-1] == pytest.approx(1.0)
    assert 0 < d["T_U_over_E_tau"]["mean"] < 1 and d["T_U_over_E_tau"]["stderr"] > 0
    assert d["realizations"] == 3 and d["atilde"] == 3.0
    assert "T_U/<E_tau>" in capsys.readouterr().out
    # no silent overwrite
    assert main(["es", "--cells", "4", "--realizations", "1", "--json", str(out),
                 "--no-progress"]) == 2
    assert "exists" in capsys.readouterr().err


def test_es_scan_lists_and_soft(tmp_path):
    out = tmp_path / "scan.json"
    assert main(["es", "--cells", "5", "--atilde", "0,3", "--h-tau", "0,1", "--realizations",
                 "2", "--width", "0.05", "--energies", "0.1,1", "--json", str(out),
                 "--no-progress"]) == 0
    d = json.loads(out.read_text())
    assert np.array(d["P_S"]["mean"]).shape == (2, 2, 2)
    assert np.array(d["T_U_over_E_tau"]["mean"]).shape == (2, 2)
    assert d["width"] == 0.05
    # the hard Theta (the paper's algorithm) beside the soft one, same realizations
    hard = np.array(d["T_U_over_E_tau_hard"]["mean"])
    assert hard.shape == (2, 2) and np.all(hard > 0)
    assert np.all(hard < np.array(d["T_U_over_E_tau"]["mean"]))  # w = 0.05 moves T_U up


@pytest.mark.parametrize("args, match", [
    (["--x", "0"], r"argument --x: must be a finite number in \(0, 1\]"),
    (["--x", "1.5"], r"argument --x: "),
    (["--cells", "1"], r"argument --cells: must be an integer in \[2, "),
    (["--atilde", "-1"], r"argument --atilde: item '-1': must be a finite number in \[0, 1000\]"),
    (["--h-tau", "-0.3"], r"argument --h-tau: item '-0.3'"),
    (["--width", "-0.1"], r"argument --width: must be a finite number in \[0.0001, 1\], or 0"),
    (["--g", "0.3"], r"argument --g: must be a finite number in \(0, 0.2\)"),
    (["--energies", "1,0.5"], r"energies=...\)` must be strictly increasing"),
    (["--energies", "nan"], r"argument --energies: item 'nan'"),
    (["--realizations", "0"], r"argument --realizations: must be an integer in \[1, "),
])
def test_es_bad_input(args, match, capsys):
    code = main(["es", "--cells", "3", "--realizations", "1", "--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert "error" in err
    assert re.search(match, err), err


def test_es_bad_list_syntax(capsys):
    assert main(["es", "--atilde", "1,abc"]) == 2
    assert "argument --atilde: item 'abc': must be a finite number" in capsys.readouterr().err


@pytest.mark.slow
def test_reproduce_quick_end_to_end(tmp_path, capsys, monkeypatch):
    """The main job end to end, in-process, on samples smaller than --quick's (the
    property does not need their size: every file, the comparison with the paper, and
    that a second run replaces its own files but never one the user wrote)."""
    import tlsjax.cli._cli_es as cli_es

    monkeypatch.setattr(cli_es, "QUICK_SAMPLES", ((0.2, 5), (0.5, 4)))
    monkeypatch.setattr(cli_es, "QUICK_REALIZATIONS", 2)
    # the Monte Carlo part on the shapes and schedule of tests/test_mc*.py (compiled once)
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


def test_es_soft_in_float32(tmp_path):
    # the CLI runs in JAX's default float32: the soft T_U root must converge there too
    out = tmp_path / "soft.json"
    with jax.enable_x64(False):
        code = main(["es", "--cells", "10", "--realizations", "2", "--width", "0.05",
                     "--energies", "0.1,0.3,1", "--json", str(out), "--no-progress"])
    assert code == 0
    d = json.loads(out.read_text())
    assert 0.1 < d["T_U_over_E_tau"]["mean"] < 0.4
