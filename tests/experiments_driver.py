"""Reads every experiment script's parser, for test_experiment_scripts.py, in a process of
its own (some scripts turn on float64 when imported).

Prints one JSON line per script: its name, whether it defines `build_parser()`, and for
each numeric option (converter, range text, help) what each value of BAD_VALUES gives:
the parsed value, or the exit status and the message written to stderr. With
``refusals`` as the first argument it instead runs each script's `main` on the argument
lists of REFUSALS (an output path that holds a file the user wrote), each expected to stop
before computing, and prints the exit status, stderr and whether the file is unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path

from tlsjax.cli._args import NUMERIC_TYPES, is_numeric

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
BAD_VALUES = ("0", "-1", "nan", "inf", "1e300", "100000000000000000000", "abc")


def scripts() -> list[Path]:
    """The scripts that read a command line (the helpers start with an underscore)."""
    return [p for p in sorted(EXPERIMENTS.glob("*.py"))
            if not p.name.startswith("_")
            and any(word in p.read_text() for word in ("parse_args", "build_parser", "argparse"))]


def load(path: Path):
    sys.path.insert(0, str(EXPERIMENTS))
    spec = importlib.util.spec_from_file_location(f"experiment_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> dict:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            value = vars(parser.parse_args(argv))
    except SystemExit as done:
        return dict(code=done.code, stderr=err.getvalue())
    dest = next(a.dest for a in parser._actions if argv[0] in a.option_strings)
    return dict(code=None, value=repr(value[dest]), stderr=err.getvalue())


def options(path: Path) -> dict:
    module = load(path)
    if not hasattr(module, "build_parser"):
        return dict(script=path.name, build_parser=False, options=[])
    parser = module.build_parser()
    rows = []
    for action in parser._actions:
        if not (action.option_strings and is_numeric(action)):
            continue
        item = getattr(action.type, "item", action.type)
        rows.append(dict(
            option=action.option_strings[0], checked=isinstance(action.type, NUMERIC_TYPES),
            range=action.type.range_text() if hasattr(action.type, "range_text") else None,
            help=action.help, accepts={v: item.accepts(float(v)) for v in BAD_VALUES
                                       if v != "abc" and hasattr(item, "accepts")},
            results={v: _parse(parser, [action.option_strings[0], v]) for v in BAD_VALUES}))
    return dict(script=path.name, build_parser=True, options=rows)


#: (script, its arguments, the user's file in the way, relative to the case folder D, and
#: what the one-line refusal must say). {D} is the case folder.
NOT_OURS = "exists and was not written by tlsjax; pass --overwrite"
NOT_FOLDER = "exists and is not a folder"
REFUSALS = [
    ("bench_es.py", ["--json", "{D}/notes"], "notes", NOT_OURS),
    ("bench_mc.py", ["--quick", "--json", "{D}/notes"], "notes", NOT_OURS),
    ("bench_processes.py", ["--json", "{D}/notes"], "notes", NOT_OURS),
    ("soft_theta_accuracy.py", ["--json", "{D}/notes"], "notes", NOT_OURS),
    ("soft_width_bias.py", ["--json", "{D}/notes"], "notes", NOT_OURS),
    ("soft_width_bias.py", ["--png", "{D}/notes.png"], "notes.png", NOT_OURS),
    ("fit_dos_sample_error.py", ["--data", "{DATA}", "--case", "curve.csv:4:1", "--out",
                                 "{D}/notes.json"], "notes.json", NOT_OURS),
    ("bench_fit.py", ["--skip-before", "--out", "{D}"], "bench_fit.json", NOT_OURS),
    ("bench_cpu_before_after.py", ["--out", "{D}/notes.json"], "notes.json", NOT_OURS),
    ("dvv_coverage.py", ["--out", "{D}/notes.json"], "notes.json", NOT_OURS),
    ("fit_precision.py", ["--data", "{DATA}", "--out", "{D}/notes.json"], "notes.json",
     NOT_OURS),
    ("fit_measured_kappa.py", ["--out", "{D}/o", "--figures", "{D}"],
     "stycast1266_olson1993_fit.png", NOT_OURS),
    # a user's file among the outputs of an --out folder
    ("bench_scale.py", ["--quick", "--out", "{D}"], "bench_scale.png", NOT_OURS),
    ("fit_measured_kappa.py", ["--out", "{D}"], "fits.md", NOT_OURS),
    ("mc_fig2a.py", ["--out", "{D}"], "mc_ps.csv", NOT_OURS),
    ("mc_finite_size.py", ["--out", "{D}"], "mc_finite_size.json", NOT_OURS),
    ("dipole_mc.py", ["--out", "{D}"], "dipole_mc.png", NOT_OURS),
    ("mc_fig2a.py", ["--out", "{D}"], "settings.json", "cannot be read"),
    ("mc_finite_size.py", ["--out", "{D}"], "settings.json", "cannot be read"),
    # a file where --out wants a folder
    ("mc_fig2a.py", ["--out", "{D}/notes"], "notes", NOT_FOLDER),
    ("mc_finite_size.py", ["--out", "{D}/notes"], "notes", NOT_FOLDER),
    ("bench_scale.py", ["--quick", "--out", "{D}/notes"], "notes", NOT_FOLDER),
    ("fit_measured_kappa.py", ["--out", "{D}/notes"], "notes", NOT_FOLDER),
    ("dipole_mc.py", ["--out", "{D}/notes"], "notes", NOT_FOLDER),
    ("process_faults.py", ["--folder", "{D}"], "notes", "must be empty"),
    ("process_faults.py", ["--folder", "{D}/notes"], "notes", "cannot be made a folder"),
    # values that only the script can check (no file in the way: None)
    ("soft_width_bias.py", ["--cases", "dos,foo"], None, "--cases: must be among"),
    ("soft_width_bias.py", ["--replot", "{D}/missing.json"], None, "--replot: cannot read"),
    ("fit_dos_sample_error.py", ["--case", "curve.csv:4:0"], None, "--case: 'curve.csv:4:0': R"),
    ("fit_dos_sample_error.py", ["--data", "{DATA}", "--case", "other.csv:4:1"], None,
     "--case: not a file"),
    ("fit_precision.py", ["--data", "{DATA}", "--out", "{D}/o.json"], None,
     "--data: not a file"),
    ("bench_cpu_before_after.py", ["--before", "no-such-commit", "--out", "{D}/o.json"], None,
     "--before: must be a commit"),
    ("fit_precision.py", ["--data", "{D}/notes", "--out", "{D}/o.json"], "notes",
     "is not a folder"),
    ("mc_fig2a.py", ["--atildes", "3,3.0", "--out", "{D}/o"], None, "--atildes: values must"),
    ("mc_finite_size.py", ["--min-realizations", "5", "--max-realizations", "4", "--out",
                           "{D}/o"], None, "--min-realizations <= --max-realizations"),
    ("soft_theta_accuracy.py", ["--top-k", "100000"], None, "--top-k: must be below"),
    ("dipole_mc.py", ["--j-ee", "1,0", "--out", "{D}/o"], None, "strictly increasing"),
]


class _Started(Exception):
    """The script started its work: it called one of WORK, drew a sample, or was still
    running after ALARM_S."""


ALARM_S = 60
#: Where the scripts' work starts (the names as each script binds them): replaced, in the
#: loaded script, by a function that raises `_Started`; `Sample.draw` too.
WORK = ("draw_realization", "run_case", "run_mc_study", "tau_dos_mc", "select_kappa_model",
        "configuration", "run_child", "old_code", "per_realization", "dos_crossovers",
        "_start", "_subprocess", "numpy_fit", "numpy_baseline", "cold_warm", "_run_size",
        "truth_curve")


def _forbid_work(module) -> None:
    from tlsjax.model._lattice import Sample

    def work(*_, **__):
        raise _Started

    for name in WORK:
        if hasattr(module, name):
            setattr(module, name, work)
    Sample.draw = work


def refusals(folder: Path) -> list[dict]:
    """Each script's `main` with a user's file in the way: it must stop at once."""
    import signal

    def started(*_):
        raise _Started

    signal.signal(signal.SIGALRM, started)
    user = "the user's own notes\n"
    data = folder / "data"
    data.mkdir()
    (data / "curve.csv").write_text("T(K),k(W/m/K)\n1,1\n")
    out = []
    for i, (script, argv, name, says) in enumerate(REFUSALS):
        case = folder / f"case{i}"
        case.mkdir()
        target = case / (name or "none")
        if name is not None:
            target.write_text(user)
        argv = [a.format(D=case, DATA=data) for a in argv]
        module = load(EXPERIMENTS / script)
        _forbid_work(module)
        err = io.StringIO()
        sys.argv = [script, *argv]  # for the scripts whose main() reads sys.argv
        signal.alarm(ALARM_S)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = module.main(argv)
        except SystemExit as done:
            code = done.code
        except _Started:
            code = "started its work"
        finally:
            signal.alarm(0)
        out.append(dict(script=script, argv=argv, code=code, stderr=err.getvalue(), says=says,
                        name=name,
                        unchanged=name is None or target.read_text() == user,
                        files=sorted(str(p.relative_to(case)) for p in case.rglob("*"))))
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["refusals"]:
        for row in refusals(Path(sys.argv[2])):
            print(json.dumps(row), flush=True)
    else:
        for path in scripts():
            print(json.dumps(options(path)), flush=True)
