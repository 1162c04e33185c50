"""Monte Carlo check of the dipole regime's tau DOS (Sec. III B; App. B 1, Eqs. B5-B6).

The dipole scan (`dipole_scan`) estimates the tau-tau depression of n_tau(E) by the ES
product with the dipolar tau-tau couplings (`tau_pair_bound`, elastic g^2 J_o tau-tau
left out). Here the full Hamiltonian with the same dipoles (`HamiltonianParams(
J_ee_over_gJ0=...)`: S-S, S-tau and tau-tau, elastic and dipolar, same key) is annealed,
tempered and descended to pair-stable states (`run_mc`), and the measured single-flip
DOS of the tau spins is compared with

- the mean-field n_tau^o of the same Hamiltonian (2 |lambda| in random configurations):
  the MC reduction is n_tau(E) / n_tau^o(E);
- the ES estimate of the same realization, P_tau(E) = fraction of tau spins whose
  `tau_pair_bound` lies below E, applied to n_tau^o: the predicted reduction in an energy
  window is the mean of P_tau over the mean-field samples in it;
- Eq. B6, 1 - c ln(J_tt / E) below J_tt (c = J_tt / (g J_o); J_tt = J_ee, or g^2 J_o
  without dipoles: then c = g), and the bound Eq. B5 on the S-tau part,
  1 - 4 g ln(2 g J_o / E).

Energies follow the ES convention E = |lambda| = eps / 2 (docs/conventions.md section 6: the pair
condition E_i + E_j >= 2 |K_ij| of App. B), in kelvin, and are binned in units of J_tt.
Every ratio is a ratio of counts pooled over realizations (the best state of each);
its standard error is the jackknife over realizations.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

from .._io import _jsonable, atomic_write_text, run_id
from .._validate import check_grid, check_int, check_range, seed_key
from ..model._hamiltonian import HamiltonianParams, hamiltonian
from ..model._lattice import Sample
from ..model._mc_run import MCConfig, run_mc
from ..model._params import DEFAULT_ATILDE, DEFAULT_G, DEFAULT_J0_K
from ..model._regime_params import DipolarDefects
from ..observables._flip import mean_field_flip_energies, single_flip_energies
from ._regimes import _axis

#: J_ee / (g J_o) of the check: none, weak (< g J_o), equal, strong.
DEFAULT_MC_J_EE = (0.0, 0.1, 1.0, 3.0)
#: x = 0.2, L = 8 (~410 impurities).
DEFAULT_MC_SAMPLE = (0.2, 8)
#: Energy window edges in units of J_tt: two per decade from 10^-2.5 to 10.
DEFAULT_EDGES = tuple(10.0 ** np.arange(-2.5, 1.01, 0.5))
#: Cumulative windows [0, E] at these E / J_tt.
CUMULATIVE_PROBES = (0.01, 0.03, 0.1, 0.3, 1.0)
#: Random configurations per realization for the mean-field DOS.
DEFAULT_CONFIGURATIONS = 16
#: `fold_in` tag of the mean-field configurations' key (apart from the Monte Carlo's).
MF_STREAM = 0x4D46


def _jackknife_ratio(num: np.ndarray, den: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sum_v num / sum_v den along axis 0, and its jackknife standard error (NaN for one
    realization, or where a leave-one-out denominator is 0)."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    tot_n, tot_d = num.sum(0), den.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(tot_d > 0, tot_n / np.where(tot_d > 0, tot_d, 1.0), np.nan)
        v = num.shape[0]
        if v < 2:
            return ratio, np.full_like(ratio, np.nan)
        loo_d = tot_d[None] - den
        loo = np.where(loo_d > 0, (tot_n[None] - num) / np.where(loo_d > 0, loo_d, 1.0), np.nan)
        se = np.sqrt((v - 1) / v * np.sum((loo - loo.mean(0)) ** 2, axis=0))
    return ratio, se


def eq_b6(e, j_tt, c) -> np.ndarray:
    """Eq. B6: 1 - c ln(J_tt / E) for E < J_tt, 1 above, clipped at 0 (K, K, -)."""
    e = np.asarray(e, float)
    with np.errstate(divide="ignore"):
        return np.clip(1.0 - c * np.log(np.maximum(j_tt / e, 1.0)), 0.0, 1.0)


def eq_b5(e, g, gj0) -> np.ndarray:
    """Eq. B5's bound on the S-tau part: 1 - 4 g ln(2 g J_o / E), clipped to [0, 1]."""
    e = np.asarray(e, float)
    with np.errstate(divide="ignore"):
        return np.clip(1.0 - 4.0 * g * np.log(np.maximum(2.0 * gj0 / e, 1.0)), 0.0, 1.0)


