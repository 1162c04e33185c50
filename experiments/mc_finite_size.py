"""Finite-size drift of the full model (Eq. 1) by Monte Carlo: x = 0.2, a~ = 3, fcc,
L = 8, 12, 18, 24, 30.

Per L: T_U/<E_tau> by the ES estimator on the Monte Carlo state (estimator b) and by the
ES shortcut of the same realizations, the gap exponents (log-log slope of P_S where
1e-3 < P_S < 0.1) and the lowest energy per spin, disorder-averaged (`run_mc_study`,
default `MCConfig`: 2000 annealing + 500 tempering sweeps on 16 rungs, then the descent).
Realizations run in batches (`--batch`, vmapped together on an accelerator) until the
standard error of T_U/<E_tau> (b) is at most `--target-se` (after at least
`--min-realizations`) or `--max-realizations` are done.

Resumable: every finished batch of realizations lo..hi-1 is saved at once as
`<out>/rows/L<L>_r<lo>-<hi>.npz`; running the same command again skips what is done
(other settings in the same folder are refused; sizes may be added later with another
`--cells`, and `--batch` may change), and Ctrl-C loses only the
batch in progress. After every batch the outputs are rewritten from every size done so
far: `mc_finite_size.png`, `mc_finite_size.csv`, `mc_finite_size.json` (with the
realizations each L holds and the sizes not yet run). `--previous FILE` adds the sizes of an
earlier run's `mc_finite_size.json` (same settings) that this folder has no rows for, e.g. a
CPU run's L = 8..24 beside a GPU run's L = 30; each case says where it comes from (rows of
this folder win over an earlier case of the same L, and the output says so).
`--write-only` runs nothing and rewrites the outputs from what is there. Every saved batch
records the backend that ran it; each case lists its realizations per backend.
`experiments/figures/mc_finite_size_run/` holds the committed study's rows: a run from a copy
of it goes on with the next realizations (recipe: docs/how-to/gpu.md).

Each realization's coupling matrix K is stored while it fits `--max-dense-bytes` (2**30 by
default: up to L = 21); beyond, its rows are generated on the fly (less memory, more time).
With the memory, `--max-dense-bytes 3000000000` keeps K stored at L = 24 (2.24e9 bytes).

    python experiments/mc_finite_size.py --out mc-finite-size [--cells 8,12,18,24,30]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from mc_fig2a import open_run_folder, read_rows  # this folder is on sys.path as a script

import tlsjax as tj
from tlsjax._io import OutputDir, atomic_path
from tlsjax._validate import seed_key
from tlsjax.cli._args import (
    BYTES_MAX,
    CELLS,
    SEED,
    NumberList,
    finish_parser,
    integer,
    positive,
)
from tlsjax.cli._main import ListAction, Parser
from tlsjax.model._hamiltonian import DEFAULT_DENSE_BYTES
from tlsjax.plot._save import save_figure
from tlsjax.studies._mc_study import (
    DEFAULT_E_BAR,
    MCStudy,
    default_dos_edges,
    mc_summary,
    run_mc_study,
)
from tlsjax.studies._reproduce import default_energies

SIZES = (8, 12, 18, 24, 30)
#: The outputs of this script in --out.
FILES = ("mc_finite_size.png", "mc_finite_size.csv", "mc_finite_size.json")
HEADER = ["cells", "n_sites_mean", "realizations", "T_U_over_E_tau_mc", "T_U_over_E_tau_mc_stderr",
          "T_U_over_E_tau_es", "T_U_over_E_tau_es_stderr", "gap_exponent_mc",
          "gap_exponent_mc_stderr", "gap_exponent_es", "gap_exponent_es_stderr",
          "energy_per_spin_K", "energy_per_spin_stderr_K", "seconds", "source", "reached_target",
          "backends"]


def build_parser() -> argparse.ArgumentParser:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="mc-finite-size")
    p.add_argument("--cells", type=NumberList(CELLS), nargs="+", action=ListAction,
                   default=list(SIZES), help="L values, e.g. 8,12 (" + ",".join(map(str, SIZES))
                   + ")")
    p.add_argument("--target-se", type=positive(1.0), default=0.005, dest="target_se",
                   help="standard error of T_U/<E_tau> (b) to reach per L (0.005)")
    p.add_argument("--min-realizations", type=integer(2), default=4, dest="min_realizations")
    p.add_argument("--max-realizations", type=integer(1), default=256, dest="max_realizations")
    p.add_argument("--batch", type=integer(1), default=4, help="realizations per run (4)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--quick", action="store_true",
                   help="100 annealing + 50 tempering sweeps (a smoke test, not a result)")
    p.add_argument("--max-dense-bytes", type=integer(0, BYTES_MAX), default=DEFAULT_DENSE_BYTES,
                   dest="max_dense_bytes",
                   help="store each realization's coupling matrix while it fits this many bytes (a "
                   "whole number, e.g. 3000000000), else generate its rows on the fly (default "
                   "2**30: stored up to L = 21; L = 24 needs 2240000000, L = 30 8260000000)")
    p.add_argument("--previous", default=None, metavar="FILE",
                   help="an earlier run's mc_finite_size.json (same settings): its sizes that "
                   "this folder has no rows for are added to the outputs")
    p.add_argument("--write-only", action="store_true", dest="write_only",
                   help="run nothing (--cells is ignored): rewrite the outputs from the rows in "
                   "--out and the cases of --previous")
    p.add_argument("--overwrite", action="store_true",
                   help="allow replacing files in --out that this script did not write")
    p.add_argument("--no-progress", action="store_true")
    return finish_parser(p)


def _args(p: Parser, argv=None):
    a = p.parse_args(argv)
    p.check_folder(a.out)
    if not 1 <= a.batch <= a.max_realizations or not 2 <= a.min_realizations <= a.max_realizations:
        p.error("argument --batch/--min-realizations/--max-realizations: need 1 <= --batch <= "
                "--max-realizations and 2 <= --min-realizations <= --max-realizations; got "
                f"{a.batch}, {a.min_realizations}, {a.max_realizations}")
    if a.write_only and a.previous is None and not _batch_files(Path(a.out)):
        p.error(f"argument --write-only: nothing to write ({a.out!r} has no rows and no "
                "--previous is given)")
    a.previous_cases = [] if a.previous is None else _previous_cases(
        p, a.previous, _settings(a), [] if a.write_only else a.cells)
    return a


def _settings(a) -> dict:
    return dict(target_se=a.target_se, min_realizations=a.min_realizations,
                max_realizations=a.max_realizations, seed=a.seed, quick=a.quick)


#: The numbers a case of an earlier run's JSON must hold: finite values, and errors that may
#: be null (NaN is written as null: one realization).
CASE_NUMBERS = ("n_sites_mean", "T_U_over_E_tau_mc", "T_U_over_E_tau_es", "energy_per_spin",
                "seconds")
CASE_ERRORS = ("T_U_over_E_tau_mc_stderr", "T_U_over_E_tau_es_stderr", "energy_per_spin_stderr")


def _num(v, name: str, nullable: bool = True) -> float:
    """A JSON number as a float (null: NaN, where `nullable`); anything else is refused."""
    if v is None and nullable:
        return float("nan")
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise TypeError(f"{name} must be a finite number{' or null' if nullable else ''}; "
                        f"got {v!r}")
    return float(v)


def _count(v, name: str, least: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < least:
        raise ValueError(f"{name} must be an integer >= {least}; got {v!r}")
    return v


def _previous_backends(c: dict, backend: str) -> dict[str, int]:
    """A case's realizations per backend. A file written before they were recorded: the
    backend of the file's writer for a case of its own rows, else "not recorded"."""
    if "backends" not in c:
        return {backend if c.get("source", "rows") == "rows" else "not recorded":
                c["realizations"]}
    counts = c["backends"]
    if not isinstance(counts, dict) or not all(isinstance(k, str) and k for k in counts):
        raise TypeError(f"backends must map backend names to counts; got {counts!r}")
    if sum(_count(v, f"backends.{k}", 1) for k, v in counts.items()) != c["realizations"]:
        raise ValueError(f"backends {counts} must add up to realizations = {c['realizations']}")
    return counts


