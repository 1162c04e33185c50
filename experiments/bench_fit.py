"""Fit times of kappa(T) curves, before and after the fast fitting path, per curve.

Each fit runs in a fresh Python process, so every number includes importing JAX and
tlsjax, building the S-tau C(E) table (ES reduction) and compiling: what a user waits
for with `tlsjax fit kappa FILE`. Curves: the three measured curves of
`../shared/data/kappa/` (when present) and a synthetic 13-point curve (13 of the 16
points of `data/example_kappa.csv`, evenly spread; the S-tau model generated them with 3 %
noise).

- **before**: the code of commit `BEFORE` (extracted with `git archive`, run from a
  temporary folder): `fit_kappa(file)`, free g, J0, kv, default DOS sample.
- **after, S-tau**: the same model and free parameters with the current code,
  profile-likelihood bounds included.
- **after, S-tau + boundary**: 4 free parameters (g, J0, kv, l_b / v_eff^2).
- **after, auto**: `tlsjax fit kappa FILE` as it runs by default: 8 candidate models
  fitted and compared by AICc, then errors and bounds of the chosen one.
- **cold / warm** (`--cold-warm`): `tlsjax fit kappa FILE` as a program (default, and
  `--model stau --dos-samples 0`), each in a fresh process; cold with an empty compilation
  cache folder (`TLSJAX_CACHE_DIR`), warm with the folder the cold run filled. The warm
  report must be identical to the cold one (checked). With `--cold-warm` only these runs
  and the NumPy baseline are made.
- **paired** (`--paired COMMIT [--rounds N]`): the default `tlsjax fit kappa FILE`, cold
  and warm, of the code of COMMIT and of this checkout in turn, N rounds (the two cold runs,
  then the two warm ones, the codes' order alternating from round to round; fresh cache
  folders each round): on a machine whose speed drifts, the ratios now / before of each
  round are the measure of a change. The reports of the two codes are compared. Only these
  runs and the NumPy baseline are made.
- **NumPy baseline**: the constant-C + boundary model (same Gauss-Legendre kappa
  integral) fitted by Levenberg-Marquardt with finite-difference Jacobians in plain
  NumPy, in-process (no import or compilation to pay): how long the arithmetic of a
  simple fit takes without JAX.

    python experiments/bench_fit.py [--out DIR] [--skip-before] [--curves N] [--first N]
                                    [--shared DIR] [--cold-warm] [--paired COMMIT]
                                    [--rounds N]

Writes `bench_fit.json` and prints a table. Times are wall-clock seconds on this
machine; on a shared machine they are noisy (CPU seconds are printed beside them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
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
    extract_commit,
    finish_run,
    resolve_commit,
    working_tree_state,
)

SHARED = ROOT.parent / "shared" / "data" / "kappa"
#: The last commit before the fast fitting path (kappa fits ~50 s on an idle machine).
BEFORE = "a810434"

CHILD = r"""
import json, os, sys, time, resource
t0 = time.perf_counter()
mode, path = sys.argv[1], sys.argv[2]
import tlsjax
from tlsjax import fit_kappa
t_import = time.perf_counter() - t0
if mode == "before":
    r = fit_kappa(path, progress=False)
elif mode == "stau":
    r = fit_kappa(path, progress=False)
elif mode == "stau_boundary":
    r = fit_kappa(path, boundary="free", progress=False)
else:
    from tlsjax.fit._select import select_kappa_model
    r = select_kappa_model(path, progress=False)
t = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
d = r.derived
print(json.dumps(dict(seconds=t, import_seconds=t_import, cpu_seconds=ru.ru_utime + ru.ru_stime,
                      rms_log_residual=d["rms_log_residual"], converged=r.converged,
                      free=list(r.free), model=d.get("model_label", "S-tau"),
                      T_U_K=d.get("T_U_K"), T_U_K_lower=d.get("T_U_K_lower"),
                      T_U_K_upper=d.get("T_U_K_upper"),
                      module=os.path.relpath(tlsjax.__file__))))
