"""The full Hamiltonian (Eq. 1) by Monte Carlo against the ES shortcut (App. B 2): the
densities of states of Fig. 2 a, the S reduction P_S(E) by two estimators, T_U, the tau
reduction against the bound Eq. B5, energies and stability (docs/conventions.md section 6).

Per realization (key k): `run_mc` anneals, tempers and descends the Hamiltonian drawn
from k; the lowest state found is measured (`measure_state`): its single-flip energies
eps (flip-energy convention: a flip costs eps = 2 |lambda| in a stable state), the
mean-field energies 2 |lambda| of random configurations, the ES estimator E_min on the
state, and the ES reduction of the same realization (same positions, U_ij = J^Stau_ij and
h^tau_j; local-field convention E_tau = |lambda|). Then, in NumPy:

- n_S(E), n_tau(E), n_S^o(E), n_tau^o(E): per impurity per K on log-spaced bins (K), and
  cumulative counts per impurity below each bin centre (for low E, where bins are noisy).
- P_S(E) on a grid of E / <E_tau>, each estimator in units of the mean tau energy of its
  own convention (<eps_tau> of the state; <E_tau> of the ES reduction):
  `es` the ES reduction; `mc` (estimator b) the fraction of S spins whose ES estimator on
  the state is below E; `mc_dos` (estimator a, the paper's Fig. 2 definition) the DOS
  ratio n_S(E) / n_S(E-bar), with n_S(E-bar) the mean S density over
  [E-bar / 2, 2 E-bar], E-bar a few g J_o (default 5 g J_o, flip energies).
- T_U / <E_tau> from P_S(T_U) = 5 g (the ceil(5 g N)-th smallest E_min) for `es` and `mc`.
- The tau reduction n_tau(E) / n_tau^o(E) against Eq. B5, P_tau > 1 - 4 g ln(1 / e),
  e = E_field / (2 g J_o) with E_field = E / 2 (the bound counts local fields).

Disorder averages are means over realizations with standard errors; the two DOS ratios
(`mc_dos`, the tau reduction) are ratios of the averaged densities, with jackknife errors.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

import jax
import numpy as np
from jaxtyping import PRNGKeyArray

from .._interrupts import extend_grace
from .._validate import check_grid, check_int, check_range, check_type, seed_key
from ..model._hamiltonian import DEFAULT_DENSE_BYTES, HamiltonianParams, hamiltonian
from ..model._lattice import Sample
from ..model._mc_run import MCConfig, run_mc
from ..model._params import ModelParams
from ..observables._mc_obs import measure_state
from ..parallel._ensemble import mean_and_stderr
from ._reproduce import default_energies, power_law_slope

#: Default E-bar of estimator (a), in units of g J_o (flip energies): "an energy a few
#: times larger than g J_o" (Fig. 2 caption).
DEFAULT_E_BAR = 5.0
#: n_S(E-bar) is the mean S density over [E-bar / E_BAR_WINDOW, E-bar * E_BAR_WINDOW].
E_BAR_WINDOW = 2.0
#: Default DOS bins per decade (from g^2 J_o / 100 to 10 J_o).
DOS_PER_DECADE = 8
#: The tau reduction n_tau / n_tau^o is taken on DOS bins merged by this many (noise).
TAU_RATIO_MERGE = 2
#: `--dump-state` writes three N x N matrices: samples whose capacity (the most
#: impurities a realization can hold) exceeds this are refused before computing.
DUMP_MAX_SITES = 2000

_measure = jax.jit(measure_state, static_argnames=("pad_to", "mf_configs", "max_dense_bytes"))


def measure(sample: Sample, params: HamiltonianParams, key, spins, *, pad_to: int,
            mf_configs: int = 4, max_dense_bytes: int = DEFAULT_DENSE_BYTES):
    """`measure_state`, jitted (every keyword passed, so one compilation serves all calls
    with the same shapes and settings)."""
    return _measure(sample, params, key, spins, pad_to=pad_to, mf_configs=mf_configs,
                    max_dense_bytes=max_dense_bytes)


def default_dos_edges(g: float, J0: float, per_decade: int = DOS_PER_DECADE) -> np.ndarray:
    """Log-spaced DOS bin edges (K) from g^2 J_o / 100 to 10 J_o."""
    lo, hi = g * g * J0 / 100.0, 10.0 * J0
    k = math.ceil(math.log10(hi / lo) * per_decade)
    return np.logspace(math.log10(lo), math.log10(hi), k + 1)


def grid_edges(grid: np.ndarray) -> np.ndarray:
    """Bin edges around each point of a log-spaced grid: the geometric midpoints, with
    the outer edges half a step beyond the ends."""
    g = np.asarray(grid, dtype=float)
    if g.size == 1:
        return np.array([g[0] / math.sqrt(2.0), g[0] * math.sqrt(2.0)])
    mid = np.sqrt(g[1:] * g[:-1])
    return np.concatenate([[g[0] ** 2 / mid[0]], mid, [g[-1] ** 2 / mid[-1]]])


def bound_b5(energies_K, g: float, J0: float) -> np.ndarray:
    """Eq. B5 at flip energies E (K): 1 - 4 g ln(1 / e), e = (E / 2) / (2 g J_o) (the
    bound counts local fields, half a flip energy); 1 where e >= 1 (no reduction)."""
    e = np.asarray(energies_K, dtype=float) / (4.0 * g * J0)
    return np.where(e < 1.0, 1.0 - 4.0 * g * np.log(1.0 / np.minimum(e, 1.0)), 1.0)


def _density(values, edges, count):
    """Histogram of `values` per unit of the edges' axis and per `count` (impurities)."""
    return np.histogram(values, edges)[0] / (count * np.diff(edges))


