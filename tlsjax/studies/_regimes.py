"""The paper's Sec. III B predictions computed from samples: dilute KBr:CN, mixed crystals,
electric dipoles.

Each scan runs, for every disorder key, the whole axis (all x, or all J_ee) and returns
per-realization observables (`regime_observables`) plus per-realization log-log slopes;
`disorder_average` then gives every number, slopes included, as a mean with its standard
error over realizations (the slope's error thus includes any correlation between the
points of one realization). Samples along x hold a fixed mean number of impurities
(`cells_for`); the J_ee scan shares one sample and its c_ij (common random numbers,
`jax.vmap` over J_ee, as `run_scan` does over a~ and h_rel).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .._validate import check_grid, check_int, check_range, seed_key
from ..model._lattice import Sample
from ..model._params import DEFAULT_ATILDE, DEFAULT_G, DEFAULT_J0_K, DEFAULT_KAPPA_LOG
from ..model._regime_params import (
    CUTOFFS,
    DEFAULT_X_C,
    DiluteCrystal,
    DipolarDefects,
    MixedCrystal,
)
from ..observables._regime_obs import regime_observables
from ..parallel._ensemble import disorder_average

#: The three regimes, in the order they are run.
REGIMES = ("dilution", "mixed", "dipole")
#: KBr:CN is universal for 0.2 < x < 0.7 and not below (Sec. III B).
EXPERIMENT_WINDOW = (0.2, 0.7)
#: Exponents along x are fitted over x <= this (the issue's "x << 1").
EXPONENT_X_MAX = 0.1
#: Exponents along J_ee are fitted over J_ee / (g J_o) >= this (the regime J_ee > g J_o).
EXPONENT_JEE_MIN = 3.0
#: The paper's T_U ~ 0.2 g J_o (Sec. II B), in units of the S-tau coupling scale.
PAPER_TU_OVER_SCALE = 0.2

DEFAULT_X_DILUTE = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.2, 0.35, 0.5,
                    0.7)
DEFAULT_X_MIXED = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
DEFAULT_J_EE = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
#: Mean impurities per sample along x (cells chosen per x).
DEFAULT_N_TARGET = 4000
#: The J_ee scan's sample: the paper's x = 0.2, L = 18 (~4670 impurities).
DEFAULT_DIPOLE_SAMPLE = (0.2, 18)
#: Largest lattice (sites) a scan may build; smaller x needs a smaller n_target.
MAX_SITES = 20_000_000
#: The dilute crystal's exponents (JSON `exponents`, `local_exponents`): name -> observable.
DILUTION_EXPONENTS = dict(T_U_full="T_U_K", T_U_shortcut="T_U_shortcut_K",
                          T_U_fixed_target="T_U_fixed_target_K", E_tau="E_tau_K", C_o="C_o",
                          T_U_full_nominal_width="T_U_nominal_JS_K",
                          T_U_correlated="T_U_correlated_K")
#: n_S(E-bar) / n_S^o(E-bar) measured by the Monte Carlo (`tlsjax mc`, x = 0.2, L = 18,
#: a~ = 3, 4 realizations: 0.070 +- 0.004 over 25-100 K), the default depletion of the
#: correlated full criterion (`T_U_correlated_K`); measured at x = 0.2 only.
MC_N_S_DEPLETION = 0.070
#: The tau reduction P_tau(E) of the dipole scan is reported at these E / J_ee (App. B 1).
TAU_PROBE_OVER_JEE = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
#: The mixed crystal's C(E) is also reported at this energy, in units of g J_o
#: (a quarter of the paper's T_U ~ 0.2 g J_o).
MIXED_PROBE_OVER_GJ0 = 0.05


def cells_for(x: float, n_target: int, where: str = "cells_for") -> int:
    """Cubic fcc cells per edge L (>= 2) so that x * 4 L^3 is closest to `n_target`."""
    cells = max(2, round((n_target / (4.0 * x)) ** (1.0 / 3.0)))
    if 4 * cells**3 > MAX_SITES:
        raise ValueError(f"`{where}`: x = {x:g} with n_target = {n_target} needs {cells} cells "
                         f"per edge ({4 * cells**3:.3g} sites > {MAX_SITES:.0e}); raise x or "
                         "lower n_target")
    return cells


def _axis(where: str, name: str, values, lo_open: bool, hi) -> np.ndarray:
    """Validate a scan axis: finite, in range, strictly increasing."""
    check_range(where, name, values, 0.0, hi, lo_open=lo_open)
    check_grid(where, name, values, increasing=True)
    return np.atleast_1d(np.asarray(values, dtype=float))  # float64, as given


def _f(value) -> float:
    """A parameter stored in the default float dtype, as a plain float (7 digits)."""
    return float(f"{float(value):.7g}")


def paper_laws(regime: str, params: dict, values) -> dict[str, np.ndarray]:
    """The paper's laws (Sec. II B, III A-B) for a regime's `params` along its axis.

    - dilution: T_U = 0.2 J^Stau(R_o) = 0.2 g(x) J_nn x (~ x^{7/3} below x_c), C_o = kappa g(x);
    - mixed: T_U = 0.2 g J_o for every x, C_o = kappa g x / x_c ("C ~ 0.1 g x / x_c");
    - dipole: T_U = 0.2 g J_o for J_ee < g J_o and "~ J_ee" above (drawn as 0.2 J_ee),
      C_o = kappa g, then kappa g^2 J_o / J_ee.
    """
    v = np.asarray(values, dtype=float)
    kl = params["kappa_log"]
    if regime == "dilution":
        g = params["g_c"] * np.minimum(1.0, v / params["x_c"]) ** (4.0 / 3.0)
        j_ss = params["J_nn_K"] * v
        return dict(T_U_K=PAPER_TU_OVER_SCALE * g * j_ss, C_o=kl * g, g=g, J_SS_K=j_ss,
                    J_Stau_K=g * j_ss)
    gj0 = params["g"] * params["J0_K"]
    if regime == "mixed":
        return dict(T_U_K=np.full(v.shape, PAPER_TU_OVER_SCALE * gj0),
                    C_o=kl * params["g"] * v / params["x_c"])
    if regime == "dipole":
        return dict(T_U_K=PAPER_TU_OVER_SCALE * gj0 * np.maximum(1.0, v),
                    C_o=kl * params["g"] / np.maximum(1.0, v))
    raise ValueError(f"`paper_laws(regime=...)` must be one of {REGIMES}; got {regime!r}")


def _slope(log_x: np.ndarray, y: jax.Array) -> jax.Array:
    """Least-squares slope of log y against log_x (NaN unless every y > 0)."""
    lx = log_x - log_x.mean()
    ly = jnp.log(jnp.where(y > 0, y, 1.0))
    s = jnp.sum(lx * ly) / float(np.sum(lx * lx))
    return jnp.where(jnp.all(y > 0), s, jnp.nan)


def _window_slopes(log_x: np.ndarray, y: jax.Array) -> jax.Array:
    """`_slope` over points i.., for every i with at least 2 points left: (m - 1,)."""
    return jnp.stack([_slope(log_x[i:], y[i:]) for i in range(log_x.shape[0] - 1)])


def _local_slopes(log_x: np.ndarray, y: jax.Array) -> jax.Array:
    """d ln y / d ln x between neighbouring points (NaN where y <= 0 at either end)."""
    ly = jnp.log(jnp.where(y > 0, y, 1.0))
    s = jnp.diff(ly) / np.diff(log_x)
    return jnp.where((y[1:] > 0) & (y[:-1] > 0), s, jnp.nan)


@dataclass
class RegimeScan:
    """Disorder-averaged output of one regime's scan (NumPy, float64).

    `mean` and `stderr` hold, per observable, arrays along the axis, and scalars for the
    slopes `slope_<observable>` (fitted where `slope_mask` is True). `laws` holds the
    paper's laws on the same axis (no errors), `params` the model's parameters.
    """

    name: str
    axis: str
    values: np.ndarray
    cells: list[int]
    mean: dict[str, np.ndarray]
    stderr: dict[str, np.ndarray]
    realizations: int
    seconds: float
    params: dict
    laws: dict[str, np.ndarray]
    slope_mask: np.ndarray
    paper_slopes: dict[str, float] = field(default_factory=dict)
    exponent_of: str = "T_U_K"

    def value(self, key: str) -> dict:
        return dict(mean=self.mean[key], stderr=self.stderr[key])

    def slope(self, key: str) -> dict:
        """Log-log slope of `key` along the axis (mean, stderr over realizations, the
        paper's value, the points fitted); NaN where undefined (see `note`)."""
        k = f"slope_{key}"
        if k not in self.mean:
            return dict(mean=math.nan, stderr=math.nan, paper=self.paper_slopes.get(key),
                        over=self.values[self.slope_mask],
                        note="fewer than 2 points in the fit range")
        mean, err = np.atleast_1d(self.mean[k]), np.atleast_1d(self.stderr[k])
        over = self.values[self.slope_mask]
        finite = np.flatnonzero(np.isfinite(mean))
        i = int(finite[0]) if finite.size else 0  # the widest window x_i.. x_max defined
        out = dict(mean=float(mean[i]), stderr=float(err[i]),
                   paper=self.paper_slopes.get(key), over=over[i:])
        if not finite.size:
            out["note"] = "undefined: the value is 0 (no crossover) in some realization"
        elif i > 0:
            out["note"] = (f"fitted over {over[i]:g} <= {self.axis} <= {over[-1]:g}: below, the "
                           "value is 0 (no crossover) in some realization")
        return out

    def to_json(self) -> dict:
        out = {self.axis: self.values, "cells": self.cells, "realizations": self.realizations,
               "seconds": self.seconds, "parameters": self.params,
               "n_sites_mean": self.mean["n_sites"]}
        for k in self.mean:
            if not k.startswith(("slope_", "local_")) and k != "n_sites":
                out[k] = self.value(k)
        out["exponent"] = dict(of=self.exponent_of, **self.slope(self.exponent_of))
        out["slopes"] = {k[6:]: self.slope(k[6:]) for k in self.mean if k.startswith("slope_")}
        out["paper_laws"] = self.laws
        if self.name == "dilution":
            out["cutoff"] = self.params["cutoff"]
            out["exponents"] = self.exponents()
            out["local_exponents"] = self.local_exponents()
        out["flip_energy_K"] = {k: dict(mean=2.0 * self.mean[k], stderr=2.0 * self.stderr[k])
                                for k in self.mean if _is_energy(k)}
        return out

    def exponents(self) -> dict:
        """The dilute crystal's log-log slopes over x <= 0.1, `{"value", "stderr"}` each
        (None where undefined, with a `note`)."""
        out = {}
        for name, key in DILUTION_EXPONENTS.items():
            if key not in self.mean:
                continue
            s = self.slope(key)
            ok = np.isfinite(s["mean"])
            out[name] = dict(value=s["mean"] if ok else None,
                             stderr=s["stderr"] if ok else None, paper=s["paper"],
                             over=([float(s["over"][0]), float(s["over"][-1])]
                                   if len(s["over"]) else None))
            if "note" in s:
                out[name]["note"] = s["note"]
        return out

    def local_exponents(self) -> dict:
        """d ln y / d ln x between neighbouring x (at their geometric mean `x`): mean and
        s.e. over realizations (None where some realization has y = 0)."""
        x = self.values
        out = dict(x=np.sqrt(x[1:] * x[:-1]), x_lo=x[:-1], x_hi=x[1:])
        for name, key in DILUTION_EXPONENTS.items():
            if f"local_{key}" not in self.mean:
                continue
            m, e = self.mean[f"local_{key}"], self.stderr[f"local_{key}"]
            out[name] = dict(value=[float(v) if np.isfinite(v) else None for v in m],
                             stderr=[float(v) if np.isfinite(v) else None for v in e])
        return out


def _is_energy(key: str) -> bool:
    """Observables in kelvin (local fields |lambda|; `flip_energy_K` doubles them)."""
    return key.endswith("_K") and not key.startswith(("slope_", "local_"))


def _run(name, fn, keys, config, progress, devices, checkpoint):
    start = time.perf_counter()
    mean, err, count = disorder_average(fn, keys, progress=progress, description=name,
                                        devices=devices, checkpoint=checkpoint, config=config)
    return mean, err, count, time.perf_counter() - start


def _x_scan(name, model, params, xs, n_target, slope_keys, realizations, seed, kappa_log,
            probe_K, progress, devices, checkpoint, local_keys=(), n_s_depletion=None):
    """Run `model.simulate` at every x for each key; observables, slopes over x <= 0.1,
    local slopes between neighbouring x for `local_keys`."""
    cells = [cells_for(float(x), n_target, f"{name}(x={x:g}, n_target=...)") for x in xs]
    samples = [Sample(float(x), cells=c) for x, c in zip(xs, cells)]
    mask = xs <= EXPONENT_X_MAX

    def fn(key):
        obs = []
        for s in samples:
            r = model.simulate(s, key)
            o = regime_observables(r, kappa_log, probe_K=probe_K, n_s_depletion=n_s_depletion)
            o["n_sites"] = r.es.n_sites.astype(o["C_o"].dtype)
            obs.append(o)
        out = {k: jnp.stack([o[k] for o in obs]) for k in obs[0]}
        if mask.sum() >= 2:
            for k in slope_keys:
                out[f"slope_{k}"] = _window_slopes(np.log(xs[mask]), out[k][mask])
        if len(xs) >= 2:
            for k in local_keys:
                out[f"local_{k}"] = _local_slopes(np.log(xs), out[k])
        return out

    keys = jax.random.split(seed_key("regimes", "seed", seed), realizations)
    config = dict(regime=name, params=params, x=xs.tolist(), cells=cells, probe_K=probe_K,
                  n_s_depletion=n_s_depletion)
    mean, err, count, secs = _run(name, fn, keys, config, progress, devices, checkpoint)
    return cells, mean, err, count, secs, mask


def dilution_scan(crystal: DiluteCrystal | None = None, x=DEFAULT_X_DILUTE, *,
                  n_target: int = DEFAULT_N_TARGET, realizations: int = 16, seed: int = 0,
                  kappa_log=DEFAULT_KAPPA_LOG, n_s_depletion=MC_N_S_DEPLETION,
                  progress: bool = True, devices=None, checkpoint=None) -> RegimeScan:
    """T_U(x), C_o(x) of the dilute pure crystal (Sec. III B) and their exponents.

    **Arguments:**

    - `crystal`: a `DiluteCrystal` (default: J_nn = 2500 K, g_c = 0.02, x_c = 0.2, a~ = 3,
      cutoff fixed in a_o; `DiluteCrystal(cutoff="scaled")` keeps a~ / R_o fixed).
    - `x`: strictly increasing concentrations in (0, 1].
    - `n_target`: mean impurities per sample (cells chosen per x, L ~ x^{-1/3}).
    - `realizations`, `seed`: keys `jax.random.split(seed_key(seed), realizations)` (the
      same sample with and without x64, seeds in [0, 2^64 - 1]).
    - `kappa_log`: as in `ModelParams`.
    - `n_s_depletion`: n_S / n_S^o at E-bar for `T_U_correlated_K` (`regime_observables`),
      in (0, 1], or None to skip (default `MC_N_S_DEPLETION`).
    - `progress`, `devices`, `checkpoint`: as in `disorder_average`.

    **Returns:** a `RegimeScan` with slopes over x <= 0.1 of T_U (full criterion, shortcut
    P_S = 5 g, fixed target P_S = 0.1), <E_tau> and C_o (paper: 7/3, 7/3, 7/3, 7/3, 4/3),
    and their local slopes between neighbouring x (`local_<observable>`).
    """
    crystal = DiluteCrystal() if crystal is None else crystal
    xs = _axis("dilution_scan", "x", x, True, 1.0)
    n_target = check_int("dilution_scan", "n_target", n_target, 20)
    realizations = check_int("dilution_scan", "realizations", realizations, 1)
    if n_s_depletion is not None:
        n_s_depletion = _f(check_range("dilution_scan", "n_s_depletion", n_s_depletion,
                                       0.0, 1.0, lo_open=True))
    params = dict(J_nn_K=_f(crystal.J_nn), g_c=_f(crystal.g_c), x_c=_f(crystal.x_c),
                  atilde=_f(crystal.atilde), cutoff=crystal.cutoff,
                  atilde_over_R_o_at_x_c=_f(crystal.atilde * crystal.x_c ** (1.0 / 3.0)),
                  kappa_log=float(kappa_log), n_target=n_target, n_s_depletion=n_s_depletion)
    local = tuple(v for v in DILUTION_EXPONENTS.values()
                  if n_s_depletion is not None or v != "T_U_correlated_K")
    cells, mean, err, count, secs, mask = _x_scan(
        "dilution", crystal, params, xs, n_target, (*local, "T_U_over_E_tau"), realizations,
        seed, kappa_log, None, progress, devices, checkpoint, local_keys=local,
        n_s_depletion=n_s_depletion)
    laws = paper_laws("dilution", params, xs)
    paper = dict(T_U_K=7.0 / 3.0, T_U_shortcut_K=7.0 / 3.0, T_U_fixed_target_K=7.0 / 3.0,
                 C_o=4.0 / 3.0, T_U_over_E_tau=0.0, E_tau_K=7.0 / 3.0,
                 T_U_nominal_JS_K=7.0 / 3.0, T_U_correlated_K=7.0 / 3.0)
    return RegimeScan("dilution", "x", xs, cells, mean, err, count, secs, params, laws, mask,
                      paper)


def mixed_scan(crystal: MixedCrystal | None = None, x=DEFAULT_X_MIXED, *,
               n_target: int = DEFAULT_N_TARGET, realizations: int = 16, seed: int = 0,
               kappa_log=DEFAULT_KAPPA_LOG, progress: bool = True, devices=None,
               checkpoint=None) -> RegimeScan:
    """C_o(x), T_U(x) of CN in a mixed host crystal (Sec. III B) and their exponents.

    Arguments as in `dilution_scan`; `crystal` is a `MixedCrystal` (default g = 0.02,
    J_o = 500 K, a~ = 3, x_c = 0.2, h_S = h_tau = 1). C(E) is also reported at
    E = 0.05 g J_o (`C_tau_probe`, `C_S_probe`).

    **Returns:** a `RegimeScan` with slopes of C_o and T_U_K over x <= 0.1 (paper: 1, 0).
    """
    crystal = MixedCrystal() if crystal is None else crystal
    xs = _axis("mixed_scan", "x", x, True, 1.0)
    n_target = check_int("mixed_scan", "n_target", n_target, 20)
    realizations = check_int("mixed_scan", "realizations", realizations, 1)
    gj0 = _f(crystal.g) * _f(crystal.J0)
    xc = _f(crystal.x_c)
    params = dict(g=_f(crystal.g), J0_K=_f(crystal.J0), atilde=_f(crystal.atilde),
                  x_c=xc, h_S=_f(crystal.h_S), h_tau=_f(crystal.h_tau),
                  kappa_log=float(kappa_log), n_target=n_target,
                  probe_K=MIXED_PROBE_OVER_GJ0 * gj0)
    cells, mean, err, count, secs, mask = _x_scan(
        "mixed", crystal, params, xs, n_target, ("C_o", "T_U_K", "T_U_shortcut_K"),
        realizations, seed, kappa_log, MIXED_PROBE_OVER_GJ0 * gj0, progress, devices,
        checkpoint)
    laws = paper_laws("mixed", params, xs)
    return RegimeScan("mixed", "x", xs, cells, mean, err, count, secs, params, laws, mask,
                      dict(C_o=1.0, T_U_K=0.0, T_U_shortcut_K=0.0), exponent_of="C_o")


def dipole_scan(defects: DipolarDefects | None = None, J_ee_over_gJ0=DEFAULT_J_EE, *,
                x: float = DEFAULT_DIPOLE_SAMPLE[0], cells: int = DEFAULT_DIPOLE_SAMPLE[1],
                realizations: int = 16, seed: int = 0, kappa_log=DEFAULT_KAPPA_LOG,
                progress: bool = True, devices=None, checkpoint=None) -> RegimeScan:
    """T_U and C_o versus J_ee / (g J_o) (Sec. III B), one sample, common random numbers.

    **Arguments:**

    - `defects`: a `DipolarDefects` giving g, J_o, a~ and the dipolar cutoff (its own
      J_ee is ignored; default g = 0.02, J_o = 500 K, a~ = a_d = 3).
    - `J_ee_over_gJ0`: strictly increasing values >= 0. J_ee = 0 is always computed as
      well (`reference`), on the same sample and keys.
    - `x`, `cells`: the fcc sample.
    - the rest as in `dilution_scan`.

    **Returns:** a `RegimeScan` with slopes of T_U_K and C_o over J_ee / (g J_o) >= 3
    (paper: 1 and -1), the J_ee = 0 values as `reference_<observable>`, and `P_tau`
    (J_ee x energies): the ES reduction of the tau DOS by the dipolar tau-tau couplings at
    E = `TAU_PROBE_OVER_JEE` x J_ee (App. B 1; paper, Eq. B6: 1 - c ln(J_ee / E) with
    c ~ J_ee / (g J_o), a weak depression for J_ee < g J_o).
    """
    base = DipolarDefects() if defects is None else defects
    ratios = _axis("dipole_scan", "J_ee_over_gJ0", J_ee_over_gJ0, False, math.inf)
    realizations = check_int("dipole_scan", "realizations", realizations, 1)
    sample = Sample(x, cells=check_int("dipole_scan", "cells", cells, 2))
    mask = ratios >= EXPONENT_JEE_MIN
    all_ratios = jnp.asarray(np.concatenate([[0.0], ratios]))

    tau_probe = jnp.asarray(TAU_PROBE_OVER_JEE)

    def one(ratio, key):
        d = DipolarDefects(base.g, base.J0, base.atilde, ratio, base.dipole_atilde)
        r = d.simulate(sample, key, tau_pairs=True)
        o = regime_observables(r, kappa_log, tau_probe_K=tau_probe * d.J_ee)
        o["n_sites"] = r.es.n_sites.astype(o["C_o"].dtype)
        return o

    def fn(key):
        o = jax.vmap(one, (0, None))(all_ratios, key)
        out = {k: v[1:] for k, v in o.items()}
        out.update({f"reference_{k}": v[0] for k, v in o.items()
                    if k not in ("n_sites", "P_tau")})
        if mask.sum() >= 2:
            for k in ("T_U_K", "T_U_shortcut_K", "C_o"):
                out[f"slope_{k}"] = _slope(np.log(ratios[mask]), out[k][mask])
        return out

    keys = jax.random.split(seed_key("regimes", "seed", seed), realizations)
    g, j0 = _f(base.g), _f(base.J0)
    kl = float(kappa_log)
    params = dict(g=g, J0_K=j0, atilde=_f(base.atilde),
                  dipole_atilde=_f(base.dipole_atilde), x=x, kappa_log=kl)
    config = dict(regime="dipole", params=params, ratios=ratios.tolist(), cells=cells)
    mean, err, count, secs = _run("dipole", fn, keys, config, progress, devices, checkpoint)
    laws = paper_laws("dipole", params, ratios)
    params["P_tau_energies_over_J_ee"] = list(TAU_PROBE_OVER_JEE)
    return RegimeScan("dipole", "J_ee_over_gJ0", ratios, [cells], mean, err, count, secs,
                      params, laws, mask, dict(T_U_K=1.0, T_U_shortcut_K=1.0, C_o=-1.0))



def _check_options(where, cutoff, n_s_depletion, dipole_x, dipole_cells) -> None:
    """`run_regimes`' checks of the cutoff, the depletion and the dipole sample."""
    if cutoff not in CUTOFFS:
        raise ValueError(f"`{where}(cutoff=...)` must be one of {CUTOFFS}; got {cutoff!r}")
    if n_s_depletion is not None:
        check_range(where, "n_s_depletion", n_s_depletion, 0.0, 1.0, lo_open=True)
    check_range(where, "dipole_x", dipole_x, 0.0, 1.0, lo_open=True)
    check_int(where, "dipole_cells", dipole_cells, 2)


def run_regimes(
    regimes=REGIMES,
    *,
    x_dilute=DEFAULT_X_DILUTE,
    x_mixed=DEFAULT_X_MIXED,
    J_ee_over_gJ0=DEFAULT_J_EE,
    n_target: int = DEFAULT_N_TARGET,
    realizations: int = 16,
    seed: int = 0,
    g=DEFAULT_G,
    J0=DEFAULT_J0_K,
    atilde=DEFAULT_ATILDE,
    cutoff: str = "fixed",
    x_c=DEFAULT_X_C,
    J_nn=None,
    n_s_depletion=MC_N_S_DEPLETION,
    h_S=1.0,
    h_tau=1.0,
    kappa_log=DEFAULT_KAPPA_LOG,
    dipole_x: float = DEFAULT_DIPOLE_SAMPLE[0],
    dipole_cells: int = DEFAULT_DIPOLE_SAMPLE[1],
    dipole_atilde=None,
    progress: bool = True,
    devices=None,
    checkpoint_dir=None,
) -> dict[str, RegimeScan]:
    """All three regimes with shared parameters; every argument is checked before any work.

    g, J_o, a~ are the concentrated crystal's (at x_c, and of the dipole sample); the dilute
    crystal has J_nn = J_o / x_c unless given (so that it equals that crystal at x_c) and
    g_c = g and the cutoff convention `cutoff` ("fixed" or "scaled", `DiluteCrystal`), and
    `n_s_depletion` as in `dilution_scan`. With `checkpoint_dir`, each regime saves and
    resumes its partial ensemble in `<checkpoint_dir>/regimes_<name>.npz`. An interruption
    (Ctrl-C) keeps the finished realizations of the regime being run and skips the regimes
    after it.

    **Returns:** a dict name -> `RegimeScan` for the chosen `regimes`.
    """
    where = "regimes"
    regimes = tuple(regimes)
    unknown = set(regimes) - set(REGIMES)
    if not regimes or unknown:
        raise ValueError(f"`{where}(regimes=...)` must be a non-empty subset of {REGIMES}; "
                         f"got {sorted(unknown) or 'nothing'}")
    xd = _axis(where, "x_dilute", x_dilute, True, 1.0)
    xm = _axis(where, "x_mixed", x_mixed, True, 1.0)
    ratios = _axis(where, "J_ee_over_gJ0", J_ee_over_gJ0, False, math.inf)
    n_target = check_int(where, "n_target", n_target, 20)
    realizations = check_int(where, "realizations", realizations, 1)
    x_c = float(check_range(where, "x_c", x_c, 0.0, 1.0, lo_open=True))
    J0 = float(check_range(where, "J0", J0, 0.0, lo_open=True))
    J_nn = J0 / x_c if J_nn is None else float(check_range(where, "J_nn", J_nn, 0.0,
                                                            lo_open=True))
    _check_options(where, cutoff, n_s_depletion, dipole_x, dipole_cells)
    for name, xs in (("x_dilute", xd), ("x_mixed", xm)):
        if name[2:].replace("dilute", "dilution") in regimes:
            for x in xs:  # the lattice sizes, checked before any work
                cells_for(float(x), n_target, f"{where}({name}={x:g}, n_target=...)")
    models = dict(
        dilution=DiluteCrystal(J_nn=J_nn, g_c=g, x_c=x_c, atilde=atilde, cutoff=cutoff),
        mixed=MixedCrystal(g=g, J0=J0, atilde=atilde, x_c=x_c, h_S=h_S, h_tau=h_tau),
        dipole=DipolarDefects(g=g, J0=J0, atilde=atilde, dipole_atilde=dipole_atilde),
    )
    check_range(where, "kappa_log", kappa_log, 0.0, 1.0, lo_open=True)
    common = dict(realizations=realizations, seed=seed, kappa_log=kappa_log,
                  progress=progress, devices=devices)

    def ckpt(name):
        if checkpoint_dir is None:
            return None
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
        return Path(checkpoint_dir) / f"regimes_{name}.npz"

    runs = dict(
        dilution=lambda: dilution_scan(models["dilution"], xd, n_target=n_target,
                                       n_s_depletion=n_s_depletion,
                                       checkpoint=ckpt("dilution"), **common),
        mixed=lambda: mixed_scan(models["mixed"], xm, n_target=n_target,
                                 checkpoint=ckpt("mixed"), **common),
        dipole=lambda: dipole_scan(models["dipole"], ratios, x=dipole_x, cells=dipole_cells,
                                   checkpoint=ckpt("dipole"), **common),
    )
    out = {}
    for name in REGIMES:
        if name in regimes:
            out[name] = runs[name]()
            if out[name].realizations < realizations:  # interrupted (Ctrl-C): stop here
                break
    return out


def scan_table(scan: RegimeScan) -> tuple[list[str], list[list]]:
    """(header, rows) of a scan along its axis: every observable's mean and s.e., the
    paper's laws (`paper_*`), cells and mean impurity count."""
    keys = [k for k in scan.mean if np.ndim(scan.mean[k]) == 1 and k != "n_sites"
            and not k.startswith(("local_", "slope_"))]
    header = [scan.axis, "cells", "n_sites_mean"]
    for k in keys:
        header += [k, f"{k}_stderr"]
    header += [f"paper_{k}" for k in scan.laws]
    cells = scan.cells if len(scan.cells) == len(scan.values) else scan.cells * len(scan.values)
    rows = []
    for i, v in enumerate(scan.values):
        row = [float(v), int(cells[i]), float(scan.mean["n_sites"][i])]
        for k in keys:
            row += [float(scan.mean[k][i]), float(scan.stderr[k][i])]
        row += [float(scan.laws[k][i]) for k in scan.laws]
        rows.append(row)
    return header, rows


def _fmt(scan: RegimeScan, key: str, i: int, unit: str = "") -> str:
    """`mean ± s.e. unit`, saying what is undefined instead of printing nan."""
    m, e = float(scan.mean[key][i]), float(scan.stderr[key][i])
    if not np.isfinite(m):
        return ("undefined (in some realization P_S never reaches the target "
                "g^2 n_tau / n_S^o: no crossover at any E)")
    if scan.realizations < 2:  # the section header says that there are no errors
        return f"{m:.3g}{unit}"
    return (f"{m:.3g} ± {e:.2g}" if np.isfinite(e) else f"{m:.3g} (no standard error)") + unit


def _slope_text(scan: RegimeScan, key: str) -> str:
    if f"slope_{key}" not in scan.mean:
        return "n/a (fewer than 2 points in the fit range)"
    s = scan.slope(key)
    if not np.isfinite(s["mean"]):
        return "undefined (T_U = 0 or no crossover in some realization inside the fit range)"
    rng = f" over {s['over'][0]:g}..{s['over'][-1]:g}" if "note" in s else ""
    if scan.realizations < 2:
        return f"{s['mean']:.3f}{rng} (paper {s['paper']:.3g})"
    return f"{s['mean']:.3f} ± {s['stderr']:.3f}{rng} (paper {s['paper']:.3g})"


def _local_text(scan: RegimeScan) -> list[str]:
    """Local exponents d ln y / d ln x of the dilute crystal, one line per observable."""
    loc = scan.local_exponents()
    lines = ["  local exponents d ln y / d ln x at x = "
             + ", ".join(f"{v:.3g}" for v in loc["x"])]
    for name in DILUTION_EXPONENTS:
        if name in loc:
            vals = [("undef." if v is None else f"{v:.2f}") for v in loc[name]["value"]]
            lines.append(f"    {name:<22} " + " ".join(f"{v:>6}" for v in vals))
    return lines


def summary_text(scans: dict[str, RegimeScan]) -> str:
    """A plain-text comparison of each regime with the paper's laws."""
    lines = ["tlsjax regimes: Sec. III B of Schechter & Stamp (2013), computed from samples",
             "(mean ± standard error over realizations; T_U by g^2 n_tau = n_S, and by P_S = 5 g)",
             "energies and temperatures in K are local fields |lambda| (the ES convention); "
             "a single flip costs 2|lambda| (JSON `flip_energy_K`)", ""]
    for name, scan in scans.items():
        count = ("1 realization: no standard errors" if scan.realizations < 2
                 else f"{scan.realizations} realizations")
        lines.append(f"[{name}] {count}, {scan.seconds:.1f} s, parameters {scan.params}")
        for i, v in enumerate(scan.values):
            extra = ""
            if "crossover" in scan.mean and scan.mean["crossover"][i] < 1:
                extra = f"  (crossover in {scan.mean['crossover'][i]:.0%} of realizations)"
            lines.append(f"  {scan.axis} = {v:<6g} T_U = {_fmt(scan, 'T_U_K', i, ' K')}, shortcut "
                         f"{_fmt(scan, 'T_U_shortcut_K', i, ' K')} (paper {scan.laws['T_U_K'][i]:.3g} K);"
                         f" C_o = {_fmt(scan, 'C_o', i)} (paper {scan.laws['C_o'][i]:.3g}){extra}")
        keys = (DILUTION_EXPONENTS.values() if name == "dilution"
                else ("T_U_K", "T_U_shortcut_K", "C_o"))
        for key in keys:
            if f"slope_{key}" in scan.mean:
                rng = "x <= 0.1" if scan.axis == "x" else f"J_ee/(g J_o) >= {EXPONENT_JEE_MIN:g}"
                lines.append(f"  log-log slope of {key} over {rng}: {_slope_text(scan, key)}")
        if name == "dilution" and len(scan.values) >= 2:
            lines += _local_text(scan)
        lines.append("")
    return "\n".join(lines)
