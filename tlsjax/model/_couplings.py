"""The random S-tau couplings of Eq. (2), generated block by block.

U_ij = g J_o c_ij R_o^3 / (R_ij^3 + a~^3) for the ordered pair (S_i, tau_j), i != j
(App. B 2; docs/conventions.md section 3). Energies here are in units of g J_o.

The c_ij are standard normals drawn from a counter-based generator: c_ij is a pure
function of (seed, i, j), so any block of the N x N matrix can be produced on its
own, the same on every backend and for every block size, and no N x N array is
ever stored. The generator is a 32-bit integer hash (Wellons' "lowbias32" mixer,
bias ~0.17 on his avalanche score) followed by an inverse normal CDF; it is
written once here and mirrored in NumPy by `experiments/bench_es.py` and the tests.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, UInt32

from ._lattice import Realization, Sample

_M1 = 0x7FEB352D
_M2 = 0x846CA68B
_GOLDEN = 0x9E3779B9
_ROW_SALT = 0x632BE5AB


def _mix32(x):
    """lowbias32 integer hash (uint32 -> uint32); works on JAX and NumPy arrays."""
    x = x ^ (x >> 16)
    x = x * x.dtype.type(_M1)
    x = x ^ (x >> 15)
    x = x * x.dtype.type(_M2)
    x = x ^ (x >> 16)
    return x


def row_hash(seed: UInt32[Array, 2], i):
    """Hash of the row index i (S spin), combined with the seed."""
    i = i.astype(jnp.uint32) if hasattr(i, "astype") else np.uint32(i)
    return _mix32(_mix32(i + seed[0]) ^ seed[1])


def col_hash(seed: UInt32[Array, 2], j):
    """Hash of the column index j (tau spin), combined with the seed."""
    j = j.astype(jnp.uint32) if hasattr(j, "astype") else np.uint32(j)
    return _mix32(j * j.dtype.type(_GOLDEN) + (seed[1] ^ seed.dtype.type(_ROW_SALT)))


# Giles, "Approximating the erfinv function" (GPU Computing Gems, 2011), single precision.
_GILES_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
                  0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_GILES_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
               0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)


def inverse_normal_cdf(u, xp=jnp):
    """sqrt(2) erfinv(2u - 1) by Giles' polynomial (|rel. error| < 4e-7), u in (0, 1).

    Uses only log, sqrt and polynomials, so JAX and NumPy give the same numbers
    (the faster alternative to Box-Muller's cosine on CPUs).
    """
    w = -xp.log(4.0 * u * (1.0 - u))
    w1 = w - 2.5
    p1 = _GILES_CENTRAL[0]
    for c in _GILES_CENTRAL[1:]:
        p1 = c + p1 * w1
    w2 = xp.sqrt(w) - 3.0
    p2 = _GILES_TAIL[0]
    for c in _GILES_TAIL[1:]:
        p2 = c + p2 * w2
    return np.sqrt(2.0) * xp.where(w < 5.0, p1, p2) * (2.0 * u - 1.0)


def normals_from_hashes(hr, hc, xp=jnp, dtype=None):
    """Standard normals for every (row hash, column hash) pair (broadcasting).

    23 bits of the mixed hash give u = (k + 1/2) / 2^23 (exact in float32), so the
    normals reach +-5.3 standard deviations.
    """
    bits = _mix32(hr ^ hc) >> 9
    dtype = dtype or xp.result_type(float)
    u = (bits.astype(dtype) + 0.5) * (2.0**-23)
    return inverse_normal_cdf(u, xp)


def seed_from_key(key: PRNGKeyArray) -> UInt32[Array, 2]:
    """Two 32-bit words of seed for the counter-based generator."""
    return jax.random.bits(key, (2,), jnp.uint32)


def standard_normals(key: PRNGKeyArray, shape: tuple[int, ...]) -> Float[Array, ...]:
    """Standard normals drawn in float32 whatever the precision, then cast to the
    default float dtype: a key gives the same numbers with and without `jax_enable_x64`
    (to float32 precision)."""
    return jax.random.normal(key, shape, dtype=jnp.float32).astype(jnp.result_type(float))


class AbstractCouplingAmplitudes(eqx.Module):
    """The random amplitudes c_ij of Eq. (2), any block on demand."""

    def pairs(self, rows: Int[Array, ...], cols: Int[Array, ...]) -> Float[Array, ...]:
        """c_ij for broadcastable index arrays (i in `rows`, j in `cols`)."""
        raise NotImplementedError


class GaussianAmplitudes(AbstractCouplingAmplitudes):
    """c_ij ~ Normal(0, 1), independent for each ordered pair (the paper's choice)."""

    seed: UInt32[Array, 2]

    def pairs(self, rows, cols):
        return normals_from_hashes(row_hash(self.seed, rows), col_hash(self.seed, cols))


class SymmetricGaussianAmplitudes(AbstractCouplingAmplitudes):
    """c_ij = c_ji ~ Normal(0, 1): one draw per unordered pair (c^SS, c^tautau of Eq. 2).

    Both indices go through the same hash (`row_hash`), so c_ij is a pure function of
    the unordered pair {i, j}; the cost per pair is that of `GaussianAmplitudes`.
    (row_hash is a bijection of the index, so i != j never gives the hash 0.)
    """

    seed: UInt32[Array, 2]

    def pairs(self, rows, cols):
        return normals_from_hashes(row_hash(self.seed, rows), row_hash(self.seed, cols))


class ExplicitAmplitudes(AbstractCouplingAmplitudes):
    """A given c matrix (small systems, hand-checked cases)."""

    c: Float[Array, "n n"]

    def pairs(self, rows, cols):
        return self.c[rows, cols]


class Couplings(eqx.Module):
    """U_ij / (g J_o) = c_ij R_o^3 / (R_ij^3 + a~^3) of one realization (Eq. 2).

    **Fields:**

    - `realization`: positions, mask, box and x.
    - `amplitudes`: the c_ij generator.
    - `atilde`: the cutoff a~ in units of a_o (may be traced, e.g. for gradients).
    """

    realization: Realization
    amplitudes: AbstractCouplingAmplitudes
    atilde: Float[Array, ""]

    @property
    def n(self) -> int:
        return self.realization.capacity

    def radial(self, rows: Int[Array, ...], cols: Int[Array, ...]
               ) -> tuple[Bool[Array, ...], Float[Array, ...]]:
        """`(valid, r)`: whether (i, j) is a pair of distinct real sites, and
        r_ij = R_o^3 / (R_ij^3 + a~^3) in units of a_o^3 (a finite placeholder where not
        valid: mask it with `valid`).

        Indices >= n (block padding) are not valid.
        """
        real = self.realization
        n = real.capacity
        rows_c = jnp.minimum(rows, n - 1)
        cols_c = jnp.minimum(cols, n - 1)
        valid = (rows != cols) & (rows < n) & (cols < n) & real.mask[rows_c] & real.mask[cols_c]
        # One coordinate at a time: 2-D arrays vectorize far better than (..., 3) ones.
        r2 = 0.0
        for axis in range(3):
            coord = real.positions[:, axis]
            d = coord[rows_c] - coord[cols_c]
            d = d - real.box * jnp.round(d / real.box)
            r2 = r2 + d * d
        r3 = r2 * jnp.sqrt(r2)
        denom = jnp.where(valid, r3 + self.atilde**3, 1.0)
        return valid, real.r0_cubed / denom

    def pairs(self, rows: Int[Array, ...], cols: Int[Array, ...]) -> Float[Array, ...]:
        """U_ij in units of g J_o for broadcastable index arrays `rows` (i) and `cols` (j).

        Zero on the diagonal, for padded sites and for indices >= n (block padding).
        """
        n = self.realization.capacity
        valid, r = self.radial(rows, cols)
        c = self.amplitudes.pairs(jnp.minimum(rows, n - 1), jnp.minimum(cols, n - 1))
        return jnp.where(valid, c * r, 0.0)

    def block(self, rows: Int[Array, " B"], cols: Int[Array, " C"]) -> Float[Array, "B C"]:
        """`U[rows][:, cols]` in units of g J_o (see `pairs`)."""
        return self.pairs(rows[:, None], cols[None, :])


class RealizationDraw(NamedTuple):
    """What one key draws (`draw_couplings`): the S-tau couplings and the h^tau normals,
    plus the subkeys of the couplings and the fields, from which further independent
    numbers (c^SS, c^tautau, h^S of the full Hamiltonian) are derived by `fold_in`."""

    couplings: Couplings
    h_normals: Float[Array, " n"]
    key_c: PRNGKeyArray
    key_h: PRNGKeyArray


def draw_couplings(sample: Sample, atilde: Float[Array, ""] | float, key: PRNGKeyArray
                   ) -> RealizationDraw:
    """Draw one realization from `key`: impurity positions, c_ij and h^tau normals.

    The key is split into three (positions, c_ij, h normals); this split is what
    `simulate` and `hamiltonian` share, so the same key gives the same positions, the
    same U_ij and the same field normals in the ES reduction and in the full model.

    **Arguments:**

    - `sample`: the `Sample`.
    - `atilde`: the cutoff a~ (units of a_o).
    - `key`: a JAX PRNG key.

    **Returns:** a `RealizationDraw`.
    """
    k_pos, k_c, k_h = jax.random.split(key, 3)
    realization = sample.draw(k_pos)
    couplings = Couplings(realization, GaussianAmplitudes(seed_from_key(k_c)),
                          jnp.asarray(atilde))
    h_normals = standard_normals(k_h, (realization.capacity,))
    return RealizationDraw(couplings, h_normals, k_c, k_h)
