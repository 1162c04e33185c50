"""Electric dipole-dipole couplings between the defects (Sec. III B), any block on demand.

Both kinds of defect may carry an electric dipole (Sec. III B, "Electric dipole
interactions"). Each impurity j gets two random unit orientations, u^S_j for the dipole
change of its S flip and u^tau_j for its tau flip (independent, isotropic: the paper
does not relate them). The coupling of spin a of impurity i to spin b of impurity j is

    J_ee D^ab_ij R_o^3 / (R_ij^3 + a_d^3),   D^ab_ij = u^a_i . u^b_j - 3 (u^a_i . R^)(u^b_j . R^)

with R^ the unit vector from i to j (minimum image) and J_ee the strength at the mean
impurity distance R_o. The radial factor is the one of the elastic couplings, Eq. (2),
with its own cutoff a_d (by default the elastic a~): then J_ee / (g J_o) is, pair by
pair, the ratio of the dipolar to the elastic S-tau scale, and a_d = 0 gives the bare
R^-3 law. D is the bare angular factor (head-to-tail along R: -2; side by side,
perpendicular to R: +1); over random orientations its mean is 0 and its rms is
sqrt(2/3) (the elastic c_ij have rms 1).

The orientations are O(N) numbers stored per impurity (each site's a function of the key
and its index only); any (rows, cols) block of any species pair (S-S, S-tau, tau-S,
tau-tau) is computed from them on demand: the full Hamiltonian (which generates its
coupling rows block by block) adds `DipolarCouplings.pairs(rows, cols, a, b)` to each of
its blocks (`HamiltonianParams(J_ee_over_gJ0=...)`, `_hamiltonian.py`). The orientations are
drawn from `jax.random.fold_in(key_c, DIPOLE_FOLD)`, key_c being the c_ij subkey of
`simulate`, so adding dipoles changes none of the existing random numbers.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._validate import check_int, check_range
from ._couplings import Couplings, standard_normals
from ._lattice import Realization

#: `jax.random.fold_in` tag deriving the orientation key from the c_ij subkey (chosen
#: apart from the small integers the full Hamiltonian folds in for c^SS, c^tautau, h^S).
DIPOLE_FOLD = 0x64697030
#: Species of a coupling end: the index into `DipolarCouplings.orientations[:, k]`.
KINDS = {"S": 0, "tau": 1}
#: Root-mean-square of D over independent isotropic orientations: sqrt(2/3).
ANGULAR_RMS = (2.0 / 3.0) ** 0.5


def random_orientations(key: PRNGKeyArray, n: int) -> Float[Array, "n 2 3"]:
    """Isotropic random unit vectors: `[:, 0]` for the S dipoles, `[:, 1]` for the tau ones.

    Normalized standard normal 3-vectors (uniform on the sphere), those of site i drawn
    from `fold_in(key, i)`: a pure function of (key, i), so padding a realization to a
    larger capacity (as the full Hamiltonian does) leaves every real site's dipoles as
    they are (up to the last bit, ~3e-16 in float64: XLA vectorizes the sampler
    differently for each size).
    """
    n = check_int("random_orientations", "n", n, 1)

    def one(i):
        v = standard_normals(jax.random.fold_in(key, i), (2, 3))
        return v / jnp.linalg.norm(v, axis=-1, keepdims=True)

    return jax.vmap(one)(jnp.arange(n))


def dipole_key(key_c: PRNGKeyArray) -> PRNGKeyArray:
    """The orientation key derived from the c_ij subkey of a realization."""
    return jax.random.fold_in(key_c, DIPOLE_FOLD)


def _vectors(name: str, value) -> Array:
    """`value` as an array of 3-vectors (last axis 3), else an error naming `name`."""
    if value is None or isinstance(value, (str, bytes, dict)):
        raise TypeError(f"`angular_factor({name}=...)` must be an array of 3-vectors (last "
                        f"axis 3); got {type(value).__name__}")
    try:
        arr = jnp.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"`angular_factor({name}=...)` must be an array of 3-vectors; got "
                        f"{type(value).__name__} ({err})") from None
    if arr.ndim < 1 or arr.shape[-1] != 3:
        raise ValueError(f"`angular_factor({name}=...)` must have a last axis of length 3; "
                         f"got shape {arr.shape}")
    return arr


def angular_factor(u: Float[Array, "*b 3"], v: Float[Array, "*b 3"],
                   rhat: Float[Array, "*b 3"]) -> Float[Array, "*b"]:
    """D = u . v - 3 (u . R^)(v . R^) for unit vectors (broadcasting over leading axes)."""
    u, v, rhat = (_vectors(name, a) for name, a in (("u", u), ("v", v), ("rhat", rhat)))
    return (jnp.sum(u * v, axis=-1)
            - 3.0 * jnp.sum(u * rhat, axis=-1) * jnp.sum(v * rhat, axis=-1))


def _kind(name: str) -> int:
    if name not in KINDS:
        raise ValueError(f"`DipolarCouplings.pairs` kinds must be 'S' or 'tau'; got {name!r}")
    return KINDS[name]


class DipolarCouplings(eqx.Module):
    """The dipolar term of one realization in units of J_ee (module docstring).

    **Fields:**

    - `realization`: positions, mask, box and x (R_o^3 = 1 / x in units of a_o^3).
    - `orientations`: (n, 2, 3) unit vectors, `[:, 0]` S and `[:, 1]` tau.
    - `atilde`: the cutoff a_d of the radial factor, units of a_o (>= 0).
    """

    realization: Realization
    orientations: Float[Array, "n 2 3"]
    atilde: Float[Array, ""]

    def pairs(self, rows: Int[Array, ...], cols: Int[Array, ...], row_kind: str = "S",
              col_kind: str = "tau") -> Float[Array, ...]:
        """D^ab_ij R_o^3 / (R_ij^3 + a_d^3) for broadcastable index arrays `rows` (i, species
        `row_kind`) and `cols` (j, species `col_kind`), in units of J_ee.

        Zero on the diagonal, for padded sites and for indices >= n (block padding).
        """
        a, b = _kind(row_kind), _kind(col_kind)
        real = self.realization
        n = real.capacity
        rows_c = jnp.minimum(rows, n - 1)
        cols_c = jnp.minimum(cols, n - 1)
        valid = (rows != cols) & (rows < n) & (cols < n) & real.mask[rows_c] & real.mask[cols_c]
        d, r2 = [], 0.0
        for axis in range(3):  # one coordinate at a time, as in `Couplings.pairs`
            coord = real.positions[:, axis]
            da = coord[cols_c] - coord[rows_c]
            da = da - real.box * jnp.round(da / real.box)
            d.append(da)
            r2 = r2 + da * da
        r2 = jnp.where(valid, r2, 1.0)  # double where: no 0/0 on the diagonal or padding
        u = self.orientations[:, a]
        v = self.orientations[:, b]
        uv = sum(u[rows_c, k] * v[cols_c, k] for k in range(3))
        ud = sum(u[rows_c, k] * d[k] for k in range(3))
        vd = sum(v[cols_c, k] * d[k] for k in range(3))
        ang = uv - 3.0 * (ud * vd) / r2  # (ud vd): exactly symmetric under i <-> j for a == b
        radial = real.r0_cubed / (r2 * jnp.sqrt(r2) + self.atilde**3)
        return jnp.where(valid, ang * radial, 0.0)

    def block(self, rows: Int[Array, " B"], cols: Int[Array, " C"], row_kind: str = "S",
              col_kind: str = "tau") -> Float[Array, "B C"]:
        """The (rows x cols) block of `pairs`."""
        return self.pairs(rows[:, None], cols[None, :], row_kind, col_kind)


def dipolar_couplings(realization: Realization, key_c: PRNGKeyArray,
                      atilde: Float[Array, ""] | float) -> DipolarCouplings:
    """The dipolar term of a realization, orientations from `dipole_key(key_c)`.

    **Arguments:**

    - `realization`: the drawn impurities.
    - `key_c`: the c_ij subkey of the realization (the second of `jax.random.split(key, 3)`
      in `simulate`).
    - `atilde`: the cutoff a_d of the dipolar radial factor (units of a_o, >= 0).

    **Returns:** a `DipolarCouplings`.
    """
    atilde = check_range("dipolar_couplings", "atilde", atilde, 0.0)
    return DipolarCouplings(realization, random_orientations(dipole_key(key_c),
                                                             realization.capacity), atilde)


class DipolarSTauCouplings(Couplings):
    """The S-tau couplings of the ES reduction with the dipolar term added (Sec. III B).

    U_ij / (g J_o) = c_ij R_o^3 / (R_ij^3 + a~^3) + (J_ee / g J_o) D^{S tau}_ij
    R_o^3 / (R_ij^3 + a_d^3). A drop-in `Couplings` for `es_reduction`; with
    `ratio` = 0 the values are those of the elastic couplings bit for bit.

    **Fields** (besides those of `Couplings`):

    - `dipoles`: the `DipolarCouplings` of the realization.
    - `ratio`: J_ee / (g J_o) (>= 0; may be traced, e.g. under `vmap`).
    """

    dipoles: DipolarCouplings
    ratio: Float[Array, ""]

    def pairs(self, rows, cols):
        elastic = super().pairs(rows, cols)
        return elastic + self.ratio * self.dipoles.pairs(rows, cols, "S", "tau")
