"""Two local CPU processes as one JAX job (gloo): `tlsjax es` and `tlsjax mc` equal to
one process, a process killed mid-run (the other stops with a message, the checkpoint
resumes in one process), and processes started with other options (refused).

Every subprocess runs under a timeout. One pair of processes runs the three commands of
`processes_driver.py`; a second pair is killed mid-run; one process gives the references
(its `es` resumes the killed run). The subprocesses share a compilation cache.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
TIMEOUT_S = 240
ES = "--cells 6 --realizations 120 --no-progress"
MC = "--cells 3 --realizations 3 --anneal-sweeps 4 --sweeps 2 --no-progress"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(cache: Path) -> dict:
    # a compilation cache shared by the subprocesses: the killed pair and the one-process
    # runs reuse what the first pair compiled
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu",
               JAX_COMPILATION_CACHE_DIR=str(cache),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    for k in ("TLSJAX_COORDINATOR", "TLSJAX_NUM_PROCESSES", "TLSJAX_PROCESS_ID"):
        env.pop(k, None)
    return env


def _tlsjax(args: list[str], folder: Path, **kw) -> subprocess.Popen:
    code = "import sys; from tlsjax.cli._main import main; sys.argv[0] = 'tlsjax'; main()"
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=folder,
                            env=_env(folder.parent / "cache"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _driver(port: int, pid: str, folder: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HERE / "processes_driver.py"), str(port), pid, str(folder), ES, MC],
        env=_env(folder.parent / "cache"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def _finish(proc: subprocess.Popen, timeout: float = TIMEOUT_S) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"a subprocess hung (> {timeout} s): {err[-2000:]}")
    return proc.returncode, out, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("processes")
    pair, killed, single = root / "pair", root / "killed", root / "single"
    for d in (pair, killed, single):
        d.mkdir()
    port = _free_port()
    drivers = [_driver(port, str(i), pair) for i in (0, 1)]
    done = [_finish(p) for p in drivers]

    # a second pair, with a checkpoint; process 1 is killed once a batch is saved
    port = _free_port()
    args = ["es", *ES.split(), "--json", "es.json", "--checkpoint", "ck.npz", "--coordinator",
            f"127.0.0.1:{port}", "--num-processes", "2", "--process-timeout", "60"]
    first = _tlsjax([*args, "--process-id", "0"], killed)
    second = _tlsjax([*args, "--process-id", "1"], killed)
    start = time.monotonic()
    while not (killed / "ck.npz").exists() and time.monotonic() - start < TIMEOUT_S:
        if first.poll() is not None:
            break
        time.sleep(0.01)
    second.kill()
    killed_at = time.monotonic()
    survivor = _finish(first)
    stopped_after = time.monotonic() - killed_at
    _finish(second)
    saved = dict(np.load(killed / "ck.npz")) if (killed / "ck.npz").exists() else {}

    # one process: resume the killed run, and the Monte Carlo reference
    if saved:
        os.replace(killed / "ck.npz", single / "ck.npz")
    references = _finish(_driver(0, "single", single))
    return dict(pair=pair, killed=killed, single=single, drivers=done, survivor=survivor,
                stopped_after=stopped_after, saved=saved, references=references)


def _same_json(a: Path, b: Path) -> None:
    """Equal apart from timing fields (bit-identical numbers)."""
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in ("seconds", "written_by")}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    assert strip(json.loads(a.read_text())) == strip(json.loads(b.read_text()))


def test_two_processes_join_and_agree(runs):
    for code, out, err in runs["drivers"]:
        assert code == 0, err[-3000:]
        assert json.loads(out.strip().splitlines()[-1])["codes"] == [0, 0, 2]
    assert sorted(p.name for p in runs["pair"].iterdir()) == ["es.json", "mc.json"]


def test_mismatched_options_are_refused(runs):
    for _, _, err in runs["drivers"]:
        line = [x for x in err.splitlines() if "tlsjax es: error" in x][-1]
        assert "other options" in line and "--seed" in line, line


def test_killed_process_stops_the_other_and_checkpoint_resumes(runs):
    code, out, err = runs["survivor"]
    assert code == 2, err[-3000:]
    assert "another process of this job stopped" in err
    assert runs["stopped_after"] < 60
    assert not (runs["killed"] / "es.json").exists()  # nothing half-written
    assert 0 < int(runs["saved"]["next_index"]) < 120  # killed mid-run
    code, out, err = runs["references"]
    assert code == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1])["codes"] == [0, 0]


def test_es_two_processes_equal_one(runs):
    _same_json(runs["pair"] / "es.json", runs["single"] / "es.json")


def test_mc_two_processes_equal_one(runs):
    _same_json(runs["pair"] / "mc.json", runs["single"] / "mc.json")
