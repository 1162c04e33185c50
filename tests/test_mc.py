"""Monte Carlo of the full Hamiltonian: exact checks by enumeration, Boltzmann sampling,
incremental fields, stored vs generated couplings, descent, the ES limit, devices."""

import itertools
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import cpu_only
from scipy.stats import chi2

import tlsjax as tj
import tlsjax.model._mc_run as mc_run
from tlsjax.model._couplings import GaussianAmplitudes, seed_from_key
from tlsjax.model._mc_run import batch_size
from tlsjax.parallel._sharding import device_mesh

N_SMALL = 8  # impurities: 16 spins, 65536 states
SMALL_CONFIG = tj.MCConfig(temperatures=6, t_max=40.0, t_min=0.5, anneal_sweeps=60, sweeps=60,
                           block_size=8, descent_rounds=50)
minimize = jax.jit(tj.minimize, static_argnames="config")
energy = jax.jit(lambda ham, s: ham.energy(s))

# Four emulated CPU devices, on top of the flags this session runs with (conftest.py).
FOUR_DEVICES = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"


def small_hamiltonian(seed: int, g: float, J0: float = 10.0, h_S: float = 0.5, h_tau: float = 1.0):
    """8 impurities at random points of a periodic box (frustrated Gaussian couplings of
    all three kinds, random fields): a Hamiltonian small enough to enumerate."""
    rng = np.random.default_rng(seed)
    real = tj.Realization.from_positions(rng.uniform(0, 2.5, (N_SMALL, 3)), box=2.5, x=0.5)
    ks = jax.random.split(jax.random.key(seed), 5)
    couplings = tj.Couplings(real, GaussianAmplitudes(seed_from_key(ks[0])), jnp.asarray(1.0))
    h = jnp.concatenate([h_S * J0 * jax.random.normal(ks[3], (N_SMALL,)),
                         h_tau * g * J0 * jax.random.normal(ks[4], (N_SMALL,))])
    ham = tj.Hamiltonian(couplings, tj.SymmetricGaussianAmplitudes(seed_from_key(ks[1])),
                         tj.SymmetricGaussianAmplitudes(seed_from_key(ks[2])), h,
                         jnp.asarray(J0), jnp.asarray(g), jnp.ones(3), None, N_SMALL)
    return _stored(ham)


_stored = jax.jit(lambda ham: ham.stored())


STATES = np.array(list(itertools.product([-1.0, 1.0], repeat=2 * N_SMALL)))  # index = bits


def enumerate_energies(ham):
    return np.asarray(energy(ham, jnp.asarray(STATES)))


def state_index(spins):
    bits = (np.asarray(spins) > 0).astype(np.int64)
    return bits @ (1 << np.arange(2 * N_SMALL - 1, -1, -1))


@pytest.fixture(scope="module")
def small_cases():
    cases = {}
    for seed, g in [(0, 0.3), (1, 0.3), (2, 0.1), (3, 0.05)]:
        ham = small_hamiltonian(seed, g)
        cases[seed] = (ham, enumerate_energies(ham))
    return cases


INDEPENDENT = tj.MCConfig(temperatures=1, chains=6, t_max=40.0, t_min=0.5, anneal_sweeps=120,
                          sweeps=0, block_size=8, descent_rounds=50)  # 6 independent anneals


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_pipeline_finds_exact_ground_state_and_stable_states(small_cases, seed):
    ham, energies = small_cases[seed]
    config = INDEPENDENT if seed == 3 else SMALL_CONFIG
    res = minimize(ham, jax.random.key(100 + seed), config)
    assert res.spins.shape == (6, 2 * N_SMALL)
    assert float(res.lowest_energy) == pytest.approx(energies.min(), abs=1e-9)
    idx = state_index(res.spins)
    np.testing.assert_allclose(res.energies, energies[idx], atol=1e-9)
    # every final state is single- and pair-stable, by enumeration
    masks = 1 << np.arange(2 * N_SMALL - 1, -1, -1)
    single = energies[idx[:, None] ^ masks[None, :]] - energies[idx][:, None]
    assert single.min() >= -1e-9
    pairs = np.array([a | b for a, b in itertools.combinations(masks, 2)])
    assert (energies[idx[:, None] ^ pairs[None, :]] - energies[idx][:, None]).min() >= -1e-9
    assert np.all(np.asarray(res.after.single) == 0) and np.all(np.asarray(res.after.pair) == 0)
    assert bool(jnp.all(res.descent.converged))
    # the ground state is reported as such
    assert state_index(res.ground_spins[None])[0] == np.argmin(energies)


