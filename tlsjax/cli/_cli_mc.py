"""`tlsjax mc`: Monte Carlo of the full Hamiltonian (Eq. 1) against the ES shortcut."""

from __future__ import annotations

import math

import jax
import numpy as np

from .._convention import MC_CONVENTION, convention_line
from .._io import check_output_path, run_id, write_json
from .._validate import check_int, seed_key
from ..model._hamiltonian import DEFAULT_DENSE_BYTES, HamiltonianParams
from ..model._lattice import Sample
from ..model._mc_kernel import KERNELS
from ..model._mc_run import BATCHES, MCConfig
from ..model._params import DEFAULT_ATILDE, DEFAULT_G, DEFAULT_J0_K
from ..studies._mc_study import DEFAULT_E_BAR, DUMP_MAX_SITES, check_dump_size, run_mc_study
from ..studies._reproduce import LATTICES
from ._args import (
    ATILDE,
    BYTES_MAX,
    CELLS,
    DEVICES,
    G_CROSSOVER,
    KELVIN_MAX,
    OCCUPATION,
    RATIO_MAX,
    SEED,
    integer,
    positive,
    real,
    reals,
)
from ._cli_es import _complete_result_of
from ._main import ListAction

_DEFAULT = MCConfig()


def register(sub) -> None:
    p = sub.add_parser(
        "mc", help="Monte Carlo of the full Hamiltonian (Eq. 1): Fig. 2 a DOS, P_S vs the ES "
        "shortcut", description="Anneals, tempers and descends Eq. 1 (S-S, S-tau, tau-tau "
        "couplings and both fields; docs/conventions.md section 6) on disorder realizations and measures "
        "the lowest state found: n_S(E), n_tau(E) and the mean-field n_S^o, n_tau^o (per "
        "impurity per K), P_S(E) by the ES estimator on the state (b) and by the DOS ratio "
        "n_S(E)/n_S(E-bar) (a) against the ES reduction of the same realization, T_U/<E_tau>, "
        "n_tau/n_tau^o against Eq. B5, energies and unstable-spin counts.")
    p.add_argument("--x", type=OCCUPATION, default=0.2, help="occupation in (0, 1] (default 0.2)")
    p.add_argument("--cells", type=CELLS, default=10,
                   help="cubic cells per edge L >= 2 (default 10, ~800 impurities; paper: 18)")
    p.add_argument("--lattice", choices=sorted(LATTICES), default="fcc")
    p.add_argument("--atilde", type=ATILDE, default=DEFAULT_ATILDE,
                   help="cutoff a~ >= 0 in units of a_o (default 3)")
    p.add_argument("--g", type=G_CROSSOVER, default=DEFAULT_G, help="g (default 0.02)")
    p.add_argument("--J0", type=positive(KELVIN_MAX), default=DEFAULT_J0_K, help="J_o in K (default 500)")
    p.add_argument("--h-S", type=real(0.0, RATIO_MAX), default=0.0, dest="h_S",
                   help="width of the fields h^S in units of J_o (>= 0, default 0)")
    p.add_argument("--h-tau", type=real(0.0, RATIO_MAX), default=0.0, dest="h_tau",
                   help="width of the fields h^tau in units of g J_o (>= 0, default 0)")
    p.add_argument("--realizations", type=integer(1), default=4, help="disorder realizations (4)")
    p.add_argument("--seed", type=SEED, default=0, help="PRNG seed in [0, 2^64 - 1] (0)")
    m = p.add_argument_group("Monte Carlo (temperatures in K)")
    m.add_argument("--ladder", type=reals(0.0, KELVIN_MAX, lo_open=True), nargs="+",
                   action=ListAction, default=None,
                   help="tempering temperatures, strictly decreasing, e.g. 500,100,10,1 or "
                   "\"500 100 10 1\" (default: geometric from --t-max to --t-min)")
    m.add_argument("--temperatures", type=integer(1, 4096), default=_DEFAULT.temperatures,
                   help=f"rungs of the default ladder ({_DEFAULT.temperatures})")
    m.add_argument("--t-max", type=positive(KELVIN_MAX), default=None, dest="t_max",
                   help="top of the default ladder and start of the annealing (default J_o)")
    m.add_argument("--t-min", type=positive(KELVIN_MAX), default=None, dest="t_min",
                   help="bottom of the default ladder (default g^2 J_o / 10)")
    m.add_argument("--chains", type=integer(1), default=_DEFAULT.chains,
                   help="independent tempering chains (replicas = chains x rungs)")
    m.add_argument("--anneal-sweeps", type=integer(0), default=_DEFAULT.anneal_sweeps,
                   dest="anneal_sweeps", help=f"annealing sweeps ({_DEFAULT.anneal_sweeps})")
    m.add_argument("--sweeps", type=integer(0), default=_DEFAULT.sweeps,
                   help=f"parallel-tempering sweeps ({_DEFAULT.sweeps})")
    m.add_argument("--swap-every", type=integer(1), default=_DEFAULT.swap_every, dest="swap_every")
    m.add_argument("--block-size", type=integer(1), default=_DEFAULT.block_size, dest="block_size",
                   help=f"delayed-update block; the capacity is padded to a multiple of it "
                   f"({_DEFAULT.block_size})")
    m.add_argument("--descent-rounds", type=integer(1), default=_DEFAULT.descent_rounds,
                   dest="descent_rounds", help="most pair-flip rounds of the final descent")
    m.add_argument("--kernel", choices=KERNELS, default="auto",
                   help="how a block's sequential attempts run: the fused Pallas kernel "
                   "(pallas), the XLA scan (xla) or auto (default: pallas on a GPU, xla "
                   "elsewhere); the same spins either way")
    m.add_argument("--batch", choices=BATCHES, default="auto",
                   help="realizations one after another on each device (map) or all in one "
                   "program (vmap); auto (default): map on CPUs, vmap on accelerators")
    m.add_argument("--max-dense-bytes", type=integer(0, BYTES_MAX), default=DEFAULT_DENSE_BYTES,
                   dest="max_dense_bytes",
                   help="store the coupling matrix while it fits this many bytes (1 GiB)")
    q = p.add_argument_group("measurements")
    q.add_argument("--energies", type=reals(0.0, RATIO_MAX, lo_open=True), nargs="+",
                   action=ListAction, default=None,
                   help="P_S grid in units of <E_tau> (default: 61 log-spaced, 0.01-10)")
    q.add_argument("--e-bar", type=positive(RATIO_MAX), default=DEFAULT_E_BAR, dest="e_bar",
                   help=f"E-bar of the DOS-ratio estimator in units of g J_o, flip energies "
                   f"(default {DEFAULT_E_BAR:g})")
    q.add_argument("--mf-configs", type=integer(1), default=4, dest="mf_configs",
                   help="random configurations per realization for the mean-field DOS (4)")
    p.add_argument("--devices", type=DEVICES, default=None,
                   help="devices to split realizations over (default: all of jax.devices())")
    p.add_argument("--json", default=None, metavar="PATH",
                   help="write the result as JSON (after Ctrl-C: the finished realizations, "
                   "marked \"partial\": true)")
    p.add_argument("--dump-state", action="store_true", dest="dump_state",
                   help=f"add realization 0's lowest state and its couplings (N x N, K) to the "
                   f"JSON; samples of at most {DUMP_MAX_SITES} impurities")
    p.add_argument("--overwrite", action="store_true",
                   help="allow replacing --json PATH if another program or run wrote it")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_mc_cli)


