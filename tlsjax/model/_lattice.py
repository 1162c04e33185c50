"""Samples: impurities on a periodic lattice (paper App. B 2; docs/conventions.md section 1).

Lengths are in units of the nearest-neighbour distance a_o of the lattice. The
default lattice is fcc (the anion sublattice of rock salt), 4 sites per cubic cell
of edge sqrt(2) a_o; `SimpleCubic` (1 site per cell of edge a_o) is the option.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._validate import (
    check_int,
    check_memory,
    check_range,
    check_static,
    is_traced,
    runtime_check,
)

#: Largest number of lattice sites: site indices are 32-bit integers (`jnp.nonzero`,
#: the counter-based c_ij generator).
MAX_LATTICE_SITES = 2**31 - 1
#: Bytes of memory per lattice site when a sample is drawn (float64 NumPy sites, their
#: device copy, a float32 uniform, the occupation mask and `nonzero`'s indices).
_BYTES_PER_SITE = 64
#: Bytes per impurity slot of one realization (positions, ES arrays, blocks).
_BYTES_PER_IMPURITY = 256

#: Fewest impurities a sample must hold on average for the ES reduction. P_S(E) is a
#: fraction of one realization's impurities and T_U its 5 g quantile (the
#: ceil(5 g N)-th smallest E_min), so a handful of impurities gives no P_S at all; with
#: 20 expected, a realization has fewer than 2 (no pair to couple) with probability
#: < 5e-8.
MIN_IMPURITIES = 20


def check_sample_size(where: str, sample: Sample, minimum: int = MIN_IMPURITIES) -> None:
    """Refuse a `Sample` expected to hold fewer than `minimum` impurities (static check).

    **Raises:** `ValueError` naming `where` and giving the expected count x * sites.
    """
    n = sample.n_sites_mean
    if n < minimum:
        raise ValueError(
            f"`{where}(sample=...)`: the sample holds x * sites = {sample.x:g} * "
            f"{sample.lattice.n_sites} = {n:.3g} impurities on average; the ES reduction "
            f"needs at least {minimum} (P_S is a fraction of a realization's impurities and "
            f"T_U its 5 g quantile): use more cells or a larger x")


#: The run-time check of `Sample.draw` (a realization holds more impurities than fit).
OVER_CAPACITY = "`Sample.draw`: more impurities than `Sample(capacity=...)`"

class AbstractLattice(eqx.Module):
    """A cubic Bravais lattice with a basis, `cells`^3 cubic cells, periodic."""

    cells: eqx.AbstractVar[int]

    @property
    def basis(self) -> np.ndarray:
        """Basis positions in units of the cubic cell edge, shape (n_basis, 3)."""
        raise NotImplementedError

    @property
    def cell_edge(self) -> float:
        """Cubic cell edge in units of the nearest-neighbour distance a_o."""
        raise NotImplementedError

    @property
    def n_sites(self) -> int:
        return self.basis.shape[0] * self.cells**3

    @property
    def box(self) -> float:
        """Edge of the periodic box in units of a_o."""
        return self.cells * self.cell_edge

    def site_positions(self) -> np.ndarray:
        """All lattice sites, shape (n_sites, 3), in units of a_o (NumPy, static)."""
        r = np.arange(self.cells)
        cells = np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 1, 3)
        pos = (cells + self.basis[None]) * self.cell_edge
        return pos.reshape(-1, 3)


class FCC(AbstractLattice):
    """Face-centred cubic: 4 sites per cubic cell of edge sqrt(2) a_o (the default)."""

    cells: int = eqx.field(static=True)

    def __check_init__(self):
        check_int("FCC", "cells", self.cells, 2)

    @property
    def basis(self) -> np.ndarray:
        return np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])

    @property
    def cell_edge(self) -> float:
        return math.sqrt(2.0)


class SimpleCubic(AbstractLattice):
    """Simple cubic: 1 site per cubic cell of edge a_o."""

    cells: int = eqx.field(static=True)

    def __check_init__(self):
        check_int("SimpleCubic", "cells", self.cells, 2)

    @property
    def basis(self) -> np.ndarray:
        return np.zeros((1, 3))

    @property
    def cell_edge(self) -> float:
        return 1.0


class Realization(eqx.Module):
    """One drawn set of impurity positions, padded to a static capacity.

    **Fields:**

    - `positions`: (capacity, 3) positions in units of a_o; padded rows are zeros.
    - `mask`: (capacity,) True for real impurities.
    - `n_sites`: the number of impurities.
    - `box`: periodic box edge in units of a_o (static).
    - `x`: occupation probability (static); R_o^3 = a_o^3 / x.
    """

    positions: Float[Array, "capacity 3"]
    mask: Bool[Array, " capacity"]
    n_sites: Int[Array, ""]
    box: float = eqx.field(static=True)
    x: float = eqx.field(static=True)

    @property
    def capacity(self) -> int:
        return self.mask.shape[0]

    @property
    def r0_cubed(self) -> float:
        """R_o^3 in units of a_o^3 (R_o = a_o x^{-1/3}, docs/conventions.md section 1)."""
        return 1.0 / self.x

    @staticmethod
    def from_positions(positions, box: float, x: float) -> Realization:
        """A realization from explicit positions (all occupied), e.g. for hand checks."""
        where = "Realization.from_positions"
        check_static(where, "box", box)
        check_static(where, "x", x)
        check_range(where, "box", box, 0.0, lo_open=True)
        check_range(where, "x", x, 0.0, 1.0, lo_open=True)
        if not is_traced(positions):
            check_range(where, "positions", positions)  # numeric and finite
        positions = jnp.asarray(positions, dtype=jnp.result_type(float))
        if positions.ndim != 2 or positions.shape[1] != 3 or positions.shape[0] < 2:
            raise ValueError("`Realization.from_positions(positions=...)` must have shape (n, 3)"
                             f" with n >= 2; got {positions.shape}")
        # inside the periodic box [0, box) (a point outside is no site of this sample)
        positions = check_range(where, "positions", positions, 0.0, float(box), hi_open=True)
        n = positions.shape[0]
        return Realization(positions, jnp.ones(n, bool), jnp.asarray(n), float(box), float(x))


class Sample(eqx.Module):
    """Impurities occupying the sites of `lattice` independently with probability `x`.

    The number of impurities is binomial; arrays are padded to a static `capacity`
    (mean + 8 standard deviations by default) so that realizations can be `vmap`ped.
    Drawing more impurities than `capacity` raises at run time (probability < 1e-15).

    **Fields:**

    - `lattice`: an `AbstractLattice` (default `FCC`).
    - `x`: occupation probability in (0, 1].
    - `capacity`: static padded size.
    """

    lattice: AbstractLattice
    x: float = eqx.field(static=True)
    capacity: int = eqx.field(static=True)

    def __init__(self, x: float, cells: int | None = None, lattice: AbstractLattice | None = None,
                 capacity: int | None = None):
        if (cells is None) == (lattice is None):
            raise ValueError("`Sample` needs exactly one of `cells` (fcc) or `lattice`")
        check_static("Sample", "x", x)
        check_static("Sample", "cells", cells)
        check_range("Sample", "x", x, 0.0, 1.0, lo_open=True)
        if np.ndim(x) != 0:
            raise ValueError(f"`Sample(x=...)` must be one number (an occupation in (0, 1]); got "
                             f"an array of shape {np.shape(x)}: make one Sample per x")
        x = float(np.asarray(x))  # concrete (checked): usable inside a `jit` trace too
        self.x = x
        if lattice is not None and not isinstance(lattice, AbstractLattice):
            raise TypeError(f"`Sample(lattice=...)` must be an `FCC` or `SimpleCubic` lattice; "
                            f"got {type(lattice).__name__}")
        self.lattice = FCC(cells) if lattice is None else lattice
        m = self.lattice.n_sites
        check_memory("Sample", f"drawing a realization of {m:,} lattice sites "
                     f"({type(self.lattice).__name__}, cells={self.lattice.cells}, "
                     f"~{x * m:,.0f} impurities)",
                     _BYTES_PER_SITE * m + _BYTES_PER_IMPURITY * (x * m))
        if m > MAX_LATTICE_SITES:
            raise ValueError(f"`Sample`: {type(self.lattice).__name__}(cells="
                             f"{self.lattice.cells}) has {m:.3g} lattice sites; at most "
                             f"{MAX_LATTICE_SITES} (2^31 - 1) are supported")
        if capacity is None:
            capacity = min(m, math.ceil(x * m + 8.0 * math.sqrt(m * x * (1.0 - x)) + 8))
        self.capacity = check_int("Sample", "capacity", capacity, 2, m)

    @property
    def n_sites_mean(self) -> float:
        return self.x * self.lattice.n_sites

    def draw(self, key: PRNGKeyArray) -> Realization:
        """Draw the occupied sites (each independently with probability x).

        The uniforms are drawn in float32 whatever the precision (`jax_enable_x64`), so
        a key gives the same impurities in float32 and float64 runs.
        """
        sites = jnp.asarray(self.lattice.site_positions(), dtype=jnp.result_type(float))
        m = sites.shape[0]
        occupied = jax.random.uniform(key, (m,), dtype=jnp.float32) < jnp.float32(self.x)
        count = jnp.sum(occupied)
        count = runtime_check(count, count > self.capacity, OVER_CAPACITY)
        (idx,) = jnp.nonzero(occupied, size=self.capacity, fill_value=0)
        mask = jnp.arange(self.capacity) < count
        positions = jnp.where(mask[:, None], sites[idx], 0.0)
        return Realization(positions, mask, count, float(self.lattice.box), self.x)
