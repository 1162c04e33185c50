"""Monte Carlo check of the dipole regime's tau DOS (Sec. III B, App. B 1, Eqs. B5-B6).

Runs `tlsjax.studies._dipole_mc.tau_dos_mc`: for each J_ee / (g J_o) the full Hamiltonian
with electric dipoles (Eq. 1 plus J_ee on S-S, S-tau and tau-tau) is annealed, tempered
and descended to pair-stable states, and n_tau(E) / n_tau^o(E) of the best state of
each realization is compared with the ES estimate of `tlsjax regimes` (tau_pair_bound,
same keys) and with Eqs. B6 and B5. Writes into --out (atomically, through `OutputDir`):

- `dipole_mc.json`: every number (`TauDOSCheck.to_json`), the command and the seconds;
- `dipole_mc.csv`: one row per J_ee and energy window (binned and cumulative);
- `dipole_mc.png`: the figure (`plot_tau_dos_mc`);
- `dipole_mc.txt`: the plain-text summary.

Finished J_ee values are kept in `<out>/dipole_mc_checkpoint.json`: after Ctrl-C the same
command resumes. Defaults (x = 0.2, L = 8, ~410 impurities, 16 realizations, J_ee / g J_o =
0, 0.1, 1, 3, the default `MCConfig`: 2000 annealing + 500 tempering sweeps, 16 rungs) take
about 10 min on 2 CPU cores.

    python experiments/dipole_mc.py [--out DIR] [--cells L] [--realizations N]
        [--j-ee 0,0.1,1,3] [--anneal-sweeps N] [--sweeps N] [--seed S] [--overwrite]
"""

from __future__ import annotations

import argparse
import sys
import time

import tlsjax as tj
from tlsjax.cli._args import (
    ATILDE,
    CELLS,
    G_CROSSOVER,
    KELVIN_MAX,
    OCCUPATION,
    RATIO_MAX,
    SEED,
    finish_parser,
    integer,
    positive,
    reals,
)
from tlsjax.cli._main import ListAction, Parser
from tlsjax.plot._plot_dipole_mc import plot_tau_dos_mc
from tlsjax.studies._dipole_mc import DEFAULT_MC_J_EE, DEFAULT_MC_SAMPLE, tau_dos_mc

FILES = ("dipole_mc.json", "dipole_mc.csv", "dipole_mc.png", "dipole_mc.txt")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="tlsjax-dipole-mc")
    p.add_argument("--j-ee", type=reals(0.0, RATIO_MAX), nargs="+", action=ListAction,
                   default=list(DEFAULT_MC_J_EE), dest="j_ee",
                   help="increasing J_ee / (g J_o) (" + ",".join(f"{v:g}" for v in DEFAULT_MC_J_EE)
                   + ")")
    p.add_argument("--x", type=OCCUPATION, default=DEFAULT_MC_SAMPLE[0])
    p.add_argument("--cells", type=CELLS, default=DEFAULT_MC_SAMPLE[1])
    p.add_argument("--realizations", type=integer(1), default=16)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--g", type=G_CROSSOVER, default=0.02)
    p.add_argument("--J0", type=positive(KELVIN_MAX), default=500.0, help="J_o in K (500)")
    p.add_argument("--atilde", type=ATILDE, default=3.0)
    p.add_argument("--dipole-atilde", type=ATILDE, default=None,
                   help="a~ of the dipole couplings (default: --atilde)")
    p.add_argument("--anneal-sweeps", type=integer(0), default=tj.MCConfig().anneal_sweeps)
    p.add_argument("--sweeps", type=integer(0), default=tj.MCConfig().sweeps)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    return finish_parser(p)


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if any(b <= a for a, b in zip(args.j_ee, args.j_ee[1:])):
        p.error(f"argument --j-ee: must be strictly increasing; got {args.j_ee}")
    out = p.output_dir(args.out, args.overwrite, expect=FILES, group="dipole_mc")
    config = tj.MCConfig(anneal_sweeps=args.anneal_sweeps, sweeps=args.sweeps)
    start = time.perf_counter()
    try:  # tau_dos_mc checks its values (e.g. increasing --j-ee) and the checkpoint first
        check = tau_dos_mc(args.j_ee, x=args.x, cells=args.cells, realizations=args.realizations,
                           seed=args.seed, g=args.g, J0=args.J0, atilde=args.atilde,
                           dipole_atilde=args.dipole_atilde, config=config,
                           checkpoint=out.root / "dipole_mc_checkpoint.json",
                           progress=not args.no_progress)
    except (ValueError, FileExistsError, PermissionError) as err:
        p.error(str(err))
    data = dict(command="python experiments/dipole_mc.py " + " ".join(argv or sys.argv[1:]),
                wall_seconds=time.perf_counter() - start, **check.to_json())
    text = check.summary()
    with out:
        out.json("dipole_mc.json", data)
        out.csv("dipole_mc.csv", *check.table())
        plot_tau_dos_mc(check, out.path("dipole_mc.png"))
        out.text("dipole_mc.txt", text)
    print(text)
    print(f"wrote {len(out.written)} files to {out.root}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
