"""Figure of a kappa(T) fit: data, fit, the pure T^2 law, T_U with its profile bounds,
kappa/T^2, and log residuals; the citation as title, physical names in the box."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..fit._fit import FitResult  # noqa: E402
from ..fit._params import factor, label, missing_error, unit  # noqa: E402
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


def _title(m: dict, title: str | None) -> str:
    """The citation (short), else the file's name."""
    if title:
        return title
    cite = " ".join(str(m.get("citation", "")).replace(",", ", ").split())
    if cite:
        return cite if len(cite) <= 80 else cite[:77] + "..."
    return Path(str(m.get("data", ""))).name


def _box(result: FitResult, d: dict) -> str:
    """The fitted parameters by physical name, in the report's units."""
    lines = []
    for n in result.free:
        f, err = factor(n), result.stderr[n]
        val = f"{result.params[n] * f:.3g}" + (f" ± {err * f:.2g}" if math.isfinite(err) else
                                               f" ({missing_error(err)})")
        lines.append(f"{label(n)} = {val} {unit(n)}".rstrip())
    if math.isfinite(d.get("rms_log_residual", math.nan)):
        lines.append(f"rms ln residual = {d['rms_log_residual']:.3f}")
    return "\n".join(lines)


def _same(a, b) -> bool:
    return np.allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=0.0)


def _limits(*values, log: bool) -> tuple[float, float] | None:
    """y limits that show `values` (the data and the fit): a factor 3 either side on a log
    axis, from 0 (or below the least, if negative) to 1.25 x the largest on a linear one.
    Non-finite values (and values <= 0 on a log axis) are left out; None where nothing is
    left (matplotlib then scales the axis itself)."""
    v = np.concatenate([np.ravel(np.asarray(a, dtype=float)) for a in values])
    v = v[np.isfinite(v) & ((v > 0) if log else True)]
    if v.size == 0 or (not log and v.max() <= 0):
        return None
    return (v.min() / 3.0, v.max() * 3.0) if log else (min(0.0, 1.25 * v.min()), 1.25 * v.max())


def _where(y: np.ndarray, ylim: tuple[float, float] | None) -> str:
    """" (above the plot)" or " (below the plot)" for a curve whose finite points all lie
    outside `ylim`; "" otherwise (also for no limits or no finite point)."""
    y = np.asarray(y, dtype=float)
    y = y[np.isfinite(y)]
    if ylim is None or y.size == 0:
        return ""
    return " (above the plot)" if np.all(y > ylim[1]) else (
        " (below the plot)" if np.all(y < ylim[0]) else "")


def _curves(ax, d: dict, label_fit: str, ylim: tuple[float, float] | None,
            per_T2: np.ndarray | None = None) -> tuple[list[str], list[str]]:
    """Fit, TLS-only and T^2 curves; a curve that coincides with one already drawn is
    not drawn again, its name joins that curve's label; a curve wholly outside `ylim` says
    so in its label. Returns notes on coincidences and the names of curves outside."""
    x = np.asarray(d["curve_T"])
    scale = 1.0 if per_T2 is None else per_T2
    curves = [("fit: " + label_fit, d["curve_kappa"], "C0-", 1.5)]
    if "curve_kappa_tls_only" in d:
        curves.append(("TLS scattering alone", d["curve_kappa_tls_only"], "C2-.", 1.0))
    curves.append((r"pure $T^2$ law, $C = C(E\to 0)$", d["curve_kappa_T2"], "C1--", 1.0))
    drawn, notes = [], []
    for name, y, style, lw in curves:
        twin = next((i for i, (_, y0, _, _) in enumerate(drawn) if _same(y, y0)), None)
        if twin is not None:
            drawn[twin] = (drawn[twin][0] + " = " + name, *drawn[twin][1:])
            notes.append(f"{name.split(',')[0]} coincides with {drawn[twin][0].split(' = ')[0]}")
            continue
        drawn.append((name, y, style, lw))
    outside = []
    for name, y, style, lw in drawn:
        y = np.asarray(y) * scale
        where = _where(y, ylim)
        if where:
            outside.append(name.split(",")[0] + where)
        ax.plot(x, y, style, lw=lw, label=name + where)
    return notes, outside