def _chi2_pvalue(samples, energies, temperature, bins=8):
    """Chi-square p-value of an energy histogram against the exact Boltzmann law."""
    w = np.exp(-(energies - energies.min()) / temperature)
    w /= w.sum()
    edges = np.quantile(energies, np.linspace(0, 1, 200))  # many candidate edges
    cdf = np.array([w[energies <= e].sum() for e in edges])
    cut = [edges[np.searchsorted(cdf, q)] for q in np.linspace(0, 1, bins + 1)[1:-1]]
    edges = np.unique(np.concatenate([[-np.inf], cut, [np.inf]]))
    expected = np.array([w[(energies > lo) & (energies <= hi)].sum()
                         for lo, hi in zip(edges[:-1], edges[1:])]) * samples.size
    observed = np.array([np.sum((samples > lo) & (samples <= hi))
                         for lo, hi in zip(edges[:-1], edges[1:])])
    stat = np.sum((observed - expected) ** 2 / expected)
    return chi2.sf(stat, len(expected) - 1)


metropolis = jax.jit(tj.metropolis)
tempering = jax.jit(tj.tempering)


def test_metropolis_samples_boltzmann(small_cases):
    ham, energies = small_cases[0]
    temperature = 12.0
    state = metropolis(ham, tj.init_state(ham, jax.random.key(5), jnp.full(64, temperature)), 100)
    samples = []
    for _ in range(40):  # 40 x 64 samples, 10 sweeps apart
        state = metropolis(ham, state, 10)
        samples.append(np.asarray(energy(ham, state.spins)))
    p = _chi2_pvalue(np.concatenate(samples), energies, temperature)
    assert p > 1e-3, p


def test_tempering_samples_boltzmann_at_every_rung(small_cases):
    ham, energies = small_cases[1]
    ladder = jnp.geomspace(30.0, 2.0, 6)
    state = tj.init_state(ham, jax.random.key(6), jnp.tile(ladder, 16))
    state, stats = tempering(ham, state, ladder, 100)
    assert np.all(np.asarray(stats.acceptance) > 0.05)
    by_slot = {0: [], 5: []}
    for _ in range(40):
        state, _ = tempering(ham, state, ladder, 10)
        e = np.asarray(energy(ham, state.spins))
        slots = np.asarray(state.slots)
        np.testing.assert_array_equal(np.asarray(state.temperatures), np.asarray(ladder)[slots])
        for m in by_slot:
            by_slot[m].append(e[slots == m])
    for m, samples in by_slot.items():
        p = _chi2_pvalue(np.concatenate(samples), energies, float(ladder[m]))
        assert p > 1e-3, (m, p)


def test_annealing_reaches_ground_state(small_cases):
    ham, energies = small_cases[2]
    state = tj.init_state(ham, jax.random.key(7), jnp.full(8, 40.0))
    state = jax.jit(tj.anneal)(ham, state, jnp.geomspace(40.0, 0.01, 300))
    assert float(jnp.min(energy(ham, state.spins))) == pytest.approx(energies.min(), abs=1e-9)


# -- a sampled realization ----------------------------------------------------------------------
MEDIUM = tj.Sample(0.2, cells=4)  # 256 sites, ~51 impurities, n = 128
MEDIUM_PARAMS = tj.HamiltonianParams(g=0.1, J0=50.0, atilde=1.5, h_S=0.2, h_tau=0.5)


@pytest.fixture(scope="module")
def medium():
    return jax.jit(lambda k: tj.hamiltonian(MEDIUM, MEDIUM_PARAMS, k, pad_to=32))(jax.random.key(2))


