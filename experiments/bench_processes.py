"""Overhead of several processes: the ES ensemble in 1 process (2 threads) against the same
ensemble in 2 processes of 1 thread each (one JAX job, gloo collectives), same run.

This measures what joining processes costs (the gather after every batch, the checks),
not a speed-up: both configurations use the same 2 cores. Each configuration runs in
fresh subprocesses, pinned to its cores (`os.sched_setaffinity`); XLA gets 1 thread per
process in the 2-process case. Each process first runs one batch (compiling), then the
timed ensemble of `--realizations` keys (`tlsjax.studies.run_scan`, hard Theta,
a~ = 3, h_rel = 0). The two runs must give the same bits (checked). The plain NumPy
baseline (`_numpy_reference.py`, one realization, float64, 1 thread) is timed in the
same run for scale.

    python experiments/bench_processes.py [--cells 18] [--realizations 64] [--json out.json]

Overhead = t(2 processes) / t(1 process) - 1 (the goal: <= 20% at paper size, 64
realizations). Figures taken on a machine shared with other work are noisy: the load
average is recorded beside them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _bench_common import draw_realization, median_time  # noqa: E402

ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def worker(cells: int, realizations: int, port: int, pid: int, nproc: int) -> dict:
    """One process of a configuration: join (if nproc > 1), warm up, time the ensemble."""
    os.sched_setaffinity(0, {pid} if nproc > 1 else set(range(min(2, os.cpu_count() or 1))))
    import jax
    import numpy as np

    import tlsjax as tj
    from tlsjax.studies._reproduce import run_scan

    if nproc > 1:
        tj.distributed(f"127.0.0.1:{port}", nproc, pid)
    unit = jax.device_count()
    case = dict(x=0.2, cells=cells, atildes=[3.0], h_rels=[0.0], progress=False)
    run_scan(**case, realizations=unit, seed=1)  # compiles the batch
    t = time.perf_counter()
    res = run_scan(**case, realizations=realizations, seed=0)
    seconds = time.perf_counter() - t
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(res.mean[k]).tobytes()
                                     for k in sorted(res.mean))).hexdigest()
    return dict(processes=nproc, process_id=pid, devices=unit, seconds=seconds,
                realizations_per_second=realizations / seconds,
                n_sites_mean=float(res.mean["n_sites"]), digest=digest)


def configuration(cells: int, realizations: int, nproc: int) -> list[dict]:
    """Run one configuration in `nproc` fresh subprocesses; their JSON lines."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("XLA_FLAGS", None)
    if nproc > 1:
        env["XLA_FLAGS"] = ONE_THREAD
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen(
        [sys.executable, __file__, "--worker", str(i), "--nproc", str(nproc), "--port",
         str(port), "--cells", str(cells), "--realizations", str(realizations)],
        env=env, stdout=subprocess.PIPE, text=True) for i in range(nproc)]
    out = []
    for p in procs:
        stdout, _ = p.communicate(timeout=3600)
        if p.returncode:
            raise RuntimeError(f"worker failed with exit {p.returncode}")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def numpy_baseline(cells: int) -> dict:
    import numpy as np
    from _numpy_reference import numpy_es

    real, seed, h = draw_realization(cells, 0)
    args = (np.asarray(real.positions), np.asarray(real.mask), real.box, real.x,
            np.asarray(seed), 3.0, np.asarray(h), 0.0)
    t = median_time(lambda: numpy_es(*args), 1)
    return dict(impl="numpy (1 realization, float64)", n=int(real.n_sites), seconds=t,
                realizations_per_second=1.0 / t)


def build_parser() -> argparse.ArgumentParser:
    from tlsjax.cli._args import CELLS, finish_parser, integer
    from tlsjax.cli._main import Parser

    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=CELLS, default=18)
    ap.add_argument("--realizations", type=integer(1), default=64)
    ap.add_argument("--json", default=None)
    ap.add_argument("--overwrite", action="store_true", help="allow replacing --json")
    # set by the parent for its worker processes
    ap.add_argument("--worker", type=integer(0, 1), default=None, help=argparse.SUPPRESS)
    ap.add_argument("--nproc", type=integer(1, 2), default=1, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=integer(0, 65535), default=0, help=argparse.SUPPRESS)
    return finish_parser(ap)


def main(argv=None) -> None:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(args.cells, args.realizations, args.port, args.worker,
                                args.nproc)))
        return
    if args.json:
        run = ap.run_id(args)
        json_path = ap.check_output(args.json, args.overwrite, what="--json", run=run)
    load_before = os.getloadavg()
    one = configuration(args.cells, args.realizations, 1)
    two = configuration(args.cells, args.realizations, 2)
    t1 = one[0]["seconds"]
    t2 = max(w["seconds"] for w in two)
    result = dict(
        cells=args.cells, realizations=args.realizations, one_process_2_threads=one,
        two_processes_1_thread=two, overhead=t2 / t1 - 1.0,
        bit_identical=len({w["digest"] for w in one + two}) == 1,
        numpy=numpy_baseline(args.cells), load_average_before=load_before,
        load_average_after=os.getloadavg(), cpus=os.cpu_count())
    print(f"ES ensemble, fcc x=0.2 L={args.cells} (<N> = {one[0]['n_sites_mean']:.0f}), "
          f"{args.realizations} realizations:")
    print(f"  1 process x 2 threads:  {t1:.2f} s ({args.realizations / t1:.2f} realizations/s)")
    print(f"  2 processes x 1 thread: {t2:.2f} s ({args.realizations / t2:.2f} realizations/s)")
    print(f"  overhead of 2 processes: {100 * result['overhead']:+.1f}%; same bits: "
          f"{result['bit_identical']}")
    print(f"  NumPy baseline: {result['numpy']['seconds']:.2f} s per realization")
    print(f"  load average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs (rerun on an idle machine for a clean figure)")
    if args.json:
        from tlsjax._io import write_json

        write_json(json_path, result, overwrite=args.overwrite, run=run)


if __name__ == "__main__":
    main()
