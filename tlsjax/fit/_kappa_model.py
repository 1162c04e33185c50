"""The kappa(T) model of the fits: S-tau or constant C, plus boundary and Rayleigh terms.

One `KappaModel` (an `eqx.Module`) holds the data and the tabulated S-tau C(E) and maps
a dict of parameters to log-space residuals. Every parameter any candidate model uses
is in that dict; which of them are free, and whether the tunneling strength is the
S-tau C(E) or a constant (`stm`), are array inputs, so all candidate models of a
selection and every point of a profile run through one compiled function.

Phonon mean free path (Matthiessen's rule, docs/conventions.md section 5):

    l^-1(omega) = l^-1_res(C(hbar omega)) + A_R omega^4 + 1 / l_b.

The Rayleigh term is carried in kelvin units, A_K = A_R (k_B / hbar)^4 in m^-1 K^-4
(l^-1 = A_K E^4 with the phonon energy E = hbar omega / k_B in K), because A_R itself
(~1e-45 s^4/m) is not representable in float32.

**Without sound velocities** (the velocity-free convention of `_fit_stau.py`) one
velocity v carries the amplitude: the model uses kappa_log = 1 (S-tau) or C = 1 (plain)
and v = `kv` = kappa_log v_eff (or `Cv` = C v_eff). The data then fix only
combinations that do not involve v: l_b / v_eff^2 (`l_b_v2`, s^2/m; the boundary-limited
kappa is (2 pi^2 k_B^4 T^3 / 15 hbar^3) l_b / v^2) and A_K v_eff^2 (`rayleigh_v2`,
m K^-4 s^-2); inside the model, A_K -> rayleigh_v2 / a^2 and l_b -> a^2 l_b_v2 with
a = kv or Cv. (Exact for one velocity; with v_l != v_t the three combinations weight
the branches slightly differently.)
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._background import in_background, overlap
from .._validate import checked_inputs, device_array, is_traced
from .._xla import QUICK_COMPILE, quick_compile
from ..model._lattice import Sample
from ..model._params import ModelParams
from ..observables._dos import stau_dos
from ..observables._material import HBAR, K_B, Material
from ..observables._stm import (
    _omegas,
    _temperatures,
    thermal_conductivity,
    thermal_conductivity_closed_form,
)
from ..observables._stm import qinv as _qinv
from ..observables._table import (
    TabulatedStauTLS,
    shortcut_log_eps,
    table_crossover,
    tabulate_stau,
)
from ..observables._tls import AbstractTLS
from ._disk_cache import load_table, save_table, stored_jit, table_stored

#: All parameters of the kappa model, without and with a `Material`.
NAMES_VELOCITY_FREE = ("g", "J0", "T_U", "atilde", "h_rel", "kv", "Cv", "l_b_v2", "rayleigh_v2")
NAMES_MATERIAL = ("g", "J0", "T_U", "atilde", "h_rel", "kappa_log", "C", "l_b", "rayleigh")
#: (k_B / hbar)^4 in s^-4 K^-4: A_K = A_R * this.
RAYLEIGH_K_PER_SI = (K_B / HBAR) ** 4
#: 2 pi^2 k_B^4 / (15 hbar^3): boundary-limited kappa = this * T^3 * l_b / v^2.
BOUNDARY_KAPPA_CONST = 2.0 * math.pi**2 * K_B**4 / (15.0 * HBAR**3)


def names_for(velocity_free: bool) -> tuple[str, ...]:
    return NAMES_VELOCITY_FREE if velocity_free else NAMES_MATERIAL


def amplitude_name(model: str, velocity_free: bool) -> str:
    """The parameter that sets the size of C: kv / kappa_log (S-tau), Cv / C (plain)."""
    if model == "stm":
        return "Cv" if velocity_free else "C"
    return "kv" if velocity_free else "kappa_log"


def boundary_name(velocity_free: bool) -> str:
    return "l_b_v2" if velocity_free else "l_b"


def rayleigh_name(velocity_free: bool) -> str:
    return "rayleigh_v2" if velocity_free else "rayleigh"


# ---------------------------------------------------------------- tables, cached


_TABLES: OrderedDict = OrderedDict()
_TABLE_FIELDS = ("log_eps", "log_p_s", "d_log_p_s", "log_phi_tau", "d_log_phi_tau")
_TABLES_MAX = 16
_TABLES_LOCK = threading.Lock()


def _key_data(key) -> tuple:
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return tuple(np.asarray(key).ravel().tolist())


def stau_table(sample: Sample, realizations: int, key, atilde: float, h_rel: float
               ) -> TabulatedStauTLS:
    """The tabulated S-tau C(E) at (a~, h_rel) for this ES sample, built once per
    process and argument set (the ES reduction and the tabulation take seconds; every
    fit, candidate model and test at the same settings shares them), and read back from
    disk where the command line keeps tables between runs (`_disk_cache`)."""
    key = _raw_key(key)
    cache_key = _table_key(sample, realizations, key, atilde, h_rel)
    with _TABLES_LOCK:  # tables are built in background threads too
        if cache_key in _TABLES:
            _TABLES.move_to_end(cache_key)
            return _TABLES[cache_key]
    mp = ModelParams(atilde=atilde, h_rel=h_rel)
    stored = load_table(cache_key)
    if stored is not None:
        tab = TabulatedStauTLS(*(device_array(stored[n]) for n in _TABLE_FIELDS), mp,
                               None if stored["e_tau_mean"] is None
                               else device_array(stored["e_tau_mean"]))
    else:
        with quick_compile(_quick(sample, realizations)):
            tab = tabulate_stau(stau_dos(mp, sample, key, realizations=realizations), mp)
        save_table(cache_key, {n: getattr(tab, n) for n in (*_TABLE_FIELDS,
                                                                    "e_tau_mean")})
    with _TABLES_LOCK:
        _TABLES[cache_key] = tab
        while len(_TABLES) > _TABLES_MAX:
            _TABLES.popitem(last=False)
    return tab


#: Impurities times realizations of the fits' default DOS sample (x = 0.2, L = 10, 4
#: realizations): up to this size the table's programs are compiled for a short run.
QUICK_TABLE_SIZE = 0.2 * 4 * 10**3 * 4


def _quick(sample: Sample, realizations: int) -> bool:
    """Whether the ES reduction and tabulation of a table compile with
    `tlsjax._xla.TABLE_COMPILE`: for samples up to the default size, where compiling takes
    longer than running (measured there)."""
    return float(sample.x) * sample.lattice.n_sites * realizations <= QUICK_TABLE_SIZE


def _raw_key(key):
    """A typed key of JAX's default PRNG implementation as its raw data (what
    `jax.random.PRNGKey` gives: the same random bits), so that keys of both kinds share one
    compiled ES program (the command line's `--seed` makes a typed key, the DOS-sample
    refits raw ones: two programs, ~1.3 CPU-seconds more in a cold fit)."""
    if (jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
            and str(jax.random.key_impl(key)) == jax.config.jax_default_prng_impl):
        return jax.random.key_data(key)
    return key


def _table_key(sample: Sample, realizations: int, key, atilde: float, h_rel: float) -> tuple:
    return (float(sample.x), int(sample.lattice.cells), type(sample.lattice).__name__,
            int(realizations), _key_data(key), float(atilde), float(h_rel),
            str(jnp.result_type(float)))


def stau_table_later(sample: Sample, realizations: int, key, atilde: float, h_rel: float
                     ) -> Callable[[], TabulatedStauTLS]:
    """`stau_table`, started now in a background thread where it has to be built (it is
    neither in this process's memory nor on disk); returns a function that waits for it
    (Ctrl-C still reaches the caller while it waits). Meanwhile the caller can fit what
    does not need it (the constant-C candidates of a model selection): on a CPU with two
    cores the ES reduction and the compilation of the fit's programs then overlap.

    The table is the same bits as `stau_table` builds in the caller's thread: the worker
    computes in the caller's precision (`jax_enable_x64` may be set for a thread only).
    Only where the fits overlap work (`tlsjax._background.overlap`: the command line); otherwise
    the table is built when the returned function is called."""
    args = (sample, realizations, key, atilde, h_rel)
    cache_key = _table_key(*args)
    if not overlap() or cache_key in _TABLES or table_stored(cache_key):
        return lambda: stau_table(*args)
    return in_background(lambda: stau_table(*args), "tlsjax-stau-table").get


def rebuild_table(sample: Sample, realizations: int, key, params: ModelParams
                  ) -> TabulatedStauTLS:
    """The table at params.atilde, params.h_rel (traced): the ES reduction and the
    tabulation run inside the loss (`KappaModel.rebuild`)."""
    return tabulate_stau(stau_dos(params, sample, key, realizations=realizations), params)


def placeholder_table(like: TabulatedStauTLS | None = None) -> TabulatedStauTLS:
    """A table of the usual shape for models that do not use the S-tau C(E) (constant
    C), so that they share the compiled function without running the ES reduction."""
    from ..observables._table import DEFAULT_TABLE_POINTS

    m = DEFAULT_TABLE_POINTS if like is None else like.log_eps.shape[0]
    xs = device_array(np.linspace(math.log(1e-3), math.log(1e3), m), jnp.result_type(float))
    z = device_array(np.zeros(m), jnp.result_type(float))
    # e_tau_mean strongly typed, as in a built table: one compiled program for both
    return TabulatedStauTLS(xs, z, z, z, z, ModelParams(),
                            device_array(1.0, dtype=jnp.result_type(float)))


# ---------------------------------------------------------------- the model


def _replace(module, **fields):
    """eqx.tree_at without the checks of __init__ (values come from a bounded transform)."""
    names = list(fields)
    return eqx.tree_at(lambda m: tuple(getattr(m, n) for n in names), module,
                       tuple(fields[n] for n in names))


class FitTLS(AbstractTLS):
    """C(E) of a fit: the tabulated S-tau C(E), or a constant where `stm` is True."""

    table: TabulatedStauTLS
    C: jax.Array
    stm: jax.Array

    def strength_parts(self, energies_K):
        stau = self.table.strength_parts(energies_K)
        const = jnp.stack([jnp.broadcast_to(self.C, stau.shape[1:]), jnp.zeros(stau.shape[1:],
                                                                                 stau.dtype)])
        return jnp.where(self.stm, const, stau)

    def log_strength_parts(self, energies_K):
        # in logs throughout: exp(ln P_S) underflows deep in the gap, and log(0) would
        # give NaN gradients
        stau = self.table.log_strength_parts(energies_K)
        shape = stau.shape[1:]
        const = jnp.stack([jnp.broadcast_to(jnp.log(self.C), shape),
                           jnp.full(shape, -jnp.inf, stau.dtype)])
        return jnp.where(self.stm, const, stau)

    def coupling_scales(self):
        g = self.table.params.g
        return jnp.where(self.stm, jnp.ones(2, jnp.result_type(g)),
                         self.table.coupling_scales())


class KappaModel(eqx.Module):
    """Log-space residuals of kappa(T) (and optionally Q^-1(T)) for a parameter dict.

    r_i = scale_i (ln kappa_model(T_i) - ln kappa_i), scale_i = sqrt(w_i) / sigma_i.
    """

    T: jax.Array
    log_y: jax.Array
    scale: jax.Array
    table: TabulatedStauTLS
    material: Material
    stm: jax.Array
    use_tu: jax.Array
    velocity_free: bool = eqx.field(static=True)
    #: None (the table is fixed), or a function of `ModelParams` that rebuilds the table
    #: from p["atilde"], p["h_rel"] inside the loss (a~ or h_rel free: an ES reduction
    #: per evaluation, slow; see `rebuild_table`).
    rebuild: Callable | None = eqx.field(static=True, default=None)
    q_T: jax.Array | None = None
    q_log_y: jax.Array | None = None
    q_scale: jax.Array | None = None
    omega: jax.Array | None = None
    polarization: str = eqx.field(static=True, default="t")

    def __check_init__(self):
        # the grids are checked here, once, so that the residual function compiles without
        # run-time checks (`checked_inputs`: a program with them is never cached on disk)
        check_grids(self.T, "thermal_conductivity")
        if self.q_T is not None:
            check_grids(self.q_T, "qinv")
            check_grids(self.omega, "qinv", "omega")

    def table_for(self, p) -> TabulatedStauTLS:
        if self.rebuild is None:
            return self.table
        return self.rebuild(_replace(ModelParams(), atilde=p["atilde"], h_rel=p["h_rel"]))

    def j0(self, p, table=None):
        """J_o: the parameter, or from T_U = g J_o eps*(g) where `use_tu` (T_U given)."""
        table = self.table_for(p) if table is None else table
        lx = shortcut_log_eps(table, p["g"])
        lx = jnp.where(jnp.isfinite(lx), lx, 0.0)
        return jnp.where(self.use_tu, p["T_U"] / (p["g"] * jnp.exp(lx)), p["J0"])

    def model_params(self, p, table=None) -> ModelParams:
        table = self.table_for(p) if table is None else table
        kl = jnp.asarray(1.0) if self.velocity_free else p["kappa_log"]
        return _replace(ModelParams(), g=p["g"], J0=self.j0(p, table), atilde=p["atilde"],
                        h_rel=p["h_rel"], kappa_log=kl)

    def tls(self, p) -> FitTLS:
        C = jnp.asarray(1.0) if self.velocity_free else p["C"]
        table = self.table_for(p)
        return FitTLS(table.with_params(self.model_params(p, table)), C, self.stm)

    def amplitude(self, p):
        return jnp.where(self.stm, p["Cv"], p["kv"])

    def material_of(self, p) -> Material:
        if not self.velocity_free:
            return self.material
        a = self.amplitude(p)
        return _replace(self.material, v_l=a, v_t=a)

    def extra_scattering(self, p):
        """Rayleigh + boundary inverse mean free path (1/m) at phonon energies in K."""
        lb = p["l_b_v2" if self.velocity_free else "l_b"]
        on = jnp.isfinite(lb)  # absent: l_b = inf (double where: no NaN gradients)
        safe = jnp.where(on, lb, 1.0)
        if self.velocity_free:
            a2 = jnp.square(self.amplitude(p))
            ray, inv_lb = p["rayleigh_v2"] / a2, jnp.where(on, 1.0 / (a2 * safe), 0.0)
        else:
            ray, inv_lb = p["rayleigh"], jnp.where(on, 1.0 / safe, 0.0)

        def fn(e_K):
            return ray * jnp.square(jnp.square(e_K)) + inv_lb

        return fn

    def log_kappa(self, p, T, extra=True):
        """ln kappa(T); `extra` (a bool or 0/1 array) switches the boundary and Rayleigh
        terms on or off."""
        fn = self.extra_scattering(p)
        k = thermal_conductivity(self.tls(p), self.material_of(p), T,
                                 extra_scattering=lambda e: fn(e) * extra)
        return jnp.log(k)

    def log_qinv(self, p):
        q = _qinv(self.tls(p), self.material_of(p), self.q_T, self.omega,
                  polarization=self.polarization)[:, 0]
        return jnp.log(q)

    def __call__(self, p):
        with checked_inputs():  # T, q_T, omega: checked in __check_init__
            r = (self.log_kappa(p, self.T) - self.log_y) * self.scale
            if self.q_T is not None:
                r = jnp.concatenate([r, (self.log_qinv(p) - self.q_log_y) * self.q_scale])
        return r

    def crossovers(self, p):
        """(T_U full, T_U shortcut) in K (inf where none on the table's grid)."""
        table = self.table_for(p)
        return table_crossover(table.with_params(self.model_params(p, table)))


def check_grids(values, where: str, name: str = "T") -> None:
    """Check a temperature (`name="T"`) or angular-frequency grid as the observable
    `where` would, before anything is traced (an empty grid: nothing to check). The fit's
    compiled functions trust these grids (`checked_inputs`), so a traced one is refused."""
    if is_traced(values):
        raise ValueError(f"`{where}({name}=...)` of a fit must be a concrete array (it is "
                         "checked before compiling)")
    if np.size(values) == 0:
        return
    (_temperatures if name == "T" else _omegas)(where, values)


#: Points of the temperature grid of `evaluate` (the model curves of the figure).
GRID_POINTS = 32


def evaluate(model: KappaModel, p, grid, energies):
    """What the starting values and the post-fit stage need, in one compiled call
    (every separately compiled function costs about a second on a CPU).

    **Arguments:** the model, a dict of scalar arrays `p`, a temperature `grid`
    (`GRID_POINTS` values) and a few phonon `energies` in K.

    **Returns:** dict with `log_kappa` (on the grid, with the boundary and Rayleigh
    terms), `log_kappa_tls` (without them), `strength` (C at `energies`), `T_U`
    (shortcut, full criterion, in K), `T_U_grad` (their gradients, a dict over `p`),
    `J0` (J_o in K: the parameter, or from T_U where `use_tu`) and `kappa_T2` (the T^2 law
    of the constant C = `strength[0]`, resonant scattering alone, on the grid).
    """
    check_grids(grid, "thermal_conductivity")  # before compiling: see `KappaModel.__call__`
    return _evaluate(model, p, grid, energies)


def prefetch_evaluate(model: KappaModel, p, grid, energies) -> None:
    """Start making `evaluate`'s program for such arguments (`stored_jit.prefetch`)."""
    check_grids(grid, "thermal_conductivity")
    _evaluate.prefetch(model, p, grid, energies)


@stored_jit(compiler_options=QUICK_COMPILE)
def _evaluate(model: KappaModel, p, grid, energies):
    with checked_inputs():  # the model's grids and `grid`: checked before tracing
        return _evaluate_body(model, p, grid, energies)


def _evaluate_body(model: KappaModel, p, grid, energies):
    both = jax.vmap(lambda e: model.log_kappa(p, grid, e))(jnp.asarray([1.0, 0.0]))

    def tu(q):
        full, short = model.crossovers(q)
        return jnp.stack([short, full])

    strength = model.tls(p).tunneling_strength(energies)
    return dict(log_kappa=both[0], log_kappa_tls=both[1], strength=strength, T_U=tu(p),
                T_U_grad=jax.jacrev(tu)(p), J0=model.j0(p),
                kappa_T2=thermal_conductivity_closed_form(strength[0], model.material_of(p),
                                                          grid))
