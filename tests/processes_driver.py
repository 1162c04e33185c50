"""One process of a job of two local CPU processes (gloo), for test_processes.py.

In the pair (PROCESS_ID 0 or 1), as commands of one job:

1. `tlsjax es ... --json es.json` and 2. `tlsjax mc ... --json mc.json`;
3. `tlsjax es` with a seed that differs between the processes (to be refused);
4. `tlsjax es ... --json killed.json --checkpoint ck.npz`, in which process 1 kills
   itself (SIGKILL) once its third batch is done; process 0 must stop with a message.
Between 2 and 3, `tlsjax.sensitivity` (`SENSITIVITY`, its 3 realizations split 2 + 1
over the processes), called directly in the job the commands joined (the command line
only adds the same joining and a figure): process 0 writes its numbers to sens.npz.

Each process prints one JSON line with the exit statuses (process 1: before step 4),
then leaves with `os._exit`
(as the `tlsjax` program does after an error in a job of several processes).
With PROCESS_ID `single` it runs, alone, `tlsjax es` resuming from ck.npz, `tlsjax
mc` and the sensitivity (the references).

With PROCESS_ID `stop0` or `stop1` (process 0 or 1 of another job) it runs `tlsjax es ...
--json hung.json --checkpoint hung.npz --process-timeout WATCH_S`, in which process 1
writes the time to `stopped_at.txt` and stops itself (SIGSTOP: alive but silent, as a
hung process) once it has joined the job and its watchdog runs, where the processes
would compare their options (the cheapest point: no program traced yet; a stop mid-run
meets the same watchdog, see experiments/process_faults.py); process 0, waiting in that
comparison, must stop with one line and exit status 2 after WATCH_S seconds (the
watchdog of `tlsjax.parallel._distributed`).
With PROCESS_ID `int0` or `int1` it runs the same as the `tlsjax` program (its Ctrl-C
handling and exits), `--json int.json --checkpoint int.npz`, and process 0 sends itself
SIGINT at the same point (the time written to `interrupted_at.txt`): it must stop with
its own `interrupted (Ctrl-C)` line and status 130, process 1 with one line naming
process 0 and status 2 (told through the key-value store, before the timeout).

Usage: python processes_driver.py PORT PROCESS_ID FOLDER ES_ARGS MC_ARGS [WATCH_S]
(ES_ARGS and MC_ARGS: the options of each command as one string.)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import tlsjax.cli._processes as processes
import tlsjax.parallel._ensemble as ensemble
from tlsjax.cli import main


def _report(**record) -> None:
    sys.__stdout__.write(json.dumps(record) + "\n")
    sys.__stdout__.flush()
    sys.__stderr__.flush()


def _kill_self_after(batches: int) -> None:
    """SIGKILL this process after `batches` batches of `disorder_average`."""
    done = [0]
    check = ensemble.raise_if_interrupted

    def counting():
        done[0] += 1
        if done[0] == batches:
            os.kill(os.getpid(), signal.SIGKILL)
        check()

    ensemble.raise_if_interrupted = counting


def _signal_self_once_joined(signum: int, note: str) -> None:
    """Send `signum` to this process where the processes would compare their options
    (after joining, with the watchdog running); the time written to `note` first."""

    def signal_self(config, where):
        with open(note, "w") as f:
            f.write(repr(time.time()))
        os.kill(os.getpid(), signum)
        time.sleep(5)  # SIGINT: its KeyboardInterrupt comes first

    processes.check_same_config = signal_self


#: A small sensitivity run (3 realizations: a short last share on 2 processes).
SENSITIVITY = dict(x=0.2, cells=4, realizations=3, energies=[0.5, 1.0], fd_checks=0)


def _sensitivity(write: bool) -> int:
    """`tlsjax.sensitivity` in float64; its numbers to sens.npz where `write`."""
    import jax
    import numpy as np

    import tlsjax as tj

    with jax.enable_x64(True):
        res = tj.sensitivity(**SENSITIVITY)
    if write:
        np.savez("sens.npz", values=res.values, log_jacobian=res.log_jacobian,
                 hard_values=res.hard_values)
    return 0


def _join(port: str, pid: str, timeout: str) -> list[str]:
    return ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", pid,
            "--process-timeout", timeout]


def run() -> None:
    port, pid, folder, es_args, mc_args = sys.argv[1:6]
    os.chdir(folder)
    es, mc = ["es", *es_args.split()], ["mc", *mc_args.split()]
    if pid == "single":
        _report(codes=[main([*es, "--json", "es.json", "--checkpoint", "ck.npz"]),
                       main([*mc, "--json", "mc.json"]), _sensitivity(True)])
        return
    if pid.startswith("stop"):  # the hung-process job
        if pid == "stop1":
            _signal_self_once_joined(signal.SIGSTOP, "stopped_at.txt")
        join = _join(port, pid[-1], sys.argv[6])
        # process 0's watchdog ends it (os._exit(2)); a return here is a failure (status 0)
        _report(codes=[main([*es, "--json", "hung.json", "--checkpoint", "hung.npz", *join])])
        os._exit(0)
    if pid.startswith("int"):  # Ctrl-C in process 0 only, as the `tlsjax` program
        if pid == "int0":
            _signal_self_once_joined(signal.SIGINT, "interrupted_at.txt")
        sys.argv = ["tlsjax", *es, "--json", "int.json", "--checkpoint", "int.npz",
                    *_join(port, pid[-1], sys.argv[6])]
        sys.exit(main())  # leaves with os._exit (130, or 2 from the watchdog)
    join = _join(port, pid, "60")
    codes = [main([*es, "--json", "es.json", *join]), main([*mc, "--json", "mc.json", *join]),
             _sensitivity(pid == "0"), main([*es, "--seed", str(7 + int(pid)), *join])]
    if pid == "1":
        _report(codes=codes)
        _kill_self_after(3)
    start = time.monotonic()
    codes.append(main([*es, "--json", "killed.json", "--checkpoint", "ck.npz", *join]))
    _report(codes=codes, stopped_after=time.monotonic() - start)
    os._exit(0)


if __name__ == "__main__":
    run()