def _previous_case(c: dict, origin: str, backend: str) -> dict:
    """A case of an earlier run's JSON: its numbers as floats and where it comes from."""
    for key, least in (("cells", 2), ("realizations", 1)):
        _count(c[key], key, least)
    ex = c["gap_exponent"]
    exponents = {k: _num(ex[k], f"gap_exponent.{k}") for k in ("mc", "es")}
    exponents |= {k: _num(ex.get(k), f"gap_exponent.{k}")
                  for k in ("mc_stderr", "mc_dos", "mc_dos_stderr", "es_stderr")}
    earlier = c.get("source", "rows")
    return dict(c, **{k: _num(c[k], k, False) for k in CASE_NUMBERS},
                **{k: _num(c[k], k) for k in CASE_ERRORS}, gap_exponent=exponents,
                source=origin if earlier == "rows" or earlier.startswith(origin)
                else f"{origin}: {earlier}",
                backends=_previous_backends(c, backend))


def _previous_cases(p, path: str, settings: dict, cells: list[int]) -> list[dict]:
    """The cases of an earlier run's JSON, refused (one line, exit 2) unless it is one with
    these settings and none of its sizes is among those to run (`cells`)."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        theirs = d["settings"]
        backend = d.get("backend", "not recorded")
        if not isinstance(backend, str) or not backend:
            raise TypeError(f"backend must be a non-empty string; got {backend!r}")
        origin = f"previous ({Path(path).name}, {backend})"
        cases = [_previous_case(c, origin, backend) for c in d["cases"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        p.error(f"--previous must be a mc_finite_size.json written by this script; {path!r}: "
                f"{type(e).__name__}: {e}")
    if theirs != settings:
        p.error(f"--previous {path!r} was run with other settings ({theirs}; this run: {settings})")
    sizes = [c["cells"] for c in cases]
    if len(set(sizes)) != len(sizes):
        p.error(f"--previous {path!r} holds a size twice: L = {sizes}")
    if both := sorted(set(sizes) & set(cells)):
        p.error(f"--previous {path!r} holds L = {both}, which --cells would run again: leave "
                "them out of --cells (e.g. --cells 30)")
    return cases


def _save_batch(path: Path, st: MCStudy) -> None:
    buf = io.BytesIO()
    np.savez(buf, seconds=np.asarray(st.seconds.get("total", np.nan)),
             backend=np.asarray(jax.default_backend()), **st.rows)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


#: A saved batch: rows/L<L>_r<lo>-<hi>.npz holds realizations lo..hi-1 of size L.
ROWS_FILE = re.compile(r"L(\d+)_r(\d+)-(\d+)\.npz")


def _batch_files(out: Path) -> dict[int, list[tuple[int, int, Path]]]:
    """The saved batches per size, as (lo, hi, path) in order of lo; a name of another
    form, or batches that do not cover realizations 0..n-1 once each, end the run (one line)."""
    found: dict[int, list] = {}
    for f in (out / "rows").glob("L*_r*.npz"):
        if (m := ROWS_FILE.fullmatch(f.name)) is None:
            raise SystemExit(f"{f}: not a batch of this script (L<L>_r<lo>-<hi>.npz); move it away")
        found.setdefault(int(m[1]), []).append((int(m[2]), int(m[3]), f))
    for cells, batches in found.items():
        batches.sort()
        ends = [0] + [hi for _, hi, _ in batches[:-1]]
        if [lo for lo, _, _ in batches] != ends or any(hi <= lo for lo, hi, _ in batches):
            raise SystemExit(f"{out / 'rows'}: the batches of L = {cells} must cover realizations "
                             f"0..n-1 once each; got {sorted(f.name for *_, f in batches)}")
    return found


def _load(batches: list, cells: int, config) -> tuple[MCStudy | None, dict[str, int]]:
    """The saved `batches` of size L (from `_batch_files`) as one `MCStudy` (None if none),
    and its realizations per backend that ran them ("not recorded": rows saved before the
    backend was)."""
    if not batches:
        return None, {}
    rows, seconds = read_rows([f for *_, f in batches])
    backends: dict[str, int] = {}
    for (lo, hi, f), r in zip(batches, rows):
        name = str(r.pop("backend", "not recorded"))
        backends[name] = backends.get(name, 0) + r["n_sites"].shape[0]
        if r["n_sites"].shape[0] != hi - lo:
            raise SystemExit(f"{f}: holds {r['n_sites'].shape[0]} realizations, not {hi - lo}")
    stacked = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    params = tj.HamiltonianParams(atilde=3.0)
    v = stacked["n_sites"].shape[0]
    return MCStudy(0.2, cells, "fcc", params, config, default_energies(),
                   default_dos_edges(params.g, params.J0), DEFAULT_E_BAR * params.g * params.J0,
                   4, stacked, v, dict(total=seconds)), backends


def _figure(cases: list[dict], missing: list[int], path: Path, config) -> None:
    import matplotlib.pyplot as plt

    cells = np.array([c["cells"] for c in cases])
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.8))
    for key, label in (("mc", "full model (estimator b)"), ("es", "ES shortcut")):
        ax[0].errorbar(cells, [c[f"T_U_over_E_tau_{key}"] for c in cases],
                       [c[f"T_U_over_E_tau_{key}_stderr"] for c in cases], marker="o", capsize=3,
                       label=label)
        ax[1].errorbar(cells, [c["gap_exponent"][key] for c in cases],
                       [c["gap_exponent"][f"{key}_stderr"] for c in cases], marker="o", capsize=3,
                       label=label)
    ax[0].set(xlabel="L (cells per edge)", ylabel="T_U / <E_tau>")
    ax[1].set(xlabel="L (cells per edge)", ylabel="S-gap exponent (slope of P_S, jackknife)")
    ax[2].errorbar(cells, [c["energy_per_spin"] for c in cases],
                   [c["energy_per_spin_stderr"] for c in cases], marker="o", capsize=3)
    ax[2].set(xlabel="L (cells per edge)", ylabel="lowest energy per spin (K)")
    for a in ax:
        a.set_xlim(min(min(SIZES), *cells) - 2, max(max(SIZES), *cells) + 2)
    ax[0].legend(fontsize=8)
    fig.text(0.01, 0.01, "fcc, x = 0.2, a~ = 3, g = 0.02, J_o = 500 K, h = 0; "
             f"{config.anneal_sweeps} annealing + {config.sweeps} tempering sweeps, "
             f"{config.chains * config.temperatures} replicas; "
             "\nrealizations per L: " + ", ".join(f"{c['cells']}: {c['realizations']}" for c in cases)
             + (f"; not run: L = {', '.join(map(str, missing))}" if missing else "")
             + (f"; from an earlier run (--previous): L = {', '.join(map(str, earlier))}"
                if (earlier := [c["cells"] for c in cases if c["source"] != "rows"]) else "")
             + "; no error bar: one realization, or none computed", fontsize=7)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_figure(fig, path)


def _reached_target(realizations: int, stderr: float, settings: dict) -> bool:
    """The stopping rule of a size: at least `min_realizations`, and the standard error of
    T_U/<E_tau> (b) at most `target_se` (NaN, one realization: not reached)."""
    return bool(realizations >= settings["min_realizations"] and stderr <= settings["target_se"])


def _cases(out: Path, config, previous: list[dict], settings: dict) -> tuple[list[dict], list]:
    """Every size with rows in `out` (mc_summary of its realizations), then the sizes of
    `previous` that `out` has no rows for, in order of L, each with `reached_target`; and
    the sizes of `previous` that rows replaced."""
    found = _batch_files(out)
    loaded = [_load(found[c], c, config) for c in sorted(found)]
    studies = [st for st, _ in loaded]
    cases = [dict(c, cells=st.cells, energy_per_spin_stderr=st.stat("energy_per_spin")[1],
                  source="rows", backends=backends)
             for (st, backends), c in zip(loaded, mc_summary(studies)["cases"])] \
        if studies else []
    done, replaced = [c["cells"] for c in cases], []
    for c in previous:
        if c["cells"] in done:
            print(f"  L = {c['cells']}: this folder's rows are used, not the case of {c['source']}")
            replaced.append(dict(cells=c["cells"], source=c["source"]))
        else:
            cases.append(c)
    for c in cases:
        c["reached_target"] = _reached_target(c["realizations"], c["T_U_over_E_tau_mc_stderr"],
                                              settings)
        if not c["reached_target"]:
            more = ("the --max-realizations of this run" if c["realizations"]
                    >= settings["max_realizations"] else "more can be run")
            print(f"  L = {c['cells']}: the target standard error is not reached "
                  f"({c['realizations']} realizations; {more})")
    no_errors = [c["cells"] for c in cases if c["realizations"] > 1
                 and not np.isfinite(c["gap_exponent"]["mc_stderr"]) and c["source"] != "rows"]
    if no_errors:
        print(f"  L = {', '.join(map(str, no_errors))}: no gap-exponent errors (the earlier "
              "file was written before they were computed)")
    return sorted(cases, key=lambda c: c["cells"]), replaced


def _write_outputs(out: Path, settings: dict, config, previous: list[dict],
                   overwrite: bool) -> None:
    cases, replaced = _cases(out, config, previous, settings)
    if not cases:
        return
    missing = [L for L in SIZES if L not in [c["cells"] for c in cases]]
    rows = [[c["cells"], c["n_sites_mean"], c["realizations"], c["T_U_over_E_tau_mc"],
             c["T_U_over_E_tau_mc_stderr"], c["T_U_over_E_tau_es"], c["T_U_over_E_tau_es_stderr"],
             c["gap_exponent"]["mc"], c["gap_exponent"]["mc_stderr"], c["gap_exponent"]["es"],
             c["gap_exponent"]["es_stderr"], c["energy_per_spin"], c["energy_per_spin_stderr"],
             c["seconds"], c["source"], c["reached_target"],
             ", ".join(f"{k} {v}" for k, v in c["backends"].items())] for c in cases]
    with OutputDir(out, group="mc_finite_size", overwrite=overwrite) as od:
        _figure(cases, missing, od.path("mc_finite_size.png"), config)
        od.csv("mc_finite_size.csv", HEADER, rows)
        od.json("mc_finite_size.json", dict(
            command="python experiments/mc_finite_size.py", settings=settings, cases=cases,
            note="T_U/<E_tau> from P_S(T_U) = 5 g, each estimator in its own <E_tau>; gap "
            "exponents: log-log slope of P_S where 1e-3 < P_S < 0.1, jackknife standard errors "
            "over realizations (null: one realization, or a file written before they were "
            "computed); source: rows (this folder's realizations) or previous (an earlier "
            "run's JSON, given by --previous, with its backend; its cases copied as they are); "
            "backends: realizations per backend that ran them; "
            "reached_target: at least min_realizations and the target standard error",
            not_run=missing, previous_replaced_by_rows=replaced, backend=jax.default_backend()))
    for r in rows:
        print(f"  L = {r[0]} (<N> = {r[1]:.0f}, {r[2]:.0f} realizations, {r[13]:.0f} s; {r[14]}; "
              f"{r[16]}): "
              f"T_U/<E_tau> = {r[3]:.3f} ± {r[4]:.3f} (b), {r[5]:.3f} ± {r[6]:.3f} (ES); gap "
              f"exponents {r[7]:.2f} ± {r[8]:.2f} (b), {r[9]:.2f} ± {r[10]:.2f} (ES); E/spin "
              f"{r[11]:.3f} ± {r[12]:.3f} K", flush=True)


def _run_size(out: Path, cells: int, a, settings: dict, config) -> None:
    """Batches of size L until the target standard error or the most realizations."""
    sample = tj.Sample(0.2, cells=cells)
    params = tj.HamiltonianParams(atilde=3.0)
    base = jax.random.fold_in(seed_key("mc_finite_size", "seed", a.seed), cells)
    keys = jax.vmap(jax.random.fold_in, (None, 0))(base, jnp.arange(a.max_realizations))
    done, _ = _load(_batch_files(out).get(cells, []), cells, config)
    lo = 0 if done is None else done.realizations
    while lo < a.max_realizations:
        if done is not None and _reached_target(done.realizations, done.stat("T_U_mc")[1],
                                                settings):
            return
        hi = min(lo + a.batch, a.max_realizations)
        path = out / "rows" / f"L{cells}_r{lo:04d}-{hi:04d}.npz"
        st = run_mc_study(sample, params, keys[lo:hi], config, progress=not a.no_progress,
                          max_dense_bytes=a.max_dense_bytes)
        if st.interrupted:
            raise KeyboardInterrupt
        _save_batch(path, st)
        _write_outputs(out, settings, config, a.previous_cases, a.overwrite)
        (done, _), lo = _load(_batch_files(out)[cells], cells, config), hi


def main(argv=None) -> None:
    p = build_parser()
    a = _args(p, argv)
    settings = _settings(a)
    out = open_run_folder(p, a.out, settings, FILES, "mc_finite_size", a.overwrite)
    config = tj.MCConfig(anneal_sweeps=100, sweeps=50) if a.quick else tj.MCConfig()
    for cells in [] if a.write_only else a.cells:
        _run_size(out, cells, a, settings, config)
    _write_outputs(out, settings, config, a.previous_cases, a.overwrite)


if __name__ == "__main__":
    main()
