"""Residuals of Q^-1(T) and Delta v/v(T), alone or jointly with kappa(T).

`CurvesModel` extends the kappa model of `_kappa_model.py` (same parameters, same
S-tau table, same choice between the S-tau C(E) and a constant C) with two further
channels, each measured at one frequency:

- **Q^-1(T)**, in log space: r_i = sqrt(w_i) (ln Q^-1_model(T_i) - ln Q^-1_i) / sigma_i,
  with Q^-1 = Q^-1_res + Q^-1_rel of `observables._stm.qinv`.
- **Delta v/v(T)**, linear: a measured shift is known up to its reference, so the model
  `sound_velocity_shift` (reference T_0 = the lowest measured temperature) plus a free
  offset c is compared with the data, r_i = sqrt(w_i) (model_i + c - y_i) / sigma_i.
  The offset is minimized out exactly: the residual vector is projected onto the n - 1
  directions orthogonal to the offset's (`dvv_basis`), which leaves n - 1 residuals with
  the same sum of squares as the best offset (so the degrees of freedom count it).

**What the data determine without a material.** Q^-1 and Delta v/v depend on C(E)
itself (dimensionless: C_o = kappa_log g, no velocity) and on the one-phonon relaxation
rate prefactor A k_B^3 (`A_rel`, 1/(s K^3)), which a material would give as
(gamma_l^2 / v_l^5 + 2 gamma_t^2 / v_t^5) / (2 pi rho hbar^4); kappa depends on
kappa_log v_eff (`kv`). So without a material the fit uses kappa_log (or C) and A_rel
for these channels, kv for kappa, and a joint fit with kappa also gives
v_eff = kv / kappa_log. With a material, A comes from it and kappa_log (or C) is shared
by every channel.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validate import checked_inputs
from ..observables._material import _A_CONST, Material
from ..observables._stm import qinv as _qinv
from ..observables._stm import sound_velocity_shift
from ._data import Curve
from ._disk_cache import stored_jit
from ._kappa_model import FitTLS, KappaModel, _replace, check_grids

#: Channels besides kappa, with their quantity in `load_curve`.
CHANNELS = ("qinv", "dvv")


class Channel(eqx.Module):
    """One measured curve at one frequency: Q^-1 (`y` = ln Q^-1) or Delta v/v (`y` as
    measured, with the projection `basis` that removes the offset)."""

    T: jax.Array
    y: jax.Array
    scale: jax.Array
    omega: jax.Array
    basis: jax.Array | None = None
    polarization: str = eqx.field(static=True, default="t")


def dvv_basis(scale: np.ndarray) -> np.ndarray:
    """An orthonormal (n, n - 1) basis of the vectors orthogonal to `scale` (the
    direction in which a constant offset moves the scaled residuals)."""
    q, _ = np.linalg.qr(np.asarray(scale, dtype=float)[:, None], mode="complete")
    return q[:, 1:]


def make_channel(curve: Curve, freq: float, sigma: np.ndarray, polarization: str = "t"
                 ) -> Channel:
    """The channel of a loaded Q^-1 or Delta v/v curve (sigma: per-point 1-sigma, of
    ln Q^-1 or of Delta v/v itself)."""
    scale = np.sqrt(curve.weight) / sigma
    omega = jnp.asarray([2.0 * math.pi * float(freq)])
    if curve.quantity == "qinv":
        return Channel(jnp.asarray(curve.T), jnp.asarray(np.log(curve.y)), jnp.asarray(scale),
                       omega, None, polarization)
    return Channel(jnp.asarray(curve.T), jnp.asarray(curve.y), jnp.asarray(scale), omega,
                   jnp.asarray(dvv_basis(scale)), polarization)


class CurvesModel(KappaModel):
    """Residuals of kappa (if `has_kappa`), Q^-1 and Delta v/v (where given), in that
    order, for a dict of parameters (module docstring)."""

    has_kappa: bool = eqx.field(static=True, default=True)
    qinv_ch: Channel | None = None
    dvv_ch: Channel | None = None

    def __check_init__(self):
        # checked here, once, so that the compiled residuals and `evaluate_curves` hold no
        # run-time checks (`checked_inputs`) and can be stored on disk
        for ch, where in ((self.qinv_ch, "qinv"), (self.dvv_ch, "sound_velocity_shift")):
            if ch is not None:
                check_grids(ch.T, where)
                check_grids(ch.omega, where, "omega")

    def curve_tls(self, p) -> FitTLS:
        """C(E) with the fitted kappa_log (S-tau) or C (constant C) itself."""
        table = self.table_for(p)
        mp = _replace(self.model_params(p, table), kappa_log=p["kappa_log"])
        return FitTLS(table.with_params(mp), p["C"], self.stm)

    def curve_material(self, p) -> Material:
        """The material of Q^-1 and Delta v/v: the given one, or without one unit
        density and velocities with the deformation potential that gives A k_B^3 = A_rel
        (A = 3 gamma^2 / (2 pi hbar^4) in these units; carried by gamma, not by rho:
        the gradient through 1/rho would square rho ~ 1e21, beyond float32)."""
        if not self.velocity_free:
            return self.material
        return _replace(self.material, gamma_t=jnp.sqrt(p["A_rel"] / (3.0 * _A_CONST)))

    def log_qinv_of(self, p, T, omega, polarization):
        q = _qinv(self.curve_tls(p), self.curve_material(p), T, omega,
                  polarization=polarization)
        return jnp.log(q[:, 0])

    def dvv_of(self, p, T, omega, polarization):
        """Delta v/v(T) - Delta v/v(T_0), T_0 the lowest temperature of the channel."""
        ch = self.dvv_ch
        return sound_velocity_shift(self.curve_tls(p), self.curve_material(p), T, omega,
                                    ch.T[0], polarization=polarization)[:, 0]

    def dvv_offset(self, p):
        """The best offset c (data = model + c) and the model at the data."""
        ch = self.dvv_ch
        m = self.dvv_of(p, ch.T, ch.omega, ch.polarization)
        s2 = ch.scale**2
        return jnp.sum(s2 * (ch.y - m)) / jnp.sum(s2), m

    def __call__(self, p):
        with checked_inputs():  # every grid: checked in __check_init__
            return self._residuals(p)

    def _residuals(self, p):
        parts = []
        if self.has_kappa:
            parts.append((self.log_kappa(p, self.T) - self.log_y) * self.scale)
        if self.qinv_ch is not None:
            ch = self.qinv_ch
            parts.append((self.log_qinv_of(p, ch.T, ch.omega, ch.polarization) - ch.y)
                         * ch.scale)
        if self.dvv_ch is not None:
            ch = self.dvv_ch
            m = self.dvv_of(p, ch.T, ch.omega, ch.polarization)
            parts.append(ch.basis.T @ ((m - ch.y) * ch.scale))
        return jnp.concatenate(parts)


def evaluate_curves(model: CurvesModel, p, grids: dict):
    """The model curves on `grids` (a dict over "kappa", "qinv", "dvv" of temperature
    grids, for the channels present), the Delta v/v offset, and T_U (shortcut, full; K)
    with its gradient: one compiled call for the post-fit stage (the grids are checked
    before it is traced)."""
    for k, grid in grids.items():
        check_grids(grid, {"kappa": "thermal_conductivity", "qinv": "qinv"}.get(
            k, "sound_velocity_shift"))
    return _evaluate_curves(model, p, grids)


@stored_jit
def _evaluate_curves(model: CurvesModel, p, grids: dict):
    with checked_inputs():  # the model's grids and `grids`: checked before tracing
        return _evaluate_curves_body(model, p, grids)


def _evaluate_curves_body(model: CurvesModel, p, grids: dict):
    out = {}
    if "kappa" in grids:
        out["kappa"] = jnp.exp(model.log_kappa(p, grids["kappa"]))
    if "qinv" in grids:
        ch = model.qinv_ch
        out["qinv"] = jnp.exp(model.log_qinv_of(p, grids["qinv"], ch.omega, ch.polarization))
    if "dvv" in grids:
        ch = model.dvv_ch
        c, m = model.dvv_offset(p)
        out["dvv_offset"] = c
        out["dvv_at_data"] = m + c
        out["dvv"] = model.dvv_of(p, grids["dvv"], ch.omega, ch.polarization) + c

    def tu(q):
        full, short = model.crossovers(q)
        return jnp.stack([short, full])

    out["T_U"] = tu(p)
    out["T_U_grad"] = jax.jacrev(tu)(p)
    return out
