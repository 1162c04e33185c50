"""Command-line interface: `tlsjax <command> ...` (a thin layer over the API).

Each command lives in its own module `tlsjax/_cli_<name>.py` with a
`register(subparsers)` function that adds its parser and sets `func`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import traceback
from pathlib import Path

from .._background import overlapping
from .._interrupts import clear_request, install_handlers, requested_signal
from .._io import OutputDir, check_folder_writable, check_output_path
from ..parallel._distributed import announce_stop, is_joined
from ._args import command_run_id, finish_parser
from ._cache import enable_compilation_cache
from ._errors import quiet_runtime, report_error, safe_streams
from ._processes import PROCESS_COMMANDS, add_process_options, error_text, join_processes

#: Command modules, in the order of the physics flow.
COMMAND_MODULES = (
    "tlsjax.cli._cli_es",
    "tlsjax.cli._cli_mc",
    "tlsjax.cli._cli_observables",
    "tlsjax.cli._cli_sensitivity",
    "tlsjax.cli._cli_fit",
    "tlsjax.cli._cli_regimes",
)


def name_list(text: str) -> list[str]:
    """Split one word of a list option, "a,b" or "a b", into its items (empty: an error)."""
    parts = [p for p in text.replace(",", " ").split() if p]
    if not parts:
        raise argparse.ArgumentTypeError("expected a list (a,b or a b); got an empty word")
    return parts


def float_list(text: str) -> list[float]:
    """Parse "0,1.5,3" or "0 1.5 3" into floats (for list-valued options)."""
    try:
        return [float(p) for p in name_list(text)]
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError("expected a list of numbers (0.1,1,10 or 0.1 1 10)") from err
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from err


class ListAction(argparse.Action):
    """A list-valued option that takes one or more words, each parsed by `type` into a
    list, and joins them: `--T 0.1,1,10`, `--T 0.1 1 10` and `--T 0.1,1 10` are the same.

    Use as `add_argument("--T", type=float_list, nargs="+", action=ListAction)`.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, [v for word in values for v in word])


#: Seconds the `tlsjax` program waits, after Ctrl-C or SIGTERM, for the command to reach
#: a safe point (end of a batch, of a fit step) and save its partial result; then it
#: leaves regardless (`tlsjax._interrupts.install_handlers`).
STOP_GRACE_S = 10.0


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``tlsjax es: error: argument --cells: ...``
    (exit status 2), instead of the usage text followed by the message."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")

    def refuse(self, what: str, err: Exception):
        """This parser's one-line error for a refused value of `what` (an option)."""
        text = str(err)
        self.error(f"argument {text}" if text.startswith(what) else f"argument {what}: {text}")

    def run_id(self, args: argparse.Namespace) -> str:
        """`command_run_id` of a script's options (those that change its result) and its
        name: a JSON the script wrote with the same settings may be replaced by a rerun
        (`check_output`, `write_json`); anything else needs --overwrite."""
        return command_run_id(argparse.Namespace(prog=self.prog, **vars(args)))

    def check_output(self, path, overwrite: bool, *, what: str, suffixes=None,
                     run: str | None = None) -> Path:
        """`check_output_path` before any computing, a refusal given as this parser's
        one-line error (exit status 2): for scripts that write one file per option."""
        try:
            return check_output_path(path, overwrite, what=what, suffixes=suffixes, run=run)
        except (ValueError, OSError) as err:
            self.refuse(what, err)

    def add_json_out(self, default: str) -> None:
        """`--out` (one JSON, default `default`) and `--overwrite`, the options that
        `parse_with_json_out` checks."""
        self.add_argument("--out", default=default,
                          help="the JSON to write (default %(default)s)")
        self.add_argument("--overwrite", action="store_true",
                          help="replace an --out that another run or the user wrote")

    def parse_with_json_out(self, argv=None) -> tuple[argparse.Namespace, str, Path]:
        """(arguments, run id, checked `--out`) of a script that writes one JSON to `--out`
        (replaced only with `--overwrite`, or by a rerun of the same settings)."""
        args = self.parse_args(argv)
        run = self.run_id(args)
        return args, run, self.check_output(args.out, args.overwrite, what="--out",
                                            suffixes=(".json",), run=run)

    def check_folder(self, folder, *, what: str = "--out") -> Path:
        """`check_folder_writable` before any computing (a file in the way, a read-only
        place), a refusal given as this parser's one-line error."""
        try:
            check_folder_writable(folder, what=what)
        except (ValueError, OSError) as err:
            self.refuse(what, err)
        return Path(folder)

    def output_dir(self, root, overwrite: bool, *, what: str = "--out", **kwargs) -> OutputDir:
        """An `OutputDir` (checked when made: pass `expect=` the names it will write), a
        refusal given as a one-line error naming `what`."""
        try:
            return OutputDir(root, overwrite=overwrite, **kwargs)
        except (ValueError, OSError) as err:
            self.refuse(what, err)


