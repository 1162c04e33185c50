"""Parameters a user builds (value, vary, bounds per parameter) and the one table of
physical names and units that the report, the command line and the figures use.

**Names.** Every fitted quantity has one physical name and one unit, used in the
report, the JSON's `report` section, the figure's box and the command line's `--fix` /
`--bound`: e.g. `J_o` (K), `a~`, `kappa_log v_eff` (m/s), `A_R` (s^4/m). The engine
keeps short internal keys (`J0`, `atilde`, `kv`, `rayleigh`; `FitResult.params` uses
them); `canonical_name` maps any accepted spelling (physical name, internal key, the
aliases in `DISPLAY`) to the internal key, and `DISPLAY[key].factor` converts the
internal value to the displayed unit (1 except for the Rayleigh terms, which the
engine holds per (hbar omega / k_B)^4).

**Parameters.** `Parameters` is an ordered mapping name -> `Parameter(value, vary, min,
max)`, built like lmfit's: ``p = Parameters(); p.add("g", 0.02, min=1e-3, max=0.1);
p.add("J_o", 800, vary=False)``. Values and bounds are in the displayed units. Every
fitted parameter is positive (the engine's log-logit transform, `_fit.py`), so bounds
satisfy 0 < min < max. An lmfit `Parameters` object is accepted wherever a
`Parameters` is (`as_parameters`), if its bounds are finite and positive.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping

from .._validate import check_number
from ..observables._material import HBAR, K_B

_RAYLEIGH = (HBAR / K_B) ** 4  # internal (per (hbar omega / k_B)^4 in K^4) -> SI (s^4)


@dataclasses.dataclass(frozen=True)
class Name:
    """How one parameter is called and shown: `label`, `unit`, `factor` (displayed value
    = factor * internal value), accepted `aliases`, and `meaning`."""

    label: str
    unit: str
    factor: float = 1.0
    aliases: tuple[str, ...] = ()
    meaning: str = ""


#: Internal key -> physical name and unit (the one table of names).
DISPLAY: dict[str, Name] = {
    "g": Name("g", "", 1.0, ("gamma",), "gamma_tau / gamma_S"),
    "J0": Name("J_o", "K", 1.0, ("J0", "Jo"), "S-S coupling"),
    "atilde": Name("a~", "a_o", 1.0, ("atilde", "a_tilde"), "short-distance cutoff"),
    "h_rel": Name("h_rel", "", 1.0, (), "random-field width, relative"),
    "kappa_log": Name("kappa_log", "", 1.0, ("kappalog",), "1 / ln(Delta_u / Delta_l)"),
    "kv": Name("kappa_log v_eff", "m/s", 1.0, ("kv",), "with 3/v_eff = 1/v_l + 2/v_t"),
    "T_U": Name("T_U", "K", 1.0, ("TU",), "crossover temperature, P_S(T_U) = 5 g"),
    "C": Name("C", "", 1.0, (), "constant tunneling strength (standard model)"),
    "Cv": Name("C v_eff", "m/s", 1.0, ("Cv",), "C times v_eff (standard model)"),
    "l_b": Name("l_b", "m", 1.0, (), "boundary mean free path"),
    "l_b_v2": Name("l_b / v_eff^2", "s^2/m", 1.0, ("l_b_v2",), "boundary term"),
    "rayleigh": Name("A_R", "s^4/m", _RAYLEIGH, ("rayleigh",),
                     "Rayleigh scattering, l^-1 = A_R omega^4"),
    "rayleigh_v2": Name("A_R v_eff^2", "s^2 m", _RAYLEIGH, ("rayleigh_v2",),
                        "Rayleigh term without sound velocities"),
    "A_rel": Name("A k_B^3", "1/(s K^3)", 1.0, ("A_rel",),
                  "relaxation prefactor (Q^-1, Delta v/v without a material)"),
}


def _key(text: str) -> str:
    return text.replace(" ", "")


def canonical_name(text: str, allowed=None) -> str:
    """The internal key of a parameter named `text` (physical name, key or alias; spaces
    ignored, case kept: `C` is the built-in constant, `c` a user's own); names outside
    `DISPLAY` are returned as given (a user's own model). `ValueError` if `allowed` is
    given and the name is not in it."""
    k = _key(text)
    for key, nm in DISPLAY.items():
        if k in {_key(key), _key(nm.label), *(_key(a) for a in nm.aliases)}:
            text = key
            break
    if allowed is not None and text not in allowed:
        shown = ", ".join(label(n) for n in allowed)
        raise ValueError(f"unknown parameter {text!r}; allowed: {shown}")
    return text


def label(key: str) -> str:
    return DISPLAY[key].label if key in DISPLAY else key


def named(key: str) -> str:
    """The physical name, with the engine's key where it differs: "J_o (J0)"."""
    return label(key) if label(key) == key else f"{label(key)} ({key})"


def unit(key: str) -> str:
    return DISPLAY[key].unit if key in DISPLAY else ""


def bound_side(value: float, lo: float, hi: float) -> str | None:
    """"lower" or "upper" where `value` lies within 1 % of that bound, else None (there a
    Laplace error is not meaningful)."""
    if value < lo * 1.01:
        return "lower"
    if value > hi / 1.01:
        return "upper"
    return None


def missing_error(err: float) -> str:
    """How an error that is not a finite number is written: inf, the data do not
    determine the parameter; NaN, not computed, or the loss is not smooth there (the
    fit's notes and `meta["not_smooth"]` say which)."""
    return "not determined" if math.isinf(err) else "not given, see the notes"


def factor(key: str) -> float:
    return DISPLAY[key].factor if key in DISPLAY else 1.0


@dataclasses.dataclass
class Parameter:
    """One parameter: `value` (start, or the fixed value), `vary`, bounds `min`, `max`
    (None: the default range of a built-in parameter; required for a user's own), and
    for a user's own model its `unit`. All in the displayed units."""

    value: float
    vary: bool = True
    min: float | None = None
    max: float | None = None
    unit: str = ""


class Parameters(Mapping):
    """Ordered name -> `Parameter`, built with `add` (see the module docstring)."""

    def __init__(self) -> None:
        self._items: dict[str, Parameter] = {}

    def add(self, name: str, value: float, *, vary: bool = True, min: float | None = None,
            max: float | None = None, unit: str = "") -> Parameters:
        """Add (or replace) a parameter; returns self, so calls chain."""
        key = canonical_name(name) if isinstance(name, str) else None
        if key is None or not (key in DISPLAY or key.isidentifier()):
            raise ValueError(f"`Parameters.add(name=...)` must be a built-in parameter's name "
                             f"or an identifier; got {name!r}")
        v = check_number("Parameters.add", f"{name} value", value, 0.0, lo_open=True)
        for what, b in (("min", min), ("max", max)):
            if b is not None:
                check_number("Parameters.add", f"{name} {what}", b, 0.0, lo_open=True)
        if min is not None and max is not None and not min < max:
            raise ValueError(f"`Parameters.add`: {name} needs min < max; got {min:g}, {max:g}")
        self._items[key] = Parameter(v, bool(vary), min, max, unit)
        return self

    def __getitem__(self, name: str) -> Parameter:
        return self._items[canonical_name(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        rows = [f"{label(n)}={p.value:g}" + ("" if p.vary else " (fixed)")
                for n, p in self._items.items()]
        return f"Parameters({', '.join(rows)})"


def as_parameters(obj) -> Parameters:
    """A `Parameters` from itself, a dict name -> value (all varying), or an lmfit
    `Parameters` (its `value`, `vary`, `min`, `max`; infinite bounds read as None)."""
    if isinstance(obj, Parameters):
        return obj
    out = Parameters()
    if not isinstance(obj, Mapping):
        raise TypeError(f"expected a tlsjax.Parameters, an lmfit Parameters or a dict; got "
                        f"{type(obj).__name__}")
    for name, p in obj.items():
        if hasattr(p, "value") and hasattr(p, "vary"):  # lmfit.Parameter or ours
            lo, hi = getattr(p, "min", None), getattr(p, "max", None)
            lo = None if lo is None or not math.isfinite(lo) else lo
            hi = None if hi is None or not math.isfinite(hi) else hi
            out.add(name, p.value, vary=p.vary, min=lo, max=hi, unit=getattr(p, "unit", ""))
        else:
            out.add(name, p)
    return out


def check_allowed(n: str, p: Parameter, allowed: tuple[float, float]) -> None:
    """A built-in parameter's value and bounds lie in its allowed range (displayed
    units), so that no fit starts from, or is fixed at, a value the model cannot take."""
    f = factor(n)
    lo, hi = allowed[0] * f, allowed[1] * f
    u = f" {unit(n)}" if unit(n) else ""
    for what, v in (("min", p.min), ("max", p.max), ("value", p.value)):  # bounds first
        if v is not None and not lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9):
            raise ValueError(f"parameter {label(n)}: {what} {v:g}{u} is outside its allowed "
                             f"range [{lo:g}, {hi:g}]{u}")


def internal(params: Parameters, defaults: Mapping[str, tuple] | None = None):
    """(values, free names, bounds) in the engine's units. Bounds come from the
    parameter, else from `defaults` (name -> (lo, hi, ...)); a parameter with neither is
    an error (a user's own model must bound what it fits)."""
    values, free, bounds = {}, [], {}
    for n, p in params.items():
        f = factor(n)
        values[n] = p.value / f
        if defaults is not None and n in defaults:
            check_allowed(n, p, defaults[n][:2])
        if not p.vary:
            continue
        free.append(n)
        lo, hi = (None, None) if defaults is None or n not in defaults else defaults[n][:2]
        lo = lo if p.min is None else p.min / f
        hi = hi if p.max is None else p.max / f
        if lo is None or hi is None:
            raise ValueError(f"parameter {label(n)}: give min and max (0 < min < max): the fit "
                             "keeps every parameter inside finite positive bounds")
        if not lo < hi:
            raise ValueError(f"parameter {label(n)}: bounds ({lo * f:g}, {hi * f:g}) are empty")
        bounds[n] = (float(lo), float(hi))
    return values, free, bounds