def _settings(args) -> dict:
    return {k: getattr(args, k) for k in (
        "x", "cells", "lattice", "atilde", "g", "J0", "h_S", "h_tau", "realizations", "seed",
        "ladder", "temperatures", "t_max", "t_min", "chains", "anneal_sweeps", "sweeps",
        "swap_every", "block_size", "descent_rounds", "energies", "e_bar", "mf_configs",
        "dump_state")}


def _inputs(args):
    """Every input validated (ValueError naming it) before any output is checked or work done."""
    sample = Sample(args.x, lattice=LATTICES[args.lattice](check_int("mc", "cells", args.cells, 2)))
    params = HamiltonianParams(g=args.g, J0=args.J0, atilde=args.atilde, h_S=args.h_S,
                               h_tau=args.h_tau)
    config = MCConfig(ladder=None if args.ladder is None else tuple(args.ladder),
                      temperatures=args.temperatures, t_max=args.t_max, t_min=args.t_min,
                      chains=args.chains, anneal_sweeps=args.anneal_sweeps, sweeps=args.sweeps,
                      swap_every=args.swap_every, block_size=args.block_size,
                      descent_rounds=args.descent_rounds, kernel=args.kernel)
    config.ladder_for(args.g, args.J0)  # t_min < t_max with the defaults filled in
    check_int("mc", "realizations", args.realizations, 1)
    check_int("mc", "max_dense_bytes", args.max_dense_bytes, 0)
    keys = jax.random.split(seed_key("mc", "seed", args.seed), args.realizations)
    if args.dump_state:
        check_dump_size(sample)
    return sample, params, config, keys


def run_mc_cli(args) -> int:
    sample, params, config, keys = _inputs(args)
    rid = run_id(dict(command="mc", **_settings(args)))
    if args.json:  # before computing
        check_output_path(args.json, args.overwrite, run=rid, what="--json")
    st = run_mc_study(sample, params, keys, config, energies=args.energies, e_bar=args.e_bar,
                      mf_configs=args.mf_configs, dump_state_of_first=args.dump_state,
                      devices=args.devices, vmap_size=args.batch,
                      max_dense_bytes=args.max_dense_bytes,
                      progress=not args.no_progress)
    if st.realizations == 0:
        print(f"INTERRUPTED before the first of {st.requested} realizations was annealed, "
              "tempered and measured: nothing written")
        raise KeyboardInterrupt
    out = dict(command="tlsjax mc", seed=args.seed, energy_convention=MC_CONVENTION,
               **st.to_json())
    keep = st.interrupted and args.json and _complete_result_of(args.json, rid)
    print(summary_lines(st, out))
    if args.json and not keep:  # after the printout: a failing write loses nothing shown
        write_json(args.json, out, overwrite=args.overwrite, run=rid,
                   indent=None if args.dump_state else 2)
    if keep:
        print(f"kept {args.json}: it holds the complete result of this command")
    elif args.json:
        print(f"wrote {args.json}" + (" (partial)" if st.interrupted else ""))
    if st.interrupted:
        print(f"INTERRUPTED after {st.realizations} of {st.requested} realizations: the "
              "numbers above are partial" + (f"; {args.json} is marked \"partial\": true"
                                             if args.json and not keep else ""))
        raise KeyboardInterrupt
    return 0


