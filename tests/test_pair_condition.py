"""The `pair_condition` option of the ES reduction (signed default, unsigned reading)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tlsjax as tj
from tlsjax.cli import main


def _hand_case(pair_condition, top_k=2):
    # test_es.py's three sites: U01 = 1, U02 = -5/27, U10 = 1/2, U12 = 1/8, U20 = -1/27,
    # U21 = 1/4; tau_2 is flipped (E_2 = -5/27 + 1/8 < 0).
    real = tj.Realization.from_positions([[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0]], box=1e6, x=1.0)
    c = jnp.array([[0.0, 1.0, -5.0], [0.5, 0.0, 1.0], [-1.0, 2.0, 0.0]])
    return tj.es_reduction(tj.Couplings(real, tj.ExplicitAmplitudes(c), jnp.asarray(0.0)),
                           jnp.zeros(3), 0.0, top_k=top_k, pair_condition=pair_condition)


@pytest.mark.parametrize("top_k", [1, 2])
def test_hand_case_signed_and_unsigned(top_k):
    e = np.array([1 / 2 - 1 / 27, 5 / 4, 5 / 27 - 1 / 8])
    signed = _hand_case("signed", top_k)
    unsigned = _hand_case("unsigned", top_k)
    # signed: E_min_i = max_j (2 s_j U_ij - E_j): row 2 pairs with the flipped tau_0?
    # no: s_0 = +1, U20 = -1/27 is anti-aligned: 2 U20 - E0 = -2/27 - E0.
    np.testing.assert_allclose(signed.e_min * signed.e_tau_mean,
                               [0.75, 1 - e[0], -2 / 27 - e[0]], rtol=1e-12)
    # unsigned: max_j (2 |U_ij| - E_j): the anti-aligned bond counts as aligned,
    # row 2 becomes 2/27 - E0; row 1 compares 1 - E0 with 1/4 - E2 (was -1/4 - E2).
    np.testing.assert_allclose(unsigned.e_min * unsigned.e_tau_mean,
                               [0.75, 1 - e[0], 2 / 27 - e[0]], rtol=1e-12)
    if top_k == 2:
        assert float(unsigned.top[1, 1] * unsigned.e_tau_mean) == pytest.approx(
            1 / 4 - e[2], rel=1e-12)
    # the E_tau are the same: the option changes only the pair condition
    np.testing.assert_allclose(signed.e_tau, unsigned.e_tau)


def test_unsigned_never_lowers_e_min():
    sample, key = tj.Sample(0.2, 4), jax.random.PRNGKey(3)
    p = tj.ModelParams(atilde=3.0)
    s = tj.simulate(sample, p, key)
    u = tj.simulate(sample, p, key, pair_condition="unsigned")
    assert np.all(np.asarray(u.e_min)[np.asarray(u.mask)]
                  >= np.asarray(s.e_min)[np.asarray(s.mask)] - 1e-12)
    with pytest.raises(ValueError, match="pair_condition"):
        tj.simulate(sample, p, key, pair_condition="abs")


def test_es_cli_reports_both_units(tmp_path, capsys):
    out = tmp_path / "es.json"
    args = ["es", "--cells", "4", "--realizations", "2", "--atilde", "1.5", "3",
            "--no-progress"]
    assert main([*args, "--pair-condition", "unsigned", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "unsigned pair condition" in text and "T_U/median|E_tau|" in text
    d = json.loads(out.read_text())
    assert d["pair_condition"] == "unsigned"
    tu, tm = np.array(d["T_U_over_E_tau"]["mean"]), np.array(d["T_U_over_median_E_tau"]["mean"])
    med = np.array(d["E_tau_median_over_mean"]["mean"])
    assert tu.shape == tm.shape == (2,) and np.all(med > 0) and np.all(med < 1.5)
    assert np.all(tm > tu)  # the median |E_tau| is below the mean (a skewed distribution)
