import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tlsjax as tj
from tlsjax.model._couplings import GaussianAmplitudes, seed_from_key


@pytest.fixture(scope="module")
def parts():
    sample = tj.Sample(0.2, cells=6)
    kp, kc, kh = jax.random.split(jax.random.key(7), 3)
    real = sample.draw(kp)
    return real, seed_from_key(kc), jax.random.normal(kh, (real.capacity,))


@jax.jit(static_argnames="top_k")
def _es(parts, atilde, h_rel=0.0, top_k=1, soft_width=None):
    real, seed, h = parts
    return tj.es_reduction(tj.Couplings(real, GaussianAmplitudes(seed), atilde), h, h_rel,
                           top_k=top_k, soft_width=soft_width)


def test_soft_tends_to_hard(parts):
    energies = jnp.linspace(0.02, 3.0, 60)
    hard = tj.HardTheta().p_s(_es(parts, 3.0), energies)
    es = _es(parts, 3.0, top_k=16, soft_width=1e-3)
    soft = tj.SoftTheta(1e-3).p_s(es, energies)
    assert float(jnp.max(jnp.abs(soft - hard))) < 0.01
    # and what the 16 kept partners leave out is rigorously negligible here
    assert float(jnp.max(tj.SoftTheta(1e-3).truncation_bound(es, energies))) < 1e-6
    # a wide Theta differs visibly: the test can fail
    wide = tj.SoftTheta(0.3).p_s(_es(parts, 3.0, top_k=16, soft_width=0.3), energies)
    assert float(jnp.max(jnp.abs(wide - hard))) > 0.05


@pytest.mark.parametrize("width", [0.02, 0.1])
def test_tail_and_truncation_bounds_hold(parts, width):
    energies = jnp.linspace(0.01, 2.0, 30)
    theta = tj.SoftTheta(width)
    n = parts[0].capacity
    exact = theta.p_s(_es(parts, 1.5, top_k=n), energies)  # every partner kept
    # top 4 + first-order tail: the error stays inside its rigorous bound and is small
    es = _es(parts, 1.5, top_k=4, soft_width=width)
    approx = theta.p_s(es, energies)
    bound = theta.truncation_bound(es, energies)
    err = np.abs(np.asarray(approx - exact))
    assert np.all(err <= np.asarray(bound) * (1 + 1e-9) + 1e-15)
    # top 4 alone (accepted explicitly): a larger error, also inside its (cruder) bound
    trunc = tj.SoftTheta(width, allow_truncation=True)
    es0 = _es(parts, 1.5, top_k=4)
    approx0 = trunc.p_s(es0, energies)
    err0 = np.abs(np.asarray(approx0 - exact))
    assert np.all(err0 <= np.asarray(trunc.truncation_bound(es0, energies)) * (1 + 1e-9) + 1e-15)
    assert err0.max() > 10 * err.max() > 0  # the tail term matters, and helps


def test_soft_needs_the_tail_for_its_width(parts):
    es = _es(parts, 1.5, top_k=4)
    with pytest.raises(ValueError, match="soft_width=width"):
        tj.SoftTheta(0.05).p_s(es, [0.1, 1.0])
    with pytest.raises(ValueError, match=r"SoftTheta\(width=...\)` must equal the `soft_width`"):
        tj.SoftTheta(0.05).p_s(_es(parts, 1.5, top_k=4, soft_width=0.1), [0.1, 1.0])
    f = jax.jit(lambda e: tj.SoftTheta(0.05).p_s(e, jnp.array([0.1])))
    with pytest.raises(Exception, match="soft_width=width"):
        f(es).block_until_ready()


# P_S with the top 6 partners and the tail term, as a function of a~ (module level: its
# Jacobians are compiled once and serve test_tail_gradient_matches_fd and the a~ = 0 check)
_TAIL_THETA = tj.SoftTheta(0.05)


@jax.jit
def _tail_p_s(parts, a):
    es = _es(parts, a, top_k=6, soft_width=_TAIL_THETA.width)
    return _TAIL_THETA.p_s(es, jnp.array([0.1, 0.3, 1.0]))


_tail_jacfwd = jax.jit(jax.jacfwd(_tail_p_s, argnums=1))
_tail_jacrev = jax.jit(jax.jacrev(_tail_p_s, argnums=1))


def test_tail_gradient_matches_fd(parts):
    a0, h = 2.0, 1e-6
    jac = _tail_jacfwd(parts, jnp.asarray(a0))
    fd = (_tail_p_s(parts, jnp.asarray(a0 + h)) - _tail_p_s(parts, jnp.asarray(a0 - h))) / (2 * h)
    np.testing.assert_allclose(jac, fd, rtol=1e-4, atol=1e-9)
    jac_rev = _tail_jacrev(parts, jnp.asarray(a0))
    np.testing.assert_allclose(jac_rev, jac, rtol=1e-8, atol=1e-12)