@jax.jit
def _long_run(ham, key):
    ladder = jnp.geomspace(50.0, 0.1, 8)
    state = tj.init_state(ham, key, ladder)
    state = tj.metropolis(ham, state, 200, refresh_every=10**6)  # never refreshed
    return state, ham.local_fields(state.spins)


def test_incremental_fields_equal_scratch_and_stored_equals_generated(medium):
    assert medium.matrix is not None
    state, scratch = _long_run(medium, jax.random.key(0))
    assert int(jnp.min(state.accepted)) > 50  # the fields were updated many times
    scale = float(jnp.max(jnp.abs(scratch)))
    np.testing.assert_allclose(state.fields, scratch, rtol=0, atol=1e-12 * scale)
    # identical trajectories with the rows generated on the fly
    state_f, _ = _long_run(medium.on_the_fly(), jax.random.key(0))
    np.testing.assert_array_equal(state.spins, state_f.spins)
    np.testing.assert_allclose(state.fields, state_f.fields, rtol=0, atol=1e-12 * scale)
    desc, stats = jax.jit(tj.descend)(medium, state)
    # the descent ends single- and pair-stable: check with the dense matrix directly
    assert bool(jnp.all(stats.converged))
    k = np.asarray(medium.matrix)
    mask = np.asarray(medium.mask)
    tol = float(tj.default_tol(medium))
    for s, f in zip(np.asarray(desc.spins), np.asarray(desc.fields)):
        eps = np.where(mask, -2.0 * s * f, np.inf)
        assert eps.min() >= -tol
        pair = eps[:, None] + eps[None, :] + 4.0 * k * s[:, None] * s[None, :]
        np.fill_diagonal(pair, np.inf)
        assert pair[np.ix_(mask, mask)].min() >= -tol
    assert int(jnp.sum(stats.pair_flips)) >= 0 and int(stats.rounds) >= 1


@pytest.mark.exact_bits
def test_tau_energies_with_s_frozen_are_the_es_reduction():
    """J^SS = J^tautau = 0, S_i = +1 held fixed: the descended tau spins have
    eps_j = 2 g J_o |E_tau_j| of the ES reduction (same key, same field)."""
    sample, key, h_rel = tj.Sample(0.2, cells=4), jax.random.key(4), 0.3
    model = tj.ModelParams(g=0.02, J0=500.0, atilde=3.0, h_rel=h_rel)
    es = jax.jit(lambda k: tj.simulate(sample, model, k))(key)
    params = tj.HamiltonianParams.from_model(model, h_tau=h_rel * float(es.e_tau0_mean))

    @jax.jit
    def run(k):
        ham = tj.hamiltonian(sample, params, k, pad_to=16).scaled(ss=0.0, tautau=0.0)
        n = ham.n
        spins = jnp.concatenate([jnp.ones((2, n)),
                                 jnp.where(jax.random.bernoulli(k, 0.5, (2, n)), 1.0, -1.0)], axis=1)
        frozen = jnp.arange(2 * n) < n
        state, stats = tj.descend(ham, tj.init_state(ham, k, jnp.zeros(2), spins=spins),
                                  frozen=frozen)
        return ham.flip_energies(state.spins, state.fields), state.spins, stats, n

    eps, spins, stats, n = run(key)
    n = int(n)
    m = np.asarray(es.mask)
    n0 = m.shape[0]
    want = 2.0 * 0.02 * 500.0 * np.asarray(es.e_tau * es.e_tau_mean)[m]
    for r in range(2):
        np.testing.assert_allclose(np.asarray(eps[r, n:n + n0])[m], want, rtol=1e-10)
        assert np.all(np.asarray(spins[r, :n]) == 1.0)  # the S spins did not move
    assert bool(jnp.all(stats.converged))


