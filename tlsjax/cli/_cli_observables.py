"""`tlsjax kappa`, `tlsjax qinv` and `tlsjax observables` (docs/conventions.md sections 4-5)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .._convention import convention_line, energy_convention
from .._io import OutputDir, check_output_path, write_json
from .._validate import check_grid, check_int, check_range, seed_key
from ..model._lattice import Sample
from ..model._params import DEFAULT_ATILDE, DEFAULT_G, DEFAULT_J0_K, DEFAULT_KAPPA_LOG, ModelParams
from ..observables._dos import (
    DEFAULT_DOS_CELLS,
    DEFAULT_DOS_REALIZATIONS,
    DEFAULT_DOS_X,
    StauTLS,
    crossover,
    stau_dos,
)
from ..observables._material import DEFAULT_GAMMA_T_EV, HBAR, K_B, Material
from ..observables._stm import (
    OMEGA_MIN,
    T_MAX_K,
    T_MIN_K,
    mfp_over_wavelength,
    qinv_relaxation,
    qinv_resonant,
    thermal_conductivity,
)
from ..observables._tls import AbstractTLS, ConstantC
from ._args import (
    ATILDE,
    BOUNDARY,
    C_MAX,
    C_MIN,
    CELLS,
    DENSITY,
    FREQUENCY,
    G_CROSSOVER,
    KAPPA_LOG,
    KELVIN_MAX,
    MATERIAL_RATIO,
    OCCUPATION,
    POTENTIAL_EV,
    RATIO_MAX,
    RAYLEIGH,
    SEED,
    VELOCITY,
    command_run_id,
    integer,
    positive,
    real,
    reals,
)
from ._main import ListAction

#: hbar omega / k_B T of the "thermal" phonon used for l / lambda(T) in the figure.
THERMAL_X = 3.0
#: Most temperatures of the observables figure: every point costs ~250 evaluations of
#: C(E) per observable (a kappa and a Q^-1 quadrature), and a figure resolves far fewer.
MAX_POINTS = 2000


def check_temperatures(where: str, T) -> np.ndarray:
    """The temperature list of a command, checked before any model is built."""
    check_grid(where, "T", T, positive=True)
    check_range(where, "T", np.asarray(T, dtype=float), T_MIN_K, T_MAX_K,
                reason="TLSs and Debye phonons in a solid: from 1 uK to far above every "
                "melting point")
    return np.asarray(T, dtype=float)


def check_freq(where: str, freq: float) -> float:
    """A measurement frequency in Hz: finite, >= OMEGA_MIN / 2 pi."""
    check_range(where, "freq", freq, OMEGA_MIN / (2.0 * math.pi),
                reason="in Hz; below it the period exceeds 20000 years, beyond any "
                "measurement")
    return float(freq)


def require_finite(where: str, **arrays) -> None:
    """Refuse to report a value that is not finite (it would be an overflow, not physics)."""
    for name, values in arrays.items():
        v = np.asarray(values, dtype=float)
        if not np.all(np.isfinite(v)):
            raise ValueError(f"`{where}`: {name} is not finite in float32 at some of the "
                             f"requested points ({int(np.sum(~np.isfinite(v)))} of {v.size}); "
                             "the model's value there exceeds float32's range (e.g. no "
                             "scattering left at E >> J_o: add --boundary or --rayleigh)")


def _add_material(p, required: bool = True) -> None:
    m = p.add_argument_group("material (SI units; no presets: supply your own)")
    m.add_argument("--rho", type=DENSITY, required=required, help="density in kg/m^3")
    m.add_argument("--vl", "--v-l", type=VELOCITY, required=required, dest="vl",
                   help="longitudinal velocity, m/s")
    m.add_argument("--vt", "--v-t", type=VELOCITY, required=required, dest="vt",
                   help="transverse velocity, m/s")
    m.add_argument("--gamma-ratio", type=MATERIAL_RATIO, default=None, dest="gamma_ratio",
                   help="gamma_l / gamma_t (default v_l / v_t, i.e. C_l = C_t)")
    m.add_argument("--gamma-t", type=POTENTIAL_EV, default=DEFAULT_GAMMA_T_EV, dest="gamma_t",
                   help="transverse deformation potential (gamma_S in the S-tau model), eV "
                   "(default 1 eV: an order of magnitude, not a measurement)")
    m.add_argument("--rayleigh", type=RAYLEIGH, default=0.0,
                   help="Rayleigh coefficient A_R of l^-1 = A_R omega^4, s^4/m (default 0)")
    m.add_argument("--boundary", type=BOUNDARY, default=math.inf,
                   help="boundary mean free path in m (default: none)")


#: The S-tau model options and their defaults (None in argparse, so that giving one
#: together with --constant-C can be refused).
MODEL_DEFAULTS = dict(g=DEFAULT_G, J0=DEFAULT_J0_K, atilde=DEFAULT_ATILDE, h_rel=0.0,
                      kappa_log=DEFAULT_KAPPA_LOG, x=DEFAULT_DOS_X, cells=DEFAULT_DOS_CELLS,
                      realizations=DEFAULT_DOS_REALIZATIONS, seed=0)
_MODEL_FLAGS = dict(g="--g", J0="--J0", atilde="--atilde", h_rel="--h-rel",
                    kappa_log="--kappa-log", x="--x", cells="--cells",
                    realizations="--realizations", seed="--seed")


def _add_model(p, allow_constant: bool = True) -> None:
    m = p.add_argument_group("tunneling strength: --constant-C (plain model) or S-tau "
                             "parameters (not both)")
    if allow_constant:
        m.add_argument("--constant-C", type=real(C_MIN, C_MAX), default=None, dest="constant_C",
                       help="plain standard tunneling model with this (transverse) C")
    m.add_argument("--g", type=G_CROSSOVER, default=None, help=f"g (default {DEFAULT_G})")
    m.add_argument("--J0", type=positive(KELVIN_MAX), default=None,
                   help=f"J_o in K (default {DEFAULT_J0_K:g})")
    m.add_argument("--atilde", type=ATILDE, default=None,
                   help=f"a~ in units of a_o (default {DEFAULT_ATILDE:g})")
    m.add_argument("--h-rel", type=real(0.0, RATIO_MAX), default=None, dest="h_rel", help="h_rel (default 0)")
    m.add_argument("--kappa-log", type=KAPPA_LOG, default=None, dest="kappa_log",
                   help=f"kappa_log (default {DEFAULT_KAPPA_LOG:g})")
    m.add_argument("--x", type=OCCUPATION, default=None,
                   help=f"occupation of the DOS sample (default {DEFAULT_DOS_X:g})")
    m.add_argument("--cells", type=CELLS, default=None,
                   help=f"fcc cells per edge of the DOS sample (default {DEFAULT_DOS_CELLS})")
    m.add_argument("--realizations", type=integer(1), default=None,
                   help=f"realizations of the DOS sample (default {DEFAULT_DOS_REALIZATIONS})")
    m.add_argument("--seed", type=SEED, default=None,
                   help="PRNG seed of the DOS sample, in [0, 2^64 - 1] (default 0)")


def resolve_model_args(args) -> None:
    """Refuse S-tau options next to --constant-C; fill in the defaults of the others."""
    given = [flag for name, flag in _MODEL_FLAGS.items() if getattr(args, name) is not None]
    if getattr(args, "constant_C", None) is not None and given:
        raise ValueError(f"--constant-C selects the plain tunneling model, which has no "
                         f"S-tau parameters: drop {', '.join(given)} or drop --constant-C")
    for name, default in MODEL_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)


def _add_output(p) -> None:
    p.add_argument("--json", default=None, metavar="PATH", help="write the result as JSON")
    p.add_argument("--overwrite", action="store_true",
                   help="allow replacing --json PATH if tlsjax did not write it")


def register(sub) -> None:
    k = sub.add_parser("kappa", help="thermal conductivity kappa(T) in W/(m K)",
                       description="Thermal conductivity from the Debye kinetic integral with "
                       "resonant TLS scattering (+ Rayleigh, boundary), docs/conventions.md section 5.")
    k.add_argument("--T", type=reals(T_MIN_K, T_MAX_K), nargs="+", action=ListAction, required=True,
                   help="temperatures in K, e.g. 0.1,1 or 0.1 1")
    _add_material(k)
    _add_model(k)
    _add_output(k)
    k.set_defaults(func=run_kappa)

    q = sub.add_parser("qinv", help="internal friction Q^-1(T) (resonant + relaxation)",
                       description="Internal friction Q^-1 = Q^-1_res + Q^-1_rel at one "
                       "frequency, docs/conventions.md section 5.")
    q.add_argument("--T", type=reals(T_MIN_K, T_MAX_K), nargs="+", action=ListAction, required=True,
                   help="temperatures in K")
    q.add_argument("--freq", type=FREQUENCY, default=1e3, help="frequency in Hz (default 1e3)")
    q.add_argument("--polarization", choices=["l", "t"], default="t")
    _add_material(q)
    _add_model(q)
    _add_output(q)
    q.set_defaults(func=run_qinv)

    o = sub.add_parser("observables", help="figure: kappa, Q^-1, l/lambda and C(E) vs T",
                       description="kappa(T), Q^-1(T), l/lambda and C(E) of the S-tau model "
                       "against the plain model with C = C(E -> 0), marking T_U.")
    o.add_argument("--out", default="tlsjax-observables", help="output folder")
    o.add_argument("--T-min", type=real(T_MIN_K, T_MAX_K), default=0.01, dest="T_min", help="K (0.01)")
    o.add_argument("--T-max", type=real(T_MIN_K, T_MAX_K), default=30.0, dest="T_max", help="K (30)")
    o.add_argument("--points", type=integer(2, MAX_POINTS), default=40,
                   help=f"temperatures, log-spaced (40; at most {MAX_POINTS})")
    o.add_argument("--freq", type=FREQUENCY, default=1e3, help="Q^-1 frequency in Hz (1e3)")
    o.add_argument("--overwrite", action="store_true",
                   help="allow replacing files in --out that tlsjax did not write")
    _add_material(o)
    _add_model(o, allow_constant=False)
    o.set_defaults(func=run_observables)


def material_from_args(args) -> Material:
    return Material(args.rho, args.vl, args.vt, gamma_ratio=args.gamma_ratio,
                    gamma_t=args.gamma_t, rayleigh=args.rayleigh, boundary=args.boundary)


def params_from_args(args) -> ModelParams:
    return ModelParams(g=args.g, J0=args.J0, atilde=args.atilde, h_rel=args.h_rel,
                       kappa_log=args.kappa_log)


def stau_from_args(args) -> StauTLS:
    params = params_from_args(args)
    dos = stau_dos(params, Sample(args.x, args.cells), seed_key("stau_dos", "seed", args.seed),
                   realizations=args.realizations)
    return StauTLS(dos, params)


def tls_from_args(args) -> tuple[AbstractTLS, dict]:
    resolve_model_args(args)
    if getattr(args, "constant_C", None) is not None:
        return ConstantC(args.constant_C), dict(model="constant C", C=args.constant_C)
    tls = stau_from_args(args)
    desc = dict(model="S-tau", g=args.g, J0_K=args.J0, atilde=args.atilde, h_rel=args.h_rel,
                kappa_log=args.kappa_log,
                dos_sample=dict(x=args.x, cells=args.cells, realizations=args.realizations,
                                seed=args.seed))
    return tls, desc


def _material_desc(args) -> dict:
    return dict(rho=args.rho, v_l=args.vl, v_t=args.vt, gamma_ratio=args.gamma_ratio,
                gamma_t_eV=args.gamma_t, rayleigh=args.rayleigh,
                boundary_m=args.boundary if math.isfinite(args.boundary) else None)


def _check_json(args) -> None:
    """Check --json before computing."""
    if args.json:
        args.result_id = command_run_id(args)  # the settings as given, before defaults
        check_output_path(args.json, args.overwrite, run=args.result_id, what="--json")


def _finish(args, out: dict, header: str, columns: list[str]) -> int:
    out["energy_convention"] = energy_convention("local_field")
    if args.json:
        write_json(args.json, out, overwrite=args.overwrite, run=args.result_id)
    print(header)
    print("  ".join(f"{c:>14s}" for c in columns))
    for row in zip(*(out[c] for c in columns)):
        print("  ".join(f"{v:14.6g}" for v in row))
    if args.json:
        print(f"wrote {args.json}")
    return 0


def run_kappa(args) -> int:
    _check_json(args)
    T = check_temperatures("kappa", args.T)
    material = material_from_args(args)
    tls, desc = tls_from_args(args)
    kappa = np.asarray(jax.jit(thermal_conductivity)(tls, material, T))
    require_finite("kappa", kappa=kappa)
    out = dict(T=T.tolist(), kappa=kappa.tolist(), units=dict(T="K", kappa="W/(m K)"),
               material=_material_desc(args), **desc)
    return _finish(args, out, f"kappa(T), {desc['model']}", ["T", "kappa"])


def run_qinv(args) -> int:
    _check_json(args)
    T = check_temperatures("qinv", args.T)
    check_freq("qinv", args.freq)
    material = material_from_args(args)
    tls, desc = tls_from_args(args)
    omega = np.asarray([2.0 * math.pi * args.freq])
    res = np.asarray(qinv_resonant(tls, material, T, omega,
                                   polarization=args.polarization))[:, 0]
    rel = np.asarray(jax.jit(qinv_relaxation, static_argnames="polarization")(
        tls, material, T, omega, polarization=args.polarization))[:, 0]
    require_finite("qinv", Qinv_res=res, Qinv_rel=rel)
    out = dict(T=T.tolist(), Qinv=(res + rel).tolist(), Qinv_res=res.tolist(),
               Qinv_rel=rel.tolist(), freq_Hz=args.freq, polarization=args.polarization,
               units=dict(T="K"), material=_material_desc(args), **desc)
    return _finish(args, out, f"Q^-1(T) at {args.freq:g} Hz, {desc['model']}",
                   ["T", "Qinv", "Qinv_res", "Qinv_rel"])


def compute_observables(tls: StauTLS, material: Material, T, freq: float) -> dict:
    """Everything the observables figure shows, for the S-tau model and for the plain
    model with the constant C_o = C(E -> 0) of the same S-tau model; the crossovers also
    with the hard Theta (`T_U_*_hard`: the paper's step function on the same
    realizations), beside the soft ones the model uses."""
    T = jnp.asarray(T)
    omega = jnp.asarray([2.0 * math.pi * freq])
    cross = crossover(tls)
    cross_hard = crossover(StauTLS(tls.dos.hard(), tls.params))
    c0 = tls.tunneling_strength(jnp.asarray([1e-6 * float(cross.full)]))[0]
    plain = ConstantC(c0)
    kap = jax.jit(thermal_conductivity)
    q_res = jax.jit(qinv_resonant)
    q_rel = jax.jit(qinv_relaxation)
    omega_th = THERMAL_X * K_B * T / HBAR
    out = dict(T=T, omega_thermal=omega_th)
    for name, model in (("stau", tls), ("plain", plain)):
        out[f"kappa_{name}"] = kap(model, material, T)
        out[f"Qinv_res_{name}"] = q_res(model, material, T, omega)[:, 0]
        out[f"Qinv_rel_{name}"] = q_rel(model, material, T, omega)[:, 0]
        out[f"Qinv_{name}"] = out[f"Qinv_res_{name}"] + out[f"Qinv_rel_{name}"]
        out[f"l_over_lambda_{name}"] = jnp.diagonal(
            mfp_over_wavelength(model, material, T, omega_th))
    # C(E) around T_U; T_U = 0 (no gap) falls back on the scale <E_tau>
    e_lo = float(cross.full) if float(cross.full) > 0 else float(cross.e_tau)
    e_hi = float(cross.shortcut) if float(cross.shortcut) > 0 else float(cross.e_tau)
    energies = jnp.geomspace(1e-3 * e_lo, 100.0 * e_hi, 80)
    parts = tls.strength_parts(energies)
    out.update(E=energies, C_tau=parts[0], C_S=parts[1], C=parts[0] + parts[1],
               C0=c0, T_U_full=cross.full, T_U_shortcut=cross.shortcut, E_tau=cross.e_tau,
               T_U_full_hard=cross_hard.full, T_U_shortcut_hard=cross_hard.shortcut)
    return {k: np.asarray(v) for k, v in out.items()}


def flatness_below(T, kappa, T_max) -> float | None:
    """max |kappa / T^2 / (kappa / T^2 at the lowest T) - 1| over T <= T_max (None if
    fewer than two temperatures lie below T_max: nothing to compare)."""
    r = kappa / T**2
    sel = T <= T_max
    return float(np.max(np.abs(r[sel] / r[0] - 1.0))) if np.sum(sel) >= 2 else None


def run_observables(args) -> int:
    if not (0 < args.T_min < args.T_max) or not math.isfinite(args.T_max):
        raise ValueError("`observables(T_min=..., T_max=...)` must satisfy 0 < T_min < T_max")
    check_temperatures("observables", [args.T_min, args.T_max])
    check_int("observables", "points", args.points, 2, MAX_POINTS)
    check_freq("observables", args.freq)
    out = OutputDir(args.out, overwrite=args.overwrite, expect=OBSERVABLES_FILES,
                    group="observables")
    material = material_from_args(args)
    tls, desc = tls_from_args(args)
    T = np.geomspace(args.T_min, args.T_max, args.points)
    res = compute_observables(tls, material, T, args.freq)
    require_finite("observables", **{k: res[k] for k in (
        "kappa_stau", "kappa_plain", "Qinv_stau", "Qinv_plain", "l_over_lambda_stau",
        "l_over_lambda_plain", "T_U_full", "T_U_shortcut")})
    with out:
        summary = _write_observables(args, out, tls, desc, T, res)
    _print_observables(args, summary)
    print(f"wrote {len(out.written)} files to {out.root}/")
    return 0


#: The files `tlsjax observables` writes.
OBSERVABLES_FILES = ("observables_T.csv", "c_of_e.csv", "observables.json", "observables.png")


def _write_observables(args, out, tls, desc, T, res) -> dict:
    from ..plot._plot_observables import plot_observables

    tu_full, tu_short = float(res["T_U_full"]), float(res["T_U_shortcut"])
    tu_full_h, tu_short_h = float(res["T_U_full_hard"]), float(res["T_U_shortcut_hard"])
    kappa_s = res["kappa_stau"]
    summary = dict(
        **desc, material=_material_desc(args), freq_Hz=args.freq,
        energy_convention=energy_convention("local_field"),
        T_U_full_K=tu_full, T_U_shortcut_K=tu_short, E_tau_K=float(res["E_tau"]),
        T_U_full_over_E_tau=tu_full / float(res["E_tau"]),
        T_U_shortcut_over_E_tau=tu_short / float(res["E_tau"]),
        soft_theta_width=float(tls.dos.width),
        T_U_full_hard_K=tu_full_h, T_U_shortcut_hard_K=tu_short_h,
        T_U_hard_note="hard Theta (the paper's step function) on the same realizations; "
                      "the soft width is a regularization and moves T_U",
        C0=float(res["C0"]), kappa_log_g=args.kappa_log * args.g,
        C_at_10_T_U_shortcut=float(np.asarray(tls.tunneling_strength(
            jnp.asarray([10.0 * tu_short])))[0]),
        kappa_over_T2_flatness_below_T_U_full=flatness_below(T, kappa_s, tu_full),
        kappa_over_T2_flatness_below_half_T_U_full=flatness_below(T, kappa_s, 0.5 * tu_full),
        kappa_ratio_stau_to_plain_at_T_max=float(kappa_s[-1] / res["kappa_plain"][-1]),
        Qinv_stau_at_T_max=float(res["Qinv_stau"][-1]),
        l_over_lambda_at_T_min=float(res["l_over_lambda_stau"][0]),
        l_over_lambda_note=f"thermal phonon hbar omega = {THERMAL_X:g} k_B T, transverse",
    )
    cols = ["T", "kappa_stau", "kappa_plain", "Qinv_stau", "Qinv_res_stau", "Qinv_rel_stau",
            "Qinv_plain", "l_over_lambda_stau", "l_over_lambda_plain"]
    out.csv("observables_T.csv", cols,
            [[float(res[c][i]) for c in cols] for i in range(len(T))])
    out.csv("c_of_e.csv", ["E_K", "C", "C_tau", "C_S"],
            [[float(res[c][i]) for c in ("E", "C", "C_tau", "C_S")]
             for i in range(len(res["E"]))])
    out.json("observables.json", dict(summary=summary, **{
        k: v for k, v in res.items() if v.ndim == 1}))
    plot_observables(res, dict(desc, material=_material_desc(args), freq_Hz=args.freq),
                     out.path("observables.png"))
    return summary


def _print_observables(args, summary) -> None:
    tu_full, tu_short = summary["T_U_full_K"], summary["T_U_shortcut_K"]
    print(f"S-tau model g={args.g:g} J0={args.J0:g} K a~={args.atilde:g} "
          f"kappa_log={args.kappa_log:g}; material rho={args.rho:g} vl={args.vl:g} "
          f"vt={args.vt:g}")
    print(f"  {convention_line('local_field')}")
    print(f"  T_U (g phi_tau = P_S phi_S) = {tu_full:.4g} K = "
          f"{summary['T_U_full_over_E_tau']:.3f} <E_tau>; T_U (P_S = 5g) = {tu_short:.4g} K = "
          f"{summary['T_U_shortcut_over_E_tau']:.3f} <E_tau>; <E_tau> = "
          f"{summary['E_tau_K']:.4g} K")
    print(f"  (soft Theta, w = {summary['soft_theta_width']:g} <E_tau>; hard Theta on the same "
          f"realizations: T_U = {summary['T_U_full_hard_K']:.4g} K (full), "
          f"{summary['T_U_shortcut_hard_K']:.4g} K (P_S = 5g))")
    if tu_full == 0.0 or tu_short == 0.0:
        print("  T_U = 0 means no gap: the S TLSs dominate C(E) already as E -> 0 (strong "
              "random fields); there is no universal regime below a crossover")
    print(f"  C(E -> 0) = {summary['C0']:.4g} (kappa_log g = {summary['kappa_log_g']:.4g}); "
          f"C(10 T_U) = {summary['C_at_10_T_U_shortcut']:.4g}")
    flat = summary["kappa_over_T2_flatness_below_T_U_full"]
    flat_text = (f"within {100 * flat:.2f}%" if flat is not None else
                 f"n/a (fewer than two temperatures below T_U = {tu_full:.3g} K)")
    print(f"  kappa/T^2 flat below T_U(full) {flat_text}; "
          f"kappa(S-tau)/kappa(plain) at {args.T_max:g} K = "
          f"{summary['kappa_ratio_stau_to_plain_at_T_max']:.3g}")
