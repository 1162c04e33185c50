"""`--coordinator`, `--num-processes`, `--process-id`: one command run by several processes.

`add_process_options` gives these options to every long command (`PROCESS_COMMANDS`);
`join_processes` checks them (or the `TLSJAX_*` environment variables) before anything
is computed, joins the JAX job (`tlsjax.distributed`), and refuses to go on when the
processes were started with different options. Processes other than 0 print nothing on
standard output (they compute the same result; process 0 prints and writes it).
"""

from __future__ import annotations

import argparse

from .._validate import check_int
from ..parallel._distributed import (
    DEFAULT_TIMEOUT_S,
    ENV_COORDINATOR,
    ENV_NUM_PROCESSES,
    ENV_PROCESS_ID,
    check_same_config,
    distributed,
    is_joined,
    label_watch,
    process_settings,
    quiet_unless_first,
)
from ._args import integer

#: The commands that can run as one of several processes.
PROCESS_COMMANDS = ("es", "reproduce", "mc", "regimes", "sensitivity")
#: The destinations of the options added here (not part of a command's configuration).
_DESTS = ("coordinator", "num_processes", "process_id", "process_timeout", "func")


def add_process_options(parser: argparse.ArgumentParser) -> None:
    """Add the several-processes options to a command's parser."""
    g = parser.add_argument_group(
        "several processes (jax.distributed; see docs/how-to/several-processes.md)")
    g.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help=f"address of process 0 (default: ${ENV_COORDINATOR}); with "
                   "--num-processes and --process-id, this process joins a job of several "
                   "processes; not needed under srun or mpirun with several tasks (JAX "
                   "detects the job; --num-processes 1 keeps one process)")
    g.add_argument("--num-processes", type=integer(1, 65536), default=None, metavar="P",
                   help=f"number of processes (default: ${ENV_NUM_PROCESSES}, else 1)")
    g.add_argument("--process-id", type=integer(0, 65535), default=None, metavar="I",
                   help=f"this process's id in [0, P - 1] (default: ${ENV_PROCESS_ID})")
    g.add_argument("--process-timeout", type=integer(1, 86400), default=DEFAULT_TIMEOUT_S,
                   metavar="S",
                   help="seconds to wait for the coordinator, and for a sign of life of "
                   "every other process while the job runs: after that, a stopped or hung "
                   f"process stops the others with a message ({DEFAULT_TIMEOUT_S})")


def join_processes(args: argparse.Namespace) -> tuple[int, int]:
    """Join the job the options ask for (nothing when they ask for one process) and check
    that every process runs the same command. Returns (process index, process count)."""
    where = f"tlsjax {args.command}"
    coordinator, num, pid = process_settings(
        args.coordinator, args.num_processes, args.process_id, where=where,
        names=("--coordinator", "--num-processes", "--process-id"))
    check_int(where, "--process-timeout", args.process_timeout, 1, 86400)
    # nothing given: JAX detects `srun` / `mpirun` jobs of several tasks
    label_watch(where, "--process-timeout")  # the command's name in the watchdog's line
    index, count = distributed(coordinator, num, pid, timeout=args.process_timeout,
                               watch=args.process_timeout)
    config = {k: v for k, v in vars(args).items() if k not in _DESTS}
    check_same_config({f"--{k.replace('_', '-')}": v for k, v in config.items()}, where)
    quiet_unless_first()
    return index, count


#: Words in JAX's errors when a collective across processes breaks off.
_BROKEN = ("Gloo", "gloo", "UNAVAILABLE", "DEADLINE_EXCEEDED", "Connection reset",
           "connection", "heartbeat", "coordination service")


def error_text(err: BaseException) -> str:
    """The one-line message for `err`; in a job of several processes, an error of JAX's
    collectives says that another process stopped."""
    if not is_joined():
        return str(err)
    text = " ".join(str(err).split()) or type(err).__name__
    if any(w in text for w in _BROKEN):
        return ("another process of this job stopped or cannot be reached, so this one "
                f"stops too (JAX: {text[:160]}); a --checkpoint, if given, resumes the run "
                "in one process or in several")
    return text
