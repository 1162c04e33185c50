"""Wrong types and values at the Python API give a TypeError/ValueError naming the
argument (`function(argument=...)`), never an AttributeError from deep inside."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tlsjax as t

KEY = jax.random.key(0)
SAMPLE = t.Sample(0.2, cells=2)


def _es():
    return t.simulate(t.Sample(0.5, cells=3), t.ModelParams(), KEY)


CASES = [
    ("run_mc(config=...)", TypeError, lambda: t.run_mc(SAMPLE, t.HamiltonianParams(), KEY, 5)),
    ("run_mc(config=...)", TypeError, lambda: t.run_mc(SAMPLE, t.HamiltonianParams(), KEY, {})),
    ("run_mc(keys=...)", TypeError, lambda: t.run_mc(SAMPLE, t.HamiltonianParams(), [KEY, KEY])),
    ("run_mc(params=...)", TypeError, lambda: t.run_mc(SAMPLE, None, KEY)),
    ("p_s(es=...)", TypeError, lambda: t.p_s({}, jnp.ones(3))),
    ("p_s(energies=...)", ValueError, lambda: t.p_s(_es(), jnp.asarray([-1.0, 1.0]))),
    ("p_s(theta=...)", TypeError, lambda: t.p_s(_es(), jnp.ones(2), theta="soft")),
    ("crossover(tls=...)", TypeError, lambda: t.crossover(None)),
    ("descend(ham=...)", TypeError, lambda: t.descend(None, None)),
    ("stability(ham=...)", TypeError, lambda: t.stability(None, None)),
    ("hamiltonian(params=...)", TypeError, lambda: t.hamiltonian(SAMPLE, None, KEY)),
    ("hamiltonian(sample=...)", TypeError, lambda: t.hamiltonian("fcc", t.ModelParams(), KEY)),
    ("fit_kappa(sample=...)", TypeError, lambda: t.fit_kappa("no.csv", sample="fcc")),
    ("random_orientations(n=...)", ValueError, lambda: t.random_orientations(KEY, -5)),
    ("random_orientations(n=...)", ValueError, lambda: t.random_orientations(KEY, 0)),
    ("random_orientations(n=...)", ValueError, lambda: t.random_orientations(KEY, 2.5)),
    ("Sample(x=...)", ValueError, lambda: t.Sample(x=np.array([0.2, 0.3]), cells=3)),
    ("angular_factor(u=...)", TypeError, lambda: t.angular_factor(None, None, None)),
    ("angular_factor(rhat=...)", ValueError,
     lambda: t.angular_factor(jnp.ones(3), jnp.ones(3), jnp.ones(2))),
    ("default_tol(ham=...)", TypeError, lambda: t.default_tol(None)),
    ("es_estimator(ham=...)", TypeError, lambda: t.es_estimator(None, jnp.ones(4))),
]


def test_missing_argument_is_named():
    """`angular_factor(None, None)`: Python's own TypeError names the missing `rhat`."""
    with pytest.raises(TypeError, match="rhat"):
        t.angular_factor(None, None)


@pytest.mark.parametrize("name, error, call", CASES, ids=[f"{c[0]}-{i}" for i, c in
                                                         enumerate(CASES)])
def test_api_names_the_argument(name, error, call):
    with pytest.raises(error) as info:
        call()
    assert f"`{name}`" in str(info.value)
