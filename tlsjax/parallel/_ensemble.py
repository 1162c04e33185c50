"""Disorder ensembles: realizations streamed in batches, on every device, resumable.

`disorder_average(fn, keys)` runs `fn(key)` for every key and keeps a running mean
and standard error. The work is organised in three levels:

- a Python loop over *batches* of `batch_size` keys (one batch in memory at a time;
  after each batch the progress bar moves and, if asked, a partial result is saved);
- inside a batch, the keys are split over the devices of a 1-D `Mesh`
  (`NamedSharding` / `shard_map`, see `_sharding.py`);
- on each device, `vmap_size` realizations are `jax.vmap`ped together, in a
  `jax.lax.map` over the device's share.

Results are bitwise identical for any number of devices or processes (`jax.distributed`,
see `_distributed.py`) and any `batch_size` (same keys, same `vmap_size`): every
realization is computed by the same compiled body, its results are gathered on every
process, and the running statistics add realizations one at a time in key order
(Welford, float64, on the host). Changing `vmap_size` may change the last bits (XLA
compiles a different body). Checked for the ES scans and the Monte Carlo with 2
processes (tests/test_processes.py) and with 4 emulated devices (tests/test_sharding.py),
at XLA's default compile flags and at the test suite's (level 0, older emitters); the
compiler can break it: at level 0 with the default emitters one and two processes differ
in the last bits (docs/how-to/several-processes.md).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import types
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh
from jaxtyping import PRNGKeyArray, PyTree

from .._interrupts import deferred_interrupts, raise_if_interrupted
from .._io import atomic_path, check_folder_writable
from .._validate import check_int
from ._sharding import device_mesh, mesh_size, round_up, shard_leading, sharded_map, to_host

#: Format tag stored in every saved partial result (v2: the fingerprint identifies `fn`).
CHECKPOINT_FORMAT = "tlsjax-ensemble-v2"


class RunningStats:
    """Running mean and standard error of a pytree of arrays (Welford, float64).

    `update(batch)` takes a pytree whose leaves have a leading realization axis and adds
    the realizations one at a time, in order, so the result does not depend on how
    realizations are grouped into batches. `state()` / `from_state()` save and restore
    the exact running sums (for resuming an interrupted ensemble).
    """

    def __init__(self):
        self.count = 0
        self._mean = None
        self._m2 = None
        self._treedef = None

    def _init(self, treedef, shapes) -> None:
        self._treedef = treedef
        self._mean = [np.zeros(s) for s in shapes]
        self._m2 = [np.zeros(s) for s in shapes]

    def update(self, batch: PyTree) -> None:
        leaves, treedef = jax.tree_util.tree_flatten(batch)
        leaves = [np.asarray(x, dtype=np.float64) for x in leaves]
        if self._treedef is None:
            self._init(treedef, [x.shape[1:] for x in leaves])
        elif treedef != self._treedef:
            raise ValueError("`RunningStats.update`: batch structure changed between updates")
        for r in range(leaves[0].shape[0]):
            self.count += 1
            for k, leaf in enumerate(leaves):
                delta = leaf[r] - self._mean[k]
                self._mean[k] += delta / self.count
                self._m2[k] += delta * (leaf[r] - self._mean[k])

    @property
    def mean(self) -> PyTree:
        if self._treedef is None:
            raise ValueError("`RunningStats.mean`: no realization has been added")
        return jax.tree_util.tree_unflatten(self._treedef, [m.copy() for m in self._mean])

    @property
    def stderr(self) -> PyTree:
        """Standard error of the mean, sqrt(var / n) with the n - 1 variance; NaN if n < 2."""
        if self._treedef is None:
            raise ValueError("`RunningStats.stderr`: no realization has been added")
        n = self.count
        if n < 2:
            errs = [np.full_like(m, np.nan) for m in self._m2]
        else:
            errs = [np.sqrt(m2 / (n - 1) / n) for m2 in self._m2]
        return jax.tree_util.tree_unflatten(self._treedef, errs)

    def state(self) -> dict[str, np.ndarray]:
        """The exact running sums as a flat dict of arrays (`count`, `mean_k`, `m2_k`)."""
        out = {"count": np.asarray(self.count)}
        for k, (m, m2) in enumerate(zip(self._mean or [], self._m2 or [])):
            out[f"mean_{k}"] = m
            out[f"m2_{k}"] = m2
        return out

    @classmethod
    def from_state(cls, state, treedef, shapes) -> RunningStats:
        """Rebuild from `state()` output for outputs of structure `treedef` and `shapes`."""
        stats = cls()
        stats._init(treedef, shapes)
        stats.count = int(state["count"])
        for k, shape in enumerate(shapes):
            mean, m2 = np.asarray(state[f"mean_{k}"]), np.asarray(state[f"m2_{k}"])
            if mean.shape != tuple(shape) or m2.shape != tuple(shape):
                raise ValueError("`RunningStats.from_state`: saved shapes do not match")
            stats._mean[k] = mean.astype(np.float64)
            stats._m2[k] = m2.astype(np.float64)
        return stats


def mean_and_stderr(values, axis: int = 0):
    """Mean and standard error along `axis` (n - 1 variance; NaN stderr for n < 2)."""
    v = np.asarray(values, dtype=np.float64)
    n = v.shape[axis]
    if n == 0:
        raise ValueError("`mean_and_stderr(values=...)` needs at least one value along `axis`")
    mean = v.mean(axis=axis)
    if n < 2:
        return mean, np.full_like(mean, np.nan)
    return mean, v.std(axis=axis, ddof=1) / np.sqrt(n)


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_FUNCTIONS = (types.FunctionType, types.MethodType, functools.partial)


def _code_digest(code: types.CodeType, h) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_digest(const, h)
        else:
            h.update(_ADDRESS.sub("", repr(const)).encode())


def _value_digest(value, h, depth: int) -> None:
    """Feed a closed-over value (pytree of arrays, numbers, functions, ...) into `h`."""
    if isinstance(value, _FUNCTIONS):
        _callable_digest(value, h, depth - 1)
        return
    leaves, treedef = jax.tree_util.tree_flatten(value)
    h.update(_ADDRESS.sub("", str(treedef)).encode())
    for leaf in leaves:
        if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
            if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                leaf = jax.random.key_data(leaf)
            a = np.asarray(leaf)
            h.update(f"{a.shape}{a.dtype}".encode())
            h.update(np.ascontiguousarray(a).tobytes())
        elif isinstance(leaf, _FUNCTIONS):
            _callable_digest(leaf, h, depth - 1)
        else:
            h.update(_ADDRESS.sub("", repr(leaf)).encode())


def _callable_digest(fn, h, depth: int = 3) -> None:
    """Feed what identifies `fn` into `h`: its module and qualified name, its code, and
    the values of its closure, defaults and partial arguments (functions among them
    followed `depth` levels deep). Values `fn` reads from module globals are not seen:
    name them in `config`."""
    if depth < 0:
        return
    if isinstance(fn, functools.partial):
        h.update(b"partial")
        _callable_digest(fn.func, h, depth)
        _value_digest((fn.args, fn.keywords), h, depth)
        return
    target = fn if isinstance(fn, (types.FunctionType, types.MethodType)) else type(fn)
    h.update(f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', '')}"
             .encode())
    func = getattr(fn, "__func__", fn)
    code = getattr(func, "__code__", None)
    if code is not None:
        _code_digest(code, h)
        cells = [c.cell_contents for c in (func.__closure__ or ()) if _cell_full(c)]
        _value_digest((cells, func.__defaults__, func.__kwdefaults__), h, depth)
    if not isinstance(fn, (types.FunctionType, types.MethodType)):
        _value_digest(fn, h, depth)  # a callable object, e.g. an equinox Module
    elif isinstance(fn, types.MethodType):
        _value_digest(fn.__self__, h, depth)


def _cell_full(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def function_fingerprint(fn) -> str:
    """A SHA-256 hex digest identifying `fn` (see `_callable_digest`)."""
    h = hashlib.sha256()
    _callable_digest(fn, h)
    return h.hexdigest()


def _fingerprint(key_data: np.ndarray, impl: str, out_struct, vmap_size: int,
                 config, fn) -> str:
    """SHA-256 of everything that fixes the ensemble's result."""
    h = hashlib.sha256()
    h.update(CHECKPOINT_FORMAT.encode())
    h.update(function_fingerprint(fn).encode())
    h.update(np.ascontiguousarray(key_data).tobytes())
    h.update(str(key_data.shape).encode())
    h.update(impl.encode())
    leaves, treedef = jax.tree_util.tree_flatten(out_struct)
    h.update(str(treedef).encode())
    h.update(str([(leaf.shape, str(leaf.dtype)) for leaf in leaves]).encode())
    h.update(str(vmap_size).encode())
    h.update(json.dumps(config, sort_keys=True, default=repr).encode())
    return h.hexdigest()


