"""The numeric argparse converters of every command (one place, one set of rules).

Every numeric option of the command line uses one of these as its `type=`, so that a
value is checked while the command line is read, before anything is imported, compiled
or computed: an integer must lie within what the program can index, a float must be
finite and inside the option's documented range. A bad value gives one line, for
example ``tlsjax es: error: argument --cells: must be an integer in [2, 800]; got '0'``,
and exit status 2. The allowed range is appended to the option's ``--help`` text
(`document_ranges`).

Special values outside the main range (``--width 0`` = hard Theta, ``--boundary inf`` =
no boundary scattering) are named with `also=` and shown in the help.
"""

from __future__ import annotations

import argparse
import math

from .._validate import SEED_MAX
from ..model._es import MAX_SOFT_WIDTH
from ..model._params import ATILDE_MAX, ATILDE_REASON
from ..observables._stm import OMEGA_MIN, T_MAX_K, T_MIN_K
from ..observables._tls import C_MAX, C_MIN

__all__ = ["ATILDE_MAX", "C_MAX", "C_MIN", "MAX_SOFT_WIDTH", "T_MAX_K", "T_MIN_K"]

#: The largest count the program indexes: JAX uses 32-bit integers unless x64 is on.
INDEX_MAX = 2**31 - 1
#: Cells per cube edge: 4 L^3 sites (fcc) must stay below `INDEX_MAX`.
CELLS_MAX = 800
#: Memory budgets in bytes (64-bit).
BYTES_MAX = 2**62
#: Measurement frequencies in Hz: below it the period exceeds 20000 years.
FREQ_MIN = OMEGA_MIN / (2.0 * math.pi)
#: Dimensionless ratios of the model (h_rel, E / <E_tau>, J_ee / g J_o, ...): far beyond
#: every regime the model describes, and safe from float32 overflow when squared.
RATIO_MAX = 1e12
#: Energies and temperatures in K (J_o, T_U, ladders, E-bar).
KELVIN_MAX = 1e6


def _fmt(v: float) -> str:
    if v == math.inf:
        return "inf"
    if v == -math.inf:
        return "-inf"
    if isinstance(v, int):
        return str(v)
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e16 else f"{v:g}"


class Number:
    """An argparse `type`: text -> int or float inside a range, else one-line error.

    **Arguments:**

    - `lo`, `hi`: the allowed interval (`lo_open`/`hi_open`: open at that end).
    - `integer`: integers only (text such as ``12``; ``1e3`` and ``2.5`` are refused).
    - `also`: further legal values outside the interval, with their meaning, e.g.
      ``{0.0: "hard Theta"}``.
    - `reason`: why the interval is what it is (added to the error message).
    """

    def __init__(self, lo: float, hi: float, *, integer: bool = False, lo_open: bool = False,
                 hi_open: bool = False, also: dict | None = None, reason: str = ""):
        self.lo, self.hi, self.integer, self.reason = lo, hi, integer, reason
        self.lo_open, self.hi_open = lo_open, hi_open
        self.also = dict(also or {})
        self.__name__ = "integer" if integer else "number"  # argparse's fallback message

    def range_text(self) -> str:
        """The allowed values in words, e.g. ``an integer in [2, 800]``."""
        left, right = ("(" if self.lo_open else "["), (")" if self.hi_open else "]")
        kind = "an integer" if self.integer else "a finite number"
        text = f"{kind} in {left}{_fmt(self.lo)}, {_fmt(self.hi)}{right}"
        for value, meaning in self.also.items():
            text += f", or {_fmt(value)} ({meaning})"
        return text

    def accepts(self, value: float) -> bool:
        if value in self.also:
            return True
        if not math.isfinite(value):
            return False
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below

    def _parse(self, text: str):
        word = text.strip()
        if self.integer:
            return int(word, 10)
        value = float(word)
        return value

    def __call__(self, text: str):
        why = f" ({self.reason})" if self.reason else ""
        try:
            value = self._parse(text)
        except (TypeError, ValueError):
            value = None
        if value is None or not self.accepts(value):
            raise argparse.ArgumentTypeError(f"must be {self.range_text()}{why}; got {text!r}")
        return value

    def __repr__(self) -> str:
        return f"Number({self.range_text()})"