def iter_parsers(parser: argparse.ArgumentParser):
    """Every parser of the command line, sub-commands included (`fit kappa` too)."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from iter_parsers(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="tlsjax",
        description="S-tau two-level-system model (Schechter & Stamp, PRB 88, 174202 (2013)).")
    sub = parser.add_subparsers(dest="command", required=False)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for leaf in _leaf_parsers(parser):
        leaf.add_argument("--no-cache", action="store_true", dest="no_cache",
                          help="do not use the persistent compilation cache (default: on, "
                          "in the user's cache folder; see TLSJAX_CACHE_DIR)")
    for name in PROCESS_COMMANDS:
        add_process_options(sub.choices[name])
    for p in iter_parsers(parser):
        finish_parser(p)
        if not any("--debug" in a.option_strings for a in p._actions):
            p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                           help="show the Python traceback of an error (also: TLSJAX_DEBUG=1)")
    return parser


def _leaf_parsers(parser: argparse.ArgumentParser):
    """The parsers of every (sub)command that runs something."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
        return
    for child in dict.fromkeys(subs[0].choices.values()):
        yield from _leaf_parsers(child)


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()  # pragma: no cover


def _with_default_command(parser, argv: list[str]) -> list[str]:
    """`tlsjax [reproduce options]` runs `tlsjax reproduce [options]` (the main job)."""
    if argv and (argv[0] in ("-h", "--help") or argv[0] in _commands(parser)):
        return argv
    return ["reproduce", *argv]


def _prepare(args, program: bool) -> None:
    """Before the command: the compilation cache (as a program only: from Python, JAX's
    global configuration is left alone), joining a multi-process job where asked (before
    anything starts JAX's backend), then the check that JAX can start its platforms."""
    if program:
        enable_compilation_cache(getattr(args, "no_cache", False))
    if args.command in PROCESS_COMMANDS:
        join_processes(args)
    check_platforms()


def _run(args) -> int:
    """Run the parsed command (the only place where work starts)."""
    return int(args.func(args) or 0)


