"""`tlsjax regimes`: the paper's Sec. III B predictions (dilute KBr:CN, mixed crystals,
electric dipoles), computed from samples, with figures, tables and JSON."""

from __future__ import annotations

import sys

from .._convention import energy_convention
from .._io import OutputDir, check_output_path, write_json
from ..model._params import DEFAULT_ATILDE, DEFAULT_G, DEFAULT_J0_K, DEFAULT_KAPPA_LOG
from ..model._regime_params import CUTOFFS, DEFAULT_X_C
from ..studies._regimes import (
    DEFAULT_DIPOLE_SAMPLE,
    DEFAULT_J_EE,
    DEFAULT_N_TARGET,
    DEFAULT_X_DILUTE,
    DEFAULT_X_MIXED,
    MC_N_S_DEPLETION,
    REGIMES,
    run_regimes,
    scan_table,
    summary_text,
)
from ._args import (
    ATILDE,
    CELLS,
    DEVICES,
    G_CROSSOVER,
    KAPPA_LOG,
    KELVIN_MAX,
    OCCUPATION,
    RATIO_MAX,
    SEED,
    command_run_id,
    integer,
    positive,
    real,
    reals,
)
from ._main import ListAction, name_list

#: --quick: a smoke run (small samples, few points, 4 realizations).
QUICK = dict(x_dilute=[0.05, 0.1, 0.2, 0.5], x_mixed=[0.01, 0.05, 0.2], J_ee_over_gJ0=[0.3, 3, 30],
             n_target=800, realizations=4, dipole_cells=10)
#: The defaults of the options --quick replaces.
DEFAULTS = dict(x_dilute=list(DEFAULT_X_DILUTE), x_mixed=list(DEFAULT_X_MIXED),
                J_ee_over_gJ0=list(DEFAULT_J_EE), n_target=DEFAULT_N_TARGET, realizations=16,
                dipole_cells=DEFAULT_DIPOLE_SAMPLE[1])
FILES = ("regimes.json", "regimes_summary.txt", "regimes_concentration.png", "regimes_dipole.png",
         "regimes_exponents.png", "dilution.csv", "mixed.csv", "dipole.csv")


def register(sub) -> None:
    p = sub.add_parser(
        "regimes", help="Sec. III B: dilute KBr:CN, mixed crystals, electric dipoles",
        description="T_U and C_o of the dilute pure crystal (T_U(x), paper: x^(7/3)), of CN in a "
        "mixed host (C_o(x), paper: 0.1 g x/x_c, T_U independent of x) and versus electric dipole "
        "couplings J_ee/(g J_o) (paper: T_U ~ J_ee, C_o ~ g^2 J_o/J_ee above g J_o), each a "
        "disorder average with its standard error; figures, CSV and JSON in --out.")
    p.add_argument("--out", default="tlsjax-regimes", help="output folder (./tlsjax-regimes)")
    p.add_argument("--json", default=None, metavar="PATH",
                   help="also write the JSON result to PATH")
    p.add_argument("--regimes", type=name_list, nargs="+", action=ListAction, default=list(REGIMES),
                   help="which of dilution,mixed,dipole to run (default all)")
    p.add_argument("--x-dilute", type=reals(0.0, 1.0, lo_open=True), nargs="+", action=ListAction,
                   default=None, dest="x_dilute",
                   help="increasing concentrations in (0, 1] for the pure crystal")
    p.add_argument("--x-mixed", type=reals(0.0, 1.0, lo_open=True), nargs="+", action=ListAction,
                   default=None, dest="x_mixed",
                   help="increasing CN concentrations in (0, 1] for the mixed crystal")
    p.add_argument("--j-ee", type=reals(0.0, RATIO_MAX), nargs="+", action=ListAction,
                   default=None, dest="J_ee_over_gJ0",
                   help="increasing values of J_ee/(g J_o) >= 0 (J_ee = 0 is always added)")
    p.add_argument("--n-target", type=integer(20), default=None, dest="n_target",
                   help=f"mean impurities per sample along x (default {DEFAULT_N_TARGET})")
    p.add_argument("--realizations", type=integer(1), default=None, help="per regime (default 16)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--g", type=G_CROSSOVER, default=DEFAULT_G,
                   help="g of the concentrated crystal (at x_c; dilute: g_c)")
    p.add_argument("--J0", type=positive(KELVIN_MAX), default=DEFAULT_J0_K, help="J_o in K at x_c (500)")
    p.add_argument("--atilde", type=ATILDE, default=DEFAULT_ATILDE,
                   help="cutoff a~ in units of a_o (3; with --cutoff scaled, its value at x_c)")
    p.add_argument("--cutoff", choices=CUTOFFS, default="fixed",
                   help="dilute crystal: a~ fixed in units of a_o (fixed, default) or a~/R_o "
                   "fixed at its value at x_c (scaled)")
    p.add_argument("--n-s-depletion", type=real(0.0, 1.0, lo_open=True), default=MC_N_S_DEPLETION,
                   dest="n_s_depletion",
                   help="dilute crystal: n_S/n_S^o at E-bar from the Monte Carlo, for the "
                   f"correlated full criterion, in (0, 1] ({MC_N_S_DEPLETION}: tlsjax mc at "
                   "x = 0.2, L = 18, a~ = 3)")
    p.add_argument("--x-c", type=OCCUPATION, default=DEFAULT_X_C, dest="x_c",
                   help="reference concentration x_c (0.2)")
    p.add_argument("--J-nn", type=positive(KELVIN_MAX), default=None, dest="J_nn",
                   help="dilute crystal: S-S coupling at the nearest-neighbour distance, K "
                   "(default J0/x_c)")
    p.add_argument("--h-S", type=real(0.0, RATIO_MAX), default=1.0, dest="h_S",
                   help="mixed crystal: S-field width in units of J_o (1)")
    p.add_argument("--h-tau", type=positive(RATIO_MAX), default=1.0, dest="h_tau",
                   help="mixed crystal: tau-field width in units of g J_o (1)")
    p.add_argument("--kappa-log", type=KAPPA_LOG, default=DEFAULT_KAPPA_LOG, dest="kappa_log")
    p.add_argument("--dipole-x", type=OCCUPATION, default=DEFAULT_DIPOLE_SAMPLE[0], dest="dipole_x")
    p.add_argument("--dipole-cells", type=CELLS, default=None,
                   dest="dipole_cells", help="fcc cells per edge of the dipole sample (18)")
    p.add_argument("--dipole-atilde", type=ATILDE, default=None, dest="dipole_atilde",
                   help="cutoff of the dipolar radial factor (default: --atilde)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 4 realizations, ~800 impurities, 3-4 points per regime "
                   "(options given explicitly win over it)")
    p.add_argument("--devices", type=DEVICES, default=None)
    p.add_argument("--checkpoint", default=None, metavar="DIR",
                   help="save partial ensembles in DIR after each batch; resume from them")
    p.add_argument("--overwrite", action="store_true",
                   help="allow replacing files tlsjax did not write")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_regimes_cli)


