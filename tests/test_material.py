import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tlsjax import Material
from tlsjax.observables._material import EV, HBAR, K_B


def test_defaults_equal_strengths():
    m = Material(2200.0, 5800.0, 3800.0)
    np.testing.assert_allclose(m.strength_factors, [1.0, 1.0], rtol=1e-12)
    assert float(m.gamma_ratio) == pytest.approx(5800.0 / 3800.0)
    assert math.isinf(float(m.boundary))
    assert float(m.rayleigh) == 0.0


def test_strength_factor_from_gamma_ratio():
    m = Material(2200.0, 5800.0, 3800.0, gamma_ratio=1.2)
    assert float(m.strength_factors[0]) == pytest.approx((1.2 * 3800.0 / 5800.0) ** 2)


def test_relaxation_constant_matches_si_formula():
    m = Material(2200.0, 5800.0, 3800.0, gamma_ratio=1.3, gamma_t=0.7)
    gl, gt = 1.3 * 0.7 * EV, 0.7 * EV
    a_si = (gl**2 / 5800.0**5 + 2 * gt**2 / 3800.0**5) / (2 * math.pi * 2200.0 * HBAR**4)
    assert float(m.relaxation_A_K) == pytest.approx(a_si * K_B**3, rel=1e-12)


@pytest.mark.parametrize("field,kwargs", [
    ("rho", dict(rho=-1.0)), ("rho", dict(rho=0.0)), ("rho", dict(rho=math.nan)),
    ("v_l", dict(v_l=-5800.0)), ("v_t", dict(v_t=0.0)), ("v_t", dict(v_t=math.nan)),
    ("gamma_ratio", dict(gamma_ratio=-1.0)), ("gamma_t", dict(gamma_t=0.0)),
    ("rayleigh", dict(rayleigh=-1e-42)), ("boundary", dict(boundary=-1.0)),
    ("boundary", dict(boundary=math.nan)),
])
def test_bad_input_names_field(field, kwargs):
    args = dict(rho=2200.0, v_l=5800.0, v_t=3800.0) | kwargs
    with pytest.raises(ValueError, match=rf"Material\({field}="):
        Material(**args)


def test_bad_input_under_jit():
    f = jax.jit(lambda rho: Material(rho, 5800.0, 3800.0).rho)
    assert float(f(2200.0)) == 2200.0
    with pytest.raises(Exception, match=r"Material\(rho="):
        jax.block_until_ready(f(-1.0))


def test_vmap_over_density():
    rhos = jnp.asarray([1000.0, 2000.0])
    a = jax.vmap(lambda r: Material(r, 5800.0, 3800.0).relaxation_A_K)(rhos)
    assert float(a[0] / a[1]) == pytest.approx(2.0)


@pytest.mark.parametrize("x64", [False, True])
def test_gamma_ratio_is_the_division_jax_makes(x64):
    """The default gamma_ratio = v_l / v_t, computed on the host (nothing to compile): the
    value, dtype and weak type of JAX's own division of the stored velocities."""
    import itertools

    kinds = [float, int, np.float32, jnp.asarray, lambda v: jnp.asarray(v, jnp.float32),
             lambda v: jnp.asarray(int(v))]
    with jax.enable_x64(x64):
        for fa, fb in itertools.product(kinds, kinds):
            m = Material(1.0, fa(2500.0), fb(1200.0))
            want = m.v_l / m.v_t
            assert jax.typeof(m.gamma_ratio) == jax.typeof(want)
            assert np.asarray(m.gamma_ratio) == np.asarray(want)
