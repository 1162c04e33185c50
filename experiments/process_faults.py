"""Faults in a job of two local CPU processes: how the other process stops, and when.

Starts `tlsjax es --cells 6 --realizations 200 --checkpoint ck.npz --json es.json
--process-timeout S` as two processes of one job (gloo), waits until the checkpoint exists
(a few batches done), sends a signal to one process (or to both) and measures, from the
signal, when each process ends, with its exit status and its standard error. A stopped
(SIGSTOP) process is then ended with SIGKILL. Lists the files left in the folder.

    python experiments/process_faults.py --victim 1 --signal STOP [--process-timeout 5]
    python experiments/process_faults.py --victim 0 --signal INT
    python experiments/process_faults.py --victim both --signal INT
    python experiments/process_faults.py --victim 1 --signal KILL [--folder faults]

Timings taken on a machine shared with other work are noisy: the load average is printed
beside them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BOUND_S = 120  # a process still running this long after the signal is reported as hung


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(folder: Path, timeout: int) -> list[subprocess.Popen]:
    tlsjax = shutil.which("tlsjax") or str(Path(sys.executable).parent / "tlsjax")
    port = _port()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    return [subprocess.Popen(
        [tlsjax, "es", "--cells", "6", "--realizations", "200", "--checkpoint", "ck.npz",
         "--json", "es.json", "--no-progress", "--coordinator", f"127.0.0.1:{port}",
         "--num-processes", "2", "--process-id", str(i), "--process-timeout", str(timeout)],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for i in (0, 1)]


def _wait_for_checkpoint(folder: Path, procs: list[subprocess.Popen]) -> None:
    start = time.monotonic()
    while not (folder / "ck.npz").exists():
        if any(p.poll() is not None for p in procs):
            sys.exit("a process ended before the first checkpoint: "
                     + " | ".join(p.communicate()[1][-500:] for p in procs))
        if time.monotonic() - start > BOUND_S:
            for p in procs:
                p.kill()
            sys.exit(f"no checkpoint after {BOUND_S} s: the two processes were stopped")
        time.sleep(0.05)
    time.sleep(0.3)  # a few batches more


def _end(proc: subprocess.Popen, sent: float) -> tuple[int | None, float, str]:
    """Wait for `proc` (at most BOUND_S after the signal); (status, seconds, stderr)."""
    try:
        _, err = proc.communicate(timeout=max(BOUND_S - (time.monotonic() - sent), 1))
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - sent, "(still running: hung)"
    return proc.returncode, time.monotonic() - sent, err


def build_parser() -> argparse.ArgumentParser:
    from tlsjax.cli._args import finish_parser, integer
    from tlsjax.cli._main import Parser

    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--victim", choices=("0", "1", "both"), default="1")
    parser.add_argument("--signal", choices=("STOP", "INT", "TERM", "KILL"), default="STOP")
    parser.add_argument("--process-timeout", type=integer(1, 600), default=5, metavar="S",
                        help="--process-timeout of the two processes in seconds (5)")
    parser.add_argument("--folder", default=None,
                        help="an empty folder to run in (default: a temporary one)")
    return finish_parser(parser)


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="tlsjax-faults-"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        parser.error(f"argument --folder: {folder} cannot be made a folder ({err.strerror})")
    if any(folder.iterdir()):
        parser.error(f"argument --folder: {folder} must be empty")
    signum = getattr(signal, f"SIG{args.signal}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    procs = _start(folder, args.process_timeout)
    _wait_for_checkpoint(folder, procs)
    victims = [0, 1] if args.victim == "both" else [int(args.victim)]
    sent = time.monotonic()
    for v in victims:
        procs[v].send_signal(signum)
    order = [p for p in (0, 1) if p not in victims] + victims
    for p in order:
        if signum == signal.SIGSTOP and p in victims:
            procs[p].kill()  # stopped: only SIGKILL ends it now
        code, seconds, err = _end(procs[p], sent)
        role = "signalled" if p in victims else "other"
        print(f"process {p} ({role}): exit status {code} after {seconds:.2f} s")
        for line in err.strip().splitlines():
            print(f"    {line[:300]}")
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    print(f"files left in {folder}: {sorted(x.name for x in folder.iterdir())}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
