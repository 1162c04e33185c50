"""Every command pays for what `import tlsjax.cli` imports: the libraries that only some
programs trace (optimistix's root finders, Pallas' Triton lowering) are imported where
those programs are traced, not at start-up."""

import subprocess
import sys

LATE = ("optimistix", "lineax", "jax.experimental.pallas.triton", "jax._src.pallas.triton")


def test_start_up_leaves_the_late_libraries_out():
    code = ("import sys, tlsjax.cli; "
            f"print(' '.join(m for m in {LATE!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"JAX_PLATFORMS": "cpu", "PATH": ""})
    assert out.stdout.strip() == ""

