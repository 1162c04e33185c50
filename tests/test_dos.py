import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _examples import run_examples

import tlsjax as t

# ~170 impurities: fast, enough for limits and gradients. The same sample, key and
# settings as the CLI tests (`--cells 6 --realizations 2`) and the fit tests, so the
# compiled DOS functions are shared across the session.
SAMPLE = t.Sample(0.2, 6)
PARAMS = t.ModelParams()
MAT = t.Material(2200.0, 5800.0, 3800.0)


@pytest.fixture(scope="module")
def tls():
    # The limits below need every S spin of this small sample gapped: in ~330 spins one
    # often has E_min near or below 0 (then P_S(E -> 0) ~ 1/330, not << g). Key 1's
    # sample has them all above 0.03 <E_tau> (checked here, so a change of the draw
    # shows up as this precondition, not as a failed limit).
    tls = t.stau_tls(PARAMS, sample=SAMPLE, key=jax.random.PRNGKey(1), realizations=2)
    e_min = np.asarray(tls.dos.es.top[:, :, 0])[np.asarray(tls.dos.es.mask)]
    assert e_min.min() > 0.03
    return tls


@pytest.fixture(scope="module")
def cross(tls):
    return t.crossover(tls)


def test_phi_normalized(tls):
    e = jnp.linspace(0.0, 12.0, 6001)
    assert float(jnp.trapezoid(tls.dos.phi_tau(e), e)) == pytest.approx(1.0, abs=1e-4)
    assert float(jnp.trapezoid(t.phi_s(e), e)) == pytest.approx(1.0, abs=1e-6)


def test_p_s_monotone_and_limits(tls):
    p = np.asarray(tls.dos.p_s(jnp.geomspace(1e-3, 20.0, 40)))
    assert np.all(np.diff(p) >= -1e-12)
    assert p[0] < 1e-3 and p[-1] > 0.999


def test_crossover_criteria(tls, cross):
    p = PARAMS
    assert 0 < float(cross.full) < float(cross.shortcut) < 20 * float(p.g * p.J0)
    parts = tls.strength_parts(jnp.asarray([float(cross.full)]))
    assert float(parts[0, 0]) == pytest.approx(float(parts[1, 0]), rel=1e-6)
    ps = tls.dos.p_s(jnp.asarray([float(cross.shortcut) / float(p.g * p.J0)]))
    assert float(ps[0]) == pytest.approx(5 * float(p.g), rel=1e-6)


def test_c_of_e_limits(tls, cross):
    p = PARAMS
    phi0 = float(tls.dos.phi_tau(jnp.zeros(1))[0])
    low = tls.strength_parts(jnp.asarray([1e-3 * float(cross.full)]))
    c_low = float(jnp.sum(low))
    # well below T_U: C -> kappa_log g phi_tau(0), the S term negligible
    assert c_low == pytest.approx(float(p.kappa_log * p.g) * phi0, rel=1e-3)
    assert float(low[1, 0]) < 1e-3 * c_low
    assert 0.5 < phi0 < 1.5  # phi_tau(0) is O(1): C(E -> 0) ~ kappa_log g
    # above T_U: larger, approaching kappa_log phi_S (up to ~1/g above C_o)
    c_high = float(tls.tunneling_strength(jnp.asarray([10.0 * float(cross.shortcut)]))[0])
    assert c_high > 10 * c_low


def test_kappa_over_t2_flat_below_tu_and_bent_above(tls, cross):
    # flat within 5% up to ~T_U/12 (thermal phonons at 3-5 k_B T already see the S-spin
    # rise of C(E) above T_U: 5.5% at T_U/10 with the default soft width 0.005)
    tu = float(cross.full)
    T = jnp.geomspace(tu / 300, tu / 12, 5)
    r = np.asarray(t.thermal_conductivity(tls, MAT, T) / T**2)
    assert np.max(np.abs(r / r[0] - 1)) < 0.05
    Thi = jnp.asarray([tu / 300, tu, 10 * tu])
    rhi = np.asarray(t.thermal_conductivity(tls, MAT, Thi) / Thi**2)
    assert rhi[1] < 0.95 * rhi[0] and rhi[2] < 0.5 * rhi[1]


def test_stau_reduces_to_plain_model_below_tu(tls, cross):
    T = jnp.asarray([float(cross.full) / 300])
    c0 = tls.tunneling_strength(jnp.asarray([1e-6]))[0]
    k = t.thermal_conductivity(tls, MAT, T)
    kp = t.thermal_conductivity_closed_form(c0, MAT, T)
    assert float(k[0] / kp[0]) == pytest.approx(1.0, rel=1e-3)


def test_gradients_match_finite_differences():
    T = jnp.asarray([2.0])
    omega = jnp.asarray([2 * math.pi * 1e3])

    @jax.jit
    def f(x):
        g, J0, a = x
        prm = t.ModelParams(g=g, J0=J0, atilde=a)
        tls = t.stau_tls(prm, sample=SAMPLE, realizations=1, top_k=8)
        return jnp.stack([t.thermal_conductivity(tls, MAT, T)[0],
                          t.qinv(tls, MAT, T, omega)[0, 0]])

    x0 = jnp.asarray([0.02, 500.0, 3.0])
    jac = np.asarray(jax.jit(jax.jacrev(f))(x0))
    steps = [1e-5, 1e-2, 1e-4]
    for i, h in enumerate(steps):
        e = jnp.zeros(3).at[i].set(h)
        fd = np.asarray((f(x0 + e) - f(x0 - e)) / (2 * h))
        np.testing.assert_allclose(jac[:, i], fd, rtol=1e-4, err_msg=f"parameter {i}")


def test_docs_model_example_runs(tls):
    """The example of docs/explanation/model.md (its sample, realizations and parameters
    are those of `tls`: the DOS compiled for it serves the example; tests/_examples.py)."""
    assert run_examples("docs/explanation/model.md") == 1


def test_bad_input():
    with pytest.raises(ValueError, match=r"stau_dos\(realizations="):
        t.stau_dos(PARAMS, SAMPLE, realizations=0)
    with pytest.raises(ValueError, match=r"stau_dos\(width="):
        t.stau_dos(PARAMS, SAMPLE, realizations=1, width=-1.0)
    with pytest.raises(ValueError, match=r"crossover\(hi="):
        t.crossover(t.stau_tls(PARAMS, sample=SAMPLE, realizations=2), lo=1.0, hi=0.5)
