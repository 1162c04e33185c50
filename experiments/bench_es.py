"""Benchmark of the ES reduction: tlsjax (blocked, jit) against a plain NumPy baseline.

Cases, each in a fresh subprocess so that peak memory (max RSS) is its own:

1. paper size (fcc, x = 0.2, L = 18, ~4670 sites): tlsjax hard reduction vs the
   NumPy baseline of `_numpy_reference.py` (the same algorithm with full N x N
   float64 arrays), same realization and couplings; the largest |E_min| difference
   is printed too;
2. tlsjax alone at N ~ 2e4 (L = 29) and N ~ 1e5 (L = 50);
3. soft P_S on a 64-point grid plus its derivative with respect to a~
   (forward mode, `jax.jvp`, the cheaper mode for 1 input and 64 outputs)
   against the hard forward pass, at paper size;
4. the row top-k of the soft reduction in float64 (`model._topk`) against XLA's and
   NumPy's, and the float64 soft reduction of the fits' DOS sample (L = 10).

Timings are after compilation, the median of `--repeats` runs. Pairs per second count
the N (N - 1) ordered pairs of one reduction (each visited twice, once per pass).

    python experiments/bench_es.py [--quick] [--json bench_es.json]
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
from _bench_common import (  # noqa: E402
    draw_realization,
    median_time,
    pairs_per_second,
    peak_mb,
    run_case,
)


def case_tlsjax(cells: int, repeats: int, atilde: float = 3.0) -> dict:
    import jax
    import jax.numpy as jnp

    import tlsjax as tj
    from tlsjax.model._couplings import Couplings, GaussianAmplitudes

    real, seed, h = draw_realization(cells, 0)

    @jax.jit
    def run(a):
        return tj.es_reduction(Couplings(real, GaussianAmplitudes(seed), a), h, 0.0).e_min

    a = jnp.asarray(atilde)
    t0 = time.perf_counter()
    e_min = run(a).block_until_ready()
    compile_s = time.perf_counter() - t0
    t = median_time(lambda: run(a).block_until_ready(), repeats)
    n = int(real.n_sites)
    return dict(impl="tlsjax", cells=cells, n=n, seconds=t, compile_seconds=compile_s,
                pairs_per_second=pairs_per_second(n, t), peak_rss_mb=peak_mb(),
                e_min=[float(v) for v in e_min[:n]] if n <= 6000 else None,
                backend=jax.default_backend(), dtype=str(e_min.dtype))


def case_numpy(cells: int, repeats: int, atilde: float = 3.0) -> dict:
    import numpy as np
    from _numpy_reference import numpy_es

    real, seed, h = draw_realization(cells, 0)
    args = (np.asarray(real.positions), np.asarray(real.mask), real.box, real.x,
            np.asarray(seed), atilde, np.asarray(h), 0.0)
    out = {}
    t = median_time(lambda: out.setdefault("r", numpy_es(*args)), repeats)
    n = int(real.n_sites)
    return dict(impl="numpy", cells=cells, n=n, seconds=t, pairs_per_second=pairs_per_second(n, t),
                peak_rss_mb=peak_mb(), e_min=[float(v) for v in out["r"][0]],
                dtype="float64")


def case_soft(cells: int, repeats: int, atilde: float = 3.0, width: float = 0.02) -> dict:
    import jax
    import jax.numpy as jnp

    import tlsjax as tj
    from tlsjax.model._couplings import Couplings, GaussianAmplitudes

    real, seed, h = draw_realization(cells, 0)
    grid = jnp.logspace(-2, 1, 64)
    theta = tj.SoftTheta(width)

    def soft(a):
        es = tj.es_reduction(Couplings(real, GaussianAmplitudes(seed), a), h, 0.0, top_k=tj.DEFAULT_TOP_K,
                             soft_width=width)
        return theta.p_s(es, grid)

    @jax.jit
    def hard(a):
        return tj.es_reduction(Couplings(real, GaussianAmplitudes(seed), a), h, 0.0).e_min

    # forward mode: one input (a~), 64 outputs; jax.jvp returns the value and the
    # derivative in one pass (jax.jacfwd would also work but recomputes nothing less)
    value_and_jac = jax.jit(lambda a: jax.jvp(soft, (a,), (jnp.ones_like(a),)))
    a = jnp.asarray(atilde)
    hard(a).block_until_ready()
    jax.block_until_ready(value_and_jac(a))
    t_hard = median_time(lambda: hard(a).block_until_ready(), repeats)
    t_soft = median_time(lambda: jax.block_until_ready(value_and_jac(a)), repeats)
    _, jac = value_and_jac(a)
    return dict(impl="tlsjax-soft+jvp", cells=cells, n=int(real.n_sites), width=width,
                grid=64, top_k=tj.DEFAULT_TOP_K, seconds_hard=t_hard, seconds_soft_and_grad=t_soft,
                ratio=t_soft / t_hard, jac_finite=bool(jnp.all(jnp.isfinite(jac))),
                peak_rss_mb=peak_mb())


def case_topk(cells: int, repeats: int) -> dict:
    """The row selection of the soft reduction (k = 8 largest of each row) on a
    capacity x capacity float64 matrix of the fits' DOS sample (x = 0.2, L = `cells`):
    XLA's top-k in float32 and float64, tlsjax's float64 top-k (`model._topk`) and NumPy's
    argpartition + sort; then the whole float64 soft ES reduction of that sample
    (4 realizations, `stau_dos`), as a fit builds it."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import tlsjax as tj
    from tlsjax._xla import quick_compile
    from tlsjax.model._es import DEFAULT_TOP_K as k
    from tlsjax.model._topk import top_k
    from tlsjax.observables._dos import stau_dos

    jax.config.update("jax_enable_x64", True)  # a benchmark process of its own
    n = tj.Sample(0.2, cells).capacity
    a64 = np.random.default_rng(0).normal(size=(n, n))
    out = dict(impl="topk", cells=cells, n=n, k=k)
    for name, fn, arg in (("xla_float32", jax.lax.top_k, a64.astype(np.float32)),
                          ("xla_float64", jax.lax.top_k, a64), ("tlsjax_float64", top_k, a64)):
        f = jax.jit(fn, static_argnums=1)
        x = jnp.asarray(arg)
        jax.block_until_ready(f(x, k))
        out[name] = median_time(lambda f=f, x=x: jax.block_until_ready(f(x, k)), repeats)
    same = [np.array_equal(np.asarray(u), np.asarray(v)) for u, v in
            zip(top_k(jnp.asarray(a64), k), jax.lax.top_k(jnp.asarray(a64), k), strict=True)]
    out["tlsjax_equals_xla_float64"] = all(same)

    def numpy_top_k(a):
        idx = np.argpartition(-a, k, axis=1)[:, :k]
        vals = np.take_along_axis(a, idx, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        return np.take_along_axis(vals, order, axis=1), np.take_along_axis(idx, order, axis=1)

    out["numpy_float64"] = median_time(lambda: numpy_top_k(a64), repeats)
    sample, params = tj.Sample(0.2, cells), tj.ModelParams()
    keys = iter(range(1, 100))

    def es():
        with quick_compile(True):  # as a fit builds its tables (`tlsjax._xla.TABLE_COMPILE`)
            dos = stau_dos(params, sample, jax.random.PRNGKey(next(keys)), realizations=4)
        jax.block_until_ready(dos.es.top)

    es()  # compiled
    out["stau_dos_float64_seconds"] = median_time(es, repeats)
    return out


CASES = dict(tlsjax=case_tlsjax, numpy=case_numpy, soft=case_soft, topk=case_topk)


def _subprocess(case: str, cells: int, repeats: int) -> dict:
    return run_case(__file__, case, cells, repeats)


def build_parser() -> argparse.ArgumentParser:
    from tlsjax.cli._args import CELLS, finish_parser, integer
    from tlsjax.cli._main import Parser

    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    p.add_argument("--cells", type=CELLS, default=18, help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=integer(1, 1000), default=3, help="timed runs per case (3)")
    p.add_argument("--quick", action="store_true", help="skip N ~ 1e5")
    p.add_argument("--json", default="bench_es.json", help="output JSON path")
    p.add_argument("--overwrite", action="store_true", help="allow replacing --json")
    return finish_parser(p)


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.case:
        print(json.dumps(CASES[args.case](args.cells, args.repeats)))
        return 0

    import numpy as np

    from tlsjax._io import write_json

    run = p.run_id(args)
    json_path = p.check_output(args.json, args.overwrite, what="--json", run=run)
    rows = {}
    print("ES reduction benchmark (fcc, x = 0.2, hard Theta unless stated; after compilation)")
    tl = _subprocess("tlsjax", 18, args.repeats)
    npy = _subprocess("numpy", 18, max(1, args.repeats - 2))
    diff = float(np.max(np.abs(np.asarray(tl.pop("e_min")) - np.asarray(npy.pop("e_min")))))
    rows["paper_size"] = dict(tlsjax=tl, numpy=npy, speedup=npy["seconds"] / tl["seconds"],
                              max_abs_e_min_difference=diff)
    print(f"paper size N = {tl['n']}: tlsjax {tl['seconds']:.3f} s "
          f"({tl['pairs_per_second']:.3g} pairs/s, peak {tl['peak_rss_mb']:.0f} MB, "
          f"{tl['dtype']}) | NumPy {npy['seconds']:.3f} s ({npy['pairs_per_second']:.3g} pairs/s, "
          f"peak {npy['peak_rss_mb']:.0f} MB, float64) | speed-up {rows['paper_size']['speedup']:.1f}x"
          f" (target >= 10x) | max |dE_min| = {diff:.2e} <E_tau>")
    for cells in ([29] if args.quick else [29, 50]):
        r = _subprocess("tlsjax", cells, 1)
        r.pop("e_min")
        rows[f"L{cells}"] = r
        target = "" if cells < 50 else " (target <= 180 s, < 2048 MB)"
        print(f"tlsjax N = {r['n']}: {r['seconds']:.2f} s, {r['pairs_per_second']:.3g} pairs/s, "
              f"peak {r['peak_rss_mb']:.0f} MB{target}")
    soft = _subprocess("soft", 18, args.repeats)
    rows["soft_vs_hard"] = soft
    print(f"soft P_S (64 energies, w = {soft['width']}, top_k = {soft['top_k']} + tail) + d/da~ (jvp): "
          f"{soft['seconds_soft_and_grad']:.3f} s vs hard forward {soft['seconds_hard']:.3f} s "
          f"= {soft['ratio']:.2f}x (target <= 5x)")
    topk = _subprocess("topk", 10, args.repeats)
    rows["topk"] = topk
    print(f"row top-{topk['k']} of a {topk['n']} x {topk['n']} matrix (fits' DOS sample, L = 10): "
          f"XLA float32 {1e3 * topk['xla_float32']:.1f} ms | XLA float64 "
          f"{1e3 * topk['xla_float64']:.1f} ms | tlsjax float64 {1e3 * topk['tlsjax_float64']:.1f} ms "
          f"(= XLA float64: {topk['tlsjax_equals_xla_float64']}) | NumPy float64 "
          f"{1e3 * topk['numpy_float64']:.1f} ms | tlsjax/NumPy "
          f"{topk['numpy_float64'] / topk['tlsjax_float64']:.1f}x; soft ES reduction of that "
          f"sample, 4 realizations, float64: {topk['stau_dos_float64_seconds']:.3f} s")
    import platform

    rows["machine"] = dict(platform=platform.platform(), cpus=os.cpu_count(),
                           python=platform.python_version())
    write_json(json_path, rows, overwrite=args.overwrite, run=run)
    print(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
