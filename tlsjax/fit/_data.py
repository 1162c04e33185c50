"""Loading measured curves (kappa(T), Q^-1(T)) from CSV files, with validation.

Two layouts are read (the schema is documented in `data/README.md`):

- plain CSV: a header naming columns and units, e.g. ``T(K),k(W/m/K)`` or
  ``T [mK], kappa (mW/cm/K), weight``, then one row per point;
- the layout of the digitized measurements in `../shared/data/kappa/`: a UTF-8
  byte-order mark, a first line citing the source (kept as `Curve.citation`), the header
  ``T(K),k(W/m/K),k/T``, rows in any temperature order, and no newline after the
  last row.

Lines starting with ``#`` are comments; blank lines are skipped; columns other than
temperature, the measured quantity and ``weight`` are ignored (e.g. ``k/T``). Rows are
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

#: Column names (case-insensitive) recognised for each role.
ALIASES: dict[str, tuple[str, ...]] = {
    "T": ("t", "temperature", "temp"),
    "kappa": ("k", "kappa", "κ", "thermal conductivity", "thermal_conductivity"),
    "qinv": ("qinv", "q^-1", "q-1", "1/q", "q_inv", "internal friction"),
    "dvv": ("dvv", "dv/v", "delta v/v", "deltav/v", "delta_v/v", "sound velocity shift"),
    "weight": ("weight", "w"),
}

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
    - `quantity`: `"kappa"` or `"qinv"`.
    - `source`: the file name as given (used in messages).
    - `citation`: the file's citation line (empty for plain CSV).
    - `lines`: the file line number of each point (1-based), in the sorted order.
    - `columns`: the header cells used for (T, y).
    """

    T: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    quantity: str
    source: str = "<memory>"
    citation: str = ""
    lines: tuple[int, ...] = ()
    columns: tuple[str, str] = ("T(K)", "")

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
    """role -> (column index, unit, original cell) for the recognised columns."""
    roles: dict[str, tuple[int, str | None, str]] = {}
    for i, cell in enumerate(cells):
        name, unit = _parse_header_cell(cell)
        role = _role(name)
        if role is not None and role not in roles:
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


def parse_curve(text: str, quantity: str = "kappa", *, source: str = "<memory>",
                min_points: int = 1) -> Curve:
    """Parse CSV text (see the module docstring) into a `Curve`.

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
    parsed = [(n, next(csv.reader([line]))) for n, line in rows]

    header_at = None
    for k in range(min(2, len(parsed))):
        roles = _header_roles(parsed[k][1])
        if "T" in roles and quantity in roles:
            header_at = k
            break
    if header_at is None:
        n0, cells0 = parsed[0]
        for k in range(min(2, len(parsed))):  # point at the line that looks like a header
            if "T" in _header_roles(parsed[k][1]):
                n0, cells0 = parsed[k]
        found = [c.strip() for c in cells0]
        need = f"a temperature column (T(K)) and a {_QUANTITY_WORDS[quantity]} column (" + (
            ", ".join(ALIASES[quantity][:3]) + ")")
        raise ValueError(f"{source}, line {n0}: missing column(s): the header must name {need};"
                         f" found {found}")
    n_head, head = parsed[header_at]
    citation = ",".join(parsed[0][1]) if header_at == 1 else ""
    roles = _header_roles(head)
    where = f"{source}, line {n_head}"
    factors = {role: _unit_factor(where, role, unit, cell)
               for role, (_, unit, cell) in roles.items() if role in ("T", quantity, "weight")}

    T, y, w, lines = [], [], [], []
    used = [r for r in ("T", quantity, "weight") if r in roles]
    for n, cells in parsed[header_at + 1:]:
        if len(cells) < len(head):
            raise ValueError(f"{source}, line {n}: {len(cells)} cells, expected {len(head)} "
                             f"(header {','.join(c.strip() for c in head)})")
        vals = {}
        for role in used:
            i, _, cell = roles[role]
            raw = cells[i].strip()
            try:
                if "_" in raw:  # Python's float() reads "1_0" as 10; a CSV cell must not
                    raise ValueError(raw)
                v = float(raw)
            except ValueError:
                raise ValueError(f"{source}, line {n}: non-numeric cell {raw!r} in column "
                                 f"{cell}") from None
            if not math.isfinite(v):
                raise ValueError(f"{source}, line {n}: non-finite value {raw!r} in column {cell}")
            if v <= 0 and not (role == quantity and quantity in _SIGNED):
                what = {"T": "temperature", "weight": "weight"}.get(role,
                                                                    _QUANTITY_WORDS[quantity])
                raise ValueError(f"{source}, line {n}: non-positive {what} {raw} in column "
                                 f"{cell} (must be > 0)")
            vals[role] = v * factors[role]
        T.append(vals["T"])
        y.append(vals[quantity])
        w.append(vals.get("weight", 1.0))
        lines.append(n)
    if len(T) < max(1, min_points):
        raise ValueError(f"{source}: {len(T)} data point(s), fewer than the {min_points} "
                         "needed (a fit needs at least as many points as free parameters)")
    order = np.argsort(np.asarray(T), kind="stable")
    return Curve(
        T=np.asarray(T)[order], y=np.asarray(y)[order], weight=np.asarray(w)[order],
        quantity=quantity, source=source, citation=citation,
        lines=tuple(int(lines[i]) for i in order),
        columns=(roles["T"][2], roles[quantity][2]))


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
