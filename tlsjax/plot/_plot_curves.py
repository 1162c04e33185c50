"""Figure of a `fit_curves` result (`tlsjax fit qinv`, `tlsjax fit dvv`): one panel per
curve (kappa, Q^-1, Delta v/v) with the data and their 1-sigma error bars, the fitted
curve, the parameters by physical name in a box, the citation as a short title and the
settings in a caption; the numbers drawn go to a CSV beside the figure."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .._io import _csv_text, atomic_write_text  # noqa: E402
from ..fit._fit import FitResult  # noqa: E402
from ._plot_fit import _box  # noqa: E402
from ._save import save_figure  # noqa: E402

_YLABEL = {"kappa": r"$\kappa$ (W m$^{-1}$ K$^{-1}$)", "qinv": r"$Q^{-1}$",
           "dvv": r"$\Delta v/v$"}


def csv_path(path) -> Path:
    """Where the numbers of the figure `path` go: the same name with `.csv`."""
    return Path(path).with_suffix(".csv")


def _error_scale(result: FitResult) -> tuple[float, str]:
    """The factor on the per-point sigmas and what the error bars are."""
    if result.meta.get("absolute_sigma", True):
        return 1.0, "error bars: the given 1-sigma"
    dof = max(result.n_data - len(result.free), 1)
    return (math.sqrt(2.0 * result.loss / dof),
            "error bars: 1-sigma from the scatter (no uncertainties given)")


def _title(m: dict) -> str:
    cites = [" ".join(str(c).split()) for c in (m.get("citation") or {}).values() if c]
    text = "; ".join(dict.fromkeys(cites)) or ", ".join(
        Path(str(p)).name for p in (m.get("data") or {}).values())
    return text if len(text) <= 80 else text[:77] + "..."


def _panel(ax, k: str, m: dict, d: dict, scale: float) -> list[list]:
    """Data with error bars and the fit of channel `k`; returns its CSV rows."""
    T, y = np.asarray(m["data_T"][k]), np.asarray(m["data_y"][k])
    sig = np.asarray((m.get("data_sigma") or {}).get(k, np.zeros_like(y))) * scale
    x, fit = np.asarray(d[f"curve_T_{k}"]), np.asarray(d[f"curve_{k}"])
    if k == "dvv":
        ax.set_xscale("log")
        err = sig
    else:  # sigma of ln y: asymmetric bars y exp(-s) .. y exp(s)
        ax.set_xscale("log")
        ax.set_yscale("log")
        err = np.stack([y * (1.0 - np.exp(-sig)), y * (np.exp(sig) - 1.0)])
    ax.errorbar(T, y, yerr=err, fmt="o", color="k", ms=4, capsize=2, label="data")
    ax.plot(x, fit, "C0-", lw=1.5, label="fit: " + d.get("model_label", ""))
    ax.set_ylabel(_YLABEL[k])
    ax.legend(fontsize=7, loc="best")
    s_abs = sig if k == "dvv" else y * sig
    return ([["data", k, float(t), float(v), float(e)] for t, v, e in zip(T, y, s_abs)]
            + [["fit", k, float(t), float(v), ""] for t, v in zip(x, fit)])


def plot_curves_fit(result: FitResult, path) -> tuple[Path, Path]:
    """Write the figure of a `fit_curves` result to `path` and its numbers (data, 1-sigma
    as drawn, fitted curves) to `csv_path(path)`, both atomically. Returns both paths."""
    m, d = result.meta, result.derived
    channels = [k for k in ("kappa", "qinv", "dvv") if k in m["channels"]]
    fig, axes = plt.subplots(len(channels), 1, figsize=(6.0, 3.2 * len(channels) + 0.8),
                             sharex=True, squeeze=False)
    scale, bars = _error_scale(result)
    rows = []
    for ax, k in zip(axes[:, 0], channels):
        rows += _panel(ax, k, m, d, scale)
    axes[-1, 0].set_xlabel("T (K)")
    box = _box(result, {"rms_log_residual": d.get("rms_log_residual", math.nan)})
    axes[0, 0].text(0.97, 0.03, box, transform=axes[0, 0].transAxes, ha="right", va="bottom",
                    fontsize=8)
    axes[0, 0].set_title(_title(m), fontsize=9)
    freqs = ", ".join(f"{'Q^-1' if k == 'qinv' else 'Delta v/v'} at {f:g} Hz"
                      for k, f in (m.get("freq_Hz") or {}).items())
    caption = "; ".join(filter(None, [d.get("model_label"), freqs,
                                      f"polarization {m.get('polarization', 't')}", bars]))
    fig.text(0.01, 0.005, caption, fontsize=7, va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    table = csv_path(path)
    atomic_write_text(table, _csv_text(["kind", "curve", "T_K", "value", "sigma"], rows))
    save_figure(fig, path)
    return Path(path), table