def test_soft_p_s_gradient_matches_fd(parts):
    n = int(parts[0].n_sites)
    energies = jnp.array([0.05, 0.1, 0.3, 1.0])
    theta = tj.SoftTheta(0.1)

    @jax.jit
    def f(a):
        return theta.p_s(_es(parts, a, top_k=n), energies)

    a0, h = 2.0, 1e-5
    jac = jax.jit(jax.jacfwd(f))(jnp.asarray(a0))
    jac_rev = jax.jit(jax.jacrev(f))(jnp.asarray(a0))
    fd = (f(jnp.asarray(a0 + h)) - f(jnp.asarray(a0 - h))) / (2 * h)
    np.testing.assert_allclose(jac, fd, rtol=1e-3, atol=1e-9)
    np.testing.assert_allclose(jac_rev, jac, rtol=1e-8, atol=1e-12)
    assert float(jnp.max(jnp.abs(jac))) > 1e-3  # a~ matters


def test_crossover_gradient_matches_fd(parts):
    n = int(parts[0].n_sites)
    theta = tj.SoftTheta(0.05)

    @jax.jit
    def tu(a, g):
        return theta.crossover(_es(parts, a, top_k=n), g)

    a0, g0, h = jnp.asarray(2.5), jnp.asarray(0.02), 1e-5
    da, dg = jax.jit(jax.grad(tu, argnums=(0, 1)))(a0, g0)
    fd = (tu(a0 + h, g0) - tu(a0 - h, g0)) / (2 * h)
    assert float(da) == pytest.approx(float(fd), rel=1e-3)
    # T_U solves P_S(T_U) = 5 g
    t = tu(a0, g0)
    p = jax.jit(lambda a, e: theta.p_s(_es(parts, a, top_k=n), e))(a0, t[None])
    assert float(p[0]) == pytest.approx(0.1, rel=1e-6)
    # d T_U / d g: larger g -> larger 5 g target -> larger T_U
    fdg = (tu(a0, g0 + 1e-6) - tu(a0, g0 - 1e-6)) / 2e-6
    assert float(dg) > 0 and float(dg) == pytest.approx(float(fdg), rel=1e-3)


def test_no_nan_at_zero_cutoff(parts):
    zero = jnp.asarray(0.0)
    assert np.all(np.isfinite(np.asarray(_tail_jacrev(parts, zero))))
    g = jax.jit(jax.grad(lambda a: _TAIL_THETA.crossover(
        _es(parts, a, top_k=6, soft_width=_TAIL_THETA.width), 0.02)))(zero)
    assert np.isfinite(float(g))

    def hard_sum(a):
        e = _es(parts, a).e_min
        return jnp.sum(jnp.where(jnp.isfinite(e), e, 0.0))

    assert np.isfinite(float(jax.jit(jax.grad(hard_sum))(zero)))


def test_hard_crossover_is_quantile(parts):
    es = _es(parts, 3.0)
    t = tj.crossover_temperature(es, 0.02)
    m = np.asarray(es.mask)
    e = np.sort(np.asarray(es.e_min)[m])
    k = int(np.ceil(0.1 * m.sum()))
    assert float(t) == e[k - 1]
    p = tj.p_s(es, jnp.array([float(t), float(t) + 1e-9]))
    assert float(p[0]) < 0.1 <= float(p[1])


@pytest.mark.parametrize("width", [-0.1, float("nan"), 0.0])
def test_bad_width(width):
    with pytest.raises(ValueError, match=r"SoftTheta\(width=...\)"):
        tj.SoftTheta(width)


def test_theta_from_width():
    assert isinstance(tj.theta_from_width(0.0), tj.HardTheta)
    assert isinstance(tj.theta_from_width(0.1), tj.SoftTheta)
    with pytest.raises(ValueError, match=r"theta_from_width\(width=...\)"):
        tj.theta_from_width(-1.0)


@pytest.mark.parametrize("energies, match", [
    ([], "non-empty"), ([0.1, float("nan")], "finite"), ("abc", "numeric")])
def test_bad_energy_grid(parts, energies, match):
    es = _es(parts, 3.0, top_k=4, soft_width=0.1)
    for theta in (tj.HardTheta(), tj.SoftTheta(0.1)):
        with pytest.raises(ValueError, match=rf"P_S\(energies=...\).*{match}"):
            theta.p_s(es, energies)


@pytest.mark.parametrize("g", [0.0, 0.2, 0.5, -0.1])
def test_bad_g_for_crossover(parts, g):
    with pytest.raises(ValueError, match=r"crossover\(g=...\)` must be finite and in \(0, 0.2\)"):
        tj.crossover_temperature(_es(parts, 3.0), g)


def test_bad_energies_under_jit(parts):
    es = _es(parts, 3.0, top_k=4, soft_width=0.1)
    f = jax.jit(lambda e: tj.SoftTheta(0.1).p_s(es, e))
    with pytest.raises(Exception, match=r"P_S\(energies=...\)` must be finite"):
        f(jnp.array([0.1, jnp.nan])).block_until_ready()
