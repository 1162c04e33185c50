"""Figure of a kappa(T) fit: data, fit, the pure T^2 law, T_U, and log residuals."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..fit._fit import FitResult  # noqa: E402


def plot_kappa_fit(result: FitResult, path, *, title: str | None = None) -> None:
    """Two panels from a `fit_kappa` result alone (its `meta` and `derived`): kappa(T)
    on log-log axes with the fit, the T^2 law of C = C(E -> 0) and T_U marked; below,
    ln(model / data) per point."""
    m, d = result.meta, result.derived
    T, k = np.asarray(m["data_T"]), np.asarray(m["data_kappa"])
    fig, (ax, axr) = plt.subplots(2, 1, figsize=(6.0, 6.4), sharex=True,
                                  gridspec_kw=dict(height_ratios=[3, 1.2]))
    ax.loglog(T, k, "o", color="k", ms=4, label="data")
    ax.loglog(d["curve_T"], d["curve_kappa"], "C0-", label="S-tau fit")
    ax.loglog(d["curve_T"], d["curve_kappa_T2"], "C1--", lw=1,
              label=r"pure $T^2$ law, $C = C(E\to 0)$")
    tu, tu_err = d["T_U_K"], d.get("T_U_K_err", float("nan"))
    for a in (ax, axr):
        a.axvline(tu, color="gray", ls=":", lw=1)
    ax.plot([], [], color="gray", ls=":", label=f"T_U (P_S = 5g) = {tu:.3g} ± {tu_err:.2g} K")
    ax.set_ylabel(r"$\kappa$ (W m$^{-1}$ K$^{-1}$)")
    lines = [f"{n} = {result.params[n]:.3g} ± {result.stderr[n]:.2g}" for n in result.free]
    lines.append(f"rms ln residual = {d['rms_log_residual']:.3f}")
    ax.text(0.97, 0.03, "\n".join(lines), transform=ax.transAxes, ha="right", va="bottom",
            fontsize=8)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title or str(m.get("data", "")), fontsize=9)
    axr.semilogx(T, d["residuals_log"], "o", color="k", ms=4)
    axr.axhline(0.0, color="C0", lw=1)
    axr.set_xlabel("T (K)")
    axr.set_ylabel(r"ln($\kappa_{fit}/\kappa$)")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