def _windows(values, weights, lo, hi):
    """sum of `weights` over the `values` in each window [lo_b, hi_b): (..., B)."""
    v = np.asarray(values)[..., None]
    inside = (v >= lo) & (v < hi)
    return np.sum(np.where(inside, np.asarray(weights)[..., None], 0.0), axis=-2)


def _case_sums(e_mc, e_mf, e_min, j_tt, c, g, gj0, lo, hi) -> dict[str, np.ndarray]:
    """(V, W) window sums of one J_ee: tau spins of the MC states (`mc`); mean-field samples
    per configuration (`mean_field`); and the same samples weighted by the ES P_tau of
    their realization (`es`), by Eq. B6 (`B6`) and by Eq. B5 (`B5`).

    `e_mc[v]` (n_v,), `e_mf[v]` (M, n_v), `e_min[v]` (n_v,): energies in K of realization v.
    """
    out: dict[str, list] = {k: [] for k in ("mc", "mean_field", "es", "B6", "B5")}
    for mc, mf, em in zip(e_mc, e_mf, e_min):
        per_config = np.full(mf.shape, 1.0 / mf.shape[0])
        p_es = np.searchsorted(np.sort(em), mf, side="left") / em.size  # P(E_min < E)
        out["mc"].append(_windows(mc, np.ones(mc.shape), lo, hi))
        for name, w in (("mean_field", 1.0), ("es", p_es), ("B6", eq_b6(mf, j_tt, c)),
                        ("B5", eq_b5(mf, g, gj0))):
            out[name].append(_windows(mf.ravel(), (per_config * w).ravel(), lo, hi))
    return {k: np.asarray(v) for k, v in out.items()}


def _side_function(sample: Sample, g, J0, atilde, a_d, pad_to: int, configurations: int):
    """Jitted (key, J_ee / g J_o) -> the realization's mean-field tau energies, its ES
    tau-pair bounds (K, E = |lambda| convention) and ES <E_tau> (K)."""

    @jax.jit
    def side(key, ratio):
        params = HamiltonianParams(g, J0, atilde, J_ee_over_gJ0=ratio, dipole_atilde=a_d)
        ham = hamiltonian(sample, params, key, pad_to=pad_to)
        mf = mean_field_flip_energies(ham, jax.random.fold_in(key, MF_STREAM), configurations)
        r = DipolarDefects(g, J0, atilde, ratio, a_d).simulate(sample, key, tau_pairs=True)
        return (mf.tau / 2.0, mf.mask, r.tau_e_min * r.es.e_tau_mean * r.unit_K, r.es.mask,
                r.e_tau_K)

    return side


def _one_case(ratio, sample, keys, config, side, model, windows, progress) -> dict:
    """Monte Carlo, mean field and ES of every realization at one J_ee; per-realization
    window sums and scalars (lists, JSON-ready). `model` = (g, J_o, a~, a_d)."""
    g, J0, atilde, a_d = model
    params = HamiltonianParams(g, J0, atilde, J_ee_over_gJ0=ratio, dipole_atilde=a_d)
    res = run_mc(sample, params, keys, config, progress=progress)
    if res.interrupted:
        raise KeyboardInterrupt
    flips = single_flip_energies(res)
    gj0 = g * J0
    j_tt = ratio * gj0 if ratio > 0 else g * gj0
    e_mc, e_mf, e_min, e_es = [], [], [], []
    for v, key in enumerate(keys):
        mask = np.asarray(flips.mask[v])
        e_mc.append(np.asarray(flips.tau[v])[mask] / 2.0)  # >= -tol / 2 (stable states)
        mf, mf_mask, em, em_mask, e_tau = side(key, ratio)
        e_mf.append(np.asarray(mf)[:, np.asarray(mf_mask[0])])
        e_min.append(np.asarray(em)[np.asarray(em_mask)])
        e_es.append(float(e_tau))
    c = j_tt / gj0
    case = dict(J_ee_over_gJ0=ratio, J_tt_K=j_tt, c=c,
                e_tau_mc_K=[float(e.mean()) for e in e_mc],
                e_tau_mean_field_K=[float(e.mean()) for e in e_mf], e_tau_es_K=e_es,
                energy_per_impurity_K=(np.asarray(res.lowest_energy)
                                       / np.asarray(res.n_sites)).tolist(),
                n_sites=np.asarray(res.n_sites).tolist(),
                unstable=[int(np.sum(res.after.single)), int(np.sum(res.after.pair))],
                negative=int(sum(np.sum(e < 0) for e in e_mc)), tol_K=float(res.tol))
    # eps within the descent tolerance of 0 may have either sign: count them at |eps|
    e_mc = [np.abs(e) for e in e_mc]
    for name, (lo, hi) in windows.items():
        sums = _case_sums(e_mc, e_mf, e_min, j_tt, c, g, gj0, lo * j_tt, hi * j_tt)
        case[name] = {k: v.tolist() for k, v in sums.items()}
    return case


