"""`tlsjax fit qinv FILE` and `tlsjax fit dvv FILE` (thin layer over `fit_curves`).

Each fits its curve on its own, or jointly with the others given as options (`--kappa`,
`--qinv`, `--dvv`), with the model choice of `tlsjax fit kappa` (constant C against
S-tau by AICc), Laplace errors, profile bounds of T_U and the DOS-sample part of the
S-tau errors. Outputs are checked before anything is computed; Ctrl-C exits with 130.
"""

from __future__ import annotations

import math

from .._validate import seed_key
from ..fit._dos_sample_error import DEFAULT_DOS_SAMPLES, format_sample_error
from ..fit._fit_curves import fit_curves
from ..fit._profile import DEFAULT_LEVEL
from ..fit._select import CRITERIA, DEFAULT_CRITERION
from ..observables._material import Material
from ._args import DENSITY, FREQUENCY, RATIO_MAX, VELOCITY, integer, positive, real

_QUANTITY = {"qinv": "internal friction Q^-1(T)", "dvv": "sound velocity shift Delta v/v(T)"}


def _channel_options(p, main: str) -> None:
    p.add_argument("file", help=f"CSV with T and {main} columns (units in the header)")
    p.add_argument("--freq", type=FREQUENCY, required=True, metavar="HZ",
                   help="measuring frequency of FILE in Hz (required)")
    p.add_argument("--sigma", type=positive(RATIO_MAX), default=None, metavar="S",
                   help="1-sigma per point of FILE: of ln Q^-1 for qinv, of Delta v/v itself "
                   "for dvv (default: none, errors scaled by chi^2)")
    j = p.add_argument_group("joint fit (optional further curves)")
    j.add_argument("--kappa", default=None, metavar="FILE", help="kappa(T) CSV fitted jointly")
    j.add_argument("--sigma-log-kappa", type=positive(RATIO_MAX), default=None, dest="sigma_log",
                   help="1-sigma of ln kappa (default: none)")
    other = "dvv" if main == "qinv" else "qinv"
    j.add_argument(f"--{other}", default=None, metavar="FILE",
                   help=f"{_QUANTITY[other]} CSV fitted jointly")
    j.add_argument(f"--{other}-freq", type=FREQUENCY, default=None, dest=f"{other}_freq",
                   metavar="HZ", help=f"its frequency in Hz (required with --{other})")
    j.add_argument(f"--{other}-sigma", type=positive(RATIO_MAX), default=None, dest=f"{other}_sigma",
                   metavar="S", help="its 1-sigma per point (default: none)")
    m = p.add_argument_group("model")
    m.add_argument("--model", choices=["auto", "stau", "stm"], default="auto",
                   help="S-tau C(E), constant C (stm), or choose (auto, default)")
    m.add_argument("--ic", choices=CRITERIA, default=DEFAULT_CRITERION,
                   help=f"information criterion of the choice (default {DEFAULT_CRITERION})")
    m.add_argument("--polarization", choices=["t", "l"], default="t",
                   help="sound wave of Q^-1 and Delta v/v (default t)")
    m.add_argument("--rho", type=DENSITY, default=None, help="density, kg/m^3 (default: none)")
    m.add_argument("--vl", type=VELOCITY, default=None, help="longitudinal velocity, m/s")
    m.add_argument("--vt", type=VELOCITY, default=None, help="transverse velocity, m/s")
    m.add_argument("--level", type=real(0.5, 1.0, lo_open=True, hi_open=True), default=DEFAULT_LEVEL,
                   help="confidence of the one-sided profile bounds (default 0.95)")
    m.add_argument("--no-profile", action="store_true", dest="no_profile",
                   help="skip the profile-likelihood bounds")
    add_argument_dos_samples(m)
    p.add_argument("--plot", default=None, metavar="OUT.png",
                   help="write the figure (data with error bars, fit, parameters) and its "
                   "numbers to OUT.csv beside it (default: none)")


def register(fsub) -> None:
    """Add `fit qinv` and `fit dvv` to the subparsers of `tlsjax fit`."""
    from ._cli_fit import _common

    for name in ("qinv", "dvv"):
        p = fsub.add_parser(
            name, help=f"fit a measured {_QUANTITY[name]} CSV (alone or with kappa)",
            description=f"Fit {_QUANTITY[name]} on its own or jointly with the curves of "
            "--kappa/--qinv/--dvv: constant C against S-tau chosen by AICc, Laplace errors, "
            "profile bounds of T_U, and the DOS-sample part of the S-tau errors. Without "
            "--rho/--vl/--vt the combinations the data determine are fitted: C (or "
            "C_o = kappa_log g) and the relaxation prefactor A k_B^3 (A_rel); with kappa "
            "also v_eff = kv / kappa_log.")
        _channel_options(p, name)
        _common(p)
        p.set_defaults(func=run_curves, curve=name)