def _tu_marks(axes, d: dict, t_lo: float, t_hi: float):
    """T_U: a dotted line at the best fit, its profile bounds as a shaded band."""
    tu = d.get("T_U_K")
    if tu is None or not math.isfinite(tu):
        return None
    lo, hi = d.get("T_U_K_lower"), d.get("T_U_K_upper")
    if "T_U_K_bound_level" in d and (lo is not None or hi is not None):
        for a in axes:
            a.axvspan(max(lo or t_lo, t_lo), min(hi or t_hi, t_hi), color="gray", alpha=0.12,
                      lw=0)
    inside = t_lo <= tu <= t_hi
    if inside:
        for a in axes:
            a.axvline(tu, color="gray", ls=":", lw=1)
    return _tu_label(d) + ("" if inside else " (outside the plot)") + (
        "; band: profile bounds" if "T_U_K_bound_level" in d else "")


def plot_kappa_fit(result: FitResult, path, *, title: str | None = None) -> None:
    """Three panels from a `fit_kappa` result alone (its `meta` and `derived`): kappa(T)
    on log-log axes with the fit, the TLS-only part where boundary or Rayleigh terms are
    on, the T^2 law of C = C(E -> 0), T_U (S-tau) with its profile bounds shaded; kappa/T^2
    (where a plateau shows); ln(model / data). Curves that coincide are drawn once."""
    m, d = result.meta, result.derived
    T, k = np.asarray(m["data_T"]), np.asarray(m["data_kappa"])
    fig, (ax, ax2, axr) = plt.subplots(3, 1, figsize=(6.0, 8.4), sharex=True,
                                       gridspec_kw=dict(height_ratios=[3, 2, 1.2]))
    x = np.asarray(d["curve_T"])
    t_lo, t_hi = float(x.min()), float(x.max())
    # the limits follow the data and the fit; a curve beyond them says so
    ylim = _limits(k, d["curve_kappa"], log=True)
    ylim2 = _limits(k / T**2, np.asarray(d["curve_kappa"]) / x**2, log=False)
    ax.loglog(T, k, "o", color="k", ms=4, label="data")
    notes, _ = _curves(ax, d, d.get("model_label", "fit"), ylim)
    ax2.semilogx(T, k / T**2, "o", color="k", ms=4)
    _, outside = _curves(ax2, d, d.get("model_label", "fit"), ylim2, per_T2=1.0 / x**2)
    if outside:
        ax2.text(0.02, 0.95, "; ".join(outside), transform=ax2.transAxes, va="top", fontsize=7)
    tu = _tu_marks((ax, ax2, axr), d, t_lo, t_hi)
    if tu:
        ax.plot([], [], color="gray", ls=":", label=tu)
    ax.set_xlim(t_lo, t_hi)
    for a, lim in ((ax, ylim), (ax2, ylim2)):
        if lim is not None:
            a.set_ylim(*lim)
    ax.set_ylabel(r"$\kappa$ (W m$^{-1}$ K$^{-1}$)")
    ax2.set_ylabel(r"$\kappa/T^2$ (W m$^{-1}$ K$^{-3}$)")
    ax.text(0.97, 0.03, _box(result, d), transform=ax.transAxes, ha="right", va="bottom",
            fontsize=8)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(_title(m, title), fontsize=9)
    axr.semilogx(T, d["residuals_log"], "o", color="k", ms=4)
    axr.axhline(0.0, color="C0", lw=1)
    axr.set_xlabel("T (K)")
    axr.set_ylabel(r"ln($\kappa_{fit}/\kappa$)")
    if notes:
        fig.text(0.01, 0.005, "drawn once: " + "; ".join(notes), fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.02 if notes else 0, 1, 1))
    save_figure(fig, path)
