"""Do the profile-likelihood bounds of a Delta v/v fit cover the truth as often as they say?

The example curve `data/example_dvv.csv` (`make_example_curves.py`) is one noise draw of
the S-tau model (g = 0.01, J_o = 1500 K, kappa_log = 0.1, A k_B^3 = 6.14e10 1/(s K^3), the
default DOS sample, 1 kHz, 16 temperatures over 0.05-10 K) with Gaussian noise of
sigma = 1 % of the curve's range. Its fit (docs/how-to/fit-qinv-and-dvv.md) puts the
truth's T_U, kappa_log and A k_B^3 outside their one-sided 95 % profile bounds. One draw
cannot tell chance from a flaw; this script makes `--draws` new draws of the same noise
(numpy.random.default_rng(`--seed`)), fits each as `fit_curves(dvv=..., model="stau",
dos_samples=0)` does by default (float64, known sigma, profile bounds at 95 % one-sided),
and counts, for each bounded quantity, how often each side misses the truth. Each bound
should miss at most 1 time in 20 (asymptotically; the script gives the binomial
probability of at least the misses counted, if the bound were exact).

The truth's T_U is the fit's T_U at the true g and J_o in the same DOS sample (a fit of
the noiseless curve with g, J_o and kappa_log fixed). Results are written after every
draw, so Ctrl-C keeps the draws done; a rerun with the same settings and `--out` goes on
from them.

    python experiments/dvv_coverage.py [--draws N] [--seed S] [--out FILE.json] [--overwrite]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
TRUTH = dict(g=0.01, J0=1500.0, kappa_log=0.1)
FREQ = 1e3
#: The quantities whose bounds are counted: key in the fit's `profile` bounds, truth key.
QUANTITIES = ("T_U", "kappa_log", "A_rel", "g", "J0")
LEVEL = 0.95


def truth_curve() -> tuple[np.ndarray, np.ndarray, float, float]:
    """(T, Delta v/v, sigma, A k_B^3) of the example's noiseless curve, as
    `make_example_curves.py` computes it."""
    import jax.numpy as jnp

    from tlsjax import Material, ModelParams, StauTLS, sound_velocity_shift, stau_dos

    params = ModelParams(g=TRUTH["g"], J0=TRUTH["J0"], atilde=3.0, h_rel=0.0,
                         kappa_log=TRUTH["kappa_log"])
    tls = StauTLS(stau_dos(params), params)
    material = Material(1200.0, 2500.0, 1200.0)
    T = np.geomspace(0.05, 10.0, 16)
    omega = jnp.asarray([2.0 * math.pi * FREQ])
    d = np.asarray(sound_velocity_shift(tls, material, T, omega, T[0]))[:, 0]
    return T, d, 0.01 * float(np.ptp(d)), float(material.relaxation_A_K)


def fit(T, d, sigma: float, params=None) -> dict:
    """The default S-tau Delta v/v fit of a curve (`fit_curves`, its JSON as a dict)."""
    import tlsjax as tj

    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "curve.csv", Path(tmp) / "fit.json"
        rows = "".join(f"{float(t)!r},{float(v)!r}\n" for t, v in zip(T, d))
        path.write_text("T(K),dv/v\n" + rows)
        res = tj.fit_curves(dvv=str(path), freq_dvv=FREQ, sigma_dvv=sigma, model="stau",
                            dos_samples=0, progress=False, params=params)
        res.to_json(out)
        return json.loads(out.read_text())


def one_draw(T, d, sigma: float, rng, truth: dict) -> dict:
    """One noise draw fitted: its bounds, and for each quantity which side missed the truth."""
    data = d + sigma * rng.standard_normal(T.size)
    r = fit(T, data, sigma)
    bounds = (r.get("profile") or {}).get("bounds", {})
    row = dict(chi2=r["chi2"], converged=r["converged"], undetermined=r["undetermined"],
               params={n: r["params"][n] for n in ("g", "J0", "kappa_log", "A_rel")},
               T_U_K=r["T_U_K"], bounds={}, missed={})
    for q in QUANTITIES:
        b = bounds.get(q)
        if b is None:
            continue
        lo, hi = (None if v is None else float(v) for v in (b["lower"], b["upper"]))
        row["bounds"][q] = [lo, hi]
        row["missed"][q] = ("lower" if lo is not None and truth[q] < lo else
                            "upper" if hi is not None and truth[q] > hi else None)
    return row


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(at least k of n) for probability p each."""
    return float(sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1)))


