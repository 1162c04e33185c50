"""Every numeric option of every command refuses bad values in one line, before computing.

The options are not listed here: they are read from the argparse parsers themselves
(every option whose converter is numeric), so options added later are covered too. Each
gets the values below; each must give exit status 2 and one line of message naming the
option, with no traceback and without the command starting (`_run` is replaced by a
function that fails the test).
"""

from __future__ import annotations

import argparse

import pytest

import tlsjax.cli._main as cli_main
from tlsjax.cli._args import NUMERIC_TYPES, is_numeric
from tlsjax.cli._main import build_parser, iter_parsers, main

BAD_VALUES = ("0", "-1", "nan", "inf", "1e300", "100000000000000000000", "abc")

#: Values among BAD_VALUES that an option accepts, by design, with the reason. An option
#: missing here must refuse all of them.
LEGAL = {
    "--seed": {"0": "seed 0"},
    "--width": {"0": "hard Theta (es); sensitivity refuses it"},
    "--atilde": {"0": "a~ = 0: the paper's first panel"},
    "--dipole-atilde": {"0": "a~ = 0 as for --atilde"},
    "--h-tau": {"0": "no random field (es, mc); regimes refuses it"},
    "--h-S": {"0": "no random field"},
    "--h-rel": {"0": "no random field"},
    "--j-ee": {"0": "J_ee = 0: the column without electric dipoles"},
    "--rayleigh": {"0": "no Rayleigh scattering"},
    "--boundary": {"inf": "no boundary scattering", "0": "fit kappa: no boundary term"},
    "--anneal-sweeps": {"0": "no annealing"},
    "--sweeps": {"0": "no tempering sweeps"},
    "--fd-checks": {"0": "no finite-difference checks"},
    "--max-dense-bytes": {"0": "never store the coupling matrix"},
    "--dos-samples": {"0": "no refits over independent DOS samples"},
    "--process-id": {"0": "process 0 of a job"},
}


def _numeric_options():
    cases = []
    for parser in iter_parsers(build_parser()):
        if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            continue
        command = parser.prog.split()[1:]
        for action in parser._actions:
            if action.option_strings and is_numeric(action):
                cases.append(pytest.param(command, action, id=f"{' '.join(command)} "
                                          f"{action.option_strings[0]}"))
    return cases


CASES = _numeric_options()


def test_the_walk_finds_the_options():
    names = {(tuple(c.values[0]), c.values[1].option_strings[0]) for c in CASES}
    assert len(CASES) > 80
    for expected in ((("es",), "--realizations"), (("mc",), "--chains"),
                     (("fit", "kappa"), "--level"), (("regimes",), "--j-ee"),
                     (("qinv",), "--T"), (("reproduce",), "--seed")):
        assert expected in names


@pytest.fixture
def no_run(monkeypatch):
    def refuse(args):
        raise AssertionError(f"the command started with {args}")

    monkeypatch.setattr(cli_main, "_run", refuse)


@pytest.mark.parametrize("command, action", CASES)
def test_numeric_option_refuses_bad_values(command, action, no_run, capsys):
    assert isinstance(action.type, NUMERIC_TYPES), (
        f"{action.option_strings[0]} uses {action.type!r}: use a converter of tlsjax/cli/_args.py")
    option = action.option_strings[0]
    legal = LEGAL.get(option, {})
    check = getattr(action.type, "item", action.type)  # a list option checks each item
    for value in BAD_VALUES:
        if value in legal and check.accepts(float(value)):
            # legal by design: taken, and documented in --help ("[0, ...", "or inf (...)")
            assert action.type(value) is not None
            assert action.type.range_text() in (action.help or "")
            shown = check.range_text()
            assert shown.split(" in ")[1].startswith(f"[{value},") or f"or {value} (" in shown
            continue
        code = main([*command, option, value])
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert code == 2, (option, value, err)
        assert len(lines) == 1, (option, value, err)
        assert option in lines[0] and "Traceback" not in err, (option, value, err)
        assert "must be" in lines[0], lines[0]


