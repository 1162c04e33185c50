"""Sharding over devices: 1 and 4 (emulated CPU) devices give identical results.

The test session already initialized JAX with one CPU device, so the 4-device runs
happen in a subprocess started with XLA_FLAGS=--xla_force_host_platform_device_count=4;
it writes its results to an .npz that is compared bit for bit with the same
computation done here on one device.
"""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import cpu_only

import tlsjax as tj
from tlsjax.parallel._ensemble import disorder_average
from tlsjax.parallel._sharding import device_mesh, index_blocks, mesh_size, sharded_map

# The computation shared by this process (1 device) and the subprocess (4 devices).
CASES = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    import tlsjax as tj
    from tlsjax.parallel._ensemble import disorder_average
    from tlsjax.parallel._sharding import device_mesh

    SAMPLE = tj.Sample(0.2, 5)  # ~100 impurities: 12 row blocks of 16 over 4 devices
    THETA = tj.SoftTheta(0.05)
    THETA_TOP_K = tj.SoftTheta(0.05, allow_truncation=True)
    E = jnp.array([0.2, 0.5, 1.0])

    def ensemble_fn(key):
        es = tj.simulate(SAMPLE, tj.ModelParams(atilde=3.0, h_rel=0.3), key, top_k=4,
                         soft_width=THETA.width)
        return dict(tu=THETA.crossover(es, 0.02), ps=THETA.p_s(es, E),
                    hard_ps=tj.HardTheta().p_s(es, E))

    def run_cases(devices):
        mesh = device_mesh(devices)
        keys = jax.random.split(jax.random.key(0), 6)
        mean, err, count = disorder_average(ensemble_fn, keys, batch_size=4, devices=mesh)
        # One realization, its row and column blocks split over the devices.
        key = jax.random.key(3)
        def one(a):
            # top-k only (no tail term): the row pass of the tail is not split over a mesh
            es = tj.simulate(SAMPLE, tj.ModelParams(atilde=a, h_rel=0.3), key, top_k=4,
                             block_size=16, mesh=mesh)
            return es, THETA_TOP_K.log_p_s(es, E).sum()
        es, _ = jax.jit(one)(3.0)
        grad = jax.jit(jax.grad(lambda a: one(a)[1]))(3.0)
        return dict(mean_tu=mean["tu"], err_tu=err["tu"], mean_ps=mean["ps"],
                    err_ps=err["ps"], mean_hard_ps=mean["hard_ps"], count=count, top=es.top, e_tau=es.e_tau,
                    e_tau_mean=es.e_tau_mean, grad=grad, n_devices=mesh.devices.size)
""")

SCRIPT = textwrap.dedent("""
    import jax
    jax.config.update("jax_enable_x64", True)  # as in conftest.py, before any array exists
    jax.config.update("jax_numpy_rank_promotion", "raise")
""") + CASES + textwrap.dedent("""
    import sys
    assert jax.device_count() == 4, jax.devices()
    np.savez(sys.argv[1], **{k: np.asarray(v) for k, v in run_cases(None).items()})
""")

# Four emulated CPU devices, on top of the flags this session runs with (conftest.py).
FOUR_DEVICES = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"


def test_device_mesh_arguments():
    assert mesh_size(device_mesh()) == jax.device_count()
    assert mesh_size(device_mesh(1)) == 1
    assert device_mesh(device_mesh(1)).devices.size == 1
    with pytest.raises(ValueError, match="devices"):
        device_mesh(0)
    with pytest.raises(ValueError, match="devices"):
        device_mesh(jax.device_count() + 1)
    with pytest.raises(ValueError, match="at least one"):
        device_mesh([])


def test_index_blocks_padding():
    blocks = index_blocks(10, 3, None)
    assert blocks.shape == (4, 3)
    np.testing.assert_array_equal(blocks.reshape(-1)[:10], np.arange(10))


def test_sharded_map_on_one_device_is_lax_map():
    xs = jnp.arange(12.0).reshape(6, 2)
    fn = lambda v: jnp.sum(v**2)
    np.testing.assert_array_equal(sharded_map(fn, xs, device_mesh(1), batch_size=2),
                                  jax.lax.map(fn, xs, batch_size=2))


def test_mesh_does_not_change_one_realization():
    sample = tj.Sample(0.2, 6)
    key = jax.random.key(1)
    ref = tj.simulate(sample, tj.ModelParams(h_rel=0.3), key, top_k=3, block_size=8)
    out = tj.simulate(sample, tj.ModelParams(h_rel=0.3), key, top_k=3, block_size=8,
                      mesh=device_mesh())
    np.testing.assert_array_equal(ref.top, out.top)
    np.testing.assert_array_equal(ref.e_tau, out.e_tau)


@pytest.mark.exact_bits
@cpu_only
def test_one_and_four_devices_identical(tmp_path):
    path = tmp_path / "four.npz"
    env = dict(os.environ, XLA_FLAGS=FOUR_DEVICES,
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    four = np.load(path)
    assert int(four["n_devices"]) == 4

    namespace = {}
    exec(CASES, namespace)  # the same definitions, run here on this session's one device
    one = namespace["run_cases"](1)
    assert one["n_devices"] == 1 and int(four["count"]) == one["count"] == 6
    for name in ("mean_tu", "err_tu", "mean_ps", "err_ps", "mean_hard_ps", "top", "e_tau",
                 "e_tau_mean"):
        np.testing.assert_array_equal(np.asarray(one[name]), four[name], err_msg=name)
    # Reverse mode through row blocks split over devices: the cotangent of a~ (shared by
    # all blocks) is summed per device and then across devices, a different order of
    # additions than one device's sequential sum, so only rounding may differ.
    np.testing.assert_allclose(np.asarray(one["grad"]), four["grad"], rtol=1e-12, atol=0)


def test_ensemble_on_all_devices_of_this_session():
    keys = jax.random.split(jax.random.key(0), 3)
    fn = lambda k: jax.random.normal(k, (2,))
    a = disorder_average(fn, keys, devices=None)
    b = disorder_average(fn, keys, devices=1)
    np.testing.assert_array_equal(a[0], b[0])
