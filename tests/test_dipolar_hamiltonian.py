"""Electric dipoles in the full Hamiltonian (Sec. III B): all three coupling types, the S-tau
block consistent with the ES reduction's `DipolarSTauCouplings`, stored = generated rows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tlsjax as tj
from tlsjax.model._dipolar import DipolarSTauCouplings
from tlsjax.model._regime_params import DipolarDefects, _draw

SAMPLE = tj.Sample(0.3, cells=3)  # ~32 impurities, capacity 79 -> n = 80
G, J0, ATILDE, A_D, RATIO = 0.15, 10.0, 1.0, 0.5, 0.7
KEY = jax.random.key(11)


def _params(ratio=None, a_d=None):
    return tj.HamiltonianParams(g=G, J0=J0, atilde=ATILDE, h_S=0.5, h_tau=0.8,
                                J_ee_over_gJ0=ratio, dipole_atilde=a_d)


@jax.jit
def _build(key, ratio):
    """(no dipoles, J_ee = 0, J_ee = ratio) Hamiltonians of one key, K stored."""
    return [tj.hamiltonian(SAMPLE, p, key, pad_to=16)
            for p in (_params(), _params(0.0, A_D), _params(ratio, A_D))]


@jax.jit
def _es_side(key):
    """The ES reduction's dipolar S-tau couplings and result for the same key."""
    d = DipolarDefects(g=G, J0=J0, atilde=ATILDE, J_ee_over_gJ0=RATIO, dipole_atilde=A_D)
    couplings, _, k_c = _draw(SAMPLE, ATILDE, key)
    full = DipolarSTauCouplings(couplings.realization, couplings.amplitudes, couplings.atilde,
                                tj.dipolar_couplings(couplings.realization, k_c, A_D), RATIO)
    idx = jnp.arange(full.n)
    return full.block(idx, idx), d.simulate(SAMPLE, key).es


@pytest.fixture(scope="module")
def hams():
    return _build(KEY, RATIO)


@pytest.mark.exact_bits
def test_no_dipoles_and_zero_j_ee_are_bit_for_bit_equal(hams):
    plain, zero, _ = hams
    assert not isinstance(plain.couplings, DipolarSTauCouplings)
    assert isinstance(zero.couplings, DipolarSTauCouplings)
    np.testing.assert_array_equal(np.asarray(zero.matrix), np.asarray(plain.matrix))
    np.testing.assert_array_equal(np.asarray(zero.h), np.asarray(plain.h))
    # the generated rows too (the on-the-fly path adds the dipolar terms row by row)
    idx = jnp.array([0, 3, 79, 80, 97, 159])
    rows = jax.jit(lambda a, b: (a.on_the_fly().rows(idx), b.on_the_fly().rows(idx)))(plain, zero)
    np.testing.assert_array_equal(np.asarray(rows[1]), np.asarray(rows[0]))
    assert float(plain.J_ee) == 0.0 and float(zero.J_ee) == 0.0


def test_s_tau_block_is_g_j0_times_the_dipolar_es_u(hams):
    _, _, ham = hams
    u, es = _es_side(KEY)
    n0, n = SAMPLE.capacity, ham.n
    gj0 = G * J0
    k = np.asarray(ham.matrix)
    # equal to rounding (XLA may contract the arithmetic differently per program)
    np.testing.assert_allclose(k[:n0, n:n + n0], gj0 * np.asarray(u), rtol=1e-13, atol=1e-13)
    # the ES reduction of DipolarDefects sees exactly these tau fields (S_i = +1)
    col = k[:n0, n:n + n0].sum(axis=0)
    m = np.asarray(es.mask)
    np.testing.assert_allclose(np.abs(col[m]), np.asarray(es.e_tau * es.e_tau_mean)[m] * gj0,
                               rtol=1e-12)
    assert float(ham.J_ee) == pytest.approx(RATIO * gj0)


def _dense_dipolar(ham):
    """J_ee D^ab_ij r'_ij for all species pairs (NumPy, from positions and orientations)."""
    real, dip = ham.realization, ham.couplings.dipoles
    m = np.asarray(real.mask)
    pos = np.asarray(real.positions)
    d = pos[None, :, :] - pos[:, None, :]             # from i to j
    d -= real.box * np.round(d / real.box)
    r2 = (d**2).sum(-1)
    r2 = np.where(r2 > 0, r2, 1.0)                    # diagonal, padded sites (masked below)
    rhat = d / np.sqrt(r2)[..., None]
    radial = (1.0 / real.x) / (r2**1.5 + A_D**3)
    u = np.asarray(dip.orientations)                  # [:, 0] S, [:, 1] tau
    ok = m[:, None] & m[None, :] & ~np.eye(len(m), dtype=bool)
    out = {}
    for a, ka in (("S", 0), ("tau", 1)):
        for b, kb in (("S", 0), ("tau", 1)):
            ui, uj = u[:, None, ka, :], u[None, :, kb, :]
            ang = (ui * uj).sum(-1) - 3 * (ui * rhat).sum(-1) * (uj * rhat).sum(-1)
            out[a, b] = np.where(ok, RATIO * G * J0 * ang * radial, 0.0)
    return out


