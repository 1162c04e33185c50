"""The paper's three experimental regimes (Sec. III B) as model options.

Each regime turns one key into one realization's ES reduction (App. B 2) plus the
energy scales that put it in kelvin (`RegimeES`):

- `DiluteCrystal` (KBr_{1-x}CN_x, x << 1): fixed microscopic constants; the strain at an
  impurity comes only from the other impurities, so gamma_tau ~ x^{4/3} (Eq. A21) and
  J^SS(R_o) ~ x, J^Stau(R_o) ~ x^{7/3}. Two cutoff conventions: a~ fixed in lattice
  units (`cutoff="fixed"`, default: a~ / R_o, hence the reduction itself, changes with x)
  or a~ / R_o fixed (`cutoff="scaled"`: every energy scales with J^Stau(R_o), the
  paper's assumption).
- `MixedCrystal` ((KBr)_0.5(KCl)_0.5:CN): random fields h^S ~ J_o, h^tau ~ g J_o from
  the host lattice, independent of x; the CN-CN couplings are those of the concentrated
  crystal at x_c at every distance, so at the mean distance they scale as x / x_c.
- `DipolarDefects`: the concentrated crystal with electric dipole couplings J_ee added
  to the S-tau couplings (`_dipolar.py`).

Energies of the ES reduction are in units of the S-tau coupling scale of the
realization (`RegimeES.unit_K` kelvin); the ES result itself is in units of <E_tau>.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._validate import check_range, is_traced
from ._couplings import draw_couplings
from ._dipolar import ANGULAR_RMS, DipolarCouplings, DipolarSTauCouplings, dipolar_couplings
from ._es import ESResult, default_block_size, es_reduction, row_top, simulate, tau_field_sums
from ._lattice import Sample
from ._params import DEFAULT_ATILDE, DEFAULT_G, DEFAULT_J0_K, ModelParams

#: The dilute crystal's cutoff conventions: a~ fixed in units of a_o, or a~ / R_o fixed.
CUTOFFS = ("fixed", "scaled")

#: Reference concentration x_c: the lower edge of KBr:CN's universal window (0.2 < x < 0.7).
#: Below it gamma_tau ~ x^{4/3} (dilute crystal); the mixed crystal's strain equals the
#: pure crystal's at x_c.
DEFAULT_X_C = 0.2


class RegimeES(eqx.Module):
    """One realization's ES reduction with the scales that put it in kelvin.

    **Fields:**

    - `es`: the `ESResult` (energies in units of <E_tau>; `es.e_tau_mean` in units of
      `unit_K`).
    - `unit_K`: the S-tau coupling scale at R_o in kelvin (the unit of the couplings U_ij).
    - `g`: gamma_tau / gamma_S.
    - `J_S_K`: width of the mean-field S DOS, phi_S(E / J_S) / J_S per impurity (K).
    - `J_SS_K`: the S-S coupling scale at R_o (K); gamma_S^2 / (rho c^2 R_o^3), which turns
      a DOS per impurity into the tunneling strength C.
    - `J_S_nominal_K`: optional; where `J_S_K` is the consistent width (the S-S lattice
      sums of the sample, `DiluteCrystal`), the nominal J^SS(R_o) it replaces.
    - `tau_e_min`: optional (n,) ES estimate for the tau spins against each other
      (`DipolarDefects.simulate(tau_pairs=True)`), in units of <E_tau>; -inf on padding.
    """

    es: ESResult
    unit_K: Float[Array, ""]
    g: Float[Array, ""]
    J_S_K: Float[Array, ""]
    J_SS_K: Float[Array, ""]
    tau_e_min: Float[Array, " n"] | None = None
    J_S_nominal_K: Float[Array, ""] | None = None

    @property
    def e_tau_K(self) -> Float[Array, ""]:
        """<E_tau> in kelvin."""
        return self.es.e_tau_mean * self.unit_K


def _draw(sample: Sample, atilde, key: PRNGKeyArray):
    """Positions, S-tau couplings, h^tau normals and the c_ij subkey, split as `simulate`."""
    draw = draw_couplings(sample, atilde, key)
    return draw.couplings, draw.h_normals, draw.key_c


class DiluteCrystal(eqx.Module):
    """KBr_{1-x}CN_x at any x: fixed microscopic constants (Sec. III B, Eq. A21).

    J^SS(R_o) = J_nn x (J_nn: the S-S coupling at the nearest-neighbour distance a_o,
    R_o^3 = a_o^3 / x), g(x) = g_c (x / x_c)^{4/3} for x < x_c and g_c above
    (gamma_tau ~ x^{4/3}, Eq. A21, saturating once the disorder is strong), so
    J^Stau(R_o) = g(x) J_nn x ~ x^{7/3} below x_c. The defaults make x = x_c the package's
    default model (J_o = J_nn x_c = 500 K, g = 0.02: the paper's Fig. 2 sample).

    Cutoff conventions (`cutoff`): `"fixed"` keeps a~ = `atilde` a_o at every x, so
    a~ / R_o = atilde x^{1/3} shrinks toward small x and ~(a~ / R_o)^3 more neighbours
    add to each field; `"scaled"` keeps a~ / R_o at its value at x_c,
    a~(x) = atilde (x_c / x)^{1/3} a_o, so every energy scales with J^Stau(R_o).

    The S mean-field width `J_S_K` of `simulate` is consistent with the tau fields: the
    nominal J^SS(R_o) times the rms of the sample's tau fields over J^Stau(R_o) (both
    fields are the same lattice sum of R_o^3 / (R^3 + a~^3) times Normal(0, 1); the factor
    is sqrt(sum_i r_ij^2), ~1 at x_c, larger where a~ > R_o). The nominal width is kept
    as `RegimeES.J_S_nominal_K`.

    **Fields:**

    - `J_nn`: S-S coupling at the nearest-neighbour distance, K (> 0; default 2500).
    - `g_c`: g at and above x_c, in (0, 0.2) (default 0.02).
    - `x_c`: the concentration below which g ~ x^{4/3}, in (0, 1] (default 0.2).
    - `atilde`: cutoff a~ in units of a_o (at x_c with `cutoff="scaled"`; >= 0; default 3).
    - `cutoff`: `"fixed"` (default) or `"scaled"` (static).
    """

    J_nn: Float[Array, ""]
    g_c: Float[Array, ""]
    x_c: Float[Array, ""]
    atilde: Float[Array, ""]
    cutoff: str = eqx.field(static=True, default="fixed")

    def __init__(self, J_nn=DEFAULT_J0_K / DEFAULT_X_C, g_c=DEFAULT_G, x_c=DEFAULT_X_C,
                 atilde=DEFAULT_ATILDE, cutoff: str = "fixed"):
        self.J_nn = check_range("DiluteCrystal", "J_nn", J_nn, 0.0, lo_open=True)
        self.g_c = check_range("DiluteCrystal", "g_c", g_c, 0.0, 0.2, lo_open=True, hi_open=True)
        self.x_c = check_range("DiluteCrystal", "x_c", x_c, 0.0, 1.0, lo_open=True)
        self.atilde = check_range("DiluteCrystal", "atilde", atilde, 0.0)
        if cutoff not in CUTOFFS:
            raise ValueError(f"`DiluteCrystal(cutoff=...)` must be one of {CUTOFFS}; "
                             f"got {cutoff!r}")
        self.cutoff = cutoff

    def g(self, x) -> Float[Array, "*x"]:
        """g(x) = gamma_tau / gamma_S = g_c min(1, x / x_c)^{4/3}."""
        return self.g_c * jnp.minimum(1.0, jnp.asarray(x) / self.x_c) ** (4.0 / 3.0)

    def J_SS(self, x) -> Float[Array, "*x"]:
        """The S-S coupling scale at R_o, J_nn x (K)."""
        return self.J_nn * jnp.asarray(x)

    def J_Stau(self, x) -> Float[Array, "*x"]:
        """The S-tau coupling scale at R_o, g(x) J_nn x (K)."""
        return self.g(x) * self.J_SS(x)

    def atilde_at(self, x) -> Float[Array, "*x"]:
        """The cutoff a~ at concentration x, in units of a_o (see `cutoff`)."""
        if self.cutoff == "fixed":
            return self.atilde * jnp.ones_like(jnp.asarray(x, dtype=jnp.result_type(float)))
        return self.atilde * (self.x_c / jnp.asarray(x)) ** (1.0 / 3.0)

    def params(self, x: float) -> ModelParams:
        """The `ModelParams` of concentration x (g(x), J_o = J_nn x, a~ of `cutoff`)."""
        return ModelParams(g=self.g(x), J0=self.J_SS(x), atilde=self.atilde_at(x))

    def simulate(self, sample: Sample, key: PRNGKeyArray, **es_kwargs) -> RegimeES:
        """One realization: `simulate(sample, self.params(sample.x), key)` and its scales,
        with the consistent S width (see the class docstring)."""
        p = self.params(sample.x)
        es = simulate(sample, p, key, **es_kwargs)
        return RegimeES(es, p.gJ0, p.g, p.J0 * tau_field_rms(es), p.J0,
                        J_S_nominal_K=p.J0)


def tau_field_rms(es: ESResult) -> Float[Array, ""]:
    """rms of the tau fields |E_tau| over the sample, in units of the coupling scale
    (`es.e_tau` is in units of <E_tau>, `es.e_tau_mean` in units of the scale)."""
    n = es.n_sites.astype(es.e_tau.dtype)
    return es.e_tau_mean * jnp.sqrt(jnp.sum(jnp.where(es.mask, es.e_tau**2, 0.0)) / n)


class MixedCrystal(eqx.Module):
    """CN in a mixed host, (KBr)_0.5(KCl)_0.5:CN (Sec. III B).

    The host's strain sets gamma_S, gamma_tau and the random fields, the same for every
    CN concentration x: h^S_j ~ Normal(0, (h_S J_o)^2), h^tau_j ~ Normal(0, (h_tau g J_o)^2)
    (the widths of the full Hamiltonian's fields, docs/conventions.md section 6). The CN-CN couplings
    at a given distance are those of the concentrated crystal at x_c, so at the mean
    distance R_o they are J^SS = J_o x / x_c and J^Stau = g J_o x / x_c. (Eq. 2 with
    x-independent gamma's: only the spacing of the CNs changes.) The mean-field S width is
    J_o sqrt(h_S^2 + (x / x_c)^2) (field and S-S couplings; J_o at x_c by convention).

    **Fields:**

    - `g`, `J0` (K), `atilde` (a_o): the concentrated crystal's values at x_c.
    - `x_c`: the reference concentration, in (0, 1] (default 0.2).
    - `h_S`: S-field width in units of J_o (>= 0, default 1: "h^S <~ J_o").
    - `h_tau`: tau-field width in units of g J_o (> 0, default 1: "h^tau <~ g J_o").
    """

    g: Float[Array, ""]
    J0: Float[Array, ""]
    atilde: Float[Array, ""]
    x_c: Float[Array, ""]
    h_S: Float[Array, ""]
    h_tau: Float[Array, ""]

    def __init__(self, g=DEFAULT_G, J0=DEFAULT_J0_K, atilde=DEFAULT_ATILDE, x_c=DEFAULT_X_C,
                 h_S=1.0, h_tau=1.0):
        self.g = check_range("MixedCrystal", "g", g, 0.0, 0.2, lo_open=True, hi_open=True)
        self.J0 = check_range("MixedCrystal", "J0", J0, 0.0, lo_open=True)
        self.atilde = check_range("MixedCrystal", "atilde", atilde, 0.0)
        self.x_c = check_range("MixedCrystal", "x_c", x_c, 0.0, 1.0, lo_open=True)
        self.h_S = check_range("MixedCrystal", "h_S", h_S, 0.0)
        self.h_tau = check_range("MixedCrystal", "h_tau", h_tau, 0.0, lo_open=True)

    def simulate(self, sample: Sample, key: PRNGKeyArray, *, block_size: int | None = None
                 ) -> RegimeES:
        """One realization: ES reduction with couplings g J_o (x / x_c) c_ij r_ij and the field.

        In units of the coupling scale g J_o x / x_c the field width is h_tau x_c / x; it
        is passed as an absolute field (`es_reduction(field=...)`).
        """
        x = sample.x
        couplings, h_normals, _ = _draw(sample, self.atilde, key)
        field = self.h_tau * (self.x_c / x)
        es = es_reduction(couplings, h_normals, field=field * h_normals, block_size=block_size)
        scale = self.x_c / x
        return RegimeES(es, self.g * self.J0 / scale, self.g,
                        self.J0 * jnp.sqrt(self.h_S**2 + 1.0 / scale**2), self.J0 / scale)


class DipolarDefects(eqx.Module):
    """The concentrated crystal with electric dipole couplings (Sec. III B).

    U_ij = g J_o c_ij r_ij + J_ee D^{S tau}_ij r'_ij (`DipolarSTauCouplings`), J_ee the
    dipolar strength at R_o. The mean-field S width grows with the S-S dipolar term (rms
    sqrt(2/3) J_ee, independent of the elastic J_o): J_S = J_o sqrt(1 + (2/3)(J_ee/J_o)^2).
    With J_ee = 0 the ES reduction is `simulate`'s for the same key, bit for bit.

    **Fields:**

    - `g`, `J0` (K), `atilde` (a_o): as in `ModelParams`.
    - `J_ee_over_gJ0`: J_ee / (g J_o) (>= 0; may be an array to `vmap` over).
    - `dipole_atilde`: cutoff a_d of the dipolar radial factor (default: `atilde`).
    """

    g: Float[Array, ""]
    J0: Float[Array, ""]
    atilde: Float[Array, ""]
    J_ee_over_gJ0: Float[Array, "*batch"]
    dipole_atilde: Float[Array, ""]

    def __init__(self, g=DEFAULT_G, J0=DEFAULT_J0_K, atilde=DEFAULT_ATILDE, J_ee_over_gJ0=0.0,
                 dipole_atilde=None):
        self.g = check_range("DipolarDefects", "g", g, 0.0, 0.2, lo_open=True, hi_open=True)
        self.J0 = check_range("DipolarDefects", "J0", J0, 0.0, lo_open=True)
        self.atilde = check_range("DipolarDefects", "atilde", atilde, 0.0)
        self.J_ee_over_gJ0 = check_range("DipolarDefects", "J_ee_over_gJ0", J_ee_over_gJ0, 0.0)
        self.dipole_atilde = (self.atilde if dipole_atilde is None else
                              check_range("DipolarDefects", "dipole_atilde", dipole_atilde, 0.0))

    @property
    def J_ee(self) -> Float[Array, "*batch"]:
        """J_ee in kelvin."""
        return self.J_ee_over_gJ0 * self.g * self.J0

    def simulate(self, sample: Sample, key: PRNGKeyArray, *, tau_pairs: bool = False,
                 block_size: int | None = None) -> RegimeES:
        """One realization with the dipolar S-tau term (orientations from the c_ij subkey).

        With `tau_pairs`, also the ES estimate of the tau DOS against the dipolar tau-tau
        couplings (App. B 1, Eq. B6): tau_i is pair-stable at energy E against tau_j iff
        E >= -2 s_i s_j J^tautau_ij - E_tau_j (docs/conventions.md section 6, fields from the S-tau
        couplings, s = -sign(field)); its least such E is `RegimeES.tau_e_min`. The elastic
        tau-tau coupling g^2 J_o is left out (it is below J_ee / 5 for J_ee >= 0.1 g J_o at
        g = 0.02; the full Hamiltonian has it).
        """
        ratio = self.J_ee_over_gJ0
        if is_traced(ratio):  # run-time check of a traced value (e.g. under vmap)
            ratio = check_range("DipolarDefects", "J_ee_over_gJ0", ratio, 0.0)
        couplings, h_normals, k_c = _draw(sample, self.atilde, key)
        dip = dipolar_couplings(couplings.realization, k_c, self.dipole_atilde)
        full = DipolarSTauCouplings(couplings.realization, couplings.amplitudes,
                                    couplings.atilde, dip, jnp.asarray(ratio))
        es = es_reduction(full, h_normals, 0.0, block_size=block_size)
        j_s = self.J0 * jnp.sqrt(1.0 + (ANGULAR_RMS * self.J_ee / self.J0) ** 2)
        tau_e_min = tau_pair_bound(full, es, block_size) if tau_pairs else None
        return RegimeES(es, self.g * self.J0, self.g, j_s, self.J0, tau_e_min)


def tau_pair_bound(couplings: DipolarSTauCouplings, es: ESResult,
                   block_size: int | None = None) -> Float[Array, " n"]:
    """ES bound of each tau spin against the dipolar tau-tau couplings (App. B 1).

    tau_i (pointing against its field, s_i = -sign E_tau_i) is pair-stable at energy E
    against tau_j iff E >= -2 s_i s_j J^tautau_ij - |E_tau_j| (docs/conventions.md section 6 in the
    local-field convention); the least such E over j is returned, in units of <E_tau>
    (-inf on padded sites). J^tautau_ij = J_ee D^{tau tau}_ij r'_ij; the fields E_tau are
    those of `es` (from the S-tau couplings, as in the ES reduction). One O(N^2) pass for
    the field signs (the same column sums as `es_reduction`'s) and one for the maxima.

    **Arguments:**

    - `couplings`: the `DipolarSTauCouplings` `es` was computed from (without a field).
    - `es`: its `ESResult`.
    - `block_size`: as in `es_reduction`.

    **Returns:** (n,) bounds in units of <E_tau>.
    """
    n = couplings.n
    block = min(default_block_size(n) if block_size is None else block_size, n)
    sign = jnp.where(tau_field_sums(couplings, block) < 0, -1.0, 1.0)
    tt = _TauTauCouplings(couplings.dipoles, couplings.ratio, sign)
    top, _ = row_top(tt, sign, es.e_tau * es.e_tau_mean, 1, block)  # units of g J_o
    return jnp.where(couplings.realization.mask, top[:, 0] / es.e_tau_mean, -jnp.inf)


class _TauTauCouplings(eqx.Module):
    """-s_i (J_ee / g J_o) D^tautau_ij r'_ij, the tau-tau couplings as `row_top` needs them.

    `row_top` forms a_ij = 2 sign_j U_ij - e_tau_j; with U_ij = -sign_i J_ij / (g J_o) this
    is -2 sign_i sign_j J_ij - E_tau_j, the pair-stability bound of tau_i against tau_j
    (the spins point against their fields: s = -sign).
    """

    dipoles: DipolarCouplings
    ratio: Float[Array, ""]
    sign: Float[Array, " n"]

    @property
    def realization(self):
        return self.dipoles.realization

    @property
    def n(self) -> int:
        return self.dipoles.realization.capacity

    def block(self, rows, cols):
        rows_c = jnp.minimum(rows, self.n - 1)
        return (-self.sign[rows_c][:, None] * self.ratio
                * self.dipoles.block(rows, cols, "tau", "tau"))
