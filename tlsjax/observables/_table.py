"""The S-tau C(E) tabulated once per (a~, h_rel), for fast fits.

`StauTLS` evaluates the soft-Theta P_S(E) and the kernel density phi_tau(E) afresh at
every energy of every quadrature (a kappa(T) on 20 temperatures needs ~5000 energies).
Both depend on E only through eps = E / (g J_o), and not at all on g, J_o or
kappa_log (MODEL.md section 4), so a fit can tabulate log P_S and log phi_tau on a
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

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._validate import check_int, check_range
from ..model._params import ModelParams
from ._dos import StauDOS, log_phi_s
from ._tls import AbstractTLS

#: Default grid of the tables: eps = E / (g J_o) from 1e-3 to 1e3, 321 nodes.
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
    """

    log_eps: Float[Array, " m"]
    log_p_s: Float[Array, " m"]
    d_log_p_s: Float[Array, " m"]
    log_phi_tau: Float[Array, " m"]
    d_log_phi_tau: Float[Array, " m"]
    params: ModelParams

    def with_params(self, params: ModelParams) -> TabulatedStauTLS:
        """The same tables with other g, J_o, kappa_log (a~, h_rel must not change)."""
        return TabulatedStauTLS(self.log_eps, self.log_p_s, self.d_log_p_s,
                                self.log_phi_tau, self.d_log_phi_tau, params)

    def _logs(self, energies_K):
        p = self.params
        e = jnp.asarray(energies_K)
        eps = e / (p.g * p.J0)
        tiny = jnp.finfo(eps.dtype).tiny
        x = jnp.log(jnp.maximum(eps, tiny))
        lps = jnp.minimum(_hermite(x, self.log_eps, self.log_p_s, self.d_log_p_s), 0.0)
        lpt = _hermite(x, self.log_eps, self.log_phi_tau, self.d_log_phi_tau)
        return e, lps, lpt

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
    ones = jnp.ones_like(xs)
    lps, dlps = jax.jvp(lambda x: dos.log_p_s(jnp.exp(x)), (xs,), (ones,))
    lpt, dlpt = jax.jvp(lambda x: dos.log_phi_tau(jnp.exp(x)), (xs,), (ones,))
    return TabulatedStauTLS(xs, lps, dlps, lpt, dlpt, params)