class NumberList:
    """An argparse `type` for one word of a list option ("0.1,1,10" or "0.1 1 10"), each
    item checked by `item` (a `Number`); use with `nargs="+"` and `ListAction`."""

    def __init__(self, item: Number):
        self.item = item
        self.__name__ = "list of numbers"

    def range_text(self) -> str:
        return f"a list (a,b or a b) of {self.item.range_text().replace('a finite', 'finite')}"

    def __call__(self, text: str) -> list:
        from ._main import name_list

        try:
            words = name_list(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"must be {self.range_text()}; got {text!r}") from None
        out = []
        for word in words:
            try:
                out.append(self.item(word))
            except argparse.ArgumentTypeError as err:
                raise argparse.ArgumentTypeError(f"item {word!r}: {err}") from None
        return out

    def __repr__(self) -> str:
        return f"NumberList({self.item.range_text()})"


def integer(lo: int = 1, hi: int = INDEX_MAX) -> Number:
    """Counts and sizes: an integer in [lo, hi]."""
    return Number(lo, hi, integer=True)


def real(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False,
         also: dict | None = None, reason: str = "") -> Number:
    """A finite float in the interval (see `Number`)."""
    return Number(lo, hi, lo_open=lo_open, hi_open=hi_open, also=also, reason=reason)


def positive(hi: float) -> Number:
    """A finite float in (0, hi]."""
    return Number(0.0, hi, lo_open=True)


def reals(lo: float, hi: float, **kwargs) -> NumberList:
    """A list option of finite floats in the interval."""
    return NumberList(real(lo, hi, **kwargs))


#: PRNG seeds: 64-bit unsigned integers.
SEED = Number(0, SEED_MAX, integer=True)
#: Cells per cube edge.
CELLS = integer(2, CELLS_MAX)
#: Occupations and concentrations in (0, 1].
OCCUPATION = Number(0.0, 1.0, lo_open=True)
#: g where T_U is found from P_S(T_U) = 5 g: 5 g < 1.
G_CROSSOVER = Number(0.0, 0.2, lo_open=True, hi_open=True)
#: kappa_log in (0, 1).
KAPPA_LOG = Number(0.0, 1.0, lo_open=True, hi_open=True)
#: Devices to use (checked against the devices present when the run starts).
DEVICES = integer(1, 65536)

#: Converters a numeric option may use (the table-driven test walks the parsers for them).
NUMERIC_TYPES = (Number, NumberList)


def is_numeric(action: argparse.Action) -> bool:
    """True for an option whose converter is numeric (plain int/float too: those are
    defects the test reports, since they accept nan, inf and 1e300)."""
    from ._main import float_list

    return isinstance(action.type, NUMERIC_TYPES) or action.type in (int, float, float_list)


def document_ranges(parser: argparse.ArgumentParser) -> None:
    """Append each numeric option's allowed values to its help text."""
    for action in parser._actions:
        if isinstance(action.type, NUMERIC_TYPES) and action.help != argparse.SUPPRESS:
            note = action.type.range_text()
            if note not in (action.help or ""):
                action.help = f"{action.help} [{note}]" if action.help else f"[{note}]"


def finish_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Show each numeric option's range in its help and refuse empty text words: the last
    step of building every parser (the commands' and the experiment scripts')."""
    document_ranges(parser)
    refuse_empty_words(parser)
    return parser


#: The smallest soft-Theta width of the command line (units of <E_tau>): below it the
#: sigmoid is a step to float32 and the crossover's root finder cannot converge.
MIN_WIDTH = 1e-4


def non_empty(text: str) -> str:
    """An argparse `type` for text options (paths, names): an empty word is an error."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty; got ''")
    return text


def refuse_empty_words(parser: argparse.ArgumentParser) -> None:
    """Give every text option without a converter `non_empty` (``--json ''`` would
    otherwise be read as "no file" and the result silently not written)."""
    for action in parser._actions:
        takes_value = action.option_strings and action.nargs is None and action.const is None
        if takes_value and action.type is None and action.choices is None \
                and not isinstance(action, argparse._StoreConstAction):
            action.type = non_empty


