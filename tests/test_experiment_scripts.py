"""Options of the experiment scripts: a bad value is one line naming the option and its
range, exit status 2, before anything is computed or written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("value", ["-1", "nan", "1e300", "123456789012345678901"])
def test_mc_finite_size_max_dense_bytes_checked_first(tmp_path, value):
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, str(ROOT / "experiments" / "mc_finite_size.py"),
                        "--out", str(out), "--max-dense-bytes", value],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1] == (
        "mc_finite_size.py: error: argument --max-dense-bytes: must be an integer in "
        f"[0, 4611686018427387904]; got '{value}'")
    assert not out.exists()


@pytest.mark.parametrize("content, says", [
    ("not json", "--previous must be a mc_finite_size.json written by this script"),
    ('{"settings": {"target_se": 0.01, "min_realizations": 4, "max_realizations": 256, '
     '"seed": 0, "quick": false}, "cases": []}', "was run with other settings"),
])
def test_mc_finite_size_previous_checked_first(tmp_path, content, says):
    previous, out = tmp_path / "previous.json", tmp_path / "out"
    previous.write_text(content)
    p = subprocess.run([sys.executable, str(ROOT / "experiments" / "mc_finite_size.py"),
                        "--out", str(out), "--previous", str(previous)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("mc_finite_size.py: error: --previous") and says in last, last
    assert not out.exists()
