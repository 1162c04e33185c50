"""Bad input through the public API gets a clear error; one key gives one sample in any
precision; library code leaves JAX's global configuration alone; checkpoints identify
what they hold."""

import math
import re
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tlsjax as tj
from tlsjax._validate import seed_key
from tlsjax.parallel._ensemble import disorder_average

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------- one key, one sample


def _draw(x64: bool):
    with jax.enable_x64(x64):
        sample = tj.Sample(0.2, 6)
        params = tj.ModelParams(atilde=3.0, h_rel=0.3)

        @jax.jit
        def run(key):
            real = sample.draw(jax.random.split(key, 3)[0])
            es = tj.simulate(sample, params, key)
            return real.mask, real.positions, es.n_sites, tj.crossover_temperature(es, 0.02)

        out = run(seed_key("test", "seed", 2**40 + 7))
        return [np.asarray(v) for v in out], str(out[1].dtype)


def test_same_key_same_sample_with_and_without_x64():
    (mask32, pos32, n32, tu32), dt32 = _draw(False)
    (mask64, pos64, n64, tu64), dt64 = _draw(True)
    assert (dt32, dt64) == ("float32", "float64")  # both precisions really ran
    assert int(n32) == int(n64) > 0
    np.testing.assert_array_equal(mask32, mask64)
    np.testing.assert_array_equal(pos32, pos64.astype(np.float32))  # lattice sites: exact
    np.testing.assert_allclose(tu64, tu32, rtol=2e-5)  # couplings and fields agree to float32


def test_seed_keys_do_not_depend_on_precision():
    for seed in (0, 2**31 + 5, 2**40 + 7, 2**64 - 1):
        with jax.enable_x64(False):
            k32 = np.asarray(jax.random.key_data(seed_key("t", "seed", seed)))
        with jax.enable_x64(True):
            k64 = np.asarray(jax.random.key_data(seed_key("t", "seed", seed)))
        np.testing.assert_array_equal(k32, k64)
    # seeds below 2^32 give jax.random.key(seed): earlier results stay as they were
    np.testing.assert_array_equal(jax.random.key_data(seed_key("t", "seed", 12)),
                                  jax.random.key_data(jax.random.key(12)))
    for bad in (-1, 2**64, 1.5, "3"):
        with pytest.raises(ValueError, match=r"`t\(seed=...\)` must be"):
            seed_key("t", "seed", bad)


def test_library_never_changes_global_jax_config(monkeypatch):
    # Only two places may change JAX's configuration, each on an explicit request: the
    # persistent compilation cache of the `tlsjax` program (never when main() is called
    # from Python, checked below) and joining a multi-process job (`tj.distributed`, or the
    # CLI's --coordinator/--num-processes/--process-id).
    opt_in = {"tlsjax/cli/_cache.py", "tlsjax/parallel/_distributed.py"}
    sources = [p for p in (ROOT / "tlsjax").rglob("*.py")]
    offenders = [str(p.relative_to(ROOT)) for p in sources
                 if re.search(r"config\.update\(|jax_enable_x64\s*=", p.read_text())]
    assert set(offenders) - opt_in == set()

    # `tlsjax sensitivity` computes in float64 inside a local context only
    from tlsjax.cli import _cli_sensitivity, main

    seen = {}

    def fake_sensitivity(*args, **kwargs):
        seen["dtype"] = jnp.zeros(()).dtype
        raise ValueError("stop here")

    monkeypatch.setattr(_cli_sensitivity, "sensitivity", fake_sensitivity)
    monkeypatch.setattr(jax.config, "update", lambda *a: pytest.fail(f"config.update{a}"))
    with jax.enable_x64(False):
        assert main(["sensitivity", "--cells", "3", "--out", "never-created"]) == 2
        assert jnp.zeros(()).dtype == jnp.float32
    assert seen["dtype"] == jnp.float64
    assert not Path("never-created").exists()


# ----------------------------------------------------------------- clear errors