@dataclass
class TauDOSCheck:
    """The Monte Carlo tau DOS against the ES estimate and Eqs. B5-B6 (module docstring).

    Axis 0 of every array is J_ee (`J_ee_over_gJ0`). `binned[name]` and
    `cumulative[name]` are (mean, stderr) pairs of (K, W) arrays, the reduction
    n_tau / n_tau^o in the windows [edges_b, edges_b+1) J_tt (binned) and [0, probe J_tt)
    (cumulative); names `mc` (Monte Carlo), `es` (ES P_tau on n_tau^o), `B6`, `B5`.
    `counts[name]` holds the pooled numbers behind them: `mc` tau spins found in the
    windows, `mean_field` the expected number without correlations (both summed over
    realizations). `e_tau_K[name]`: <E_tau> (mean, stderr over realizations) in the final
    MC states (`mc`), in random configurations (`mean_field`) and in the ES reduction
    (`es`: S-tau fields only). `unstable` (K, 3): single- and pair-unstable spins of all
    final replicas, and tau spins of the best states with eps < 0 (stable only to the
    descent tolerance `tol_K`, K; they are counted at |eps|).
    """

    J_ee_over_gJ0: np.ndarray
    J_tt_K: np.ndarray
    c: np.ndarray
    edges: np.ndarray
    probes: np.ndarray
    binned: dict
    cumulative: dict
    counts: dict
    cumulative_counts: dict
    e_tau_K: dict
    energy_per_impurity_K: tuple
    unstable: np.ndarray
    n_sites_mean: float
    realizations: int
    seconds: float
    tol_K: float = float("nan")
    params: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """Everything, JSON-ready (NaN -> null)."""
        def pairs(d):
            return {k: dict(mean=v[0], stderr=v[1]) for k, v in d.items()}

        return _jsonable(dict(
            J_ee_over_gJ0=self.J_ee_over_gJ0, J_tt_K=self.J_tt_K, B6_c=self.c,
            energy_convention="E = |lambda| = eps / 2 (K), windows in units of J_tt",
            windows_over_J_tt=dict(lo=self.edges[:-1], hi=self.edges[1:]),
            cumulative_over_J_tt=self.probes, reduction=pairs(self.binned),
            cumulative_reduction=pairs(self.cumulative), counts=self.counts,
            cumulative_counts=self.cumulative_counts, E_tau_K=pairs(self.e_tau_K),
            energy_per_impurity_K=dict(mean=self.energy_per_impurity_K[0],
                                       stderr=self.energy_per_impurity_K[1]),
            unstable=dict(single=self.unstable[:, 0], pair=self.unstable[:, 1],
                          negative_tau_eps=self.unstable[:, 2]),
            descent_tolerance_K=self.tol_K,
            n_sites_mean=self.n_sites_mean, realizations=self.realizations,
            seconds=self.seconds, parameters=self.params))

    def table(self) -> tuple[list[str], list[list]]:
        """(header, rows) for CSV: one row per J_ee and window (binned, then cumulative)."""
        header = ["J_ee_over_gJ0", "J_tt_K", "kind", "lo_over_J_tt", "hi_over_J_tt",
                  "n_mc", "n_mean_field"]
        for k in ("mc", "es", "B6", "B5"):
            header += [k, f"{k}_stderr"] if k in ("mc", "es") else [k]
        rows = []
        for kind, res, cnt, lo, hi in (
                ("window", self.binned, self.counts, self.edges[:-1], self.edges[1:]),
                ("cumulative", self.cumulative, self.cumulative_counts,
                 np.zeros_like(self.probes), self.probes)):
            for i, r in enumerate(self.J_ee_over_gJ0):
                for w in range(len(lo)):
                    row = [float(r), float(self.J_tt_K[i]), kind, float(lo[w]), float(hi[w]),
                           float(cnt["mc"][i, w]), float(cnt["mean_field"][i, w])]
                    for k in ("mc", "es", "B6", "B5"):
                        row.append(float(res[k][0][i, w]))
                        if k in ("mc", "es"):
                            row.append(float(res[k][1][i, w]))
                    rows.append(row)
        return header, rows

    def summary(self) -> str:
        """A plain-text table of the cumulative reductions."""
        lines = [f"tau DOS reduction n_tau/n_tau^o below E (Monte Carlo of Eq. 1 with dipoles, "
                 f"{self.realizations} realizations, ~{self.n_sites_mean:.0f} impurities; "
                 "E = |lambda| = eps/2; mean ± s.e.; final states single- and pair-stable to "
                 f"{self.tol_K:.2g} K: unstable spins {self.unstable[:, :2].sum()}, tau spins "
                 f"with eps < 0 {self.unstable[:, 2].sum()})"]
        for i, r in enumerate(self.J_ee_over_gJ0):
            lines.append(f"J_ee = {r:g} g J_o (J_tt = {self.J_tt_K[i]:.3g} K, c = {self.c[i]:.3g}):"
                         f" <E_tau> MC {self.e_tau_K['mc'][0][i]:.3g} K, mean field "
                         f"{self.e_tau_K['mean_field'][0][i]:.3g} K")
            for w, pr in enumerate(self.probes):
                m, e = self.cumulative["mc"][0][i, w], self.cumulative["mc"][1][i, w]
                es, ee = self.cumulative["es"][0][i, w], self.cumulative["es"][1][i, w]
                lines.append(f"  E < {pr:g} J_tt: MC {m:.3f} ± {e:.3f} "
                             f"({self.cumulative_counts['mc'][i, w]:.0f} spins, "
                             f"{self.cumulative_counts['mean_field'][i, w]:.1f} expected), ES "
                             f"{es:.3f} ± {ee:.3f}, Eq. B6 {self.cumulative['B6'][0][i, w]:.3f}, "
                             f"Eq. B5 {self.cumulative['B5'][0][i, w]:.3f}")
        return "\n".join(lines)


