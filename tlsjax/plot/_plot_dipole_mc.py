"""Figure of the Monte Carlo check of the dipole regime's tau DOS (`tau_dos_mc`)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from ..studies._dipole_mc import TauDOSCheck  # noqa: E402
from ._save import save_figure


def _panel(ax, x, res, i, counts, cumulative: bool) -> None:
    """MC and ES (mean +- s.e.) and Eqs. B6, B5 for case i against x (units of J_tt)."""
    shown = counts["mean_field"][i] > 0
    for key, fmt, color, label in (("mc", "o-", "C3", "Monte Carlo, Eq. 1 with dipoles"),
                                   ("es", "s--", "C0", "ES estimate (tau_pair_bound)")):
        m, s = res[key][0][i], res[key][1][i]
        ok = shown & np.isfinite(m)
        ax.errorbar(x[ok], m[ok], yerr=np.where(np.isfinite(s), s, 0.0)[ok], fmt=fmt,
                    color=color, ms=4, capsize=2, mfc="none" if key == "es" else color,
                    label=label)
    ax.plot(x[shown], res["B6"][0][i][shown], ":", color="k", lw=1.5,
            label="Eq. B6: 1 - c ln(J_tt/E)")
    ax.plot(x[shown], res["B5"][0][i][shown], "-.", color="0.5", lw=1,
            label="Eq. B5 bound (S-tau): 1 - 4g ln(2gJ_o/E)")
    for xv, n_mc, n_mf in zip(x[shown], counts["mc"][i][shown], counts["mean_field"][i][shown]):
        ax.annotate(f"{n_mc:.0f}/{n_mf:.0f}", (xv, 0.02), fontsize=5, ha="center", color="0.3")
    ax.axhline(1.0, color="0.8", lw=0.8, zorder=0)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(0.0, 1.6)
    ax.grid(True, which="both", alpha=0.2)
    if cumulative:
        ax.set_xlabel(r"$E\,/\,J_{tt}$ (window $[0, E)$)")
    else:
        ax.set_xlabel(r"window centre $E\,/\,J_{tt}$ ($E = |\lambda|$)")


def plot_tau_dos_mc(check: TauDOSCheck, path) -> None:
    """n_tau / n_tau^o per J_ee (columns): in energy windows (top) and below E (bottom);
    Monte Carlo against the ES estimate and Eqs. B5, B6. Numbers under the points: tau
    spins found / expected without correlations, pooled over realizations."""
    k = len(check.J_ee_over_gJ0)
    fig, axes = plt.subplots(2, k, figsize=(3.6 * k + 0.6, 7.4), squeeze=False, sharey=True)
    centres = np.sqrt(check.edges[:-1] * check.edges[1:])
    for i, r in enumerate(check.J_ee_over_gJ0):
        _panel(axes[0, i], centres, check.binned, i, check.counts, False)
        _panel(axes[1, i], check.probes, check.cumulative, i, check.cumulative_counts, True)
        tt = "J_ee" if r > 0 else "g^2 J_o"
        axes[0, i].set_title(f"J_ee = {r:g} g J_o: J_tt = {tt} = {check.J_tt_K[i]:.3g} K, "
                             f"c = {check.c[i]:.3g}", fontsize=8)
    axes[0, 0].set_ylabel(r"$n_\tau(E)\,/\,n_\tau^o(E)$ in the window")
    axes[1, 0].set_ylabel(r"$N_\tau(<E)\,/\,N_\tau^o(<E)$")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    p = check.params
    fig.suptitle(f"tau DOS of pair-stable Monte Carlo states vs the ES estimate: g = {p['g']:g}, "
                 f"J_o = {p['J0_K']:g} K, a~ = {p['atilde']:g}, a_d = {p['dipole_atilde']:g} a_o, "
                 f"fcc x = {p['x']:g}, L = {p['cells']} (~{check.n_sites_mean:.0f} impurities), "
                 f"{check.realizations} realizations, mean ± s.e. (jackknife)", fontsize=8)
    fig.tight_layout(rect=(0.0, 0.04, 1.0, 1.0))
    save_figure(fig, path)