def test_all_three_blocks_get_the_dipolar_term(hams):
    _, zero, ham = hams
    n = ham.n
    diff = np.asarray(ham.matrix) - np.asarray(zero.matrix)
    want = _dense_dipolar(ham)
    # S-S with u^S_i, u^S_j; S-tau with u^S_i, u^tau_j; tau-tau with u^tau_i, u^tau_j
    for (a, b), sl in ((("S", "S"), np.s_[:n, :n]), (("S", "tau"), np.s_[:n, n:]),
                       (("tau", "S"), np.s_[n:, :n]), (("tau", "tau"), np.s_[n:, n:])):
        np.testing.assert_allclose(diff[sl], want[a, b], rtol=1e-9, atol=1e-12, err_msg=str((a, b)))
    k = np.asarray(ham.matrix)
    np.testing.assert_array_equal(k, k.T)
    assert np.all(np.diag(k) == 0) and np.all(np.diag(k[:n, n:]) == 0)
    mask = np.asarray(ham.mask)
    assert np.all(k[~mask] == 0) and np.all(k[:, ~mask] == 0)
    # the dipolar terms are of the size J_ee sqrt(2/3) r' (nonzero in every block)
    for blk in (diff[:n, :n], diff[:n, n:], diff[n:, n:]):
        assert np.count_nonzero(blk) > 0.9 * int(ham.n_sites) * (int(ham.n_sites) - 1)


@jax.jit
def _generated_vs_stored(ham, spins):
    fly = ham.on_the_fly()
    idx = jnp.array([0, 5, 79, 80, 90, 159])
    k, q = jnp.array([1, 2, 85, 90, 7]), jnp.array([86, 3, 4, 91, 9])
    return dict(
        rows=(fly.rows(idx), ham.matrix[idx]), dense=(fly.dense(), ham.matrix),
        coupling=(fly.coupling(k, q), ham.matrix[k, q]),
        diagonal=(fly.diagonal_blocks(16), ham.diagonal_blocks(16)),
        fields=(fly.local_fields(spins), ham.local_fields(spins)),
        definition=(ham.local_fields(spins), ham.h[None, :] + spins @ ham.matrix),
        scaled=(fly.scaled(ss=0.0, tautau=0.0).dense(), ham.scaled(ss=0.0, tautau=0.0).matrix),
    )


@pytest.mark.exact_bits
def test_generated_rows_equal_stored_with_dipoles(hams):
    ham = hams[2]
    s = jnp.where(jax.random.bernoulli(jax.random.key(1), 0.5, (2, ham.size)), 1.0, -1.0)
    out = _generated_vs_stored(ham, jnp.where(ham.mask, s, 1.0))
    # the blocks the Monte Carlo uses (row blocks, diagonal blocks): identical
    for name in ("dense", "diagonal"):
        np.testing.assert_array_equal(*map(np.asarray, out[name]), err_msg=name)
    # any rows, any elements: equal to rounding (XLA vectorizes other shapes differently)
    for name in ("rows", "coupling", "fields", "definition", "scaled"):
        np.testing.assert_allclose(*out[name], rtol=1e-13, atol=1e-13, err_msg=name)
    # scaling J^SS and J^tautau to zero removes their dipolar terms as well
    k = np.asarray(out["scaled"][1])
    n = ham.n
    assert np.all(k[:n, :n] == 0) and np.all(k[n:, n:] == 0)
    np.testing.assert_array_equal(k[:n, n:], np.asarray(ham.matrix[:n, n:]))


@jax.jit
def _sweeps(ham, key):
    state = tj.init_state(ham, key, jnp.geomspace(10.0, 0.05, 4))
    return tj.metropolis(ham, state, 100, refresh_every=10**6)


def test_identical_trajectories_stored_and_generated(hams):
    ham = hams[2]
    a, b = _sweeps(ham, jax.random.key(3)), _sweeps(ham.on_the_fly(), jax.random.key(3))
    assert int(jnp.min(a.accepted)) > 30
    np.testing.assert_array_equal(np.asarray(a.spins), np.asarray(b.spins))
    np.testing.assert_allclose(a.fields, b.fields, rtol=0, atol=1e-12)


def test_bad_dipole_input():
    with pytest.raises(ValueError, match=r"HamiltonianParams\(J_ee_over_gJ0=...\)` must be finite"
                       r" and in \[0, inf\]"):
        tj.HamiltonianParams(J_ee_over_gJ0=-0.1)
    with pytest.raises(ValueError, match=r"HamiltonianParams\(dipole_atilde=...\)` must be finite"):
        tj.HamiltonianParams(J_ee_over_gJ0=1.0, dipole_atilde=float("nan"))
    with pytest.raises(ValueError, match=r"dipole_atilde=...\)` needs J_ee_over_gJ0"):
        tj.HamiltonianParams(dipole_atilde=1.0)
    with pytest.raises(Exception, match=r"HamiltonianParams\(J_ee_over_gJ0=...\)"):
        jax.block_until_ready(_build(KEY, -1.0))  # traced: checked at run time