#: Material constants (SI units), each far beyond every solid: densities in kg/m^3
#: (osmium: 22590), sound velocities in m/s (diamond: 18000), deformation potentials in eV,
#: velocity or potential ratios, boundary mean free paths in m, Rayleigh coefficients
#: A_R of l^-1 = A_R omega^4 in s^4/m (glasses: ~1e-46), frequencies in Hz.
DENSITY = Number(0.0, 1e5, lo_open=True)
VELOCITY = Number(0.0, 1e5, lo_open=True)
POTENTIAL_EV = Number(0.0, 1e3, lo_open=True)
MATERIAL_RATIO = Number(0.0, 1e3, lo_open=True)
RAYLEIGH = Number(0.0, 1.0)
BOUNDARY = Number(0.0, 1e3, lo_open=True, also={math.inf: "no boundary scattering"})
FREQ_MAX = 1e15


class TermOption(Number):
    """An argparse `type` for a term of `fit kappa` (--boundary, --rayleigh): one of the
    words ``auto``, ``free``, ``absent``, or a number checked as `Number` checks it."""

    WORDS = ("auto", "free", "absent")

    def range_text(self) -> str:
        return f"{', '.join(self.WORDS[:-1])} or {self.WORDS[-1]}, or {super().range_text()}"

    def __call__(self, text: str):
        return text.strip() if text.strip() in self.WORDS else super().__call__(text)


#: `fit kappa --boundary`: l_b in m with --rho/--vl/--vt, l_b / v_eff^2 in s^2/m without;
#: the bound of `BOUNDARY` (l_b <= 1 km) holds both (v_eff >= 1 m/s); 0 = absent.
FIT_BOUNDARY = TermOption(0.0, BOUNDARY.hi, lo_open=True, also={0.0: "absent"},
                          reason="l_b in m, or l_b / v_eff^2 in s^2/m without velocities")
#: `fit kappa --rayleigh`: A_R (k_B/hbar)^4 in 1/(m K^4) (times v_eff^2 without velocities);
#: glasses: ~0.03. The bound is `RATIO_MAX`, as for the model's other internal ratios (float32).
FIT_RAYLEIGH = TermOption(0.0, RATIO_MAX, reason="A_R (k_B/hbar)^4 in 1/(m K^4), glasses "
                          "~0.03; 0 = absent")


#: Options that do not change a command's result (where it goes, how it is shown); `png`
#: and `figures` are options of the experiment scripts (`Parser.run_id`).
_NOT_RESULT = frozenset({"func", "json", "out", "plot", "overwrite", "no_progress", "debug",
                         "devices", "checkpoint", "result_id", "png", "figures"})


def command_run_id(args: argparse.Namespace) -> str:
    """The `run_id` of a command's result: its name and every option that changes the
    result, so that the same command run again may replace its own JSON."""
    from .._io import run_id

    return run_id({k: v for k, v in sorted(vars(args).items()) if k not in _NOT_RESULT})


#: The cutoff a~ in units of a_o, as the API bounds it.
ATILDE = Number(0.0, ATILDE_MAX, reason=ATILDE_REASON)
#: Soft-Theta widths w in units of <E_tau> (0: hard Theta where allowed).
WIDTH_REASON = ("w is in units of <E_tau>; a sigmoid as wide as the tau energies smears the "
                "step over the whole distribution")
#: Frequencies in Hz.
FREQUENCY = Number(FREQ_MIN, FREQ_MAX, reason="in Hz; below it the period exceeds 20000 years, "
                   "beyond any measurement")
#: Soft-Theta widths: (0, 1] with the floor `MIN_WIDTH`; `WIDTH_OR_HARD` also takes 0.
WIDTH = Number(MIN_WIDTH, MAX_SOFT_WIDTH, reason=WIDTH_REASON)
WIDTH_OR_HARD = Number(MIN_WIDTH, MAX_SOFT_WIDTH, also={0.0: "hard Theta"}, reason=WIDTH_REASON)
