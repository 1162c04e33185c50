"""Times of the example Q^-1(T) and Delta v/v(T) fits and of the relaxation integrals
behind them, this checkout against the code of an older commit.

- **integrals** (each code in a fresh process): Q^-1_rel + Delta v/v at the examples' 16
  temperatures (0.05-10 K, 1 kHz, constant C, float64), as one compiled value and as one
  compiled value with its reverse-mode gradient over (ln C, ln rho): the median ms per
  call, and the compiled program's temporary memory. The fits' L-BFGS steps call the
  second.
- **NumPy baselines** (in this process): the same value in plain NumPy, vectorized over
  temperatures and energies (Gauss-Legendre over E, 408 nodes), with the r integral by
  the previous composite Gauss-Legendre quadrature (472 nodes for r_min = 1e-24) and in
  closed form: each is compared with the JAX code of the same algorithm.
- **paired** (`--paired COMMIT`, default: the last commit before the closed-form r
  integral): `tlsjax fit qinv data/example_qinv.csv --freq 1000 --sigma 0.03` and
  `tlsjax fit dvv data/example_dvv.csv --freq 1000 --sigma 0.00673` as a user runs them,
  cold (empty compilation cache folder) and warm, COMMIT's code and this checkout's in
  turn, `--rounds N` rounds (default 1; the codes' order alternates from round to round).
  The reports of the two codes are compared (they differ in the last digits, and the
  Delta v/v example along the direction its data do not determine; see
  docs/how-to/fit-qinv-and-dvv.md). `--no-fits` skips these runs.

    python experiments/bench_fit_curves.py [--out DIR] [--overwrite] [--paired COMMIT]
                                           [--rounds N] [--repeats N] [--no-fits]

Writes `bench_fit_curves.json` and prints a table. Times are wall-clock seconds on this
machine; on a shared machine they are noisy.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import (  # noqa: E402
    ROOT,
    code_state_over,
    finish_run,
    resolve_commit,
    working_tree_state,
)
from bench_fit import old_code, paired, print_paired  # noqa: E402

#: The last commit whose relaxation integrals summed a quadrature over r, stored node by
#: node in a reverse-mode gradient.
BEFORE = "0ccd8a3"
#: The examples' fits, as docs/how-to/fit-qinv-and-dvv.md runs them.
FITS = {"qinv": ("data/example_qinv.csv", ("--freq", "1000", "--sigma", "0.03")),
        "dvv": ("data/example_dvv.csv", ("--freq", "1000", "--sigma", "0.00673"))}
T_K = np.geomspace(0.05, 10.0, 16)
OMEGA = 2 * math.pi * 1e3
C, RHO, V_L, V_T = 3e-4, 1200.0, 2500.0, 1200.0

CHILD = r"""
import json, math, sys, time
import numpy as np
import jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
import tlsjax as tj

repeats, case = int(sys.argv[1]), json.loads(sys.argv[2])
T = jnp.asarray(case["T_K"])
om = jnp.asarray([case["omega"]])

def f(log_c, log_rho):
    tls = tj.ConstantC(jnp.exp(log_c))
    m = tj.Material(jnp.exp(log_rho), case["v_l"], case["v_t"])
    return (jnp.sum(tj.sound_velocity_shift(tls, m, T, om, T[0]))
            + jnp.sum(tj.qinv_relaxation(tls, m, T, om)))

