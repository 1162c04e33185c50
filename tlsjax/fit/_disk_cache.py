"""What the fits keep on disk between runs of the command line: C(E) tables and programs.

Once JAX's persistent cache holds the compiled programs, a second `tlsjax fit kappa`
still spent most of its time on (1) the ES reductions behind the tabulated S-tau C(E)
(one for the fit, one per independent DOS sample of the error estimate) and (2) tracing
the fit's few large programs (the L-BFGS step, the post-fit evaluation) in Python before
JAX's cache is even consulted. Both are kept here:

- **Tables** (`load_table` / `save_table`): the arrays of a `TabulatedStauTLS`, keyed by
  the sample (x, L, lattice, realizations, key), a~, h_rel and the floating-point width,
  in `.npz` (exact bits).
- **Programs** (`stored_jit`, a drop-in for `eqx.filter_jit`): the traced program,
  exported with `jax.export` (StableHLO) on its first call and read back by later runs,
  so that they neither trace nor lower it (its compiled form comes from JAX's cache).
  The first run calls the program it has just exported and read back, exactly as later
  runs do, so a warm run gives the same bits as a cold one. A call whose fixed (static)
  arguments cannot be written down exactly (an arbitrary function, an object shown by
  its address) is compiled as by `eqx.filter_jit` and nothing is stored.

Both are off unless a folder is set (`set_folder`): the library computes afresh; the
`tlsjax` program sets `<cache folder>/tlsjax` (`tlsjax.cli._cache`; off with `--no-cache`
or `TLSJAX_NO_CACHE=1`). Every key holds the versions of JAX, NumPy and tlsjax, the
backend and a hash of tlsjax's source files: any change to the code starts afresh. Files
are written atomically (`_io.atomic_write_bytes`), so concurrent runs never read half a
file; one that cannot be read is computed again (never an error).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import pickle
import stat
import threading
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._background import Slot, in_background
from .._interrupts import raise_if_interrupted

_FIELDS = ("log_eps", "log_p_s", "d_log_p_s", "log_phi_tau", "d_log_phi_tau", "e_tau_mean")
_folder: Path | None = None


def set_folder(folder) -> Path | None:
    """Keep tables and programs in `folder` (None: off); returns the previous folder."""
    global _folder
    previous, _folder = _folder, None if folder is None else Path(folder)
    return previous


def folder() -> Path | None:
    return _folder


@functools.lru_cache(maxsize=1)
def _code_version() -> str:
    from .. import __version__

    h = hashlib.sha256(f"{__version__} {jax.__version__} {np.__version__}".encode())
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _path(kind: str, key, suffix: str) -> Path | None:
    if _folder is None:
        return None
    text = json.dumps([_code_version(), jax.default_backend(), kind, key], default=str)
    return _folder / f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:32]}{suffix}"


def _write(path: Path, data: bytes) -> None:
    """Write atomically, readable and writable by this user only (`_trusted`); a folder
    that cannot be written is passed over."""
    from .._io import atomic_write_bytes

    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        path.chmod(0o600)
    except OSError:
        pass


# ---------------------------------------------------------------- tables


def load_table(key: tuple) -> dict[str, np.ndarray | None] | None:
    """The arrays stored under `key`, or None (no folder, not stored, or unreadable)."""
    path = _path("stau-table", key, ".npz")
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {n: np.array(z[n]) if n in z.files else None for n in _FIELDS}
    except (OSError, ValueError, KeyError, EOFError):
        return None
    return out if all(out[n] is not None for n in _FIELDS[:-1]) else None


def table_stored(key: tuple) -> bool:
    """Whether a table is stored under `key` (not whether it can be read)."""
    path = _path("stau-table", key, ".npz")
    return path is not None and path.is_file()


def save_table(key: tuple, arrays: dict) -> None:
    """Store `arrays` (the fields of a `TabulatedStauTLS`) under `key`."""
    path = _path("stau-table", key, ".npz")
    if path is None:
        return
    buf = io.BytesIO()
    np.savez(buf, **{n: np.asarray(v) for n, v in arrays.items() if v is not None})
    _write(path, buf.getvalue())


# ---------------------------------------------------------------- programs

#: Static arguments that are written down by name (e.g. the shared optax L-BFGS), by id:
#: (the object, its name); the object is kept, so its id is never another's.
_NAMED: dict[int, tuple[object, str]] = {}
#: The in-process programs of every `stored_jit` function (`forget`).
_MEMOS: list[dict] = []


def forget() -> None:
    """Drop the programs held in this process, so the next calls read them from disk (as
    a new process would; with `jax.clear_caches()`, for tests)."""
    for memo in _MEMOS:
        memo.clear()


def name_static(obj, name: str) -> None:
    """Let `stored_jit` write the static argument `obj` as `name` in its keys (`obj` is
    kept in the registry)."""
    _NAMED[id(obj)] = (obj, name)


def _name_of(obj) -> str | None:
    """The name `name_static` gave `obj`, or None."""
    entry = _NAMED.get(id(obj))
    return entry[1] if entry is not None and entry[0] is obj else None


def _static_text(static) -> str | None:
    """The static part of the arguments as exact text, or None where it cannot be."""
    leaves, treedef = jax.tree_util.tree_flatten(static)
    parts = [str(treedef)]
    for leaf in leaves:
        name = _name_of(leaf)
        if name is not None:
            parts.append(name)
        elif isinstance(leaf, (bool, int, float, str, type(None))):
            parts.append(repr(leaf))
        else:
            return None
    text = " ".join(parts)
    return None if " at 0x" in text else text


def _export(fun, in_def, static, avals):
    """Trace `fun` once on arrays of `avals`; returns (serialized program, output tree)."""
    out_def = []

    def flat(*leaves):
        out = fun(*eqx.combine(jax.tree_util.tree_unflatten(in_def, leaves), static))
        out_leaves, tree = jax.tree_util.tree_flatten(out)
        out_def.append(tree)
        return out_leaves

    exported = jax.export.export(jax.jit(flat))(*avals)
    return exported.serialize(), out_def[0]


@functools.lru_cache(maxsize=1)
def _can_serialize() -> bool:
    """`jax.export` writes programs with the `flatbuffers` package (a dependency)."""
    import importlib.util

    return importlib.util.find_spec("flatbuffers") is not None


def _trusted(path: Path, missing_ok: bool = False) -> bool:
    """Stored programs are unpickled, so only from a folder and files that this user owns
    and nobody else can write (a shared or world-writable cache folder is not used: its
    programs are compiled afresh). A missing `path` is trusted where `missing_ok`."""
    if not hasattr(os, "getuid"):  # no POSIX owners: the user's own cache folder
        return True
    try:
        st = path.stat()
    except FileNotFoundError:
        return missing_ok
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _program(fun, in_def, static, leaves, compiler_options):
    """(call of the stored program, output tree), or None where it cannot be stored. The
    program is compiled here (ahead of time, `prefetch`); traced calls (inside another
    program or `eval_shape`) use its `jax.jit` form."""
    text = _static_text(static) if _can_serialize() else None
    if text is None:
        return None
    avals = [jax.ShapeDtypeStruct(x.shape, x.dtype, weak_type=jax.typeof(x).weak_type)
             for x in leaves]
    key = [f"{fun.__module__}.{fun.__qualname__}", str(in_def), text,
           str(jnp.result_type(float)), [(a.shape, str(a.dtype), a.weak_type) for a in avals]]
    path = _path("program", key, ".bin")
    if not _trusted(path.parent, missing_ok=True):  # a missing folder is made 0700
        return None
    blob = None
    if path.is_file() and _trusted(path):
        try:
            blob, tree = pickle.loads(path.read_bytes())
        except Exception:  # noqa: BLE001 - a damaged entry is made again
            blob = None
    with _TRACING:
        if blob is None:
            try:
                blob, tree = _export(fun, in_def, static, avals)
            except Exception:  # noqa: BLE001 - e.g. a host callback: not storable
                return None
            _write(path, pickle.dumps((blob, tree)))
        exported = jax.export.deserialize(blob)
        jitted, lowered = _lowered(fun, exported, avals)
    cpu = jax.local_devices()[0].platform == "cpu"
    compiled = lowered.compile(compiler_options if cpu else None)

    def program(*leaves):
        if any(isinstance(x, jax.core.Tracer) for x in leaves):
            return jitted(*leaves)
        return compiled(*leaves)

    return program, tree


def _lowered(fun, exported, avals):
    """(jitted call of the `exported` program, its lowering for `avals`)."""

    def run(*leaves):
        return exported.call(*leaves)

    run.__name__ = run.__qualname__ = fun.__name__  # JAX's logs name the program
    # Arguments placed on one device, committed or not, lower to one program: without
    # `in_shardings` a first call with fresh (uncommitted) arrays and later calls with a
    # program's outputs (committed) were two programs, each compiled (2 s for a fit step).
    jitted = jax.jit(run, in_shardings=_device_sharding())
    return jitted, jitted.lower(*avals)


@functools.lru_cache(maxsize=1)
def _device_sharding():
    return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])


_LOCK = threading.Lock()
#: Held while a program is traced and lowered (Python work, one thread at a time under
#: the GIL anyway), not while it compiles: programs made at once in background threads
#: then finish tracing one after the other and compile while the next is traced, instead
#: of all tracing until late and compiling together.
_TRACING = threading.RLock()
#: `_split` of the last modules seen, by identity (modules are immutable): a fit calls
#: its step hundreds of times with the same problem, whose partition costs ~0.3 ms.
_SPLITS: dict[int, tuple] = {}
_SPLITS_MAX = 16


def _split(arg) -> tuple:
    """(arg, its array leaves, its part of the memo key: tree structures, static leaves,
    array types). A fit step's arguments are split at every step: a lone array, a named
    static object (`name_static`) and a tree of arrays only (an optimizer state) take short
    ways without `eqx.partition` (the four arguments of an L-BFGS step: ~25 us instead of
    ~160 us); each way has a key of its own form, so no two ways share a memo entry."""
    if isinstance(arg, jax.Array):
        return arg, [arg], jax.typeof(arg)
    name = _name_of(arg)
    if name is not None:
        return arg, [], name
    cached = _SPLITS.get(id(arg))
    if cached is not None and cached[0] is arg:
        return cached
    leaves, in_def = jax.tree_util.tree_flatten(arg)
    if not isinstance(arg, eqx.Module) and all(isinstance(x, jax.Array) for x in leaves):
        return arg, leaves, (in_def, tuple(jax.typeof(x) for x in leaves))
    dynamic, static = eqx.partition(arg, eqx.is_array)
    leaves, in_def = jax.tree_util.tree_flatten(dynamic)
    s_leaves, s_def = jax.tree_util.tree_flatten(static)
    key = (in_def, s_def, tuple(_name_of(x) or x if not isinstance(
        x, (bool, int, float, str)) else (type(x), x) for x in s_leaves),
           tuple(jax.typeof(x) for x in leaves))
    out = (arg, leaves, key)
    if isinstance(arg, eqx.Module):
        with _LOCK:
            while len(_SPLITS) >= _SPLITS_MAX:
                _SPLITS.pop(next(iter(_SPLITS)))
            _SPLITS[id(arg)] = out
    return out


def stored_jit(fun=None, *, compiler_options: dict | None = None):
    """`eqx.filter_jit(fun)`, whose program is kept on disk where a folder is set (module
    docstring); arrays are the traced arguments, everything else is static.

    `compiler_options`: XLA options of this program where it is stored (e.g. a lower
    optimization level for a program that compiles long and runs little). The returned
    function has `prefetch(*args)`: start making the program for such arguments (reading
    or tracing it, and compiling) in a background thread; a call waits for it."""
    if fun is None:
        return functools.partial(stored_jit, compiler_options=compiler_options)
    jitted = eqx.filter_jit(fun)
    memo: dict = {}
    _MEMOS.append(memo)

    def find(args):
        """(memo key, slot, whether this thread makes it, leaves, making function), or
        None where the call is not stored."""
        if _folder is None:
            return None
        parts = [_split(a) for a in args]
        leaves = [x for part in parts for x in part[1]]
        fast = (_folder, tuple(part[2] for part in parts), str(jnp.result_type(float)))

        def make():
            dynamic, static = eqx.partition(args, eqx.is_array)
            in_def = jax.tree_util.tree_structure(dynamic)
            return _program(fun, in_def, static, leaves, compiler_options)

        try:
            with _LOCK:
                slot, owner = memo.get(fast), False
                if slot is None:
                    slot, owner = memo.setdefault(fast, Slot()), True
        except TypeError:  # an unhashable static argument
            return None
        return fast, slot, owner, leaves, make

    def forget_failed(fast, slot) -> None:
        """A program that could not be made is not kept: the next call tries again."""
        with _LOCK:
            if memo.get(fast) is slot:
                del memo[fast]

    @functools.wraps(fun)
    def call(*args):
        found = find(args)
        if found is None:
            return jitted(*args)
        fast, slot, owner, leaves, make = found
        try:
            entry = slot.fill(make) if owner else slot.get()
        except BaseException as err:
            if owner:  # (an interrupt before the making began: fill it with that)
                slot.abandon(err)
            if not slot.failed():  # interrupted while waiting: the program is still made
                raise
            forget_failed(fast, slot)
            if owner:
                raise
            raise_if_interrupted()
            return call(*args)  # a prefetch that failed: made here, or its error raised here
        if entry is None:
            return jitted(*args)
        program, tree = entry
        return jax.tree_util.tree_unflatten(tree, program(*leaves))

    def prefetch(*args) -> None:
        found = find(args)
        if found is None:
            return
        fast, slot, owner, _, make = found
        if owner:
            try:
                in_background(lambda: slot.fill(make), f"tlsjax-compile-{fun.__name__}")
            except BaseException as err:  # no thread: a call makes it instead
                slot.abandon(err)
                forget_failed(fast, slot)
                raise

    call.prefetch = prefetch
    return call