def run_regimes_cli(args) -> int:
    from ..plot._plot_regimes import plot_concentration, plot_dipole, plot_local_exponents

    kwargs = {k: getattr(args, k) for k in (
        "x_dilute", "x_mixed", "J_ee_over_gJ0", "n_target", "realizations", "seed", "g", "J0",
        "atilde", "cutoff", "x_c", "J_nn", "n_s_depletion", "h_S", "h_tau", "kappa_log",
        "dipole_x", "dipole_cells", "dipole_atilde")}
    for k, v in (QUICK if args.quick else DEFAULTS).items():  # explicit options win
        if kwargs[k] is None:
            kwargs[k] = v
    # every output location is checked before any work
    out = OutputDir(args.out, overwrite=args.overwrite, expect=FILES, group="regimes")
    if args.json:
        check_output_path(args.json, args.overwrite, run=command_run_id(args), what="--json")
    scans = run_regimes(args.regimes, progress=not args.no_progress, devices=args.devices,
                        checkpoint_dir=args.checkpoint, **kwargs)
    wanted = kwargs["realizations"]
    if any(n not in scans or scans[n].realizations < wanted for n in args.regimes):
        done = {n: s.realizations for n, s in scans.items()}
        resume = ("the checkpoints keep them: run the same command again to resume; "
                  if args.checkpoint else "")
        print(f"tlsjax regimes: INTERRUPTED (realizations done per regime: {done}; {resume}"
              f"nothing written, {out.root} is as it was)", file=sys.stderr)
        raise KeyboardInterrupt
    command = "tlsjax regimes" + (" --quick" if args.quick else "")
    data = dict(command=command, seed=args.seed, cutoff=args.cutoff,
                energy_convention=energy_convention("local_field", flip_energy_K="flip_energy"),
                **{name: scan.to_json() for name, scan in scans.items()})
    with out:
        out.json("regimes.json", data)
        for name, scan in scans.items():
            out.csv(f"{name}.csv", *scan_table(scan))
        if "dilution" in scans or "mixed" in scans:
            plot_concentration(scans.get("dilution"), scans.get("mixed"),
                               out.path("regimes_concentration.png"))
        if "dilution" in scans and len(scans["dilution"].values) >= 2:
            plot_local_exponents(scans["dilution"], out.path("regimes_exponents.png"))
        if "dipole" in scans:
            plot_dipole(scans["dipole"], out.path("regimes_dipole.png"))
        text = summary_text(scans)
        out.text("regimes_summary.txt", text)
    if args.json:
        write_json(args.json, data, overwrite=args.overwrite, run=command_run_id(args))
    print(text)
    print(f"wrote {len(out.written)} files to {out.root}/" +
          (f" and {args.json}" if args.json else ""))
    return 0
