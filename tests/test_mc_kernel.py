"""The fused in-block kernel (Pallas; interpret mode off a GPU) against the XLA reference,
the choice of kernel and of batching by backend, and their argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tlsjax as tj
from tlsjax.model._mc_kernel import block_attempts_pallas, block_attempts_xla, resolve_kernel
from tlsjax.model._mc_run import batch_size
from tlsjax.parallel._sharding import device_mesh


def _block(r, b, seed):
    k = jax.random.split(jax.random.key(seed), 5)
    s = jnp.where(jax.random.bernoulli(k[0], 0.5, (r, b)), 1.0, -1.0)
    kbb = jax.random.normal(k[4], (b, b))
    return (s, jax.random.normal(k[1], (r, b)), 0.7 * jax.random.exponential(k[2], (r, b)),
            jax.random.bernoulli(k[3], 0.8, (b,)), (kbb + kbb.T) / 2)


@pytest.mark.parametrize("r, b", [(3, 8), (20, 12)])  # padded replicas and block; 2 row tiles
def test_pallas_block_gives_the_xla_spins(r, b):
    args = _block(r, b, seed=r)
    ref = np.asarray(block_attempts_xla(*args))
    out = np.asarray(block_attempts_pallas(*args))
    assert 0 < np.sum(ref != np.asarray(args[0]))  # some spins flipped, some did not
    np.testing.assert_array_equal(out, ref)
    frozen = np.asarray(args[3])
    np.testing.assert_array_equal(out[:, ~frozen], np.asarray(args[0])[:, ~frozen])


def test_pallas_sweeps_give_the_xla_spins():
    """Annealing sweeps of a small realization, the same thresholds (same key): identical
    spins, fields and acceptance counts with either kernel."""
    ham = tj.hamiltonian(tj.Sample(0.2, cells=2), tj.HamiltonianParams(h_S=0.3, h_tau=0.5),
                         jax.random.key(3), pad_to=8)
    state = tj.init_state(ham, jax.random.key(4), jnp.full(4, 200.0))
    schedule = jnp.array([300.0, 30.0, 3.0])
    run = jax.jit(lambda st, kernel: tj.anneal(ham, st, schedule, block_size=8, kernel=kernel),
                  static_argnums=1)
    xla, pallas = run(state, "xla"), run(state, "pallas")
    assert int(jnp.sum(xla.accepted)) > 0
    for name in ("spins", "fields", "accepted"):
        np.testing.assert_array_equal(getattr(pallas, name), getattr(xla, name), err_msg=name)


def test_choice_by_backend_and_forcing():
    assert resolve_kernel("auto", "gpu") == "pallas"
    assert resolve_kernel("auto", "cpu") == "xla"
    assert resolve_kernel("xla", "gpu") == "xla" and resolve_kernel("pallas", "cpu") == "pallas"
    mesh = device_mesh(1)
    on_cpu = mesh.devices.flat[0].platform == "cpu"
    assert batch_size("auto", 7, mesh, 1000) == (1 if on_cpu else 7)
    assert batch_size("map", 7, mesh, 1000) == 1
    assert batch_size("vmap", 7, mesh, 1000) == 7
    assert batch_size("vmap", 7, mesh, 1 << 60) == 1  # what memory allows, at least one
    assert batch_size(3, 7, mesh, 1000) == 3


def test_bad_kernel_and_batch():
    with pytest.raises(ValueError, match=r"`kernel` must be one of auto, xla, pallas; got 'cuda'"):
        resolve_kernel("cuda")
    with pytest.raises(ValueError, match=r"`MCConfig\(kernel=...\)` must be one of"):
        tj.MCConfig(kernel="triton")
    with pytest.raises(ValueError, match=r"`run_mc\(vmap_size=...\)` must be an int >= 1 or one"):
        batch_size("all", 2, device_mesh(1), 1)
    with pytest.raises(ValueError, match=r"run_mc\(vmap_size=...\)"):
        batch_size(0, 2, device_mesh(1), 1)


@pytest.mark.parametrize("batched", [False, True])
def test_kernel_lowers_to_triton(batched):
    """The Pallas kernel lowers to a Triton call for CUDA (no GPU needed to lower), alone
    and vmapped over realizations; compiling it to PTX needs a GPU (device_check.sh)."""
    from tlsjax.model._mc_kernel import _pallas_call

    s, lam, thr, _, kbb = _block(16, 64, seed=0)
    args = (s, lam, thr, kbb)

    def f(*a):
        return _pallas_call(*a, interpret=False)

    if batched:
        f, args = jax.vmap(f), tuple(jnp.stack([a, a]) for a in args)
    text = jax.jit(f).trace(*args).lower(lowering_platforms=("cuda",)).as_text()
    assert "triton" in text
