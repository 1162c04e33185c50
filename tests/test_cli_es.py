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


def test_es_soft_in_float32(tmp_path):
    # the CLI runs in JAX's default float32: the soft T_U root must converge there too
    out = tmp_path / "soft.json"
    with jax.enable_x64(False):
        code = main(["es", "--cells", "10", "--realizations", "2", "--width", "0.05",
                     "--energies", "0.1,0.3,1", "--json", str(out), "--no-progress"])
    assert code == 0
    d = json.loads(out.read_text())
    assert 0.1 < d["T_U_over_E_tau"]["mean"] < 0.4