"""


def run_child(mode: str, path: Path, pythonpath: str | None) -> dict:
    env = os.environ.copy()
    env["JAX_PLATFORMS"] = "cpu"
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(path)], env=env,
                         capture_output=True, text=True, cwd=pythonpath or ROOT)
    wall = time.perf_counter() - t
    code = "before" if pythonpath else "now"  # `module` is relative to that code's root
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return dict(error=last, process_seconds=wall, code=code)
    try:
        d = json.loads(lines[-1])
    except ValueError:
        return dict(error=f"no JSON line: {lines[-1][:200]}", process_seconds=wall, code=code)
    return dict(d, process_seconds=wall, code=code)


#: The command-line settings timed cold and warm (`--cold-warm`).
CLI_SETTINGS = {"default": [], "stau": ["--model", "stau", "--dos-samples", "0"]}


def run_cli(path: Path, extra: list[str], cache: Path, root: Path = ROOT,
            quantity: str = "kappa") -> dict:
    """`tlsjax fit QUANTITY path *extra` in a fresh process with the cache folder `cache`,
    of the code under `root` (its `tlsjax/`): wall and CPU seconds (user + system, and
    each), the 1-minute load average before it, and the report."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", TLSJAX_CACHE_DIR=str(cache))
    env.pop("TLSJAX_NO_CACHE", None)
    load = os.getloadavg()[0]
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "tlsjax.cli", "fit", quantity, str(path), *extra],
                         env=env, capture_output=True, text=True, cwd=root)
    wall = time.perf_counter() - t
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, system = cpu1.ru_utime - cpu0.ru_utime, cpu1.ru_stime - cpu0.ru_stime
    if out.returncode != 0:
        return dict(error=out.stderr.strip().splitlines()[-1], seconds=wall)
    return dict(seconds=wall, cpu_seconds=user + system, user_seconds=user,
                system_seconds=system, load_average=load, report=out.stdout)


def cold_warm(path: Path, tmpdir: Path) -> dict:
    """Cold (empty cache folder) then warm (the same folder) runs of each `CLI_SETTINGS`."""
    row = {}
    for name, extra in CLI_SETTINGS.items():
        cache = tmpdir / f"cache-{path.stem}-{name}"
        cold = run_cli(path, extra, cache)
        warm = run_cli(path, extra, cache)
        same = "error" not in cold and cold.get("report") == warm.get("report")
        for d in (cold, warm):
            d.pop("report", None)
        row[name] = dict(cold=cold, warm=warm, identical_report=same)
        print(f"{path.stem:28s} {name:8s} {json.dumps(row[name])}", flush=True)
    return row


def paired(path: Path, tmpdir: Path, old: Path, rounds: int, quantity: str = "kappa",
           extra: tuple[str, ...] = ()) -> dict:
    """`rounds` rounds of the cold and warm runs of `tlsjax fit QUANTITY path *extra`, the
    code under `old` and this checkout's in turn; the runs, and per round the ratios now /
    before."""
    runs: dict[str, list] = {"before": [], "now": []}
    reports = set()
    for i in range(rounds):
        # the codes' order alternates from round to round, so that a drift within a round
        # favours neither
        roots = {"before": old, "now": ROOT} if i % 2 == 0 else {"now": ROOT, "before": old}
        caches = {code: tmpdir / f"paired-{path.stem}-{code}-{i}" for code in roots}
        done = {code: {} for code in roots}
        for kind in ("cold", "warm"):
            for code, root in roots.items():
                done[code][kind] = d = run_cli(path, list(extra), caches[code], root, quantity)
                reports.add(d.pop("report", None))
        for code in ("before", "now"):
            runs[code].append(done[code])
        print(f"{path.stem:28s} round {i + 1}: " + json.dumps(done), flush=True)
    ratios = {kind: [n[kind]["seconds"] / b[kind]["seconds"]
                     for b, n in zip(runs["before"], runs["now"])
                     if "error" not in b[kind] and "error" not in n[kind]]
              for kind in ("cold", "warm")}
    return dict(runs=runs, ratio_now_over_before=ratios,
                identical_reports=len(reports) == 1 and None not in reports)


