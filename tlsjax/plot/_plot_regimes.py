"""Figures of the Sec. III B regimes: T_U and C_o versus x (pure and mixed crystal) and
versus J_ee / (g J_o) (electric dipoles), with the paper's laws beside the computation."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from ..studies._regimes import (  # noqa: E402
    EXPERIMENT_WINDOW,
    RegimeScan,
    paper_laws,
)
from ._save import save_figure


def _errorbar(ax, x, scan: RegimeScan, key: str, **kw):
    """Mean +- s.e. of `key`; points <= 0 (no crossover) are left out of the log axes."""
    m, s = np.asarray(scan.mean[key], float), np.asarray(scan.stderr[key], float)
    ok = m > 0
    s = np.where(np.isfinite(s), s, 0.0)
    lo = np.minimum(s, 0.999 * m)  # keep the lower bar above zero on a log axis
    ax.errorbar(x[ok], m[ok], yerr=[lo[ok], s[ok]], capsize=3, **kw)
    return ok


def _slope_label(scan: RegimeScan, key: str, name: str) -> str:
    sl = scan.slope(key) if f"slope_{key}" in scan.mean else None
    if sl is None or not np.isfinite(sl["mean"]):
        return f"{name}: slope n/a"
    err = f" ± {sl['stderr']:.3f}" if np.isfinite(sl["stderr"]) else " (1 realization)"
    return f"{name}: slope {sl['mean']:.3f}{err} (paper {sl['paper']:.3g})"


def _dense_law(scan: RegimeScan, key: str, lo: float, hi: float):
    """(axis, law) on a dense log grid spanning the plotted range."""
    v = np.geomspace(lo, hi, 200)
    return v, paper_laws(scan.name, scan.params, v)[key]


def _log_axes(ax):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())


def _window(ax):
    ax.axvspan(*EXPERIMENT_WINDOW, color="0.85", zorder=0,
               label=f"KBr:CN universal, {EXPERIMENT_WINDOW[0]} < x < {EXPERIMENT_WINDOW[1]}")


def _no_crossover(ax, scan: RegimeScan):
    """Mark x where no realization had a crossover at E > 0 (T_U = 0)."""
    zero = np.asarray(scan.mean["crossover"]) == 0
    if zero.any():
        ax.plot(scan.values[zero], np.full(zero.sum(), ax.get_ylim()[0] * 1.5), "v", color="C3",
                ms=8, label="no crossover at E > 0 (T_U = 0)")


def plot_concentration(dilution: RegimeScan | None, mixed: RegimeScan | None, path) -> None:
    """T_U(x) and C_o(x), log-log, for the dilute pure crystal (top) and the mixed crystal
    (bottom), each against the paper's law, with the experiments' window shaded."""
    rows = [s for s in (dilution, mixed) if s is not None]
    fig, axes = plt.subplots(len(rows), 2, figsize=(11.0, 4.3 * len(rows)), squeeze=False)
    for ax_row, scan in zip(axes, rows):
        x = scan.values
        p = scan.params
        ax = ax_row[0]
        _window(ax)
        _errorbar(ax, x, scan, "T_U_K", fmt="o-", color="C0",
                  label=_slope_label(scan, "T_U_K", "T_U: g^2 n_tau = n_S"))
        _errorbar(ax, x, scan, "T_U_shortcut_K", fmt="s--", color="C1", mfc="none",
                  label="T_U: P_S = 5 g (shortcut)")
        if scan.name == "dilution":
            law = "paper: 0.2 J^Stau(R_o) ~ x^(7/3)"
        else:
            law = "paper: 0.2 g J_o, independent of x"
        ax.plot(*_dense_law(scan, "T_U_K", x.min(), max(x.max(), EXPERIMENT_WINDOW[1])), "k:", lw=1.5,
                label=law)
        _log_axes(ax)
        _no_crossover(ax, scan)
        ax.set_ylabel(r"$T_U$ (K; local field $|\lambda|$)")
        ax = ax_row[1]
        _window(ax)
        _errorbar(ax, x, scan, "C_o", fmt="o-", color="C2",
                  label=_slope_label(scan, "C_o", "C_o = kappa g^2 J_SS n_tau(0)"))
        if scan.name == "mixed":
            _errorbar(ax, x, scan, "C_S_probe", fmt="^-", color="C3",
                      label=f"S part of C at E = {p['probe_K']:.2g} K (tau part ~ C_o)")
            law = "paper: 0.1 g x / x_c"
        else:
            law = "paper: kappa g(x) ~ x^(4/3) (Eq. 3)"
        ax.plot(*_dense_law(scan, "C_o", x.min(), max(x.max(), EXPERIMENT_WINDOW[1])), "k:", lw=1.5,
                label=law)
        _log_axes(ax)
        ax.set_ylabel(r"tunneling strength $C_o$ (dimensionless)")
        for a in ax_row:
            a.set_xlabel("CN concentration x (fraction of anion sites)")
            a.grid(True, which="both", alpha=0.2)
            a.legend(fontsize=7, loc="best")
        if scan.name == "dilution":
            title = (f"Dilute KBr:CN: J^SS(R_o) = J_nn x, J_nn = {p['J_nn_K']:g} K, "
                     f"g = {p['g_c']:g} (x/x_c)^(4/3) below x_c = {p['x_c']:g}, "
                     f"a~ = {p['atilde']:g} a_o ({p['cutoff']} cutoff)")
        else:
            title = (f"Mixed host: g = {p['g']:g}, J_o = {p['J0_K']:g} K at x_c = {p['x_c']:g}, "
                     f"h^S = {p['h_S']:g} J_o, h^tau = {p['h_tau']:g} g J_o, a~ = {p['atilde']:g} a_o")
        ax_row[0].set_title(title + f"; ~{p['n_target']} impurities, {scan.realizations} "
                            "realizations, mean ± s.e.", fontsize=8, loc="left")
    fig.tight_layout()
    save_figure(fig, path)


def _caption(fig, text: str, bottom: float = 0.1) -> None:
    """The settings of a figure as a caption under its axes (not a long title)."""
    fig.tight_layout(rect=(0.0, bottom, 1.0, 1.0))
    fig.text(0.01, 0.01, text, fontsize=7, ha="left", va="bottom", wrap=True)


_EXPONENT_STYLE = dict(T_U_full=("o-", "C0"), T_U_shortcut=("s--", "C1"),
                       T_U_fixed_target=("D-.", "C4"), E_tau=("^-", "C2"), C_o=("v:", "C3"),
                       T_U_full_nominal_width=("o:", "C7"), T_U_correlated=("P-", "C9"))


def plot_local_exponents(scan: RegimeScan, path) -> None:
    """Local exponents d ln y / d ln x of the dilute crystal against x (at the geometric
    mean of neighbouring x), mean ± s.e. over realizations, 7/3 and 4/3 marked."""
    loc = scan.local_exponents()
    x = np.asarray(loc["x"])
    fig, ax = plt.subplots(figsize=(8.0, 5.2))
    for name, (fmt, color) in _EXPONENT_STYLE.items():
        if name not in loc:
            continue
        m = np.array([np.nan if v is None else v for v in loc[name]["value"]])
        e = np.array([0.0 if v is None else v for v in loc[name]["stderr"]])
        ok = np.isfinite(m)
        label = name
        if (~ok).any():
            label += f" (undefined at {(~ok).sum()} x: T_U = 0 in some realization)"
        ax.errorbar(x[ok], m[ok], yerr=e[ok], fmt=fmt, color=color, capsize=3, ms=5,
                    label=label)
    for v, txt in ((7.0 / 3.0, "7/3 (paper: T_U, <E_tau>)"), (4.0 / 3.0, "4/3 (paper: C_o)")):
        ax.axhline(v, color="k", lw=1, ls=":")
        ax.text(x.min(), v, " " + txt, va="bottom", fontsize=8)
    ax.axvline(scan.params["x_c"], color="0.5", lw=1)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("CN concentration x (fraction of anion sites)")
    ax.set_ylabel(r"local exponent $d\,\ln y\,/\,d\,\ln x$ (dimensionless)")
    ax.set_title(f"Dilute KBr:CN, cutoff {scan.params['cutoff']}: local exponents", fontsize=10)
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=7, loc="best")
    p = scan.params
    _caption(fig, f"J_nn = {p['J_nn_K']:g} K, g = {p['g_c']:g} min(1, x/x_c)^(4/3), "
             f"x_c = {p['x_c']:g} (grey line), a~ = {p['atilde']:g} a_o "
             + ("at every x" if p["cutoff"] == "fixed" else
                f"at x_c, a~/R_o = {p['atilde_over_R_o_at_x_c']:.3g} at every x")
             + f"; ~{p['n_target']} impurities per sample, {scan.realizations} realizations, "
             "mean ± s.e.; energies are local fields |lambda|.", bottom=0.08)
    save_figure(fig, path)


def plot_dipole(scan: RegimeScan, path) -> None:
    """T_U and C_o versus J_ee / (g J_o), log-log, both regimes marked, the paper's laws."""
    r = scan.values
    p = scan.params
    has_tau = "P_tau" in scan.mean
    fig, axes = plt.subplots(1, 3 if has_tau else 2, figsize=(16.0 if has_tau else 11.0, 4.4))
    for ax, key, ylab in ((axes[0], "T_U_K", r"$T_U$ (K; local field $|\lambda|$)"),
                          (axes[1], "C_o", r"tunneling strength $C_o$ (dimensionless)")):
        ax.axvspan(r.min() / 1.5, 1.0, color="0.92", zorder=0)
        ax.axvline(1.0, color="0.4", lw=1)
        if key == "T_U_K":
            _errorbar(ax, r, scan, "T_U_K", fmt="o-", color="C0",
                      label=_slope_label(scan, "T_U_K", "T_U: g^2 n_tau = n_S"))
            _errorbar(ax, r, scan, "T_U_shortcut_K", fmt="s--", color="C1", mfc="none",
                      label="T_U: P_S = 5 g (shortcut)")
            law = "paper: 0.2 g J_o, then T_U ~ J_ee (0.2 J_ee drawn)"
        else:
            _errorbar(ax, r, scan, "C_o", fmt="o-", color="C2",
                      label=_slope_label(scan, "C_o", "C_o = kappa g phi_tau(0)"))
            law = "paper: kappa g, then g^2 J_o / J_ee (kappa g^2 J_o/J_ee drawn)"
        ref = scan.mean.get(f"reference_{key}")
        if ref is not None:
            ax.axhline(float(ref), color="C0" if key == "T_U_K" else "C2", ls="-.", lw=1,
                       label=f"J_ee = 0: {float(ref):.3g}")
        ax.plot(*_dense_law(scan, key, r.min(), r.max()), "k:", lw=1.5, label=law)
        _log_axes(ax)
        ax.set_xlabel(r"$J_{ee}\,/\,(g J_o)$ (dipolar / elastic S-tau coupling at $R_o$)")
        ax.set_ylabel(ylab)
        ax.grid(True, which="both", alpha=0.2)
        ax.legend(fontsize=7, loc="best")
        frame = ax.get_xaxis_transform()  # x in data, y in axes units
        ax.text(0.9, 0.5, r"$J_{ee} < gJ_o$", ha="right", fontsize=8, transform=frame)
        ax.text(1.1, 0.5, r"$J_{ee} > gJ_o$", ha="left", fontsize=8, transform=frame)
    if has_tau:
        _plot_p_tau(axes[2], scan)
    axes[0].set_title(f"Electric dipoles: g = {p['g']:g}, J_o = {p['J0_K']:g} K, "
                      f"a~ = {p['atilde']:g}, a_d = {p['dipole_atilde']:g} a_o, fcc x = {p['x']:g}, "
                      f"L = {scan.cells[0]}, {scan.realizations} realizations, mean ± s.e.",
                      fontsize=8, loc="left")
    fig.tight_layout()
    save_figure(fig, path)


