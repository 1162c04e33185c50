"""Command-line interface: `tlsjax <command> ...` (a thin layer over the API).

Each command lives in its own module `tlsjax/_cli_<name>.py` with a
`register(subparsers)` function that adds its parser and sets `func`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: Command modules, in the order of the physics flow.
COMMAND_MODULES = (
    "tlsjax.cli._cli_es",
    "tlsjax.cli._cli_observables",
    "tlsjax.cli._cli_sensitivity",
    "tlsjax.cli._cli_fit",
)


def float_list(text: str) -> list[float]:
    """Parse "0,1.5,3" or "0 1.5 3" into floats (for list-valued options)."""
    parts = [p for p in text.replace(",", " ").split() if p]
    if not parts:
        raise argparse.ArgumentTypeError("expected a list of numbers (0.1,1,10 or 0.1 1 10)")
    try:
        return [float(p) for p in parts]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from err


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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["reproduce", *([] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        print(f"tlsjax {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