def print_paired(results: dict, commit: str, command: str = "tlsjax fit kappa FILE") -> None:
    print(f"wall seconds of `{command}`, median over rounds; now / before per round "
          f"(before: {commit[:7]})")
    for label, row in results.items():
        d = row["paired"]
        med = {code: {kind: float(np.median([r[kind]["seconds"] for r in d["runs"][code]
                                             if "error" not in r[kind]] or [math.nan]))
                      for kind in ("cold", "warm")} for code in ("before", "now")}
        cells = [f"{kind} {med['before'][kind]:5.1f} -> {med['now'][kind]:5.1f} s (ratios "
                 + " ".join(f"{x:.2f}" for x in d["ratio_now_over_before"][kind]) + ")"
                 for kind in ("cold", "warm")]
        print(f"{label:28s} " + "  ".join(cells)
              + ("" if d["identical_reports"] else "  REPORTS DIFFER"))


def print_cold_warm(results: dict) -> None:
    print("wall seconds of `tlsjax fit kappa FILE` (CPU seconds, 1-min load average before)")
    for label, row in results.items():
        for name, d in row["cold_warm"].items():
            cells = [("error" if "error" in d[k] else
                      f"{k} {d[k]['seconds']:5.1f} ({d[k]['cpu_seconds']:.1f} CPU, "
                      f"load {d[k]['load_average']:.1f})") for k in ("cold", "warm")]
            print(f"{label:28s} {name:8s} " + "  ".join(cells)
                  + ("" if d["identical_report"] else "  REPORTS DIFFER"))


def old_code(commit: str = BEFORE) -> tempfile.TemporaryDirectory:
    """A temporary folder holding the `tlsjax/` of `commit`."""
    tmp = tempfile.TemporaryDirectory(prefix="tlsjax-before-")
    extract_commit(commit, tmp.name)
    return tmp


def curves(tmpdir: Path, n: int, shared: Path = SHARED) -> list[tuple[str, Path]]:
    out = []
    if shared.is_dir():
        for name in ("stycast1266_olson1993.csv", "ptfe_anderson1963_s1.csv",
                     "ptfe_reese1965_s1.csv"):
            out.append((name.removesuffix(".csv"), shared / name))
    lines = (ROOT / "data" / "example_kappa.csv").read_text().splitlines()
    body = [ln for ln in lines[2:] if ln.strip()]
    synth = tmpdir / "synthetic13.csv"
    idx = np.round(np.linspace(0, len(body) - 1, 13)).astype(int)
    synth.write_text("\n".join([lines[1]] + [body[i] for i in idx]) + "\n")
    assert len(synth.read_text().splitlines()) == 14
    out.append(("synthetic 13 points", synth))
    return out[-n:] if n else out


# ---------------------------------------------------------------- the NumPy baseline


