"""The host material: density, sound velocities and deformation potentials, in SI units.

No material presets are shipped: every number of a preset would need a citation next
to it, and none is needed by the model, so the user supplies them (docs/conventions.md section 5).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._validate import check_range, is_traced

#: Joules per electronvolt (exact, SI 2019).
EV = 1.602176634e-19
#: Boltzmann constant in J/K (exact, SI 2019).
K_B = 1.380649e-23
#: Reduced Planck constant in J s (h / 2 pi, h exact in SI 2019).
HBAR = 6.62607015e-34 / (2.0 * math.pi)

#: Default transverse deformation potential gamma_t, in eV. This is an order of
#: magnitude, not a measurement: deformation potentials of glasses are ~1 eV (Phillips,
#: Rep. Prog. Phys. 50, 1657 (1987)). It only enters the relaxation rate (Q^-1_rel,
#: Delta v/v relaxation part, the TLS specific heat's ln(t/tau_min) and P = C rho v^2 /
#: gamma^2); pass your own.
DEFAULT_GAMMA_T_EV = 1.0

#: EV^2 k_B^3 / (2 pi hbar^4): turns (gamma[eV]^2 / v^5) / rho into A k_B^3 (K^-3 s^-1).
_A_CONST = EV**2 * K_B**3 / (2.0 * math.pi * HBAR**4)


def _check_velocity_order(v_l, v_t):
    """v_l >= v_t: in an isotropic solid v_l^2 - (4/3) v_t^2 = K / rho > 0 (K the bulk
    modulus), so longitudinal sound is the faster; v_l = v_t is allowed as the
    one-velocity Debye idealization (used by velocity-free fits)."""
    msg = ("`Material(v_l=..., v_t=...)`: v_l must be >= v_t (longitudinal sound is faster "
           "than transverse: v_l^2 - 4/3 v_t^2 = K/rho > 0); were they swapped?")
    if is_traced(v_l) or is_traced(v_t):
        return eqx.error_if(v_l, v_l < v_t, msg), v_t
    if float(v_l) < float(v_t):
        raise ValueError(f"{msg} Got v_l = {float(v_l):g}, v_t = {float(v_t):g} m/s")
    return v_l, v_t


class Material(eqx.Module):
    """An isotropic host (Debye phonons, two polarizations alpha = l, t), SI units.

    **Fields:**

    - `rho`: mass density in kg/m^3 (> 0).
    - `v_l`, `v_t`: longitudinal and transverse sound velocities in m/s (> 0,
      v_l >= v_t; physically v_l > (2/sqrt 3) v_t, equality is the one-velocity Debye
      idealization).
    - `gamma_ratio`: gamma_l / gamma_t, the ratio of the deformation potentials (> 0).
      Default (`None`): v_l / v_t, which makes C_l = C_t (a convention of this package:
      the model gives a single C, see `tunneling_strengths`).
    - `gamma_t`: transverse deformation potential in eV (> 0), default
      `DEFAULT_GAMMA_T_EV` = 1 eV (an order of magnitude, not a measurement). In the
      S-tau model this is gamma_S, the strong coupling of the S TLSs; the tau TLSs
      couple with g gamma_S.
    - `rayleigh`: A_R of the Rayleigh term l^-1 = A_R omega^4, in s^4/m (>= 0; default 0),
      the same for both polarizations.
    - `boundary`: boundary (Casimir) mean free path l_b in m (> 0; default inf = none).

    Concrete values are checked on construction (`ValueError` naming the field); traced
    values get run-time checks (`eqx.error_if`).
    """

    rho: Float[Array, ""]
    v_l: Float[Array, ""]
    v_t: Float[Array, ""]
    gamma_ratio: Float[Array, ""]
    gamma_t: Float[Array, ""]
    rayleigh: Float[Array, ""]
    boundary: Float[Array, ""]

    def __init__(self, rho, v_l, v_t, gamma_ratio=None, gamma_t=DEFAULT_GAMMA_T_EV,
                 rayleigh=0.0, boundary=math.inf):
        self.rho = check_range("Material", "rho", rho, 0.0, lo_open=True)
        self.v_l = check_range("Material", "v_l", v_l, 0.0, lo_open=True)
        self.v_t = check_range("Material", "v_t", v_t, 0.0, lo_open=True)
        self.v_l, self.v_t = _check_velocity_order(self.v_l, self.v_t)
        if gamma_ratio is None:
            gamma_ratio = _ratio(self.v_l, self.v_t)
        self.gamma_ratio = check_range("Material", "gamma_ratio", gamma_ratio, 0.0,
                                       lo_open=True)
        self.gamma_t = check_range("Material", "gamma_t", gamma_t, 0.0, lo_open=True)
        self.rayleigh = check_range("Material", "rayleigh", rayleigh, 0.0)
        if not is_traced(boundary) and math.isinf(float(boundary)) and float(boundary) > 0:
            self.boundary = jnp.asarray(math.inf)
        else:
            self.boundary = check_range("Material", "boundary", boundary, 0.0, lo_open=True)

    @property
    def velocities(self) -> Float[Array, " 2"]:
        """(v_l, v_t) in m/s."""
        return jnp.stack([self.v_l, self.v_t])

    @property
    def weights(self) -> Float[Array, " 2"]:
        """Number of branches per polarization: (1, 2)."""
        return jnp.asarray([1.0, 2.0], dtype=jnp.result_type(self.v_l))

    @property
    def gammas_eV(self) -> Float[Array, " 2"]:
        """(gamma_l, gamma_t) in eV."""
        return jnp.stack([self.gamma_ratio * self.gamma_t, self.gamma_t])

    @property
    def strength_factors(self) -> Float[Array, " 2"]:
        """C_alpha / C_t = (gamma_alpha / gamma_t)^2 (v_t / v_alpha)^2, for alpha = (l, t).

        From C_alpha = P gamma_alpha^2 / (rho v_alpha^2) (docs/conventions.md section 5).
        """
        return jnp.stack([(self.gamma_ratio * self.v_t / self.v_l) ** 2,
                          jnp.ones_like(self.v_t)])

    @property
    def relaxation_A_K(self) -> Float[Array, ""]:
        """A k_B^3, in K^-3 s^-1: the one-phonon rate is tau^-1 = r A_K E^3 coth(E / 2 T)
        with E and T in kelvin.

        A = (gamma_l^2 / v_l^5 + 2 gamma_t^2 / v_t^5) / (2 pi rho hbar^4) (docs/conventions.md
        section 5), with the deformation potentials of `gammas_eV`. The SI constants are
        combined in Python floats first, so the result is finite in float32 too.
        """
        g = self.gammas_eV
        return _A_CONST * (g[0] ** 2 / self.v_l**5 + 2.0 * g[1] ** 2 / self.v_t**5) / self.rho

    def density_of_states_P(self, C) -> Float[Array, " ..."]:
        """P = C rho v_t^2 / gamma_t^2 in J^-1 m^-3 for a transverse tunneling strength C
        (~1e44-1e45 for glasses: overflows float32, use float64 for this number)."""
        return C * self.rho * self.v_t**2 / (self.gamma_t * EV) ** 2


def _ratio(a, b):
    """a / b as JAX computes it (dtype and weak type), with NumPy where both are concrete:
    nothing to compile (an op-by-op division compiles a small program)."""
    if is_traced(a) or is_traced(b):
        return a / b
    out = jax.eval_shape(jnp.divide, a, b)  # JAX's result type (traced, not compiled)
    if out.weak_type and out.dtype != jnp.result_type(float):
        return a / b  # a weak type NumPy cannot carry (e.g. weak float32 under x64)
    q = np.asarray(a, out.dtype) / np.asarray(b, out.dtype)  # the same IEEE division
    return float(q) if out.weak_type else q
