"""Several processes (and hosts) as one JAX job: joining it, and checking they agree.

tlsjax builds on JAX's own multi-controller runtime (`jax.distributed.initialize`):
every process runs the same program, `jax.devices()` lists the devices of every
process, and `disorder_average` / `run_mc` split their realizations over all of them
(`shard_leading`) and gather the results on every process (`to_host`). There is no
launcher of tlsjax's own: start the processes with Slurm's `srun`, `mpirun`, or by hand.

Nothing here runs on import: `distributed(...)` joins the job when a script (or the
CLI, when asked) calls it. On CPUs the collectives go through gloo.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import socket
import sys
import threading
import time

import jax
import numpy as np

from .._validate import check_int

#: The environment variables read when an argument of `distributed` is `None`.
ENV_COORDINATOR = "TLSJAX_COORDINATOR"
ENV_NUM_PROCESSES = "TLSJAX_NUM_PROCESSES"
ENV_PROCESS_ID = "TLSJAX_PROCESS_ID"
#: Default seconds to reach the coordinator (`jax.distributed.initialize`'s own is 300).
DEFAULT_TIMEOUT_S = 60
#: Seconds without a heartbeat after which JAX declares a process dead (JAX's: 100).
DEFAULT_HEARTBEAT_S = 20
#: Seconds between two signs of life of a process to the others (`watch_peers`).
PULSE_S = 1.0
#: Seconds JAX's own heartbeat timeout is set beyond `watch_peers`' timeout, so that the
#: watchdog (one line) speaks before JAX (which aborts the process with a stack trace).
HEARTBEAT_MARGIN_S = 30
#: Seconds a finishing process waits at exit for the others to finish (as JAX: 300; the
#: others may still be drawing figures into their discarded copies).
SHUTDOWN_TIMEOUT_S = 300


def _env_int(name: str, where: str) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"`{where}`: environment variable {name} must be an integer; "
                         f"got {text!r}") from None


def check_coordinator(where: str, address: str) -> str:
    """`address` as HOST:PORT with a port in [1, 65535] (`ValueError` otherwise)."""
    if not isinstance(address, str):
        raise TypeError(f"`{where}`: coordinator must be a string HOST:PORT; "
                        f"got {type(address).__name__}")
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"`{where}`: coordinator must be HOST:PORT with a port in "
                         f"[1, 65535]; got {address!r}")
    return f"{host}:{int(port)}"


def process_settings(coordinator=None, num_processes=None, process_id=None, *,
                     where: str = "distributed", names=("coordinator", "num_processes",
                                                        "process_id")
                     ) -> tuple[str | None, int | None, int | None]:
    """The (coordinator, number of processes, process id) asked for: the arguments, or
    else the `TLSJAX_*` environment variables; all checked. `(None, None, None)` means
    "let `jax.distributed.initialize` detect the cluster" (Slurm, Open MPI, TPU)."""
    coordinator = coordinator if coordinator is not None else (
        os.environ.get(ENV_COORDINATOR, "").strip() or None)
    if num_processes is None:
        num_processes = _env_int(ENV_NUM_PROCESSES, where)
    if process_id is None:
        process_id = _env_int(ENV_PROCESS_ID, where)
    if coordinator is not None:
        coordinator = check_coordinator(where, coordinator)
    if num_processes is not None:
        num_processes = check_int(where, names[1], num_processes, 1, 1 << 16)
    if process_id is not None:
        hi = None if num_processes is None else num_processes - 1
        process_id = check_int(where, names[2], process_id, 0, hi)
    given = [v is not None for v in (coordinator, num_processes, process_id)]
    if any(given) and not all(given) and num_processes != 1:
        raise ValueError(f"`{where}`: give the coordinator, the number of processes and the "
                         "process id together (or none of them, where JAX detects the cluster: "
                         "Slurm, Open MPI, TPU)")
    return coordinator, num_processes, process_id


def wait_for_coordinator(address: str, timeout: float) -> float:
    """Wait until something listens at `address` (HOST:PORT); the seconds left of
    `timeout`. `ConnectionError` when nothing does within `timeout` (JAX itself would
    abort the process, without a Python error, when its connection times out)."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
                return max(deadline - time.monotonic(), 1.0)
        except OSError as err:
            if time.monotonic() >= deadline:
                raise ConnectionError(
                    f"the coordinator {address} cannot be reached ({err.strerror or err}) "
                    f"within {timeout:g} s; start process 0 there, check HOST:PORT, or give "
                    "more time (--process-timeout / `distributed(timeout=...)`)") from None
            time.sleep(0.25)


