"""The paper's numerics: P_S(E) for a grid of (a~, h_rel), disorder-averaged (Figs. 2, 4)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validate import check_grid, check_int, check_range, seed_key
from ..model._es import (
    DEFAULT_TOP_K,
    MAX_SOFT_WIDTH,
    PAIR_CONDITIONS,
    SOFT_WIDTH_REASON,
    simulate,
)
from ..model._lattice import FCC, Sample, SimpleCubic, check_sample_size
from ..model._params import ATILDE_MAX, ATILDE_REASON, DEFAULT_G, ModelParams
from ..model._theta import AbstractTheta, HardTheta, SoftTheta
from ..parallel._ensemble import disorder_average

LATTICES = {"fcc": FCC, "sc": SimpleCubic}

#: The paper's values (Fig. 2 and Fig. 4 captions, App. B 3).
PAPER_ATILDES = (0.0, 1.5, 3.0, 4.5, 6.0)
PAPER_H_RELS = (0.0, 0.3, 1.0)
PAPER_SAMPLES = ((0.2, 18), (0.5, 13))
#: "T_U ~ 0.2 <E_tau> for 1 < a~ < 6" (Fig. 2 caption).
PAPER_TU_OVER_ETAU = 0.2


def default_energies() -> np.ndarray:
    """61 log-spaced energies from 0.01 to 10 <E_tau>."""
    return np.logspace(-2.0, 1.0, 61)


def es_scan(
    sample: Sample,
    atildes: Float[Array, " A"],
    h_rels: Float[Array, " H"],
    energies: Float[Array, " E"],
    key: PRNGKeyArray,
    *,
    g: float = DEFAULT_G,
    theta: AbstractTheta | None = None,
    block_size: int | None = None,
    top_k: int | None = None,
    pair_condition: str = "signed",
) -> dict[str, Array]:
    """One realization (one key) for every (a~, h_rel) pair, vmapped.

    Positions, c_ij and the h normals are shared by all pairs (common random numbers).
    `pair_condition` as in `es_reduction`.

    **Returns:** a dict with `P_S` (A, H, E), `T_U_over_E_tau` (A, H),
    `E_tau_over_gJ0` (A, H) (<E_tau> in units of g J_o), `E_tau_median_over_mean`
    (A, H) (median |E_tau| / <E_tau>), `T_U_over_median_E_tau` (A, H), `no_gap` (A, H)
    (1 where T_U = 0: P_S(0+) >= 5 g), and `n_sites` (); with a soft `theta` also
    `T_U_over_E_tau_hard` (A, H), the hard-Theta T_U of the same realization.
    """
    theta = theta or HardTheta()
    if top_k is None:
        top_k = 1 if isinstance(theta, HardTheta) else DEFAULT_TOP_K

    def one(a, h):
        es = simulate(sample, ModelParams(g=g, atilde=a, h_rel=h), key,
                      top_k=top_k, block_size=block_size,
                      soft_width=None if isinstance(theta, HardTheta) else theta.width,
                      pair_condition=pair_condition)
        tu = theta.crossover(es, g)
        median = jnp.nanmedian(jnp.where(es.mask, es.e_tau, jnp.nan))
        out = dict(P_S=theta.p_s(es, energies), T_U_over_E_tau=tu,
                   E_tau_over_gJ0=es.e_tau_mean, E_tau_median_over_mean=median,
                   T_U_over_median_E_tau=tu / median, n_sites=es.n_sites.astype(float),
                   no_gap=(tu <= 0.0).astype(float))
        if not isinstance(theta, HardTheta):  # top[:, 0] is E_min: the hard T_U for free
            out["T_U_over_E_tau_hard"] = HardTheta().crossover(es, g)
        return out

    out = jax.vmap(jax.vmap(one, (None, 0)), (0, None))(atildes, h_rels)
    out["n_sites"] = out["n_sites"][0, 0]
    return out


@dataclass(frozen=True)
class _ScanOne:
    """`es_scan` of one key for a fixed configuration, as a value: equal configurations
    compare equal, so `disorder_average` reuses its compiled batch function across calls
    (a second `run_scan` of the same case does not compile again)."""

    sample: Sample
    atildes: tuple[float, ...]
    h_rels: tuple[float, ...]
    energies: tuple[float, ...]
    g: float
    width: float
    block_size: int | None
    pair_condition: str = "signed"

    def __call__(self, key):
        theta = HardTheta() if self.width == 0.0 else SoftTheta(self.width)
        grid = (jnp.asarray(v, dtype=jnp.result_type(float))
                for v in (self.atildes, self.h_rels, self.energies))
        return es_scan(self.sample, *grid, key, g=self.g, theta=theta,
                       block_size=self.block_size, pair_condition=self.pair_condition)


@dataclass
class ScanResult:
    """Disorder-averaged output of `run_scan` (NumPy arrays, float64)."""

    x: float
    cells: int
    lattice: str
    atildes: np.ndarray
    h_rels: np.ndarray
    energies: np.ndarray
    g: float
    width: float
    realizations: int
    mean: dict[str, np.ndarray]
    stderr: dict[str, np.ndarray]
    seconds: float
    extra: dict = field(default_factory=dict)
    pair_condition: str = "signed"
    #: realizations asked for (`realizations` < `requested` after an interrupt)
    requested: int = 0

    @property
    def interrupted(self) -> bool:
        """True if the ensemble was stopped (Ctrl-C) before all realizations were done."""
        return self.realizations < self.requested

    def to_json(self) -> dict:
        extra = {}
        if "T_U_over_E_tau_hard" in self.mean:
            extra["T_U_over_E_tau_hard"] = dict(mean=self.mean["T_U_over_E_tau_hard"],
                                                stderr=self.stderr["T_U_over_E_tau_hard"])
        return dict(
            **extra,
            fraction_no_gap=dict(
                mean=self.mean["no_gap"],
                note="fraction of realizations with T_U = 0 (P_S(0+) >= 5 g: no gap)"),
            x=self.x, cells=self.cells, lattice=self.lattice, atildes=self.atildes,
            h_rels=self.h_rels, g=self.g, width=self.width, realizations=self.realizations,
            realizations_requested=self.requested, partial=self.interrupted,
            n_sites_mean=float(self.mean["n_sites"]), seconds=self.seconds,
            P_S=dict(energies=self.energies, mean=self.mean["P_S"], stderr=self.stderr["P_S"]),
            T_U_over_E_tau=dict(mean=self.mean["T_U_over_E_tau"],
                                stderr=self.stderr["T_U_over_E_tau"]),
            E_tau_over_gJ0=dict(mean=self.mean["E_tau_over_gJ0"],
                                stderr=self.stderr["E_tau_over_gJ0"]),
            T_U_over_median_E_tau=dict(mean=self.mean["T_U_over_median_E_tau"],
                                       stderr=self.stderr["T_U_over_median_E_tau"]),
            E_tau_median_over_mean=dict(mean=self.mean["E_tau_median_over_mean"],
                                        stderr=self.stderr["E_tau_median_over_mean"]),
            pair_condition=self.pair_condition,
        )


def run_scan(
    x: float,
    cells: int,
    atildes=PAPER_ATILDES,
    h_rels=PAPER_H_RELS,
    *,
    energies=None,
    realizations: int = 16,
    seed: int = 0,
    g: float = DEFAULT_G,
    width: float = 0.0,
    block_size: int | None = None,
    progress: bool = True,
    lattice: str = "fcc",
    devices=None,
    checkpoint=None,
    pair_condition: str = "signed",
) -> ScanResult:
    """Disorder-average `es_scan` over `realizations` keys derived from `seed`.

    `width` 0 is the paper's hard Theta; > 0 is the soft Theta of that width (in units
    of <E_tau>). Interrupting (Ctrl-C) keeps the realizations already finished.
    Realizations are split over `devices` (default: all of `jax.devices()`; see
    `disorder_average`); with `checkpoint` (an .npz path) the ensemble saves its partial
    result after each batch and resumes from it. `seed` is an integer in [0, 2^64 - 1];
    the same seed gives the same samples with and without `jax_enable_x64`. After an
    interrupt the result has `interrupted` True (`realizations` < `requested`). `pair_condition`: `"signed"`
    (default) or `"unsigned"` (see `es_reduction`).
    """
    if pair_condition not in PAIR_CONDITIONS:
        raise ValueError(f"`run_scan(pair_condition=...)` must be one of {PAIR_CONDITIONS}; "
                         f"got {pair_condition!r}")
    if lattice not in LATTICES:
        raise ValueError(f"`run_scan(lattice=...)` must be one of {sorted(LATTICES)}; "
                         f"got {lattice!r}")
    sample = Sample(x, lattice=LATTICES[lattice](check_int("run_scan", "cells", cells, 2)))
    check_sample_size("run_scan", sample)
    atildes = check_grid("run_scan", "atildes", atildes)
    check_range("run_scan", "atildes", atildes, 0.0, ATILDE_MAX, reason=ATILDE_REASON)
    h_rels = check_grid("run_scan", "h_rels", h_rels)
    check_range("run_scan", "h_rels", h_rels, 0.0)
    energies_in = default_energies() if energies is None else energies
    energies = check_grid("run_scan", "energies", energies_in,
                          positive=True, increasing=True)
    realizations = check_int("run_scan", "realizations", realizations, 1)
    width = float(check_range("run_scan", "width", width, 0.0, MAX_SOFT_WIDTH,
                              reason=SOFT_WIDTH_REASON))
    keys = jax.random.split(seed_key("run_scan", "seed", seed), realizations)
    start = time.perf_counter()
    one = _ScanOne(sample, tuple(np.asarray(atildes).tolist()), tuple(np.asarray(h_rels).tolist()),
                   tuple(np.asarray(energies).tolist()), float(g), width, block_size,
                   pair_condition)
    mean, err, count = disorder_average(
        one, keys, progress=progress, description=f"x={x:g} L={cells}", devices=devices,
        checkpoint=checkpoint,
        config=dict(x=x, cells=cells, lattice=lattice, atildes=np.asarray(atildes).tolist(),
                    h_rels=np.asarray(h_rels).tolist(), energies=np.asarray(energies).tolist(),
                    g=g, width=width, block_size=block_size,
                    **({} if pair_condition == "signed" else dict(pair_condition=pair_condition))))
    return ScanResult(x, cells, lattice, np.asarray(atildes), np.asarray(h_rels),
                      np.asarray(energies_in, dtype=float),
                      g, width, count, mean, err, time.perf_counter() - start,
                      requested=realizations, pair_condition=pair_condition)


def tu_table_rows(results: list[ScanResult]) -> list[list]:
    """Rows (x, cells, a~, h_rel, T_U/<E_tau>, stderr, <E_tau>/gJ_o, stderr, realizations,
    T_U / median |E_tau|, stderr, pair condition)."""
    rows = []
    for r in results:
        for ia, a in enumerate(r.atildes):
            for ih, h in enumerate(r.h_rels):
                rows.append([r.x, r.cells, float(a), float(h),
                             float(r.mean["T_U_over_E_tau"][ia, ih]),
                             float(r.stderr["T_U_over_E_tau"][ia, ih]),
                             float(r.mean["E_tau_over_gJ0"][ia, ih]),
                             float(r.stderr["E_tau_over_gJ0"][ia, ih]), r.realizations,
                             float(r.mean["T_U_over_median_E_tau"][ia, ih]),
                             float(r.stderr["T_U_over_median_E_tau"][ia, ih]),
                             r.pair_condition])
    return rows


TU_HEADER = ["x", "cells", "atilde", "h_rel", "T_U_over_E_tau", "T_U_over_E_tau_stderr",
             "E_tau_over_gJ0", "E_tau_over_gJ0_stderr", "realizations",
             "T_U_over_median_E_tau", "T_U_over_median_E_tau_stderr", "pair_condition"]


def compare_with_paper(results: list[ScanResult], lo: float = 1.0, hi: float = 6.0) -> dict:
    """T_U / <E_tau> for a~ in [lo, hi] against the paper's "about 0.2"."""
    vals, errs, labels = [], [], []
    for r in results:
        for ia, a in enumerate(r.atildes):
            if lo <= a <= hi:
                for ih, h in enumerate(r.h_rels):
                    vals.append(float(r.mean["T_U_over_E_tau"][ia, ih]))
                    errs.append(float(r.stderr["T_U_over_E_tau"][ia, ih]))
                    labels.append(dict(x=r.x, atilde=float(a), h_rel=float(h)))
    vals = np.asarray(vals)
    if vals.size == 0:
        return dict(paper=PAPER_TU_OVER_ETAU, n=0)
    return dict(
        paper=PAPER_TU_OVER_ETAU, atilde_range=[lo, hi], n=int(vals.size),
        measured_min=float(vals.min()), measured_max=float(vals.max()),
        measured_mean=float(vals.mean()),
        ratio_mean_to_paper=float(vals.mean() / PAPER_TU_OVER_ETAU),
        cases=[dict(**lab, T_U_over_E_tau=v, stderr=e) for lab, v, e in zip(labels, vals, errs)],
    )


def power_law_slope(energies, p, p_lo: float = 1e-3, p_hi: float = 0.1) -> float:
    """Log-log slope of P_S(E) where p_lo < P_S < p_hi (the power-law gap exponent);
    NaN with fewer than 3 such points."""
    p, e = np.asarray(p, dtype=float), np.asarray(energies, dtype=float)
    sel = np.isfinite(p) & (p > p_lo) & (p < p_hi)
    if sel.sum() < 3:
        return float("nan")
    return float(np.polyfit(np.log(e[sel]), np.log(p[sel]), 1)[0])


def gap_exponent(result: ScanResult, ia: int, ih: int, p_lo: float = 1e-3, p_hi: float = 0.1
                 ) -> float:
    """Log-log slope of the mean P_S(E) where p_lo < P_S < p_hi (power-law gap)."""
    return power_law_slope(result.energies, result.mean["P_S"][ia, ih], p_lo, p_hi)
