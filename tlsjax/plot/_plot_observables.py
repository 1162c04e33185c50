"""The observables figure: kappa(T), Q^-1(T), l/lambda(T) and C(E) with T_U marked."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ._save import save_figure


def plot_observables(res: dict, desc: dict, path) -> None:
    """Four panels from `compute_observables` output; S-tau vs plain model C = C(E -> 0)."""
    T = res["T"]
    tu_f, tu_s = float(res["T_U_full"]), float(res["T_U_shortcut"])
    fig, axes = plt.subplots(2, 2, figsize=(10.0, 7.6))
    c0 = float(res["C0"])

    def mark(ax):
        # T_U = 0 (no gap: the S TLSs dominate at every energy) has no place on a log axis
        for tu, style, name in ((tu_f, dict(color="k", ls=":"), "g phi_tau = P_S phi_S"),
                                (tu_s, dict(color="gray", ls="--"), "P_S = 5g")):
            if tu > 0:
                ax.axvline(tu, lw=1, label=f"T_U ({name}) = {tu:.2g} K", **style)
            else:
                ax.plot([], [], lw=1, label=f"T_U ({name}) = 0: no gap", **style)

    ax = axes[0, 0]
    ax.loglog(T, res["kappa_stau"], "C0-", label="S-tau C(E)")
    ax.loglog(T, res["kappa_plain"], "C1--", label=f"plain STM, C = {c0:.2g}")
    ax.loglog(T, res["kappa_stau"][0] * (T / T[0]) ** 2, "k-", lw=0.6, alpha=0.5,
              label=r"$\propto T^2$")
    mark(ax)
    ax.set_xlabel("T (K)")
    ax.set_ylabel(r"$\kappa$ (W m$^{-1}$ K$^{-1}$)")
    ax.legend(fontsize=7)

    ax = axes[0, 1]
    f = res.get("freq_Hz")
    ax.loglog(T, res["Qinv_stau"], "C0-", label="S-tau, total")
    ax.loglog(T, res["Qinv_rel_stau"], "C0:", label="S-tau, relaxation")
    ax.loglog(T, res["Qinv_plain"], "C1--", label="plain STM, total")
    ax.axhline(np.pi * c0 / 2, color="C1", lw=0.6, label=r"$\pi C/2$ (plain)")
    mark(ax)
    ax.set_xlabel("T (K)")
    ax.set_ylabel(r"$Q^{-1}$ (transverse" + (f", {f:g} Hz)" if f else ")"))
    ax.legend(fontsize=7)

    ax = axes[1, 0]
    ax.loglog(T, res["l_over_lambda_stau"], "C0-", label="S-tau")
    ax.loglog(T, res["l_over_lambda_plain"], "C1--", label="plain STM")
    ax.axhline(150, color="k", lw=0.6, label="150 (universal)")
    mark(ax)
    ax.set_xlabel("T (K)")
    ax.set_ylabel(r"$l/\lambda$ (thermal phonon, $\hbar\omega = 3k_BT$, transverse)")
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    ax.loglog(res["E"], res["C"], "C0-", label="C(E)")
    ax.loglog(res["E"], res["C_tau"], "C2:", label="tau term")
    ax.loglog(res["E"], np.maximum(res["C_S"], 1e-12), "C3:", label="S term")
    if "kappa_log" in desc:
        ax.axhline(desc["kappa_log"] * desc["g"], color="k", lw=0.6, label=r"$\kappa_{log} g$")
    mark(ax)
    ax.set_ylim(max(1e-8, 1e-3 * c0), None)
    ax.set_xlabel("E / k_B (K)")
    ax.set_ylabel("tunneling strength C(E) (dimensionless)")
    ax.legend(fontsize=7)

    for a in axes.flat:
        a.grid(True, which="both", alpha=0.2)
    title = "S-tau observables"
    if desc.get("model") == "S-tau":
        title += (f": g = {desc['g']:g}, J_o = {desc['J0_K']:g} K, a~ = {desc['atilde']:g}, "
                  f"h_rel = {desc['h_rel']:g}, kappa_log = {desc['kappa_log']:g}")
    mat = desc.get("material")
    if mat:
        title += (f"\nmaterial: rho = {mat['rho']:g} kg/m^3, v_l = {mat['v_l']:g} m/s, "
                  f"v_t = {mat['v_t']:g} m/s, gamma_t = {mat['gamma_t_eV']:g} eV; "
                  f"Q^-1 at {desc.get('freq_Hz', float('nan')):g} Hz")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