def test_text_options_refuse_an_empty_word(no_run, capsys):
    for command, option in ((["es"], "--json"), (["reproduce"], "--out"),
                            (["regimes"], "--checkpoint")):
        assert main([*command, option, ""]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and f"argument {option}: must not be empty" in err


def test_help_shows_the_range(capsys):
    assert main(["es", "-h"]) == 0
    # argparse wraps the help: compare with whitespace collapsed
    out = " ".join(capsys.readouterr().out.split())
    assert "[an integer in [2, 800]]" in out
    assert "[0, 18446744073709551615]" in out
    assert "--debug" in out


def _run_as(monkeypatch, body):
    import tlsjax._interrupts as ti

    def run(args):
        return body(ti)

    monkeypatch.setattr(cli_main, "_run", run)


def test_interrupt_after_the_last_step_is_reported(monkeypatch, capsys):
    import signal

    def finishes_anyway(ti):
        ti._STATE.requested = signal.SIGINT  # the handler fired; its exception was swallowed
        print("result")
        return 0

    _run_as(monkeypatch, finishes_anyway)
    assert main(["es"]) == 130
    out = capsys.readouterr()
    assert "result" in out.out and "the run finished first" in out.err
    assert out.err.strip().endswith("interrupted (Ctrl-C)")


def test_interrupt_reported_by_the_command_is_not_called_finished(monkeypatch, capsys):
    """`fit` returns 130 itself after keeping its best point: no "the run finished first"."""
    import signal

    def stops(ti):
        ti._STATE.requested = signal.SIGINT
        return 130

    _run_as(monkeypatch, stops)
    assert main(["es"]) == 130
    err = capsys.readouterr().err
    assert "finished first" not in err and err.strip().endswith("interrupted (Ctrl-C)")


def test_fit_kappa_terms_take_words_and_checked_numbers(capsys):
    from tlsjax.cli._args import FIT_BOUNDARY, FIT_RAYLEIGH

    assert FIT_BOUNDARY("free") == "free" and FIT_RAYLEIGH("absent") == "absent"
    assert FIT_BOUNDARY("1e-3") == 1e-3 and FIT_RAYLEIGH("0.03") == 0.03
    assert main(["fit", "kappa", "x.csv", "--rayleigh", "1e300"]) == 2
    err = capsys.readouterr().err
    assert "argument --rayleigh: must be auto, free or absent, or a finite number" in err


def test_error_caused_by_an_interrupt_is_an_interrupt(monkeypatch, capsys):
    import signal

    def breaks(ti):
        ti._STATE.requested = signal.SIGTERM
        raise TypeError("unsupported format string passed to NoneType.__format__")

    _run_as(monkeypatch, breaks)
    assert main(["es"]) == 143
    err = capsys.readouterr().err
    assert "TypeError" not in err and "interrupted (SIGTERM)" in err


def test_errors_are_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    def runtime_check(ti):
        return int(jax.jit(lambda x: eqx.error_if(x, x > 0, "`f(x=...)` must be <= 0"))(
            jnp.ones(())))

    _run_as(monkeypatch, runtime_check)
    assert main(["es"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "tlsjax es: error: `f(x=...)` must be <= 0"

    def bug(ti):
        raise AttributeError("'NoneType' object has no attribute 'h'")

    _run_as(monkeypatch, bug)
    assert main(["es"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "internal error: AttributeError" in err
    assert "--debug" in err
    assert main(["es", "--debug"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    monkeypatch.setenv("TLSJAX_DEBUG", "1")
    assert main(["es"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_outputs_never_replace_devices_or_sockets(tmp_path):
    import os
    import socket
    import stat

    from tlsjax._io import atomic_write_text, check_output_path, file_kind, write_json

    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null on this system")
    # a character device is written in place, never renamed over (even with overwrite)
    assert file_kind("/dev/null") == "device"
    write_json("/dev/null", {"a": 1}, overwrite=True)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    # a pipe too
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert file_kind(fifo) == "device"
    # a socket is refused, with or without overwrite
    sock_path = tmp_path / "s.json"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        for overwrite in (False, True):
            with pytest.raises(ValueError, match="not a regular file"):
                check_output_path(sock_path, overwrite)
            with pytest.raises(ValueError, match="not a regular file"):
                atomic_write_text(sock_path, "x")
        assert stat.S_ISSOCK(os.stat(sock_path).st_mode)
    # an empty path is an error, not "no file"
    with pytest.raises(ValueError, match="empty path"):
        check_output_path("", what="--json")
