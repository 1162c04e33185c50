import json
from pathlib import Path

from tlsjax._validate import enable_x64
from tlsjax.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "example_kappa.csv"
TINY = ["--cells", "4", "--realizations", "1", "--no-progress"]


def test_fit_kappa_json_and_plot(tmp_path, capsys):
    out, png = tmp_path / "fit.json", tmp_path / "fit.png"
    with enable_x64(False):  # as in `tlsjax` run as a program (the suite runs in float64)
        assert main(["fit", "kappa", str(EXAMPLE), "--free", "g,J0", "--g", "0.0123456789",
                     *TINY, "--no-profile", "--dos-samples", "0", "--json", str(out), "--plot",
                     str(png)]) == 0
    d = json.loads(out.read_text())
    # a float64 fit starts from the values as given, not from their float32 rounding
    assert d["meta"]["precision_bits"] == 64 and d["meta"]["init"]["g"] == 0.0123456789
    for key in ("params", "stderr", "C_o", "T_U_K", "rms_log_residual", "converged"):
        assert key in d
    assert d["C_o"] is None and d["C_o_v_eff_m_per_s"] > 0  # no velocities given
    assert set(d["free"]) == {"g", "J0", "kv"}
    assert png.stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "kappa_log v_eff" in out and "[[Variables]]" in out  # the report, physical names


def test_fit_targets(tmp_path):
    out = tmp_path / "t.json"
    with enable_x64(False):  # as in `tlsjax` run as a program
        assert main(["fit", "targets", "--C0", "1e-3", "--TU", "3", "--free", "g,J0", *TINY,
                     "--J0", "512.3456789", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["meta"]["precision_bits"] == 64 and d["meta"]["init"]["J0"] == 512.3456789
    assert abs(d["params"]["g"] - 0.01) < 1e-6 and abs(d["T_U_K"] - 3.0) < 1e-4


def test_fit_errors(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("T(K),k(W/m/K)\n0.1,abc\n")
    assert main(["fit", "kappa", str(bad), *TINY]) == 2
    assert "bad.csv, line 2: non-numeric cell 'abc'" in capsys.readouterr().err
    assert main(["fit", "kappa", str(EXAMPLE), "--rho", "1000", *TINY]) == 2
    assert "--vl" in capsys.readouterr().err
    assert main(["fit", "kappa", str(EXAMPLE), "--free", "g,foo", *TINY]) == 2
    assert "foo" in capsys.readouterr().err
    mine = tmp_path / "mine.json"
    mine.write_text("user")
    assert main(["fit", "kappa", str(EXAMPLE), *TINY, "--json", str(mine)]) == 2
    assert mine.read_text() == "user"


def test_fit_json_of_the_same_command_may_be_replaced(tmp_path):
    """`fit targets`/`fit kappa --json` run again with the same settings replace their own
    JSON (as es/mc/kappa do); other settings are still refused (no fit is run here)."""
    import pytest

    from tlsjax._io import write_json
    from tlsjax.cli._args import command_run_id
    from tlsjax.cli._cli_fit import _check_outputs
    from tlsjax.cli._main import build_parser

    path = str(tmp_path / "r.json")
    parser = build_parser()
    for argv in (["fit", "targets", "--cells", "5"], ["fit", "kappa", "k.csv"]):
        args = parser.parse_args([*argv, "--json", path])
        write_json(path, {"result": 1}, overwrite=True, run=command_run_id(args))
        _check_outputs(args)  # the same command again: allowed
        other = parser.parse_args([*argv, "--seed", "7", "--json", path])
        with pytest.raises(OSError, match="another"):
            _check_outputs(other)


def test_interrupted_fit_keeps_the_complete_json_of_the_same_command(tmp_path, capsys):
    from types import SimpleNamespace

    from tlsjax._io import write_json
    from tlsjax.cli._args import command_run_id
    from tlsjax.cli._cli_fit import _write_json
    from tlsjax.cli._main import build_parser

    path = tmp_path / "r.json"
    args = build_parser().parse_args(["fit", "targets", "--json", str(path)])
    write_json(path, {"interrupted": False, "value": 1}, run=command_run_id(args))
    written = []
    res = SimpleNamespace(interrupted=True, to_json=lambda *a, **k: written.append(a))
    assert _write_json(args, res) is False and not written
    assert json.loads(path.read_text())["value"] == 1
    assert f"kept {path}" in capsys.readouterr().out
    res.interrupted = False  # a finished rerun replaces it
    assert _write_json(args, res) is True and written


def test_fit_figure_limits_follow_data_and_fit_and_name_a_curve_beyond_them():
    """The kappa and kappa/T^2 panels are scaled to the data and the fit; a curve wholly
    beyond (the pure T^2 law of a fit with a tiny C(E -> 0)) is named, not allowed to
    squash the panel."""
    import numpy as np

    from tlsjax.plot._plot_fit import _limits, _where

    data, fit = np.array([2e-3, 3e-3]), np.array([1.8e-3, 4.5e-3])
    lo, hi = _limits(data, fit, log=False)
    assert lo == 0.0 and hi == 4.5e-3 * 1.25
    assert _limits(data, fit, log=True) == (1.8e-3 / 3.0, 4.5e-3 * 3.0)
    assert _where(np.full(5, 8.2), (lo, hi)) == " (above the plot)"
    assert _where(np.full(5, -1.0), (lo, hi)) == " (below the plot)"
    assert _where(np.array([1e-3, 8.2]), (lo, hi)) == ""
    # non-finite points are left out; nothing finite: no limits, no label
    assert _where(np.array([np.nan, 8.2]), (lo, hi)) == " (above the plot)"
    assert _where(np.array([]), (lo, hi)) == _where(np.full(3, np.nan), (lo, hi)) == ""
    assert _where(np.full(5, 8.2), None) == ""
    assert _limits(np.array([np.nan, 0.0, -1.0]), log=True) is None
    assert _limits(np.array([-2.0, 1.0]), log=False) == (-2.5, 1.25)


def test_a_float64_fit_takes_the_material_as_given(tmp_path):
    """--rho, --vl, --vt enter a float64 fit unrounded (as in `tlsjax` run as a program)."""
    out = tmp_path / "m.json"
    with enable_x64(False):
        assert main(["fit", "kappa", str(EXAMPLE), "--free", "g", *TINY, "--no-profile",
                     "--dos-samples", "0", "--rho", "1234.5678", "--vl", "3456.789",
                     "--vt", "1987.6543", "--json", str(out)]) == 0
    material = json.loads(out.read_text())["meta"]["material"]
    assert (material["rho"], material["v_l"], material["v_t"]) == (1234.5678, 3456.789, 1987.6543)


def test_the_tutorials_report_is_what_fit_kappa_prints(capsys):
    """docs/tutorials/fit-your-data.md section 2 shows the whole report of the default
    command on the Stycast 1266 curve: it is what the command prints, line for line."""
    from conftest import need_shared_kappa

    path = need_shared_kappa() / "stycast1266_olson1993.csv"
    page = (Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "fit-your-data.md")
    text = page.read_text()
    start = text.index("```\n", text.index("## 2. One command")) + 4
    shown = text[start:text.index("```", start)]
    with enable_x64(False):  # as in `tlsjax` run as a program
        assert main(["fit", "kappa", str(path), "--no-progress"]) == 0
    printed = capsys.readouterr().out.replace(str(path), f"../shared/data/kappa/{path.name}")
    assert printed == shown