def _load_cases(path: Path | None, rid: str) -> list[dict]:
    """The finished cases of a checkpoint of the same settings ([] if none)."""
    if path is None or not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"`tau_dos_mc(checkpoint=...)`: {path} is not a readable checkpoint "
                         f"({err}); remove it or choose another path") from None
    if not isinstance(data, dict) or data.get("kind") != "tau_dos_mc":
        raise ValueError(f"`tau_dos_mc(checkpoint=...)`: {path} is not a tau_dos_mc checkpoint")
    if data.get("run_id") != rid:
        raise ValueError(f"`tau_dos_mc(checkpoint=...)`: {path} holds a run with other settings; "
                         "remove it or choose another path")
    return data["cases"]


def _assemble(cases: list[dict], edges, probes, realizations, seconds, params) -> TauDOSCheck:
    def stack(name):
        sums = {k: np.stack([np.asarray(c[name][k]) for c in cases]) for k in cases[0][name]}
        ratios = {k: [] for k in ("mc", "es", "B6", "B5")}
        for i in range(len(cases)):
            for k in ratios:
                ratios[k].append(_jackknife_ratio(sums[k][i], sums["mean_field"][i]))
        res = {k: (np.stack([a for a, _ in v]), np.stack([b for _, b in v]))
               for k, v in ratios.items()}
        return res, {k: sums[k].sum(axis=1) for k in ("mc", "mean_field")}

    binned, counts = stack("binned")
    cumulative, ccounts = stack("cumulative")
    e_tau = {}
    for k in ("mc", "mean_field", "es"):
        vals = [np.asarray(c[f"e_tau_{k}_K"]) for c in cases]
        e_tau[k] = (np.array([v.mean() for v in vals]),
                    np.array([v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else np.nan
                              for v in vals]))
    en = [np.asarray(c["energy_per_impurity_K"]) for c in cases]
    return TauDOSCheck(
        np.array([c["J_ee_over_gJ0"] for c in cases]), np.array([c["J_tt_K"] for c in cases]),
        np.array([c["c"] for c in cases]), np.asarray(edges), np.asarray(probes), binned,
        cumulative, counts, ccounts, e_tau,
        (np.array([v.mean() for v in en]),
         np.array([v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else np.nan for v in en])),
        np.array([c["unstable"] + [c["negative"]] for c in cases]),
        float(np.mean([np.mean(c["n_sites"]) for c in cases])), realizations, seconds,
        max(c["tol_K"] for c in cases), params)


