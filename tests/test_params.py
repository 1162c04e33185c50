import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import tlsjax as tj


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("g", 0.0, r"ModelParams\(g=...\)` must be finite and in \(0, 1\)"),
        ("g", 1.5, r"ModelParams\(g=...\)"),
        ("J0", -1.0, r"ModelParams\(J0=...\)` must be finite and in \(0, inf\]"),
        ("atilde", -0.1, r"ModelParams\(atilde=...\)` must be finite and in \[0, 1000\]"),
        ("h_rel", -1.0, r"ModelParams\(h_rel=...\)"),
        ("kappa_log", 0.0, r"ModelParams\(kappa_log=...\)` must be finite and in \(0, 1\]"),
        ("atilde", float("nan"), r"ModelParams\(atilde=...\)"),
        ("J0", float("inf"), r"ModelParams\(J0=...\)"),
        ("g", "abc", r"ModelParams\(g=...\).*non-numeric"),
    ],
)
def test_bad_params_raise(field, value, match):
    with pytest.raises(ValueError, match=match):
        tj.ModelParams(**{field: value})


def test_bad_params_under_jit_and_vmap():
    @jax.jit
    def f(a):
        return tj.ModelParams(atilde=a).atilde * 2

    assert float(f(1.0)) == 2.0
    # jax.jit surfaces the check as an XLA runtime error (a ValueError) with the message
    with pytest.raises(ValueError, match=r"ModelParams\(atilde=...\)` must be finite"):
        f(-1.0).block_until_ready()
    g = eqx.filter_jit(lambda a: tj.ModelParams(atilde=a).atilde)
    with pytest.raises(eqx.EquinoxRuntimeError, match="atilde"):
        g(jnp.asarray(-1.0))
    with pytest.raises(Exception, match="h_rel"):
        jax.vmap(lambda h: tj.ModelParams(h_rel=h).h_rel)(jnp.array([0.0, -1.0]))


def test_defaults_and_derived():
    p = tj.ModelParams()
    assert float(p.g) == 0.02 and float(p.J0) == 500.0
    assert float(p.C0) == pytest.approx(0.1 * 0.02)
    assert float(p.gJ0) == pytest.approx(10.0)
    q = p.replace(atilde=1.5)
    assert float(q.atilde) == 1.5 and float(q.g) == 0.02
    with pytest.raises(ValueError, match="unknown fields"):
        p.replace(gamma=1.0)
    batch = tj.ModelParams(atilde=jnp.array([0.0, 1.5, 3.0]))
    assert batch.atilde.shape == (3,)
