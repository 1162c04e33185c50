import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import ndtri

import tlsjax as tj
from tlsjax.model._couplings import GaussianAmplitudes, inverse_normal_cdf, seed_from_key


def test_inverse_normal_cdf_accuracy():
    u = np.linspace(1e-7, 1 - 1e-7, 200001)
    z = np.asarray(inverse_normal_cdf(jnp.asarray(u)))
    ref = ndtri(u)
    assert np.max(np.abs(z - ref) / np.maximum(np.abs(ref), 1e-3)) < 1e-5
    # JAX and NumPy evaluate the same formula (last-bit differences from log/sqrt)
    np.testing.assert_allclose(z, inverse_normal_cdf(u, xp=np), rtol=1e-13, atol=1e-13)


def test_counter_normals_statistics():
    amp = GaussianAmplitudes(seed_from_key(jax.random.key(0)))
    n = 1500
    idx = jnp.arange(n)
    c = np.asarray(amp.pairs(idx[:, None], idx[None, :]))
    off = c[~np.eye(n, dtype=bool)]
    # 2.2e6 samples: standard errors ~7e-4 (mean), ~1e-3 (var)
    assert abs(off.mean()) < 5e-3
    assert abs(off.var() - 1.0) < 5e-3
    kurt = np.mean(off**4) / off.var() ** 2
    assert abs(kurt - 3.0) < 0.03
    # c_ij and c_ji independent, rows independent of each other
    iu = np.triu_indices(n, 1)
    assert abs(np.corrcoef(c[iu], c.T[iu])[0, 1]) < 5e-3
    assert abs(np.corrcoef(c[0], c[1])[0, 1]) < 0.1
    # a different seed gives different numbers
    other = GaussianAmplitudes(seed_from_key(jax.random.key(1))).pairs(idx[:5, None], idx[None, :5])
    assert not np.allclose(other, c[:5, :5])


def test_pairs_match_any_block():
    s = tj.Sample(0.3, cells=4)
    r = s.draw(jax.random.key(2))
    cp = tj.Couplings(r, GaussianAmplitudes(seed_from_key(jax.random.key(3))), jnp.asarray(1.0))
    n = r.capacity
    block = jax.jit(lambda c, rows, cols: c.block(rows, cols))  # one compile per shape
    full = np.asarray(block(cp, jnp.arange(n), jnp.arange(n)))
    part = np.asarray(block(cp, jnp.arange(5, 17), jnp.arange(3, 40)))
    assert np.array_equal(full[5:17, 3:40], part)
    assert np.all(np.diag(full) == 0)
    m = np.asarray(r.mask)
    assert np.all(full[~m] == 0) and np.all(full[:, ~m] == 0)
    # out-of-range indices (block padding) give zero couplings
    assert np.all(np.asarray(block(cp, jnp.array([n, n + 3]), jnp.arange(n))) == 0)


def test_coupling_formula():
    # two sites at distance 2 in open space, x = 0.5 -> R_o^3 = 2, a~ = 1
    real = tj.Realization.from_positions([[0.0, 0, 0], [2.0, 0, 0]], box=1e6, x=0.5)
    c = jnp.array([[0.0, 1.5], [-0.5, 0.0]])
    cp = tj.Couplings(real, tj.ExplicitAmplitudes(c), jnp.asarray(1.0))
    u = np.asarray(cp.block(jnp.arange(2), jnp.arange(2)))
    assert u[0, 1] == pytest.approx(1.5 * 2 / (8 + 1))
    assert u[1, 0] == pytest.approx(-0.5 * 2 / (8 + 1))


def test_minimum_image():
    box = 10.0
    real = tj.Realization.from_positions([[0.5, 0, 0], [9.5, 0, 0]], box=box, x=1.0)
    cp = tj.Couplings(real, tj.ExplicitAmplitudes(jnp.ones((2, 2))), jnp.asarray(0.0))
    assert float(cp.block(jnp.arange(1), jnp.arange(1, 2))[0, 0]) == pytest.approx(1.0)