# -- the driver ---------------------------------------------------------------------------------
# The example configuration of docs/explanation/monte-carlo.md (compiled stages shared with it).
DRIVER = textwrap.dedent("""
    import jax, numpy as np
    import tlsjax as tj
    SAMPLE = tj.Sample(0.2, cells=4)
    PARAMS = tj.HamiltonianParams(g=0.02, J0=500.0, atilde=3.0, h_S=0.3, h_tau=0.5)
    CONFIG = tj.MCConfig(anneal_sweeps=200, sweeps=100)
    def run(devices, batch="map"):
        keys = jax.random.split(jax.random.key(0), 3)
        # map: one realization after another, as `minimize` runs one (exact comparison on any
        # backend; "auto" would vmap them on an accelerator)
        res = tj.run_mc(SAMPLE, PARAMS, keys, CONFIG, devices=devices, chunk=100, vmap_size=batch)
        return dict(spins=res.spins, energies=res.energies, swaps=res.swaps.accepted,
                    pair=res.before.pair, n_devices=jax.device_count() if devices is None else 1)
""")


@pytest.fixture(scope="module")
def driver():
    namespace = {}
    exec(DRIVER, namespace)
    return namespace


@pytest.fixture(scope="module")
def one_device(driver):
    return driver["run"](1)


def test_run_mc_matches_minimize(driver, one_device):
    one = one_device
    assert one["spins"].shape[:2] == (3, 16)
    keys = jax.random.split(jax.random.key(0), 3)
    ham = tj.hamiltonian(driver["SAMPLE"], driver["PARAMS"], keys[1])
    res = minimize(ham, tj.mc_key(keys[1]), driver["CONFIG"])
    np.testing.assert_array_equal(one["spins"][1], np.asarray(res.spins))


def test_run_mc_vmap_batch_gives_the_map_results(driver, one_device):
    """`run_mc(vmap_size="vmap")` (`tlsjax mc --batch vmap`: the realizations x chains x
    rungs of a device in one program, what accelerators run) gives the spins, energies,
    swaps and stability counts of "map" (one realization after another), to the bit."""
    assert batch_size("vmap", 3, device_mesh(1), 1 << 20) == 3  # all three in one program
    vmapped = driver["run"](1, "vmap")
    for name in ("spins", "energies", "swaps", "pair"):
        np.testing.assert_array_equal(one_device[name], vmapped[name], err_msg=name)


