"""Fit the S-tau model to the measured kappa(T) of Stycast 1266 and PTFE.

Reads `../shared/data/kappa/` (beside the project) when it exists; writes, into the
output folder (default `experiments/out/fit_measured_kappa/`), one figure and one JSON
per curve and a table `fits.csv` / `fits.md`.

No sound velocities are supplied (none with a citation at hand), so the velocity-free
convention applies: free g, J_o and kv = kappa_log v_eff; a~ = 3 fixed (MODEL.md
default). The numbers are what the fit gives; nothing is tuned toward the universal
figures (data/universal_figures.csv), which are only printed beside them.

    python experiments/fit_measured_kappa.py [--out DIR] [--overwrite]
"""

import argparse
import math
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

from tlsjax import fit_kappa, load_curve  # noqa: E402
from tlsjax._io import OutputDir  # noqa: E402
from tlsjax.plot._plot_fit import plot_kappa_fit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "kappa"
CURVES = [
    ("stycast1266_olson1993.csv", "Stycast 1266 (Olson 1993)"),
    ("ptfe_anderson1963_s1.csv", "PTFE sample 1 (Anderson, Reese, Wheatley 1963)"),
    ("ptfe_reese1965_s1.csv", "PTFE sample 1 (Reese & Tucker 1965)"),
]


def fmt(v, e):
    return f"{v:.3g} ± {e:.2g}" if math.isfinite(e) else f"{v:.3g} (undetermined)"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "experiments" / "out" / "fit_measured_kappa"))
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()
    if not SHARED.is_dir():
        print(f"{SHARED} not found: nothing to fit")
        return 0
    out = OutputDir(args.out, overwrite=args.overwrite)
    header = ["material", "points", "T range (K)", "g", "J0 (K)", "kv = kappa_log v_eff (m/s)",
              "C_o v_eff (m/s)", "T_U (K)", "rms ln residual", "rms <1 K", "rms >=1 K",
              "converged", "notes"]
    rows = []
    for name, label in CURVES:
        curve = load_curve(SHARED / name, min_points=3)
        res = fit_kappa(curve, None, free=["g", "J0", "kv"], starts=3, progress=False)
        stem = name.removesuffix(".csv")
        res.to_json(out.path(f"{stem}_fit.json"), overwrite=True)
        plot_kappa_fit(res, out.path(f"{stem}_fit.png"), title=label)
        d, p, s = res.derived, res.params, res.stderr
        rows.append([label, curve.n, f"{curve.T[0]:.3g}-{curve.T[-1]:.3g}",
                     fmt(p["g"], s["g"]), fmt(p["J0"], s["J0"]), fmt(p["kv"], s["kv"]),
                     fmt(d["C_o_v_eff_m_per_s"], d["C_o_v_eff_m_per_s_err"]),
                     fmt(d["T_U_K"], d["T_U_K_err"]), f"{d['rms_log_residual']:.3f}",
                     f"{d.get('rms_log_residual_below_1K', float('nan')):.3f}",
                     f"{d.get('rms_log_residual_above_1K', float('nan')):.3f}",
                     res.converged, "; ".join(res.notes)])
        print(label)
        print(res.summary())
        print(f"  C_o v_eff = {rows[-1][6]} m/s; T_U = {rows[-1][7]} K; rms ln residual "
              f"{d['rms_log_residual']:.3f}; implied v_eff if C_o = 3e-4 (Carruzzo & Yu): "
              f"{d['C_o_v_eff_m_per_s'] / 3e-4:.3g} m/s")
    out.csv("fits.csv", header, rows)
    md = ["| " + " | ".join(header[:-1]) + " |", "|" + "---|" * (len(header) - 1)]
    md += ["| " + " | ".join(str(c) for c in r[:-1]) + " |" for r in rows]
    out.path("fits.md").write_text("\n".join(md) + "\n")
    print(f"wrote {len(out.written)} files to {out.root}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
