"""Scaling benchmark: t(N) and peak memory of the ES reduction, ensemble throughput on
1, 2 and 4 (emulated) devices, and the cost of a full gradient relative to the forward pass.

Every case runs in a fresh subprocess, so its peak memory (max RSS, which includes the
~0.3 GB of the Python + JAX runtime) is its own, and so that emulated devices
(XLA_FLAGS=--xla_force_host_platform_device_count=D) can be set before JAX starts.
Timings are after compilation (the first call is excluded), the median of the repeats.
Nothing assumes a CPU: on a GPU machine the same script measures the GPU (the emulated
device counts then only apply to the CPU backend and are skipped unless --force-cpu).

Cases (fcc, x = 0.2, L chosen so that N = 0.8 L^3 is closest to the target):

- hard: the paper's reduction (top_k = 1) for N = 1e3, 3e3, 1e4, 3e4, 1e5;
- soft: top_k = DEFAULT_TOP_K (8) plus the tail term, and soft P_S on 16 energies,
  N up to --soft-max (3e4 by default);
- numpy: the plain-NumPy baseline (full N x N float64 arrays,
  `experiments/_numpy_reference.py`) where it fits, N <= --numpy-max (1e4);
- grad: value and gradient of log T_U + sum log P_S (soft) with respect to
  (a~, h_rel, w) by reverse mode, against the forward pass of the same function;
- throughput: `disorder_average` realizations per second (hard, L = 10, ~800 sites)
  with 1, 2 and 4 devices.

    python experiments/bench_scale.py [--out bench_scale_results] [--quick]

Writes bench_scale.json and bench_scale.png (log-log t(N) and peak memory).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

X = 0.2
SIZES = (1e3, 3e3, 1e4, 3e4, 1e5)


def _cells_for(n_target: float) -> int:
    return max(2, round((n_target / (4.0 * X)) ** (1.0 / 3.0)))


def case_es(cells: int, repeats: int, soft: bool) -> dict:
    import jax
    import jax.numpy as jnp

    import tlsjax as tj
    from tlsjax.model._couplings import Couplings, GaussianAmplitudes

    real, seed_words, h = draw_realization(cells, 0, X)
    energies = jnp.logspace(-1.0, 0.5, 16)
    theta = tj.SoftTheta(0.05)

    @jax.jit
    def run(a):
        c = Couplings(real, GaussianAmplitudes(seed_words), a)
        es = tj.es_reduction(c, h, 0.3, top_k=tj.DEFAULT_TOP_K if soft else 1,
                             soft_width=theta.width if soft else None)
        if soft:
            return theta.p_s(es, energies)
        return es.e_min

    seconds = median_time(lambda: jax.block_until_ready(run(3.0)), repeats, warmup=True)
    n = int(real.n_sites)
    return dict(case="soft" if soft else "hard", cells=cells, n=n, seconds=seconds,
                pairs_per_second=pairs_per_second(n, seconds), peak_rss_mb=peak_mb(),
                dtype=str(jnp.result_type(float)), backend=jax.default_backend())


def case_numpy(cells: int, repeats: int) -> dict:
    import numpy as np
    from _numpy_reference import numpy_es

    real, seed_words, h = draw_realization(cells, 0, X)
    args = (np.asarray(real.positions), np.asarray(real.mask), real.box, real.x,
            np.asarray(seed_words), 3.0, np.asarray(h), 0.3)
    seconds = median_time(lambda: numpy_es(*args), repeats)
    n = int(real.n_sites)
    return dict(case="numpy", cells=cells, n=n, seconds=seconds,
                pairs_per_second=pairs_per_second(n, seconds), peak_rss_mb=peak_mb(),
                dtype="float64")


def case_grad(cells: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp

    import tlsjax as tj

    sample = tj.Sample(X, cells)
    key = jax.random.key(0)
    energies = jnp.logspace(-1.0, 0.0, 8)

    def loss(p):
        a, h_rel, w = p[0], p[1], p[2]
        theta = tj.SoftTheta(w)
        es = tj.simulate(sample, tj.ModelParams(atilde=a, h_rel=h_rel), key, top_k=tj.DEFAULT_TOP_K,
                         soft_width=w)
        return jnp.log(theta.crossover(es, 0.02)) + jnp.sum(theta.log_p_s(es, energies))

    p = jnp.array([3.0, 0.3, 0.05])
    fwd = jax.jit(loss)
    vg = jax.jit(jax.value_and_grad(loss))
    t_fwd = median_time(lambda: jax.block_until_ready(fwd(p)), repeats, warmup=True)
    t_grad = median_time(lambda: jax.block_until_ready(vg(p)), repeats, warmup=True)
    return dict(case="grad", cells=cells, n=int(sample.draw(key).n_sites), seconds_forward=t_fwd,
                seconds_value_and_grad=t_grad, ratio=t_grad / t_fwd, peak_rss_mb=peak_mb(),
                params=["atilde", "h_rel", "w"], mode="reverse (jax.value_and_grad)")


def case_throughput(cells: int, repeats: int) -> dict:
    import jax

    import tlsjax as tj
    from tlsjax.parallel._ensemble import disorder_average

    sample = tj.Sample(X, cells)
    params = tj.ModelParams(atilde=3.0)
    energies = jax.numpy.logspace(-2.0, 1.0, 31)

    def fn(key):
        es = tj.simulate(sample, params, key)
        return dict(p_s=tj.p_s(es, energies), t_u=tj.crossover_temperature(es, 0.02))

    d = jax.device_count()
    n_real = 8 * max(1, repeats)
    disorder_average(fn, jax.random.split(jax.random.key(1), d), batch_size=d)  # compile
    keys = jax.random.split(jax.random.key(0), n_real)
    t = time.perf_counter()
    _, _, count = disorder_average(fn, keys, batch_size=d)
    seconds = time.perf_counter() - t
    return dict(case="throughput", cells=cells, devices=d, realizations=count,
                seconds=seconds, realizations_per_second=count / seconds,
                peak_rss_mb=peak_mb(), backend=jax.default_backend())


CASES = dict(hard=lambda c, r: case_es(c, r, False), soft=lambda c, r: case_es(c, r, True),
             numpy=case_numpy, grad=case_grad, throughput=case_throughput)


def _subprocess(case: str, cells: int, repeats: int, devices: int | None = None) -> dict:
    return run_case(__file__, case, cells, repeats, devices)


def _slope(ns, ys) -> float:
    import numpy as np

    return float(np.polyfit(np.log(ns), np.log(ys), 1)[0])


def _plot(results: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    styles = dict(hard="o-", soft="s-", numpy="^--")
    for case, rows in results["t_of_n"].items():
        if not rows:
            continue
        n = np.array([r["n"] for r in rows])
        ax_t.loglog(n, [r["seconds"] for r in rows], styles[case], label=case)
        ax_m.loglog(n, [r["peak_rss_mb"] for r in rows], styles[case], label=case)
    hard = results["t_of_n"]["hard"]
    if hard:
        n = np.array([r["n"] for r in hard], dtype=float)
        ref = hard[-1]["seconds"] * (n / n[-1]) ** 2
        ax_t.loglog(n, ref, "k:", label="∝ N²")
        mem0 = hard[0]["peak_rss_mb"]
        ax_m.loglog(n, mem0 * n / n[0], "k:", label="∝ N (from smallest)")
    ax_t.set_xlabel("impurities N")
    ax_t.set_ylabel("seconds per reduction")
    ax_t.set_title(f"ES reduction, exponent of t(N) (hard, N ≥ 5e3): "
                   f"{results['fit']['hard_exponent']:.2f}", fontsize=9)
    ax_m.set_xlabel("impurities N")
    ax_m.set_ylabel("peak RSS of the process [MB]")
    ax_m.set_title("peak memory (includes ~0.3 GB runtime)", fontsize=9)
    for ax in (ax_t, ax_m):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"tlsjax bench_scale on {results['machine']['backend']} "
                 f"({results['machine']['cpus']} CPUs)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _fit(t_of_n: dict) -> dict:
    """Log-log exponents of t(N) and the growth of peak memory per case (printed too)."""
    fit = {}
    for case, rows in t_of_n.items():
        big = [r for r in rows if r["n"] >= 5e3] or rows
        if len(big) >= 2:
            fit[f"{case}_exponent"] = _slope([r["n"] for r in big], [r["seconds"] for r in big])
            # Peak RSS includes ~0.35 GB of runtime and varies by tens of MB run to run,
            # so a fitted exponent of the small excess is noise; report the growth instead,
            # next to the size one N x N float32 array would have.
            first, last = rows[0], rows[-1]
            fit[f"{case}_peak_growth_mb"] = last["peak_rss_mb"] - first["peak_rss_mb"]
            fit[f"{case}_n2_float32_array_mb"] = last["n"] ** 2 * 4 / 2**20
            fit[f"{case}_n_range"] = [first["n"], last["n"]]
    fit.setdefault("hard_exponent", float("nan"))
    fit["note"] = ("exponents are log-log slopes over N >= 5e3 (t ~ N^2 expected); peak growth "
                   "= peak RSS at the largest N minus that at the smallest")
    for case in ("hard", "soft", "numpy"):
        if f"{case}_exponent" in fit:
            lo, hi = fit[case + "_n_range"]
            print(f"fitted exponent of t(N), {case}: {fit[case + '_exponent']:.2f}; peak RSS "
                  f"{fit[case + '_peak_growth_mb']:+.0f} MB from N = {lo} to {hi} (one N x N "
                  f"float32 array at N = {hi}: {fit[case + '_n2_float32_array_mb']:.0f} MB)")
    return fit


def build_parser() -> argparse.ArgumentParser:
    from tlsjax.cli._args import CELLS, finish_parser, integer, real
    from tlsjax.cli._main import Parser

    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    p.add_argument("--cells", type=CELLS, default=10, help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=integer(1, 1000), default=3)
    p.add_argument("--quick", action="store_true", help="N up to 1e4 only (a smoke run)")
    p.add_argument("--soft-max", type=real(0.0, 1e6), default=3e4,
                   help="largest N of the soft case (0: none)")
    p.add_argument("--numpy-max", type=real(0.0, 1e6), default=1e4,
                   help="largest N of the NumPy case (0: none)")
    p.add_argument("--grad-n", type=real(10.0, 1e6), default=3e3, help="N of the gradient case")
    p.add_argument("--force-cpu", action="store_true",
                   help="run the emulated-device throughput case on a non-CPU machine too")
    p.add_argument("--out", default="bench_scale_results", help="output folder")
    p.add_argument("--overwrite", action="store_true")
    return finish_parser(p)


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.case:
        print(json.dumps(CASES[args.case](args.cells, args.repeats)))
        return 0

    sys.path.insert(0, str(HERE.parent))
    import jax

    out = p.output_dir(args.out, args.overwrite, expect=("bench_scale.json", "bench_scale.png"))
    backend = jax.default_backend()
    sizes = [n for n in SIZES if n <= (1e4 if args.quick else 1e5)]
    results = dict(t_of_n=dict(hard=[], soft=[], numpy=[]), machine=dict(
        platform=platform.platform(), cpus=os.cpu_count(), python=platform.python_version(),
        jax=jax.__version__, backend=backend, devices=[str(d) for d in jax.devices()]))
    print(f"bench_scale on {backend} ({os.cpu_count()} CPUs), fcc x = {X}")
    print(f"{'case':<7}{'N':>8}{'seconds':>11}{'pairs/s':>11}{'peak MB':>9}")
    for target in sizes:
        cells = _cells_for(target)
        reps = args.repeats if target <= 1e4 else 1
        todo = ["hard"]
        if target <= args.soft_max:
            todo.append("soft")
        if target <= args.numpy_max:
            todo.append("numpy")
        for case in todo:
            r = _subprocess(case, cells, reps)
            results["t_of_n"][case].append(r)
            print(f"{case:<7}{r['n']:>8}{r['seconds']:>11.4g}{r['pairs_per_second']:>11.3g}"
                  f"{r['peak_rss_mb']:>9.0f}", flush=True)
    results["fit"] = _fit(results["t_of_n"])
    speedups = {str(r["n"]): n_["seconds"] / r["seconds"] for r in results["t_of_n"]["hard"]
                for n_ in results["t_of_n"]["numpy"] if n_["n"] == r["n"]}
    results["numpy_over_tlsjax_hard"] = speedups
    if speedups:
        print("speed-up of tlsjax (hard) over the NumPy baseline: "
              + ", ".join(f"N={k}: {v:.1f}x" for k, v in speedups.items()))

    g = _subprocess("grad", _cells_for(args.grad_n), args.repeats)
    results["gradient"] = g
    print(f"gradient (reverse mode, 3 parameters) at N = {g['n']}: value+grad "
          f"{g['seconds_value_and_grad']:.3g} s vs forward {g['seconds_forward']:.3g} s "
          f"= {g['ratio']:.2f}x (target <= 5x)")

    results["throughput"] = []
    if backend == "cpu" or args.force_cpu:
        for d in (1, 2, 4):
            r = _subprocess("throughput", 10, 2, devices=d)
            results["throughput"].append(r)
            print(f"ensemble on {d} emulated CPU device(s), N ~ {X * 4 * 1000:.0f}: "
                  f"{r['realizations_per_second']:.3g} realizations/s")
    else:
        r = _subprocess("throughput", 10, 2)
        results["throughput"].append(r)
        print(f"ensemble on {r['devices']} {backend} device(s): "
              f"{r['realizations_per_second']:.3g} realizations/s")
    with out:  # both files move into --out together
        out.json("bench_scale.json", results)
        _plot(results, out.path("bench_scale.png"))
    print(f"wrote {out.root}/bench_scale.json and bench_scale.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