def cluster_tasks() -> int:
    """Tasks of the job the environment describes (Slurm's ``SLURM_NTASKS`` inside `srun`,
    Open MPI's ``OMPI_COMM_WORLD_SIZE``); 1 when none."""
    for name in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        if name == "SLURM_NTASKS" and "SLURM_PROCID" not in os.environ:
            continue
        try:
            n = int(os.environ.get(name, "1"))
        except ValueError:
            continue
        if n > 1:
            return n
    return 1


def is_joined() -> bool:
    """True once this process belongs to a multi-process JAX job."""
    return jax.distributed.is_initialized()


def distributed(coordinator: str | None = None, num_processes: int | None = None,
                process_id: int | None = None, *, timeout: int = DEFAULT_TIMEOUT_S,
                heartbeat_timeout: int = DEFAULT_HEARTBEAT_S, detect: bool | None = None,
                watch: int | None = None) -> tuple[int, int]:
    """Join a job of several processes (call it first, before any JAX computation).

    **Arguments:**

    - `coordinator`: ``"HOST:PORT"`` of process 0 (it listens there).
    - `num_processes`, `process_id`: P and this process's id in [0, P - 1].
      Each of the three defaults to ``TLSJAX_COORDINATOR``, ``TLSJAX_NUM_PROCESSES``,
      ``TLSJAX_PROCESS_ID``. Give all three, or none of them with `detect=True` to let
      `jax.distributed.initialize` read the cluster (Slurm, Open MPI, TPU).
    - `timeout`: seconds to reach the coordinator and the other processes (>= 1).
    - `heartbeat_timeout`: seconds after which a silent process is declared dead and
      the others stop (>= 2).
    - `detect`: with nothing given, join through JAX's cluster detection (`True`), stay
      a single process (`False`), or detect when the environment describes more than one
      task (`None`, the default: `srun` with several tasks, `mpirun -n P`).
    - `watch`: seconds (>= 1); if given, a process that gives no sign of life for that
      long (stopped, hung, killed, its host unreachable) stops this one with one line on
      standard error and exit status 2 (`watch_peers`, as the command line's
      `--process-timeout`), and JAX's own heartbeat timeout is set beyond it. Without it
      (the default), JAX's heartbeat ends a process after `heartbeat_timeout` with its own
      fatal message. (The command line also tells the others at once when one of its
      processes stops on an error or Ctrl-C; a script's exit does not.)

    Sets ``jax_cpu_collectives_implementation`` to ``"gloo"`` (CPU collectives across
    processes); this is the one global JAX setting tlsjax changes, and only here.

    **Returns:** `(process_index, process_count)`; `(0, 1)` when nothing asks for
    several processes. **Raises:** `ValueError` for bad settings, `ConnectionError`
    when the coordinator cannot be reached within `timeout`.
    """
    coordinator, num_processes, process_id = process_settings(
        coordinator, num_processes, process_id)
    timeout = check_int("distributed", "timeout", timeout, 1, 86400)
    heartbeat_timeout = check_int("distributed", "heartbeat_timeout", heartbeat_timeout, 2, 86400)
    if watch is not None:
        watch = check_int("distributed", "watch", watch, 1, 86400)
        heartbeat_timeout = max(heartbeat_timeout, watch + HEARTBEAT_MARGIN_S)
    if is_joined():
        if watch is not None:
            watch_peers(watch, setting=None if _Watch.labeled else "distributed(watch=...)")
        return jax.process_index(), jax.process_count()
    if detect is None:
        detect = cluster_tasks() > 1
    if num_processes == 1 or (coordinator is None and not detect):
        return 0, 1
    left = timeout
    if coordinator is not None and process_id:  # process 0 starts the coordinator itself
        left = wait_for_coordinator(coordinator, timeout)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator, num_processes, process_id, initialization_timeout=int(left),
            heartbeat_timeout_seconds=heartbeat_timeout,
            shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S)
    except Exception as err:  # noqa: BLE001 - JAX raises several kinds; one clear line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConnectionError(
            f"could not join the job of {num_processes or 'auto'} processes through the "
            f"coordinator {coordinator or '(detected)'} within {timeout} s (process id "
            f"{process_id}): {first[:200]}") from None
    if jax.process_count() > 1 and jax.default_backend() == "cpu":
        _connect_collectives()
    if watch is not None:
        watch_peers(watch, setting=None if _Watch.labeled else "distributed(watch=...)")
    return jax.process_index(), jax.process_count()


