"""Two local CPU processes as one JAX job (gloo): `tlsjax es`, `tlsjax mc` and
`tlsjax.sensitivity` equal to one process, a process killed mid-run (the other stops with
a message, the checkpoint resumes in one process), a process stopped (SIGSTOP: alive but
silent; the other stops with one line after --process-timeout), Ctrl-C in process 0 only
(it stops as alone, the other with one line), and processes started with other options
(refused).

Every subprocess runs under a timeout. One pair of processes runs the commands of
`processes_driver.py` (the last one killed mid-run); then, at the same time, one process
gives the references (its `es` resumes the killed run), a second pair runs `es` with one
process stopped and a third with process 0 interrupted, both as soon as the job has
started (no program compiled: cheap). The subprocesses share a compilation cache (the
references load what the first pair compiled).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import SUITE_XLA_FLAGS

HERE = Path(__file__).parent
TIMEOUT_S = 420  # a bound against hangs, not a timing: on a loaded machine the pair took minutes
ES = "--cells 6 --realizations 120 --no-progress"
MC = "--cells 3 --realizations 3 --anneal-sweeps 4 --sweeps 2 --no-progress"
WATCH_S = 5  # --process-timeout of the pair with a stopped process


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
    # one CPU device per process, compiled as the suite compiles (conftest.py: level 0,
    # the older emitters), where the 1- and 2-process results are bit-identical as at
    # XLA's defaults, for less than half the CPU time (measured: 75 against 161 CPU-s for
    # this file); level 0 with the default emitters is not such a setting: there
    # `T_U_over_median_E_tau` of `es` differs in the last bits (0.18312824778 against
    # 0.18312824095). At XLA's defaults (as `tlsjax` runs) the identity is checked by hand
    # (docs/how-to/several-processes.md), not here.
    env["XLA_FLAGS"] = SUITE_XLA_FLAGS
    for k in ("TLSJAX_COORDINATOR", "TLSJAX_NUM_PROCESSES", "TLSJAX_PROCESS_ID"):
        env.pop(k, None)
    return env


def _driver(port: int, pid: str, folder: Path, *more: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HERE / "processes_driver.py"), str(port), pid, str(folder), ES, MC,
         *more], env=_env(folder.parent / "cache"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


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
    pair, single, hung, interrupted = (root / n for n in ("pair", "single", "hung", "int"))
    for d in (pair, single, hung, interrupted):
        d.mkdir()
    port = _free_port()
    drivers = [_driver(port, str(i), pair) for i in (0, 1)]
    survivor, killed = (_finish(p) for p in drivers)
    saved = dict(np.load(pair / "ck.npz")) if (pair / "ck.npz").exists() else {}
    if saved:  # one process resumes the killed run: its result is the `es` reference
        os.replace(pair / "ck.npz", single / "ck.npz")
    reference = _driver(0, "single", single)
    faults = {}
    for kind, folder in (("stop", hung), ("int", interrupted)):
        port = _free_port()
        faults[kind] = [_driver(port, f"{kind}{i}", folder, str(WATCH_S)) for i in (0, 1)]
    procs = [faults["stop"][0], *faults["int"]]
    ended = _end_times(procs)
    faults["stop"][1].kill()  # stopped (SIGSTOP) or not, SIGKILL ends it
    _finish(faults["stop"][1], 30)
    watcher, int0, int1 = (_finish(p, 30) for p in procs)
    return dict(pair=pair, single=single, survivor=survivor, killed=killed, saved=saved,
                references=_finish(reference), hung=hung, watcher=watcher,
                watched_for=ended[0] - _time_in(hung / "stopped_at.txt"),
                interrupted=interrupted, int0=int0, int1=int1,
                int1_after=ended[2] - _time_in(interrupted / "interrupted_at.txt"))


def _end_times(procs: list[subprocess.Popen], timeout: float = TIMEOUT_S) -> list[float]:
    """The time (`time.time()`) at which each process ended, polled every 20 ms."""
    ended, deadline = {}, time.monotonic() + timeout
    while len(ended) < len(procs) and time.monotonic() < deadline:
        for i, p in enumerate(procs):
            if i not in ended and p.poll() is not None:
                ended[i] = time.time()
        time.sleep(0.02)
    return [ended.get(i, float("nan")) for i in range(len(procs))]


def _time_in(path: Path) -> float:
    return float(path.read_text()) if path.exists() else float("nan")


def _same_json(a: Path, b: Path) -> None:
    """Equal apart from timing fields (bit-identical numbers)."""
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in ("seconds", "written_by")}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    assert strip(json.loads(a.read_text())) == strip(json.loads(b.read_text()))


def _codes(run) -> dict:
    code, out, err = run
    assert out.strip(), f"exit {code}: {err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


def test_two_processes_join_and_agree(runs):
    assert _codes(runs["survivor"])["codes"][:3] == [0, 0, 0], runs["survivor"][2][-3000:]
    assert _codes(runs["killed"])["codes"][:3] == [0, 0, 0], runs["killed"][2][-3000:]
    assert _codes(runs["references"])["codes"] == [0, 0, 0], runs["references"][2][-3000:]
    assert sorted(p.name for p in runs["pair"].iterdir()) == ["es.json", "mc.json", "sens.npz"]
    for name in ("survivor", "killed"):  # gloo's connection notice is silenced
        assert "[Gloo]" not in runs[name][1] + runs[name][2]


def test_mismatched_options_are_refused(runs):
    for name in ("survivor", "killed"):
        assert _codes(runs[name])["codes"][3] == 2
        line = [x for x in runs[name][2].splitlines() if "other options" in x][-1]
        assert line.startswith("tlsjax es: error:") and "--seed differs" in line, line


def test_killed_process_stops_the_other_and_checkpoint_resumes(runs):
    assert runs["killed"][0] == -signal.SIGKILL
    record = _codes(runs["survivor"])
    assert record["codes"][4] == 2 and record["stopped_after"] < 60
    assert "another process of this job stopped" in runs["survivor"][2]
    assert not (runs["pair"] / "killed.json").exists()  # nothing half-written
    assert 0 < int(runs["saved"]["next_index"]) < 120  # killed mid-run


def test_es_two_processes_equal_one(runs):
    _same_json(runs["pair"] / "es.json", runs["single"] / "es.json")


def test_mc_two_processes_equal_one(runs):
    _same_json(runs["pair"] / "mc.json", runs["single"] / "mc.json")


def test_sensitivity_two_processes_equal_one(runs):
    """Values, Jacobian and hard-Theta values of `tlsjax.sensitivity`, its realizations
    split 2 + 1 over the pair: the same bits as one process."""
    pair, single = np.load(runs["pair"] / "sens.npz"), np.load(runs["single"] / "sens.npz")
    for name in ("values", "log_jacobian", "hard_values"):
        np.testing.assert_array_equal(pair[name], single[name], err_msg=name)


def test_stopped_process_stops_the_other_after_the_timeout(runs):
    """SIGSTOP in process 1 (alive, silent: as a hung process) once the job has started:
    process 0 stops with one line naming it and the timeout, exit status 2, about
    --process-timeout seconds after (not JAX's abort with a stack trace, ~20 s later);
    nothing written."""
    code, _, err = runs["watcher"]
    assert code == 2, err[-3000:]
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("tlsjax es: error: process(es) [1] "), lines
    assert f"no sign of life for {WATCH_S} s" in lines[0] and "--checkpoint" in lines[0]
    assert WATCH_S - 2 < runs["watched_for"] < WATCH_S + 15, runs["watched_for"]
    assert sorted(p.name for p in runs["hung"].iterdir()) == ["stopped_at.txt"]


def test_ctrl_c_in_process_0_stops_it_and_the_other(runs):
    """SIGINT to process 0 only, as the `tlsjax` program, once the job has started: it
    stops with its own line and status 130; process 1, told through the key-value store
    (not after the --process-timeout), stops with one line naming it and status 2, and
    without JAX's fatal message (process 0 let it go first); nothing written."""
    code, _, err = runs["int0"]
    assert code == 130, err[-3000:]
    assert [x for x in err.splitlines() if x.strip()] == ["tlsjax es: interrupted (Ctrl-C)"]
    code, _, err = runs["int1"]
    assert code == 2, err[-3000:]
    assert [x for x in err.splitlines() if x.strip()] == [
        "tlsjax es: error: process 0 of this job stopped (interrupted (Ctrl-C)), so this one "
        "stops too; a --checkpoint, if given, resumes the run in one process or in several"]
    assert 0 < runs["int1_after"] < WATCH_S + 15, runs["int1_after"]
    assert sorted(p.name for p in runs["interrupted"].iterdir()) == ["interrupted_at.txt"]


# The watchdog's logic on a stand-in for JAX's key-value store (no job, no subprocess):
# the pairs above show a stopped process and Ctrl-C in process 0 end to end, at the start
# of a run; experiments/process_faults.py measures them (and a kill) mid-run.


class _Store:
    """JAX's key-value store as `DistributedRuntimeClient` shows it; with `moving`, the
    counters of those processes advance at every read (processes still alive)."""

    def __init__(self, moving=()):
        self.kv, self.moving = {}, set(moving)

    def key_value_set(self, key, value, allow_overwrite=False):
        self.kv[key] = value

    def key_value_dir_get(self, prefix):
        for p in self.moving:
            key = f"tlsjax/alive/{p}"
            self.kv[key] = str(int(self.kv.get(key, "0")) + 1)
        return [(k, v) for k, v in self.kv.items() if k.startswith(prefix)]


@pytest.fixture
def watch(monkeypatch):
    """The watchdog's state for process 0 or 1 of a job of three, as `watch_peers` sets
    it; `os._exit` raises SystemExit instead."""
    import tlsjax.parallel._distributed as dist

    def leave(code):
        raise SystemExit(code)

    monkeypatch.setattr(dist.os, "_exit", leave)
    monkeypatch.setattr(dist, "PULSE_S", 0.25)
    for name, value in dict(started=True, disarmed=False, stopping=False, timeout=5.0,
                            where="tlsjax es", client=_Store()).items():
        monkeypatch.setattr(dist._Watch, name, value)
    return dist


def _seen(dist, peers, ago=0.0):
    return {p: ("1", time.monotonic() - ago) for p in peers}


def test_a_peer_announcing_its_stop_stops_this_process(watch, monkeypatch, capsys):
    store = _Store()
    store.key_value_set("tlsjax/stop/0", "interrupted (Ctrl-C)")
    monkeypatch.setattr(watch._Watch, "seen", _seen(watch, [0, 2]))
    with pytest.raises(SystemExit) as left:
        watch._pulse(store, 1)
    assert left.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "tlsjax es: error: process 0 of this job stopped (interrupted (Ctrl-C)), so this one "
        "stops too; a --checkpoint, if given, resumes the run in one process or in several"]
    assert store.kv["tlsjax/alive/1"] == "1"
    assert store.kv["tlsjax/stop/1"] == "stopped with the others"  # process 0 may go