def _crossover(sorted_values, g, n):
    """The ceil(5 g N)-th smallest value (hard Theta, as `HardTheta.crossover`); 0 where
    that value is <= 0 (P_S(0+) >= 5 g: no gap, T_U = 0, as the ES reduction reports it)."""
    m = min(max(math.ceil(5.0 * g * n), 1), n)
    return max(float(sorted_values[m - 1]), 0.0)


def summarize_state(m, *, grid, edges_K, e_bar_K: float, g: float) -> dict[str, np.ndarray]:
    """The per-realization numbers (NumPy) of one `StateMeasurement` (module docstring).

    Keys: n_S, n_tau, n_S_mf, n_tau_mf (per impurity per K, on `edges_K`), below_S,
    below_tau, above_S, above_tau (fractions outside the edges), cum_S, cum_tau,
    cum_S_mf, cum_tau_mf (per impurity below the bin centres), P_S_mc, P_S_es (on `grid`), dos_u, n_bar_u
    (S density per unit E / <eps_tau> on the bins around `grid`, and over the E-bar
    window: their ratio is estimator a), T_U_mc, T_U_es, eps_tau_mean_K, es_E_tau_mean_K,
    P_S_mc_at_E_bar, h_rel, n_sites.
    """
    mask = np.asarray(m.mask)
    n, nn = mask.shape[0], int(m.n_sites)
    eps = np.asarray(m.eps, dtype=float)
    eps_s, eps_t = eps[:n][mask], eps[n:][mask]
    mf = np.asarray(m.mean_field, dtype=float)
    centers = np.sqrt(edges_K[1:] * edges_K[:-1])
    e_tau = float(np.mean(eps_t))
    e_min = np.sort(np.asarray(m.e_min, dtype=float)[mask]) / e_tau
    es_min = np.sort(np.asarray(m.es_e_min, dtype=float)[np.asarray(m.es_mask)])
    lo, hi = e_bar_K / E_BAR_WINDOW, e_bar_K * E_BAR_WINDOW
    return dict(
        n_S=_density(eps_s, edges_K, nn), n_tau=_density(eps_t, edges_K, nn),
        n_S_mf=_density(mf[:, :n][:, mask].ravel(), edges_K, nn * mf.shape[0]),
        n_tau_mf=_density(mf[:, n:][:, mask].ravel(), edges_K, nn * mf.shape[0]),
        below_S=np.asarray(np.mean(eps_s < edges_K[0])),
        below_tau=np.asarray(np.mean(eps_t < edges_K[0])),
        above_S=np.asarray(np.mean(eps_s >= edges_K[-1])),
        above_tau=np.asarray(np.mean(eps_t >= edges_K[-1])),
        cum_S=np.searchsorted(np.sort(eps_s), centers) / nn,
        cum_tau=np.searchsorted(np.sort(eps_t), centers) / nn,
        cum_S_mf=np.searchsorted(np.sort(mf[:, :n][:, mask].ravel()), centers) / (nn * len(mf)),
        cum_tau_mf=np.searchsorted(np.sort(mf[:, n:][:, mask].ravel()), centers) / (nn * len(mf)),
        P_S_mc=np.searchsorted(e_min, grid) / nn, P_S_es=np.searchsorted(es_min, grid) / nn,
        dos_u=_density(eps_s / e_tau, grid_edges(grid), nn),
        n_bar_u=np.asarray(np.sum((eps_s >= lo) & (eps_s < hi)) / (nn * (hi - lo) / e_tau)),
        T_U_mc=np.asarray(_crossover(e_min, g, nn)), T_U_es=np.asarray(float(m.es_t_u)),
        eps_tau_mean_K=np.asarray(e_tau), es_E_tau_mean_K=np.asarray(float(m.es_e_tau_mean)),
        P_S_mc_at_E_bar=np.asarray(np.searchsorted(e_min, e_bar_K / e_tau) / nn),
        h_rel=np.asarray(float(m.h_rel)), n_sites=np.asarray(float(nn)),
    )


