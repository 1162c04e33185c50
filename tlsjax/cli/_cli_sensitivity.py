"""`tlsjax sensitivity`: Jacobian and elasticities of T_U, C_o, P_S(E) w.r.t. the parameters."""

from __future__ import annotations

import numpy as np

from .._convention import energy_convention
from .._io import OutputDir
from .._validate import check_seed, enable_x64
from ..fit._sensitivity import (
    DEFAULT_SENS_H_REL,
    DEFAULT_SENS_WIDTH,
    SensitivityResult,
    elasticity_table,
    sensitivity,
)
from ..model._params import DEFAULT_ATILDE, DEFAULT_G, DEFAULT_J0_K, DEFAULT_KAPPA_LOG
from ..plot._save import save_figure
from ._args import (
    ATILDE,
    CELLS,
    DENSITY,
    G_CROSSOVER,
    KAPPA_LOG,
    KELVIN_MAX,
    OCCUPATION,
    RATIO_MAX,
    SEED,
    T_MAX_K,
    T_MIN_K,
    VELOCITY,
    WIDTH,
    integer,
    positive,
    real,
    reals,
)
from ._main import ListAction

_FILES = ("sensitivity.json", "elasticities.csv", "jacobian.csv", "elasticities.png")


def register(sub) -> None:
    p = sub.add_parser(
        "sensitivity", help="Jacobian / elasticities of T_U, C_o, P_S(E) w.r.t. the parameters",
        description="d ln y / d ln p for y = T_U (soft Theta, P_S(T_U) = 5 g), C_o = kappa_log g, "
        "P_S(E) on a grid (E in units of <E_tau>) and, with --temperatures and a material, "
        "kappa(T), p = (g, J_o, a~, h_rel, w), by forward "
        "or reverse mode (whichever is cheaper for the shape), averaged over a few "
        "realizations with fixed keys; a sample of entries is checked against central "
        "finite differences. Writes sensitivity.json, elasticities.csv, jacobian.csv and "
        "elasticities.png to --out. Computes in float64 (locally: the process's JAX "
        "configuration is not changed).")
    p.add_argument("--g", type=G_CROSSOVER, default=DEFAULT_G, help=f"g in (0, 0.2) ({DEFAULT_G})")
    p.add_argument("--J0", type=positive(KELVIN_MAX), default=DEFAULT_J0_K, help=f"J_o in K ({DEFAULT_J0_K})")
    p.add_argument("--atilde", type=ATILDE, default=DEFAULT_ATILDE,
                   help=f"cutoff a~ in units of a_o ({DEFAULT_ATILDE})")
    p.add_argument("--h-rel", type=real(0.0, RATIO_MAX), default=DEFAULT_SENS_H_REL, dest="h_rel",
                   help=f"random-field width h_rel ({DEFAULT_SENS_H_REL}; at 0 the elasticity "
                   "w.r.t. h_rel is undefined and d ln y / d h_rel is reported)")
    p.add_argument("--width", type=WIDTH, default=DEFAULT_SENS_WIDTH,
                   help=f"soft-Theta width w in units of <E_tau>, in (0, 1] "
                   f"({DEFAULT_SENS_WIDTH}: T_U within 3%% of the hard Theta's; the table "
                   "shows the hard-Theta value beside every output)")
    p.add_argument("--kappa-log", type=KAPPA_LOG, default=DEFAULT_KAPPA_LOG, dest="kappa_log")
    p.add_argument("--x", type=OCCUPATION, default=0.2, help="occupation (0.2)")
    p.add_argument("--cells", type=CELLS, default=8, help="fcc cells per edge (8, ~410 sites)")
    p.add_argument("--realizations", type=integer(1), default=2)
    p.add_argument("--seed", type=SEED, default=0, help="PRNG seed in [0, 2^64 - 1] (0)")
    p.add_argument("--energies", type=reals(0.0, RATIO_MAX, lo_open=True), nargs="+",
                   action=ListAction, default=None,
                   help="P_S grid in units of <E_tau> (default 6 log-spaced, 0.1-1)")
    p.add_argument("--temperatures", type=reals(T_MIN_K, T_MAX_K), nargs="+", action=ListAction, default=None,
                   help="temperatures in K for kappa(T) (needs --rho, --vl, --vt)")
    p.add_argument("--rho", type=DENSITY, default=None, help="host density, kg/m^3")
    p.add_argument("--vl", "--v-l", type=VELOCITY, default=None, dest="vl",
                   help="longitudinal velocity, m/s")
    p.add_argument("--vt", "--v-t", type=VELOCITY, default=None, dest="vt",
                   help="transverse velocity, m/s")
    p.add_argument("--mode", choices=["auto", "forward", "reverse"], default="auto")
    p.add_argument("--fd-checks", type=integer(0), default=10, dest="fd_checks",
                   help="entries checked by finite differences (10)")
    p.add_argument("--out", default="tlsjax-sensitivity", help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="allow replacing files in --out that tlsjax did not write")
    p.set_defaults(func=run_sensitivity)


