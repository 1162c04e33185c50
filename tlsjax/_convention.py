"""The energy convention, stated once for every output (JSON key `energy_convention`).

The spins of Eq. 1 are +-1. The local field of spin k is lambda_k = dH/ds_k; flipping it
changes the energy by eps_k = -2 s_k lambda_k, i.e. 2 |lambda_k| from a state where it is
aligned (docs/conventions.md section 6). Two conventions therefore meet in tlsjax:

- `"local_field"`: energies are |lambda| (the paper's E_tau of App. B 2, the ES reduction,
  T_U and C(E) of `es`, `regimes`, `observables`, `fit`, `reproduce`);
- `"flip_energy"`: energies are 2 |lambda|, the cost of a single flip (the DOS n_S(E),
  n_tau(E) of the Monte Carlo, `mc`).

A ratio of two energies of the same convention (T_U / <E_tau>) is the same in both; a
temperature in kelvin is not: T_U as a flip energy is twice T_U as a local field.
"""

from __future__ import annotations

CONVENTIONS = ("local_field", "flip_energy", "both")

_TEXT = dict(
    local_field="energies in K are local fields |lambda| (a single flip costs 2|lambda|)",
    flip_energy="energies in K are single-flip energies 2|lambda| (local field |lambda|)",
    both=("DOS energies are single-flip energies 2|lambda|; ES quantities (E_tau, the "
          "shortcut's T_U) are local fields |lambda|"),
)


def energy_convention(kind: str, **where) -> dict:
    """The JSON record of an output's energy convention.

    **Arguments:**

    - `kind`: `"local_field"` (|lambda|), `"flip_energy"` (2|lambda|) or `"both"` (an
      output that holds both; `where` then says which key uses which).
    - `where`: optional key -> convention notes, e.g. `dos="flip_energy"`.

    **Returns:** a dict with `energies` (the kind), `flip_energy_over_local_field` (2),
    `definition` and, if given, `keys`.
    """
    if kind not in CONVENTIONS:
        raise ValueError(f"`energy_convention(kind=...)` must be one of {CONVENTIONS}; "
                         f"got {kind!r}")
    out = dict(energies=kind, flip_energy_over_local_field=2.0,
               definition="lambda_k = dH/ds_k, s = +-1; a flip costs eps = 2|lambda| "
                          "(docs/explanation/energy-convention.md)")
    if where:
        out["keys"] = dict(where)
    return out


#: The record of the Monte Carlo outputs (`mc`, the Monte Carlo part of `reproduce`).
MC_CONVENTION = energy_convention(
    "both", dos="flip_energy", P_S_mc="flip_energy (units of <eps_tau>)",
    P_S_es="local_field (units of <E_tau>)", T_U_K="both, named in each key",
    tau_reduction="flip_energy")


def convention_line(kind: str) -> str:
    """One line for text output, stating the convention of `kind`."""
    if kind not in CONVENTIONS:
        raise ValueError(f"`convention_line(kind=...)` must be one of {CONVENTIONS}; "
                         f"got {kind!r}")
    return _TEXT[kind]
