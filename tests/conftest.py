"""Test configuration: float64 everywhere (gradient checks need it), rank promotion off,
XLA's CPU backend at optimization level 0 and with its older (non-MLIR) fusion emitters, and
test files spread over up to 4 worker processes.

Most test programs run once, so compiling them is what costs: the two XLA flags cut the
suite's CPU time by about a third (measured on the whole suite: 13.5 -> 9 CPU-minutes).
Subprocesses started by the tests inherit them, so results compared across processes are
compiled alike. The older emitters round float32 math differently from one program shape
to another (an ulp of float32, ~1e-7, e.g. in the float32 normals every sampler draws), so
the tests of bit-for-bit identities that users get with XLA's defaults are marked
`exact_bits`: a normal session leaves them out and tests/test_exact_bits.py runs them all
in one pytest subprocess compiled with XLA's default emitters (TLSJAX_TEST_EXACT_BITS=1).
"""

import os
from pathlib import Path

# `tlsjax` run as a program (subprocess tests) would use the compilation cache in the
# user's cache folder: off in tests (tests/test_fit_own.py turns it on in a temporary one)
os.environ.setdefault("TLSJAX_NO_CACHE", "1")

#: Set in the subprocess of tests/test_exact_bits.py: XLA's default CPU emitters.
EXACT_BITS = os.environ.get("TLSJAX_TEST_EXACT_BITS") == "1"
#: XLA CPU's older emitters: compiling is ~3x cheaper (see the module docstring).
OLD_EMITTERS = "--xla_cpu_use_fusion_emitters=false"
LEVEL_0 = "--xla_backend_optimization_level=0"
#: The suite's compile flags (the subprocesses of tests/test_processes.py use them too).
SUITE_XLA_FLAGS = f"{LEVEL_0} {OLD_EMITTERS}"
_flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if f != OLD_EMITTERS]
_flags.append(LEVEL_0)
if not EXACT_BITS:
    _flags.append(OLD_EMITTERS)
os.environ["XLA_FLAGS"] = " ".join(dict.fromkeys(_flags))


#: The cores of the session, as its first process (the xdist controller) found them.
ALL_CORES = "TLSJAX_TEST_CORES"
#: Set by a worker once it keeps to its share: a pytest it starts (tests/test_exact_bits.py)
#: keeps that share rather than taking a share of it.
WORKER_CORES = "TLSJAX_TEST_WORKER_CORES"


def share_of_cores(worker: str, n: int, cores: list[int]) -> list[int]:
    """The cores of xdist worker `worker` (gwI) of `n`: every n-th of `cores` from the I-th;
    all of them where n < 2 or there are fewer cores than workers."""
    return cores[int(worker[2:]) % n::n] if 1 < n <= len(cores) else cores


def session_cores() -> list[int]:
    """The session's cores, as recorded in `ALL_CORES`."""
    return [int(c) for c in os.environ[ALL_CORES].split(",")]


def cores_shared() -> bool:
    """`TLSJAX_TEST_SHARED_CORES=1`: every worker on every core (to compare with shares)."""
    return os.environ.get("TLSJAX_TEST_SHARED_CORES", "") not in ("", "0")


def _own_cores() -> None:
    """In an xdist worker, keep to a share of the session's cores of its own
    (`share_of_cores`), before JAX makes its CPU client: XLA then sizes its thread pool to
    that share, rather than every worker spreading its kernels over every core and the
    workers' threads contending. The subprocesses a test starts inherit its worker's share.
    Off with `cores_shared()`."""
    if not hasattr(os, "sched_setaffinity") or WORKER_CORES in os.environ:
        return
    os.environ.setdefault(ALL_CORES, ",".join(map(str, sorted(os.sched_getaffinity(0)))))
    worker, n = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get(
        "PYTEST_XDIST_WORKER_COUNT", "")
    if not (worker.startswith("gw") and n.isdigit()) or cores_shared():
        return
    share = share_of_cores(worker, int(n), session_cores())
    os.sched_setaffinity(0, set(share))
    os.environ[WORKER_CORES] = ",".join(map(str, share))


_own_cores()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

#: For tests that only make sense on XLA's CPU backend: emulated devices
#: (--xla_force_host_platform_device_count) exist only there, so on a GPU such a test would
#: compare two backends rather than one and four devices.
cpu_only = pytest.mark.skipif(
    jax.default_backend() != "cpu",
    reason=f"emulated CPU devices only: this session runs on {jax.default_backend()}")

#: The shared measurements folder, beside the project's root (absent in a user's clone).
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_KAPPA = SHARED / "data" / "kappa"


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core, at most 4 (each holds its own compiled programs)."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1))


def need_shared_kappa():
    """Skip (with the reason) where ../shared/data/kappa is absent."""
    if not SHARED_KAPPA.is_dir():
        pytest.skip(f"shared measurements not found at {SHARED_KAPPA} "
                    "(they ship beside the project in CI, not in a user's clone)")
    return SHARED_KAPPA


def _writable(folder: Path) -> bool:
    try:
        (folder / ".probe").write_text("x")
        (folder / ".probe").unlink()
        return True
    except OSError:
        return False


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder nobody can write in (chmod; for root, a read-only system folder)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if not _writable(ro):
            yield ro
            return
        for candidate in (Path("/sys"), Path("/proc")):
            if candidate.is_dir() and not _writable(candidate):
                yield candidate
                return
        pytest.skip("no read-only folder available (running as root?)")
    finally:
        ro.chmod(0o755)


#: Test files that run long subprocesses, scheduled first (see `_longest_first`).
LONGEST = ("test_processes.py", "test_exact_bits.py", "test_mc.py", "test_fit.py")


def _longest_first(items) -> None:
    """Order test files for pytest-xdist's `--dist loadfile` (with `--no-loadscope-reorder`,
    pyproject.toml: files are handed to the workers in collection order): the files of
    `LONGEST` first, then by number of tests, most first. Without it the two long
    subprocess tests (then ~80 and ~40 s, one test each; now ~40-55 s each) were handed
    out last and one worker idled for the last ~45 s of the suite."""
    files: dict[str, list] = {}
    for item in items:
        files.setdefault(item.path.name, []).append(item)
    rank = {name: i for i, name in enumerate(LONGEST)}
    order = sorted(files, key=lambda n: (rank.get(n, len(LONGEST)), -len(files[n])))
    items[:] = [item for name in order for item in files[name]]


def pytest_collection_modifyitems(config, items):
    """Leave the `exact_bits` tests to tests/test_exact_bits.py (see the module docstring);
    in its subprocess (TLSJAX_TEST_EXACT_BITS=1), or on another backend than XLA's CPU
    (where the emitter flag does not apply), run them here. Then the longest files first."""
    _longest_first(items)
    if EXACT_BITS or jax.default_backend() != "cpu":
        return
    exact = [item for item in items if item.get_closest_marker("exact_bits")]
    if exact:
        config.hook.pytest_deselected(items=exact)
        items[:] = [item for item in items if not item.get_closest_marker("exact_bits")]
