"""`tlsjax fit targets` and `tlsjax fit kappa` (thin layer over `fit_targets`, `fit_kappa`)."""

from __future__ import annotations

import jax

from .._io import check_writable
from ..fit._fit import PARAMETERS
from ..fit._fit_stau import DEFAULT_TARGET_SIGMA, fit_kappa, fit_targets
from ..model._lattice import Sample
from ..model._params import DEFAULT_ATILDE, DEFAULT_G, DEFAULT_J0_K, DEFAULT_KAPPA_LOG, ModelParams
from ..observables._dos import DEFAULT_DOS_CELLS, DEFAULT_DOS_REALIZATIONS, DEFAULT_DOS_X
from ..observables._material import Material


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in PARAMETERS]
    if bad or not names:
        raise ValueError(f"`fit(free=...)`: unknown parameter(s) {bad or text!r}; allowed: "
                         f"{', '.join(PARAMETERS)}")
    return names


def _common(p) -> None:
    p.add_argument("--free", default=None, help="comma-separated free parameters, e.g. "
                   f"g,J0,atilde (allowed: {', '.join(PARAMETERS)})")
    m = p.add_argument_group("starting / fixed model parameters")
    m.add_argument("--g", type=float, default=DEFAULT_G)
    m.add_argument("--J0", type=float, default=DEFAULT_J0_K, help="K")
    m.add_argument("--atilde", type=float, default=DEFAULT_ATILDE, help="units of a_o")
    m.add_argument("--h-rel", type=float, default=0.0, dest="h_rel")
    m.add_argument("--kappa-log", type=float, default=DEFAULT_KAPPA_LOG, dest="kappa_log")
    s = p.add_argument_group("ES sample of the DOS")
    s.add_argument("--x", type=float, default=DEFAULT_DOS_X)
    s.add_argument("--cells", type=int, default=DEFAULT_DOS_CELLS)
    s.add_argument("--realizations", type=int, default=DEFAULT_DOS_REALIZATIONS)
    s.add_argument("--seed", type=int, default=0)
    o = p.add_argument_group("optimizer and output")
    o.add_argument("--starts", type=int, default=1, help="number of starts (1)")
    o.add_argument("--max-steps", type=int, default=200, dest="max_steps")
    o.add_argument("--json", default=None, metavar="OUT.json", help="write the FitResult")
    o.add_argument("--overwrite", action="store_true", help="allow replacing output files")
    o.add_argument("--no-progress", action="store_true", dest="no_progress")


def register(sub) -> None:
    fit = sub.add_parser("fit", help="fit the S-tau model (targets or measured kappa)",
                         description="Fits with optax (L-BFGS), Laplace 1-sigma errors and "
                         "an identifiability report.")
    fsub = fit.add_subparsers(dest="fit_command", required=True)

    t = fsub.add_parser("targets", help="g, J0, a~ from C_o and T_U",
                        description="Fit C_o = kappa_log g and T_U (P_S(T_U) = 5 g) with "
                        "relative uncertainties; reports what the targets do not determine.")
    t.add_argument("--C0", type=float, default=1e-3, help="target C_o (1e-3)")
    t.add_argument("--TU", type=float, default=3.0, help="target T_U in K (3)")
    t.add_argument("--sigma-C0", type=float, default=DEFAULT_TARGET_SIGMA, dest="sigma_C0",
                   help="relative uncertainty of C_o (0.1)")
    t.add_argument("--sigma-TU", type=float, default=DEFAULT_TARGET_SIGMA, dest="sigma_TU",
                   help="relative uncertainty of T_U (0.1)")
    t.add_argument("--criterion", choices=["shortcut", "full"], default="shortcut")
    _common(t)
    t.set_defaults(func=run_targets)

    k = fsub.add_parser("kappa", help="fit a measured kappa(T) CSV",
                        description="Fit kappa(T) in log space. Without --rho/--vl/--vt the "
                        "identifiable combination kv = kappa_log v_eff is fitted "
                        "(3/v_eff = 1/v_l + 2/v_t) and C_o is not reported.")
    k.add_argument("file", help="CSV with T and kappa columns (units in the header)")
    k.add_argument("--rho", type=float, default=None, help="density, kg/m^3")
    k.add_argument("--vl", type=float, default=None, help="longitudinal velocity, m/s")
    k.add_argument("--vt", type=float, default=None, help="transverse velocity, m/s")
    k.add_argument("--sigma-log", type=float, default=None, dest="sigma_log",
                   help="1-sigma of ln kappa per point (default: errors scaled by chi^2)")
    k.add_argument("--qinv", default=None, metavar="FILE", help="Q^-1(T) CSV, fitted jointly")
    k.add_argument("--freq", type=float, default=None, help="Q^-1 frequency in Hz")
    k.add_argument("--plot", default=None, metavar="OUT.png", help="write the figure")
    _common(k)
    k.set_defaults(func=run_kappa)


def _init(args) -> ModelParams:
    return ModelParams(g=args.g, J0=args.J0, atilde=args.atilde, h_rel=args.h_rel,
                       kappa_log=args.kappa_log)


def _dos(args) -> dict:
    return dict(sample=Sample(args.x, args.cells), realizations=args.realizations,
                key=jax.random.PRNGKey(args.seed))


def _opt(args) -> dict:
    return dict(starts=args.starts, max_steps=args.max_steps, progress=not args.no_progress)


def _finish(args, res) -> int:
    print(res.summary())
    d = res.derived
    if d.get("C_o") is not None:
        print(f"  C_o = {d['C_o']:.4g} +- {d.get('C_o_err', float('nan')):.2g}")
    if "C_o_v_eff_m_per_s" in d:
        print(f"  C_o v_eff = {d['C_o_v_eff_m_per_s']:.4g} +- "
              f"{d['C_o_v_eff_m_per_s_err']:.2g} m/s")
    print(f"  T_U = {d['T_U_K']:.4g} +- {d['T_U_K_err']:.2g} K; rms ln residual = "
          f"{d['rms_log_residual']:.4g}")
    if args.json:
        res.to_json(args.json, overwrite=args.overwrite)
        print(f"wrote {args.json}")
    return 0


def run_targets(args) -> int:
    if args.json:
        check_writable(args.json, args.overwrite)
    free = _names(args.free) if args.free else ["g", "J0", "atilde"]
    res = fit_targets(args.C0, args.TU, sigma_C0=args.sigma_C0, sigma_T_U=args.sigma_TU,
                      free=free, init=_init(args), criterion=args.criterion, **_dos(args),
                      **_opt(args))
    return _finish(args, res)


def run_kappa(args) -> int:
    given = [v is not None for v in (args.rho, args.vl, args.vt)]
    if any(given) and not all(given):
        raise ValueError("`fit kappa`: give all of --rho, --vl, --vt, or none (then the "
                         "velocity-free combination kv = kappa_log v_eff is fitted)")
    material = Material(args.rho, args.vl, args.vt) if all(given) else None
    for path in (args.json, args.plot):
        if path:
            check_writable(path, args.overwrite)
    free = _names(args.free) if args.free else None
    res = fit_kappa(args.file, material, free=free, init=_init(args), sigma_log=args.sigma_log,
                    qinv_data=args.qinv, freq=args.freq, **_dos(args), **_opt(args))
    if args.plot:
        from ..plot._plot_fit import plot_kappa_fit

        plot_kappa_fit(res, args.plot)
        print(f"wrote {args.plot}")
    return _finish(args, res)
