"""Benchmark of the Monte Carlo of the full Hamiltonian (Eq. 1) against plain NumPy.

Cases, each in a fresh subprocess (so that peak memory, max RSS, is its own):

1. `throughput` (per L = 6, 10, 14, 18; fcc, x = 0.2): spin-flip attempts per second
   and accepted flips per second of `tlsjax.metropolis` (blocked delayed updates, K
   stored) for R = 1, 4, 16, 64 replicas at the temperatures of a geometric ladder
   from J_o to g^2 J_o / 10 (R = 1: the bottom one), against `_numpy_mc.py` (the same
   sequential single-spin Metropolis, vectorized over replicas, rank-one field
   updates for the replicas that flip) on the same K (float32), the same starting
   states and temperatures, in the same process. Both start from states annealed for
   a few sweeps, so acceptance rates are those of a run in progress. As a check, one
   sweep with identical thresholds must give identical spins in both.
2. `paper`: one paper-size realization (x = 0.2, L = 18, ~9400 spins) through the
   default pipeline `tlsjax.run_mc` (anneal, temper, descend), timed end to end
   (Hamiltonian, compilation and all), with the energies and stability counts reached.
3. `big`: N ~ 2e4 impurities (L = 29, ~3.9e4 spins), rows generated on the fly
   (K would be 6 GB): a few sweeps of 16 replicas and one pair-stability scan;
   peak RSS (goal < 4 GB).
4. `convergence` (`--convergence`): the lowest energy per spin reached vs the number
   of annealing sweeps (L = 10, 2 realizations), which sets the defaults.

    python experiments/bench_mc.py [--quick] [--convergence] [--json bench_mc.json]
    python experiments/bench_mc.py --case convergence --cells 10 --repeats 1 [--json FILE]

Timings on a shared machine are indicative only (the 2 cores may be loaded by other
work); the load average at the start and end is recorded, and the throughput case also
reports the ratio of process CPU times (attempts per CPU-second), which load affects less
than wall time (on an idle machine the wall-time ratio also gains JAX's use of both cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _bench_common import peak_mb, run_case  # noqa: E402

REPLICAS = (1, 4, 16, 64)
#: The in-block kernel of the Monte Carlo cases ("auto", "xla", "pallas"; `--kernel`).
KERNEL = "auto"
#: Most timed sweeps per replica count in the throughput case (`--max-sweeps`).
MAX_SWEEPS = 500


def _ladder(r: int):
    import tlsjax as tj

    return tj.MCConfig(temperatures=r).ladder_for(0.02, 500.0)


def case_throughput(cells: int, repeats: int, replicas=REPLICAS) -> dict:
    import jax
    import numpy as np
    from _numpy_mc import numpy_metropolis, numpy_sweep

    import tlsjax as tj
    from tlsjax.model._mc_kernel import resolve_kernel

    sample = tj.Sample(0.2, cells=cells)
    ham = jax.jit(lambda k: tj.hamiltonian(sample, tj.HamiltonianParams(), k))(jax.random.key(0))
    n_spins = 2 * int(ham.n_sites)
    k_np = np.asarray(ham.dense())
    h_np = np.asarray(ham.h)
    movable = np.asarray(ham.mask)
    sweeps_jit = jax.jit(lambda h, st, k: tj.metropolis(h, st, k, kernel=KERNEL))
    sweep_jit = jax.jit(lambda *a: tj.model._mc.sweep(*a, ham.block_size, kernel=KERNEL))
    out = []
    for r in replicas:
        temps = _ladder(r)
        work = r * float(ham.size) ** 2  # multiply-adds of one sweep's field updates
        sweeps = int(min(MAX_SWEEPS, max(3, repeats * 5e9 / work)))
        state = tj.init_state(ham, jax.random.key(1), temps)
        state = jax.block_until_ready(sweeps_jit(ham, state, sweeps))  # compile + warm start
        # identical thresholds -> identical sweeps (correctness of the baseline)
        thr = temps[:, None] * jax.random.exponential(jax.random.key(2), state.spins.shape)
        s_jax, _ = sweep_jit(ham, state.spins, state.fields, thr, ham.mask)
        s_np, f_np = np.array(state.spins), np.array(state.fields)
        numpy_sweep(k_np, s_np, f_np, np.asarray(thr, k_np.dtype), movable)
        agree = float(np.mean(np.asarray(s_jax) == s_np))
        acc0 = np.asarray(state.accepted).sum()
        t, c = time.perf_counter(), time.process_time()
        end = jax.block_until_ready(sweeps_jit(ham, state, sweeps))
        t_jax, c_jax = time.perf_counter() - t, time.process_time() - c
        acc_jax = int(np.asarray(end.accepted).sum() - acc0)
        np_sweeps = int(min(sweeps, max(1, repeats * 1e9 / work)))
        spins = np.array(state.spins)
        t, c = time.perf_counter(), time.process_time()
        acc_np = numpy_metropolis(k_np, h_np, spins, np.asarray(temps), np_sweeps, movable,
                                  np.random.default_rng(0))
        t_np, c_np = time.perf_counter() - t, time.process_time() - c
        att_jax, att_np = sweeps * r * n_spins, np_sweeps * r * n_spins
        out.append(dict(replicas=r, sweeps=sweeps, numpy_sweeps=np_sweeps,
                        attempts_per_s=att_jax / t_jax, accepted_per_s=acc_jax / t_jax,
                        acceptance=acc_jax / att_jax, numpy_attempts_per_s=att_np / t_np,
                        numpy_accepted_per_s=acc_np / t_np, numpy_acceptance=acc_np / att_np,
                        ms_per_sweep=1e3 * t_jax / sweeps, numpy_ms_per_sweep=1e3 * t_np / np_sweeps,
                        speedup=(att_jax / t_jax) / (att_np / t_np),
                        cpu_seconds_per_sweep=c_jax / sweeps, numpy_cpu_seconds_per_sweep=c_np / np_sweeps,
                        speedup_cpu=(att_jax / c_jax) / (att_np / c_np), identical_sweep=agree))
    return dict(cells=cells, n_sites=int(ham.n_sites), n_spins=n_spins, capacity=ham.n,
                dtype=str(ham.h.dtype), backend=jax.default_backend(),
                kernel=resolve_kernel(KERNEL), rows=out, peak_rss_mb=peak_mb())


def case_paper(cells: int, repeats: int) -> dict:
    import jax
    import numpy as np

    import tlsjax as tj

    t = time.perf_counter()
    config = tj.MCConfig(kernel=KERNEL)
    res = tj.run_mc(tj.Sample(0.2, cells=cells), tj.HamiltonianParams(), jax.random.key(0)[None],
                    config, progress=False)
    total = time.perf_counter() - t
    n_spins = 2 * int(res.n_sites[0])
    order = np.argsort(res.temperatures[0])  # coldest replica first
    return dict(cells=cells, n_sites=int(res.n_sites[0]), n_spins=n_spins, seconds=total,
                stage_seconds=dict(res.seconds), anneal_sweeps=config.anneal_sweeps,
                sweeps=config.sweeps, replicas=int(res.spins.shape[1]),
                ladder=res.ladder.tolist(),
                energy_per_spin=(res.energies[0][order] / n_spins).tolist(),
                lowest_energy_per_spin=float(res.lowest_energy[0] / n_spins),
                before_single=res.before.single[0][order].tolist(),
                before_pair=res.before.pair[0][order].tolist(),
                after_single=int(res.after.single.sum()), after_pair=int(res.after.pair.sum()),
                descent_rounds=int(res.descent.rounds[0]),
                pair_flips=res.descent.pair_flips[0][order].tolist(),
                single_flips=res.descent.single_flips[0][order].tolist(),
                swap_acceptance=np.asarray(res.swaps.acceptance[0]).tolist(),
                metropolis_acceptance=(res.accepted[0][order] / (
                    n_spins * (config.anneal_sweeps + config.sweeps))).tolist(),
                tol=float(res.tol), peak_rss_mb=peak_mb())


def case_big(cells: int, repeats: int) -> dict:
    import jax
    import numpy as np

    import tlsjax as tj

    sample = tj.Sample(0.2, cells=cells)
    t = time.perf_counter()
    ham = jax.block_until_ready(jax.jit(lambda k: tj.hamiltonian(sample, tj.HamiltonianParams(), k))(
        jax.random.key(0)))
    build = time.perf_counter() - t
    temps = _ladder(16)
    state = tj.init_state(ham, jax.random.key(1), temps)
    run = jax.jit(lambda h, st, k: tj.metropolis(h, st, k, kernel=KERNEL))
    sweeps = max(1, repeats)
    state = jax.block_until_ready(run(ham, state, sweeps))  # compile
    t = time.perf_counter()
    state = jax.block_until_ready(run(ham, state, sweeps))
    t_sweeps = time.perf_counter() - t
    t = time.perf_counter()
    stab = jax.block_until_ready(jax.jit(tj.stability)(ham, state.spins, state.fields))
    t_scan = time.perf_counter() - t
    n_spins = 2 * int(ham.n_sites)
    return dict(cells=cells, n_sites=int(ham.n_sites), n_spins=n_spins, stored=ham.matrix is not None,
                dense_gb=ham.dense_bytes / 1e9, build_seconds=build, sweeps=sweeps,
                ms_per_sweep=1e3 * t_sweeps / sweeps,
                attempts_per_s=sweeps * 16 * n_spins / t_sweeps,
                pair_scan_seconds=t_scan, pair_unstable=int(np.asarray(stab.pair).sum()),
                peak_rss_mb=peak_mb())


def case_convergence(cells: int, repeats: int, lengths=(100, 400, 1600, 3200)) -> dict:
    import jax

    import tlsjax as tj

    sample = tj.Sample(0.2, cells=cells)
    keys = jax.random.split(jax.random.key(0), 2)
    rows = []
    for a in lengths:
        t = time.perf_counter()
        res = tj.run_mc(sample, tj.HamiltonianParams(), keys, tj.MCConfig(anneal_sweeps=a, sweeps=200))
        n_spins = 2 * res.n_sites
        rows.append(dict(anneal_sweeps=a, sweeps=200, seconds=time.perf_counter() - t,
                         lowest_energy_per_spin=(res.lowest_energy / n_spins).tolist(),
                         pair_unstable_before=res.before.pair.sum(axis=(1, 2)).tolist(),
                         pair_flips=res.descent.pair_flips.sum(axis=1).tolist()))
    return dict(cells=cells, rows=rows)


CASES = dict(throughput=case_throughput, paper=case_paper, big=case_big,
             convergence=case_convergence)


def _load() -> list[float]:
    return list(os.getloadavg())


def build_parser() -> argparse.ArgumentParser:
    from tlsjax.cli._args import CELLS, finish_parser, integer
    from tlsjax.cli._main import Parser

    ap = Parser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", choices=sorted(CASES))
    ap.add_argument("--cells", type=CELLS, default=18)
    ap.add_argument("--repeats", type=integer(1, 1000), default=3)
    ap.add_argument("--quick", action="store_true", help="small sizes only")
    ap.add_argument("--convergence", action="store_true", help="also the annealing-length scan")
    ap.add_argument("--skip-paper", action="store_true")
    ap.add_argument("--kernel", choices=("auto", "xla", "pallas"), default="auto",
                    help="the Monte Carlo's in-block kernel (auto: pallas on GPUs, xla elsewhere)")
    ap.add_argument("--max-sweeps", type=integer(3, 100000), default=MAX_SWEEPS, dest="max_sweeps",
                    help="most timed sweeps per replica count (throughput case)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--overwrite", action="store_true", help="allow replacing --json")
    return finish_parser(ap)


def main(argv=None) -> None:
    global KERNEL, MAX_SWEEPS
    ap = build_parser()
    args = ap.parse_args(argv)
    KERNEL, MAX_SWEEPS = args.kernel, args.max_sweeps
    if args.json:
        run = ap.run_id(args)
        json_path = ap.check_output(args.json, args.overwrite, what="--json", run=run)
    if args.case:  # one case (a child process of the full run); --json writes it too
        result = CASES[args.case](args.cells, args.repeats)
        print(json.dumps(result))
        if args.json:
            from tlsjax._io import write_json

            write_json(json_path, result, overwrite=args.overwrite, run=run, indent=1)
        return

    me = str(Path(__file__).resolve())
    kx = ["--kernel", args.kernel, "--max-sweeps", str(MAX_SWEEPS)]
    out = dict(load_start=_load(), throughput=[])
    for cells in ((6, 10) if args.quick else (6, 10, 14, 18)):
        row = run_case(me, "throughput", cells, 1 if args.quick else args.repeats, extra=kx)
        out["throughput"].append(row)
        print(f"\nL = {cells}: N = {row['n_sites']} impurities, {row['n_spins']} spins ({row['dtype']})")
        print(f"{'R':>4} {'attempts/s':>11} {'accepted/s':>11} {'acc':>6} {'ms/sweep':>9} | "
              f"{'NumPy att/s':>11} {'NumPy acc/s':>11} {'ms/sweep':>9} | {'ratio':>6} "
              f"{'CPU-time ratio':>14} {'same':>5}")
        for r in row["rows"]:
            print(f"{r['replicas']:>4} {r['attempts_per_s']:>11.3g} {r['accepted_per_s']:>11.3g} "
                  f"{r['acceptance']:>6.3f} {r['ms_per_sweep']:>9.2f} | {r['numpy_attempts_per_s']:>11.3g}"
                  f" {r['numpy_accepted_per_s']:>11.3g} {r['numpy_ms_per_sweep']:>9.1f} | "
                  f"{r['speedup']:>6.1f} {r['speedup_cpu']:>14.1f} {r['identical_sweep']:>5.3f}")
    if not args.quick and not args.skip_paper:
        p = run_case(me, "paper", 18, 1, extra=kx)
        out["paper"] = p
        print(f"\npaper size (x = 0.2, L = 18): N = {p['n_sites']}, {p['n_spins']} spins, "
              f"{p['replicas']} replicas, {p['anneal_sweeps']} annealing + {p['sweeps']} tempering "
              f"sweeps: {p['seconds']:.0f} s end to end {p['stage_seconds']}")
        print(f"  lowest energy {p['lowest_energy_per_spin']:.3f} K per spin; descent "
              f"{p['descent_rounds']} rounds; unstable after: {p['after_single']} single, "
              f"{p['after_pair']} pair; peak RSS {p['peak_rss_mb']:.0f} MB")
        print(f"  pair-unstable before descent (coldest replica first): {p['before_pair'][:6]}")
    if not args.quick:
        b = run_case(me, "big", 29, 2, extra=kx)
        out["big"] = b
        print(f"\nN = {b['n_sites']} impurities ({b['n_spins']} spins), rows on the fly (stored: "
              f"{b['stored']}; K would be {b['dense_gb']:.1f} GB): {b['ms_per_sweep']:.0f} ms per sweep "
              f"of 16 replicas ({b['attempts_per_s']:.3g} attempts/s), pair scan "
              f"{b['pair_scan_seconds']:.1f} s, peak RSS {b['peak_rss_mb']:.0f} MB (goal < 4000)")
    if args.convergence:
        c = run_case(me, "convergence", 10, 1)
        out["convergence"] = c
        print(f"\nlowest energy per spin vs annealing sweeps (L = {c['cells']}, 2 realizations):")
        for r in c["rows"]:
            print(f"  {r['anneal_sweeps']:>5}: {r['lowest_energy_per_spin']}  ({r['seconds']:.0f} s)")
    out["load_end"] = _load()
    print(f"\nload average at start {out['load_start']}, at end {out['load_end']} "
          "(2 cores; timings under load are indicative only)")
    if args.json:
        from tlsjax._io import write_json

        write_json(json_path, out, overwrite=args.overwrite, run=run, indent=1)


if __name__ == "__main__":
    main()
