"""Interrupt scenarios for `tlsjax reproduce`, run in one process (see test_interrupts.py).

The program shrinks the paper's samples to tiny ones, installs the command line's
SIGINT handling, and runs `tlsjax reproduce` into one output folder several times,
each time sending itself a real SIGINT at a chosen point (mid-ensemble, while staging
files, during the final renames). Figures are replaced by small stand-in files (their
matplotlib code is not what is tested here, and it is slow). After each run it records the exit
status and a snapshot of the folder (names and SHA-256 of every entry, hidden ones
included). It prints the report as one JSON line; the test makes the assertions.

Usage: python interrupt_driver.py FOLDER
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import tlsjax._io as tio
import tlsjax.cli._cli_es as cli_es
import tlsjax.plot._plot as tplot
from tlsjax._interrupts import install_handlers
from tlsjax.cli import main
from tlsjax.parallel._ensemble import RunningStats

TINY = ((0.2, 4), (0.5, 3))
cli_es.PAPER_ATILDES = (3.0,)
cli_es.PAPER_H_RELS = (0.0,)
cli_es.PAPER_SAMPLES = TINY


def _figure_stub(results, path, **kwargs):
    """Stands in for a matplotlib figure (the interrupts do not depend on it): a small
    file whose content depends on the results."""
    results = results if isinstance(results, list) else [results]
    Path(path).write_text(repr([r.mean["T_U_over_E_tau"].tolist() for r in results]))


tplot.plot_ps_panels = _figure_stub
tplot.plot_tu_summary = _figure_stub


def snapshot(folder: Path) -> dict[str, str] | None:
    if not folder.exists():
        return None
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>")
            for p in sorted(folder.iterdir())}


@contextlib.contextmanager
def sigint_at_call(owner, name: str, call: int):
    """Send this process SIGINT at the `call`-th call of `owner.name` (before it runs)."""
    original = getattr(owner, name)
    count = {"n": 0}

    def wrapper(*args, **kwargs):
        count["n"] += 1
        if count["n"] == call:
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, original)


def reproduce(folder: Path, seed: int, *extra: str) -> int:
    return main(["reproduce", "--out", str(folder), "--realizations", "2", "--seed", str(seed),
                 "--no-progress", "--no-mc", *extra])  # the Monte Carlo: test_cli_es.py


def run(root: Path) -> dict:
    install_handlers()
    d = root / "results"
    report: dict = {}

    def record(label: str, rc: int, folder: Path = d) -> None:
        report[label] = dict(rc=rc, snapshot=snapshot(folder), t=time.perf_counter())

    record("A", reproduce(d, 0))
    with sigint_at_call(RunningStats, "update", 1):  # mid-ensemble, first sample
        record("mid_ensemble", reproduce(d, 1))
    with sigint_at_call(tio.OutputDir, "csv", 2):  # second sample's files being staged
        record("staging", reproduce(d, 1))
    with sigint_at_call(os, "replace", 3):  # inside the commit: held back until it ends
        record("commit", reproduce(d, 1))
    report["commit"]["summary_seed"] = json.loads((d / "summary.json").read_text())["seed"]

    (d / "notes.txt").write_text("the user's own notes")
    cli_es.PAPER_SAMPLES = TINY[:1]  # one sample only: the x = 0.5 files go
    record("other_samples", reproduce(d, 2))

    (d / tio.MANIFEST).write_text("")  # a manifest damaged outside tlsjax
    record("bad_manifest", reproduce(d, 3))
    record("bad_manifest_overwrite", reproduce(d, 3, "--overwrite"))
    cli_es.PAPER_SAMPLES = TINY

    new = root / "new" / "deeper"
    with sigint_at_call(cli_es, "run_scan", 1):
        record("new_folder_interrupted", reproduce(new, 0), root / "new")
    record("bad_option_new_folder", main(["--out", str(new), "--realizations", "0"]),
           root / "new")
    return report


if __name__ == "__main__":
    print("\n" + json.dumps(run(Path(sys.argv[1]))))
