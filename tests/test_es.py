import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tlsjax as tj
from tlsjax.model._couplings import GaussianAmplitudes, seed_from_key

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from _numpy_reference import numpy_es  # noqa: E402


def _parts(sample, key):
    kp, kc, kh = jax.random.split(key, 3)
    real = sample.draw(kp)
    return real, seed_from_key(kc), jax.random.normal(kh, (real.capacity,))


def test_three_site_hand_case():
    # Sites on a line (open boundaries), x = 1 (R_o^3 = 1), a~ = 0, chosen c_ij.
    real = tj.Realization.from_positions([[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0]], box=1e6, x=1.0)
    c = jnp.array([[0.0, 1.0, -5.0], [0.5, 0.0, 1.0], [-1.0, 2.0, 0.0]])
    es = tj.es_reduction(tj.Couplings(real, tj.ExplicitAmplitudes(c), jnp.asarray(0.0)),
                         jnp.zeros(3), 0.0, top_k=2)
    # U_ij = c_ij / R_ij^3 with R01 = 1, R02 = 3, R12 = 2:
    # U01 = 1, U02 = -5/27, U10 = 1/2, U12 = 1/8, U20 = -1/27, U21 = 1/4.
    # E_tau: E0 = 1/2 - 1/27, E1 = 1 + 1/4, E2 = -5/27 + 1/8 < 0 -> flipped.
    e = np.array([1 / 2 - 1 / 27, 5 / 4, 5 / 27 - 1 / 8])
    mean = e.mean()
    np.testing.assert_allclose(es.e_tau * es.e_tau_mean, e, rtol=1e-12)
    assert float(es.e_tau_mean) == pytest.approx(mean, rel=1e-12)
    assert float(es.e_tau0_mean) == pytest.approx(mean, rel=1e-12)  # no field
    # E_min_i = max_j (2 s_j U_ij - E_j), s_2 = -1:
    # i=0: max(2 - 5/4, 10/27 - E2) = 3/4; i=1: max(1 - E0, -1/4 - E2) = 1 - E0;
    # i=2: max(-2/27 - E0, 1/2 - 5/4) = -2/27 - E0.
    e_min = np.array([0.75, 1 - e[0], -2 / 27 - e[0]])
    np.testing.assert_allclose(es.e_min * es.e_tau_mean, e_min, rtol=1e-12)
    # the second-largest a_ij of row 0 is 2 U02 s2 - E2 = 10/27 - E2
    assert float(es.top[0, 1] * es.e_tau_mean) == pytest.approx(10 / 27 - e[2], rel=1e-12)
    # P_S counts spins with E_min < E
    p = tj.p_s(es, jnp.array([0.0, 0.6 / mean, 10.0]))  # one spin has E_min < 0
    np.testing.assert_allclose(p, [1 / 3, 2 / 3, 1.0])
    p_hi = tj.p_s(es, jnp.array([0.76 / mean]))
    assert float(p_hi[0]) == pytest.approx(1.0)


@pytest.mark.parametrize("atilde, h_rel", [(0.0, 0.0), (1.5, 0.3), (4.5, 1.0)])
def test_matches_numpy_reference(atilde, h_rel):
    sample = tj.Sample(0.2, cells=7)
    real, seed, h = _parts(sample, jax.random.key(11))
    es = tj.es_reduction(tj.Couplings(real, GaussianAmplitudes(seed), jnp.asarray(atilde)), h,
                         h_rel)
    e_min, e_mean = numpy_es(real.positions, real.mask, real.box, real.x, np.asarray(seed),
                             atilde, h, h_rel)
    n = int(real.n_sites)
    np.testing.assert_allclose(es.e_min[:n], e_min, rtol=1e-10, atol=1e-12)
    assert float(es.e_tau_mean) == pytest.approx(e_mean, rel=1e-12)