def _connect_collectives() -> None:
    """Make the processes' first exchange here, with standard output silenced: gloo
    announces the connection ("[Gloo] Rank 0 is connected to 1 peer ranks ...") from C++
    on file descriptor 1, where it would mix with a command's output (and on standard
    error with its one-line messages). Errors of the exchange still raise."""
    from jax.experimental import multihost_utils

    sys.stdout.flush()
    saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        multihost_utils.sync_global_devices("tlsjax: the processes are connected")
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


def _digest(value) -> int:
    text = json.dumps(value, sort_keys=True, default=repr)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def check_same_config(config: dict, where: str = "distributed") -> None:
    """Refuse (`ValueError`) to go on when the processes of the job were started with
    different `config`s (a dict of option name -> value); the message names the options
    that differ. A no-op in a single process."""
    if not is_joined() or jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    names = sorted(config)
    mine = np.asarray([_digest(names)] + [_digest(config[k]) for k in names], np.uint32)
    sizes = np.asarray(multihost_utils.process_allgather(np.asarray([mine.size], np.int32)))
    if len(set(sizes.ravel().tolist())) > 1:
        raise ValueError(f"`{where}`: the processes of this job run different commands or "
                         "options (their lists of options differ); start every process with "
                         "the same command")
    every = np.asarray(multihost_utils.process_allgather(mine)).reshape(-1, mine.size)
    differ = [names[k - 1] for k in range(1, mine.size) if len(set(every[:, k].tolist())) > 1]
    if every[:, 0].min() != every[:, 0].max():
        differ = differ or ["(the list of options)"]
    if differ:
        others = [p for p in range(every.shape[0]) if (every[p] != mine).any()]
        shown = ", ".join(f"{k} = {config[k]!r}" for k in differ[:4] if k in config)
        raise ValueError(
            f"`{where}`: process {jax.process_index()} was started with other options than "
            f"process(es) {others}: {', '.join(differ)} "
            f"{'differs' if len(differ) == 1 else 'differ'} (here: {shown}); start every "
            "process with the same command")


def quiet_unless_first() -> None:
    """Send this process's standard output to /dev/null unless it is process 0 (the
    processes compute the same results; one prints them). Errors still show."""
    if is_joined() and jax.process_index() != 0:
        sys.stdout.flush()
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


class _Watch:
    """State of the watchdog of `watch_peers` (one per process)."""

    started = False
    disarmed = False
    stopping = False
    timeout = float(DEFAULT_TIMEOUT_S)
    where = "tlsjax"
    setting = "--process-timeout"  # what sets the timeout, named in the message
    labeled = False  # named by `label_watch` (the command line): kept
    client = None
    seen: dict[int, tuple[str, float]] = {}


