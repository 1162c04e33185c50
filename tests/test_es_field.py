"""`es_reduction(field=...)`: absolute tau fields, the mixed crystal without the extra pass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tlsjax as tj
from tlsjax.model._es import default_block_size, tau_field_sums
from tlsjax.model._regime_params import _draw

SAMPLE = tj.Sample(0.1, cells=5)  # ~50 impurities


@jax.jit
def _both(key, width):
    """ES with the absolute field width * h_normals, and with the same field through h_rel."""
    couplings, h_normals, _ = _draw(SAMPLE, 3.0, key)
    n = couplings.n
    e0 = jnp.sum(jnp.where(couplings.realization.mask, jnp.abs(
        tau_field_sums(couplings, default_block_size(n))), 0.0)) / couplings.realization.n_sites
    new = tj.es_reduction(couplings, h_normals, field=width * h_normals)
    old = tj.es_reduction(couplings, h_normals, width / e0)
    return new, old


@pytest.mark.parametrize("width", [0.0, 0.3, 5.0])
def test_absolute_field_equals_relative_field(width):
    new, old = _both(jax.random.key(4), width)
    m = np.asarray(new.mask)
    for name in ("e_tau", "e_min"):
        np.testing.assert_allclose(np.asarray(getattr(new, name))[m],
                                   np.asarray(getattr(old, name))[m], rtol=1e-12, atol=1e-12,
                                   err_msg=name)
    assert float(new.e_tau_mean) == pytest.approx(float(old.e_tau_mean), rel=1e-12)
    assert float(new.e_tau0_mean) == float(old.e_tau0_mean)


def test_mixed_crystal_as_before():
    """MixedCrystal.simulate (absolute field, one pass fewer) equals the former two-pass
    computation (field relative to <E_tau>_0 measured first)."""
    crystal = tj.MixedCrystal(g=0.02, J0=500.0, atilde=3.0, x_c=0.2, h_S=1.0, h_tau=1.0)
    key = jax.random.key(5)
    r = jax.jit(lambda k: crystal.simulate(SAMPLE, k))(key)
    new, old = _both(key, 1.0 * 0.2 / 0.1)  # h_tau x_c / x in units of the couplings
    m = np.asarray(r.es.mask)
    np.testing.assert_array_equal(np.asarray(r.es.e_min)[m], np.asarray(new.e_min)[m])
    np.testing.assert_allclose(np.asarray(r.es.e_min)[m], np.asarray(old.e_min)[m], rtol=1e-12)
    assert float(r.unit_K) == pytest.approx(0.02 * 500.0 * 0.1 / 0.2)


def test_bad_field():
    couplings, h_normals = jax.jit(lambda k: _draw(SAMPLE, 3.0, k)[:2])(jax.random.key(0))
    with pytest.raises(ValueError, match=r"es_reduction\(field=...\)` must have shape"):
        tj.es_reduction(couplings, h_normals, field=jnp.ones(3))
    with pytest.raises(ValueError, match=r"es_reduction\(field=...\)` must be finite"):
        tj.es_reduction(couplings, h_normals, field=jnp.full(couplings.n, jnp.nan))
