"""Fig. 2 a and the P_S panel of the full Hamiltonian (Eq. 1) at the paper's size.

The paper's sample (fcc, x = 0.2, L = 18, ~4690 impurities, ~9400 spins), the default
Monte Carlo of `tlsjax mc` (2000 annealing + 500 tempering sweeps on 16 rungs from J_o to
g^2 J_o / 10, then the descent over single and pair flips), a~ = 1.5, 3, 6, h = 0, measured
against the ES reduction of the same realizations (`run_mc_study`). About 5 minutes per
realization and a~ on 2 CPU cores.

Resumable: each finished (realization, a~) is saved at once as `<out>/rows/a<A>_r<V>.npz`
(its numbers and the measured state, so it can be re-measured with `measure`);
running the same command again skips what is done (a different configuration in the same
folder is refused). Realizations run in order, each for every a~, so that an interrupted
run leaves a balanced ensemble. After every realization the figures and tables are
rewritten from everything done so far (`mc_fig2a.png` (a~ = 3), `mc_ps.png`,
`mc_fig2a.csv`, `mc_ps.csv`, `mc_fig2a.json`, with the realizations they hold).

    python experiments/mc_fig2a.py --out mc-fig2a-full [--cells 18 --realizations 4 ...]
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import jax
import numpy as np

import tlsjax as tj
from tlsjax._io import OutputDir, atomic_path, atomic_write_text, file_kind
from tlsjax._validate import seed_key
from tlsjax.cli._args import (
    ATILDE_MAX,
    CELLS,
    G_CROSSOVER,
    KELVIN_MAX,
    OCCUPATION,
    SEED,
    finish_parser,
    integer,
    positive,
    reals,
)
from tlsjax.cli._main import ListAction, Parser
from tlsjax.plot._plot_mc import plot_mc_dos, plot_mc_ps
from tlsjax.studies._mc_study import (
    DEFAULT_E_BAR,
    MCStudy,
    default_dos_edges,
    fig2a_table,
    mc_summary,
    ps_table,
    run_mc_study,
)
from tlsjax.studies._reproduce import default_energies


def build_parser() -> argparse.ArgumentParser:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="mc-fig2a-full")
    p.add_argument("--x", type=OCCUPATION, default=0.2, help="occupation (0.2)")
    p.add_argument("--cells", type=CELLS, default=18, help="fcc cells per edge (18)")
    p.add_argument("--atildes", type=reals(0.0, ATILDE_MAX), nargs="+", action=ListAction,
                   default=[1.5, 3.0, 6.0], help="cutoffs a~ in units of a_o (1.5,3,6)")
    p.add_argument("--realizations", type=integer(1), default=4)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--g", type=G_CROSSOVER, default=0.02)
    p.add_argument("--J0", type=positive(KELVIN_MAX), default=500.0, help="J_o in K (500)")
    p.add_argument("--anneal-sweeps", type=integer(0), default=tj.MCConfig().anneal_sweeps)
    p.add_argument("--sweeps", type=integer(0), default=tj.MCConfig().sweeps)
    p.add_argument("--overwrite", action="store_true",
                   help="allow replacing files in --out that this script did not write")
    p.add_argument("--no-progress", action="store_true")
    return finish_parser(p)


def _settings(a) -> dict:
    return dict(x=a.x, cells=a.cells, atildes=[float(v) for v in a.atildes],
                realizations=a.realizations, seed=a.seed, g=a.g, J0=a.J0,
                anneal_sweeps=a.anneal_sweeps, sweeps=a.sweeps, e_bar=DEFAULT_E_BAR)


#: The outputs of this script in --out (rewritten after every realization).
FILES = ("mc_fig2a.png", "mc_fig2a.csv", "mc_ps.png", "mc_ps.csv", "mc_fig2a.json")


def open_run_folder(p: Parser, folder, settings: dict, files, group: str,
                    overwrite: bool) -> Path:
    """The run folder --out, checked before any work: a folder (made if missing) where
    `files` may be written (a user's file there only with --overwrite), whose
    settings.json, if any, holds `settings` (written for a new run); with rows/ made.
    A refusal is `p`'s one-line error."""
    out = p.check_folder(folder)
    p.output_dir(out, overwrite, expect=files, group=group)
    cfg = out / "settings.json"
    if cfg.exists() or cfg.is_symlink():
        if file_kind(cfg) != "file":
            p.refuse("--out", f"{cfg} is not a regular file; choose another --out")
        try:
            old = json.loads(cfg.read_text())
        except (OSError, ValueError) as err:
            p.refuse("--out", f"{cfg} cannot be read ({err}); choose another --out")
        if old != settings:
            p.refuse("--out", f"{out} holds a run with other settings ({old}); choose another "
                     "--out")
    (out / "rows").mkdir(parents=True, exist_ok=True)
    if not cfg.exists():
        atomic_write_text(cfg, json.dumps(settings, indent=2) + "\n")
    return out


def _save_rows(path: Path, st: MCStudy) -> None:
    buf = io.BytesIO()
    np.savez(buf, seconds=np.asarray(st.seconds.get("total", np.nan)), state=st.states[0],
             **{k: v[0] for k, v in st.rows.items()})
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def read_rows(files, skip=("seconds",)) -> tuple[list[dict], float]:
    """The arrays of each saved .npz (less `skip`) and the sum of their "seconds"."""
    rows, seconds = [], 0.0
    for f in files:
        with np.load(f) as z:
            rows.append({k: z[k] for k in z.files if k not in skip})
            seconds += float(z["seconds"])
    return rows, seconds


def _load_study(out: Path, s: dict, atilde: float, config) -> MCStudy | None:
    files = sorted((out / "rows").glob(f"a{atilde:g}_r*.npz"))
    if not files:
        return None
    rows, seconds = read_rows(files, skip=("seconds", "state"))
    stacked = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    params = tj.HamiltonianParams(g=s["g"], J0=s["J0"], atilde=atilde)
    return MCStudy(s["x"], s["cells"], "fcc", params, config, default_energies(),
                   default_dos_edges(s["g"], s["J0"]), s["e_bar"] * s["g"] * s["J0"], 4,
                   stacked, s["realizations"], dict(total=seconds))


def _write_outputs(out: Path, s: dict, config, overwrite: bool) -> None:
    studies = [st for a in s["atildes"] if (st := _load_study(out, s, a, config)) is not None]
    if not studies:
        return
    done = min(st.realizations for st in studies)
    note = f"full size, {done} of {s['realizations']} realizations done: "
    with OutputDir(out, group="mc_fig2a", overwrite=overwrite) as od:
        fig2a = next((st for st in studies if float(st.params.atilde) == 3.0), studies[0])
        plot_mc_dos(fig2a, od.path("mc_fig2a.png"), note=note)
        od.csv("mc_fig2a.csv", *fig2a_table(fig2a))
        plot_mc_ps(studies, od.path("mc_ps.png"), note=note)
        od.csv("mc_ps.csv", *ps_table(studies))
        od.json("mc_fig2a.json", dict(
            command="python experiments/mc_fig2a.py", settings=s,
            summary=mc_summary(studies), studies=[st.to_json() for st in studies]))
    for c in mc_summary(studies)["cases"]:
        print(f"  a~ = {c['atilde']:g} ({c['realizations']} realizations): T_U/<E_tau> = "
              f"{c['T_U_over_E_tau_mc']:.3f} ± {c['T_U_over_E_tau_mc_stderr']:.3f} (full model), "
              f"{c['T_U_over_E_tau_es']:.3f} ± {c['T_U_over_E_tau_es_stderr']:.3f} (ES); gap "
              f"exponents {c['gap_exponent']['mc']:.2f} ± {c['gap_exponent']['mc_stderr']:.2f} (b), "
              f"{c['gap_exponent']['es']:.2f} ± {c['gap_exponent']['es_stderr']:.2f} (ES)")


def main(argv=None) -> None:
    p = build_parser()
    a = p.parse_args(argv)
    s = _settings(a)
    if len({f"{v:g}" for v in s["atildes"]}) < len(s["atildes"]):
        p.error(f"argument --atildes: values must differ (rows are named a<a~:g>); got "
                f"{s['atildes']}")
    out = open_run_folder(p, a.out, s, FILES, "mc_fig2a", a.overwrite)
    config = tj.MCConfig(anneal_sweeps=s["anneal_sweeps"], sweeps=s["sweeps"])
    sample = tj.Sample(s["x"], cells=s["cells"])
    keys = jax.random.split(seed_key("mc_fig2a", "seed", s["seed"]), s["realizations"])
    written = False
    for v in range(s["realizations"]):
        new = False
        for atilde in s["atildes"]:
            path = out / "rows" / f"a{atilde:g}_r{v:03d}.npz"
            if path.exists():
                continue
            new = True
            t = time.perf_counter()
            params = tj.HamiltonianParams(g=s["g"], J0=s["J0"], atilde=atilde)
            st = run_mc_study(sample, params, keys[v:v + 1], config, progress=not a.no_progress)
            if st.interrupted:
                raise KeyboardInterrupt
            _save_rows(path, st)
            print(f"realization {v}, a~ = {atilde:g}: N = {int(st.rows['n_sites'][0])}, "
                  f"{time.perf_counter() - t:.0f} s ({st.seconds})", flush=True)
        if new:
            _write_outputs(out, s, config, a.overwrite)
            written = True
    if not written:  # everything was done before: the outputs again (with this code)
        _write_outputs(out, s, config, a.overwrite)


if __name__ == "__main__":
    main()
