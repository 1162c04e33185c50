"""Figures of the Monte Carlo of the full Hamiltonian: Fig. 2 a (densities of states) and
P_S of the full model against the ES shortcut (Agg backend; axes labelled with units)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..studies._mc_study import MCStudy, bound_b5  # noqa: E402
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


def plot_mc_dos(st: MCStudy, path, *, note: str = "") -> None:
    """Fig. 2 a: n_tau (red), n_S (blue), n_S^o (green), n_tau^o (red dashed) per impurity
    per K vs the single-flip energy (K), log-log, g J_o and g^2 J_o marked; beside it the
    tau reduction n_tau / n_tau^o against the bound Eq. B5."""
    e = np.sqrt(st.edges_K[1:] * st.edges_K[:-1])
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11.5, 4.6))
    for name, color, label, kw in (
            ("n_tau", "tab:red", r"$n_\tau(E)$", {}),
            ("n_S", "tab:blue", r"$n_S(E)$", {}),
            ("n_S_mf", "tab:green", r"$n_S^o(E)$ (mean field)", {}),
            ("n_tau_mf", "tab:red", r"$n_\tau^o(E)$ (mean field)", dict(ls="--", alpha=0.7))):
        m, s = st.stat(name)
        _band(ax, e, m, s, color, label, **kw)
    gj, g2j = st.g * st.J0, st.g**2 * st.J0
    for v, lab in ((gj, r"$gJ_o$"), (g2j, r"$g^2J_o$"), (st.J0, r"$J_o$")):
        ax.axvline(v, color="k", ls=":", lw=1)
        ax.text(v * 1.08, 0.97, lab, transform=ax.get_xaxis_transform(), va="top", fontsize=9)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("single-flip energy E (K)")
    ax.set_ylabel("DOS (per impurity per K)")
    ax.set_title(f"a) densities of states, a~ = {float(st.params.atilde):g}", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, which="both", alpha=0.2)
    er, r, rs = st.tau_reduction()
    ok = np.isfinite(r)
    bx.errorbar(er[ok], r[ok], yerr=np.where(np.isfinite(rs), rs, 0.0)[ok], color="tab:red",
                marker="o", ms=3, ls="-", lw=1, capsize=2, label=r"$n_\tau / n_\tau^o$")
    bx.plot(e, bound_b5(e, st.g, st.J0), color="k", ls="--",
            label=r"Eq. B5: $1 - 4g\ln(1/\epsilon)$, $\epsilon = (E/2)/(2gJ_o)$")
    bx.axhline(1.0, color="0.5", lw=0.8)
    for v in (gj, g2j):
        bx.axvline(v, color="k", ls=":", lw=1)
    bx.set_xscale("log")
    bx.set_ylim(0.0, 2.0)
    bx.set_xlabel("single-flip energy E (K)")
    bx.set_ylabel(r"$n_\tau(E) / n_\tau^o(E)$ (dimensionless)")
    bx.set_title("tau reduction against the bound Eq. B5 (±1 s.e., jackknife)", fontsize=10)
    bx.legend(fontsize=8, loc="lower right")
    bx.grid(True, which="both", alpha=0.2)
    fig.suptitle("Fig. 2 a, full Hamiltonian (Eq. 1) by Monte Carlo: " + study_title(st, note),
                 fontsize=9, wrap=True)
    fig.tight_layout()
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
        ax.errorbar(e[ok], a[ok], yerr=np.where(np.isfinite(a_se), a_se, 0.0)[ok], ls="none",
                    marker="o", mfc="none", ms=4, color="tab:blue", capsize=2,
                    label=f"full model: n_S(E)/n_S(E-bar) (a), E-bar = "
                    f"{st.e_bar_K / (st.g * st.J0):g} gJ_o")
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
    fig.suptitle("P_S of the full model vs the ES shortcut, same realizations (bands ±1 s.e.): "
                 + study_title(studies[0], note), fontsize=9, wrap=True)
    fig.tight_layout()
    save_figure(fig, path)
