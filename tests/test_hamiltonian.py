"""The full Hamiltonian (Eq. 1, docs/conventions.md section 6): convention, rows, energies, keys."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tlsjax as tj
from tlsjax.model._couplings import draw_couplings

SAMPLE = tj.Sample(0.3, cells=3)  # 108 sites, ~32 impurities, capacity 79 -> n = 80
PARAMS = tj.HamiltonianParams(g=0.3, J0=10.0, atilde=1.0, h_S=0.5, h_tau=0.8)
KEY = jax.random.key(7)
build = jax.jit(lambda key: tj.hamiltonian(SAMPLE, PARAMS, key, pad_to=16))
energy = jax.jit(lambda ham, s: ham.energy(s))
local_fields = jax.jit(lambda ham, s: ham.local_fields(s))


@pytest.fixture(scope="module")
def ham():
    return build(KEY)


@pytest.fixture(scope="module")
def spins(ham):
    s = jnp.where(jax.random.bernoulli(jax.random.key(1), 0.5, (3, ham.size)), 1.0, -1.0)
    return jnp.where(ham.mask, s, 1.0)


def _energy_by_sums(mats, S, tau):
    """Eq. 1 with the sums of docs/conventions.md section 6, written out (NumPy)."""
    n = S.shape[0]
    e = mats["h_S"] @ S + mats["h_tau"] @ tau
    for i in range(n):
        for j in range(n):
            if i < j:
                e += mats["J_SS"][i, j] * S[i] * S[j] + mats["J_tautau"][i, j] * tau[i] * tau[j]
            if i != j:
                e += mats["J_Stau"][i, j] * S[i] * tau[j]
    return e


def test_stored_by_default_and_convention(ham):
    assert ham.n == 80 and ham.size == 160 and ham.matrix is not None
    k = np.asarray(ham.matrix)
    np.testing.assert_array_equal(k, k.T)
    assert np.all(np.diag(k) == 0)
    m = np.asarray(ham.mask)
    assert np.all(k[~m] == 0) and np.all(k[:, ~m] == 0) and np.all(np.asarray(ham.h)[~m] == 0)
    n = ham.n
    # a site's own S and tau are not coupled; J^Stau is not symmetric in (i, j)
    assert np.all(np.diag(k[:n, n:]) == 0)
    assert not np.allclose(k[:n, n:], k[:n, n:].T)
    # the three scales: |J^SS| ~ J0, |J^Stau| ~ g J0, |J^tautau| ~ g^2 J0
    rms = [np.sqrt(np.mean(b[b != 0] ** 2)) for b in (k[:n, :n], k[:n, n:], k[n:, n:])]
    assert rms[1] / rms[0] == pytest.approx(0.3, rel=0.3)
    assert rms[2] / rms[1] == pytest.approx(0.3, rel=0.3)


def test_energy_matches_the_sums_of_eq1(ham, spins):
    mats = {k: np.asarray(v) for k, v in ham.coupling_matrices().items()}
    n0 = int(ham.n_sites)
    got = energy(ham, spins)
    for r in range(2):
        s = np.asarray(spins[r])
        ref = _energy_by_sums({k: v[:n0, :n0] if v.ndim == 2 else v[:n0] for k, v in mats.items()},
                              s[:n0], s[ham.n:ham.n + n0])
        assert float(got[r]) == pytest.approx(ref, rel=1e-12)


def test_flip_and_pair_flip_energies_are_energy_differences(ham, spins):
    s = spins[0]
    e0 = float(energy(ham, s))
    fields = local_fields(ham, s)
    eps = np.asarray(ham.flip_energies(s, fields))
    real = np.flatnonzero(np.asarray(ham.mask))
    flipped = energy(ham, s[None, :] * jnp.where(jnp.eye(ham.size, dtype=bool), -1.0, 1.0))
    np.testing.assert_allclose(eps[real], np.asarray(flipped)[real] - e0, atol=1e-10)
    assert np.all(eps[~np.asarray(ham.mask)] == 0)
    ks = np.random.default_rng(0).choice(real, 8, replace=False)
    pairs = [(a, b) for a, b in itertools.product(ks, ks) if a != b]
    k_idx, l_idx = jnp.array([p[0] for p in pairs]), jnp.array([p[1] for p in pairs])
    got = np.asarray(ham.pair_flip_energies(s, k_idx, l_idx, fields))
    both = np.ones((len(pairs), ham.size))
    both[np.arange(len(pairs)), k_idx] = -1.0
    both[np.arange(len(pairs)), l_idx] = -1.0
    want = np.asarray(energy(ham, s[None, :] * jnp.asarray(both))) - e0
    np.testing.assert_allclose(got, want, atol=1e-10)


@jax.jit
def _generated_vs_stored(ham, spins):
    fly = ham.on_the_fly()
    idx = jnp.array([0, 5, 79, 80, 90, 159])
    k, q = jnp.array([1, 2, 85, 90]), jnp.array([86, 3, 4, 91])
    return dict(
        rows=(fly.rows(idx), ham.matrix[idx]), dense=(fly.dense(), ham.matrix),
        coupling=(fly.coupling(k, q), ham.matrix[k, q]),
        fields=(fly.local_fields(spins), ham.local_fields(spins)),
        definition=(ham.local_fields(spins), ham.h[None, :] + spins @ ham.matrix),
        blocks=(fly.map_row_blocks(lambda i, rows: rows.sum(axis=1), 8),
                fly.map_row_blocks(lambda i, rows: rows.sum(axis=1), 16)),
        tau_rows=(fly.map_row_blocks(lambda i, rows: rows, 16, species=(1,)), ham.matrix[80:]),
    )


def test_generated_rows_equal_stored(ham, spins):
    assert ham.on_the_fly().matrix is None
    out = _generated_vs_stored(ham, spins)
    for name, (a, b) in out.items():
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13, err_msg=name)


def test_building_k_holds_one_copy(ham):
    """`dense()` writes K in place, block by block: building it takes no second (2n)^2
    array (concatenating the row blocks took 1.1 K of temporaries here, in place 0.23 K)."""
    built = jax.jit(lambda h: h.on_the_fly().dense()).lower(ham).compile().memory_analysis()
    if built is None:
        pytest.skip(f"no memory analysis on {jax.default_backend()}")
    assert built.output_size_in_bytes == ham.dense_bytes
    assert built.temp_size_in_bytes < ham.dense_bytes / 2, (built.temp_size_in_bytes, ham.dense_bytes)


@jax.jit
def _draws(key):
    draw = draw_couplings(SAMPLE, PARAMS.atilde, key)
    n0 = SAMPLE.capacity
    es = tj.es_reduction(draw.couplings, draw.h_normals, 0.0)
    return draw, draw.couplings.block(jnp.arange(n0), jnp.arange(n0)), es


@pytest.mark.exact_bits
def test_s_tau_block_is_the_es_reduction_u(ham):
    """Same key: same positions and J^Stau = g J_o U of the ES reduction (docs/conventions.md section 6)."""
    draw, u, es = _draws(KEY)
    n0, n = SAMPLE.capacity, ham.n
    np.testing.assert_array_equal(ham.realization.positions[:n0], draw.couplings.realization.positions)
    gj0 = float(PARAMS.g * PARAMS.J0)
    # equal to rounding (XLA may contract the distance arithmetic differently per program)
    np.testing.assert_allclose(np.asarray(ham.matrix[:n0, n:n + n0]), np.asarray(gj0 * u),
                               rtol=1e-14, atol=0)
    # h^tau uses the ES reduction's h normals
    np.testing.assert_allclose(ham.h[n:n + n0], 0.8 * gj0 * draw.h_normals * draw.couplings.realization.mask,
                               rtol=1e-14)
    # and the ES reduction of the same key sees exactly these tau fields (S_i = +1)
    col = np.asarray(ham.matrix[:n0, n:n + n0]).sum(axis=0)
    m = np.asarray(es.mask)
    np.testing.assert_allclose(np.abs(col[m]), np.asarray(es.e_tau * es.e_tau_mean)[m] * gj0, rtol=1e-12)


def test_fields_and_symmetric_amplitudes_statistics():
    sample = tj.Sample(0.5, cells=8)  # ~1024 impurities
    ham = jax.jit(lambda k: tj.hamiltonian(
        sample, tj.HamiltonianParams(J0=10.0, g=0.1, h_S=2.0, h_tau=3.0), k, max_dense_bytes=0)
    )(jax.random.key(3))
    assert ham.matrix is None
    m = np.asarray(ham.realization.mask)
    h = np.asarray(ham.h)
    n = ham.n
    assert np.std(h[:n][m]) == pytest.approx(20.0, rel=0.08)   # h_S J0
    assert np.std(h[n:][m]) == pytest.approx(3.0, rel=0.08)    # h_tau g J0
    assert abs(np.corrcoef(h[:n][m], h[n:][m])[0, 1]) < 0.1
    amp = tj.SymmetricGaussianAmplitudes(jnp.array([1, 2], jnp.uint32))
    i = jnp.arange(600)
    c = np.asarray(amp.pairs(i[:, None], i[None, :]))
    np.testing.assert_array_equal(c, c.T)
    off = c[np.triu_indices(600, 1)]
    assert abs(off.mean()) < 0.01 and abs(off.var() - 1.0) < 0.02
    assert abs(np.corrcoef(c[0, 1:300], c[1, 2:301])[0, 1]) < 0.15


def test_scaled_and_vmapped(ham):
    only_stau = jax.jit(lambda h: h.scaled(ss=0.0, tautau=0.0))(ham)
    n = ham.n
    k = np.asarray(only_stau.matrix)
    assert np.all(k[:n, :n] == 0) and np.all(k[n:, n:] == 0)
    np.testing.assert_array_equal(k[:n, n:], np.asarray(ham.matrix[:n, n:]))
    keys = jax.random.split(KEY, 3)
    s = jnp.ones(ham.size)
    e = jax.jit(jax.vmap(lambda k: tj.hamiltonian(SAMPLE, PARAMS, k, pad_to=16).energy(s)))(keys)
    assert e.shape == (3,)
    assert float(e[0]) == pytest.approx(float(energy(build(keys[0]), s)), rel=1e-12)


def test_model_params_accepted_and_bad_input(ham):
    plain = jax.jit(lambda k: tj.hamiltonian(SAMPLE, tj.ModelParams(g=0.1), k, pad_to=16).h)(KEY)
    assert np.all(np.asarray(plain) == 0)
    with pytest.raises(ValueError, match=r"HamiltonianParams\(h_S=...\)` must be finite and in \[0"):
        tj.HamiltonianParams(h_S=-0.1)
    with pytest.raises(ValueError, match=r"HamiltonianParams\(h_tau=...\)"):
        tj.HamiltonianParams(h_tau=float("nan"))
    with pytest.raises(ValueError, match=r"HamiltonianParams\(g=...\)` must be finite and in \(0, 1\)"):
        tj.HamiltonianParams(g=1.5)
    with pytest.raises(ValueError, match=r"hamiltonian\(pad_to=...\)"):
        tj.hamiltonian(SAMPLE, PARAMS, KEY, pad_to=0)
    with pytest.raises(ValueError, match=r"hamiltonian\(max_dense_bytes=...\)"):
        tj.hamiltonian(SAMPLE, PARAMS, KEY, max_dense_bytes=-1)
    with pytest.raises(ValueError, match="block_size"):
        ham.map_row_blocks(lambda i, r: r, 24)
    f = jax.jit(lambda h: tj.hamiltonian(SAMPLE, tj.HamiltonianParams(h_tau=h), KEY, pad_to=16).h)
    with pytest.raises(Exception, match=r"HamiltonianParams\(h_tau=...\)"):
        f(-1.0).block_until_ready()