def numpy_fit(path: Path) -> dict:
    """Constant C + boundary, velocity-free (parameters ln Cv, ln l_b/v^2), LM in NumPy."""
    from tlsjax.fit._data import load_curve
    from tlsjax.observables._material import HBAR, K_B
    from tlsjax.observables._stm import _KAPPA_CONST, _X_NODES, _X_WEIGHTS

    t0 = time.perf_counter()
    c = load_curve(path)
    T, y = c.T, np.log(c.y)
    x, w = _X_NODES, _X_WEIGHTS
    heat = x**4 / (4.0 * np.sinh(0.5 * x) ** 2)

    def model(q):
        a, lb = np.exp(np.clip(q, -60.0, 60.0))  # a = C v (velocity v = a with C = 1); l' = a^2 l_b/v^2
        omega = x[None, :] * T[:, None] * K_B / HBAR
        inv_l = math.pi * omega / a * np.tanh(0.5 * x)[None, :] + 1.0 / (a * a * lb)
        return np.log(_KAPPA_CONST * T**3 * 3.0 * np.sum(w * heat / inv_l, axis=1) / a**2)

    q = np.log([1.0, 1e30])  # amplitude first (kappa is proportional to 1 / a without l_b)
    q[0] = float(np.median(model(q) - y))
    q[1] = math.log(3.0 * c.y[0] / (4.07e10 * T[0] ** 3))  # l_b alone: 3x the data at T_min
    lam, evals = 1e-3, 0
    r = model(q) - y
    for _ in range(200):
        J = np.stack([(model(q + dq) - model(q - dq)) / 2e-6
                      for dq in np.eye(2) * 1e-6], axis=1)
        evals += 4
        A = J.T @ J
        A = A + lam * (np.diag(np.diag(A)) + 1e-12 * np.trace(A) * np.eye(2))
        step = np.linalg.lstsq(A, -J.T @ r, rcond=None)[0]
        r_new = model(q + step) - y
        evals += 1
        if np.sum(r_new**2) < np.sum(r**2):
            dec = np.sum(r**2) - np.sum(r_new**2)
            q, r, lam = q + step, r_new, lam / 3
            if dec < 1e-12:
                break
        else:
            lam *= 10
    return dict(seconds=time.perf_counter() - t0, rms_log_residual=float(np.sqrt(np.mean(r**2))),
                evaluations=evals)


def build_parser() -> argparse.ArgumentParser:
    from tlsjax.cli._args import finish_parser, integer
    from tlsjax.cli._main import Parser

    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "experiments" / "out"),
                    help="folder of bench_fit.json")
    ap.add_argument("--overwrite", action="store_true", help="allow replacing bench_fit.json")
    ap.add_argument("--skip-before", action="store_true", help="do not time the old code")
    ap.add_argument("--curves", type=integer(0, 100), default=0,
                    help="only the last N curves (0: all)")
    ap.add_argument("--first", type=integer(0, 100), default=0,
                    help="only the first N of those (0: all)")
    ap.add_argument("--shared", default=None,
                    help="folder of the measured kappa curves (default ../shared/data/kappa; "
                    "skipped with a note where absent)")
    ap.add_argument("--cold-warm", action="store_true",
                    help="only the cold / warm command-line runs and the NumPy baseline")
    ap.add_argument("--paired", default=None, metavar="COMMIT",
                    help="only the default command's cold / warm runs of COMMIT's code and "
                    "this checkout's in turn, and the NumPy baseline")
    ap.add_argument("--rounds", type=integer(1, 100), default=None,
                    help="rounds of --paired (default 3)")
    return finish_parser(ap)


def _checked_commits(ap, args) -> str | None:
    """Check the options that name older code (before any work); returns the full hash of
    --paired's commit, or None."""
    if args.rounds is not None and args.paired is None:
        ap.error("argument --rounds: only with --paired COMMIT")
    paired_commit = None
    if args.paired is not None:
        if args.cold_warm:
            ap.error("argument --paired: not with --cold-warm (it makes its own cold and warm "
                     "runs)")
        paired_commit = resolve_commit(args.paired, ["tlsjax"])
        if paired_commit is None:
            ap.error(f"argument --paired: {args.paired!r} is not a commit of this clone with "
                     "tlsjax/")
    if not (args.skip_before or args.cold_warm or args.paired) \
            and resolve_commit(BEFORE, ["tlsjax"]) is None:
        ap.error(f"argument --skip-before: the older code {BEFORE} is not in this clone (a "
                 "shallow clone?); pass --skip-before")
    return paired_commit