def _load_checkpoint(path: Path, fingerprint: str, n_keys: int, treedef, shapes):
    """(stats, next_index) from a saved partial result, or `None` if `path` is absent."""
    if not path.exists():
        return None
    if path.is_dir():
        raise FileExistsError(f"`disorder_average(checkpoint=...)`: {path} is a folder; "
                              "give a file name such as run.npz")
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        if zipfile.is_zipfile(path) or _looks_truncated_zip(path):
            raise ValueError(
                f"`disorder_average(checkpoint=...)`: {path} cannot be read (truncated or "
                f"damaged: {err}); delete it to start the ensemble again, or choose another "
                "path") from None
        raise FileExistsError(f"{path} exists and is not a tlsjax ensemble checkpoint; "
                              "choose another `checkpoint` path") from None
    fmt = str(data.get("format", ""))
    if fmt.startswith("tlsjax-ensemble-") and fmt != CHECKPOINT_FORMAT:
        raise ValueError(f"`disorder_average(checkpoint=...)`: {path} was written by another "
                         f"version of tlsjax (format {fmt!r}, this one reads "
                         f"{CHECKPOINT_FORMAT!r}); delete it or choose another path")
    if fmt != CHECKPOINT_FORMAT or "fingerprint" not in data:
        raise FileExistsError(f"{path} exists and is not a tlsjax ensemble checkpoint "
                              f"(format {fmt!r}); choose another `checkpoint` path")
    if str(data["fingerprint"]) != fingerprint:
        raise ValueError(
            f"`disorder_average(checkpoint=...)`: {path} holds a partial result of a different "
            "configuration (function, keys, outputs, vmap_size or config differ); delete it "
            "or choose another path")
    next_index = int(data["next_index"])
    if not 0 <= next_index <= n_keys or int(data["count"]) != next_index:
        raise ValueError(f"`disorder_average(checkpoint=...)`: {path} is inconsistent "
                         f"(next_index {next_index}, count {int(data['count'])}, {n_keys} keys)")
    return RunningStats.from_state(data, treedef, shapes), next_index


