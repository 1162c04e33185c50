"""Loading measured curves (kappa(T), Q^-1(T)) from text tables, with validation.

Two layouts are read (the schema is documented in `docs/reference/data-format.md`):

- a plain table: a header naming columns and units, e.g. ``T(K),k(W/m/K)`` or
  ``T [mK], kappa (mW/cm/K), dkappa (mW/cm/K)``, then one row per point; the cells are
  separated by commas, tabs or whitespace (detected: the first of comma, tab,
  whitespace whose header names the needed columns and whose rows all have as many
  cells as the header);
- the layout of the digitized measurements in `../shared/data/kappa/`: a UTF-8
  byte-order mark, a first line citing the source (kept as `Curve.citation`), the header
  ``T(K),k(W/m/K),k/T``, rows in any temperature order, and no newline after the
  last row.

Lines starting with ``#`` are comments; blank lines are skipped. Besides temperature and
the measured quantity, a table may have an uncertainty column (``sigma``, ``dkappa``,
``dQinv``, ...: absolute in the quantity's units, or relative with the unit ``rel`` or
``%``) and a ``weight`` column; the derived column ``k/T`` of the shared files is read
and ignored (listed in `Curve.ignored`); any other column is refused by name. Rows are
returned sorted by temperature. Every problem raises `ValueError` naming the file, the
line and the problem, e.g. ``"data.csv, line 7: non-numeric cell 'abc' in column T(K)"``.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import re
from pathlib import Path

import numpy as np

#: Known units: factor to SI (K for temperature, W/(m K) for kappa). Spaces are
#: ignored when matching; nothing outside this table is guessed.
UNITS: dict[str, dict[str, float]] = {
    "T": {"K": 1.0, "mK": 1e-3, "uK": 1e-6, "µK": 1e-6},
    "kappa": {
        "W/m/K": 1.0, "W/(mK)": 1.0, "W/mK": 1.0, "W/m-K": 1.0, "Wm^-1K^-1": 1.0,
        "mW/m/K": 1e-3, "mW/(mK)": 1e-3,
        "uW/m/K": 1e-6, "µW/m/K": 1e-6,
        "W/cm/K": 1e2, "W/(cmK)": 1e2,
        "mW/cm/K": 1e-1, "mW/(cmK)": 1e-1,
        "uW/cm/K": 1e-4, "µW/cm/K": 1e-4,
    },
    "qinv": {"": 1.0, "1": 1.0},
    "dvv": {"": 1.0, "1": 1.0, "ppm": 1e-6, "1e-6": 1e-6},
    "weight": {"": 1.0, "1": 1.0},
}

#: Units of a relative uncertainty column (a fraction of the value).
RELATIVE_UNITS = {"rel": 1.0, "relative": 1.0, "%": 1e-2}
#: Weights beyond this range (or its inverse) are refused: sqrt(w) multiplies a residual.
MAX_WEIGHT = 1e12

#: Column names (case-insensitive) recognised for each role.
ALIASES: dict[str, tuple[str, ...]] = {
    "T": ("t", "temperature", "temp"),
    "kappa": ("k", "kappa", "κ", "thermal conductivity", "thermal_conductivity"),
    "qinv": ("qinv", "q^-1", "q-1", "1/q", "q_inv", "internal friction"),
    "dvv": ("dvv", "dv/v", "delta v/v", "deltav/v", "delta_v/v", "sound velocity shift"),
    "weight": ("weight", "w"),
    "sigma": ("sigma", "err", "error", "uncertainty", "dkappa", "dk", "sigma_kappa",
              "dqinv", "dq^-1", "dq-1", "sigma_qinv", "dy", "sigma_y"),
}
#: Columns read and ignored (derived from the others), reported in `Curve.ignored`.
IGNORED_COLUMNS = ("k/t", "kappa/t", "κ/t")
#: Delimiters tried, in this order (None: any run of whitespace).
DELIMITERS: dict[str, str | None] = {"comma": ",", "tab": "\t", "whitespace": None}

_QUANTITY_WORDS = {"kappa": "thermal conductivity", "qinv": "internal friction Q^-1",
                   "dvv": "sound velocity shift Delta v/v"}
#: Quantities that may be zero or negative (a shift from a reference temperature).
_SIGNED = ("dvv",)
_HEADER_CELL = re.compile(r"^\s*(?P<name>[^(\[]*?)\s*(?:[(\[](?P<unit>[^)\]]*)[)\]])?\s*$")


@dataclasses.dataclass(frozen=True)
class Curve:
    """A measured curve y(T) in SI units, sorted by temperature.

    **Fields:**

    - `T`: temperatures in K (> 0, sorted ascending).
    - `y`: the measured values (kappa in W/(m K), or Q^-1), > 0.
    - `weight`: per-point weights (> 0; 1 where the file has no `weight` column).
    - `sigma`: absolute 1-sigma uncertainties of `y` (same units), or None when the file
      has no uncertainty column.
    - `quantity`: `"kappa"` or `"qinv"`.
    - `source`: the file name as given (used in messages).
    - `citation`: the file's citation line (empty for plain CSV).
    - `lines`: the file line number of each point (1-based), in the sorted order.
    - `columns`: the header cells used for (T, y).
    - `ignored`: header cells read and ignored (e.g. ``k/T``).
    - `delimiter`: "comma", "tab" or "whitespace" (as detected).
    """

    T: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    quantity: str
    source: str = "<memory>"
    citation: str = ""
    lines: tuple[int, ...] = ()
    columns: tuple[str, str] = ("T(K)", "")
    sigma: np.ndarray | None = None
    ignored: tuple[str, ...] = ()
    delimiter: str = "comma"

    @property
    def sigma_log(self) -> np.ndarray | None:
        """The 1-sigma of ln y (sigma / y), or None without an uncertainty column."""
        return None if self.sigma is None else self.sigma / self.y

    @property
    def n(self) -> int:
        return int(self.T.shape[0])


def _parse_header_cell(cell: str) -> tuple[str, str | None]:
    m = _HEADER_CELL.match(cell)
    if m is None:  # pragma: no cover - the pattern matches any string
        return cell.strip().lower(), None
    unit = m.group("unit")
    return m.group("name").strip().lower(), (None if unit is None else unit.strip())


def _role(name: str) -> str | None:
    for role, names in ALIASES.items():
        if name in names:
            return role
    return None


def _header_roles(cells: list[str]) -> dict[str, tuple[int, str | None, str]]:
    """role -> (column index, unit, original cell) for the recognised columns (the
    ignored ones under the role "ignored:<index>"; unknown ones under "unknown:<index>")."""
    roles: dict[str, tuple[int, str | None, str]] = {}
    for i, cell in enumerate(cells):
        name, unit = _parse_header_cell(cell)
        role = _role(name)
        if role is None or role in roles:
            role = f"ignored:{i}" if name in IGNORED_COLUMNS else f"unknown:{i}"
        roles[role] = (i, unit, cell.strip())
    return roles


def _unit_factor(where: str, role: str, unit: str | None, cell: str) -> float:
    table = UNITS[role]
    if unit is None:
        if "" in table:
            return table[""]
        raise ValueError(f"{where}: column {cell!r} has no unit; write it as e.g. "
                         f"{cell.strip()}({next(iter(table))}); allowed units: "
                         f"{', '.join(u for u in table if u)}")
    key = unit.replace(" ", "")
    if key in table:
        return table[key]
    allowed = ", ".join(repr(u) if u else "'' (none)" for u in table)
    raise ValueError(f"{where}: unknown unit {unit!r} in column {cell!r}; allowed: {allowed}")


def _sigma_factor(where: str, quantity: str, unit: str | None, cell: str) -> tuple[float, bool]:
    """(factor, relative) of an uncertainty column: absolute in the quantity's units, or
    relative (`rel`, `%`). A kappa uncertainty must say which."""
    key = None if unit is None else unit.replace(" ", "")
    if key is not None and key.lower() in RELATIVE_UNITS:
        return RELATIVE_UNITS[key.lower()], True
    if key is None and "" not in UNITS[quantity]:
        raise ValueError(f"{where}: the uncertainty column {cell!r} has no unit; write it as "
                         f"{cell}({next(iter(UNITS[quantity]))}) for absolute errors or "
                         f"{cell}(rel) / {cell}(%) for relative ones")
    try:
        return _unit_factor(where, quantity, unit, cell), False
    except ValueError as err:
        raise ValueError(f"{err}; or 'rel' / '%' for a relative uncertainty") from None


def _split(line: str, delimiter: str) -> list[str]:
    """The cells of one line; with whitespace, "T (K)" stays one cell."""
    sep = DELIMITERS[delimiter]
    if sep is not None:
        return next(csv.reader([line], delimiter=sep))
    cells: list[str] = []
    for tok in line.split():
        if cells and tok[0] in "([":
            cells[-1] += " " + tok
        else:
            cells.append(tok)
    return cells


def _find_layout(rows, quantity, source):
    """(delimiter, cells of each row, index of the header row): the first delimiter
    whose header (line 1 or 2) names T and the quantity."""
    for delim in DELIMITERS:
        parsed = [(n, _split(line, delim)) for n, line in rows[:2]]
        for k in range(len(parsed)):
            roles = _header_roles(parsed[k][1])
            if "T" in roles and quantity in roles:
                return delim, [(n, _split(line, delim)) for n, line in rows], k
    n0, line0 = rows[0]
    for n, line in rows[:2]:  # point at the line that looks like a header
        if re.match(r"\s*(t|temp|temperature)\b", line.lower()):
            n0, line0 = n, line
    need = f"a temperature column (T(K)) and a {_QUANTITY_WORDS[quantity]} column (" + (
        ", ".join(ALIASES[quantity][:3]) + ")")
    raise ValueError(f"{source}, line {n0}: missing column(s), or a delimiter other than "
                     f"comma, tab or whitespace: split by none of them does the header name "
                     f"{need}; found {line0.strip()!r}")


def _check_columns(where: str, roles: dict, quantity: str) -> None:
    """Refuse a column that is not understood, by name (nothing is dropped silently)."""
    unknown = [cell for r, (_, _, cell) in roles.items() if r.startswith("unknown:")]
    if unknown:
        known = ", ".join(["T", quantity, "sigma (dkappa, dqinv, err)", "weight",
                           "k/T (ignored)"])
        raise ValueError(f"{where}: unknown column(s) {', '.join(repr(c) for c in unknown)} "
                         f"for a {_QUANTITY_WORDS[quantity]} curve; known: {known} (remove "
                         "the column, or comment the data out with #)")


def _cell_value(source, n, raw, cell) -> float:
    try:
        if "_" in raw:  # Python's float() reads "1_0" as 10; a CSV cell must not
            raise ValueError(raw)
        v = float(raw)
    except ValueError:
        raise ValueError(f"{source}, line {n}: non-numeric cell {raw!r} in column "
                         f"{cell}") from None
    if not math.isfinite(v):
        raise ValueError(f"{source}, line {n}: non-finite value {raw!r} in column {cell}")
    return v


def _read_rows(source, parsed, roles, factors, quantity, delim):
    """Columns (T, y, weight, sigma, line numbers) of the data rows, checked."""
    used = [r for r in ("T", quantity, "weight", "sigma") if r in roles]
    out: dict[str, list] = {r: [] for r in (*used, "line")}
    width = len(roles)
    for n, cells in parsed:
        if len(cells) != width:
            raise ValueError(f"{source}, line {n}: {len(cells)} cells, expected {width} "
                             f"(header {', '.join(c for _, _, c in roles.values())}; "
                             f"cells separated by {delim})")
        for role in used:
            i, _, cell = roles[role]
            raw = cells[i].strip()
            v = _cell_value(source, n, raw, cell)
            if v <= 0 and not (role == quantity and quantity in _SIGNED):
                what = {"T": "temperature", "weight": "weight", "sigma": "uncertainty"}.get(
                    role, _QUANTITY_WORDS[quantity])
                raise ValueError(f"{source}, line {n}: non-positive {what} {raw} in column "
                                 f"{cell} (must be > 0)")
            if role == "weight" and not 1.0 / MAX_WEIGHT <= v <= MAX_WEIGHT:
                raise ValueError(f"{source}, line {n}: weight {raw} in column {cell} is "
                                 f"outside [{1.0 / MAX_WEIGHT:g}, {MAX_WEIGHT:g}] (weights are "
                                 "relative: scale them to about 1)")
            out[role].append(v * factors[role])
        out["line"].append(n)
    return out


def parse_curve(text: str, quantity: str = "kappa", *, source: str = "<memory>",
                min_points: int = 1) -> Curve:
    """Parse a text table (see the module docstring) into a `Curve`.

    **Arguments:**

    - `text`: the file's text (a leading byte-order mark is ignored).
    - `quantity`: `"kappa"` (thermal conductivity), `"qinv"` (internal friction) or
      `"dvv"` (sound velocity shift Delta v/v, signed).
    - `source`: the file name used in error messages.
    - `min_points`: the least number of points accepted (a fit passes its number of
      free parameters).

    **Returns:** a `Curve` sorted by temperature.

    **Raises:** `ValueError` naming `source`, the line and the problem.
    """
    if quantity not in _QUANTITY_WORDS:
        raise ValueError(f"`parse_curve(quantity=...)` must be one of {tuple(_QUANTITY_WORDS)}; got "
                         f"{quantity!r}")
    text = text.removeprefix("\ufeff")
    rows = [(i + 1, line) for i, line in enumerate(text.splitlines())]
    rows = [(n, line) for n, line in rows if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        raise ValueError(f"{source}: empty file (expected a header such as T(K),k(W/m/K))")
    delim, parsed, header_at = _find_layout(rows, quantity, source)
    n_head, head = parsed[header_at]
    citation = rows[0][1].strip() if header_at == 1 else ""
    roles = _header_roles(head)
    where = f"{source}, line {n_head}"
    _check_columns(where, roles, quantity)
    factors = {role: _unit_factor(where, role, unit, cell)
               for role, (_, unit, cell) in roles.items() if role in ("T", quantity, "weight")}
    relative = False
    if "sigma" in roles:
        _, unit, cell = roles["sigma"]
        factors["sigma"], relative = _sigma_factor(where, quantity, unit, cell)
    cols = _read_rows(source, parsed[header_at + 1:], roles, factors, quantity, delim)
    if len(cols["T"]) < max(1, min_points):
        raise ValueError(f"{source}: {len(cols['T'])} data point(s), fewer than the "
                         f"{min_points} needed (a fit needs at least as many points as free "
                         "parameters)")
    order = np.argsort(np.asarray(cols["T"]), kind="stable")
    y = np.asarray(cols[quantity])[order]
    sigma = None
    if "sigma" in roles:
        sigma = np.asarray(cols["sigma"])[order] * (np.abs(y) if relative else 1.0)
    return Curve(
        T=np.asarray(cols["T"])[order], y=y,
        weight=np.asarray(cols.get("weight", np.ones(len(order))))[order],
        quantity=quantity, source=source, citation=citation,
        lines=tuple(int(cols["line"][i]) for i in order),
        columns=(roles["T"][2], roles[quantity][2]), sigma=sigma,
        ignored=tuple(c for r, (_, _, c) in roles.items() if r.startswith("ignored:")),
        delimiter=delim)


def load_curve(path, quantity: str = "kappa", *, min_points: int = 1) -> Curve:
    """Read a measured curve from a CSV file (plain, or the shared-measurements layout).

    **Arguments:**

    - `path`: the file.
    - `quantity`: `"kappa"` (W/(m K) after unit conversion), `"qinv"` or `"dvv"`
      (dimensionless; Delta v/v may be negative).
    - `min_points`: the least number of points accepted.

    **Returns:** a `Curve` in SI units, sorted by temperature.

    **Raises:** `FileNotFoundError` if absent; `ValueError` naming the file, line and
    problem for anything else (a folder, not UTF-8 text, missing columns, non-numeric cells
    (underscores such as ``1_0`` included),
    non-positive values, unknown units, too few points).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not a CSV file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text CSV file ({err.reason} at byte "
                         f"{err.start})") from None
    if "\x00" in text:
        raise ValueError(f"{path}: not a text CSV file (contains NUL bytes)")
    return parse_curve(text, quantity, source=str(path), min_points=min_points)