def _failures(results: dict) -> list[str]:
    """The runs that failed, by curve, mode and run."""
    return [f"{label} {mode}" for label, row in results.items() for mode, d in row.items()
            if "error" in d] + [
        f"{label} {name} {k}" for label, row in results.items()
        for name, d in row.get("cold_warm", {}).items() for k in ("cold", "warm") if "error" in d[k]
    ] + [f"{label} paired {code} round {i + 1} {k}" for label, row in results.items()
         for code, rs in row.get("paired", {}).get("runs", {}).items()
         for i, r in enumerate(rs) for k in ("cold", "warm") if "error" in r[k]]


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.shared is not None and not Path(args.shared).is_dir():
        ap.error(f"argument --shared: {args.shared!r} is not a folder")
    shared = Path(args.shared) if args.shared is not None else SHARED
    if not shared.is_dir():
        print(f"note: {SHARED} is absent: only the synthetic curve is timed")
    run = ap.run_id(args)
    json_path = ap.check_output(Path(args.out) / "bench_fit.json", args.overwrite, run=run,
                                what="--out's bench_fit.json")
    start = working_tree_state()
    paired_commit = _checked_commits(ap, args)
    only_cli = args.cold_warm or args.paired is not None
    modes = ([] if args.skip_before or only_cli else ["before"]) + (
        [] if only_cli else ["stau", "stau_boundary", "auto"])
    results = {}
    with tempfile.TemporaryDirectory() as tmpname:
        old = old_code() if "before" in modes else None
        pair = old_code(paired_commit) if paired_commit is not None else None
        todo = curves(Path(tmpname), args.curves, shared)
        for label, path in todo[:args.first or None]:
            row = {}
            for mode in modes:
                row[mode] = run_child(mode, path, old.name if mode == "before" else None)
                print(f"{label:28s} {mode:14s} {json.dumps(row[mode])}", flush=True)
            if args.cold_warm:
                row["cold_warm"] = cold_warm(path, Path(tmpname))
            if paired_commit is not None:
                row["paired"] = paired(path, Path(tmpname), Path(pair.name), args.rounds or 3)
            row["numpy_stm_boundary"] = numpy_fit(path)
            results[label] = row
        for code in (old, pair):
            if code is not None:
                code.cleanup()
    print()
    if args.cold_warm:
        print_cold_warm(results)
    if paired_commit is not None:
        print_paired(results, paired_commit)
    head = f"{'curve':28s} " + " ".join(f"{m:>16s}" for m in modes) + f" {'NumPy LM':>15s}"
    print("wall seconds per fit (process: import + table + compile + fit + errors), "
          "rms ln residual in brackets")
    print(head)
    for label, row in results.items():
        cells = []
        for m in modes:
            d = row[m]
            cells.append("error" if "error" in d else
                         f"{d['seconds']:6.1f} ({d['rms_log_residual']:.3f})")
        nb = row["numpy_stm_boundary"]
        cells.append(f"{nb['seconds']:.3f} ({nb['rms_log_residual']:.3f})")
        print(f"{label:28s} " + " ".join(f"{c:>16s}" for c in cells))
    if "before" in modes:
        print("\nspeed-up of the S-tau fit (before / after):",
              ", ".join(f"{k}: {r['before']['seconds'] / r['stau']['seconds']:.1f}x"
                        for k, r in results.items()
                        if "error" not in r["before"] and "error" not in r["stau"]))
    meta = dict(python=sys.version.split()[0], cpus=os.cpu_count(),
                load_average=os.getloadavg(), now=code_state_over(start))
    if "before" in modes:
        meta["before_commit"] = BEFORE
    if paired_commit is not None:
        meta["paired_commit"] = paired_commit
    return finish_run(json_path, meta, results, _failures(results), overwrite=args.overwrite,
                      run=run)


if __name__ == "__main__":
    raise SystemExit(main())