def _looks_truncated_zip(path: Path) -> bool:
    """A file starting like a zip archive (NumPy's .npz) whose end is missing."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def _save_checkpoint(path: Path, fingerprint: str, stats: RunningStats, next_index: int,
                     n_keys: int) -> None:
    """Write atomically (a temporary name beside it, then a rename; `atomic_path`): an
    interruption never leaves half a file, and no file of the user's is touched."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, format=np.asarray(CHECKPOINT_FORMAT), fingerprint=np.asarray(fingerprint),
                 next_index=np.asarray(next_index), n_keys=np.asarray(n_keys), **stats.state())


def check_same_start(path: Path, start: int, stats: RunningStats) -> None:
    """In a job of several processes, refuse to go on unless every process read the same
    checkpoint (a file system every process sees, or no file anywhere)."""
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    digest = hashlib.sha256(repr(sorted((k, np.asarray(v).tobytes()) for k, v in
                                        stats.state().items())).encode()).digest()
    mine = np.asarray([start, int.from_bytes(digest[:3], "little")], np.int32)
    every = np.asarray(multihost_utils.process_allgather(mine)).reshape(-1, 2)
    if (every != every[0]).any():
        raise ValueError(
            f"`disorder_average(checkpoint=...)`: the processes of this job read different "
            f"checkpoints at {path} (next realization per process: {every[:, 0].tolist()}); "
            "put the checkpoint on a file system every process sees")


@functools.lru_cache(maxsize=16)
def _compiled_batch(fn, impl, mesh, vmap_size):
    """The jitted batch function (cached, so repeated calls with the same `fn` reuse it)."""

    def one(kd):
        return fn(jax.random.wrap_key_data(kd, impl=impl))

    return jax.jit(lambda kd: sharded_map(one, kd, mesh, batch_size=vmap_size))