def test_block_size_invariance():
    sample = tj.Sample(0.2, cells=6)
    params = tj.ModelParams(atilde=1.5, h_rel=0.3)
    key = jax.random.key(3)
    n = sample.capacity
    runs = {b: tj.simulate(sample, params, key, block_size=b, top_k=4) for b in (1, 64, n)}
    base = runs[1]
    m = np.asarray(base.mask)
    for b, r in runs.items():
        # pass 2 (maxima) is exact; the column sums of pass 1 may round differently
        # when XLA vectorizes a different block width: agreement to ~1e-13.
        np.testing.assert_allclose(r.e_min[m], base.e_min[m], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(r.top[m], base.top[m], rtol=1e-12, atol=1e-13)
        assert np.array_equal(tj.p_s(r, jnp.linspace(0.01, 2, 50)),
                              tj.p_s(base, jnp.linspace(0.01, 2, 50))), b


def test_top_k_consistent_with_hard():
    sample = tj.Sample(0.2, cells=6)
    params = tj.ModelParams(atilde=3.0)
    key = jax.random.key(0)
    hard = tj.simulate(sample, params, key)
    soft = tj.simulate(sample, params, key, top_k=8)
    m = np.asarray(hard.mask)
    np.testing.assert_allclose(soft.top[m, 0], hard.e_min[m], rtol=1e-12)
    assert np.all(np.diff(np.asarray(soft.top[m]), axis=1) <= 0)  # sorted, decreasing
    assert np.all(np.asarray(soft.tail_count[m]) == int(hard.n_sites) - 1 - 8)


def test_es_reduction_inside_jit_with_a_concrete_realization():
    """`es_reduction` traced inside a caller's `jit` over a closed-over (concrete)
    realization: the check of its impurity count runs on the host, not on a tracer
    (`experiments/bench_es.py` does this)."""
    from tlsjax.model._couplings import Couplings

    real, seed, h = _parts(tj.Sample(0.2, cells=6), jax.random.key(1))

    @jax.jit
    def run(a):
        return tj.es_reduction(Couplings(real, GaussianAmplitudes(seed), a), h, 0.0).e_min

    direct = tj.es_reduction(Couplings(real, GaussianAmplitudes(seed), 3.0), h, 0.0).e_min
    np.testing.assert_allclose(np.asarray(run(jnp.asarray(3.0))), np.asarray(direct), rtol=1e-12)


def test_vmap_over_keys_and_params():
    sample = tj.Sample(0.2, cells=5)
    keys = jax.random.split(jax.random.key(0), 3)
    out = jax.jit(jax.vmap(lambda k: tj.simulate(sample, tj.ModelParams(), k).e_tau_mean))(keys)
    assert out.shape == (3,) and np.all(np.asarray(out) > 0)
    a = jnp.array([0.0, 1.5, 3.0])
    f = jax.jit(jax.vmap(lambda x: tj.simulate(sample, tj.ModelParams(atilde=x), keys[0]).e_min))
    batched = f(a)
    single = jax.jit(lambda k: tj.simulate(sample, tj.ModelParams(atilde=1.5), k).e_min)(keys[0])
    m = np.isfinite(np.asarray(single))
    np.testing.assert_allclose(batched[1][m], single[m], rtol=1e-12)


def test_field_h_rel_scales_with_e_tau0():
    sample = tj.Sample(0.2, cells=6)
    key = jax.random.key(4)
    r0 = tj.simulate(sample, tj.ModelParams(h_rel=0.0), key)
    r1 = tj.simulate(sample, tj.ModelParams(h_rel=1.0), key)
    assert float(r0.e_tau0_mean) == pytest.approx(float(r1.e_tau0_mean))
    assert float(r1.e_tau_mean) > float(r0.e_tau_mean)  # a random field broadens E_tau


def test_mean_tau_energy_is_one_in_its_units():
    es = tj.simulate(tj.Sample(0.5, cells=5), tj.ModelParams(), jax.random.key(9))
    m = np.asarray(es.mask)
    assert np.asarray(es.e_tau)[m].mean() == pytest.approx(1.0)


def test_bad_es_arguments():
    sample = tj.Sample(0.2, cells=4)
    with pytest.raises(ValueError, match=r"es_reduction\(top_k=...\)` must be >= 1"):
        tj.simulate(sample, tj.ModelParams(), jax.random.key(0), top_k=0)
    with pytest.raises(ValueError, match=r"es_reduction\(block_size=...\)"):
        tj.simulate(sample, tj.ModelParams(), jax.random.key(0), block_size=-3)
    f = jax.jit(lambda a: tj.simulate(sample, tj.ModelParams(atilde=a), jax.random.key(0)).e_min)
    with pytest.raises(Exception, match=r"ModelParams\(atilde=...\)"):
        f(-2.0).block_until_ready()


def test_default_block_size_by_backend():
    """~2^18 pairs per block on CPUs, ~2^24 on accelerators (blocks of one row at N = 1e6
    would cost a kernel launch per row on a GPU); results do not depend on it (above)."""
    from tlsjax.model._es import default_block_size

    assert default_block_size(10**6, backend="cpu") == 1
    assert default_block_size(10**6, backend="gpu") == 16
    assert default_block_size(1000, backend="cpu") == 262
    assert default_block_size(1000, backend="gpu") == 1000  # one block: the whole matrix


def test_float64_top_k_is_lax_top_k_bit_for_bit():
    """`model._topk.top_k` preselects float64 rows in float32: the same values and indices
    as `jax.lax.top_k`, also with exact ties, values that round to one float32 (more of them
    than the spare candidates) and -inf padding."""
    from tlsjax.model._topk import _SPARE, top_k

    rng = np.random.default_rng(3)
    a = rng.normal(size=(64, 300))
    a[:, 250:] = -np.inf  # padding
    a[1, :5] = a[1, 7]  # exact ties at the top
    a[2, :40] = 1.0 + np.arange(40) * 1e-12  # 40 distinct values, one float32 between them
    a[3, 10:10 + _SPARE] = a[3].max() + 1e-13 * np.arange(_SPARE)  # near-ties, within spare
    a[4, :] = -np.inf
    a[4, 17] = 0.5
    exact = [r for r in range(64) if r != 2]
    for k in (1, 8, 2 * _SPARE):
        want = [np.asarray(v) for v in jax.lax.top_k(jnp.asarray(a), k)]
        got = [np.asarray(v) for v in jax.jit(top_k, static_argnums=1)(jnp.asarray(a), k)]
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g[exact], w[exact])
        # row 2, more near-ties than spare candidates (the documented limit): k of them,
        # each within one float32 spacing of the exact k-th value
        assert np.all(np.abs(got[0][2] - want[0][2]) <= 1e-7) and len(set(got[1][2])) == k
    got = top_k(jnp.asarray(a[:, :16]), 8)  # k + spare >= columns: lax.top_k itself
    np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(jax.lax.top_k(a[:, :16], 8)[1]))