x = (jnp.asarray(math.log(case["C"])), jnp.asarray(math.log(case["rho"])))
out = {}
for name, fn in (("value", f), ("value_and_grad", jax.value_and_grad(f, argnums=(0, 1)))):
    c = jax.jit(fn).lower(*x).compile()
    jax.block_until_ready(c(*x))
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(c(*x))
        ts.append(time.perf_counter() - t)
    mem = c.memory_analysis()
    v = c(*x) if name == "value" else c(*x)[0]
    out[name] = dict(ms=1e3 * sorted(ts)[len(ts) // 2], value=float(v),
                     temp_mb=None if mem is None else mem.temp_size_in_bytes / 1e6)
print(json.dumps(out))
"""


def integrals(root: Path, repeats: int) -> dict:
    """The CHILD's timings with the code under `root`, in a fresh process."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(root))
    # run in `root`: `python -c` puts the working folder first on the path
    case = dict(T_K=T_K.tolist(), omega=OMEGA, C=C, rho=RHO, v_l=V_L, v_t=V_T)
    out = subprocess.run([sys.executable, "-c", CHILD, str(repeats), json.dumps(case)],
                         env=env, capture_output=True, text=True, cwd=root)
    if out.returncode != 0:
        return dict(error=(out.stderr.strip().splitlines() or ["no output"])[-1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _r_quadrature(a: np.ndarray) -> np.ndarray:
    """(Q^-1, Delta v/v) r integrals at a = omega tau_min, by the 472-node composite
    Gauss-Legendre rule of the code before the closed form (in ln r up to r = 1/2, in
    sqrt(1 - r) above)."""
    from tlsjax.observables._stm import _gauss_legendre

    lo, hi = math.log(1e-24), math.log(0.5)
    u, wu = _gauss_legendre(np.linspace(lo, hi, math.ceil(hi - lo) + 1))
    s, ws = _gauss_legendre(np.linspace(0.0, math.sqrt(0.5), 5))
    r = np.concatenate([np.exp(u), 1.0 - s**2])
    w_r = np.concatenate([wu, 2.0 * s * ws / (1.0 - s**2)]) * np.sqrt(1.0 - r)  # dr/r sqrt(1-r)
    wt = a[..., None] / r  # omega tau
    return np.stack([np.sum(w_r * wt / (1.0 + wt**2), axis=-1),
                     np.sum(w_r / (1.0 + wt**2), axis=-1)])


def _r_closed_form(a: np.ndarray) -> np.ndarray:
    """The same in closed form (docs/conventions.md, section 5), in NumPy."""
    from tlsjax.observables._stm import _r_moments

    r_min, s0 = 1e-24, math.sqrt(1.0 - 1e-24)
    small = np.minimum(a, 2.0)
    b = np.sqrt(1.0 - 1j * small)
    closed = -2.0 * s0 + b * (2.0 * np.log(b + s0) - np.log(r_min - 1j * small))
    u = 1.0 / np.maximum(a, 2.0) ** 2
    m = _r_moments(r_min)
    q = np.polynomial.polynomial.polyval(-u, m[0::2]) * np.sqrt(u)
    v = np.polynomial.polynomial.polyval(-u, m[1::2]) * u
    return np.stack([np.where(a > 2.0, q, closed.imag), np.where(a > 2.0, v, closed.real)])


def numpy_value(r_integrals) -> float:
    """Q^-1_rel + Delta v/v of CHILD's `f` in plain NumPy, vectorized over temperatures and
    energies, with `r_integrals` (`_r_quadrature` or `_r_closed_form`) for the r integral."""
    import jax

    from tlsjax.observables._material import Material
    from tlsjax.observables._stm import _XR_NODES, _XR_WEIGHTS, _gauss_legendre

    with jax.enable_x64(True):  # tau_min^-1 = a_k E^3 coth(E/2T)
        a_k = float(Material(RHO, V_L, V_T).relaxation_A_K)
    x, w_e = _XR_NODES, _XR_WEIGHTS * 0.5 / np.cosh(0.5 * _XR_NODES) ** 2
    rate = a_k * (x[None, :] * T_K[:, None]) ** 3 / np.tanh(0.5 * x)  # (nT, nx)
    per_t = C * np.sum(w_e * r_integrals(OMEGA / rate), axis=-1)  # (2, nT): Q^-1, Delta v/v
    xr, wres = _gauss_legendre(np.linspace(0.0, 1.0, 41))

    def resonant(t, t0):  # constant C: -C int d(ln E) [tanh(E/2t) - tanh(E/2t0)]
        lo, hi = math.log(1e-4 * min(t, t0)), math.log(60.0 * max(t, t0))
        e = np.exp(lo + (hi - lo) * xr)
        return -(hi - lo) * np.sum(wres * C * (np.tanh(0.5 * e / t) - np.tanh(0.5 * e / t0)))

    res = np.asarray([resonant(t, T_K[0]) for t in T_K])
    dvv = res - 0.5 * (per_t[1] - per_t[1, 0])
    return float(np.sum(dvv) + np.sum(per_t[0]))


def numpy_baseline(repeats: int) -> dict:
    """Median ms and the value of `numpy_value`, with each way of doing the r integral."""
    out = {}
    for name, fn in (("quadrature", _r_quadrature), ("closed_form", _r_closed_form)):
        ts, value = [], math.nan
        for _ in range(repeats):
            t = time.perf_counter()
            value = numpy_value(fn)
            ts.append(time.perf_counter() - t)
        out[name] = dict(ms=1e3 * sorted(ts)[len(ts) // 2], value=value)
    return out


def build_parser():
    from tlsjax.cli._args import finish_parser, integer
    from tlsjax.cli._main import Parser

    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "experiments" / "out"),
                    help="folder of bench_fit_curves.json")
    ap.add_argument("--overwrite", action="store_true",
                    help="allow replacing bench_fit_curves.json")
    ap.add_argument("--paired", default=BEFORE, metavar="COMMIT",
                    help=f"the older code (default {BEFORE}: the last with a quadrature over r)")
    ap.add_argument("--rounds", type=integer(1, 100), default=1,
                    help="rounds of the paired fits")
    ap.add_argument("--repeats", type=integer(1, 10000), default=30,
                    help="timed calls per integral")
    ap.add_argument("--no-fits", action="store_true", help="time the integrals only")
    return finish_parser(ap)


def _print(meta: dict, integ: dict, base: dict) -> None:
    print(f"relaxation integrals at 16 temperatures (float64), median ms per call "
          f"(before: {meta['paired_commit'][:7]}); NumPy baseline: r by quadrature "
          f"{base['quadrature']['ms']:.1f} ms, in closed form {base['closed_form']['ms']:.2f} ms")
    for name in ("value", "value_and_grad"):
        cells, ms = [], {}
        for code in ("before", "now"):
            d = integ[code].get(name)
            ms[code] = math.nan if d is None else d["ms"]
            temp = "n/a" if d is None or d["temp_mb"] is None else f"{d['temp_mb']:.2f}"
            cells.append("error" if d is None else f"{code} {d['ms']:8.2f} ms (temp {temp} MB)")
        print(f"  {name:15s} " + "  ".join(cells)
              + f"  before/now {ms['before'] / ms['now']:.1f}x; NumPy quadrature/before "
              f"{base['quadrature']['ms'] / ms['before']:.1f}x, NumPy closed form/now "
              f"{base['closed_form']['ms'] / ms['now']:.1f}x")


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    run = ap.run_id(args)
    json_path = ap.check_output(Path(args.out) / "bench_fit_curves.json", args.overwrite,
                                run=run, what="--out's bench_fit_curves.json")
    commit = resolve_commit(args.paired, ["tlsjax"])
    if commit is None:
        ap.error(f"argument --paired: {args.paired!r} is not a commit of this clone with tlsjax/")
    start = working_tree_state()
    base = numpy_baseline(max(3, args.repeats // 10))
    results: dict = dict(numpy=base, integrals={}, fits={})
    with tempfile.TemporaryDirectory() as tmpname:
        old = old_code(commit)
        try:
            for code, root in (("before", Path(old.name)), ("now", ROOT)):
                results["integrals"][code] = integrals(root, args.repeats)
                print(f"integrals {code}: {json.dumps(results['integrals'][code])}", flush=True)
            for q, (path, extra) in ({} if args.no_fits else FITS).items():
                results["fits"][q] = paired(ROOT / path, Path(tmpname), Path(old.name),
                                            args.rounds, q, extra)
        finally:
            old.cleanup()
    meta = dict(python=sys.version.split()[0], cpus=os.cpu_count(), paired_commit=commit,
                load_average=os.getloadavg(), now=code_state_over(start))
    print()
    _print(meta, results["integrals"], base)
    now_value = results["integrals"]["now"].get("value", {}).get("value", math.nan)
    for name, d in base.items():
        d["relative_to_now"] = abs(d["value"] - now_value) / abs(now_value)
        print(f"  NumPy ({name}) value {d['value']:.12g} against {now_value:.12g} "
              f"(relative {d['relative_to_now']:.1e})")
    for q, d in results["fits"].items():
        print_paired({q: dict(paired=d)}, commit, f"tlsjax fit {q} {FITS[q][0]} "
                     + " ".join(FITS[q][1]))
    failed = [c for c, d in results["integrals"].items() if "error" in d] + [
        f"{q} {code} round {i + 1} {k}" for q, d in results["fits"].items()
        for code, rs in d["runs"].items() for i, r in enumerate(rs) for k in ("cold", "warm")
        if "error" in r[k]]
    return finish_run(json_path, meta, results, failed, overwrite=args.overwrite, run=run)


if __name__ == "__main__":
    raise SystemExit(main())
