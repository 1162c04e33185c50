"""The compiled programs of a kappa fit can be written to JAX's persistent cache: they hold
no host callback (JAX refuses to store those), because every input is checked before
tracing and the checks of computed values run on the results; bad input still gets the
same one-line messages. Traces only: nothing here runs a fit."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tlsjax as tj
from tlsjax.fit._kappa_model import (
    NAMES_VELOCITY_FREE,
    KappaModel,
    _evaluate,
    evaluate,
    placeholder_table,
)
from tlsjax.observables._dos import _check_sites, _simulate_batch
from tlsjax.observables._table import _tables_jit, tabulate_stau

T = np.geomspace(0.1, 3.0, 13)


def _model(T=T):
    return KappaModel(jnp.asarray(T), jnp.zeros(len(T)), jnp.ones(len(T)), placeholder_table(),
                      tj.Material(1.0, 1.0, 1.0), jnp.asarray(True), jnp.asarray(False), True)


def _params():
    p = dict(g=0.02, J0=500.0, T_U=1.0, atilde=3.0, h_rel=0.0, kv=1.0, Cv=1.0, l_b_v2=1e-4,
             rayleigh_v2=1.0)
    assert tuple(p) == NAMES_VELOCITY_FREE
    return {k: jnp.asarray(v) for k, v in p.items()}


def _callbacks(jaxpr) -> int:
    return str(jaxpr).count("callback")


def test_fit_programs_have_no_host_callbacks():
    km, p = _model(), _params()
    assert _callbacks(jax.make_jaxpr(km)(p)) == 0
    grid, energies = jnp.geomspace(0.05, 5.0, 32), jnp.asarray([1e-3, 10.0])
    assert _callbacks(eqx.filter_make_jaxpr(_evaluate)(km, p, grid, energies)) == 0
    # the same observable called directly keeps its run-time check of a traced T
    kappa = jax.make_jaxpr(lambda t: tj.thermal_conductivity(km.tls(p), km.material_of(p), t))
    assert _callbacks(kappa(jnp.asarray(T))) > 0


SAMPLE = tj.Sample(0.2, 3)


@pytest.fixture(scope="module")
def dos():
    return tj.stau_dos(tj.ModelParams(), SAMPLE, realizations=1)


def test_es_and_table_programs_have_no_host_callbacks(dos):
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    jaxpr = eqx.filter_make_jaxpr(_simulate_batch)(SAMPLE, tj.ModelParams(), keys, 8, None,
                                                   jnp.asarray(0.005))
    assert _callbacks(jaxpr) == 0
    assert _callbacks(eqx.filter_make_jaxpr(_tables_jit)(dos, jnp.linspace(-5.0, 3.0, 8))) == 0
    # the compiled P_S called on its own keeps its run-time check
    assert _callbacks(eqx.filter_make_jaxpr(lambda d: d.log_p_s(jnp.ones(3)))(dos)) > 0


def test_table_checks_the_dos_before_compiling(dos):
    bad = eqx.tree_at(lambda d: d.width, dos, jnp.asarray(0.01))
    with pytest.raises(ValueError, match="must equal the `soft_width`"):
        tabulate_stau(bad, tj.ModelParams())


@pytest.mark.parametrize("bad, match", [
    ([0.1, np.nan, 1.0], r"thermal_conductivity\(T=...\)` must contain only finite"),
    ([1e-9, 1e-8], r"thermal_conductivity\(T=...\)` must be finite and in"),
])
def test_fit_grids_checked_before_tracing(bad, match):
    with pytest.raises(ValueError, match=match):
        _model(np.asarray(bad))
    with pytest.raises(ValueError, match=match):
        evaluate(_model(), _params(), jnp.asarray(bad), jnp.asarray([1.0]))


def test_es_result_checks_run_on_the_result(dos):
    """`Sample.draw` and `es_reduction` checks, left out of the compiled ES program, raise
    with their messages on its result (concrete) or at run time (traced)."""
    sample, es = SAMPLE, dos.es
    few = eqx.tree_at(lambda e: e.n_sites, es, jnp.asarray([1]))
    with pytest.raises(ValueError, match="fewer than 2 impurities"):
        _check_sites(few, sample)
    many = eqx.tree_at(lambda e: e.n_sites, es, jnp.asarray([sample.capacity + 1]))
    with pytest.raises(ValueError, match=r"more impurities than `Sample\(capacity=...\)`"):
        _check_sites(many, sample)
    with pytest.raises(Exception, match=r"more impurities than `Sample\(capacity=...\)`"):
        jax.block_until_ready(jax.jit(lambda e: _check_sites(e, sample).top)(many))
    assert _check_sites(es, sample) is es


def _curves_model(T_q=T):
    from tlsjax.fit._curve_models import CurvesModel, make_channel
    from tlsjax.fit._data import Curve

    base = _model(np.zeros(0))
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    q = Curve(np.asarray(T_q), np.full(len(T_q), 1e-4), np.ones(len(T_q)), "qinv")
    d = Curve(T, -1e-5 * np.log(T), np.ones(T.size), "dvv")
    return CurvesModel(**fields, has_kappa=False,
                       qinv_ch=make_channel(q, 1e3, np.full(len(T_q), 0.01)),
                       dvv_ch=make_channel(d, 1e3, np.full(T.size, 1e-6)))


def test_curve_programs_have_no_host_callbacks():
    """`fit qinv` / `fit dvv`: residuals and post-fit evaluation are storable too; their
    grids are checked when the model is built."""
    from tlsjax.fit._curve_models import _evaluate_curves

    km = _curves_model()
    p = {**_params(), **{k: jnp.asarray(v) for k, v in dict(kappa_log=0.1, C=3e-4,
                                                             A_rel=1e8).items()}}
    assert _callbacks(jax.make_jaxpr(km)(p)) == 0
    grids = {"qinv": jnp.asarray(T), "dvv": jnp.asarray(T)}
    assert _callbacks(eqx.filter_make_jaxpr(_evaluate_curves)(km, p, grids)) == 0
    with pytest.raises(ValueError, match=r"qinv\(T=...\)` must contain only finite"):
        _curves_model(np.asarray([0.1, np.nan, 1.0]))


def _twice(x):
    return 2.0 * x


class _Opens:
    """Unpickled, it makes the folder `marker` (a stand-in for code run by a pickle)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.mkdir, (self.marker,)


