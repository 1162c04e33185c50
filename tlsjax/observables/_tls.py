"""Tunneling-strength models: what the phonons see, C(E), split into TLS populations.

The standard-tunneling-model observables (`_stm.py`) are written once, for any
`AbstractTLS`: a list of populations p, each with a tunneling strength C_p(E) (for
transverse phonons) and a coupling scale s_p = gamma_p^2 / gamma_t^2 that multiplies
its one-phonon relaxation rate. The plain model is one population with constant C and
s = 1; the S-tau model (`_dos.StauTLS`) has tau TLSs (s = g^2) and S TLSs (s = 1).

Convention (docs/conventions.md section 5): C here is the transverse tunneling strength C_t;
the longitudinal one is C_l = C_t (gamma_l / gamma_t)^2 (v_t / v_l)^2, which equals C_t
for the default `Material(gamma_ratio=None)`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._validate import check_range

#: Range of a constant tunneling strength. C >= 1 would mean l / lambda =
#: 1 / (2 pi^2 C) < 0.05: phonons would not propagate (Ioffe-Regel) and the resonant
#: scattering formulas would not apply; below 1e-30 TLS scattering is off for every
#: purpose, and C itself would leave float32's normal range (1.2e-38) in products.
C_MIN, C_MAX = 1e-30, 1.0
C_REASON = ("glasses have C ~ 3e-4; C ~ 1 means l / lambda ~ 0.05, where phonons no longer "
            "propagate, and below 1e-30 TLS scattering is off for every purpose")


class AbstractTLS(eqx.Module):
    """A tunneling-strength model C(E) made of populations (see the module docstring)."""

    def strength_parts(self, energies_K: Float[Array, "*shape"]) -> Float[Array, " p *shape"]:
        """C_p(E) of each population p at energies E given in kelvin (E / k_B)."""
        raise NotImplementedError

    def log_strength_parts(self, energies_K: Float[Array, "*shape"]) -> Float[Array, " p *shape"]:
        """ln C_p(E): what the observables integrate, so that tiny or huge C(E) never
        under- or overflows float32 on the way (override where the logs come cheaper)."""
        return jnp.log(self.strength_parts(energies_K))

    def coupling_scales(self) -> Float[Array, " p"]:
        """s_p = gamma_p^2 / gamma_t^2, the factor on each population's relaxation rate."""
        raise NotImplementedError

    def tunneling_strength(self, energies_K: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        """The total C(E) = sum_p C_p(E) at energies in kelvin."""
        return jnp.sum(self.strength_parts(energies_K), axis=0)

    def log_tunneling_strength(self, energies_K: Float[Array, "*shape"]
                               ) -> Float[Array, "*shape"]:
        """ln C(E) = ln sum_p C_p(E), computed from the logs of the parts."""
        return jax.nn.logsumexp(self.log_strength_parts(energies_K), axis=0)


class ConstantC(AbstractTLS):
    """The plain standard tunneling model: one population, C(E) = C, s = 1.

    **Fields:**

    - `C`: the (transverse) tunneling strength, in [`C_MIN`, `C_MAX`] = [1e-30, 1]
      (glasses: ~3e-4).
    """

    C: Float[Array, ""]

    def __init__(self, C):
        self.C = check_range("ConstantC", "C", C, C_MIN, C_MAX, reason=C_REASON)

    def strength_parts(self, energies_K):
        e = jnp.asarray(energies_K)
        return jnp.broadcast_to(self.C, e.shape)[None]

    def log_strength_parts(self, energies_K):
        e = jnp.asarray(energies_K)
        return jnp.broadcast_to(jnp.log(self.C), e.shape)[None]

    def coupling_scales(self):
        return jnp.ones((1,), dtype=jnp.result_type(self.C))
