"""Fit the measured kappa(T) of Stycast 1266 and PTFE, choosing the model by AICc.

Reads `../shared/data/kappa/` (beside the project) when it exists; writes, into the
output folder (default `experiments/out/fit_measured_kappa/`), per curve the figure
and the JSON of the chosen fit, and the tables `fits.csv` / `fits.md` (chosen model,
parameters, bounds) and `candidates.md` (all 8 candidate models of each curve).

Each curve gets what `tlsjax fit kappa FILE` does by default: the constant-C model and
the S-tau model (a~ = 3, the docs/conventions.md default; default DOS sample), each without and
with a boundary term and a Rayleigh term, compared by AICc, then errors and
profile-likelihood bounds of the chosen one. No sound velocities are supplied (none with
a citation at hand), so the velocity-free combinations are fitted. The numbers are what
the fits give; nothing is tuned toward the universal figures (data/universal_figures.csv).
Computed in float64 (set below; the command line's default too).

    python experiments/fit_measured_kappa.py [--out DIR] [--overwrite] [--figures DIR]
"""

import argparse
import math
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

from tlsjax import load_curve  # noqa: E402
from tlsjax._io import FIGURE_SUFFIXES, atomic_write_bytes  # noqa: E402
from tlsjax.cli._args import finish_parser  # noqa: E402
from tlsjax.cli._main import Parser  # noqa: E402
from tlsjax.fit._select import format_selection_table, select_kappa_model  # noqa: E402
from tlsjax.plot._plot_fit import plot_kappa_fit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "kappa"
CURVES = [
    ("stycast1266_olson1993.csv", "Stycast 1266 (Olson 1993)"),
    ("ptfe_anderson1963_s1.csv", "PTFE sample 1 (Anderson, Reese, Wheatley 1963)"),
    ("ptfe_reese1965_s1.csv", "PTFE sample 1 (Reese & Tucker 1965)"),
]


def fmt(v, e=None):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if e is None or not math.isfinite(e):
        return f"{v:.3g}"
    return f"{v:.3g} ± {e:.2g}"


def tu_text(d):
    if "T_U_K" not in d:
        return "-"
    lo, hi = d.get("T_U_K_lower"), d.get("T_U_K_upper")
    if lo is not None and hi is not None:
        return f"{d['T_U_K']:.3g} ({lo:.3g}-{hi:.3g})"
    if lo is not None:
        return f"> {lo:.3g}"
    if hi is not None:
        return f"< {hi:.3g}"
    return f"{d['T_U_K']:.3g} (unbounded)"


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "experiments" / "out" / "fit_measured_kappa"))
    ap.add_argument("--figures", default=None,
                    help="also copy the figures here (e.g. experiments/figures)")
    ap.add_argument("--overwrite", action="store_true")
    return finish_parser(ap)


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    stems = [name.removesuffix(".csv") for name, _ in CURVES]
    files = [f"{s}_fit.{ext}" for s in stems for ext in ("json", "png")]
    out = ap.output_dir(args.out, args.overwrite,
                        expect=[*files, "fits.csv", "fits.md", "candidates.md"])
    figures = [ap.check_output(Path(args.figures) / f"{s}_fit.png", args.overwrite,
                               what="--figures", suffixes=FIGURE_SUFFIXES)
               for s in stems] if args.figures else []
    if not SHARED.is_dir():
        ap.error(f"the measured curves ({SHARED}) are not in this clone: nothing to fit")
    header = ["material", "points", "T range (K)", "chosen model (AICc)", "Delta AICc to next",
              "C_o v_eff (m/s)", "l_b / v_eff^2 (s^2/m)", "A_R v_eff^2 (s^2 m)",
              "T_U (K), 95 % profile", "rms ln residual", "converged", "notes"]
    with out:  # the files move into --out together, at the end
        rows, cand_md = [], []
        for name, label in CURVES:
            curve = load_curve(SHARED / name)
            res = select_kappa_model(curve, progress=False)
            stem = name.removesuffix(".csv")
            res.to_json(out.path(f"{stem}_fit.json"), overwrite=True)
            png = out.path(f"{stem}_fit.png")
            plot_kappa_fit(res, png, title=label)
            for target in figures:
                if target.name == png.name:
                    atomic_write_bytes(target, png.read_bytes())
            d, sel = res.derived, res.derived["model_selection"]
            deltas = sorted(r["delta"] for r in sel["candidates"] if "delta" in r)
            rows.append([label, curve.n, f"{curve.T[0]:.3g}-{curve.T[-1]:.3g}", d["model_label"],
                         f"{deltas[1]:.2f}" if len(deltas) > 1 else "-",
                         fmt(d.get("C_o_v_eff_m_per_s"), d.get("C_o_v_eff_m_per_s_err")),
                         fmt(d.get("l_b_over_v_eff2_s2_per_m"),
                             d.get("l_b_over_v_eff2_s2_per_m_err")),
                         fmt(d.get("A_R_v_eff2_s2_m"), d.get("A_R_v_eff2_s2_m_err")),
                         tu_text(d), f"{d['rms_log_residual']:.3f}", res.converged,
                         "; ".join(res.notes)])
            table = format_selection_table(sel)
            cand_md += [f"### {label}", "", "```", table, "```", ""]
            print(label)
            print(table)
            print(res.summary())
        out.csv("fits.csv", header, rows)
        md = ["| " + " | ".join(header[:-1]) + " |", "|" + "---|" * (len(header) - 1)]
        md += ["| " + " | ".join(str(c) for c in r[:-1]) + " |" for r in rows]
        out.path("fits.md").write_text("\n".join(md) + "\n")
        out.path("candidates.md").write_text("\n".join(cand_md))
    print(f"wrote {len(out.written)} files to {out.root}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