@cpu_only
def test_run_mc_one_vs_four_devices(one_device, tmp_path):
    one = one_device
    script = textwrap.dedent("""
        import jax, sys
        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_numpy_rank_promotion", "raise")
    """) + DRIVER + textwrap.dedent("""
        assert jax.device_count() == 4
        np.savez(sys.argv[1], **{k: np.asarray(v) for k, v in run(None).items()})
    """)
    path = tmp_path / "four.npz"
    env = dict(os.environ, XLA_FLAGS=FOUR_DEVICES, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", script, str(path)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    four = np.load(path)
    assert int(four["n_devices"]) == 4
    for name in ("spins", "energies", "swaps", "pair"):
        np.testing.assert_array_equal(one[name], four[name], err_msg=name)


def test_run_mc_interrupt_keeps_state_reached(driver, monkeypatch):
    calls = {"n": 0}
    original = mc_run._Progress.update

    def interrupt_once(self, k, **postfix):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return original(self, k, **postfix)

    monkeypatch.setattr(mc_run._Progress, "update", interrupt_once)
    keys = jax.random.split(jax.random.key(0), 3)
    res = tj.run_mc(driver["SAMPLE"], driver["PARAMS"], keys, driver["CONFIG"], devices=1, chunk=15)
    assert res.interrupted
    assert res.spins.shape[0] == 1  # the batch in progress; later batches skipped
    np.testing.assert_array_equal(res.sweeps[0], [15, 0])  # one chunk of annealing done
    assert bool(np.all(res.descent.converged))  # and then descended


def test_descent_in_calls_of_any_rounds_gives_the_same_spins(driver, one_device, monkeypatch):
    """Rounds per compiled descent call (Ctrl-C acts between calls): 1, doubling to 10 while
    calls are fast, halving when one is slow (a large system: about one round per call); the
    spins do not depend on them (one round per call against the adaptive default)."""
    fast, slow = 0.1 * mc_run._DESCENT_CALL_SECONDS, 3.0 * mc_run._DESCENT_CALL_SECONDS
    steps = [1]
    for _ in range(5):
        steps.append(mc_run._next_descent_step(steps[-1], fast))
    assert steps == [1, 2, 4, 8, 10, 10]
    assert mc_run._next_descent_step(10, slow) == 5
    assert mc_run._next_descent_step(1, slow) == 1
    assert mc_run._next_descent_step(4, 1.5 * mc_run._DESCENT_CALL_SECONDS) == 4
    monkeypatch.setattr(mc_run, "_next_descent_step", lambda step, seconds: 1)
    keys = jax.random.split(jax.random.key(0), 3)[1:]  # realizations 1, 2 of `one_device`
    res = tj.run_mc(driver["SAMPLE"], driver["PARAMS"], keys, driver["CONFIG"], devices=1,
                    chunk=100, vmap_size="map")
    assert int(np.max(res.descent.rounds)) >= 2  # so the descent went on in a second call
    np.testing.assert_array_equal(res.spins, one_device["spins"][1:])


def test_bad_input():
    with pytest.raises(ValueError, match=r"MCConfig\(sweeps=...\)` must be >= 0"):
        tj.MCConfig(sweeps=-1)
    with pytest.raises(ValueError, match=r"MCConfig\(anneal_sweeps=...\)"):
        tj.MCConfig(anneal_sweeps=-5)
    with pytest.raises(ValueError, match=r"MCConfig\(ladder=...\)` must be a non-empty"):
        tj.MCConfig(ladder=())
    with pytest.raises(ValueError, match=r"MCConfig\(ladder=...\)` must be strictly decreasing"):
        tj.MCConfig(ladder=(1.0, 2.0))
    with pytest.raises(ValueError, match=r"MCConfig\(ladder=...\)` must be > 0"):
        tj.MCConfig(ladder=(2.0, -1.0))
    with pytest.raises(ValueError, match=r"MCConfig\(t_min=...\)` must be below"):
        tj.MCConfig(t_max=1.0, t_min=5.0)
    with pytest.raises(ValueError, match=r"MCConfig\(t_max=...\)"):
        tj.MCConfig(t_max=-1.0)
    with pytest.raises(ValueError, match=r"MCConfig\(chains=...\)"):
        tj.MCConfig(chains=0)
    ham = small_hamiltonian(0, 0.3)
    state = tj.init_state(ham, jax.random.key(0), jnp.ones(6))
    with pytest.raises(ValueError, match=r"tempering\(ladder=...\)` must be a non-empty"):
        tj.tempering(ham, state, [], 10)
    with pytest.raises(ValueError, match=r"tempering\(ladder=...\)` must be strictly decreasing"):
        tj.tempering(ham, state, [1.0, 3.0], 10)
    with pytest.raises(ValueError, match=r"multiple of the ladder length"):
        tj.tempering(ham, state, [3.0, 2.0, 1.0, 0.5], 10)
    with pytest.raises(ValueError, match=r"tempering\(sweeps=...\)` must be >= 0"):
        tj.tempering(ham, state, [3.0, 2.0], -1)
    with pytest.raises(ValueError, match=r"metropolis\(sweeps=...\)` must be >= 0"):
        tj.metropolis(ham, state, -2)
    with pytest.raises(ValueError, match=r"anneal\(schedule=...\)` must be finite and in \[0"):
        tj.anneal(ham, state, jnp.array([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"init_state\(temperatures=...\)"):
        tj.init_state(ham, jax.random.key(0), jnp.array([-1.0]))
    with pytest.raises(ValueError, match=r"descend\(tol=...\)"):
        tj.descend(ham, state, tol=-1.0)
    with pytest.raises(ValueError, match=r"`frozen` must have shape \(16,\)"):
        tj.descend(ham, state, frozen=jnp.zeros(3, bool))
    with pytest.raises(ValueError, match=r"`block_size` must divide"):
        tj.metropolis(ham, state, 1, block_size=3)
    with pytest.raises(ValueError, match=r"run_mc\(vmap_size=...\)"):
        tj.run_mc(MEDIUM, MEDIUM_PARAMS, jax.random.split(jax.random.key(0), 2), vmap_size=0)
    f = jax.jit(lambda t: tj.init_state(ham, jax.random.key(0), t).temperatures)
    with pytest.raises(Exception, match=r"init_state\(temperatures=...\)"):
        f(jnp.array([-1.0])).block_until_ready()
