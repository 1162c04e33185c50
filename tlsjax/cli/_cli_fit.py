"""`tlsjax fit targets` and `tlsjax fit kappa` (thin layer over `fit_targets`,
`fit_kappa` and `select_kappa_model`).

Every output location is checked before anything is computed; the JSON is written
(atomically) before the figure, so a failing figure never loses the fit. Ctrl-C during
a fit keeps what was done: the best point (flagged `"interrupted": true`) is printed
and written to `--json`, and the command exits with status 130.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import jax

from .._io import FIGURE_SUFFIXES, check_output_path
from ..fit._fit import PARAMETERS
from ..fit._fit_stau import DEFAULT_TARGET_SIGMA, fit_kappa, fit_targets
from ..fit._profile import DEFAULT_LEVEL
from ..fit._select import CRITERIA, DEFAULT_CRITERION, format_selection_table, select_kappa_model
from ..model._lattice import Sample
from ..model._params import DEFAULT_ATILDE, DEFAULT_G, DEFAULT_J0_K, DEFAULT_KAPPA_LOG, ModelParams
from ..observables._dos import DEFAULT_DOS_CELLS, DEFAULT_DOS_REALIZATIONS, DEFAULT_DOS_X
from ..observables._material import Material
from ._args import (
    ATILDE,
    CELLS,
    DENSITY,
    FREQUENCY,
    G_CROSSOVER,
    KAPPA_LOG,
    KELVIN_MAX,
    OCCUPATION,
    RATIO_MAX,
    SEED,
    VELOCITY,
    integer,
    positive,
    real,
)
from ._main import ListAction, name_list

#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
_STM_AMPLITUDES = ("C", "Cv")


def _check_names(names: list[str] | None) -> list[str] | None:
    bad = [n for n in names or [] if n not in PARAMETERS and n != "boundary"]
    if bad:
        hint = ""
        if any(("." in b or "/" in b) for b in bad):
            hint = " (a file name? put FILE before --free, or end the list with --)"
        raise ValueError(f"--free: unknown parameter(s) {', '.join(bad)}{hint}; allowed: "
                         f"{', '.join(PARAMETERS)}, boundary")
    return names


def _term_option(text: str):
    """--boundary / --rayleigh: auto, free, absent, or a fixed positive number."""
    if text in ("auto", "free", "absent"):
        return text
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected auto, free, absent or a number; got {text!r}") from err
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0; got {text!r}")
    return value


def _common(p) -> None:
    p.add_argument("--free", type=name_list, nargs="+", action=ListAction, default=None,
                   metavar="NAME",
                   help="free parameters, e.g. g,J0,atilde or g J0 atilde (allowed: "
                   f"{', '.join(PARAMETERS)})")
    m = p.add_argument_group("starting / fixed model parameters")
    m.add_argument("--g", type=G_CROSSOVER, default=DEFAULT_G)
    m.add_argument("--J0", type=positive(KELVIN_MAX), default=DEFAULT_J0_K, help="K")
    m.add_argument("--atilde", type=ATILDE, default=DEFAULT_ATILDE, help="units of a_o")
    m.add_argument("--h-rel", type=real(0.0, RATIO_MAX), default=0.0, dest="h_rel")
    m.add_argument("--kappa-log", type=KAPPA_LOG, default=DEFAULT_KAPPA_LOG, dest="kappa_log")
    s = p.add_argument_group("ES sample of the DOS")
    s.add_argument("--x", type=OCCUPATION, default=DEFAULT_DOS_X)
    s.add_argument("--cells", type=CELLS, default=DEFAULT_DOS_CELLS)
    s.add_argument("--realizations", type=integer(1), default=DEFAULT_DOS_REALIZATIONS)
    s.add_argument("--seed", type=SEED, default=0)
    o = p.add_argument_group("optimizer and output")
    o.add_argument("--starts", type=integer(1), default=1, help="number of starts (1)")
    o.add_argument("--max-steps", type=integer(1), default=200, dest="max_steps")
    o.add_argument("--json", default=None, metavar="OUT.json", help="write the FitResult")
    o.add_argument("--overwrite", action="store_true", help="allow replacing output files")
    o.add_argument("--no-progress", action="store_true", dest="no_progress")


def register(sub) -> None:
    fit = sub.add_parser("fit", help="fit the S-tau model (targets or measured kappa)",
                         description="Fits with optax (L-BFGS), Laplace 1-sigma errors, "
                         "profile-likelihood bounds and an identifiability report.")
    fsub = fit.add_subparsers(dest="fit_command", required=True)

    t = fsub.add_parser("targets", help="g, J0, a~ from C_o and T_U",
                        description="Fit C_o = kappa_log g and T_U (P_S(T_U) = 5 g) with "
                        "relative uncertainties; reports what the targets do not determine.")
    t.add_argument("--C0", type=real(0.0, 1.0, lo_open=True, hi_open=True), default=1e-3,
                   help="target C_o (1e-3)")
    t.add_argument("--TU", type=positive(KELVIN_MAX), default=3.0, help="target T_U in K (3)")
    t.add_argument("--sigma-C0", type=positive(RATIO_MAX), default=DEFAULT_TARGET_SIGMA, dest="sigma_C0",
                   help="relative uncertainty of C_o (0.1)")
    t.add_argument("--sigma-TU", type=positive(RATIO_MAX), default=DEFAULT_TARGET_SIGMA, dest="sigma_TU",
                   help="relative uncertainty of T_U (0.1)")
    t.add_argument("--criterion", choices=["shortcut", "full"], default="shortcut")
    _common(t)
    t.set_defaults(func=run_targets)

    k = fsub.add_parser(
        "kappa", help="fit a measured kappa(T) CSV (model chosen automatically)",
        description="Fit kappa(T) in log space. By default the constant-C model and the "
        "S-tau model, each without and with a boundary term and a Rayleigh term, are "
        f"fitted and the one with the smallest {DEFAULT_CRITERION.upper()} is kept (the "
        "table of candidates is printed); --model, --boundary, --rayleigh narrow the "
        "choice, --free fits one model. Without --rho/--vl/--vt the identifiable "
        "combinations are fitted: kv = kappa_log v_eff (3/v_eff = 1/v_l + 2/v_t), l_b/v_eff^2 "
        "and A_R v_eff^2; C_o is then not reported.")
    k.add_argument("file", help="CSV with T and kappa columns (units in the header)")
    k.add_argument("--model", choices=["auto", "stau", "stm"], default="auto",
                   help="S-tau C(E), constant C (stm), or choose (auto, default)")
    k.add_argument("--boundary", type=_term_option, default="auto", metavar="MODE",
                   help="boundary scattering 1/l_b: auto (default: choose), free, absent, or "
                   "a fixed value (l_b in m with --rho/--vl/--vt, l_b/v_eff^2 in s^2/m without)")
    k.add_argument("--rayleigh", type=_term_option, default="auto", metavar="MODE",
                   help="Rayleigh scattering A_R omega^4: auto (default), free, absent, or a "
                   "fixed A_R (k_B/hbar)^4 in 1/(m K^4) (times v_eff^2 without velocities)")
    k.add_argument("--ic", choices=CRITERIA, default=DEFAULT_CRITERION,
                   help=f"information criterion of the choice ({DEFAULT_CRITERION})")
    k.add_argument("--level", type=real(0.5, 1.0, lo_open=True, hi_open=True), default=DEFAULT_LEVEL,
                   help="confidence of the one-sided profile-likelihood bounds (0.95)")
    k.add_argument("--no-profile", action="store_true", dest="no_profile",
                   help="skip the profile-likelihood bounds")
    k.add_argument("--rho", type=DENSITY, default=None, help="density, kg/m^3")
    k.add_argument("--vl", type=VELOCITY, default=None, help="longitudinal velocity, m/s")
    k.add_argument("--vt", type=VELOCITY, default=None, help="transverse velocity, m/s")
    k.add_argument("--sigma-log", type=positive(RATIO_MAX), default=None, dest="sigma_log",
                   help="1-sigma of ln kappa per point (default: errors scaled by chi^2)")
    k.add_argument("--qinv", default=None, metavar="FILE", help="Q^-1(T) CSV, fitted jointly")
    k.add_argument("--freq", type=FREQUENCY, default=None, help="Q^-1 frequency in Hz")
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


def _check_outputs(args, plot: str | None = None) -> None:
    """Every output location, before anything is computed."""
    if args.json:
        check_output_path(args.json, args.overwrite, what="--json", suffixes=(".json",))
    if plot:
        check_output_path(plot, args.overwrite, what="--plot", suffixes=FIGURE_SUFFIXES)
        if args.json and Path(plot).resolve() == Path(args.json).resolve():
            raise ValueError("--json and --plot name the same file")


def _fmt(value, err) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if err is None or not math.isfinite(err):
        return f"{value:.4g} (error: see the bounds and notes)"
    return f"{value:.4g} +- {err:.2g}"


def _print_derived(d: dict) -> None:
    if "model_selection" in d:
        sel = d["model_selection"]
        print(f"model selection ({sel['criterion'].upper()}; * = chosen):")
        print(format_selection_table(sel))
    if d.get("C_o") is not None:
        print(f"  C_o = {_fmt(d['C_o'], d.get('C_o_err'))}")
    if "C_o_v_eff_m_per_s" in d:
        print(f"  C_o v_eff = {_fmt(d['C_o_v_eff_m_per_s'], d.get('C_o_v_eff_m_per_s_err'))} m/s")
    if "T_U_K" in d:
        line = f"  T_U = {_fmt(d['T_U_K'], d.get('T_U_K_err'))} K (best fit)"
        lo, hi = d.get("T_U_K_lower"), d.get("T_U_K_upper")
        if "T_U_K_bound_level" in d:
            pct = f"{100 * d['T_U_K_bound_level']:g} %"
            if lo is not None and hi is None:
                line += f"; T_U > {lo:.3g} K ({pct} one-sided, profile likelihood)"
            elif hi is not None and lo is None:
                line += f"; T_U < {hi:.3g} K ({pct} one-sided, profile likelihood)"
            elif lo is not None:
                line += f"; {lo:.3g} < T_U < {hi:.3g} K (each side {pct}, profile)"
        print(line)
    for key, label, unit in (("l_b_m", "l_b", "m"),
                             ("l_b_over_v_eff2_s2_per_m", "l_b / v_eff^2", "s^2/m"),
                             ("A_R_s4_per_m", "A_R", "s^4/m"),
                             ("A_R_v_eff2_s2_m", "A_R v_eff^2", "s^2 m")):
        if key in d:
            err = d.get(key + "_err")
            text = f"{d[key]:.4g} (fixed)" if err is None else _fmt(d[key], err)
            print(f"  {label} = {text} {unit}")
    if "rms_log_residual" in d:
        print(f"  rms ln residual = {d['rms_log_residual']:.4g}")


def _write_json(args, res) -> None:
    if args.json:
        res.to_json(args.json, overwrite=True)  # checked before the fit
        print(f"wrote {args.json}")


def _finish(args, res, plot: str | None = None) -> int:
    """Print, write the JSON, then the figure; 130 if interrupted, 1 if the figure failed."""
    print(res.summary())
    _print_derived(res.derived)
    _write_json(args, res)
    if res.interrupted:
        print(f"tlsjax fit {args.fit_command}: interrupted; the best point reached was "
              "reported" + (f" and written to {args.json} (\"interrupted\": true)"
                            if args.json else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    if plot:
        from ..plot._plot_fit import plot_kappa_fit

        try:
            plot_kappa_fit(res, plot)
        except Exception as err:  # the fit is saved; say what went wrong with the figure
            print(f"tlsjax fit {args.fit_command}: error: the figure {plot} could not be "
                  f"written ({type(err).__name__}: {err})", file=sys.stderr)
            return 1
        print(f"wrote {plot}")
    return 0


def _interrupted_early(args) -> int:
    print(f"tlsjax fit {args.fit_command}: interrupted before a fit had finished a step; "
          "nothing was written", file=sys.stderr)
    return EXIT_INTERRUPTED


def run_targets(args) -> int:
    _check_outputs(args)
    free = _check_names(args.free) or ["g", "J0", "atilde"]
    try:
        res = fit_targets(args.C0, args.TU, sigma_C0=args.sigma_C0, sigma_T_U=args.sigma_TU,
                          free=free, init=_init(args), criterion=args.criterion, **_dos(args),
                          **_opt(args))
    except KeyboardInterrupt:
        return _interrupted_early(args)
    return _finish(args, res)


class _StderrHandler(logging.Handler):
    """Writes to whatever `sys.stderr` is at the time (not the stream of the first call)."""

    def emit(self, record):
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:  # a closed or broken stream must not break the fit
            self.handleError(record)


def _stage_logging(enabled: bool) -> None:
    """Show the fit's stage messages (logger "tlsjax.fit") on stderr, one line each."""
    log = logging.getLogger("tlsjax.fit")
    if enabled and not any(isinstance(h, _StderrHandler) for h in log.handlers):
        h = _StderrHandler()
        h.setFormatter(logging.Formatter("tlsjax fit: %(message)s"))
        log.addHandler(h)
        log.setLevel(logging.INFO)


