"""`tlsjax fit kappa` as a user meets it: the automatic model choice, output locations
checked before computing, logs that stay short, Ctrl-C that keeps the fit, list options."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tlsjax.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "data" / "example_kappa.csv"
TINY = ["--cells", "4", "--realizations", "1"]


def test_default_chooses_a_model_with_short_log(tmp_path, capsys):
    """Default: candidates fitted, table printed, JSON with the selection; progress
    written to a non-terminal stderr stays a handful of lines."""
    out, png = tmp_path / "fit.json", tmp_path / "fit.png"
    assert main(["fit", "kappa", str(EXAMPLE), *TINY, "--json", str(out), "--plot",
                 str(png)]) == 0
    cap = capsys.readouterr()
    assert "model selection (AICC" in cap.out and "*" in cap.out
    d = json.loads(out.read_text())
    sel = d["model_selection"]
    assert len(sel["candidates"]) == 8 and sel["chosen"] == d["model_label"]
    assert d["T_U_K"] > 0 if d["model"] == "stau" else "Cv" in d["free"]
    assert png.stat().st_size > 10_000
    lines = [ln for ln in cap.err.replace("\r", "\n").split("\n") if ln.strip()]
    assert 0 < len(lines) < 20, lines


@pytest.mark.parametrize("make,opts,match", [
    (lambda d: d / "fit.xyz", "--plot", "unsupported file type '.xyz'"),
    (lambda d: d / "fit.txt", "--json", "unsupported file type '.txt'"),
    (lambda d: d, "--json", "is a folder"),
])
def test_output_locations_checked_before_computing(tmp_path, capsys, make, opts, match):
    path = make(tmp_path)
    t0 = time.perf_counter()
    assert main(["fit", "kappa", str(EXAMPLE), *TINY, opts, str(path), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1
    assert time.perf_counter() - t0 < 5.0  # refused before the ES reduction and the fit
    assert list(tmp_path.iterdir()) == ([] if path != tmp_path else [])


def test_read_only_folder_refused(readonly_dir, capsys):
    assert main(["fit", "kappa", str(EXAMPLE), *TINY, "--json", str(readonly_dir / "fit.json")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_json_written_when_the_figure_fails(tmp_path, capsys, monkeypatch):
    import tlsjax.plot._plot_fit as plot_fit

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plot_fit, "plot_kappa_fit", broken)
    out = tmp_path / "fit.json"
    assert main(["fit", "kappa", str(EXAMPLE), "--free", "g", "J0", *TINY, "--no-profile",
                 "--dos-samples", "0", "--no-progress",
                 "--json", str(out), "--plot", str(tmp_path / "f.png")]) == 1
    assert "could not be written (RuntimeError: disk full)" in capsys.readouterr().err
    d = json.loads(out.read_text())
    assert d["free"] == ["g", "J0", "kv"] and not d["interrupted"]


def test_free_rayleigh_from_the_command_line(tmp_path):
    out = tmp_path / "fit.json"
    assert main(["fit", "kappa", str(EXAMPLE), "--free", "g,J0,rayleigh", *TINY,
                 "--no-profile", "--dos-samples", "0", "--no-progress", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert "rayleigh_v2" in d["free"] and d["params"]["rayleigh_v2"] > 0
    assert d["A_R_v_eff2_s2_m"] > 0


def test_as_many_points_as_free_parameters_refused(tmp_path, capsys):
    three = tmp_path / "three.csv"
    three.write_text("T(K),k(W/m/K)\n0.1,1e-4\n0.2,4e-4\n0.4,1.6e-3\n")
    assert main(["fit", "kappa", str(three), "--free", "g,J0", *TINY]) == 2
    assert ("3 distinct temperature(s) (3 point(s)) for 3 free parameter(s); at least 5"
            in capsys.readouterr().err)


def test_unknown_free_name_is_one_line(capsys):
    assert main(["fit", "kappa", str(EXAMPLE), "--free", "g", "data.csv", *TINY]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter data.csv (a file name?" in err and err.count("\n") == 1


@pytest.mark.parametrize("argv,dest,expected", [
    (["es", "--atilde", "1.5", "3"], "atilde", [1.5, 3.0]),
    (["es", "--atilde", "1.5,3"], "atilde", [1.5, 3.0]),
    (["es", "--h-tau", "0", "0.3,1"], "h_tau", [0.0, 0.3, 1.0]),
    (["es", "--energies", "0.1", "1", "10"], "energies", [0.1, 1.0, 10.0]),
    (["kappa", "--T", "0.1", "1", "10", "--rho", "1", "--vl", "2", "--vt", "1"], "T",
     [0.1, 1.0, 10.0]),
    (["qinv", "--T", "0.1,1,10", "--rho", "1", "--vl", "2", "--vt", "1"], "T",
     [0.1, 1.0, 10.0]),
    (["sensitivity", "--temperatures", "0.1", "1"], "temperatures", [0.1, 1.0]),
    (["sensitivity", "--energies", "0.1,0.2", "0.3"], "energies", [0.1, 0.2, 0.3]),
    (["fit", "kappa", "f.csv", "--free", "g", "J0,kv"], "free", ["g", "J0", "kv"]),
    (["fit", "targets", "--free", "g,J0", "atilde"], "free", ["g", "J0", "atilde"]),
])
def test_list_options_take_commas_or_spaces(argv, dest, expected):
    assert getattr(build_parser().parse_args(argv), dest) == pytest.approx(expected) \
        if dest != "free" else getattr(build_parser().parse_args(argv), dest) == expected


def test_list_option_gives_the_same_result_both_ways(capsys):
    base = ["kappa", "--rho", "1200", "--vl", "2500", "--vt", "1200", "--constant-C", "3e-4"]
    assert main([*base, "--T", "0.1,1,10"]) == 0
    commas = capsys.readouterr().out
    assert main([*base, "--T", "0.1", "1", "10"]) == 0
    assert capsys.readouterr().out == commas


@pytest.mark.slow
def test_ctrl_c_in_the_post_fit_stage_keeps_the_fit(tmp_path):
    """SIGINT once the post-fit stage has begun: the best point is written with
    "interrupted": true, the command says so and exits 130."""
    out = tmp_path / "fit.json"
    cmd = [sys.executable, "-m", "tlsjax.cli", "fit", "kappa", str(EXAMPLE), "--model", "stau",
           "--boundary", "absent", "--rayleigh", "absent", *TINY, "--no-progress",
           "--json", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "post-fit stage" in line:
            proc.send_signal(signal.SIGINT)
            break
    stdout, rest = proc.communicate(timeout=300)
    err = "".join(seen) + rest
    assert any("post-fit stage" in s for s in seen), err
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    d = json.loads(out.read_text())
    assert d["interrupted"] is True and d["meta"]["post_fit"] == "interrupted"
    assert d["params"]["g"] > 0 and "interrupted during the post-fit stage" in d["notes"][0]


def test_fit_targets_unreachable_T_U_is_a_result_at_the_bounds(capsys):
    """`fit targets --TU 1e6`: no "root is not contained" error, a fit at the parameter
    bounds that says the target is not reached."""
    assert main(["fit", "targets", "--TU", "1e6", "--free", "g,J0", *TINY, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "the target T_U = 1e+06 is not reached within the parameter bounds" in out
    assert "at its bound" in out
