"""Disorder ensembles: running statistics, batching, devices, checkpoints and resuming."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tlsjax as tj
from tlsjax.parallel._ensemble import RunningStats, disorder_average, mean_and_stderr


def _normals(key):
    return dict(a=jax.random.normal(key, (3,)), b=jax.random.uniform(key, ()))


_SAMPLE = tj.Sample(0.2, 6)
_ENERGIES = jnp.array([0.2, 0.5, 1.0])


def _es_fn(key):
    # Hard Theta (quick to compile); the soft one is covered in test_sharding.py.
    es = tj.simulate(_SAMPLE, tj.ModelParams(atilde=3.0, h_rel=0.3), key)
    return dict(tu=tj.crossover_temperature(es, 0.02), ps=tj.p_s(es, _ENERGIES),
                e_tau=es.e_tau_mean)


def _keys(n, seed=0):
    return jax.random.split(jax.random.key(seed), n)


def test_running_stats_matches_numpy():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(11, 2, 3))
    stats = RunningStats()
    for chunk in (v[:4], v[4:5], v[5:]):
        stats.update(dict(v=chunk))
    m, s = mean_and_stderr(v)
    np.testing.assert_allclose(stats.mean["v"], m, rtol=1e-13)
    np.testing.assert_allclose(stats.stderr["v"], s, rtol=1e-12)
    restored = RunningStats.from_state(stats.state(), jax.tree_util.tree_structure(dict(v=0)),
                                       [(2, 3)])
    assert restored.count == 11
    np.testing.assert_array_equal(restored.mean["v"], stats.mean["v"])


def test_average_matches_direct_computation():
    keys = _keys(7)
    mean, err, count = disorder_average(_normals, keys, batch_size=3)
    direct = jax.vmap(_normals)(keys)
    m, s = mean_and_stderr(direct["a"])
    assert count == 7
    np.testing.assert_allclose(mean["a"], m, rtol=1e-12)
    np.testing.assert_allclose(err["a"], s, rtol=1e-12)


@pytest.mark.parametrize("vmap_size", [1, 2])
def test_batch_size_does_not_change_results(vmap_size):
    keys = _keys(6)
    ref = disorder_average(_es_fn, keys, batch_size=vmap_size, vmap_size=vmap_size)
    for batch_size in (4,):
        out = disorder_average(_es_fn, keys, batch_size=batch_size, vmap_size=vmap_size)
        assert out[2] == ref[2] == 6
        for k in ("tu", "ps"):
            np.testing.assert_array_equal(out[0][k], ref[0][k])
            np.testing.assert_array_equal(out[1][k], ref[1][k])


def test_legacy_uint32_keys_accepted():
    keys = jax.random.split(jax.random.PRNGKey(1), 4)
    mean, _, count = disorder_average(_normals, keys, batch_size=2)
    assert count == 4 and mean["a"].shape == (3,)


def test_resume_after_interruption_gives_uninterrupted_result(tmp_path, monkeypatch):
    keys = _keys(7)
    path = tmp_path / "partial.npz"
    config = dict(case="es", x=0.2, cells=6)
    full = disorder_average(_es_fn, keys, batch_size=2)

    calls = {"n": 0}
    original = RunningStats.update

    def interrupted(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        original(self, batch)

    monkeypatch.setattr(RunningStats, "update", interrupted)
    partial = disorder_average(_es_fn, keys, batch_size=2, checkpoint=path, config=config)
    monkeypatch.setattr(RunningStats, "update", original)
    assert partial[2] == 4  # two batches of two finished before the interruption
    with np.load(path) as saved:
        assert int(saved["next_index"]) == 4 and int(saved["count"]) == 4

    # Resume with another batch size: the same final statistics, bit for bit.
    resumed = disorder_average(_es_fn, keys, batch_size=3, checkpoint=path, config=config)
    assert resumed[2] == 7
    for k in ("tu", "ps"):
        np.testing.assert_array_equal(resumed[0][k], full[0][k])
        np.testing.assert_array_equal(resumed[1][k], full[1][k])
    with np.load(path) as saved:
        assert int(saved["next_index"]) == 7

    # A finished checkpoint returns at once, without calling fn's batches again.
    monkeypatch.setattr(RunningStats, "update", lambda self, b: pytest.fail("recomputed"))
    again = disorder_average(_es_fn, keys, batch_size=2, checkpoint=path, config=config)
    np.testing.assert_array_equal(again[0]["tu"], full[0]["tu"])


def test_checkpoint_of_other_configuration_is_refused(tmp_path):
    path = tmp_path / "partial.npz"
    disorder_average(_normals, _keys(4), batch_size=2, checkpoint=path, config=dict(a=1))
    before = path.read_bytes()
    with pytest.raises(ValueError, match="different configuration"):
        disorder_average(_normals, _keys(4), batch_size=2, checkpoint=path, config=dict(a=2))
    with pytest.raises(ValueError, match="different configuration"):
        disorder_average(_normals, _keys(4, seed=1), batch_size=2, checkpoint=path,
                         config=dict(a=1))
    with pytest.raises(ValueError, match="different configuration"):
        disorder_average(_normals, _keys(5), batch_size=2, checkpoint=path, config=dict(a=1))
    assert path.read_bytes() == before


def test_user_file_is_never_overwritten(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("my own notes")
    with pytest.raises(FileExistsError, match="not a tlsjax ensemble checkpoint"):
        disorder_average(_normals, _keys(2), checkpoint=path)
    assert path.read_text() == "my own notes"


def test_progress_bar(capsys):
    disorder_average(_normals, _keys(3), progress=True, description="demo")
    assert "demo" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(batch_size=0), "batch_size"), (dict(vmap_size=0), "vmap_size"),
     (dict(devices=0), "devices"), (dict(devices=1000), "devices")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        disorder_average(_normals, _keys(2), **kwargs)


def test_run_scan_uses_checkpoint(tmp_path):
    from tlsjax.studies._reproduce import run_scan

    path = tmp_path / "scan.npz"
    kw = dict(realizations=3, energies=[0.3, 1.0], progress=False, checkpoint=path)
    first = run_scan(0.2, 6, [3.0], [0.0], **kw)
    assert path.exists() and first.realizations == 3
    second = run_scan(0.2, 6, [3.0], [0.0], **kw)
    np.testing.assert_array_equal(first.mean["P_S"], second.mean["P_S"])
    with pytest.raises(ValueError, match="different configuration"):
        run_scan(0.2, 6, [1.5], [0.0], **kw)