def summary(result: dict) -> str:
    draws = result["draws"]
    lines = [f"{len(draws)} draws (seed {result['settings']['seed']}); truth: "
             + ", ".join(f"{k} {v:.4g}" for k, v in result["truth"].items())]
    for q in QUANTITIES:
        rows = [r for r in draws if q in r["bounds"]]
        if not rows:
            continue
        parts = []
        for side, i in (("lower", 0), ("upper", 1)):
            n = sum(r["bounds"][q][i] is not None for r in rows)
            k = sum(r["missed"][q] == side for r in rows)
            tail = binomial_tail(k, n, 1 - LEVEL) if n else math.nan
            parts.append(f"{side} bound given {n}, misses {k} (P(>= {k}) = {tail:.2g})")
        lines.append(f"  {q}: bounded in {len(rows)} draws; " + "; ".join(parts))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from tlsjax.cli._args import finish_parser, integer
    from tlsjax.cli._main import Parser

    ap = Parser(description=__doc__.split("\n")[0])
    ap.add_argument("--draws", type=integer(1, 1000), default=20)
    ap.add_argument("--seed", type=integer(0, 2**63 - 1), default=2)
    ap.add_argument("--out", default=str(ROOT / "experiments" / "out" / "dvv_coverage.json"))
    ap.add_argument("--overwrite", action="store_true")
    return finish_parser(ap)


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    run = ap.run_id(args)
    out = ap.check_output(args.out, args.overwrite, what="--out", suffixes=(".json",), run=run)
    import jax
    from _bench_common import working_tree_state

    from tlsjax._io import write_json
    from tlsjax._progress import progress_bar

    settings = dict(seed=args.seed, level=LEVEL)
    with jax.enable_x64(True):
        T, d, sigma, a_rel = truth_curve()
        done = _previous(out, settings)
        if done is None:
            fixed = _fixed_truth()
            at_truth = fit(T, d, sigma, params=fixed)
            done = dict(settings=settings, code=working_tree_state(), sigma=sigma, truth=dict(
                T_U=at_truth["T_U_K"], kappa_log=TRUTH["kappa_log"], A_rel=a_rel,
                g=TRUTH["g"], J0=TRUTH["J0"]), draws=[])
        rng = np.random.default_rng(args.seed)
        for _ in done["draws"]:  # the draws already made, in order
            rng.standard_normal(T.size)
        with progress_bar(args.draws, desc="Delta v/v draws", unit="fit",
                          initial=min(len(done["draws"]), args.draws)) as bar:
            while len(done["draws"]) < args.draws:
                done["draws"].append(one_draw(T, d, sigma, rng, done["truth"]))
                write_json(out, done, overwrite=True, run=run)
                bar.update()
    print(summary(dict(done, draws=done["draws"][:args.draws])))
    print(f"wrote {out}")
    return 0


def _fixed_truth():
    from tlsjax import Parameters

    return (Parameters().add("g", TRUTH["g"], vary=False).add("J_o", TRUTH["J0"], vary=False)
            .add("kappa_log", TRUTH["kappa_log"], vary=False))


def _previous(out: Path, settings: dict) -> dict | None:
    """The draws of an earlier run of the same settings written to `out`, if any."""
    try:
        previous = json.loads(Path(out).read_text())
    except (OSError, ValueError):
        return None
    return previous if previous.get("settings") == settings else None


if __name__ == "__main__":
    sys.exit(main())
