"""Model parameters of the S-tau model (Schechter & Stamp 2013, Eqs. 1-3)."""

from __future__ import annotations

import equinox as eqx
from jaxtyping import Array, Float

from .._validate import check_range

DEFAULT_G = 0.02
DEFAULT_J0_K = 500.0
DEFAULT_ATILDE = 3.0
DEFAULT_KAPPA_LOG = 0.1
#: Largest cutoff a~ accepted, in units of a_o. a~ is a short-distance cutoff of the
#: dipolar couplings, of the order of the lattice spacing (the paper scans 0..6). At
#: 1e3 a_o it exceeds the box of every sample that fits in memory (L = 100 fcc cells:
#: box 141 a_o), so the couplings no longer depend on distance (to (box / a~)^3 < 3e-3)
#: and larger values only shrink the overall scale R_o^3 / a~^3, whose cube leaves the
#: float32 range beyond a~ ~ 1e12 (then <E_tau> = 0 and T_U = inf or nan).
ATILDE_MAX = 1e3
ATILDE_REASON = ("a~ is a short-distance cutoff of order a_o; beyond 1e3 a_o it exceeds "
                 "every sample's box and only rescales the couplings, whose scale "
                 "R_o^3 / a~^3 then leaves float32's range")


class ModelParams(eqx.Module):
    """Parameters of the S-tau Hamiltonian, Eq. (1)-(2) of the paper.

    **Fields:**

    - `g`: ratio gamma_tau / gamma_S of the tau and S phonon couplings, in (0, 1).
      The paper's estimate is ~0.02.
    - `J0`: S-S coupling scale J_o at the mean impurity distance R_o, in kelvin (> 0);
      the paper's estimate is ~500 K. J^{S tau} = g J_o, J^{tau tau} = g^2 J_o.
    - `atilde`: short-distance cutoff a~ of the couplings R_o^3 / (R^3 + a~^3), in units
      of the nearest-neighbour distance a_o, in [0, `ATILDE_MAX` = 1e3]. The paper scans
      0..6; the default 3.0 is the middle of its "typical" range 1..6 (a convention of
      this package).
    - `h_rel`: width of the random field h^tau relative to <E_tau>_0 (>= 0); the paper's
      cases are 0, 0.3 and 1.
    - `kappa_log`: 1 / ln(Delta_o^u / Delta_o^l), in (0, 1]; ~0.1 (Eq. 3).

    Concrete values are validated on construction (`ValueError` naming the field);
    traced values get run-time checks. Fields may be arrays of equal shape, which is
    how a batch of parameter values is passed to `jax.vmap`.
    """

    g: Float[Array, "*batch"]
    J0: Float[Array, "*batch"]
    atilde: Float[Array, "*batch"]
    h_rel: Float[Array, "*batch"]
    kappa_log: Float[Array, "*batch"]

    def __init__(
        self,
        g=DEFAULT_G,
        J0=DEFAULT_J0_K,
        atilde=DEFAULT_ATILDE,
        h_rel=0.0,
        kappa_log=DEFAULT_KAPPA_LOG,
    ):
        self.g = check_range("ModelParams", "g", g, 0.0, 1.0, lo_open=True, hi_open=True)
        self.J0 = check_range("ModelParams", "J0", J0, 0.0, lo_open=True)
        self.atilde = check_range("ModelParams", "atilde", atilde, 0.0, ATILDE_MAX,
                                  reason=ATILDE_REASON)
        self.h_rel = check_range("ModelParams", "h_rel", h_rel, 0.0)
        self.kappa_log = check_range("ModelParams", "kappa_log", kappa_log, 0.0, 1.0,
                                     lo_open=True)

    def replace(self, **changes) -> ModelParams:
        """A copy with some fields changed (validated again)."""
        fields = dict(g=self.g, J0=self.J0, atilde=self.atilde, h_rel=self.h_rel,
                      kappa_log=self.kappa_log)
        unknown = set(changes) - set(fields)
        if unknown:
            raise ValueError(f"`ModelParams.replace` got unknown fields {sorted(unknown)}; "
                             f"allowed: {sorted(fields)}")
        fields.update(changes)
        return ModelParams(**fields)

    def checked(self) -> ModelParams:
        """The same parameters with run-time checks attached (for traced values)."""
        return self.replace()

    @property
    def C0(self) -> Float[Array, "*batch"]:
        """Universal tunneling strength C_o = kappa_log g (Eq. 3)."""
        return self.kappa_log * self.g

    @property
    def gJ0(self) -> Float[Array, "*batch"]:
        """The S-tau coupling scale g J_o in kelvin."""
        return self.g * self.J0