def test_a_silent_peer_stops_this_process_after_the_timeout(watch, monkeypatch, capsys):
    monkeypatch.setattr(watch._Watch, "seen", {**_seen(watch, [0]), **_seen(watch, [2], 5.5)})
    with pytest.raises(SystemExit) as left:
        watch._check(1, [0, 2])
    assert left.value.code == 2
    assert watch._Watch.client.kv["tlsjax/stop/1"] == "process(es) [2] gave no sign of life"
    line = capsys.readouterr().err.strip()
    assert line.startswith("tlsjax es: error: process(es) [2] of this job gave no sign of "
                           "life for 5 s (stopped, hung, or its host unreachable)"), line
    monkeypatch.setattr(watch._Watch, "seen", _seen(watch, [0, 2], 4.0))
    monkeypatch.setattr(watch._Watch, "stopping", False)
    monkeypatch.setattr(watch._Watch, "disarmed", True)  # the command has finished
    watch._check(1, [0, 2])  # returns: no stop after a normal end


@pytest.mark.parametrize("moving, announced, wait", [  # PULSE_S = 0.25 s here
    ((), (1, 2), (0.0, 0.55)),  # every other process announced: go at once
    ((), (1,), (0.55, 1.0)),  # 2 silent (dead or hung): not waited for past PULSE_S + 0.3 s
    ((2,), (1,), (1.0, 5.0)),  # 2 alive, not stopping: the whole bound, 2 PULSE_S + 0.5 s
])
def test_process_0_lets_the_others_go_first(watch, monkeypatch, capsys, moving, announced,
                                            wait):
    store = _Store(moving)
    for p in (1, 2):
        store.key_value_set(f"tlsjax/alive/{p}", "7")
    for p in announced:
        store.key_value_set(f"tlsjax/stop/{p}", "interrupted (Ctrl-C)")
    monkeypatch.setattr(watch._Watch, "client", store)
    monkeypatch.setattr(watch._Watch, "seen", _seen(watch, [1, 2]))
    start = time.monotonic()
    watch.announce_stop("interrupted (SIGTERM)")  # process 0: this one
    took = time.monotonic() - start
    assert store.kv["tlsjax/stop/0"] == "interrupted (SIGTERM)"
    assert wait[0] <= took < wait[1], took
    watch.announce_stop("again")  # once only
    assert store.kv["tlsjax/stop/0"] == "interrupted (SIGTERM)"
    assert capsys.readouterr().err == ""


def test_distributed_watch_in_scripts(watch, monkeypatch, capsys):
    """`tj.distributed(watch=S)` gives scripts the command line's watchdog (checked first;
    a no-op in one process); its message names what set the wait."""
    import tlsjax as tj

    with pytest.raises(ValueError, match="watch"):
        tj.distributed(watch=0)
    assert tj.distributed(watch=5) == (0, 1)  # nothing asks for several processes
    monkeypatch.setattr(watch._Watch, "setting", "distributed(watch=...)")
    monkeypatch.setattr(watch._Watch, "seen", _seen(watch, [1], 6.0))
    with pytest.raises(SystemExit):
        watch._check(0, [1])
    assert capsys.readouterr().err.strip().endswith("(distributed(watch=...) sets the wait)")
