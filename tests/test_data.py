import hashlib
import re

import numpy as np
import pytest
from conftest import need_shared_kappa

from tlsjax import Curve, load_curve, parse_curve

SHARED_FILES = {
    "stycast1266_olson1993.csv": 13,
    "ptfe_reese1965_s1.csv": 20,
    "ptfe_anderson1963_s1.csv": None,
}


def _independent_rows(raw: bytes):
    """A second, minimal parser: strip BOM, drop citation and header, split on commas."""
    lines = raw.decode("utf-8-sig").split("\n")
    return [tuple(float(c) for c in line.split(",")[:2]) for line in lines[2:] if line]


@pytest.mark.parametrize("name", sorted(SHARED_FILES))
def test_shared_files_read_as_they_are(name):
    path = need_shared_kappa() / name
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    assert raw.startswith(b"\xef\xbb\xbf") and not raw.endswith(b"\n")
    c = load_curve(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # not modified
    rows = _independent_rows(raw)
    if SHARED_FILES[name] is not None:
        assert c.n == SHARED_FILES[name]
    assert c.n == len(rows)
    assert sorted(zip(c.T.tolist(), c.y.tolist())) == sorted(rows)
    assert np.all(np.diff(c.T) >= 0)  # sorted although the file is not
    assert c.citation and "T(K)" not in c.citation
    assert c.columns == ("T(K)", "k(W/m/K)")
    # line numbers point into the file: line 1 citation, 2 header
    first = raw.decode("utf-8-sig").split("\n")[c.lines[0] - 1]
    assert float(first.split(",")[0]) == c.T[0]


def test_plain_csv_units_and_weights(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("# a comment\nT [mK], kappa (mW/cm/K), weight, note\n"
                 "200, 0.5, 2, x\n100, 0.25, 1, y\n")
    c = load_curve(p)
    assert isinstance(c, Curve)
    np.testing.assert_allclose(c.T, [0.1, 0.2])
    np.testing.assert_allclose(c.y, [0.025, 0.05])
    np.testing.assert_allclose(c.weight, [1.0, 2.0])
    assert c.lines == (4, 3) and c.citation == ""


def test_qinv_dimensionless(tmp_path):
    p = tmp_path / "q.csv"
    p.write_text("T(K),Qinv\n0.1,3e-4\n1,4e-4\n")
    c = load_curve(p, "qinv")
    np.testing.assert_allclose(c.y, [3e-4, 4e-4])


BAD = [
    ("T(K),k(W/m/K)\n0.1,1e-4\n0.2,abc\n", "line 3: non-numeric cell 'abc' in column k(W/m/K)"),
    ("T(K),k(W/m/K)\n0.1,1e-4\n-0.2,1e-4\n", "line 3: non-positive temperature -0.2"),
    ("T(K),k(W/m/K)\n0.1,0\n", "line 2: non-positive thermal conductivity 0"),
    ("T(K),k(W/m/K)\n0.1,nan\n", "line 2: non-finite value 'nan'"),
    ("T(K),rho(kg/m^3)\n0.1,1e-4\n", "line 1: missing column"),
    ("cite\nT(K),k(W/m/K)\n0.1\n", "line 3: 1 cells, expected 2"),
    ("T(furlong),k(W/m/K)\n0.1,1e-4\n", "line 1: unknown unit 'furlong' in column"),
    ("T(K),k(BTU/h/ft/F)\n0.1,1e-4\n",
     "unknown unit 'BTU/h/ft/F' in column 'k(BTU/h/ft/F)'; allowed: 'W/m/K'"),
    ("T,k(W/m/K)\n0.1,1e-4\n", "line 1: column 'T' has no unit"),
    ("T(K),k(W/m/K)\n", "0 data point"),
    ("", "empty file"),
]


@pytest.mark.parametrize("text,match", BAD)
def test_bad_files(tmp_path, text, match):
    p = tmp_path / "data.csv"
    p.write_text(text)
    with pytest.raises(ValueError, match=re.escape(match)) as e:
        load_curve(p)
    assert str(p) in str(e.value)


def test_too_few_points_for_free_parameters(tmp_path):
    p = tmp_path / "two.csv"
    p.write_text("T(K),k(W/m/K)\n0.1,1e-4\n0.2,4e-4\n")
    with pytest.raises(ValueError, match=r"two.csv: 2 data point\(s\), fewer than the 3"):
        load_curve(p, min_points=3)


def test_not_text(tmp_path):
    p = tmp_path / "data.csv"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(ValueError, match="data.csv: not a UTF-8 text CSV"):
        load_curve(p)
    with pytest.raises(FileNotFoundError):
        load_curve(tmp_path / "absent.csv")
    with pytest.raises(ValueError, match="quantity"):
        parse_curve("T(K),k(W/m/K)\n1,1\n", "cv")


def test_example_file_in_repo():
    from pathlib import Path

    c = load_curve(Path(__file__).resolve().parents[1] / "data" / "example_kappa.csv")
    assert c.n >= 10 and c.T[0] < 0.1 < 5 < c.T[-1]
