"""Options of the experiment scripts: a bad value is one line naming the option and its
range, exit status 2, before anything is computed or written."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("value", ["-1", "nan", "1e300", "123456789012345678901"])
def test_mc_finite_size_max_dense_bytes_checked_first(tmp_path, value):
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, str(ROOT / "experiments" / "mc_finite_size.py"),
                        "--out", str(out), "--max-dense-bytes", value],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1] == (
        "mc_finite_size.py: error: argument --max-dense-bytes: must be an integer in "
        f"[0, 4611686018427387904]; got '{value}' (see mc_finite_size.py -h)")
    assert not out.exists()


@pytest.mark.parametrize("content, says", [
    ("not json", "--previous must be a mc_finite_size.json written by this script"),
    ('{"settings": {"target_se": 0.01, "min_realizations": 4, "max_realizations": 256, '
     '"seed": 0, "quick": false}, "cases": []}', "was run with other settings"),
])
def test_mc_finite_size_previous_checked_first(tmp_path, content, says):
    previous, out = tmp_path / "previous.json", tmp_path / "out"
    previous.write_text(content)
    p = subprocess.run([sys.executable, str(ROOT / "experiments" / "mc_finite_size.py"),
                        "--out", str(out), "--previous", str(previous)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("mc_finite_size.py: error: --previous") and says in last, last
    assert not out.exists()


SETTINGS = dict(target_se=0.005, min_realizations=4, max_realizations=32, seed=0, quick=False)
EARLIER_CASE = dict(  # as experiments/figures/mc_finite_size.json held L = 24 (no exponent errors)
    atilde=3.0, cells=24, n_sites_mean=11074.0, realizations=4, T_U_over_E_tau_mc=0.129,
    T_U_over_E_tau_mc_stderr=0.001, T_U_over_E_tau_es=0.128, T_U_over_E_tau_es_stderr=0.002,
    gap_exponent=dict(mc=3.04, mc_dos=None, es=2.91), energy_per_spin=-199.2,
    energy_per_spin_stderr=0.5, seconds=3852.0)


def test_mc_finite_size_merges_an_earlier_run(tmp_path, capsys, monkeypatch):
    import argparse

    monkeypatch.syspath_prepend(str(ROOT / "experiments"))
    import mc_finite_size as fs

    import tlsjax as tj

    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps(dict(settings=SETTINGS, cases=[EARLIER_CASE], backend="cpu")))
    parser = argparse.ArgumentParser(prog="mc_finite_size.py")
    cases = fs._previous_cases(parser, str(earlier), SETTINGS, [30])
    fs._write_outputs(tmp_path / "out", SETTINGS, tj.MCConfig(), cases, False)
    printed = capsys.readouterr().out
    assert "L = 24: no gap-exponent errors" in printed
    short = [dict(cases[0], cells=c, realizations=n, T_U_over_E_tau_mc_stderr=0.006)
             for c, n in ((8, 2), (12, 32))]  # short of the target: more to run, or the maximum
    fs._cases(tmp_path / "no-rows", tj.MCConfig(), short, SETTINGS)
    printed = capsys.readouterr().out
    assert "L = 8: the target standard error is not reached (2 realizations; more can be" in printed
    assert "L = 12: the target standard error is not reached (32 realizations; the " \
        "--max-realizations of this run)" in printed
    with open(tmp_path / "out" / "mc_finite_size.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["cells"] == "24" and row["source"] == "previous (earlier.json, cpu)"
    assert float(row["gap_exponent_mc"]) == 3.04 and row["gap_exponent_mc_stderr"] == "nan"
    assert row["reached_target"] == "True" and row["backends"] == "cpu 4"
    merged = json.loads((tmp_path / "out" / "mc_finite_size.json").read_text())
    assert merged["not_run"] == [8, 12, 18, 30] and merged["cases"][0]["realizations"] == 4
    # merged again, the chain of origins is kept; merged from the same file again, it does
    # not grow
    again = tmp_path / "again.json"
    again.write_text(json.dumps(dict(merged, backend="gpu")))
    (case,) = fs._previous_cases(parser, str(again), SETTINGS, [30])
    assert case["source"] == "previous (again.json, gpu): previous (earlier.json, cpu)"
    same = dict(EARLIER_CASE, source="previous (earlier.json, cpu)")
    assert fs._previous_case(same, "previous (earlier.json, cpu)", "cpu")["source"] == \
        "previous (earlier.json, cpu)"
    assert case["backends"] == {"cpu": 4}  # as recorded, not the backend of the later writer
    # a file from before backends were recorded: its writer's for its own rows only
    for source, backends in (("rows", {"cpu": 4}), ("previous (x.json, gpu)", {"not recorded": 4})):
        assert fs._previous_case(dict(EARLIER_CASE, source=source), "o", "cpu")["backends"] == backends
    # refused, one line each: a size --cells would run again, a value that is not a number
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(settings=SETTINGS, cases=[dict(EARLIER_CASE, seconds=None)])))
    short = tmp_path / "short.json"
    short.write_text(json.dumps(dict(settings=SETTINGS, cases=[dict(EARLIER_CASE,
                                                                    backends={"cpu": 3})])))
    for path, cells, says in ((earlier, [24, 30], "holds L = [24], which --cells would run again"),
                              (bad, [30], "seconds must be a finite number; got None"),
                              (short, [30], "backends {'cpu': 3} must add up to realizations = 4")):
        with pytest.raises(SystemExit):
            fs._previous_cases(parser, str(path), SETTINGS, cells)
        assert says in capsys.readouterr().err.strip().splitlines()[-1]


RUN = ROOT / "experiments" / "figures" / "mc_finite_size_run"


def test_mc_finite_size_committed_rows_give_the_committed_json(tmp_path, monkeypatch):
    """The committed run folder (rows of every size, L = 8 to 30, extended by later runs,
    e.g. on a GPU) gives the committed JSON's cases; a batch saved and loaded again keeps its
    rows and records the backend that ran it."""
    monkeypatch.syspath_prepend(str(ROOT / "experiments"))
    import mc_finite_size as fs
    import numpy as np

    import tlsjax as tj

    settings = json.loads((RUN / "settings.json").read_text())
    committed = json.loads((ROOT / "experiments" / "figures" / "mc_finite_size.json").read_text())
    assert committed["settings"] == settings
    ours = {c["cells"]: c for c in committed["cases"] if c["source"] == "rows"}
    cases, _ = fs._cases(RUN, tj.MCConfig(), [], settings)
    assert sorted(ours) == [c["cells"] for c in cases] == [8, 12, 18, 24, 30]
    assert len(committed["cases"]) == len(ours)  # nothing copied from an earlier JSON
    for c in cases:
        want = ours[c["cells"]]
        assert c["realizations"] == want["realizations"] and c["backends"] == want["backends"]
        for key in ("T_U_over_E_tau_mc", "T_U_over_E_tau_es", "energy_per_spin", "seconds"):
            assert c[key] == pytest.approx(want[key], rel=1e-12), key
    import jax

    st, _ = fs._load(fs._batch_files(RUN)[8], 8, tj.MCConfig())
    (tmp_path / "rows").mkdir()
    fs._save_batch(tmp_path / "rows" / "L8_r0000-0004.npz", st)
    again, backends = fs._load(fs._batch_files(tmp_path)[8], 8, tj.MCConfig())
    assert backends == {jax.default_backend(): st.realizations}
    for k, v in st.rows.items():
        np.testing.assert_array_equal(again.rows[k], v, err_msg=k)
    # batches that overlap (two runs from one copy), leave a gap, or hold another count: refused
    first = tmp_path / "rows" / "L8_r0000-0004.npz"
    for name, says in (("L8_r0002-0006.npz", "must cover realizations 0..n-1 once each"),
                       ("L8_r0005-0009.npz", "must cover realizations 0..n-1 once each"),
                       ("L8_r0004-0005.npz", "holds 4 realizations, not 1"),
                       ("L8_rx.npz", "not a batch of this script")):
        extra = tmp_path / "rows" / name
        extra.write_bytes(first.read_bytes())
        with pytest.raises(SystemExit, match=says):
            fs._cases(tmp_path, tj.MCConfig(), [], settings)
        extra.unlink()


# ------------------------------------------------ every option of every experiment script

#: Values of the driver's BAD_VALUES that an option takes by design, with the reason.
LEGAL = {
    "--seed": {"0": "seed 0"},
    "--atilde": {"0": "a~ = 0"}, "--atildes": {"0": "a~ = 0"},
    "--dipole-atilde": {"0": "a~ = 0"},
    "--j-ee": {"0": "J_ee = 0: no electric dipoles"},
    "--anneal-sweeps": {"0": "no annealing"}, "--sweeps": {"0": "no tempering sweeps"},
    "--max-dense-bytes": {"0": "never store the coupling matrix"},
    "--soft-max": {"0": "no soft case"}, "--numpy-max": {"0": "no NumPy case"},
    "--curves": {"0": "all curves"}, "--first": {"0": "all curves"},
    "--worker": {"0": "worker 0 (set by the parent)"}, "--port": {"0": "set by the parent"},
}
#: Scripts that read a command line; the walk must find each (a new one is added here).
SCRIPTS = {"bench_cpu_before_after.py", "bench_es.py", "bench_fit.py", "bench_fit_curves.py",
           "fit_atilde_jump.py",
           "dvv_coverage.py",
           "bench_mc.py", "bench_processes.py", "bench_scale.py", "dipole_mc.py",
           "fit_dos_sample_error.py", "fit_precision.py",
           "fit_measured_kappa.py", "make_example_curves.py", "make_example_kappa.py",
           "mc_fig2a.py", "mc_finite_size.py", "process_faults.py",
           "soft_theta_accuracy.py", "soft_width_bias.py"}


def _driver(*args, timeout=240) -> list[dict]:
    p = subprocess.run([sys.executable, str(ROOT / "tests" / "experiments_driver.py"), *args],
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def experiment_options():
    return _driver()


def test_every_numeric_option_of_the_experiments_refuses_bad_values(experiment_options):
    """Each numeric option uses a converter of tlsjax/cli/_args.py: a bad value is one line
    naming the option and its range, exit status 2 (parsing comes before any work)."""
    assert {s["script"] for s in experiment_options} == SCRIPTS
    failures, checked = [], 0
    for s in experiment_options:
        if not s["build_parser"]:
            failures.append(f"{s['script']}: no build_parser()")
        for o in s["options"]:
            name = f"{s['script']} {o['option']}"
            if not o["checked"]:
                failures.append(f"{name}: plain int/float converter")
                continue
            legal = LEGAL.get(o["option"], {})
            for value, r in o["results"].items():
                checked += 1
                if value in legal:  # legal by design: taken, and shown in --help
                    if r["code"] is not None or not o["accepts"].get(value):
                        failures.append(f"{name} {value}: refused ({r['stderr'].strip()})")
                    if o["help"] != "==SUPPRESS==" and o["range"] not in (o["help"] or ""):
                        failures.append(f"{name}: range not in --help")
                    continue
                lines = r["stderr"].strip().splitlines()
                if r["code"] != 2 or len(lines) != 1 or o["option"] not in lines[0] \
                        or "must be" not in lines[0]:
                    failures.append(f"{name} {value}: code {r['code']}, stderr {r['stderr']!r}")
    assert not failures, "\n".join(failures)
    assert checked > 200


def test_experiments_refuse_to_replace_a_users_file(tmp_path):
    """A user's file where a script would write (a named file, an output of an --out
    folder, a file given as --out), or a value only the script can check, stops the script
    before any work, in one line (exit status 2), and the file is left as it was, with
    nothing else created."""
    rows = _driver("refusals", str(tmp_path), timeout=600)
    assert len(rows) == 37
    for r in rows:
        lines = r["stderr"].strip().splitlines()
        assert r["code"] == 2 and len(lines) == 1, r
        assert r["says"] in lines[0] and "error: argument --" in lines[0], r
        assert r["unchanged"], r
        assert r["files"] == ([r["name"]] if r["name"] else []), r  # nothing made


def test_a_script_replaces_its_own_json_of_the_same_settings(tmp_path, capsys):
    """`Parser.run_id` ignores where a script writes: a rerun with the same settings may
    replace its JSON, other settings need --overwrite (one line, exit status 2)."""
    from tlsjax._io import write_json
    from tlsjax.cli._args import integer
    from tlsjax.cli._main import Parser

    p = Parser(prog="bench_x.py")
    p.add_argument("--n", type=integer(1), default=1)
    p.add_argument("--json")
    p.add_argument("--overwrite", action="store_true")
    path = tmp_path / "r.json"
    first = p.parse_args(["--n", "2", "--json", str(path)])
    write_json(path, {"v": 1}, run=p.run_id(first))
    again = p.parse_args(["--json", str(tmp_path / "elsewhere.json"), "--n", "2"])
    assert p.run_id(again) == p.run_id(first)
    assert p.check_output(path, False, what="--json", run=p.run_id(again)) == path
    other = p.parse_args(["--n", "3", "--json", str(path)])
    with pytest.raises(SystemExit) as done:
        p.check_output(path, False, what="--json", run=p.run_id(other))
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "argument --json: " in err[0] and "another tlsjax run" in err[0]
    assert p.check_output(path, True, what="--json", run=p.run_id(other)) == path


def test_gc_probe_runs_the_script_as_main_and_records_its_collections(tmp_path):
    """`experiments/_gc_probe.py SCRIPT ARGS`: the script runs as `python SCRIPT ARGS` would
    (its arguments, its folder first on the path, its exit status) and one GC_PROBE line on
    stderr counts the collections, including the full one the script asks for."""
    (tmp_path / "helper_mod.py").write_text("VALUE = 7\n")
    script = tmp_path / "s.py"
    script.write_text("import gc, sys\nimport helper_mod\n"
                      "print(__name__, sys.argv[1:], helper_mod.VALUE)\n"
                      "gc.collect()\nsys.exit(3)\n")
    p = subprocess.run([sys.executable, str(ROOT / "experiments" / "_gc_probe.py"), str(script),
                        "--x", "1"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 3, p.stderr
    assert p.stdout.strip() == "__main__ ['--x', '1'] 7"
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("GC_PROBE ")]
    assert len(lines) == 1, p.stderr
    record = json.loads(lines[0][len("GC_PROBE "):])
    assert record["gen2_collections"] >= 1 and record["collections"] >= 1
    assert 0.0 < record["gen2_seconds"] <= record["seconds"]
