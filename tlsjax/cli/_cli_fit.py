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

from .._io import FIGURE_SUFFIXES, check_output_path
from .._validate import check_seed, enable_x64
from ..fit._dos_sample_error import add_dos_sample_error
from ..fit._fit import PARAMETERS
from ..fit._fit_stau import DEFAULT_TARGET_SIGMA, fit_kappa, fit_targets
from ..fit._params import Parameters, canonical_name, check_allowed, internal, label
from ..fit._profile import DEFAULT_LEVEL
from ..fit._select import CRITERIA, DEFAULT_CRITERION, format_selection_table, select_kappa_model
from ..model._lattice import Sample
from ..model._params import DEFAULT_ATILDE, DEFAULT_G, DEFAULT_J0_K, DEFAULT_KAPPA_LOG, ModelParams
from ..observables._dos import DEFAULT_DOS_CELLS, DEFAULT_DOS_REALIZATIONS, DEFAULT_DOS_X
from ..observables._material import Material
from . import _cli_fit_curves as curves
from ._args import (
    ATILDE,
    CELLS,
    DENSITY,
    FIT_BOUNDARY,
    FIT_RAYLEIGH,
    FREQUENCY,
    G_CROSSOVER,
    KAPPA_LOG,
    KELVIN_MAX,
    OCCUPATION,
    RATIO_MAX,
    SEED,
    VELOCITY,
    command_run_id,
    integer,
    positive,
    real,
)
from ._cli_es import _complete_result_of
from ._main import ListAction, name_list

#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
_STM_AMPLITUDES = ("C", "Cv")


def _check_names(names: list[str] | None) -> list[str] | None:
    """--free: internal keys or physical names (J_o, a~, T_U, ...), as internal keys."""
    allowed = [*PARAMETERS, "boundary"]
    out = []
    for n in names or []:
        try:
            out.append(n if n == "boundary" else canonical_name(n, PARAMETERS))
        except ValueError:
            hint = " (a file name? put FILE before --free, or end the list with --)" if (
                "." in n or "/" in n) else ""
            raise ValueError(f"--free: unknown parameter {n}{hint}; allowed: "
                             f"{', '.join(label(k) for k in allowed if k in PARAMETERS)}, "
                             "boundary") from None
    return out or None


def _assignment(text: str) -> tuple[str, str]:
    name, eq, value = text.partition("=")
    if not eq or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE; got {text!r}")
    return name.strip(), value.strip()