_ALIVE, _STOP = "tlsjax/alive/", "tlsjax/stop/"
_RESUME = "a --checkpoint, if given, resumes the run in one process or in several"


def _leave(message: str) -> None:
    """Stop this process now: one line on standard error, exit status 2."""
    sys.stdout.flush()
    print(f"{_Watch.where}: error: {message}", file=sys.stderr, flush=True)
    os._exit(2)


def _by_process(client, prefix: str) -> dict[int, str]:
    """The entries under `prefix` by process id (keys that name no process are skipped)."""
    out = {}
    for k, v in client.key_value_dir_get(prefix):
        tail = k.rsplit("/", 1)[-1]
        if tail.isdigit():
            out[int(tail)] = v
    return out


def _pulse(client, me: int) -> None:
    """Show this process alive (a counter in JAX's key-value store), note when each
    peer's counter last moved, and leave (one line) when a peer announced that it stops
    (`announce_stop`). Runs until the process ends or the client is shut down (also after
    this process's command has finished: a peer may still be working). A failed call to
    the store while the command runs (a time-out under load) is tried again at the next
    pulse: only a coordinator that stays unreachable makes this process look silent."""
    count = 0
    while True:
        count += 1
        try:
            client.key_value_set(f"{_ALIVE}{me}", str(count), allow_overwrite=True)
            now = time.monotonic()
            for p, value in _by_process(client, _ALIVE).items():
                if p in _Watch.seen and value != _Watch.seen[p][0]:
                    _Watch.seen[p] = (value, now)
            stops = {p: why for p, why in _by_process(client, _STOP).items() if p != me}
        except Exception:  # noqa: BLE001 - JAX raises several kinds
            if _Watch.disarmed:  # the client is shut down: the job is ending
                return
            time.sleep(PULSE_S)
            continue
        if stops and not (_Watch.stopping or _Watch.disarmed):
            p, why = min(stops.items())
            _Watch.stopping = True
            try:  # so that process 0 may go (`_let_others_go`)
                client.key_value_set(f"{_STOP}{me}", "stopped with the others",
                                     allow_overwrite=True)
                if me == 0:
                    _let_others_go(client)
            finally:
                _leave(f"process {p} of this job stopped ({why}), so this one stops too; "
                       f"{_RESUME}")
        time.sleep(PULSE_S)


def _check(me: int, peers: list[int]) -> None:
    """Leave (one line, exit status 2) when a peer has given no sign of life for
    `_Watch.timeout` seconds, after telling the others (`_announce`); the `_pulse` thread
    may itself be stuck in a call to the coordinator that is gone, so this thread only
    reads the times it noted."""
    while not _Watch.disarmed:
        time.sleep(0.25)
        now = time.monotonic()
        silent = [p for p in peers if now - _Watch.seen[p][1] > _Watch.timeout]
        if silent and not (_Watch.disarmed or _Watch.stopping):
            _Watch.stopping = True
            _announce(me, f"process(es) {silent} gave no sign of life", skip=silent)
            _leave(f"process(es) {silent} of this job gave no sign of life for "
                   f"{_Watch.timeout:g} s (stopped, hung, or its host unreachable), so this "
                   f"one stops too; {_RESUME} ({_Watch.setting} sets the wait)")


def _disarm() -> None:
    """At a normal exit: this process's work is done, so it no longer stops itself for a
    silent peer (it still shows it is alive until JAX's shutdown)."""
    _Watch.disarmed = True


def announce_stop(reason: str) -> None:
    """Before this process leaves on its own (interrupted, or after an error), tell the
    others through JAX's key-value store: each stops within about `PULSE_S` seconds with
    one line naming this process and `reason`, instead of at the next exchange of
    results; process 0 then waits for them to go (`_let_others_go`). A no-op without
    `watch_peers`, and after the first call."""
    if not _Watch.started or _Watch.stopping:
        return
    _Watch.stopping = True
    _announce(jax.process_index(), reason)