def _plot_p_tau(ax, scan: RegimeScan) -> None:
    """P_tau(E) vs E / J_ee per J_ee (ES, App. B 1) with Eq. B6, 1 - c ln(J_ee / E), c = J_ee/gJ_o."""
    e = np.asarray(scan.params["P_tau_energies_over_J_ee"])
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, len(scan.values)))
    markers, styles = "osD^vP*X", ("-", "--", "-.", ":")
    n = len(scan.values)
    for i, r in enumerate(scan.values):
        m, s = scan.mean["P_tau"][i], scan.stderr["P_tau"][i]
        shift = 1.06 ** (i - (n - 1) / 2)  # a small offset in E so close curves stay apart
        ax.errorbar(e * shift, m, yerr=np.where(np.isfinite(s), s, 0.0),
                    fmt=markers[i % len(markers)], ls=styles[i % len(styles)], color=colors[i],
                    ms=5, mfc="none" if i % 2 else colors[i], capsize=2,
                    label=f"J_ee = {r:g} g J_o")
        if r < 1.0:
            dense = np.geomspace(e.min(), 1.0, 50)
            ax.plot(dense, np.clip(1.0 - r * np.log(1.0 / dense), 0.0, 1.0), ":",
                    color=colors[i], lw=1)
    ax.plot([], [], "k:", lw=1, label="Eq. B6: 1 - (J_ee/gJ_o) ln(J_ee/E)")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel(r"$E\,/\,J_{ee}$ (dimensionless; points offset by a few % per curve)")
    ax.set_ylabel(r"$P_\tau(E)$: tau DOS reduction by tau-tau dipoles (ES)")
    ax.set_title("tau-tau dipole depression (ES estimate, elastic tau-tau omitted)", fontsize=8)
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=7, loc="lower right")
