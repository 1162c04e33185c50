"""How the command line reports errors: one line, never a traceback (unless asked).

`report_error` turns an exception into one line on stderr and an exit status:

- 2 for bad input: `ValueError` and `OSError` (the argument checks of the API, output
  paths), and the checks that can only run inside compiled code (`eqx.error_if`, raised
  as an Equinox runtime error: its own message is printed, not JAX's page of trace);
- 1 for anything else, which is a defect of tlsjax: the line says so and how to see
  the traceback (`--debug` or the environment variable TLSJAX_DEBUG=1).

`quiet_runtime` silences, for the duration of a command, what JAX prints by itself when
a compiled check fails (the logger of `jax.pure_callback`) and the "Exception ignored in
_xla_gc_callback ... KeyboardInterrupt" lines that Ctrl-C can cause inside a garbage
collection callback (the stop request is recorded and acted on at the next safe point).
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import re
import sys
from collections.abc import Iterator

#: Loggers through which JAX prints a failed host callback (a failed `eqx.error_if`).
_NOISY_LOGGERS = ("jax._src.callback", "jax._src.dispatch", "jax._src.interpreters.pxla")
_EQX_MESSAGE = re.compile(r"EquinoxRuntimeError: (.+)")


def runtime_check_message(err: BaseException) -> str | None:
    """The message of a failed `eqx.error_if` check inside compiled code, else None."""
    text = str(err)
    found = _EQX_MESSAGE.search(text)
    if found:
        return found.group(1).strip()
    if type(err).__name__ == "EquinoxRuntimeError":
        return text.strip().splitlines()[0] if text.strip() else None
    return None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def report_error(command: str, err: BaseException, debug: bool = False) -> int:
    """Print `err` as one line for `command`; return the exit status (2 or 1)."""
    check = runtime_check_message(err)
    if check is not None:
        print(f"{command}: error: {_one_line(check)}", file=sys.stderr)
        return 2
    if isinstance(err, (ValueError, OSError)) and not isinstance(err, UnicodeError):
        print(f"{command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    hint = "" if debug else " (run again with --debug or TLSJAX_DEBUG=1 for the traceback)"
    print(f"{command}: internal error: {type(err).__name__}: {_one_line(err)[:500]}; this is a "
          f"defect of tlsjax, please report it{hint}", file=sys.stderr)
    return 1


def _ascii_fallback(err: UnicodeEncodeError):
    """Codec error handler: ± as +-, other characters the stream cannot encode as ?."""
    bad = err.object[err.start:err.end]
    return "".join("+-" if c == "±" else "?" for c in bad), err.end


def safe_streams() -> None:
    """Let stdout/stderr print ± (and any other character) whatever their encoding
    (e.g. PYTHONIOENCODING=ascii), so a finished result is never lost to a print."""
    with contextlib.suppress(LookupError):
        codecs.lookup_error("tlsjax-ascii")
        return _reconfigure()
    codecs.register_error("tlsjax-ascii", _ascii_fallback)
    _reconfigure()


def _reconfigure() -> None:
    for stream in (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None) or "utf-8"
        try:
            "±".encode(encoding)
        except (UnicodeEncodeError, LookupError):
            with contextlib.suppress(AttributeError, ValueError):
                stream.reconfigure(errors="tlsjax-ascii")


def _drop_interrupts(hook):
    def unraisable(info):
        if info.exc_type is not None and issubclass(info.exc_type, KeyboardInterrupt):
            return  # recorded by the handler; acted on at the next safe point
        hook(info)

    return unraisable


@contextlib.contextmanager
def quiet_runtime(quiet: bool = True) -> Iterator[None]:
    """See the module docstring; restores the loggers and `sys.unraisablehook`."""
    levels = {}
    if quiet:
        for name in _NOISY_LOGGERS:
            logger = logging.getLogger(name)
            levels[name] = logger.level
            logger.setLevel(logging.CRITICAL)
    hook = sys.unraisablehook
    sys.unraisablehook = _drop_interrupts(hook)
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