def _announce(me: int, reason: str, skip=()) -> None:
    """Set this process's stop key; in process 0, then wait for the others (but those in
    `skip`) to go (`_let_others_go`)."""
    tell = threading.Thread(
        target=_Watch.client.key_value_set, args=(f"{_STOP}{me}", reason),
        kwargs={"allow_overwrite": True}, daemon=True)
    tell.start()
    # the coordinator may be gone or stopped: do not hang on it; where it is gone, JAX may
    # end this process with its own fatal message at any moment, so processes other than
    # 0 (whose leaving harms no one) hardly wait
    tell.join(0.5 if me == 0 else 0.05)
    if me == 0 and not tell.is_alive():
        _let_others_go(_Watch.client, skip)


def _let_others_go(client, skip=()) -> None:
    """In process 0, which runs JAX's coordination service: wait until every other
    process still alive has announced that it stops, so that they leave first (when the
    service vanishes under them, JAX ends them with its own fatal message and a stack
    trace). A process whose pulse has not moved for `PULSE_S + 0.3` s is dead or hung and
    not waited for, nor are those in `skip`; the wait is at most `2 * PULSE_S + 0.5` s."""
    start = time.monotonic()
    try:
        before = _by_process(client, _ALIVE)
        while time.monotonic() - start < 2 * PULSE_S + 0.5:
            stops, alive = _by_process(client, _STOP), _by_process(client, _ALIVE)
            quiet = time.monotonic() - start > PULSE_S + 0.3
            if all(p in stops or (quiet and alive.get(p) == before.get(p))
                   for p in _Watch.seen if p not in skip):
                time.sleep(0.1)  # give those that announced the moment to leave
                return
            time.sleep(0.05)
    except Exception:  # noqa: BLE001 - the service is gone: nothing to wait for
        return


def label_watch(where: str, setting: str) -> None:
    """Name the watchdog's messages before it starts (`where`: the command, `setting`: what
    sets its time-out), so that no message of a peer that stops early names another."""
    _Watch.where, _Watch.setting, _Watch.labeled = where, setting, True


def watch_peers(timeout: float, where: str | None = None, setting: str | None = None
                ) -> None:
    """In a job of several processes, stop this process with one line (exit status 2)
    when another process gives no sign of life for `timeout` seconds (stopped with
    SIGSTOP, hung, or its host unreachable), or when another announces that it stops
    (`announce_stop`: interrupted, or an error). A process that dies without a word
    breaks the next exchange of results at once (see `error_text` in the CLI). Every
    process shows it is alive every `PULSE_S` seconds through JAX's key-value store, from
    a background thread, also while it computes. Called again, it only changes `timeout`,
    `where` (the name in the message) and `setting` (what set the timeout), where given
    (see `label_watch`). A no-op in a single process. At a normal exit the process stops
    watching (its work is done) but goes on showing it is alive until JAX's shutdown."""
    _Watch.timeout = float(timeout)
    if where is not None:
        _Watch.where = where
    if setting is not None:
        _Watch.setting = setting
    if _Watch.started or not is_joined() or jax.process_count() == 1:
        return
    from jax._src import distributed as jax_distributed  # the client JAX itself uses

    _Watch.client = client = jax_distributed.global_state.client
    me = jax.process_index()
    peers = [p for p in range(jax.process_count()) if p != me]
    _Watch.seen = {p: ("", time.monotonic()) for p in peers}
    _Watch.started = True
    atexit.register(_disarm)  # runs before JAX's own shutdown (registered earlier)
    for target, args in ((_pulse, (client, me)), (_check, (me, peers))):
        threading.Thread(target=target, args=args, daemon=True,
                         name=f"tlsjax-{target.__name__[1:]}").start()
