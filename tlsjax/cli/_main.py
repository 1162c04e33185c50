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

from .._interrupts import clear_request, install_handlers, requested_signal
from ..parallel._distributed import is_joined
from ._cache import enable_compilation_cache
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


def x64_context(enabled: bool):
    """A context in which JAX computes in float64 (`enabled`) or float32, for this thread
    only: the process-wide configuration is left as it is."""
    import jax

    enable_x64 = getattr(jax, "enable_x64", None)
    if enable_x64 is None:  # JAX < 0.7 spelled it jax.experimental.enable_x64
        from jax.experimental import enable_x64
    return enable_x64(bool(enabled))


class ListAction(argparse.Action):
    """A list-valued option that takes one or more words, each parsed by `type` into a
    list, and joins them: `--T 0.1,1,10`, `--T 0.1 1 10` and `--T 0.1,1 10` are the same.

    Use as `add_argument("--T", type=float_list, nargs="+", action=ListAction)`.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, [v for word in values for v in word])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input, 130 interrupted).

    Called without `argv` (as the `tlsjax` program) it turns on JAX's persistent
    compilation cache (`_cache.py`; not with `--no-cache`), installs the Ctrl-C/SIGTERM
    handling of `tlsjax._interrupts` and, when interrupted, leaves at once with
    `os._exit` after flushing its output (the interpreter teardown may crash while XLA
    compiler threads still run); called with `argv` (from Python) it returns 130.
    """
    program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(_with_default_command(parser, argv))
    clear_request()
    restore = install_handlers() if program else (lambda: None)
    try:
        if program:  # from Python, JAX's global configuration is left alone
            enable_compilation_cache(getattr(args, "no_cache", False))
        if args.command in PROCESS_COMMANDS:
            join_processes(args)
        return int(args.func(args) or 0)
    except (ValueError, OSError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and not is_joined():
            raise
        print(f"tlsjax {args.command}: error: {error_text(err)}", file=sys.stderr)
        if program and is_joined():  # leave at once: no wait at JAX's shutdown barrier
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(2)
        return 2
    except KeyboardInterrupt:
        signum = requested_signal() or signal.SIGINT
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"tlsjax {args.command}: interrupted ({name})", file=sys.stderr)
        if program:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(128 + int(signum))
        return 128 + int(signum)
    finally:
        restore()


if __name__ == "__main__":
    sys.exit(main())
