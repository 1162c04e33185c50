"""Does the CPU get slower? The Monte Carlo and ES benchmarks, an older commit against this code.

Extracts the code of commit `--before` (default 9bc7b40, the code before the accelerator
work) with `git archive`, and runs the same benchmark cases with each code's own scripts,
alternately, `--rounds` times (before, now, before, now, ...), each case in a fresh
process:

- `bench_mc.py --case throughput --cells L --repeats 3` at L = 18 (paper size) and 10:
  ms per sweep at R = 1, 4, 16, 64 replicas, and attempts/s against NumPy's in the same
  process (with `identical_sweep`: both give NumPy's spins);
- `bench_es.py --case tlsjax --cells L --repeats R` at L = 18 (R = 21) and 29 (R = 5):
  the hard ES reduction's run time (median of R) and its first call (compilation).

Every case runs under `_gc_probe.py`, the same for both codes, which records the seconds
the process spent in Python's full (generation-2) garbage collections: one of them takes
tens of milliseconds, and whether it falls inside a timed call depends on everything the
code allocated before, not on the compiled program.

Prints a table (the differences between two rounds of one code are the noise to compare
the codes against) and writes every case's output as JSON (the E_min of each ES run as a
hash: the two codes must give the same bits), with the commit of this checkout and
whether its code (tlsjax/, the experiment scripts) was modified. A case that fails stops the run; the
rounds done so far are written (`"complete": false`).

    python experiments/bench_cpu_before_after.py [--before COMMIT] [--rounds N]
        [--out FILE.json] [--overwrite]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import (  # noqa: E402
    ROOT,
    code_state_over,
    extract_commit,
    resolve_commit,
    run_case,
    working_tree_state,
)

BEFORE = "9bc7b40"
#: (script, case, cells, repeats)
CASES = [
    ("bench_mc.py", "throughput", 18, 3),
    ("bench_mc.py", "throughput", 10, 3),
    ("bench_es.py", "tlsjax", 18, 21),
    ("bench_es.py", "tlsjax", 29, 5),
]


def timed_case(code: Path, script: str, case: str, cells: int, repeats: int) -> dict:
    """One case in a fresh process with the package of `code` first on the path, with the
    1-minute load average before it, the process's wall seconds and its garbage collections
    (`"gc"`, `_gc_probe.py`); E_min as a hash."""
    load = os.getloadavg()[0]
    t = time.perf_counter()
    result = run_case(str(code / "experiments" / script), case, cells, repeats, code=code,
                      gc_probe=True)
    e_min = result.pop("e_min", None)
    if e_min is not None:
        result["e_min_sha256"] = hashlib.sha256(json.dumps(e_min).encode()).hexdigest()
    return dict(result, load_average=load, process_seconds=time.perf_counter() - t)


def rows(runs: list[dict]) -> list[tuple[str, str, dict[str, list[float]]]]:
    """(benchmark, format, {code: [value of each round]}) for the table."""
    def select(script, cells):
        return [r for r in runs if r["script"] == script and r["cells"] == cells]

    def by_code(selected, value):
        out: dict[str, list[float]] = {"before": [], "now": []}
        for r in selected:
            out[r["code"]].append(float(value(r["result"])))
        return out

    def sweep(result, replicas):
        return next(row for row in result["rows"] if row["replicas"] == replicas)

    table = []
    for cells in (18, 10):
        mc = select("bench_mc.py", cells)
        for replicas in (1, 4, 16, 64):
            table.append((f"MC sweep, L = {cells}, wall ms, R = {replicas}", "{:.3g}", by_code(
                mc, lambda res, n=replicas: sweep(res, n)["ms_per_sweep"])))
        for replicas in (16, 64):
            table.append((f"same, attempts/s against NumPy, R = {replicas}", "{:.1f}x", by_code(
                mc, lambda res, n=replicas: sweep(res, n)["speedup"])))
    for cells in (18, 29):
        es = select("bench_es.py", cells)
        table.append((f"ES, L = {cells}, wall s (median)", "{:.3g}",
                      by_code(es, lambda res: res["seconds"])))
        table.append(("same, first call (compilation) s", "{:.2g}",
                      by_code(es, lambda res: res["compile_seconds"])))
        table.append(("same, full garbage collections in the process, s", "{:.2g}",
                      by_code(es, lambda res: res["gc"]["gen2_seconds"])))
    return table


def table(runs: list[dict], before: str) -> str:
    """The rounds of each code, and now / before of their medians (for attempts/s against
    NumPy, > 1 is faster; for times, < 1)."""
    out = [f"| benchmark (2 cores) | before ({before}), rounds 1 / 2 / ... | now, rounds 1 / 2 / "
           "... | now / before (medians) |", "|---|---|---|---|"]
    for label, fmt, values in rows(runs):
        cells = [" / ".join(fmt.format(v) for v in values[code]) for code in ("before", "now")]
        ratio = statistics.median(values["now"]) / statistics.median(values["before"])
        out.append(f"| {label} | {cells[0]} | {cells[1]} | {ratio:.2f} |")
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    from tlsjax.cli._args import finish_parser, integer
    from tlsjax.cli._main import Parser

    ap = Parser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", default=BEFORE,
                    help="the older code: a commit of this repository (default %(default)s)")
    ap.add_argument("--rounds", type=integer(1, 20), default=2,
                    help="alternating rounds of the two codes (default %(default)s)")
    ap.add_json_out("experiments/out/bench_cpu_before_after.json")
    return finish_parser(ap)


def main(argv=None) -> int:
    ap = build_parser()
    args, run, out = ap.parse_with_json_out(argv)
    scripts = sorted({f"experiments/{script}" for script, *_ in CASES})
    commit = resolve_commit(args.before, needs=scripts)
    if commit is None:
        ap.error(f"argument --before: must be a commit of this repository with "
                 f"{' and '.join(scripts)}; got {args.before!r}")
    from tlsjax._io import write_json

    runs, failed, start = [], None, working_tree_state()
    with tempfile.TemporaryDirectory(prefix="tlsjax-before-") as folder:
        codes = {"before": extract_commit(commit, folder, ("tlsjax", "experiments")),
                 "now": ROOT}
        try:
            for round_ in range(1, args.rounds + 1):
                for code, path in codes.items():
                    for script, case, cells, repeats in CASES:
                        result = timed_case(path, script, case, cells, repeats)
                        runs.append(dict(round=round_, code=code, script=script, case=case,
                                         cells=cells, repeats=repeats, result=result))
                        print(f"round {round_}, {code}: {script} {case} L = {cells}: "
                              f"{result['process_seconds']:.0f} s", flush=True)
        except RuntimeError as err:
            failed = f"{code} code, round {round_}: {err}"
    write_json(out, dict(before=args.before, before_commit=commit, now=code_state_over(start),
                         rounds=args.rounds, complete=failed is None, runs=runs),
               overwrite=args.overwrite, run=run)
    if failed:
        print(f"stopped: {failed}; the {len(runs)} cases done are in {out}", file=sys.stderr)
        return 1
    print(table(runs, args.before))
    differ = [f"round {r['round']} {r['code']} L = {r['cells']} R = {row['replicas']}"
              for r in runs if r["script"] == "bench_mc.py" for row in r["result"]["rows"]
              if row["identical_sweep"] != 1.0]
    print("every Monte Carlo row gives NumPy's spins" if not differ else
          "NOT NumPy's spins: " + ", ".join(differ))
    for cells in sorted({r["cells"] for r in runs if r["script"] == "bench_es.py"}):
        hashes = {code: {r["result"].get("e_min_sha256") for r in runs if r["code"] == code
                         and r["script"] == "bench_es.py" and r["cells"] == cells}
                  for code in ("before", "now")}
        if None in hashes["before"] | hashes["now"]:
            print(f"E_min at L = {cells}: not compared (the case does not return it)")
        else:
            print(f"E_min at L = {cells}: " + ("the same bits from both codes" if
                  len(hashes["before"] | hashes["now"]) == 1 else "DIFFERS between runs"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