def _process_error(command: str, err: BaseException, program: bool) -> int:
    """An error in a multi-process job: one line, and (as a program) leave at once, without
    waiting at JAX's shutdown barrier for processes that may be gone."""
    text = error_text(err)
    print(f"{command}: error: {text}", file=sys.stderr)
    if program:
        sys.stdout.flush()
        sys.stderr.flush()
        announce_stop(f"error: {text[:120]}")
        os._exit(2)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 internal error, 2 bad input,
    130 Ctrl-C, 143 SIGTERM).

    Called without `argv` (as the `tlsjax` program) it turns on JAX's persistent
    compilation cache (`_cache.py`; not with `--no-cache`), installs the Ctrl-C/SIGTERM
    handling of `tlsjax._interrupts` and, when interrupted, leaves at once with
    `os._exit` after flushing its output (the interpreter teardown may crash while XLA
    compiler threads still run); called with `argv` (from Python) it returns the status.
    No error reaches the user as a traceback unless `--debug` or TLSJAX_DEBUG=1 asks.
    """
    program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    restore = install_handlers(grace=STOP_GRACE_S) if program else (lambda: None)
    if program:
        safe_streams()
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(_with_default_command(parser, argv))
        except SystemExit as done:  # -h, or a bad value (one line already printed)
            return done.code if isinstance(done.code, int) else 2
        clear_request()
        code = _guarded(args, program)
        return _leave(code) if program else code
    except KeyboardInterrupt:  # while building the parser (imports)
        return _interrupted("tlsjax", program)
    finally:
        restore()


def _leave(code: int) -> int:
    """The `tlsjax` program after a command that ran to its end: leave at once with
    `os._exit`. JAX's interpreter teardown takes about 0.4 s, during which no Python code
    runs, so a Ctrl-C or SIGTERM arriving then would be lost (exit 0 without a word); with
    no teardown there is no such window. Every file is already written (atomically,
    `_io.py`). A process joined to a multi-process job returns normally instead (JAX's
    shutdown waits for the other processes)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except KeyboardInterrupt:  # the command had finished; say so, as `_guarded` does
        print("tlsjax: the interrupt came after the run had finished: the results above and "
              "the files written are complete", file=sys.stderr)
        raise
    except (OSError, ValueError):  # a closed stream: nothing more can be shown
        pass
    if is_joined():
        return code
    os._exit(code)


def _guarded(args, program: bool) -> int:
    debug = bool(getattr(args, "debug", False)) or os.environ.get("TLSJAX_DEBUG", "") not in (
        "", "0")
    command = f"tlsjax {args.command}" if getattr(args, "command", None) else "tlsjax"
    if getattr(args, "fit_command", None):
        command += f" {args.fit_command}"
    with quiet_runtime(not debug), overlapping():  # fits use the cores (`_background`)
        try:
            _prepare(args, program)
            code = _run(args)
        except KeyboardInterrupt:
            return _interrupted(command, program)
        except Exception as err:  # noqa: BLE001 - the one place that turns errors into lines
            if debug:
                traceback.print_exc()
            if requested_signal() is not None:  # an error caused by the interrupt itself
                return _interrupted(command, program)
            if is_joined():
                return _process_error(command, err, program)
            return report_error(command, err, debug)
    if requested_signal() is not None:
        if code in (130, 143):  # the command stopped and said so itself
            return _interrupted(command, program)
        # the request came too late to stop anything
        print(f"{command}: the interrupt came after the last step had started; the run "
              "finished first: the results above and the files written are complete",
              file=sys.stderr)
        return _interrupted(command, program)
    return code


def check_platforms() -> None:
    """Where JAX_PLATFORMS names platforms, check before any work that JAX can start
    them (JAX itself fails later with a bare AssertionError for a missing GPU)."""
    platforms = os.environ.get("JAX_PLATFORMS", "").strip()
    if not platforms:
        return
    import jax

    try:
        jax.devices()
    except Exception as err:  # noqa: BLE001 - any failure of the backend's start
        detail = " ".join(str(err).split())[:200]
        raise ValueError(
            f"JAX_PLATFORMS={platforms}: JAX cannot start "
            f"{'this platform' if ',' not in platforms else 'these platforms'} on this "
            f"machine ({type(err).__name__}{': ' + detail if detail else ''}); unset "
            "JAX_PLATFORMS to use what is present, or install the plugin for the device"
        ) from None


def _interrupted(command: str, program: bool) -> int:
    signum = requested_signal() or signal.SIGINT
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    print(f"{command}: interrupted ({name})", file=sys.stderr)
    if program:
        sys.stdout.flush()
        sys.stderr.flush()
        announce_stop(f"interrupted ({name})")  # the other processes of a job stop too
        os._exit(128 + int(signum))
    return 128 + int(signum)


if __name__ == "__main__":
    sys.exit(main())
