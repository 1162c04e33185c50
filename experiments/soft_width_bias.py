"""How far the soft Theta moves T_U from the hard one (the paper's algorithm), per width w.

The soft Theta (sigmoid of width w, in units of <E_tau>) is a regularization, not the
paper's physics: at finite w, P_S and T_U differ from the hard-Theta values. This script
measures T_U(soft, w) / T_U(hard) on the same realizations (common random numbers) for
the samples the package uses by default:

- `sensitivity`: fcc x = 0.2, L = 8, h_rel = 0.3, a~ = 3, realizations from
  `jax.random.key(0)` (the defaults of `tlsjax sensitivity`, more realizations);
- `dos`: fcc x = 0.2, L = 10, h_rel = 0, a~ = 3, realizations from
  `jax.random.PRNGKey(0)` (the `StauDOS` of the observables and the fits);
- `paper`: fcc x = 0.2, L = 18 (the paper's sample), h_rel = 0, a~ = 3.

For each width: the mean over realizations of T_U/<E_tau> from P_S(T_U) = 5 g, soft and
hard (the hard value is the ceil(5 g N)-th smallest E_min of the same realization), and
their ratio; for `dos` also the crossover in kelvin of the disorder-averaged `StauDOS`
(both criteria of `tlsjax.crossover`), soft against the hard-Theta DOS (`width=0`).
The default widths of the package (`DEFAULT_SENS_WIDTH`, `DEFAULT_DOS_WIDTH`) were
chosen from this table: the largest width tried whose T_U lies within 3% of the hard
value in every row (both crossover criteria: the sensitivity study reports kappa(T),
whose C(E) carries the full criterion, too). Writes experiments/figures/soft_width_bias.*
when asked (`--json`, `--png`); `--replot JSON` redraws the figure from a saved run.
Runs in JAX's default float32 (what the command line uses).

    python experiments/soft_width_bias.py [--json PATH] [--png PATH] [--realizations R]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import tlsjax as tj
from tlsjax._io import FIGURE_SUFFIXES, atomic_path, write_json
from tlsjax.cli._args import finish_parser, integer
from tlsjax.cli._main import ListAction, Parser, name_list
from tlsjax.fit._sensitivity import DEFAULT_SENS_WIDTH
from tlsjax.observables._dos import DEFAULT_DOS_WIDTH

G = 0.02
WIDTHS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
CASES = {
    "sensitivity": dict(x=0.2, cells=8, h_rel=0.3, key=lambda: jax.random.key(0)),
    "dos": dict(x=0.2, cells=10, h_rel=0.0, key=lambda: jax.random.PRNGKey(0)),
    "paper": dict(x=0.2, cells=18, h_rel=0.0, key=lambda: jax.random.key(0)),
}


@jax.jit(static_argnames=("sample",))
def _tu_pair(sample, params, key, width):
    es = tj.simulate(sample, params, key, top_k=tj.DEFAULT_TOP_K, soft_width=width)
    soft = tj.SoftTheta(width).crossover(es, G)
    hard = tj.HardTheta().crossover(es, G)
    return soft, hard


def per_realization(case: dict, realizations: int) -> list[dict]:
    sample = tj.Sample(case["x"], case["cells"])
    params = tj.ModelParams(g=G, atilde=3.0, h_rel=case["h_rel"])
    keys = jax.random.split(case["key"](), realizations)
    rows = []
    for w in WIDTHS:
        pairs = [_tu_pair(sample, params, k, jnp.asarray(w)) for k in keys]
        soft = np.array([float(s) for s, _ in pairs])
        hard = np.array([float(h) for _, h in pairs])
        rows.append(dict(width=w, T_U_soft=float(soft.mean()), T_U_hard=float(hard.mean()),
                         ratio=float(soft.mean() / hard.mean()),
                         ratio_stderr=float(np.std(soft / hard, ddof=1) / np.sqrt(len(keys)))
                         if len(keys) > 1 else float("nan")))
    return rows


def dos_crossovers(realizations: int) -> list[dict]:
    case = CASES["dos"]
    sample = tj.Sample(case["x"], case["cells"])
    params = tj.ModelParams(g=G, atilde=3.0, h_rel=case["h_rel"])
    key = case["key"]()
    rows = []
    for w in WIDTHS:
        dos = tj.stau_dos(params, sample, key, realizations=realizations, width=w)
        soft = tj.crossover(tj.StauTLS(dos, params))
        hard = tj.crossover(tj.StauTLS(dos.hard(), params))
        rows.append(dict(width=w, full_soft_K=float(soft.full), full_hard_K=float(hard.full),
                         shortcut_soft_K=float(soft.shortcut),
                         shortcut_hard_K=float(hard.shortcut),
                         full_ratio=float(soft.full / hard.full),
                         shortcut_ratio=float(soft.shortcut / hard.shortcut)))
    return rows


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rows in result["per_realization"].items():
        w = [r["width"] for r in rows]
        ax.plot(w, [r["ratio"] for r in rows], "o-", label=f"{name}: T_U/<E_tau> per realization")
    rows = result["dos_crossover"]
    w = [r["width"] for r in rows]
    ax.plot(w, [r["shortcut_ratio"] for r in rows], "s--", label="dos: StauDOS shortcut (K)")
    ax.plot(w, [r["full_ratio"] for r in rows], "^--", label="dos: StauDOS full criterion (K)")
    ax.axhspan(0.97, 1.03, color="0.85", label="within 3% of hard")
    defaults: dict[float, list[str]] = {}
    for name, w0 in (("sensitivity", result["default_sensitivity_width"]),
                     ("StauDOS", result["default_dos_width"])):
        defaults.setdefault(w0, []).append(name)
    for w0, names in defaults.items():
        ax.axvline(w0, color="0.4", lw=0.8, ls=":")
        ax.text(w0, 1.06, f" default w ({', '.join(names)})", rotation=90, va="bottom",
                ha="right", fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("soft-Theta width w (units of <E_tau>)")
    ax.set_ylabel("T_U(soft, w) / T_U(hard)")
    ax.set_title(f"Soft-Theta bias of T_U (g = {G}, a~ = 3, fcc x = 0.2)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--png", default=None)
    ap.add_argument("--overwrite", action="store_true", help="allow replacing --json and --png")
    ap.add_argument("--realizations", type=integer(2), default=8,
                    help="realizations per case (8; the paper case runs at most 2)")
    ap.add_argument("--cases", type=name_list, nargs="+", action=ListAction,
                    default=list(CASES), help=f"cases among {', '.join(CASES)} (all)")
    ap.add_argument("--replot", default=None, metavar="JSON",
                    help="redraw --png (default soft_width_bias.png) from a saved --json")
    return finish_parser(ap)


def _checked_args(argv):
    """Parsed arguments, every value and output path checked before any computing."""
    ap = build_parser()
    args = ap.parse_args(argv)
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        ap.error(f"argument --cases: must be among {', '.join(CASES)}; got {', '.join(unknown)}")
    if args.replot:
        if args.json:
            ap.error("argument --json: --replot writes only the figure (--png); drop --json")
        try:
            args.replot_data = json.loads(Path(args.replot).read_text())
            if not isinstance(args.replot_data, dict) or "per_realization" not in args.replot_data:
                raise ValueError("not a --json of this script")
        except (OSError, ValueError) as err:
            ap.error(f"argument --replot: cannot read {args.replot!r}: {err}")
        args.png = args.png or "soft_width_bias.png"
    if args.json:
        args.run = ap.run_id(args)
        args.json = ap.check_output(args.json, args.overwrite, what="--json", run=args.run)
    if args.png:
        args.png = ap.check_output(args.png, args.overwrite, what="--png",
                                   suffixes=FIGURE_SUFFIXES)
    return args


def main(argv=None) -> int:
    args = _checked_args(argv)
    if args.replot:
        plot(args.replot_data, args.png)
        return 0
    result = dict(g=G, atilde=3.0, widths=list(WIDTHS), realizations=args.realizations,
                  default_sensitivity_width=DEFAULT_SENS_WIDTH,
                  default_dos_width=DEFAULT_DOS_WIDTH, per_realization={})
    for name in args.cases:
        case = CASES[name]
        r = args.realizations if name != "paper" else min(args.realizations, 2)
        rows = per_realization(case, r)
        result["per_realization"][name] = rows
        print(f"{name}: fcc x = {case['x']}, L = {case['cells']}, h_rel = {case['h_rel']}, "
              f"{r} realizations; T_U/<E_tau> hard = {rows[0]['T_U_hard']:.4f}")
        for row in rows:
            print(f"  w = {row['width']:<6g} soft {row['T_U_soft']:.4f}  ratio to hard "
                  f"{row['ratio']:.4f} ± {row['ratio_stderr']:.4f}")
    rows = dos_crossovers(4)
    result["dos_crossover"] = rows
    print("dos: StauDOS crossover in K (4 realizations, the default), soft / hard:")
    for row in rows:
        print(f"  w = {row['width']:<6g} full {row['full_soft_K']:.4g} / {row['full_hard_K']:.4g}"
              f" = {row['full_ratio']:.4f};  shortcut {row['shortcut_soft_K']:.4g} / "
              f"{row['shortcut_hard_K']:.4g} = {row['shortcut_ratio']:.4f}")
    if args.json:
        write_json(args.json, result, overwrite=args.overwrite, run=args.run)
    if args.png:
        plot(result, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