def _number(option: str, name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{option} {name}: not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{option} {name}: must be a finite number > 0; got {text}")
    return value


def user_parameters(fix, bound) -> Parameters | None:
    """--fix NAME=VALUE and --bound NAME=LO:HI (physical names, displayed units) as a
    `Parameters`; every value checked here, before anything is computed."""
    if not fix and not bound:
        return None
    params = Parameters()
    for name, text in fix or []:
        key = canonical_name(name, PARAMETERS)
        params.add(key, _number("--fix", name, text), vary=False)
    for name, text in bound or []:
        key = canonical_name(name, PARAMETERS)
        if key in params:
            raise ValueError(f"--bound {name}: the parameter is fixed by --fix")
        lo_text, colon, hi_text = text.partition(":")
        if not colon:
            raise ValueError(f"--bound {name}: expected LO:HI, e.g. {name}=1e-3:0.1; got {text!r}")
        lo, hi = _number("--bound", name, lo_text), _number("--bound", name, hi_text)
        if not lo < hi:
            raise ValueError(f"--bound {name}: needs LO < HI; got {lo:g}:{hi:g}")
        params.add(key, math.sqrt(lo) * math.sqrt(hi), min=lo, max=hi)  # no overflow
    for key, p in params.items():  # in the displayed units, before any conversion
        check_allowed(key, p, PARAMETERS[key][:2])
    return params


def _common(p) -> None:
    p.add_argument("--free", type=name_list, nargs="+", action=ListAction, default=None,
                   metavar="NAME",
                   help="free parameters by name, e.g. g,J_o,a~ or g J_o a~ (allowed: "
                   f"{', '.join(label(n) for n in PARAMETERS)}; default: the model's)")
    p.add_argument("--fix", type=_assignment, action="append", default=None,
                   metavar="NAME=VALUE", help="fix a parameter at a value in its displayed "
                   "unit, e.g. --fix J_o=800 (K); repeatable")
    p.add_argument("--bound", type=_assignment, action="append", default=None,
                   metavar="NAME=LO:HI", help="fit a parameter within LO..HI (its displayed "
                   "unit), e.g. --bound g=1e-3:0.05; repeatable; default: the built-in range")
    m = p.add_argument_group("starting / fixed model parameters")
    m.add_argument("--g", type=G_CROSSOVER, default=DEFAULT_G,
                   help="g = gamma_tau / gamma_S, dimensionless (default %(default)s)")
    m.add_argument("--J0", "--J-o", type=positive(KELVIN_MAX), default=DEFAULT_J0_K, dest="J0",
                   help="S-S coupling J_o in K (default %(default)s)")
    m.add_argument("--atilde", type=ATILDE, default=DEFAULT_ATILDE,
                   help="short-distance cutoff a~ in units of a_o (default %(default)s)")
    m.add_argument("--h-rel", type=real(0.0, RATIO_MAX), default=0.0, dest="h_rel",
                   help="random-field width h_rel, dimensionless (default %(default)s)")
    m.add_argument("--kappa-log", type=KAPPA_LOG, default=DEFAULT_KAPPA_LOG, dest="kappa_log",
                   help="kappa_log = 1/ln(Delta_u/Delta_l), dimensionless (default %(default)s)")
    s = p.add_argument_group("ES sample of the DOS")
    s.add_argument("--x", type=OCCUPATION, default=DEFAULT_DOS_X,
                   help="concentration x of the sample, dimensionless (default %(default)s)")
    s.add_argument("--cells", type=CELLS, default=DEFAULT_DOS_CELLS,
                   help="lattice cells per side L (default %(default)s)")
    s.add_argument("--realizations", type=integer(1), default=DEFAULT_DOS_REALIZATIONS,
                   help="independent samples averaged (default %(default)s)")
    s.add_argument("--seed", type=SEED, default=0,
                   help="PRNG seed of the sample, in [0, 2^64 - 1] (default %(default)s)")
    o = p.add_argument_group("optimizer and output")
    o.add_argument("--precision", type=integer(32, 64), choices=(64, 32), default=64,
                   help="floating-point bits of the fit (default %(default)s)")
    o.add_argument("--starts", type=integer(1), default=1,
                   help="number of optimizer starts (default %(default)s)")
    o.add_argument("--max-steps", type=integer(1), default=200, dest="max_steps",
                   help="L-BFGS steps per start at most (default %(default)s)")
    o.add_argument("--json", default=None, metavar="OUT.json",
                   help="write the FitResult and its report (default: none)")
    o.add_argument("--overwrite", action="store_true",
                   help="allow replacing output files (default: refuse)")
    o.add_argument("--no-progress", action="store_true", dest="no_progress",
                   help="no progress bars (default: shown)")


def register(sub) -> None:
    fit = sub.add_parser("fit", help="fit the S-tau model (targets or measured kappa)",
                         description="Fits with optax (L-BFGS), Laplace 1-sigma errors, "
                         "profile-likelihood bounds and an identifiability report.")
    fsub = fit.add_subparsers(dest="fit_command", required=True)

    t = fsub.add_parser("targets", help="g, J0, a~ from C_o and T_U",
                        description="Fit C_o = kappa_log g and T_U (P_S(T_U) = 5 g) with "
                        "relative uncertainties; reports what the targets do not determine.")
    t.add_argument("--C-o", "--C_o", "--C0", type=real(0.0, 1.0, lo_open=True, hi_open=True),
                   default=1e-3, dest="C0",
                   help="target C_o = kappa_log g, dimensionless (default %(default)s)")
    t.add_argument("--T-U", "--T_U", "--TU", type=positive(KELVIN_MAX), default=3.0, dest="TU",
                   help="target T_U in K (default %(default)s)")
    t.add_argument("--sigma-C-o", "--sigma-C0", type=positive(RATIO_MAX), default=DEFAULT_TARGET_SIGMA,
                   dest="sigma_C0", help="relative 1-sigma uncertainty of C_o (default "
                   "%(default)s)")
    t.add_argument("--sigma-T-U", "--sigma-TU", type=positive(RATIO_MAX), default=DEFAULT_TARGET_SIGMA,
                   dest="sigma_TU", help="relative 1-sigma uncertainty of T_U (default "
                   "%(default)s)")
    t.add_argument("--criterion", choices=["shortcut", "full"], default="shortcut",
                   help="T_U criterion: shortcut P_S(T_U) = 5 g, or full g phi_tau = P_S phi_S "
                   "(default %(default)s)")
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
    k.add_argument("file", help="table with T and kappa columns (units in the header; "
                   "comma, tab or whitespace; optional uncertainty column dkappa)")
    k.add_argument("--model", choices=["auto", "stau", "stm"], default="auto",
                   help="S-tau C(E), constant C (stm), or choose (default %(default)s)")
    k.add_argument("--boundary", type=FIT_BOUNDARY, default="auto", metavar="MODE",
                   help="boundary scattering 1/l_b: auto (choose), free, absent, or a fixed "
                   "value (l_b in m with --rho/--vl/--vt, l_b/v_eff^2 in s^2/m without) "
                   "(default %(default)s)")
    k.add_argument("--rayleigh", type=FIT_RAYLEIGH, default="auto", metavar="MODE",
                   help="Rayleigh scattering A_R omega^4: auto, free, absent, or a fixed "
                   "A_R (k_B/hbar)^4 in 1/(m K^4) (times v_eff^2 in m/(s^2 K^4) without "
                   "velocities; --fix A_R=... takes s^4/m) (default %(default)s)")
    k.add_argument("--ic", choices=CRITERIA, default=DEFAULT_CRITERION,
                   help="information criterion of the choice (default %(default)s)")
    k.add_argument("--level", type=real(0.5, 1.0, lo_open=True, hi_open=True), default=DEFAULT_LEVEL,
                   help="confidence of the one-sided profile-likelihood bounds, in (0.5, 1) "
                   "(default %(default)s)")
    k.add_argument("--no-profile", action="store_true", dest="no_profile",
                   help="skip the profile-likelihood bounds (default: computed)")
    k.add_argument("--rho", type=DENSITY, default=None,
                   help="density in kg/m^3 (default: none; velocity-free fit)")
    k.add_argument("--vl", "--v-l", type=VELOCITY, default=None, dest="vl",
                   help="longitudinal sound velocity v_l in m/s (default: none)")
    k.add_argument("--vt", "--v-t", type=VELOCITY, default=None, dest="vt",
                   help="transverse sound velocity v_t in m/s (default: none)")
    k.add_argument("--sigma-log", type=positive(RATIO_MAX), default=None, dest="sigma_log",
                   help="1-sigma of ln kappa per point, dimensionless (default: the file's "
                   "uncertainty column, else errors scaled by the scatter)")
    k.add_argument("--qinv", default=None, metavar="FILE",
                   help="Q^-1(T) table, fitted jointly (default: none)")
    k.add_argument("--freq", type=FREQUENCY, default=None,
                   help="frequency of the Q^-1 measurement in Hz, omega = 2 pi freq (needs "
                   "--qinv; default: none)")
    k.add_argument("--plot", default=None, metavar="OUT.png",
                   help="write the figure (default: none)")
    curves.add_argument_dos_samples(k)
    _common(k)
    k.set_defaults(func=run_kappa)
    curves.register(fsub)  # fit qinv, fit dvv


def _init(args) -> ModelParams:
    """The start values. Build them inside the fit's `enable_x64` context: outside it they
    would be float32 arrays, and a float64 fit would start from their float32 rounding."""
    return ModelParams(g=args.g, J0=args.J0, atilde=args.atilde, h_rel=args.h_rel,
                       kappa_log=args.kappa_log)


def _dos(args) -> dict:
    return dict(sample=Sample(args.x, args.cells), realizations=args.realizations,
                seed=args.seed)


def _opt(args) -> dict:
    return dict(starts=args.starts, max_steps=args.max_steps, progress=not args.no_progress)


def _check_outputs(args, plot: str | None = None, table: str | None = None) -> None:
    """Every output location (the figure's CSV `table` too), before anything is computed."""
    if args.json:
        check_output_path(args.json, args.overwrite, run=command_run_id(args), what="--json",
                          suffixes=(".json",))
    if plot:
        check_output_path(plot, args.overwrite, what="--plot", suffixes=FIGURE_SUFFIXES)
        if args.json and Path(plot).resolve() == Path(args.json).resolve():
            raise ValueError("--json and --plot name the same file")
    if table:
        check_output_path(table, args.overwrite, what="the CSV of --plot", suffixes=(".csv",))
        if args.json and Path(table).resolve() == Path(args.json).resolve():
            raise ValueError(f"--json and the CSV of --plot ({table}) name the same file")


def _print_result(res) -> None:
    """The candidate table (model selection), then the report (`FitResult.report`)."""
    sel = res.derived.get("model_selection")
    if sel:
        print(f"model selection ({sel['criterion'].upper()}; * = chosen):")
        print(format_selection_table(sel))
    print(res.report())
    curves.print_curves_derived(res.derived)


def _write_json(args, res) -> bool:
    """Write --json; False if none was written (none asked, or an interrupted rerun that
    keeps the complete result of the same command already there)."""
    if not args.json:
        return False
    rid = command_run_id(args)
    if res.interrupted and _complete_result_of(args.json, rid, "interrupted"):
        print(f"kept {args.json}: it holds the complete result of this command")
        return False
    res.to_json(args.json, overwrite=True, run=rid)  # checked before the fit
    print(f"wrote {args.json}")
    return True


def _finish(args, res, plot: str | None = None, draw=None) -> int:
    """Print, write the JSON, then the figure (`draw(res, plot)`, default the kappa fit's
    figure); 130 if interrupted, 1 if the figure failed."""
    _print_result(res)
    written = _write_json(args, res)
    if res.interrupted:
        print(f"tlsjax fit {args.fit_command}: interrupted; the best point reached was "
              "reported" + (f" and written to {args.json} (\"interrupted\": true)"
                            if written else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    if plot:
        if draw is None:
            from ..plot._plot_fit import plot_kappa_fit as draw

        try:
            written = draw(res, plot)
        except Exception as err:  # the fit is saved; say what went wrong with the figure
            print(f"tlsjax fit {args.fit_command}: error: the figure {plot} could not be "
                  f"written ({type(err).__name__}: {err})", file=sys.stderr)
            return 1
        for path in written if isinstance(written, tuple) else (plot,):
            print(f"wrote {path}")
    return 0


def _interrupted_early(args) -> int:
    print(f"tlsjax fit {args.fit_command}: interrupted before a fit had finished a step; "
          "nothing was written", file=sys.stderr)
    return EXIT_INTERRUPTED


def _targets_parameters(args, free):
    """(init, free, bounds) of `fit targets` after --fix / --bound."""
    init = _init(args)
    params = user_parameters(args.fix, args.bound)
    if params is None:
        return init, free, None
    values, vary, bounds = internal(params, PARAMETERS)
    fields = ("g", "J0", "atilde", "h_rel", "kappa_log")
    bad = [label(n) for n in values if n not in fields]
    if bad:
        raise ValueError(f"--fix/--bound: {', '.join(bad)} is not a parameter of `fit targets`;"
                         f" allowed: {', '.join(label(n) for n in fields)}")
    init = ModelParams(**{k: values.get(k, float(getattr(init, k))) for k in fields})
    free = [n for n in free if n not in values or n in vary] + [n for n in vary if n not in free]
    return init, free, bounds


def run_targets(args) -> int:
    _check_outputs(args)
    check_seed("fit targets", "--seed", args.seed)
    free = _check_names(args.free) or ["g", "J0", "atilde"]
    try:
        with enable_x64(args.precision == 64):
            init, free, bounds = _targets_parameters(args, free)
            res = fit_targets(args.C0, args.TU, sigma_C0=args.sigma_C0,
                              sigma_T_U=args.sigma_TU, free=free, init=init,
                              criterion=args.criterion, bounds=bounds, **_dos(args),
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
    if not 0.5 < args.level < 1.0:
        raise ValueError(f"--level must be in (0.5, 1); got {args.level:g}")
    if args.freq is not None and args.qinv is None:
        raise ValueError("--freq is the frequency of a Q^-1 measurement: give --qinv FILE "
                         "with it, or leave it out")
    check_seed("fit kappa", "--seed", args.seed)
    _check_outputs(args, args.plot)
    free = _check_names(args.free)
    params = user_parameters(args.fix, args.bound)
    curves.check_dos_samples(args)
    _stage_logging(True)
    common = dict(sigma_log=args.sigma_log, level=args.level, profile=not args.no_profile,
                  params=params, **_dos(args), **_opt(args))
    try:
        with enable_x64(args.precision == 64):  # the inputs as arrays of the fit's precision
            material = Material(args.rho, args.vl, args.vt) if all(given) else None
            common["init"] = _init(args)
            if free or args.qinv:
                model = args.model
                if model == "auto":
                    model = "stm" if free and any(n in _STM_AMPLITUDES for n in free) else "stau"
                terms = {n: (None if getattr(args, n) in ("auto", "absent") else getattr(args, n))
                         for n in ("boundary", "rayleigh")}
                res = fit_kappa(args.file, material, model=model, free=free,
                                qinv_data=args.qinv, freq=args.freq, **terms, **common)
            else:
                res = select_kappa_model(args.file, material, model=args.model,
                                         boundary=args.boundary, rayleigh=args.rayleigh,
                                         criterion=args.ic, **common)
    except KeyboardInterrupt:
        return _interrupted_early(args)
    if args.dos_samples and not res.interrupted:
        with enable_x64(args.precision == 64):
            add_dos_sample_error(res, args.dos_samples, seed=args.seed,
                                 progress=not args.no_progress)
    return _finish(args, res, args.plot)