def _checked_inputs(fn, keys, checkpoint) -> tuple[PRNGKeyArray, Path | None]:
    """`disorder_average`'s checks before any compilation or computation: `fn` callable,
    `keys` an array of keys (legacy uint32 keys wrapped), the checkpoint's folder
    writable. Returns the keys and the checkpoint's path (or None)."""
    if not callable(fn):
        raise TypeError(f"`disorder_average(fn=...)` must be callable (key -> pytree of "
                        f"arrays); got {type(fn).__name__}")
    if not hasattr(keys, "dtype"):
        raise TypeError("`disorder_average(keys=...)` must be an array of JAX PRNG keys, e.g. "
                        f"`jax.random.split(jax.random.key(0), n)`; got {type(keys).__name__}")
    path = None if checkpoint is None else Path(checkpoint)
    if path is not None:
        if path.is_dir():
            raise FileExistsError(f"`disorder_average(checkpoint=...)`: {path} is a folder; "
                                  "give a file name such as run.npz")
        check_folder_writable(path.parent, what=f"checkpoint {path}: folder")
    if not jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
        keys = jax.random.wrap_key_data(keys)  # legacy uint32 keys
    return keys, path


def _average_batches(batched, key_data, start, batch_size, mesh, stats, save, bar) -> None:
    """The outer loop of `disorder_average`: the keys from `start` on, `batch_size` at a
    time (the last batch padded), each batch's results added to `stats` and saved
    (`save(hi)`, if not None) as one step that an interrupt cannot cut."""
    n = key_data.shape[0]
    for lo in range(start, n, batch_size):
        hi = min(lo + batch_size, n)
        chunk = key_data[lo:hi]
        if hi - lo < batch_size:  # pad the last batch (same compiled shape)
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - (hi - lo), 0)])
        out = to_host(batched(shard_leading(chunk, mesh)))
        with deferred_interrupts():  # statistics and checkpoint stay consistent
            stats.update(jax.tree_util.tree_map(lambda a, m=hi - lo: a[:m], out))
            if save is not None:
                save(hi)
        if bar is not None:
            bar.update(hi - lo)
        raise_if_interrupted()  # a Ctrl-C that JAX swallowed (see `_interrupts.py`)


