"""Matplotlib figures (Agg backend; every axis labelled with its unit)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..studies._reproduce import PAPER_TU_OVER_ETAU, ScanResult  # noqa: E402
from ._save import save_figure


def plot_ps_panels(result: ScanResult, path, *, figure_label: str = "") -> None:
    """P_S(E) vs E/<E_tau>, one panel per h_rel, one curve per a~ (as Fig. 2 b-d / Fig. 4)."""
    nh = len(result.h_rels)
    fig, axes = plt.subplots(1, nh, figsize=(4.2 * nh, 3.8), sharey=True, squeeze=False)
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, len(result.atildes)))
    e = result.energies
    for ih, h in enumerate(result.h_rels):
        ax = axes[0, ih]
        for ia, a in enumerate(result.atildes):
            m = result.mean["P_S"][ia, ih]
            s = result.stderr["P_S"][ia, ih]
            ax.plot(e, m, color=colors[ia], label=f"a~ = {a:g}")
            if np.all(np.isfinite(s)):
                ax.fill_between(e, np.maximum(m - s, 1e-6), m + s, color=colors[ia], alpha=0.25)
        ax.axhline(5 * result.g, color="k", ls=":", lw=1, label=f"5g = {5 * result.g:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(1e-4, 1.5)
        ax.set_xlabel(r"$E\,/\,\langle E_\tau\rangle$ (dimensionless)")
        letter = "bcd"[ih] + ") " if nh == 3 else ""
        ax.set_title(f"{letter}$h^\\tau/\\langle E_\\tau\\rangle_0$ = {h:g}")
        ax.grid(True, which="both", alpha=0.2)
    axes[0, 0].set_ylabel(r"$P_S(E)$ (fraction of S spins)")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    theta = "hard Theta" if result.width == 0 else f"soft Theta, w = {result.width:g} <E_tau>"
    fig.suptitle(f"{figure_label}S-DOS reduction: {result.lattice}, x = {result.x:g}, L = {result.cells} "
                 f"(<N> = {result.mean['n_sites']:.0f}), {result.realizations} realizations, "
                 f"{theta}; bands: ±1 s.e.", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def plot_tu_summary(results: list[ScanResult], path) -> None:
    """T_U / <E_tau> vs a~ with error bars, for each sample and h_rel, against the paper."""
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    markers = "osd^v"
    for ir, r in enumerate(results):
        for ih, h in enumerate(r.h_rels):
            ax.errorbar(r.atildes + 0.06 * (ih - 1) + 0.02 * ir, r.mean["T_U_over_E_tau"][:, ih],
                        yerr=r.stderr["T_U_over_E_tau"][:, ih], marker=markers[ih % 5],
                        ls="-" if ir == 0 else "--", capsize=3,
                        label=f"x = {r.x:g}, L = {r.cells}, h_rel = {h:g}")
    ax.axhline(PAPER_TU_OVER_ETAU, color="k", ls=":", label="paper: ~0.2")
    ax.set_xlabel(r"cutoff $\tilde a$ ($a_o$, nearest-neighbour distance)")
    ax.set_ylabel(r"$T_U\,/\,\langle E_\tau\rangle$ (from $P_S(T_U) = 5g$)")
    g = results[0].g
    ax.set_title(f"Crossover T_U, g = {g:g}, mean ± s.e. over realizations", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
