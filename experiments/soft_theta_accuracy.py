"""How well the soft-Theta P_S is computed, and how far the soft Theta moves T_U.

On one paper-size realization (fcc, x = 0.2, L = 18, a~ = 3, h_rel = 0, float64) the
soft P_S(E) is computed three ways for each width w: over every partner (the full
product, the definition), over the top k partners plus the first-order tail term
(`soft_width=w`, what tlsjax does; k = `--top-k`, default `DEFAULT_TOP_K`), and over the
top k only. Printed: the largest
error of the last two on 61 energies from 0.01 to 10 <E_tau>, the rigorous bound of the
tail version, and T_U/<E_tau> from P_S = 5 g for each, next to the hard Theta.

    python experiments/soft_theta_accuracy.py [--json PATH]
"""

import argparse
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

import tlsjax as tj  # noqa: E402
from tlsjax._io import write_json  # noqa: E402
from tlsjax.cli._args import WIDTH, NumberList, finish_parser, integer  # noqa: E402
from tlsjax.cli._main import ListAction, Parser  # noqa: E402
from tlsjax.model._couplings import Couplings, GaussianAmplitudes  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import draw_realization  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--overwrite", action="store_true", help="allow replacing --json")
    ap.add_argument("--widths", type=NumberList(WIDTH), nargs="+", action=ListAction,
                    default=[0.005, 0.02, 0.05], help="soft-Theta widths in units of <E_tau> "
                    "(0.005,0.02,0.05)")
    ap.add_argument("--top-k", type=integer(1), default=tj.DEFAULT_TOP_K,
                    help="partners kept exactly (default: tlsjax's DEFAULT_TOP_K)")
    return finish_parser(ap)


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.json:
        run = ap.run_id(args)
        json_path = ap.check_output(args.json, args.overwrite, what="--json", run=run)
    n = tj.Sample(0.2, cells=18).capacity  # that of the realization drawn below
    if args.top_k >= n:
        ap.error(f"argument --top-k: must be below the realization's capacity {n} (--top-k {n} "
                 f"or more keeps every partner: the full product itself); got {args.top_k}")
    real, seed, h = draw_realization(18)
    grid = jnp.logspace(-2, 1, 61)
    cp = Couplings(real, GaussianAmplitudes(seed), jnp.asarray(3.0))
    full = tj.es_reduction(cp, h, 0.0, top_k=n, block_size=64)
    hard = float(tj.crossover_temperature(full, 0.02))
    print(f"fcc x = 0.2, L = 18, N = {int(real.n_sites)}, a~ = 3; hard Theta: "
          f"T_U/<E_tau> = {hard:.4f}")
    k = args.top_k
    rows = []
    for w in args.widths:
        theta = tj.SoftTheta(w)
        # the full product, two energies at a time (an (E, N, N) array is large)
        ref = jnp.concatenate([theta.p_s(full, grid[i:i + 2]) for i in range(0, 61, 2)])
        es = tj.es_reduction(cp, h, 0.0, top_k=k, soft_width=w)
        p = theta.p_s(es, grid)
        bound = theta.truncation_bound(es, grid)
        es0 = tj.es_reduction(cp, h, 0.0, top_k=k)
        trunc = tj.SoftTheta(w, allow_truncation=True)
        p0 = trunc.p_s(es0, grid)
        row = dict(width=w, top_k=k, err_tail=float(jnp.max(jnp.abs(p - ref))),
                   bound_tail=float(jnp.max(bound)),
                   err_top_k_only=float(jnp.max(jnp.abs(p0 - ref))),
                   T_U_full=float(theta.crossover(full, 0.02)),
                   T_U_tail=float(theta.crossover(es, 0.02)),
                   T_U_top_k_only=float(trunc.crossover(es0, 0.02)), T_U_hard=hard)
        rows.append(row)
        print(f"w = {w:g}: max |P_S error| top {k} + tail {row['err_tail']:.2e} (bound "
              f"{row['bound_tail']:.2e}), top {k} only {row['err_top_k_only']:.3g}; "
              f"T_U/<E_tau> full {row['T_U_full']:.4f}, top {k} + tail {row['T_U_tail']:.4f}, "
              f"top {k} only {row['T_U_top_k_only']:.4f}")
    if args.json:
        write_json(json_path, dict(rows=rows), overwrite=args.overwrite, run=run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