@pytest.mark.parametrize("make, err, match", [
    (lambda: tj.ModelParams(g="0.02"), ValueError, r"`ModelParams\(g=...\)`.*string '0.02'"),
    (lambda: tj.ModelParams(J0=None), ValueError, r"`ModelParams\(J0=...\)`.*non-numeric"),
    (lambda: tj.Sample("0.2", 4), ValueError, r"`Sample\(x=...\)`.*string '0.2'"),
    (lambda: tj.Sample(0.2, "4"), ValueError, r"`FCC\(cells=...\)` must be an integer"),
    (lambda: tj.Sample(0.2, lattice="fcc"), TypeError, r"`Sample\(lattice=...\)`"),
    (lambda: tj.simulate(None, tj.ModelParams(), jax.random.key(0)), TypeError,
     r"`simulate\(sample=...\)` must be a Sample; got NoneType"),
    (lambda: tj.simulate(tj.Sample(0.2, 3), dict(g=0.02), jax.random.key(0)), TypeError,
     r"`simulate\(params=...\)` must be a ModelParams; got dict"),
    (lambda: tj.simulate(tj.Sample(0.2, 3), tj.ModelParams(), 0), TypeError,
     r"`simulate\(key=...\)` must be a JAX PRNG key"),
    (lambda: tj.es_reduction(None, jnp.zeros(3)), TypeError, r"`es_reduction\(couplings="),
    (lambda: disorder_average(None, jax.random.split(jax.random.key(0), 2)), TypeError,
     r"`disorder_average\(fn=...\)` must be callable"),
    (lambda: disorder_average(lambda k: k, [1, 2]), TypeError, r"`disorder_average\(keys="),
    (lambda: tj.Material(2200.0, 3000.0, 3800.0), ValueError,
     r"v_l must be >= v_t.*v_l = 3000, v_t = 3800"),
    (lambda: tj.Realization.from_positions([[0.0, 0.0, 0.0], [1.0, 2.0, 9.0]], 4.0, 0.2),
     ValueError, r"`Realization.from_positions\(positions=...\)` must be finite and in \[0, 4\)"),
    (lambda: tj.Realization.from_positions([[0.0, 0.0, -0.5], [1.0, 2.0, 3.0]], 4.0, 0.2),
     ValueError, r"from_positions\(positions=...\)`.*got -0.5"),
    (lambda: tj.Sample(0.2, 100000), ValueError,
     r"`Sample`: drawing a realization of 4,000,000,000,000,000 lattice sites.*needs about "
     r"[\d.]+ PiB of memory; this machine has"),
])
def test_bad_api_input_names_the_argument(make, err, match):
    with pytest.raises(err, match=match):
        make()


def test_equal_velocities_allowed():
    assert float(tj.Material(1.0, 2500.0, 2500.0).v_l) == 2500.0  # one-velocity Debye model


def test_traced_static_arguments_say_they_are_static():
    with pytest.raises(TypeError, match=r"`Sample\(x=...\)` is static"):
        jax.jit(lambda x: tj.Sample(x, 4).capacity)(0.2)
    with pytest.raises(TypeError, match=r"`Sample\(cells=...\)` is static"):
        jax.jit(lambda c: tj.Sample(0.2, c).capacity)(4)
    with pytest.raises(TypeError, match=r"`Realization.from_positions\(box=...\)` is static"):
        jax.jit(lambda b: tj.Realization.from_positions(jnp.ones((2, 3)), b, 0.2).n_sites)(4.0)


@pytest.mark.parametrize("fn, arg, text", [
    (lambda g: tj.ModelParams(g=g).g, -1.0, "`ModelParams(g=...)` must be finite and in (0, 1)"),
    (lambda v: tj.Material(2200.0, v, 3800.0).v_l, 3000.0,
     "`Material(v_l=..., v_t=...)`: v_l must be >= v_t"),
    (lambda z: tj.Realization.from_positions(jnp.stack([jnp.zeros(3), jnp.full(3, z)]), 4.0,
                                             0.2).positions, 5.0,
     "`Realization.from_positions(positions=...)` must be finite and in [0, 4)"),
])
def test_errors_under_jit_carry_the_eager_message(fn, arg, text):
    # eager: ValueError with the message and the offending value
    with pytest.raises(ValueError) as eager:
        fn(arg)
    assert text in str(eager.value)
    # under jax.jit: a RuntimeError (JaxRuntimeError, "INTERNAL: CpuCallback error" on CPU)
    # whose message contains the same text, without the value (docs/reference/errors-and-interrupts.md)
    with pytest.raises(RuntimeError) as jitted:
        jax.block_until_ready(jax.jit(fn)(arg))
    assert text in str(jitted.value)
    # under eqx.filter_jit and eager vmap: EquinoxRuntimeError, the same text
    with pytest.raises(eqx.EquinoxRuntimeError) as filtered:
        jax.block_until_ready(eqx.filter_jit(fn)(jnp.asarray(arg)))
    assert text in str(filtered.value)