def _pm(mean, se, fmt=".3f") -> str:
    se = float(se)
    return f"{float(mean):{fmt}} ± {se:{fmt}}" if np.isfinite(se) else f"{float(mean):{fmt}}"


def summary_lines(st, out: dict) -> str:
    """A few lines of `tlsjax mc`'s result for the terminal."""
    g, j0 = st.g, st.J0
    tu, ps, u = out["T_U_over_E_tau"], out["P_S"], out["unstable"]
    ex = out["gap_exponent"]
    dos = out["dos"]
    def below_gj0(name):
        return np.interp(np.log(g * j0), np.log(dos["energies_K"]), dos[name])

    lines = [
        f"tlsjax mc: {st.lattice} x={st.x:g} L={st.cells}, <N> = {out['n_sites_mean']:.1f} "
        f"impurities, {st.realizations} realizations; g = {g:g}, J_o = {j0:g} K, a~ = "
        f"{out['atilde']:g}, h_S = {out['h_S']:g} J_o, h_tau = {out['h_tau']:g} g J_o",
        f"  lowest energy per spin {_pm(out['energy_per_spin_mean'], out['energy_per_spin_stderr'], '.3f')}"
        f" K; unstable spins in the measured states: {u['single']} single, {u['pair']} pair",
        f"  T_U/<E_tau> (P_S = 5 g): full model (ES estimator on the state) "
        f"{_pm(tu['mc'], tu['mc_stderr'])}, ES shortcut {_pm(tu['es'], tu['es_stderr'])}",
        f"  <E_tau>: {ps['E_tau_mean_K']['mc']:.3f} K (flip energies of the state), "
        f"{ps['E_tau_mean_K']['es']:.3f} K (ES, local fields); E-bar = {ps['E_bar_K']:.3g} K "
        f"({ps['E_bar_over_gJ0']:g} g J_o), P_S(b) there {ps['P_S_mc_at_E_bar']:.3f}",
        f"  gap exponent (slope of P_S, 1e-3 < P_S < 0.1; jackknife errors): estimator b "
        f"{_slope(ex, 'mc')}, DOS ratio {_slope(ex, 'mc_dos')}, ES {_slope(ex, 'es')}",
        f"  S spins with eps < g J_o: {below_gj0('cumulative_S'):.2e} per impurity (mean field "
        f"{below_gj0('cumulative_S_mf'):.2e}); tau spins: {below_gj0('cumulative_tau'):.3f} "
        f"(mean field {below_gj0('cumulative_tau_mf'):.3f})",
        f"  {convention_line('both')}",
        f"  time {st.seconds.get('total', 0.0):.1f} s",
    ]
    no_gap = int(np.sum(np.asarray(tu["mc_per_realization"]) <= 0.0))
    if no_gap:
        lines.insert(3, f"  full model: T_U = 0 in {no_gap} of {st.realizations} realizations "
                     "(P_S(0+) >= 5 g, no gap)")
    warning = small_sample_warning(st, out)
    return "\n".join(lines + ([warning] if warning else []))


#: S spins below E-bar (all realizations together) that T_U and the gap exponent of the
#: Monte Carlo need to mean something: fewer, and the 5 g quantile rests on a handful.
MIN_S_BELOW_E_BAR = 100


def small_sample_warning(st, out: dict) -> str | None:
    """A warning line when the sample is too small for T_U from the Monte Carlo."""
    per_realization = float(out["P_S"]["P_S_mc_at_E_bar"]) * float(out["n_sites_mean"])
    total = per_realization * st.realizations
    if total >= MIN_S_BELOW_E_BAR:
        return None
    need = (f"about {math.ceil(MIN_S_BELOW_E_BAR / per_realization)} realizations of this size, "
            "or more cells" if per_realization > 0 else "more cells")
    return (f"  WARNING: only {total:.0f} S spins below E-bar in all {st.realizations} "
            f"realizations together; T_U and the gap exponent of the Monte Carlo need at least "
            f"~{MIN_S_BELOW_E_BAR} to mean more than their order of magnitude: use {need}")


def _slope(exponents: dict, name: str) -> str:
    value = float(exponents[name])
    return _pm(value, exponents[f"{name}_stderr"], ".2f") if np.isfinite(value) \
        else "not enough counts"