def _material(args):
    given = [v is not None for v in (args.rho, args.vl, args.vt)]
    if any(given) and not all(given):
        raise ValueError(f"`fit {args.curve}`: give all of --rho, --vl, --vt, or none")
    return Material(args.rho, args.vl, args.vt) if all(given) else None


def run_curves(args) -> int:
    from .._validate import enable_x64
    from ._cli_fit import (
        _check_names,
        _check_outputs,
        _dos,
        _finish,
        _init,
        _interrupted_early,
        _opt,
        _stage_logging,
        user_parameters,
    )

    if not 0.5 < args.level < 1.0:
        raise ValueError(f"--level must be in (0.5, 1); got {args.level:g}")
    check_dos_samples(args)
    table = None
    if args.plot:
        from ..plot._plot_curves import csv_path

        table = str(csv_path(args.plot))
        if table == args.plot:
            raise ValueError(f"--plot {args.plot}: a figure file (.png, .pdf, ...), not a CSV")
    _check_outputs(args, args.plot, table)
    free = _check_names(args.free)
    other = "dvv" if args.curve == "qinv" else "qinv"
    curves = {args.curve: args.file, other: getattr(args, other)}
    freqs = {args.curve: args.freq, other: getattr(args, f"{other}_freq")}
    sig = {args.curve: args.sigma, other: getattr(args, f"{other}_sigma")}
    params = user_parameters(args.fix, args.bound)
    seed_key(f"fit {args.curve}", "--seed", args.seed)  # checked before any computing
    _stage_logging(True)
    try:
        with enable_x64(args.precision == 64):  # the inputs as arrays of the fit's precision
            material = _material(args)
            res = fit_curves(
                args.kappa, curves["qinv"], curves["dvv"], material, freq_qinv=freqs["qinv"],
                freq_dvv=freqs["dvv"], model=args.model, criterion=args.ic, free=free,
                sigma_log=args.sigma_log, sigma_log_qinv=sig["qinv"], sigma_dvv=sig["dvv"],
                polarization=args.polarization, level=args.level, profile=not args.no_profile,
                dos_samples=args.dos_samples, init=_init(args), params=params, **_dos(args),
                **_opt(args))
    except KeyboardInterrupt:
        return _interrupted_early(args)
    if not args.plot:
        return _finish(args, res)
    from ..plot._plot_curves import plot_curves_fit

    return _finish(args, res, args.plot, plot_curves_fit)


def print_curves_derived(d: dict) -> None:
    """The quantities `fit_curves` adds (printed after the common ones)."""
    for key, label, unit in (("A_rel_per_s_K3", "A k_B^3", "1/(s K^3)"),
                             ("v_eff_m_per_s", "v_eff", "m/s"),
                             ("dvv_offset", "Delta v/v offset", "")):
        if key in d:
            err = d.get(key + "_err")
            txt = f"{d[key]:.4g}" + (" (fixed)" if d.get(key + "_fixed") else
                                     f" +- {err:.2g}" if err is not None and math.isfinite(err)
                                     else " (error not determined by the data)")
            print(f"  {label} = {txt} {unit}".rstrip())
    for k in ("kappa", "qinv", "dvv"):
        if f"rms_residual_{k}" in d:
            what = "Delta v/v" if k == "dvv" else f"ln {k}"
            print(f"  rms residual of {what} = {d[f'rms_residual_{k}']:.4g}")
    if "T_U_K_lower_total" in d or "T_U_K_upper_total" in d:
        lo, hi = d.get("T_U_K_lower_total"), d.get("T_U_K_upper_total")
        print(f"  T_U bounds with the DOS-sample part: {_b(lo)} < T_U < {_b(hi)} K")
    if "dos_sample_error" in d and d["dos_sample_error"]["samples"]:
        print(format_sample_error(d["dos_sample_error"]))


def _b(v) -> str:
    return "-" if v is None else f"{v:.3g}"


def add_argument_dos_samples(p) -> None:
    """`--dos-samples K` for `fit kappa` (the same option as `fit qinv` / `fit dvv`)."""
    p.add_argument("--dos-samples", type=integer(0, 1000), default=DEFAULT_DOS_SAMPLES, dest="dos_samples",
                   metavar="K", help="independent ES samples for the DOS-sample part of the "
                   f"S-tau errors (default {DEFAULT_DOS_SAMPLES}; 0: none)")


def check_dos_samples(args) -> None:
    if args.dos_samples < 0 or args.dos_samples == 1:
        raise ValueError(f"--dos-samples must be 0 or >= 2; got {args.dos_samples}")