def tau_dos_mc(
    J_ee_over_gJ0=DEFAULT_MC_J_EE,
    *,
    x: float = DEFAULT_MC_SAMPLE[0],
    cells: int = DEFAULT_MC_SAMPLE[1],
    realizations: int = 8,
    seed: int = 0,
    g=DEFAULT_G,
    J0=DEFAULT_J0_K,
    atilde=DEFAULT_ATILDE,
    dipole_atilde=None,
    config: MCConfig | None = None,
    configurations: int = DEFAULT_CONFIGURATIONS,
    edges=DEFAULT_EDGES,
    probes=CUMULATIVE_PROBES,
    checkpoint=None,
    progress: bool = True,
) -> TauDOSCheck:
    """The tau DOS of pair-stable Monte Carlo states of Eq. 1 with electric dipoles, against
    the ES estimate of the dipole regime and Eqs. B5-B6 (module docstring).

    **Arguments:**

    - `J_ee_over_gJ0`: strictly increasing values >= 0 (0: no dipoles, the elastic
      g^2 J_o tau-tau coupling alone; then J_tt = g^2 J_o).
    - `x`, `cells`: the fcc sample (default x = 0.2, L = 8).
    - `realizations`, `seed`: keys `jax.random.split(key(seed), realizations)`, the same
      for every J_ee (common random numbers: the same positions, c_ij, orientations).
    - `g` (in (0, 0.2)), `J0` (K), `atilde`, `dipole_atilde` (default a~): the model.
    - `config`: the `MCConfig` (default: its defaults, 2000 + 500 sweeps, 16 rungs).
    - `configurations`: random configurations per realization for n_tau^o (>= 1).
    - `edges`: increasing window edges in units of J_tt (> 0); `probes`: the upper ends
      of the cumulative windows [0, E) in units of J_tt (> 0, increasing).
    - `checkpoint`: a JSON file keeping the finished J_ee values; a rerun with the same
      settings resumes from it (None: no checkpoint).
    - `progress`: tqdm bars of the Monte Carlo.

    **Returns:** a `TauDOSCheck`. Ctrl-C raises `KeyboardInterrupt` (finished J_ee
    values stay in the checkpoint).
    """
    where = "tau_dos_mc"
    ratios = _axis(where, "J_ee_over_gJ0", J_ee_over_gJ0, False, np.inf)
    cells = check_int(where, "cells", cells, 2)
    realizations = check_int(where, "realizations", realizations, 1)
    configurations = check_int(where, "configurations", configurations, 1)
    edges = np.asarray(check_grid(where, "edges", edges, positive=True, increasing=True), float)
    probes = np.asarray(check_grid(where, "probes", probes, positive=True, increasing=True), float)
    if edges.size < 2:
        raise ValueError(f"`{where}(edges=...)` needs at least 2 edges; got {edges.size}")
    a_d = float(atilde if dipole_atilde is None else check_range(where, "dipole_atilde",
                                                                 dipole_atilde, 0.0))
    DipolarDefects(g, J0, atilde, 0.0, a_d)  # validates g, J0, a~ (g < 0.2) before any work
    g, J0, atilde = float(g), float(J0), float(atilde)
    config = MCConfig() if config is None else config
    sample = Sample(x, cells=cells)
    keys = jax.random.split(seed_key(where, "seed", seed), realizations)
    params = dict(g=g, J0_K=J0, atilde=atilde, dipole_atilde=a_d, x=float(x), cells=cells,
                  seed=seed, configurations=configurations,
                  mc=dict(temperatures=config.temperatures, chains=config.chains,
                          anneal_sweeps=config.anneal_sweeps, sweeps=config.sweeps,
                          ladder=config.ladder, t_max=config.t_max, t_min=config.t_min))
    rid = run_id(dict(params, ratios=ratios, realizations=realizations, edges=edges,
                      probes=probes, kind="tau_dos_mc", config=repr(config)))
    path = None if checkpoint is None else Path(checkpoint)
    done = {c["J_ee_over_gJ0"]: c for c in _load_cases(path, rid)}
    side = _side_function(sample, g, J0, atilde, a_d, config.block_size, configurations)
    windows = dict(binned=(edges[:-1], edges[1:]), cumulative=(np.zeros_like(probes), probes))
    start = time.perf_counter()
    cases = []
    for r in ratios:
        r = float(r)
        if r not in done:
            done[r] = _one_case(r, sample, keys, config, side, (g, J0, atilde, a_d), windows,
                                progress)
            if path is not None:
                atomic_write_text(path, json.dumps(_jsonable(dict(
                    kind="tau_dos_mc", run_id=rid, cases=list(done.values())))))
        cases.append(done[r])
    return _assemble(cases, edges, probes, realizations, time.perf_counter() - start, params)
