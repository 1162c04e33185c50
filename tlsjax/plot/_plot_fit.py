"""Figure of a kappa(T) fit: data, fit, the pure T^2 law, T_U, and log residuals."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..fit._fit import PARAMETERS, FitResult  # noqa: E402
from ._save import save_figure


def _tu_label(d: dict) -> str:
    tu, err = d["T_U_K"], d.get("T_U_K_err", math.nan)
    text = f"T_U (P_S = 5g) = {tu:.3g}" + (f" ± {err:.2g} K" if math.isfinite(err) else " K")
    lo, hi = d.get("T_U_K_lower"), d.get("T_U_K_upper")
    pct = f"{100 * d.get('T_U_K_bound_level', 0.95):g}%"
    if lo is not None and hi is None:
        text += f"; > {lo:.3g} K ({pct})"
    elif hi is not None and lo is None:
        text += f"; < {hi:.3g} K ({pct})"
    return text


def plot_kappa_fit(result: FitResult, path, *, title: str | None = None) -> None:
    """Two panels from a `fit_kappa` result alone (its `meta` and `derived`): kappa(T)
    on log-log axes with the fit, the TLS-only part where boundary or Rayleigh terms are
    on, the T^2 law of C = C(E -> 0) and T_U (S-tau) marked; below, ln(model / data)."""
    m, d = result.meta, result.derived
    T, k = np.asarray(m["data_T"]), np.asarray(m["data_kappa"])
    fig, (ax, axr) = plt.subplots(2, 1, figsize=(6.0, 6.4), sharex=True,
                                  gridspec_kw=dict(height_ratios=[3, 1.2]))
    ax.loglog(T, k, "o", color="k", ms=4, label="data")
    label = d.get("model_label", "fit")
    ax.loglog(d["curve_T"], d["curve_kappa"], "C0-", label=f"fit: {label}")
    if "curve_kappa_tls_only" in d:
        ax.loglog(d["curve_T"], d["curve_kappa_tls_only"], "C2-.", lw=1,
                  label="TLS scattering alone")
    ax.loglog(d["curve_T"], d["curve_kappa_T2"], "C1--", lw=1,
              label=r"pure $T^2$ law, $C = C(E\to 0)$")
    t_lo, t_hi = min(d["curve_T"]), max(d["curve_T"])
    if "T_U_K" in d and math.isfinite(d["T_U_K"]):
        inside = t_lo <= d["T_U_K"] <= t_hi
        if inside:
            for a in (ax, axr):
                a.axvline(d["T_U_K"], color="gray", ls=":", lw=1)
        ax.plot([], [], color="gray", ls=":",
                label=_tu_label(d) + ("" if inside else " (outside the plot)"))
    ax.set_xlim(t_lo, t_hi)
    shown = np.concatenate([k, d["curve_kappa"]])
    ax.set_ylim(shown.min() / 3.0, shown.max() * 3.0)
    ax.set_ylabel(r"$\kappa$ (W m$^{-1}$ K$^{-1}$)")
    lines = []
    for n in result.free:
        err = result.stderr[n]
        unit = PARAMETERS[n][2]
        val = f"{result.params[n]:.3g}" + (f" ± {err:.2g}" if math.isfinite(err) else "")
        lines.append(f"{n} = {val} {unit}".rstrip())
    lines.append(f"rms ln residual = {d['rms_log_residual']:.3f}")
    ax.text(0.97, 0.03, "\n".join(lines), transform=ax.transAxes, ha="right", va="bottom",
            fontsize=8)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title or str(m.get("data", "")), fontsize=9)
    axr.semilogx(T, d["residuals_log"], "o", color="k", ms=4)
    axr.axhline(0.0, color="C0", lw=1)
    axr.set_xlabel("T (K)")
    axr.set_ylabel(r"ln($\kappa_{fit}/\kappa$)")
    fig.tight_layout()
    save_figure(fig, path)