def test_stored_programs_are_read_only_from_this_users_private_files(tmp_path):
    """Stored programs are unpickled, so never from a file or folder someone else could
    have written (group or world writable): those are compiled afresh."""
    import pickle
    import stat

    from tlsjax.fit import _disk_cache as dc

    f, folder, x = dc.stored_jit(_twice), tmp_path / "fit", jnp.asarray(1.5)
    marker = tmp_path / "unpickled"
    previous = dc.set_folder(folder)
    try:
        assert float(f(x)) == 3.0
        (path,) = folder.glob("program-*.bin")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        for file_mode, folder_mode, read in ((0o600, 0o700, True), (0o664, 0o700, False),
                                             (0o600, 0o777, False)):
            path.write_bytes(pickle.dumps(_Opens(marker)))
            path.chmod(file_mode)
            folder.chmod(folder_mode)
            dc.forget()
            assert float(f(x)) == 3.0  # computed afresh where the entry is not a program
            assert marker.exists() == read, (oct(file_mode), oct(folder_mode))
            if read:
                marker.rmdir()
    finally:
        folder.chmod(0o700)
        dc.set_folder(previous)
        dc.forget()


def test_split_short_ways_match_the_partition():
    """`_split`'s short ways (a lone array, a named static object, a tree of arrays only)
    give the array leaves that `eqx.partition` gives, keys equal for arguments of one
    structure and types, and keys that differ across ways and across types."""
    import optax

    from tlsjax.fit import _disk_cache as dc
    from tlsjax.fit._fit import _LBFGS

    def leaves_by_partition(arg):
        return jax.tree_util.tree_leaves(eqx.partition(arg, eqx.is_array)[0])

    u = jnp.arange(3.0)
    state = _LBFGS.init(u)
    other = dc._split(optax.lbfgs())  # an equal optimizer that is not named: the long way
    for arg in (u, state, _LBFGS, (u, None, {"a": u}), _model()):
        got = dc._split(arg)
        assert got[0] is arg
        assert all(x is y for x, y in zip(got[1], leaves_by_partition(arg), strict=True))
        assert got[2] != other[2]
        hash(got[2])
    assert dc._split(_LBFGS)[1] == [] and dc._split(_LBFGS)[2] == "optax.lbfgs()"
    assert dc._split(_LBFGS.init(u + 1.0))[2] == dc._split(state)[2]  # equal types: shared
    assert dc._split(_LBFGS.init(jnp.arange(4.0)))[2] != dc._split(state)[2]
    assert dc._split(u)[2] != dc._split(u.astype(jnp.int32))[2]
    assert len({dc._split(u)[2], dc._split((u,))[2], dc._split([u])[2]}) == 3
    weak = jnp.asarray(2.0)  # weak-typed, as a Python float becomes
    assert jax.typeof(weak).weak_type
    assert dc._split(weak)[2] != dc._split(jnp.asarray(2.0, weak.dtype))[2]
    assert dc._split((weak, u))[2] != dc._split((jnp.asarray(2.0, weak.dtype), u))[2]
    assert dc._split((u, None))[2] != dc._split((None, u))[2]
    # NumPy leaves take the long way: the same leaves as the partition, their own key
    host = (np.arange(3.0), u)
    assert all(x is y for x, y in zip(dc._split(host)[1], leaves_by_partition(host),
                                      strict=True))
    assert dc._split(host)[2] != dc._split((u, u))[2]
    # a traced argument has the key of its concrete value (traced calls then take the
    # program's jit form)
    keys = []
    jax.jit(lambda x: keys.append(dc._split(x)[2]) or x)(u)
    assert keys == [dc._split(u)[2]]
    # an array next to static leaves takes the long way, with the static leaf in the key
    assert dc._split((u, 2))[2] != dc._split((u, 3))[2]
