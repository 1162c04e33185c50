"""The S-tau C(E) tabulated once per (a~, h_rel), for fast fits.

`StauTLS` evaluates the soft-Theta P_S(E) and the kernel density phi_tau(E) afresh at
every energy of every quadrature (a kappa(T) on 20 temperatures needs ~5000 energies).
Both depend on E only through eps = E / (g J_o), and not at all on g, J_o or
kappa_log (docs/conventions.md section 4), so a fit can tabulate log P_S and log phi_tau on a
log-spaced eps grid once and interpolate. The tables hold values and exact slopes
d/d(ln eps) (forward-mode derivative at each node), and the interpolant is the cubic
Hermite spline in ln eps: continuous first derivatives, so gradients and Hessians
with respect to g and J_o are smooth. Outside the grid both logs continue linearly
in ln eps with the end slopes (flat phi_tau and a power-law gap of P_S below; P_S -> 1
above). The tabulation is differentiable in a~ and h_rel (through `StauDOS`).

`tests/test_fit.py` checks kappa(T) from the table against `StauTLS` directly.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._validate import (
    check_int,
    check_range,
    checked_inputs,
    device_array,
    is_traced,
    nested_program,
)
from .._xla import TABLE_COMPILE, quick_compile_wanted
from ..model._params import ModelParams
from ..model._theta import SoftTheta
from ._dos import StauDOS, log_phi_s
from ._tls import AbstractTLS

#: Default grid of the tables: eps = E / (g J_o) from 1e-3 to 1e3, 321 nodes. Below the
#: grid ln P_S continues with its end slope (a power-law gap); a sample in which some S
#: spin has E_min <= 0 has instead a plateau P_S ~ 1/N there, which the table does not
#: follow (kappa at 0.05 K then differs by ~2.5e-4 relative in the fit tests' sample).
DEFAULT_EPS_MIN = 1e-3
DEFAULT_EPS_MAX = 1e3
DEFAULT_TABLE_POINTS = 321


def _hermite(x, xs, ys, ds):
    """Cubic Hermite interpolation on a uniform grid xs; linear beyond its ends."""
    h = xs[1] - xs[0]
    n = xs.shape[0]
    xc = jnp.clip(x, xs[0], xs[-1])
    i = jnp.clip(jnp.floor((xc - xs[0]) / h).astype(jnp.int32), 0, n - 2)
    t = (xc - xs[i]) / h
    t2, t3 = t * t, t * t * t
    inside = ((2 * t3 - 3 * t2 + 1) * ys[i] + (t3 - 2 * t2 + t) * h * ds[i]
              + (-2 * t3 + 3 * t2) * ys[i + 1] + (t3 - t2) * h * ds[i + 1])
    below = ys[0] + ds[0] * (x - xs[0])
    above = ys[-1] + ds[-1] * (x - xs[-1])
    return jnp.where(x < xs[0], below, jnp.where(x > xs[-1], above, inside))


class TabulatedStauTLS(AbstractTLS):
    """`StauTLS` with log P_S and log phi_tau interpolated from tables (see module doc).

    **Fields:**

    - `log_eps`: (m,) uniform grid of ln(E / g J_o).
    - `log_p_s`, `d_log_p_s`: ln P_S at the nodes and its slope d/d(ln eps).
    - `log_phi_tau`, `d_log_phi_tau`: ln phi_tau at the nodes and its slope.
    - `params`: `ModelParams` (g, J0 in K, kappa_log used here).
    - `e_tau_mean`: <E_tau> of the sample in units of g J_o (None if unknown).
    """

    log_eps: Float[Array, " m"]
    log_p_s: Float[Array, " m"]
    d_log_p_s: Float[Array, " m"]
    log_phi_tau: Float[Array, " m"]
    d_log_phi_tau: Float[Array, " m"]
    params: ModelParams
    e_tau_mean: Float[Array, ""] | None = None

    def with_params(self, params: ModelParams) -> TabulatedStauTLS:
        """The same tables with other g, J_o, kappa_log (a~, h_rel must not change)."""
        return TabulatedStauTLS(self.log_eps, self.log_p_s, self.d_log_p_s,
                                self.log_phi_tau, self.d_log_phi_tau, params,
                                self.e_tau_mean)

    def interp_log_p_s(self, x):
        """ln P_S at x = ln(E / g J_o) (cubic Hermite; linear in x beyond the grid)."""
        return jnp.minimum(_hermite(x, self.log_eps, self.log_p_s, self.d_log_p_s), 0.0)

    def interp_log_phi_tau(self, x):
        """ln phi_tau at x = ln(E / g J_o)."""
        return _hermite(x, self.log_eps, self.log_phi_tau, self.d_log_phi_tau)

    def _logs(self, energies_K):
        p = self.params
        e = jnp.asarray(energies_K)
        eps = e / (p.g * p.J0)
        tiny = jnp.finfo(eps.dtype).tiny
        x = jnp.log(jnp.maximum(eps, tiny))
        return e, self.interp_log_p_s(x), self.interp_log_phi_tau(x)

    def strength_parts(self, energies_K):
        p = self.params
        e, lps, lpt = self._logs(energies_K)
        c_tau = p.kappa_log * p.g * jnp.exp(lpt)
        c_s = p.kappa_log * jnp.exp(lps + log_phi_s(e / p.J0))
        return jnp.stack([c_tau, c_s])

    def log_strength_parts(self, energies_K):
        p = self.params
        e, lps, lpt = self._logs(energies_K)
        return jnp.stack([jnp.log(p.kappa_log * p.g) + lpt,
                          jnp.log(p.kappa_log) + lps + log_phi_s(e / p.J0)])

    def coupling_scales(self):
        g = self.params.g
        return jnp.stack([g**2, jnp.ones_like(g)])


def tabulate_stau(dos: StauDOS, params: ModelParams, *, eps_min: float = DEFAULT_EPS_MIN,
                  eps_max: float = DEFAULT_EPS_MAX,
                  points: int = DEFAULT_TABLE_POINTS) -> TabulatedStauTLS:
    """Tabulate the C(E) of `StauTLS(dos, params)` for fast evaluation.

    **Arguments:**

    - `dos`: the `StauDOS` (built at the a~, h_rel of the model).
    - `params`: `ModelParams` (g, J0, kappa_log; may be changed later by `with_params`).
    - `eps_min`, `eps_max`: grid range in E / (g J_o) (0 < eps_min < eps_max).
    - `points`: number of nodes (>= 4).

    **Returns:** a `TabulatedStauTLS`.
    """
    check_range("tabulate_stau", "eps_min", eps_min, 0.0, lo_open=True)
    check_range("tabulate_stau", "eps_max", eps_max, eps_min, lo_open=True)
    points = check_int("tabulate_stau", "points", points, 4)
    xs = jnp.linspace(math.log(eps_min), math.log(eps_max), points)
    if is_traced(dos):  # inside a trace (e.g. a~ free in a fit): no nested compilation
        lps, dlps, lpt, dlpt = _tables(dos, xs)
    else:
        if not dos.is_hard:  # the run-time checks of P_S, here at once (see `_tables_jit`),
            host = jax.tree_util.tree_map(np.asarray, dos.es)  # on the host (nothing compiled)
            for r in range(dos.realizations):
                SoftTheta(dos.width)._parts(jax.tree_util.tree_map(lambda a, r=r: a[r], host))
        tables = _tables_jit_quick if quick_compile_wanted() else _tables_jit
        lps, dlps, lpt, dlpt = tables(dos, xs)
    return TabulatedStauTLS(xs, lps, dlps, lpt, dlpt, params, dos.e_tau_mean)


def _tables(dos: StauDOS, xs, log_p_s=None, log_phi_tau=None):
    ones = jnp.ones_like(xs)
    lps, dlps = jax.jvp(lambda x: (log_p_s or dos.log_p_s)(jnp.exp(x)), (xs,), (ones,))
    lpt, dlpt = jax.jvp(lambda x: (log_phi_tau or dos.log_phi_tau)(jnp.exp(x)), (xs,), (ones,))
    return lps, dlps, lpt, dlpt


def _tables_body(dos: StauDOS, xs):
    """`_tables` compiled once per sample shape (op-by-op dispatch of the same work takes
    seconds), without run-time checks: `tabulate_stau` checked the DOS before, so that
    JAX's persistent compilation cache can store the program. The bodies, not the
    compiled `log_p_s` / `log_phi_tau`, so that no trace without checks is shared."""
    with checked_inputs():
        return _tables(dos, xs, dos.log_p_s_body, dos.log_phi_tau_body)


_tables_jit = eqx.filter_jit(_tables_body)
#: The same with `tlsjax._xla.TABLE_COMPILE`, where `quick_compile()` asks for it.
_tables_jit_quick = eqx.filter_jit(_tables_body, compiler_options=TABLE_COMPILE)


# ---------------------------------------------------------------- crossovers from the table


def _refine_root(fn, theta, x0):
    """One Newton step at the (gradient-stopped) root x0 of fn(., theta): the value is x0
    to first order, and its derivative with respect to theta is the implicit-function
    one, -(d fn / d theta) / (d fn / d x)."""
    x0 = jax.lax.stop_gradient(x0)
    f, df = jax.jvp(lambda x: fn(x, theta), (x0,), (jnp.ones_like(x0),))
    df = jax.lax.stop_gradient(df)
    safe = jnp.where(df != 0, df, 1.0)
    return x0 - jnp.where(df != 0, f / safe, 0.0)


def _bracketed_root(fn, theta, xs, values):
    """The first root of fn(., theta) on the grid xs (where values = fn(xs, theta) first
    changes sign from the sign of values[0]): 40 bisections in that cell, run on
    stop-gradient copies (nothing to differentiate there), then a Newton refinement that
    carries the derivative. Returns (x, found)."""
    theta_c, values = jax.lax.stop_gradient((theta, values))
    s0 = jnp.sign(values[0])
    changed = jnp.sign(values) != s0
    found = jnp.any(changed)
    i = jnp.clip(jnp.argmax(changed), 1, xs.shape[0] - 1)

    def body(_, b):
        a, c = b
        m = 0.5 * (a + c)
        same = jnp.sign(fn(m, theta_c)) == s0
        return jnp.where(same, m, a), jnp.where(same, c, m)

    lo, hi = jax.lax.fori_loop(0, 40, body, (xs[i - 1], xs[i]))
    return _refine_root(fn, theta, 0.5 * (lo + hi)), found


def shortcut_log_eps(tab: TabulatedStauTLS, g) -> Float[Array, ""]:
    """ln(T_U / g J_o) of the paper's criterion P_S(T_U) = 5 g, from the table.

    Depends on g only (P_S is a function of E / g J_o). Below the grid the table's
    linear continuation of ln P_S is used; differentiable in g (implicit function).
    """
    return _shortcut_log_eps(tab, _array(g))


def _array(g):
    """g as an array: a Python number would be a static argument of the nested programs
    below, traced and compiled again for every value."""
    return g if isinstance(g, jax.Array) else device_array(g)


# The roots are nested programs: a fit's model finds J_o from T_U in every evaluation,
# and a compiled loss, its gradient and the post-fit stage would otherwise trace the
# bisection anew each time.
@nested_program
def _shortcut_log_eps(tab: TabulatedStauTLS, g) -> Float[Array, ""]:
    target = jnp.log(5.0 * g)

    def fn(x, t):
        tab_, target_ = t
        return tab_.interp_log_p_s(x) - target_

    x, found = _bracketed_root(fn, (tab, target), tab.log_eps, tab.log_p_s - target)
    below = tab.log_eps[0] + (target - tab.log_p_s[0]) / jnp.maximum(tab.d_log_p_s[0], 1e-30)
    return jnp.where(found, x, jnp.where(tab.log_p_s[0] > target, below, jnp.inf))


def full_log_eps(tab: TabulatedStauTLS, g) -> Float[Array, ""]:
    """ln(T_U / g J_o) of the full criterion g phi_tau(E / g J_o) = P_S(E) phi_S(E / J_o),
    from the table (depends on g only); +inf where the S term never takes over on the grid."""
    return _full_log_eps(tab, _array(g))


@nested_program
def _full_log_eps(tab: TabulatedStauTLS, g) -> Float[Array, ""]:
    def fn(x, t):
        tab_, g_ = t
        return (jnp.log(g_) + tab_.interp_log_phi_tau(x) - tab_.interp_log_p_s(x)
                - log_phi_s(jnp.exp(x) * g_))

    values = jax.vmap(lambda x: fn(x, (tab, g)))(tab.log_eps)
    x, found = _bracketed_root(fn, (tab, g), tab.log_eps, values)
    return jnp.where(found & (values[0] > 0), x, jnp.inf)


def table_crossover(tab: TabulatedStauTLS) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """(T_U full, T_U shortcut) in kelvin from the table at `tab.params` (see
    `crossover` for the definitions); inf where there is no crossover on the grid."""
    p = tab.params
    gJ0 = p.g * p.J0
    return gJ0 * jnp.exp(full_log_eps(tab, p.g)), gJ0 * jnp.exp(shortcut_log_eps(tab, p.g))
