"""The bit-for-bit identities that users get with XLA's default CPU emitters.

The suite compiles with XLA CPU's older emitters, which are cheaper to compile with but
round float32 math differently from one program shape to another (tests/conftest.py).
The tests marked `exact_bits` (padding, stored against generated rows, one against four
devices, the Hamiltonian's S-tau block against the ES reduction ...) check identities to
the last bit, so they run here, together, in one pytest subprocess compiled as users
compile: XLA's default emitters (at the suite's optimization level 0).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import pytest
from conftest import OLD_EMITTERS

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 900  # a bound against hangs, not a timing


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the exact_bits tests run in the "
                    "session itself on this backend (the suite's XLA CPU flags do not apply)")
def test_exact_bits_tests_pass_with_xla_default_emitters():
    env = dict(os.environ, TLSJAX_TEST_EXACT_BITS="1")
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split() if f != OLD_EMITTERS)
    # only the files that mention the mark are collected (all of them: ~4 CPU-s more); a
    # test marked in another way than the decorator counted below then fails the count
    texts = {p: p.read_text() for p in HERE.glob("test_*.py") if p.name != Path(__file__).name}
    files = sorted(str(p) for p, text in texts.items() if "exact_bits" in text)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
         "-m", "exact_bits", *files],
        cwd=HERE.parent, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    # every marked test ran: none skipped, none lost to a wrong marker expression
    marked = sum(text.count("@pytest.mark.exact_bits") for text in texts.values())
    ran = {k: int(v) for v, k in re.findall(r"(\d+) (passed|skipped|failed|error)", summary)}
    assert marked >= 8 and ran.get("passed", 0) == marked, summary
    print(summary)