def test_curve_loader_refuses_underscores_and_folders(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("T(K),k(W/m/K)\n1_0,1e-4\n2,2e-4\n")
    with pytest.raises(ValueError, match=r"line 2: non-numeric cell '1_0' in column T\(K\)"):
        tj.load_curve(p)
    p.write_text("T(K),k(W/m/K)\n1,1e-4\n2,2_0e-4\n")
    with pytest.raises(ValueError, match="line 3: non-numeric cell '2_0e-4'"):
        tj.load_curve(p)
    with pytest.raises(ValueError, match="is a folder, not a CSV file"):
        tj.load_curve(tmp_path)


# ----------------------------------------------------------------- checkpoints


def _f1(key):
    return dict(v=jax.random.normal(key, (2,)))


def _f2(key):
    return dict(v=jax.random.uniform(key, (2,)))


def _scaled(a):
    return lambda key: dict(v=a * jax.random.normal(key, (2,)))


KEYS = jax.random.split(jax.random.key(0), 4)


def test_checkpoint_identifies_the_function(tmp_path):
    p = tmp_path / "run.npz"
    m1, _, _ = disorder_average(_f1, KEYS, checkpoint=p)
    with pytest.raises(ValueError, match="different configuration.*function"):
        disorder_average(_f2, KEYS, checkpoint=p)  # used to return f1's mean
    again, _, _ = disorder_average(_f1, KEYS, checkpoint=p)
    np.testing.assert_array_equal(again["v"], m1["v"])
    q = tmp_path / "closure.npz"
    disorder_average(_scaled(1.0), KEYS, checkpoint=q)
    with pytest.raises(ValueError, match="different configuration"):
        disorder_average(_scaled(2.0), KEYS, checkpoint=q)  # same code, other closed value


def test_damaged_checkpoints_and_paths(tmp_path):
    p = tmp_path / "run.npz"
    disorder_average(_f1, KEYS, checkpoint=p, batch_size=2)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])  # truncated (a full disk, a killed copy)
    with pytest.raises(ValueError, match="cannot be read \\(truncated or damaged"):
        disorder_average(_f1, KEYS, checkpoint=p)
    p.write_bytes(b"")
    with pytest.raises((ValueError, FileExistsError), match="run.npz"):
        disorder_average(_f1, KEYS, checkpoint=p)

    calls = []

    def counting(key):
        calls.append(1)
        return _f1(key)

    (tmp_path / "afile").write_text("")
    with pytest.raises(FileExistsError, match="not a folder"):
        disorder_average(counting, KEYS, checkpoint=tmp_path / "afile" / "run.npz")
    with pytest.raises(FileExistsError, match="is a folder"):
        disorder_average(counting, KEYS, checkpoint=tmp_path)
    assert calls == []  # refused before tracing or computing anything
    deep = tmp_path / "new" / "dir" / "run.npz"  # a missing parent is created
    disorder_average(_f1, KEYS, checkpoint=deep)
    assert deep.is_file()


def test_checkpoint_file_is_never_touched_by_name_collisions(tmp_path):
    mine = tmp_path / "run.npz.tmp"
    mine.write_text("my notes")
    disorder_average(_f1, KEYS, checkpoint=tmp_path / "run.npz", batch_size=1)
    assert mine.read_text() == "my notes"
    assert sorted(q.name for q in tmp_path.iterdir()) == ["run.npz", "run.npz.tmp"]


def test_realization_positions_inside_box_accepted():
    r = tj.Realization.from_positions([[0.0, 0.0, 0.0], [3.9, 2.0, 1.0]], 4.0, 0.2)
    assert int(r.n_sites) == 2 and math.isclose(r.box, 4.0)