def jackknife_stderr(leave_one_out) -> np.ndarray:
    """Jackknife standard error from the v values (leading axis) of a statistic, each
    computed without one realization: sqrt((v - 1) / v sum_i (t_i - mean t)^2); NaN for
    v < 2, and wherever a t_i is NaN."""
    t = np.asarray(leave_one_out, dtype=float)
    v = t.shape[0]
    if v < 2:
        return np.full(t.shape[1:], np.nan)
    return np.sqrt((v - 1) / v * np.sum((t - t.mean(0)) ** 2, axis=0))


def ratio_of_means(num, den) -> tuple[np.ndarray, np.ndarray]:
    """mean(num) / mean(den) over the leading (realization) axis, with its jackknife
    standard error (NaN for one realization; NaN where a denominator is 0)."""
    a, b = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    v = a.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = a.mean(0) / b.mean(0)
        if v < 2:
            return r, np.full_like(r, np.nan)
        return r, jackknife_stderr((a.sum(0) - a) / (b.sum(0) - b))


@dataclass
class MCStudy:
    """Monte Carlo of Eq. 1 against the ES shortcut, disorder-averaged (`run_mc_study`).

    `rows` holds the per-realization numbers (`summarize_state` plus the Monte Carlo's
    own: energy, energy_per_spin, single, pair (unstable counts [S, tau] of the measured
    state), single_before, pair_before, converged), each with a leading realization axis;
    `states` the measured states themselves (re-measurable with `measure`).
    """

    x: float
    cells: int
    lattice: str
    params: HamiltonianParams
    config: MCConfig
    energies: np.ndarray
    edges_K: np.ndarray
    e_bar_K: float
    mf_configs: int
    rows: dict[str, np.ndarray]
    requested: int
    seconds: dict = field(default_factory=dict)
    dump: dict | None = None
    #: (V, 2n) int8 the measured states (the lowest found), layout of `Hamiltonian`
    states: np.ndarray | None = None
    #: True if Ctrl-C stopped the run (then the finished realizations are kept)
    stopped: bool = False

    @property
    def realizations(self) -> int:
        return int(self.rows["n_sites"].shape[0]) if self.rows else 0

    @property
    def interrupted(self) -> bool:
        return self.stopped or self.realizations < self.requested

    @property
    def g(self) -> float:
        return float(self.params.g)

    @property
    def J0(self) -> float:
        return float(self.params.J0)

    def stat(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard error over realizations of `rows[name]`."""
        return mean_and_stderr(self.rows[name])

    def p_s_dos(self, keep=slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """Estimator (a): n_S(E) / n_S(E-bar) on `energies` (ratio of averaged densities),
        over the realizations `keep` (an index; default all)."""
        return ratio_of_means(self.rows["dos_u"][keep], self.rows["n_bar_u"][keep][:, None])

    def tau_reduction(self, merge: int = TAU_RATIO_MERGE
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """n_tau(E) / n_tau^o(E) (ratio of averaged densities, jackknife error) on the DOS
        bins merged `merge` at a time (a trailing incomplete group is dropped).

        **Returns:** (bin centres in K, ratio, standard error)."""
        k = (self.edges_K.shape[0] - 1) // merge * merge
        edges = self.edges_K[:k + 1:merge]
        w = np.diff(self.edges_K)[:k]

        def merged(name):
            c = (self.rows[name][:, :k] * w).reshape(self.realizations, -1, merge)
            return c.sum(-1) / np.diff(edges)

        return (np.sqrt(edges[1:] * edges[:-1]),
                *ratio_of_means(merged("n_tau"), merged("n_tau_mf")))

    def exponents(self) -> dict[str, float]:
        """Power-law gap exponents: log-log slope of each mean P_S where 1e-3 < P_S < 0.1
        (`mc`, `mc_dos`, `es`), each with its jackknife standard error over realizations
        (`mc_stderr`, ...: the slope of the mean P_S without realization i, for every i;
        NaN for one realization or where a slope without one realization is NaN)."""
        r = self.rows
        curves = dict(mc=lambda k: r["P_S_mc"][k].mean(0),
                      mc_dos=lambda k: self.p_s_dos(k)[0],
                      es=lambda k: r["P_S_es"][k].mean(0))
        out = {}
        for name, curve in curves.items():
            everyone = np.arange(self.realizations)
            out[name] = power_law_slope(self.energies, curve(everyone))
            loo = [power_law_slope(self.energies, curve(everyone[everyone != i]))
                   for i in everyone] if self.realizations > 1 else []
            out[f"{name}_stderr"] = float(jackknife_stderr(loo))
        return out

    def to_json(self) -> dict:
        """The JSON of `tlsjax mc` (docs/explanation/monte-carlo.md)."""
        return _study_json(self)


def _study_json(st: MCStudy) -> dict:
    ms = st.stat
    centers = np.sqrt(st.edges_K[1:] * st.edges_K[:-1])
    p = st.params
    out = dict(
        x=st.x, cells=st.cells, lattice=st.lattice, g=st.g, J0=st.J0, atilde=float(p.atilde),
        h_S=float(p.h_S), h_tau=float(p.h_tau),
        realizations=st.realizations, realizations_requested=st.requested,
        partial=st.interrupted, n_sites=st.rows["n_sites"].astype(int),
        n_sites_mean=float(np.mean(st.rows["n_sites"])),
        monte_carlo=_config_json(st.config, st.g, st.J0),
        energy=st.rows["energy"], energy_per_spin=st.rows["energy_per_spin"],
        energy_per_spin_mean=ms("energy_per_spin")[0], energy_per_spin_stderr=ms("energy_per_spin")[1],
        energies_note="K; H of the lowest state found per realization (energy), and H / (2 N)",
    )
    dos = dict(energies_K=centers, edges_K=st.edges_K,
               units="per impurity per K; flip energies eps = -2 s lambda of the lowest "
               "state (n_S, n_tau) and 2 |lambda| of random configurations (_mf)",
               mean_field_configurations=st.mf_configs)
    for name in ("n_S", "n_tau", "n_S_mf", "n_tau_mf"):
        dos[name], dos[f"{name}_stderr"] = ms(name)
    for name in ("S", "tau", "S_mf", "tau_mf"):
        dos[f"cumulative_{name}"], dos[f"cumulative_{name}_stderr"] = ms(f"cum_{name}")
    dos["cumulative_note"] = "impurities (per impurity) with eps below energies_K"
    for name in ("below_S", "below_tau", "above_S", "above_tau"):
        dos[f"fraction_{name}"] = ms(name)[0]
    dos["fraction_note"] = ("spins with eps below the first edge (eps ~ 0 or within the "
                            "descent's tolerance below it) or above the last; with them "
                            "sum(n * width) = 1 for each species")
    out["dos"] = dos
    a, a_se = st.p_s_dos()
    out["P_S"] = dict(
        energies_over_E_tau=st.energies, mc=ms("P_S_mc")[0], mc_stderr=ms("P_S_mc")[1],
        mc_dos=a, mc_dos_stderr=a_se, es=ms("P_S_es")[0], es_stderr=ms("P_S_es")[1],
        E_bar_K=st.e_bar_K, E_bar_over_gJ0=st.e_bar_K / (st.g * st.J0),
        E_bar_window=[st.e_bar_K / E_BAR_WINDOW, st.e_bar_K * E_BAR_WINDOW],
        P_S_mc_at_E_bar=ms("P_S_mc_at_E_bar")[0],
        E_tau_mean_K=dict(mc=ms("eps_tau_mean_K")[0], es=ms("es_E_tau_mean_K")[0]),
        h_rel_es=st.rows["h_rel"],
        note="E in units of the mean tau energy of each convention: <eps_tau> (flip energies "
        "of the Monte Carlo state) for mc and mc_dos, <E_tau> (local fields) for es. mc: "
        "estimator (b), fraction of S spins with E_min_i = max_j(-eps_tau_j - 4 J^Stau_ij "
        "S_i tau_j) < E; mc_dos: estimator (a), n_S(E) / n_S(E_bar), n_S(E_bar) the mean S "
        "density over E_bar_window; es: the ES reduction of the same realization")
    out["T_U_over_E_tau"] = dict(
        mc=ms("T_U_mc")[0], mc_stderr=ms("T_U_mc")[1], es=ms("T_U_es")[0],
        es_stderr=ms("T_U_es")[1], mc_per_realization=st.rows["T_U_mc"],
        es_per_realization=st.rows["T_U_es"], criterion="P_S(T_U) = 5 g, hard Theta",
        convention="each ratio in one convention: mc = flip energy / <eps_tau> (flip), "
        "es = local field / <E_tau> (local field); T_U_K gives both in kelvin")
    out["T_U_K"] = _t_u_kelvin(st)
    e_r, ratio, ratio_se = st.tau_reduction()
    out["tau_reduction"] = dict(
        energies_K=e_r, ratio=ratio, ratio_stderr=ratio_se, bound_B5=bound_b5(e_r, st.g, st.J0),
        note=f"n_tau / n_tau_mf on the DOS bins merged {TAU_RATIO_MERGE} at a time; bound_B5 = "
        "1 - 4 g ln(1/e), e = (E/2) / (2 g J0)")
    out["gap_exponent"] = dict(note="log-log slope of P_S where 1e-3 < P_S < 0.1; *_stderr: "
                               "jackknife over realizations (NaN for one)",
                               **st.exponents())
    r = st.rows
    out["unstable"] = dict(
        single=int(r["single"].sum()), pair=int(r["pair"].sum()),
        single_by_species=r["single"].sum(0), pair_by_species=r["pair"].sum(0),
        before_descent=dict(single=int(r["single_before"].sum()), pair=int(r["pair_before"].sum())),
        converged=r["converged"].astype(bool),
        note="spins of the measured (lowest) states, summed over realizations; "
        "*_by_species: [S, tau]")
    out["seconds"] = st.seconds
    if st.dump is not None:
        out.update(st.dump)
    return out


def _t_u_kelvin(st: MCStudy) -> dict:
    """T_U in K of both estimators in both conventions (flip energy = 2 x local field),
    from the per-realization ratios and tau energies: mean and s.e. over realizations."""
    r = st.rows
    mc = np.asarray(r["T_U_mc"]) * np.asarray(r["eps_tau_mean_K"])  # flip energies
    es = np.asarray(r["T_U_es"]) * np.asarray(r["es_E_tau_mean_K"])  # local fields

    def pm(v):
        m, se = mean_and_stderr(v)
        return dict(mean=float(m), stderr=float(se) if np.isfinite(se) else None)

    return dict(mc_flip_energy=pm(mc), mc_local_field=pm(mc / 2.0),
                es_local_field=pm(es), es_flip_energy=pm(2.0 * es),
                note="flip energy 2|lambda|, local field |lambda|; stderr None with one "
                "realization")


def _config_json(config: MCConfig, g: float, J0: float) -> dict:
    ladder = config.ladder_for(g, J0)
    top = float(config.anneal_top(ladder, J0))
    ladder = np.asarray(ladder, dtype=float)
    return dict(ladder_K=ladder, anneal_sweeps=config.anneal_sweeps, sweeps=config.sweeps,
                chains=config.chains, replicas=config.chains * ladder.shape[0],
                swap_every=config.swap_every, block_size=config.block_size,
                descent_rounds=config.descent_rounds,
                anneal_top_K=top)


@functools.partial(jax.jit, static_argnames="pad_to")
def _dump_matrices(sample, params, key, *, pad_to):
    ham = hamiltonian(sample, params, key, pad_to=pad_to, max_dense_bytes=0)
    return ham.coupling_matrices(), ham.realization


def dump_state(sample: Sample, params: HamiltonianParams, key, spins, *, pad_to: int) -> dict:
    """`ground_state` (S, tau: +-1 over the real impurities) and `couplings` (J_SS, J_Stau,
    J_tautau N x N in K, J_Stau[i][j] the coefficient of S_i tau_j, zero diagonals; h_S,
    h_tau in K; positions in a_o) of one realization, in the convention of docs/conventions.md
    section 6: H = sum_j (h_S S + h_tau tau) + sum_{i<j} J_SS S_i S_j + sum_{i != j} J_Stau
    S_i tau_j + sum_{i<j} J_tautau tau_i tau_j."""
    mats, real = _dump_matrices(sample, params, key, pad_to=pad_to)
    nn, n = int(real.n_sites), real.capacity
    mats = {k: np.asarray(v, dtype=float) for k, v in mats.items()}
    s = np.asarray(spins)
    return dict(
        ground_state=dict(S=s[:nn].astype(int), tau=s[n:n + nn].astype(int)),
        couplings=dict(J_SS=mats["J_SS"][:nn, :nn], J_Stau=mats["J_Stau"][:nn, :nn],
                       J_tautau=mats["J_tautau"][:nn, :nn], h_S=mats["h_S"][:nn],
                       h_tau=mats["h_tau"][:nn],
                       positions=np.asarray(real.positions, dtype=float)[:nn],
                       convention="docs/conventions.md section 6: H = sum_j (h_S_j S_j + h_tau_j tau_j) + "
                       "sum_{i<j} J_SS_ij S_i S_j + sum_{i!=j} J_Stau_ij S_i tau_j + "
                       "sum_{i<j} J_tautau_ij tau_i tau_j; K; positions in a_o"))


def check_dump_size(sample: Sample) -> None:
    """Refuse (ValueError) a `--dump-state` sample that may hold more than DUMP_MAX_SITES."""
    if sample.capacity > DUMP_MAX_SITES:
        raise ValueError(
            f"--dump-state writes N x N coupling matrices and is limited to samples of at most "
            f"{DUMP_MAX_SITES} impurities; this sample (~{sample.n_sites_mean:.0f} impurities on "
            f"average) can hold up to {sample.capacity}: use a smaller --cells or --x")


def _check_study(energies, dos_edges, e_bar, mf_configs, params):
    energies = np.asarray(check_grid("run_mc_study", "energies", default_energies()
                                     if energies is None else energies, positive=True,
                                     increasing=True), dtype=float)
    g, j0 = float(params.g), float(params.J0)
    edges = default_dos_edges(g, j0) if dos_edges is None else np.asarray(check_grid(
        "run_mc_study", "dos_edges", dos_edges, positive=True, increasing=True), dtype=float)
    if edges.size < 2:
        raise ValueError("`run_mc_study(dos_edges=...)` needs at least 2 edges")
    e_bar = float(check_range("run_mc_study", "e_bar", e_bar, 0.0, lo_open=True))
    mf_configs = check_int("run_mc_study", "mf_configs", mf_configs, 1)
    return energies, edges, e_bar * g * j0, mf_configs


def run_mc_study(
    sample: Sample,
    params: HamiltonianParams,
    keys: PRNGKeyArray,
    config: MCConfig | None = None,
    *,
    energies=None,
    dos_edges=None,
    e_bar: float = DEFAULT_E_BAR,
    mf_configs: int = 4,
    dump_state_of_first: bool = False,
    devices=None,
    vmap_size: int | str = "auto",
    chunk: int = 50,
    max_dense_bytes: int = DEFAULT_DENSE_BYTES,
    progress: bool = False,
) -> MCStudy:
    """Monte Carlo of Eq. 1 on the realizations `keys`, measured against the ES shortcut
    (module docstring).

    **Arguments:**

    - `sample`, `params`: the `Sample` and `HamiltonianParams`.
    - `keys`: (V,) PRNG keys; realization v is the one `simulate` and `hamiltonian` draw
      from keys[v].
    - `config`: the `MCConfig` (None: defaults).
    - `energies`: grid of E / <E_tau> for P_S (default: 61 log-spaced, 0.01-10).
    - `dos_edges`: DOS bin edges in K (default `default_dos_edges`).
    - `e_bar`: E-bar of estimator (a) in units of g J_o (> 0, flip energies).
    - `mf_configs`: random configurations per realization for the mean-field DOS (>= 1).
    - `dump_state_of_first`: also return realization 0's state and couplings
      (`dump_state`; the sample's capacity must be <= DUMP_MAX_SITES).
    - `devices`, `vmap_size`, `chunk`, `max_dense_bytes`, `progress`: as in `run_mc`.

    Ctrl-C: `run_mc` stops and the realizations finished before it are measured. Ctrl-C
    while measuring still measures the realizations already run, for up to
    `MEASURE_AFTER_STOP_S` seconds (at least one; a second Ctrl-C stops at once). The
    result then has `interrupted` True.

    **Returns:** an `MCStudy`.
    """
    config = MCConfig() if config is None else config
    if isinstance(params, ModelParams):
        params = HamiltonianParams.from_model(params)
    check_type("run_mc_study", "params", params, HamiltonianParams)
    energies, edges, e_bar_k, mf_configs = _check_study(energies, dos_edges, e_bar, mf_configs,
                                                        params)
    if dump_state_of_first:
        check_dump_size(sample)
    keys = keys if jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key) else \
        jax.random.wrap_key_data(keys)
    t0 = time.perf_counter()
    res = run_mc(sample, params, keys, config, devices=devices, vmap_size=vmap_size, chunk=chunk,
                 max_dense_bytes=max_dense_bytes, progress=progress)
    done = res.spins.shape[0] - res.unfinished  # the batch in progress was cut short
    ground, best = np.asarray(res.ground_spins), np.asarray(res.best)
    rows = []
    t1 = time.perf_counter()
    stopped = _measure_all(rows, done, sample, params, keys, ground, best, res, config,
                           energies, edges, e_bar_k, mf_configs, max_dense_bytes)
    stopped = stopped or bool(res.interrupted)
    stacked = {k: np.stack([r[k] for r in rows]) for k in rows[0]} if rows else {}
    done = len(rows)
    seconds = dict(res.seconds, measure=time.perf_counter() - t1, total=time.perf_counter() - t0)
    dump = (dump_state(sample, params, keys[0], ground[0], pad_to=config.block_size)
            if dump_state_of_first and done else None)
    lattice = type(sample.lattice).__name__.lower().replace("simplecubic", "sc")
    return MCStudy(sample.x, sample.lattice.cells, lattice, params, config, energies, edges,
                   e_bar_k, mf_configs, stacked, int(keys.shape[0]), seconds, dump,
                   ground[:done].astype(np.int8), stopped)


#: After Ctrl-C while measuring, the realizations already run are still measured for this
#: many seconds (at least one, whose compilation may take longer: the command line's
#: grace is extended to `MEASURE_GRACE_S` for it); a second Ctrl-C stops at once.
MEASURE_AFTER_STOP_S = 5.0
MEASURE_GRACE_S = 30.0


def _measure_all(rows, done, sample, params, keys, ground, best, res, config, energies, edges,
                 e_bar_k, mf_configs, max_dense_bytes) -> bool:
    """Measure realizations 0..done-1 of the `run_mc` result `res`, appending to `rows`.
    Ctrl-C: see `MEASURE_AFTER_STOP_S`; returns True if interrupted."""
    stopped_at = None
    while len(rows) < done:
        if stopped_at is not None and rows and \
                time.perf_counter() - stopped_at > MEASURE_AFTER_STOP_S:
            break
        try:
            row = _measure_one(len(rows), sample, params, keys, ground, best, res, config,
                               energies, edges, e_bar_k, mf_configs, max_dense_bytes)
        except KeyboardInterrupt:
            if stopped_at is not None:  # a second request: keep what is measured
                break
            stopped_at = time.perf_counter()
            extend_grace(MEASURE_GRACE_S)
            continue
        rows.append(row)
    return stopped_at is not None


def _measure_one(v, sample, params, keys, ground, best, res, config, energies, edges, e_bar_k,
                 mf_configs, max_dense_bytes) -> dict:
    m = measure(sample, params, keys[v], ground[v], pad_to=config.block_size,
                mf_configs=mf_configs, max_dense_bytes=max_dense_bytes)
    row = summarize_state(jax.device_get(m), grid=energies, edges_K=edges, e_bar_K=e_bar_k,
                          g=float(params.g))
    b, nn = best[v], float(row["n_sites"])
    row.update(energy=np.asarray(float(res.lowest_energy[v])),
               energy_per_spin=np.asarray(float(res.lowest_energy[v]) / (2.0 * nn)),
               single=res.after.single[v, b], pair=res.after.pair[v, b],
               single_before=res.before.single[v, b], pair_before=res.before.pair[v, b],
               converged=np.asarray(res.descent.converged[v, b]))
    return row


#: The a~ of the P_S panel (Fig. 2 b analogue for the full model).
PANEL_ATILDES = (1.5, 3.0, 6.0)


def mc_atilde_scan(sample: Sample, atildes, realizations: int, seed: int, *, g: float, J0: float,
                   config: MCConfig | None = None, progress: bool = False, **kwargs
                   ) -> list[MCStudy]:
    """`run_mc_study` for each a~ on the same keys (common random numbers: the same
    positions, c_ij and fields for every a~), keys = split(seed_key(seed), realizations)
    as `tlsjax mc --seed` draws them. Stops at the first interrupted study (returned
    last, `interrupted` True)."""
    realizations = check_int("mc_atilde_scan", "realizations", realizations, 1)
    keys = jax.random.split(seed_key("mc_atilde_scan", "seed", seed), realizations)
    out = []
    for a in atildes:
        params = HamiltonianParams(g=g, J0=J0, atilde=a)
        out.append(run_mc_study(sample, params, keys, config, progress=progress, **kwargs))
        if out[-1].interrupted:
            break
    return out


PS_HEADER = ["atilde", "E_over_E_tau", "P_S_mc", "P_S_mc_stderr", "P_S_mc_dos",
             "P_S_mc_dos_stderr", "P_S_es", "P_S_es_stderr"]


def ps_table(studies: list[MCStudy]) -> tuple[list[str], list[list[float]]]:
    """(header, rows) of P_S by the three estimators, for each study (a~) and energy."""
    rows = []
    for st in studies:
        cols = [*st.stat("P_S_mc"), *st.p_s_dos(), *st.stat("P_S_es")]
        a = float(st.params.atilde)
        rows += [[a, float(e), *(float(c[i]) for c in cols)] for i, e in enumerate(st.energies)]
    return PS_HEADER, rows


#: Fig. 2 a draws a density only on bins holding at least this many spins (pooled over
#: realizations; mean-field curves: over all their random configurations); sparser low
#: bins are merged with their neighbours up to `FIG_MAX_MERGE_DECADES`, else marked.
MIN_BIN_COUNT = 10
FIG_MAX_MERGE_DECADES = 1.0
FIG_HEADER = ["curve", "E_lo_K", "E_hi_K", "E_K", "value", "stderr", "count"]
_FIG_CURVES = ("n_tau", "n_S", "n_S_mf", "n_tau_mf")


def pooled_counts(st: MCStudy, name: str) -> np.ndarray:
    """Spins per DOS bin of curve `name` (`n_S`, `n_tau`, `n_S_mf`, `n_tau_mf`), summed
    over realizations (and over the random configurations of a mean-field curve)."""
    w = np.diff(st.edges_K)
    per = np.asarray(st.rows[name]) * w * np.asarray(st.rows["n_sites"], float)[:, None]
    return per.sum(0) * (st.mf_configs if name.endswith("_mf") else 1)


def merge_sparse_bins(edges: np.ndarray, counts: np.ndarray, min_count: int,
                      max_decades: float = FIG_MAX_MERGE_DECADES) -> tuple[list, list]:
    """Groups of neighbouring bins, from low to high energy, each grown until it holds
    `min_count` spins (at most `max_decades` wide). **Returns:** (kept groups, sparse
    groups), each a list of (first bin, last bin + 1); sparse groups hold some spins but
    fewer than `min_count` (empty bins belong to neither)."""
    kept, sparse, start, total = [], [], None, 0.0
    for i, c in enumerate(counts):
        if start is None:
            if c <= 0:
                continue
            start, total = i, 0.0
        total += c
        if total >= min_count - 1e-9:
            kept.append((start, i + 1))
            start = None
        elif np.log10(edges[i + 1] / edges[start]) >= max_decades or i == len(counts) - 1:
            sparse.append((start, i + 1))
            start = None
    return kept, sparse


def fig2a_table(st: MCStudy, min_count: int = MIN_BIN_COUNT
                ) -> tuple[list[str], list[list]]:
    """(header, rows) of the numbers Fig. 2 a draws: each DOS curve (and the tau ratio
    n_tau / n_tau^o) on merged bins holding >= `min_count` spins, with the stderr over
    realizations (jackknife for the ratio) and the pooled count. No row has fewer."""
    edges, w = st.edges_K, np.diff(st.edges_K)
    rows = []

    def merged(name, a, b):  # per-realization density over bins a..b
        return (np.asarray(st.rows[name])[:, a:b] * w[a:b]).sum(1) / (edges[b] - edges[a])

    for name in _FIG_CURVES:
        counts = pooled_counts(st, name)
        for a, b in merge_sparse_bins(edges, counts, min_count)[0]:
            m, se = mean_and_stderr(merged(name, a, b))
            rows.append([name, edges[a], edges[b], np.sqrt(edges[a] * edges[b]), float(m),
                         float(se), float(counts[a:b].sum())])
    both = np.minimum(pooled_counts(st, "n_tau"), pooled_counts(st, "n_tau_mf"))
    for a, b in merge_sparse_bins(edges, both, min_count)[0]:
        r, se = ratio_of_means(merged("n_tau", a, b)[:, None], merged("n_tau_mf", a, b)[:, None])
        rows.append(["tau_ratio", edges[a], edges[b], np.sqrt(edges[a] * edges[b]),
                     float(r[0]), float(se[0]), float(both[a:b].sum())])
    return FIG_HEADER, [[r[0], *map(float, r[1:])] for r in rows]


#: The Monte Carlo part of `tlsjax reproduce` (Fig. 2 a at a~ = 3 and the P_S panel at
#: PANEL_ATILDES): a smaller sample and fewer sweeps than the paper's sample and the
#: `tlsjax mc` defaults (2000 + 500 sweeps), to keep the main job a few minutes long.
REPRODUCE_MC = dict(x=0.2, cells=8, realizations=4, anneal_sweeps=1000, sweeps=200)
#: The same for `tlsjax reproduce --quick` (a smoke run).
REPRODUCE_MC_QUICK = dict(x=0.2, cells=5, realizations=2, anneal_sweeps=200, sweeps=50)


def mc_summary(studies: list[MCStudy]) -> dict:
    """The headline numbers of a list of studies (one per a~), for summaries."""
    out = []
    for st in studies:
        gj = st.g * st.J0
        e = np.sqrt(st.edges_K[1:] * st.edges_K[:-1])
        window = (e > st.g * gj) & (e < gj)
        ratio = ratio_of_means(st.rows["n_tau"][:, window].sum(1) if window.any() else
                               np.zeros(st.realizations),
                               st.rows["n_tau_mf"][:, window].sum(1) if window.any() else
                               np.zeros(st.realizations))

        def below(name, at=gj, st=st, e=e):
            return float(np.interp(np.log(at), np.log(e), st.stat(name)[0]))

        w = np.diff(st.edges_K) * ((e >= st.e_bar_K / E_BAR_WINDOW) & (e < st.e_bar_K * E_BAR_WINDOW))
        s_ss = ratio_of_means(st.rows["n_S"] @ w, st.rows["n_S_mf"] @ w)

        out.append(dict(
            atilde=float(st.params.atilde), n_sites_mean=float(np.mean(st.rows["n_sites"])),
            realizations=st.realizations,
            T_U_over_E_tau_mc=st.stat("T_U_mc")[0], T_U_over_E_tau_mc_stderr=st.stat("T_U_mc")[1],
            T_U_over_E_tau_es=st.stat("T_U_es")[0], T_U_over_E_tau_es_stderr=st.stat("T_U_es")[1],
            gap_exponent=st.exponents(),
            energy_per_spin=st.stat("energy_per_spin")[0],
            unstable_single=int(st.rows["single"].sum()), unstable_pair=int(st.rows["pair"].sum()),
            S_below_gJ0=below("cum_S"), S_below_gJ0_mean_field=below("cum_S_mf"),
            tau_below_gJ0=below("cum_tau"), tau_below_gJ0_mean_field=below("cum_tau_mf"),
            tau_ratio_g2J0_to_gJ0=float(ratio[0]), tau_ratio_g2J0_to_gJ0_stderr=float(ratio[1]),
            n_S_over_mean_field_at_E_bar=float(s_ss[0]),
            n_S_over_mean_field_at_E_bar_stderr=float(s_ss[1]),
            seconds=float(st.seconds.get("total", 0.0)),
        ))
    return dict(
        note="per a~: T_U/<E_tau> from P_S(T_U) = 5 g by the ES estimator on the Monte Carlo "
        "state (mc) and by the ES shortcut (es), each in its own convention's <E_tau>; gap "
        "exponents (log-log slope of P_S where 1e-3 < P_S < 0.1; *_stderr: jackknife over "
        "realizations); S and tau spins per impurity "
        "with single-flip energy below g J_o (and mean field); n_tau/n_tau^o over g^2 J_o < E "
        "< g J_o; n_S/n_S^o over the E-bar window (the S-S depletion the DOS-ratio estimator "
        "normalizes by)", cases=out)
