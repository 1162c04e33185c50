"""Figures of the Monte Carlo of the full Hamiltonian: Fig. 2 a (densities of states) and
P_S of the full model against the ES shortcut (Agg backend; axes labelled with units)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..studies._mc_study import (  # noqa: E402
    MIN_BIN_COUNT,
    MCStudy,
    bound_b5,
    fig2a_table,
    merge_sparse_bins,
    pooled_counts,
)
from ._save import save_figure


def _positive(x, y, lo=None, hi=None):
    """The points with y > 0 (log axes), and the band clipped to them."""
    ok = np.isfinite(y) & (y > 0)
    out = [x[ok], y[ok]]
    if lo is not None:
        out += [np.maximum(lo[ok], y[ok] * 1e-2), hi[ok]]
    return out


def _band(ax, x, m, s, color, label, **kw):
    s = np.where(np.isfinite(s), s, 0.0)
    xs, ms, lo, hi = _positive(x, m, m - s, m + s)
    ax.plot(xs, ms, color=color, label=label, **kw)
    ax.fill_between(xs, lo, hi, color=color, alpha=0.2, lw=0)


def study_title(st: MCStudy, note: str = "") -> str:
    """Sample, parameters and Monte Carlo settings of a study, for figure titles."""
    c = st.config
    return (f"{note}{st.lattice} x = {st.x:g}, L = {st.cells} (<N> = "
            f"{np.mean(st.rows['n_sites']):.0f}), {st.realizations} realizations; g = {st.g:g}, "
            f"J_o = {st.J0:g} K, h_S = {float(st.params.h_S):g} J_o, h_tau = "
            f"{float(st.params.h_tau):g} g J_o; MC: {c.anneal_sweeps} anneal + {c.sweeps} "
            f"tempering sweeps, {c.chains * len(np.atleast_1d(c.ladder_for(st.g, st.J0)))} "
            "replicas, descent")


def _caption(fig, text: str, bottom: float = 0.12) -> None:
    """Settings under the axes, as a caption (the title stays short)."""
    fig.tight_layout(rect=(0.0, bottom, 1.0, 1.0))
    fig.text(0.01, 0.01, text, fontsize=7, ha="left", va="bottom", wrap=True)


def _fig_rows(rows, curve):
    r = [row for row in rows if row[0] == curve]
    return [np.array([row[k] for row in r], dtype=float) for k in range(1, 7)]


def _mark_sparse(ax, st: MCStudy, name: str, color, y: float) -> bool:
    """Mark (x at height `y`, axes units) the bins of `name` with some spins but fewer
    than MIN_BIN_COUNT even after merging: not drawn as densities."""
    _, sparse = merge_sparse_bins(st.edges_K, pooled_counts(st, name), MIN_BIN_COUNT)
    if not sparse:
        return False
    e = [np.sqrt(st.edges_K[a] * st.edges_K[b]) for a, b in sparse]
    ax.plot(e, [y] * len(e), "x", color=color, ms=6, transform=ax.get_xaxis_transform())
    return True


def plot_mc_dos(st: MCStudy, path, *, note: str = "") -> None:
    """Fig. 2 a: n_tau (red), n_S (blue), n_S^o (green), n_tau^o (red dashed) per impurity
    per K vs the single-flip energy (K), log-log, g J_o and g^2 J_o marked; beside it the
    tau reduction n_tau / n_tau^o against the bound Eq. B5. Densities are drawn on bins
    merged to hold >= MIN_BIN_COUNT spins (`fig2a_table`, the figure's numbers); sparser
    bins are marked x at the bottom, not drawn."""
    _, rows = fig2a_table(st)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11.5, 4.8))
    sparse = False
    for k, (name, color, label, kw) in enumerate((
            ("n_tau", "tab:red", r"$n_\tau(E)$", {}),
            ("n_S", "tab:blue", r"$n_S(E)$", {}),
            ("n_S_mf", "tab:green", r"$n_S^o(E)$ (mean field)", {}),
            ("n_tau_mf", "tab:red", r"$n_\tau^o(E)$ (mean field)", dict(ls="--", alpha=0.7)))):
        _, _, e, m, se, _ = _fig_rows(rows, name)
        if e.size:
            _band(ax, e, m, se, color, label, marker=".", ms=3, **kw)
        sparse |= _mark_sparse(ax, st, name, color, 0.03 + 0.03 * k)
    if sparse:
        ax.plot([], [], "x", color="0.3", label=f"bins with < {MIN_BIN_COUNT} spins (not drawn)")
    gj, g2j = st.g * st.J0, st.g**2 * st.J0
    for v, lab in ((gj, r"$gJ_o$"), (g2j, r"$g^2J_o$"), (st.J0, r"$J_o$")):
        ax.axvline(v, color="k", ls=":", lw=1)
        ax.text(v * 1.08, 0.97, lab, transform=ax.get_xaxis_transform(), va="top", fontsize=9)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("single-flip energy E = 2|lambda| (K)")
    ax.set_ylabel("DOS (per impurity per K)")
    ax.set_title(f"a) densities of states, a~ = {float(st.params.atilde):g}", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, which="both", alpha=0.2)
    _, _, er, r, rs, _ = _fig_rows(rows, "tau_ratio")
    bx.errorbar(er, r, yerr=np.where(np.isfinite(rs), rs, 0.0), color="tab:red",
                marker="o", ms=3, ls="-", lw=1, capsize=2, label=r"$n_\tau / n_\tau^o$")
    e = np.sqrt(st.edges_K[1:] * st.edges_K[:-1])
    bx.plot(e, bound_b5(e, st.g, st.J0), color="k", ls="--",
            label=r"Eq. B5: $1 - 4g\ln(1/\epsilon)$, $\epsilon = (E/2)/(2gJ_o)$")
    bx.axhline(1.0, color="0.5", lw=0.8)
    for v in (gj, g2j):
        bx.axvline(v, color="k", ls=":", lw=1)
    bx.set_xscale("log")
    bx.set_ylim(0.0, 2.0)
    bx.set_xlabel("single-flip energy E = 2|lambda| (K)")
    bx.set_ylabel(r"$n_\tau(E) / n_\tau^o(E)$ (dimensionless)")
    bx.set_title("tau reduction against the bound Eq. B5 (±1 s.e., jackknife)", fontsize=10)
    bx.legend(fontsize=8, loc="lower right")
    bx.grid(True, which="both", alpha=0.2)
    fig.suptitle("Fig. 2 a: full Hamiltonian (Eq. 1) by Monte Carlo", fontsize=10)
    _caption(fig, study_title(st, note) + f". Bins merged to >= {MIN_BIN_COUNT} spins "
             "(pooled over realizations; mean field over its random configurations); bands "
             "±1 s.e. over realizations.")
    save_figure(fig, path)


def plot_mc_ps(studies: list[MCStudy], path, *, note: str = "") -> None:
    """P_S(E) of the full model, estimator (b) (the ES estimator on the Monte Carlo state,
    line) and (a) (the DOS ratio n_S(E)/n_S(E-bar), circles), against the ES reduction
    of the same realizations (black), one panel per a~; E in units of each convention's
    mean tau energy."""
    k = len(studies)
    fig, axes = plt.subplots(1, k, figsize=(4.3 * k, 4.0), sharey=True, squeeze=False)
    for ax, st in zip(axes[0], studies):
        e = st.energies
        m, s = st.stat("P_S_es")
        _band(ax, e, m, s, "k", "ES shortcut (App. B 2)")
        m, s = st.stat("P_S_mc")
        _band(ax, e, m, s, "tab:blue", "full model: ES estimator on the state (b)")
        a, a_se = st.p_s_dos()
        ok = np.isfinite(a) & (a > 0)
        inform = ok & np.isfinite(a_se) & (a_se < 0.5 * a)  # bar shorter than the value
        ax.errorbar(e[inform], a[inform], yerr=a_se[inform], ls="none",
                    marker="o", mfc="none", ms=4, color="tab:blue", capsize=2,
                    label=f"full model: n_S(E)/n_S(E-bar) (a), E-bar = "
                    f"{st.e_bar_K / (st.g * st.J0):g} gJ_o")
        if (ok & ~inform).any():
            ax.plot(e[ok & ~inform], a[ok & ~inform], ls="none", marker="o", ms=3,
                    color="tab:blue", alpha=0.35,
                    label="(a) where s.e. >= value/2: too few S spins, no bar")
        ax.axhline(5 * st.g, color="k", ls=":", lw=1, label=f"5g = {5 * st.g:g}")
        tu_mc, tu_es = st.stat("T_U_mc")[0], st.stat("T_U_es")[0]
        ax.set_title(f"a~ = {float(st.params.atilde):g}: T_U/<E_tau> = {tu_mc:.3f} (b), "
                     f"{tu_es:.3f} (ES)", fontsize=9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(1e-4, 1.5)
        ax.set_xlabel(r"$E / \langle E_\tau\rangle$ (each convention's mean tau energy)")
        ax.grid(True, which="both", alpha=0.2)
    axes[0, 0].set_ylabel(r"$P_S(E)$ (fraction of S spins)")
    axes[0, 0].legend(fontsize=7, loc="lower right")
    fig.suptitle("P_S of the full model vs the ES shortcut, same realizations", fontsize=10)
    _caption(fig, study_title(studies[0], note) + ". Bands ±1 s.e. over realizations; "
             "E in units of each convention's mean tau energy (flip energies for (a), (b); "
             "local fields for the ES).")
    save_figure(fig, path)
