"""Why a fit with a~ free can stop at a jump, and what the fit then reports.

The S-tau C(E) comes from the ES reduction of a finite DOS sample. Each tau spin takes
the sign of its local field (App. B 2's "accordingly redefined" couplings), so where a
tau field of the sample crosses zero as a~ changes, that spin's ground state flips and
every S spin paired with it sees a coupling of the other sign: P_S(E), hence kappa(T),
jumps. This script measures it in two parts (float64):

1. the fit of `tests/test_fit.py::test_atilde_identifiability_reported` (synthetic
   kappa(T) from g = 0.01, J_o = 1500 K, a~ = 3 on fcc x = 0.2, L = 4, one realization;
   3 % noise; g, J_o, a~ free, 20 steps): where it stops, the loss either side of the
   jump, the tau spin whose field changes sign there, and the fit's notes;
2. the jumps of ln kappa(0.05 K) along a~ in [2.8, 3.2] (steps of 0.001, g and J_o at
   the truth) for several DOS samples: the largest step between neighbours and the
   number of steps above 0.05 (a smooth change per step is ~1e-3).

    python experiments/fit_atilde_jump.py      # about 5 minutes on 2 cores
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from tlsjax import (  # noqa: E402
    Curve,
    Material,
    ModelParams,
    Sample,
    StauTLS,
    fit_kappa,
    stau_dos,
    thermal_conductivity,
)
from tlsjax.cli._args import finish_parser  # noqa: E402
from tlsjax.cli._main import Parser  # noqa: E402
from tlsjax.fit._fit import _unconstrained, residuals_at  # noqa: E402

TRUE = ModelParams(g=0.01, J0=1500.0, atilde=3.0)
MAT = Material(1200.0, 2500.0, 1200.0)
T = np.geomspace(0.05, 10.0, 16)


def kappa(params: ModelParams, sample: Sample, realizations: int) -> np.ndarray:
    dos = stau_dos(params, sample, realizations=realizations)
    return np.asarray(thermal_conductivity(StauTLS(dos, params), MAT, T))


def the_fit() -> None:
    small = Sample(0.2, 4)
    k = kappa(TRUE, small, 1) * np.exp(0.03 * np.random.default_rng(5).standard_normal(T.size))
    curve = Curve(T=T, y=k, weight=np.ones_like(T), quantity="kappa", source="synthetic")
    r = fit_kappa(curve, MAT, free=["g", "J0", "atilde"], sigma_log=0.03, sample=small,
                  realizations=1, progress=False, max_steps=20)
    a = r.params["atilde"]

    def chi2(at):
        u = _unconstrained(r.problem, dict(r.params, atilde=at))
        return float(np.sum(residuals_at(r.problem, u) ** 2))

    print(f"1. the fit stops at a~ = {a:.9g}, chi^2 = {2 * r.loss:.1f} ({r.n_data} points; "
          f"truth: chi^2 ~ {r.n_data}); {r.reason}")
    for at in (a - 1e-4, a - 1e-6, a + 1e-6, a + 1e-4, 2.0, 3.0):
        print(f"   chi^2 at a~ = {at:.9g}: {chi2(at):.1f}")
    lo, hi = (stau_dos(ModelParams(g=0.01, J0=1500.0, atilde=x), small, realizations=1).es
              for x in (a - 1e-4, a + 1e-4))
    ea, eb = np.asarray(lo.e_tau)[0], np.asarray(hi.e_tau)[0]
    site = int(np.argmin(np.where(np.asarray(lo.mask)[0] & (ea > 0), ea + eb, np.inf)))
    print(f"   smallest tau field either side (units of <E_tau>): site {site}, "
          f"{ea[site]:.3g} and {eb[site]:.3g} (their mean is 1)")
    moved = np.abs(np.nan_to_num(np.asarray(lo.top)[0, :, 0], neginf=0.0)
                   - np.nan_to_num(np.asarray(hi.top)[0, :, 0], neginf=0.0))
    print(f"   largest change of an S spin's E_min / <E_tau> across it: {moved.max():.3g} "
          f"(S spin {int(np.argmax(moved))})")
    print(f"   reported: a~ = {a:.4g} +- {r.stderr['atilde']:.3g}, g = {r.params['g']:.4g} +- "
          f"{r.stderr['g']:.2g}, J_o = {r.params['J0']:.4g} +- {r.stderr['J0']:.2g} K")
    for note in r.notes:
        print(f"   note: {note}")


def the_jumps() -> None:
    grid = np.round(np.arange(2.8, 3.2 + 5e-4, 1e-3), 6)
    print("2. ln kappa(0.05 K) along a~ in [2.8, 3.2], steps of 0.001:")
    for cells, realizations in ((4, 1), (4, 4), (6, 1), (6, 4)):
        sample = Sample(0.2, cells)
        lk = np.array([np.log(kappa(ModelParams(g=0.01, J0=1500.0, atilde=a), sample,
                                    realizations)[0]) for a in grid])
        steps = np.abs(np.diff(lk))
        print(f"   L = {cells}, {realizations} realization(s): largest step {steps.max():.3g}, "
              f"median {np.median(steps):.2g}, steps > 0.05: {int(np.sum(steps > 0.05))} "
              f"of {steps.size}")


def build_parser():
    """No options: `-h` shows what the script does, anything else is refused."""
    return finish_parser(Parser(description=__doc__.split("\n\n")[0]))


if __name__ == "__main__":
    build_parser().parse_args()
    the_fit()
    the_jumps()
