"""Do the profile-likelihood bounds of a Delta v/v fit cover the truth as often as they say?

The example curve `data/example_dvv.csv` (`make_example_curves.py`) is one noise draw of
the S-tau model (g = 0.01, J_o = 1500 K, kappa_log = 0.1, A k_B^3 = 6.14e10 1/(s K^3), the
default DOS sample, 1 kHz, 16 temperatures over 0.05-10 K) with Gaussian noise of
sigma = 1 % of the curve's range. Its fit (docs/how-to/fit-qinv-and-dvv.md) puts the
truth's T_U, kappa_log and A k_B^3 outside their one-sided 95 % profile bounds. One draw
cannot tell chance from a flaw; this script makes `--draws` new draws of the same noise
(numpy.random.default_rng(`--seed`)), fits each with `fit_curves(dvv=..., model="stau",
dos_samples=0)` (the model the example's default fit chooses; float64, known sigma,
profile bounds at 95 % one-sided),
and counts, for each bounded quantity, how often each side misses the truth. Each bound
should miss at most 1 time in 20 (asymptotically; the script gives the binomial
probability of at least the misses counted, if the bound were exact). A side the data do
not bound (open up to the edge of the parameter's range) covers the truth; so does a side
given as open because its profile levels off (`tlsjax.fit._profile.LEVELS_OFF`), and the
summary says how often the crossing such a side passes would have missed (and, in runs
that record it, on how many sides the walk stopped at a failed re-minimization). The fit
profiles T_U in every draw, but the other quantities only in the draws where their Laplace
error does not describe them (undetermined, at a bound, poorly determined or correlated at
|r| >= 0.99 with another): their counts are over those draws only.

The truth's T_U is the fit's T_U at the true g and J_o in the same DOS sample (a fit of
the noiseless curve with g, J_o and kappa_log fixed). Results are written after every
draw, so Ctrl-C keeps the draws done; the same command again, with the same code, goes on
from them (`--overwrite` starts afresh). A draw whose fit fails is recorded as failed.

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

#: The quantities whose bounds are counted: key in the fit's `profile` bounds, truth key.
QUANTITIES = ("T_U", "kappa_log", "A_rel", "g", "J0")
LEVEL = 0.95


def _example():
    """`make_example_curves` (imported when needed: it imports JAX and turns on float64)."""
    import make_example_curves

    return make_example_curves


def truth_curve() -> tuple[np.ndarray, np.ndarray, float, float]:
    """(T, Delta v/v, sigma, A k_B^3) of the example's noiseless curve
    (`make_example_curves.noiseless_curves`; its noise sigma is 1 % of the curve's range)."""
    T, _, d, material = _example().noiseless_curves()
    return T, d, 0.01 * float(np.ptp(d)), float(material.relaxation_A_K)


def fit(T, d, sigma: float, params=None) -> dict:
    """The default S-tau Delta v/v fit of a curve (`fit_curves`, its JSON as a dict)."""
    import tlsjax as tj

    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "curve.csv", Path(tmp) / "fit.json"
        rows = "".join(f"{float(t)!r},{float(v)!r}\n" for t, v in zip(T, d))
        path.write_text("T(K),dv/v\n" + rows)
        res = tj.fit_curves(dvv=str(path), freq_dvv=_example().FREQ_HZ, sigma_dvv=sigma,
                            model="stau", dos_samples=0, progress=False, params=params)
        res.to_json(out)
        return json.loads(out.read_text())


def one_draw(T, d, sigma: float, rng, truth: dict) -> dict:
    """One noise draw fitted: its bounds, and for each quantity which side missed the truth
    (None: covered, an open side included)."""
    data = d + sigma * rng.standard_normal(T.size)
    try:
        r = fit(T, data, sigma)
    except ValueError as err:  # no candidate could be fitted: recorded, the study goes on
        return dict(failed=str(err))
    if r["interrupted"]:  # Ctrl-C inside the fit: stop here, keep the draws done
        raise KeyboardInterrupt
    bounds = (r.get("profile") or {}).get("bounds", {})
    row = dict(chi2=r["chi2"], converged=r["converged"], undetermined=r["undetermined"],
               params={n: r["params"][n] for n in ("g", "J0", "kappa_log", "A_rel")},
               T_U_K=r["T_U_K"], bounds={}, missed={}, levels_off={}, fails_beyond={})
    for q in QUANTITIES:
        b = bounds.get(q)
        if b is None:
            continue
        lo, hi = (None if v is None else float(v) for v in (b["lower"], b["upper"]))
        row["bounds"][q] = [lo, hi]
        if b.get("levels_off"):  # a side given as open because its profile levels off
            row["levels_off"][q] = b["levels_off"]
        if b.get("fails_beyond"):  # a side whose walk stopped at a failed re-minimization
            row["fails_beyond"][q] = b["fails_beyond"]
        row["missed"][q] = ("lower" if lo is not None and truth_outside(lo, "lower", truth[q])
                            else "upper" if hi is not None and truth_outside(hi, "upper", truth[q])
                            else None)
    return row


def truth_outside(bound: float, side: str, truth: float) -> bool:
    """Whether a `side` ("lower"/"upper") bound excludes the truth."""
    return truth < bound if side == "lower" else truth > bound


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(at least k of n) for probability p each."""
    return float(sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1)))


def summary(result: dict) -> str:
    """Misses of each side of each quantity's bounds, over the draws that profiled it."""
    draws = [r for r in result["draws"] if "failed" not in r]
    failed = len(result["draws"]) - len(draws)
    unconverged = sum(not r["converged"] for r in draws)
    lines = [f"{len(result['draws'])} draws (seed {result['settings']['seed']}; {failed} "
             f"failed, {unconverged} not converged); truth: "
             + ", ".join(f"{k} {v:.4g}" for k, v in result["truth"].items())]
    for q in QUANTITIES:
        rows = [r for r in draws if q in r["bounds"]]
        if not rows:
            continue
        parts = []
        for side, i in (("lower", 0), ("upper", 1)):
            k = sum(r["missed"][q] == side for r in rows)
            opened = sum(r["bounds"][q][i] is None for r in rows)
            flat = [r for r in rows if side in r.get("levels_off", {}).get(q, {})]
            would = sum(truth_outside(r["levels_off"][q][side]["crossing"], side,
                                      result["truth"][q]) for r in flat)
            stopped = ""  # runs before `fails_beyond` was recorded say nothing
            if all("fails_beyond" in r for r in rows):
                n_failed = sum(side in r["fails_beyond"].get(q, {}) for r in rows)
                stopped = (f"; the walk stopped at a failed re-minimization in {n_failed}, "
                           "bounded or open")
            parts.append(f"{side}: misses {k} (P(>= {k}) = "
                         f"{binomial_tail(k, len(rows), 1 - LEVEL):.2g}; open in {opened}, "
                         f"{len(flat)} of them levelling off, where the crossing would have "
                         f"missed {would}{stopped})")
        lines.append(f"  {q}, profiled in {len(rows)} draws: " + "; ".join(parts))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from tlsjax.cli._args import finish_parser, integer
    from tlsjax.cli._main import Parser

    ap = Parser(description=__doc__.split("\n")[0])
    ap.add_argument("--draws", type=integer(1, 1000), default=20)
    ap.add_argument("--seed", type=integer(0, 2**63 - 1), default=2)
    ap.add_json_out(str(ROOT / "experiments" / "out" / "dvv_coverage.json"))
    return finish_parser(ap)


def main(argv=None) -> int:
    ap = build_parser()
    args, run, out = ap.parse_with_json_out(argv)
    from _bench_common import working_tree_state

    from tlsjax._validate import enable_x64

    previous = None if args.overwrite else _previous(out, dict(seed=args.seed, level=LEVEL))
    if previous is not None and previous.get("code") != working_tree_state():
        code = previous.get("code") or {}
        ap.error(f"argument --out: {out} holds draws made by other code (commit "
                 f"{code.get('commit')}, modified {code.get('modified')}); pass --overwrite to "
                 "start afresh")

    try:
        with enable_x64(True):
            done = _run(args, run, out, previous)
    except KeyboardInterrupt:
        print(f"interrupted: the draws written to {out} (if any) are kept; the same command "
              "goes on from them", file=sys.stderr)
        return 130
    print(summary(dict(done, draws=done["draws"][:args.draws])))
    print(f"results in {out}")
    return 0


def _run(args, run: str, out: Path, done: dict | None) -> dict:
    """The study (`main`): the truth (unless `done`, an earlier run's results, has it), then
    the draws not yet made, each written to `out`."""
    from _bench_common import working_tree_state

    from tlsjax._io import write_json
    from tlsjax._progress import progress_bar

    T, d, sigma, a_rel = truth_curve()
    if done is None:
        at_truth = fit(T, d, sigma, params=_fixed_truth())
        if at_truth["interrupted"]:
            raise KeyboardInterrupt
        truth = _example().TRUTH
        done = dict(settings=dict(seed=args.seed, level=LEVEL), code=working_tree_state(),
                    sigma=sigma, truth=dict(T_U=at_truth["T_U_K"], kappa_log=truth["kappa_log"],
                                            A_rel=a_rel, g=truth["g"], J0=truth["J0"]),
                    draws=[])
    rng = np.random.default_rng(args.seed)
    for _ in done["draws"]:  # the draws already made, in order
        rng.standard_normal(T.size)
    with progress_bar(args.draws, desc="Delta v/v draws", unit="fit",
                      initial=min(len(done["draws"]), args.draws)) as bar:
        while len(done["draws"]) < args.draws:
            done["draws"].append(one_draw(T, d, sigma, rng, done["truth"]))
            write_json(out, done, overwrite=args.overwrite, run=run)
            bar.update()
    return done


def _fixed_truth():
    from tlsjax import Parameters

    truth = _example().TRUTH
    return (Parameters().add("g", truth["g"], vary=False).add("J_o", truth["J0"], vary=False)
            .add("kappa_log", truth["kappa_log"], vary=False))


def _previous(out: Path, settings: dict) -> dict | None:
    """The draws of an earlier run of the same settings written to `out`, if any."""
    try:
        previous = json.loads(Path(out).read_text())
    except (OSError, ValueError):
        return None
    return previous if previous.get("settings") == settings else None


if __name__ == "__main__":
    sys.exit(main())
