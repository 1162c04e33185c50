"""Test configuration: float64 everywhere (gradient checks need it), rank promotion off,
XLA's CPU backend at optimization level 0 (most test programs run once, so compiling them is
what costs; subprocesses started by the tests inherit the flag, so results compared across
processes are compiled alike), and test files spread over up to 4 worker processes."""

import os
from pathlib import Path

# `tlsjax` run as a program (subprocess tests) would use the compilation cache in the
# user's cache folder: off in tests (tests/test_fit_own.py turns it on in a temporary one)
os.environ.setdefault("TLSJAX_NO_CACHE", "1")
os.environ["XLA_FLAGS"] = " ".join(
    filter(None, [os.environ.get("XLA_FLAGS"), "--xla_backend_optimization_level=0"]))

import jax  # noqa: E402
import pytest

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