def run_kappa(args) -> int:
    given = [v is not None for v in (args.rho, args.vl, args.vt)]
    if any(given) and not all(given):
        raise ValueError("`fit kappa`: give all of --rho, --vl, --vt, or none (then the "
                         "velocity-free combination kv = kappa_log v_eff is fitted)")
    material = Material(args.rho, args.vl, args.vt) if all(given) else None
    if not 0.5 < args.level < 1.0:
        raise ValueError(f"--level must be in (0.5, 1); got {args.level:g}")
    _check_outputs(args, args.plot)
    _check_names(args.free)
    _stage_logging(True)
    common = dict(init=_init(args), sigma_log=args.sigma_log, level=args.level,
                  profile=not args.no_profile, **_dos(args), **_opt(args))
    try:
        if args.free or args.qinv:
            free = args.free
            model = args.model
            if model == "auto":
                model = "stm" if free and any(n in _STM_AMPLITUDES for n in free) else "stau"
            terms = {n: (None if getattr(args, n) in ("auto", "absent") else getattr(args, n))
                     for n in ("boundary", "rayleigh")}
            res = fit_kappa(args.file, material, model=model, free=free, qinv_data=args.qinv,
                            freq=args.freq, **terms, **common)
        else:
            res = select_kappa_model(args.file, material, model=args.model,
                                     boundary=args.boundary, rayleigh=args.rayleigh,
                                     criterion=args.ic, **common)
    except KeyboardInterrupt:
        return _interrupted_early(args)
    return _finish(args, res, args.plot)