def disorder_average(
    fn: Callable[[PRNGKeyArray], PyTree],
    keys: PRNGKeyArray,
    *,
    batch_size: int | None = None,
    vmap_size: int = 1,
    devices: int | Sequence[jax.Device] | Mesh | None = None,
    checkpoint: str | os.PathLike | None = None,
    config=None,
    progress: bool = False,
    description: str = "realizations",
) -> tuple[PyTree, PyTree, int]:
    """Average `fn(key)` over disorder realizations, on every device, resumably.

    **Arguments:**

    - `fn`: one realization, `key -> pytree of arrays` (traceable; it is compiled once).
    - `keys`: (n,) JAX PRNG keys, one per realization.
    - `batch_size`: realizations per step of the outer loop (default: one `vmap_size`
      chunk per device); rounded up to a multiple of `vmap_size` x the number of
      devices. The last batch is padded with repeated keys whose results are dropped.
    - `vmap_size`: realizations `jax.vmap`ped together on one device (>= 1). Memory
      grows with it; results may change in the last bits with it, never with
      `batch_size` or the number of devices.
    - `devices`: `None` (all of `jax.devices()`, every host's), a count, a list of
      devices or a 1-D `Mesh`; see `device_mesh`.
    - `checkpoint`: path of a partial result (`.npz`). If the file exists, the ensemble
      resumes from it (it must come from the same function, keys, outputs, `vmap_size`
      and `config`, else `ValueError`; a file that is not a tlsjax checkpoint is never
      touched: `FileExistsError`; a truncated one: `ValueError`). After each batch the
      running sums and the index of the next key are written to it (atomically, through
      a temporary name ``.NAME.tlsjax-tmp-...``). It is kept when the run completes, so
      running again returns the saved result at once. The path is checked (a folder, a
      read-only place) before anything is computed.
    - `config`: anything JSON-representable that identifies what `fn` computes (sample,
      parameters, grids); it enters the checkpoint's fingerprint together with `fn`'s
      module, qualified name, code and the values it closes over. Values `fn` reads from
      module globals cannot be seen: name them in `config`.
    - `progress`: show a tqdm progress bar; `description` labels it.

    A `KeyboardInterrupt` stops the loop and returns the statistics of the realizations
    finished so far (already saved if `checkpoint` is set); `count` then tells how many
    of the keys were averaged. Updating the statistics and saving them are never cut in
    half by an interrupt (`deferred_interrupts`).

    **Returns:** `(mean, stderr, count)`: pytrees of float64 NumPy arrays shaped like
    one output of `fn`, and the number of realizations averaged.
    """
    keys, path = _checked_inputs(fn, keys, checkpoint)
    n = keys.shape[0] if keys.ndim else 0
    check_int("disorder_average", "number of keys", n, 1)
    vmap_size = check_int("disorder_average", "vmap_size", vmap_size, 1)
    mesh = device_mesh(devices)
    unit = vmap_size * mesh_size(mesh)
    batch_size = unit if batch_size is None else check_int(
        "disorder_average", "batch_size", batch_size, 1)
    batch_size = round_up(min(batch_size, round_up(n, unit)), unit)

    impl = jax.random.key_impl(keys)
    key_data = np.asarray(jax.random.key_data(keys))

    batched = _compiled_batch(fn, impl, mesh, vmap_size)
    out_struct = jax.eval_shape(
        batched, jax.ShapeDtypeStruct((batch_size, *key_data.shape[1:]), key_data.dtype))
    out_struct = jax.tree_util.tree_map(lambda s: jax.ShapeDtypeStruct(s.shape[1:], s.dtype),
                                        out_struct)
    leaves, treedef = jax.tree_util.tree_flatten(out_struct)
    shapes = [leaf.shape for leaf in leaves]

    stats, start = RunningStats(), 0
    stats._init(treedef, shapes)
    if path is not None:
        fingerprint = _fingerprint(key_data, str(impl), out_struct, vmap_size, config, fn)
        loaded = _load_checkpoint(path, fingerprint, n, treedef, shapes)
        if loaded is not None:
            stats, start = loaded
        check_same_start(path, start, stats)

    bar = None
    if progress and jax.process_index() == 0:
        from .._progress import progress_bar

        bar = progress_bar(n, initial=start, desc=description, unit="real", leave=True)
    save = None if path is None else (lambda hi: _save_checkpoint(path, fingerprint, stats, hi, n))
    try:
        _average_batches(batched, key_data, start, batch_size, mesh, stats, save, bar)
    except KeyboardInterrupt:
        if stats.count == 0:
            raise
    finally:
        if bar is not None:
            bar.close()
    if stats.count == 0:
        raise ValueError("`disorder_average`: no realization was averaged")
    return stats.mean, stats.stderr, stats.count


def process_map(fn: Callable[[PRNGKeyArray], PyTree], keys: PRNGKeyArray) -> PyTree:
    """`fn(key)` for every key, the keys split over the processes of a `jax.distributed`
    job (contiguous shares), gathered on every process: NumPy arrays with a leading axis
    of one entry per key, in key order.

    Every key's result comes from the same call whatever the number of processes, so a
    reduction of the gathered results done in key order (on the host) gives the same bits
    in one process and in several. `fn` is called as given, one key at a time: pass a
    function that calls an already compiled program (e.g. an `eqx.filter_jit` function
    with fixed other arguments), so that no call compiles again. Unlike
    `disorder_average`, no `shard_map`: for functions that cannot be traced inside it,
    e.g. derivatives through optimistix's implicit root finding (`SoftTheta.crossover`).
    """
    n = keys.shape[0]
    count, me = jax.process_count(), jax.process_index()
    share = -(-n // count)
    mine = [to_host(fn(keys[i])) for i in range(me * share, min(n, (me + 1) * share))]
    if count == 1:
        return jax.tree_util.tree_map(lambda *xs: np.stack(xs), *mine)
    struct = jax.eval_shape(fn, keys[0])
    while len(mine) < share:  # a short (or empty) last share: padding, dropped below
        mine.append(jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), struct))
    stacked = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *mine)
    from jax.experimental import multihost_utils

    every = multihost_utils.process_allgather(stacked)  # (count, share, ...) on every process
    return jax.tree_util.tree_map(
        lambda a: np.asarray(a).reshape(count * share, *a.shape[2:])[:n], every)