def plot_elasticities(res: SensitivityResult, path) -> None:
    """Heatmap of d ln y / d ln p (outputs x parameters), values written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plot._scales import robust_diverging_norm

    e = np.where(np.isfinite(res.elasticity), res.elasticity, 0.0)
    fig, ax = plt.subplots(figsize=(1.3 * len(res.param_names) + 2.5,
                                    0.45 * len(res.output_names) + 1.5))
    norm = robust_diverging_norm(e)
    im = ax.imshow(e, cmap="RdBu_r", norm=norm, aspect="auto")
    ax.set_xticks(range(len(res.param_names)), res.param_names)
    ax.set_yticks(range(len(res.output_names)), res.output_names)
    for i in range(e.shape[0]):
        for j in range(e.shape[1]):
            text = "n/a" if not np.isfinite(res.elasticity[i, j]) else f"{e[i, j]:.2g}"
            dark = abs(float(norm(e[i, j])) - 0.5) > 0.35  # white text on dark cells
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")
    fig.colorbar(im, ax=ax, label=f"d ln y / d ln p (symmetric log scale, linear within "
                 f"+-{norm.linthresh:.2g})")
    point = ", ".join(f"{n}={v:g}" for n, v in zip(res.param_names, res.params))
    ax.set_title(f"Elasticities at {point}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def run_sensitivity(args) -> int:
    check_seed("sensitivity", "seed", args.seed)
    given = [v is not None for v in (args.rho, args.vl, args.vt)]
    if args.temperatures is not None and not all(given):
        raise ValueError("--temperatures needs the host material: --rho, --vl and --vt "
                         "(no presets are shipped)")
    if args.temperatures is None and any(given):
        raise ValueError("--rho, --vl and --vt only enter kappa(T): give --temperatures too, "
                         "or drop them")
    # refuse a user's file in the way before computing, not after
    out = OutputDir(args.out, overwrite=args.overwrite, expect=_FILES, group="sensitivity")
    # The finite-difference checks need float64: on locally (this thread, this call), the
    # process-wide JAX configuration is left as it is.
    with enable_x64(True):
        material = None
        if args.temperatures is not None:
            from ..observables._material import Material

            material = Material(rho=args.rho, v_l=args.vl, v_t=args.vt)
        res = sensitivity([args.g, args.J0, args.atilde, args.h_rel, args.width], x=args.x,
                          cells=args.cells, realizations=args.realizations, seed=args.seed,
                          energies=args.energies, kappa_log=args.kappa_log, mode=args.mode,
                          fd_checks=args.fd_checks, material=material,
                          temperatures=args.temperatures)
    with out:
        out.json("sensitivity.json", dict(res.to_json(),
                                          energy_convention=energy_convention("local_field")))
        out.csv("elasticities.csv", ["output", "value", "value_hard_theta", *res.param_names],
                [[name, float(res.values[i]), float(res.hard_values[i]),
                  *map(float, res.elasticity[i])] for i, name in enumerate(res.output_names)])
        out.csv("jacobian.csv", ["output", "value", *(f"d/d{n}" for n in res.param_names)],
                [[name, float(res.values[i]), *map(float, res.jacobian[i])]
                 for i, name in enumerate(res.output_names)])
        plot_elasticities(res, out.path("elasticities.png"))
    print(f"Elasticities d ln y / d ln p ({res.mode} mode, {res.seconds:.1f} s incl. compile; "
          f"fcc x={args.x:g} L={args.cells}, {args.realizations} realizations)")
    print(elasticity_table(res))
    if res.fd_checks:
        print(f"\nFinite-difference check of {len(res.fd_checks)} entries of d ln y / d p "
              f"(central, relative step {res.config['fd_step']:g}):")
        for c in res.fd_checks:
            print(f"  {c['output']:<16} {c['param']:<7} AD {c['d_log_y_d_p_ad']:+.6e}  "
                  f"FD {c['d_log_y_d_p_fd']:+.6e}  rel. error {c['rel_error']:.1e}")
        print(f"  max rel. error {res.fd_max_rel_error:.1e}")
    print(f"wrote {len(out.written)} files to {out.root}/")
    return 0
