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
    p.write_text("# a comment\nT [mK], kappa (mW/cm/K), weight\n"
                 "200, 0.5, 2\n100, 0.25, 1\n")
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


# ---------------------------------------------------------------- delimiters, uncertainties

_ROWS = [(0.1, 2e-4, 1e-5), (0.4, 3e-3, 9e-5), (0.2, 8e-4, 2e-5)]


@pytest.mark.parametrize("delim,name", [(",", "comma"), ("\t", "tab"), ("  ", "whitespace"),
                                        (" \t ", "tab")])
def test_round_trip_through_delimiters(tmp_path, delim, name):
    """The same table written with commas, tabs or whitespace reads back the same."""
    head = delim.join(["T (K)", "kappa (W/m/K)", "dkappa (W/m/K)"] if name != "tab" else
                      ["T(K)", "k(W/m/K)", "dk(W/m/K)"])
    if name == "whitespace":
        head = delim.join(["T(K)", "k (mW/m/K)", "dkappa(%)"])
        body = [delim.join([f"{t:g}", f"{1e3 * k:g}", f"{100 * d / k:.12g}"]) for t, k, d in _ROWS]
    else:
        body = [delim.join(f"{v:g}" for v in row) for row in _ROWS]
    p = tmp_path / f"d.{name}"
    p.write_text("Somebody et al., J. Phys. 1 (2000)\n" + head + "\n" + "\n".join(body))
    c = load_curve(p)
    assert c.delimiter == name and c.citation.startswith("Somebody")
    np.testing.assert_allclose(c.T, [0.1, 0.2, 0.4])
    np.testing.assert_allclose(c.y, [2e-4, 8e-4, 3e-3])
    np.testing.assert_allclose(c.sigma, [1e-5, 2e-5, 9e-5], rtol=1e-9)
    np.testing.assert_allclose(c.sigma_log, c.sigma / c.y)


def test_unknown_column_refused_by_name(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("T(K),k(W/m/K),sample_id\n0.1,1e-4,3\n")
    with pytest.raises(ValueError, match=r"line 1: unknown column\(s\) 'sample_id'"):
        load_curve(p)
    p.write_text("T(K)\tk(W/m/K)\tk/T\n0.1\t1e-4\t1e-3\n")  # derived column: reported
    assert load_curve(p).ignored == ("k/T",)


@pytest.mark.parametrize("text,match", [
    ("T(K);k(W/m/K)\n0.1;1e-4\n", "a delimiter other than comma, tab or whitespace"),
    ("T(K),k(W/m/K),dk\n0.1,1e-4,1e-5\n", "uncertainty column 'dk' has no unit"),
    ("T(K),k(W/m/K),dk(furlong)\n0.1,1e-4,1e-5\n", "or 'rel' / '%' for a relative"),
    ("T(K),k(W/m/K),dk(rel)\n0.1,1e-4,0\n", "non-positive uncertainty 0"),
    ("T(K),k(W/m/K),weight\n0.1,1e-4,1e300\n", "weight 1e300 in column weight is outside"),
    ("T(K)\tk(W/m/K)\n0.1\t1e-4\t5\n", "line 2: 3 cells, expected 2"),
])
def test_bad_layouts(tmp_path, text, match):
    p = tmp_path / "data.txt"
    p.write_text(text)
    with pytest.raises(ValueError, match=re.escape(match)):
        load_curve(p)


def test_qinv_uncertainty_absolute_without_unit(tmp_path):
    p = tmp_path / "q.dat"
    p.write_text("T(K) Qinv dQinv\n0.1 3e-4 3e-5\n1 4e-4 2e-5\n")
    c = load_curve(p, "qinv")
    np.testing.assert_allclose(c.sigma_log, [0.1, 0.05])
