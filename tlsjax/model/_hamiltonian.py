"""The full S-tau Hamiltonian, Eq. (1), in the convention of docs/conventions.md section 6.

Spin vector. One realization with padded capacity n (the sample's capacity rounded up
to a multiple of `pad_to`) has 2n Ising spins

    s = (S_0, ..., S_{n-1}, tau_0, ..., tau_{n-1}),   s_k = +-1,

and the energy (kelvin, k_B = 1)

    H(s) = h . s + (1/2) s^T K s,

with K symmetric and zero on the diagonal:

    K[S_i, S_j]     = J^SS_ij     = J_o       c^SS_ij    r_ij   (c^SS symmetric)
    K[S_i, tau_j]   = J^Stau_ij   = g J_o     c_ij       r_ij   (= K[tau_j, S_i]; i != j)
    K[tau_i, tau_j] = J^tautau_ij = g^2 J_o   c^tautau_ij r_ij  (c^tautau symmetric)
    h[S_j] = h^S_j ~ Normal(0, (h_S J_o)^2),  h[tau_j] = h^tau_j ~ Normal(0, (h_tau g J_o)^2)

with r_ij = R_o^3 / (R_ij^3 + a~^3). So (1/2) s^T K s counts sum_{i<j} J^SS S_i S_j +
sum_{i != j} J^Stau_ij S_i tau_j + sum_{i<j} J^tautau tau_i tau_j, exactly the sums of
docs/conventions.md section 6; J^Stau_ij is the coefficient of S_i tau_j (not symmetric in i, j), and
a site's own S_i and tau_i are not coupled. Rows and columns of padded sites are zero.

Electric dipoles (optional, Sec. III B; `HamiltonianParams(J_ee_over_gJ0=...)`). Each
impurity i carries two unit dipole orientations, u^S_i (of its S flip) and u^tau_i (of its
tau flip) (`_dipolar.py`), and the same pairs as above get a dipolar term:

    K[S_i, S_j]     += J_ee D^{S S}_ij     r'_ij   (u^S_i, u^S_j;     symmetric, i != j)
    K[S_i, tau_j]   += J_ee D^{S tau}_ij   r'_ij   (u^S_i, u^tau_j;   ordered pair, i != j)
    K[tau_i, tau_j] += J_ee D^{tau tau}_ij r'_ij   (u^tau_i, u^tau_j; symmetric, i != j)

with D^ab_ij = u^a_i . u^b_j - 3 (u^a_i . R^)(u^b_j . R^) and r'_ij = R_o^3 / (R_ij^3 + a_d^3)
(a_d: the dipolar cutoff, a~ by default); D^{S tau}_ij = D^{tau S}_ji, so K stays
symmetric, and a site's own S_i and tau_i stay uncoupled. The S-tau block is then
g J_o times the `DipolarSTauCouplings` U_ij of the ES reduction with J_ee / (g J_o) for
the same key (`DipolarDefects.simulate`), and the orientations come from
`fold_in(key_c, DIPOLE_FOLD)`, so switching dipoles on changes no other number. Without
dipoles (`J_ee_over_gJ0=None`, the default) none of this is computed; J_ee = 0 gives the
same K bit for bit, at the cost of the dipolar arithmetic.

Derived quantities (all in K):

- local fields lambda = dH/ds = h + K s;
- single-flip energies eps_k = H(s with s_k -> -s_k) - H(s) = -2 s_k lambda_k;
- pair-flip energies eps_k + eps_l + 4 K_kl s_k s_l (flip s_k and s_l together).

Random numbers. The key is split exactly as in `simulate` (`draw_couplings`): the same
key gives the same positions, the same c_ij (so J^Stau_ij = g J_o U_ij / (g J_o) of the
ES reduction, bit for bit up to the final product) and the same h^tau normals. The new
numbers come from `jax.random.fold_in` of those subkeys (c^SS: fold_in(key_c, 1),
c^tautau: fold_in(key_c, 2), h^S normals: fold_in(key_h, 1)), so the ES results of a
key do not change. All c are counter-based (`_couplings.py`): any row of K is a pure
function of (seeds, row index) and is generated on its own.

Storage. K is either stored densely (while (2n)^2 entries fit `max_dense_bytes`) or
generated row block by row block when needed; both give the same numbers, and every
O(N^2) operation here runs over row blocks (`jax.lax.map` / `jax.lax.scan`), so without
a stored K memory stays O(N x replicas).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._validate import check_int, check_range, check_type, is_traced
from ..parallel._sharding import round_up
from ._couplings import (
    AbstractCouplingAmplitudes,
    Couplings,
    SymmetricGaussianAmplitudes,
    draw_couplings,
    seed_from_key,
    standard_normals,
)
from ._dipolar import DipolarSTauCouplings, dipolar_couplings
from ._lattice import Realization, Sample
from ._params import DEFAULT_ATILDE, DEFAULT_G, DEFAULT_J0_K, ModelParams

#: Default multiple the capacity is rounded up to (the Monte Carlo's block size divides it).
DEFAULT_PAD = 64
#: Default memory budget for a stored (dense) coupling matrix K of one realization.
DEFAULT_DENSE_BYTES = 2**30
#: Species indices of the spin vector.
S, TAU = 0, 1



def exact_matmul(a: Array, b: Array) -> Array:
    """a @ b in the full precision of its dtype on every backend. XLA's default on GPUs
    rounds float32 products to TF32 (10-bit mantissa): a local field of 2n terms would
    then be off by ~1e-3 of its size, beyond `default_tol`, and GPU spins would differ
    from CPU ones. On CPUs this is the plain product (the same numbers, the same speed)."""
    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)

class HamiltonianParams(eqx.Module):
    """Parameters of the full Hamiltonian, Eq. (1) (docs/conventions.md section 6).

    **Fields:**

    - `model`: the `ModelParams` holding g, J_o (K) and a~ (validated there; its `h_rel`
      and `kappa_log` do not enter the Hamiltonian).
    - `h_S`: width of the random fields h^S_j in units of J_o (>= 0, default 0).
    - `h_tau`: width of the random fields h^tau_j in units of g J_o (>= 0, default 0).
      (The ES reduction's h_rel is relative to <E_tau>_0 instead: h_tau = h_rel
      <E_tau>_0 / (g J_o) gives the same fields.)
    - `J_ee_over_gJ0`: the electric dipole coupling J_ee at R_o in units of g J_o (>= 0),
      added to all three coupling types (module docstring, Sec. III B); None (default):
      no dipolar term. 0 gives the same couplings as None, bit for bit.
    - `dipole_atilde`: the cutoff a_d of the dipolar radial factor, units of a_o (>= 0);
      None (default): a~. Only with `J_ee_over_gJ0`.

    Construct with `HamiltonianParams(g=..., J0=..., atilde=..., h_S=..., h_tau=...)` or
    from existing `ModelParams` with `HamiltonianParams.from_model(params, h_S, h_tau)`.
    """

    model: ModelParams
    h_S: Float[Array, "*batch"]
    h_tau: Float[Array, "*batch"]
    J_ee_over_gJ0: Float[Array, "*batch"] | None = None
    dipole_atilde: Float[Array, "*batch"] | None = None

    def __init__(self, g=DEFAULT_G, J0=DEFAULT_J0_K, atilde=DEFAULT_ATILDE, h_S=0.0, h_tau=0.0,
                 J_ee_over_gJ0=None, dipole_atilde=None, *, model: ModelParams | None = None):
        if model is None:
            try:
                model = ModelParams(g=g, J0=J0, atilde=atilde)
            except ValueError as err:
                raise ValueError(str(err).replace("`ModelParams(", "`HamiltonianParams(")) from None
        self.model = model
        self.h_S = check_range("HamiltonianParams", "h_S", h_S, 0.0)
        self.h_tau = check_range("HamiltonianParams", "h_tau", h_tau, 0.0)
        if J_ee_over_gJ0 is None and dipole_atilde is not None:
            raise ValueError("`HamiltonianParams(dipole_atilde=...)` needs J_ee_over_gJ0 (the "
                             "dipolar coupling it cuts off); got J_ee_over_gJ0=None")
        self.J_ee_over_gJ0 = None if J_ee_over_gJ0 is None else check_range(
            "HamiltonianParams", "J_ee_over_gJ0", J_ee_over_gJ0, 0.0)
        self.dipole_atilde = None if dipole_atilde is None else check_range(
            "HamiltonianParams", "dipole_atilde", dipole_atilde, 0.0)

    @classmethod
    def from_model(cls, params: ModelParams, h_S=0.0, h_tau=0.0, J_ee_over_gJ0=None,
                   dipole_atilde=None) -> HamiltonianParams:
        """The Hamiltonian parameters with g, J_o, a~ of `params` and the given fields (and
        dipolar coupling)."""
        return cls(h_S=h_S, h_tau=h_tau, J_ee_over_gJ0=J_ee_over_gJ0,
                   dipole_atilde=dipole_atilde, model=params)

    def checked(self) -> HamiltonianParams:
        """The same parameters with run-time checks attached (for traced values)."""
        return HamiltonianParams(h_S=self.h_S, h_tau=self.h_tau, J_ee_over_gJ0=self.J_ee_over_gJ0,
                                 dipole_atilde=self.dipole_atilde, model=self.model.checked())

    @property
    def g(self) -> Float[Array, "*batch"]:
        return self.model.g

    @property
    def J0(self) -> Float[Array, "*batch"]:
        return self.model.J0

    @property
    def atilde(self) -> Float[Array, "*batch"]:
        return self.model.atilde

    @property
    def gJ0(self) -> Float[Array, "*batch"]:
        return self.model.gJ0

    @property
    def J_ee(self) -> Float[Array, "*batch"] | None:
        """J_ee in K (None without dipoles)."""
        return None if self.J_ee_over_gJ0 is None else self.J_ee_over_gJ0 * self.gJ0


def _lead(v, like):
    """`v` (2n,) with leading unit axes to broadcast against `like` (..., 2n) explicitly."""
    return v.reshape((1,) * (jnp.ndim(like) - 1) + v.shape)


def pad_realization(real: Realization, capacity: int) -> Realization:
    """`real` with its arrays padded (zeros, mask False) to `capacity` >= its own."""
    extra = capacity - real.capacity
    if extra < 0:
        raise ValueError(f"`pad_realization(capacity=...)` must be >= {real.capacity}; got "
                         f"{capacity}")
    if extra == 0:
        return real
    return Realization(jnp.pad(real.positions, ((0, extra), (0, 0))),
                       jnp.pad(real.mask, (0, extra)), real.n_sites, real.box, real.x)


class Hamiltonian(eqx.Module):
    """The Hamiltonian H(s) = h . s + (1/2) s^T K s of one realization (module docstring).

    **Fields:**

    - `couplings`: the S-tau `Couplings` (U_ij / (g J_o) of the ES reduction, positions, a~);
      a `DipolarSTauCouplings` when the dipoles are on (its `dipoles` and `ratio` =
      J_ee / (g J_o) then also give the S-S and tau-tau dipolar terms).
    - `ss_amplitudes`, `tt_amplitudes`: the symmetric amplitudes c^SS, c^tautau.
    - `h`: (2n,) fields in K, zero on padded sites.
    - `J0`, `g`: J_o in K and g.
    - `scales`: (3,) multipliers of (J^SS, J^Stau, J^tautau), 1 by default; `scaled`
      changes them (e.g. J^SS = J^tautau = 0 to isolate the S-tau problem).
    - `matrix`: the stored (2n, 2n) K, or None (rows are generated when needed).
    - `block_size`: rows per block of the blocked O(N^2) operations (static; it divides
      n). Results do not depend on it.

    Build it with `hamiltonian(sample, params, key)`; for hand-made cases construct it
    directly (n must be a multiple of `block_size`).
    """

    couplings: Couplings
    ss_amplitudes: AbstractCouplingAmplitudes
    tt_amplitudes: AbstractCouplingAmplitudes
    h: Float[Array, " 2n"]
    J0: Float[Array, ""]
    g: Float[Array, ""]
    scales: Float[Array, 3]
    matrix: Float[Array, "2n 2n"] | None = None
    block_size: int = eqx.field(static=True, default=DEFAULT_PAD)

    def __check_init__(self):
        check_int("Hamiltonian", "block_size", self.block_size, 1)
        if self.n % self.block_size:
            raise ValueError(f"`Hamiltonian(block_size=...)` must divide the capacity n = {self.n}; "
                             f"got {self.block_size}")

    # -- sizes and masks ------------------------------------------------------------------
    @property
    def realization(self) -> Realization:
        return self.couplings.realization

    @property
    def n(self) -> int:
        """The padded capacity: the spin vector has 2n entries."""
        return self.couplings.realization.capacity

    @property
    def size(self) -> int:
        return 2 * self.n

    @property
    def mask(self) -> Bool[Array, " 2n"]:
        """True for the spins of real impurities (S and tau)."""
        m = self.realization.mask
        return jnp.concatenate([m, m])

    @property
    def n_sites(self) -> Int[Array, ""]:
        return self.realization.n_sites

    @property
    def dense_bytes(self) -> int:
        """Bytes of a stored K (float dtype of the fields)."""
        return self.size**2 * jnp.dtype(self.h.dtype).itemsize

    # -- couplings --------------------------------------------------------------------------
    def _amp(self, which: str) -> Couplings:
        amp = self.ss_amplitudes if which == "ss" else self.tt_amplitudes
        return Couplings(self.realization, amp, self.couplings.atilde)

    def _energy_scales(self):
        """(J^SS, J^Stau, J^tautau) prefactors in K, including `scales`."""
        gj = self.g * self.J0
        return self.J0 * self.scales[0], gj * self.scales[1], gj * self.g * self.scales[2]

    @property
    def J_ee(self) -> Float[Array, ""]:
        """The dipolar coupling J_ee at R_o in K (0 without dipoles)."""
        c = self.couplings
        ratio = c.ratio if isinstance(c, DipolarSTauCouplings) else 0.0
        return ratio * self.g * self.J0

    def _dipolar(self, i, j, kind: str):
        """The same-species dipolar term J_ee D^{kind kind}_ij r'_ij in K, times the
        `scales` entry of that block (J^SS or J^tautau), or 0.0 without dipoles. (The S-tau
        term is in `couplings`.)"""
        c = self.couplings
        if not isinstance(c, DipolarSTauCouplings):
            return 0.0
        scale = self.scales[0] if kind == "S" else self.scales[2]
        # g J_o first, as in `_energy_scales`: the same rounding whichever factors are
        # compile-time constants (stored and generated rows then agree bit for bit)
        return ((self.g * self.J0) * c.ratio * scale) * c.dipoles.pairs(i, j, kind, kind)

    def _generate_rows(self, species: int, sites: Int[Array, " B"]) -> Float[Array, "B 2n"]:
        """K rows of the spins `species * n + sites` (species static), generated."""
        cols = jnp.arange(self.n)[None, :]
        i = sites[:, None]
        j_ss, j_st, j_tt = self._energy_scales()
        if species == S:   # [S_i, S_j] = J^SS_ij, [S_i, tau_j] = J^Stau_ij
            left = j_ss * self._amp("ss").pairs(i, cols) + self._dipolar(i, cols, "S")
            right = j_st * self.couplings.pairs(i, cols)
        else:              # [tau_i, S_j] = J^Stau_ji, [tau_i, tau_j] = J^tautau_ij
            left = j_st * self.couplings.pairs(cols, i)
            right = j_tt * self._amp("tt").pairs(i, cols) + self._dipolar(i, cols, "tau")
        return jnp.concatenate([left, right], axis=1)

    def species_rows(self, species: int, start: Int[Array, ""] | int, size: int
                     ) -> Float[Array, "size 2n"]:
        """Rows `species * n + start + (0..size-1)` of K (`species` 0 = S, 1 = tau, static).

        From the stored matrix if there is one, else generated; identical numbers. The
        block must lie inside one species (start + size <= n).
        """
        if self.matrix is not None:
            return jax.lax.dynamic_slice_in_dim(self.matrix, species * self.n + start, size, 0)
        return self._generate_rows(species, start + jnp.arange(size))

    def diagonal_blocks(self, size: int) -> Float[Array, "2 nb size size"]:
        """The diagonal blocks K[idx, idx] of every block idx = species * n + start +
        (0..size-1), start = 0, size, ...: (2, n / size, size, size), O(N size) memory.
        Sliced from the stored K or generated (all blocks at once: small blocks one by
        one cost far more per element on CPUs)."""
        b = self._check_block(size)
        starts = jnp.arange(0, self.n, b)
        if self.matrix is not None:
            offsets = jnp.concatenate([starts, self.n + starts])
            blocks = jax.vmap(lambda o: jax.lax.dynamic_slice(self.matrix, (o, o), (b, b)))(offsets)
            return blocks.reshape(2, -1, b, b)
        i = starts[:, None] + jnp.arange(b)[None, :]
        j_ss, _, j_tt = self._energy_scales()
        rows, cols = i[:, :, None], i[:, None, :]
        ss = j_ss * self._amp("ss").pairs(rows, cols) + self._dipolar(rows, cols, "S")
        tt = j_tt * self._amp("tt").pairs(rows, cols) + self._dipolar(rows, cols, "tau")
        return jnp.stack([ss, tt])

    def rows(self, idx: Int[Array, " B"]) -> Float[Array, "B 2n"]:
        """Rows K[idx, :] for any spin indices `idx` (values in [0, 2n)).

        Generated rows cost twice a species block's (both species are evaluated).
        """
        if self.matrix is not None:
            return self.matrix[idx]
        sites = idx % self.n
        is_tau = (idx >= self.n)[:, None]
        return jnp.where(is_tau, self._generate_rows(TAU, sites), self._generate_rows(S, sites))

    def coupling(self, k: Int[Array, ...], l: Int[Array, ...]) -> Float[Array, ...]:  # noqa: E741
        """K_kl for broadcastable spin-index arrays (elementwise; zero for k == l)."""
        if self.matrix is not None:
            return self.matrix[k, l]
        n = self.n
        i, j = k % n, l % n
        tk, tl = k >= n, l >= n
        j_ss, j_st, j_tt = self._energy_scales()
        ss = j_ss * self._amp("ss").pairs(i, j) + self._dipolar(i, j, "S")
        st = j_st * self.couplings.pairs(i, j)    # k = S_i, l = tau_j
        ts = j_st * self.couplings.pairs(j, i)    # k = tau_i, l = S_j
        tt = j_tt * self._amp("tt").pairs(i, j) + self._dipolar(i, j, "tau")
        return jnp.where(tk, jnp.where(tl, tt, ts), jnp.where(tl, st, ss))

    def map_row_blocks(self, fn, block_size: int | None = None, species: tuple[int, ...] = (0, 1)):
        """`fn(idx, rows)` over all row blocks of K; outputs concatenated along axis 0.

        `idx` (B,) are spin indices, `rows` = K[idx, :] (B, 2n); `fn` returns arrays with
        a leading axis B (per-row results). Blocks run in a `jax.lax.map` (S blocks, then
        tau blocks), so only one block of K is held at a time when K is not stored.
        `block_size` must divide n (default `self.block_size`); `species` = (0,) visits
        only the S rows, (1,) only the tau rows (then the output has n rows).
        """
        b = self._check_block(block_size)
        starts = jnp.arange(0, self.n, b)
        outs = []
        for sp in species:
            def one(start, sp=sp):
                return fn(sp * self.n + start + jnp.arange(b), self.species_rows(sp, start, b))
            out = jax.lax.map(one, starts)
            outs.append(jax.tree_util.tree_map(lambda v: v.reshape(-1, *v.shape[2:]), out))
        return jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *outs)

    def _check_block(self, block_size):
        b = self.block_size if block_size is None else check_int(
            "Hamiltonian", "block_size", block_size, 1)
        if self.n % b:
            raise ValueError(f"`block_size` must divide the capacity n = {self.n}; got {b}")
        return b

    def dense(self) -> Float[Array, "2n 2n"]:
        """The full K (2n x 2n) in K; memory (2n)^2 entries, written in place block of
        rows by block (no second copy of K while it is built)."""
        if self.matrix is not None:
            return self.matrix
        b, n = self.block_size, self.n
        dtype = jax.eval_shape(lambda: self.species_rows(S, 0, b)).dtype
        out = jnp.zeros((self.size, self.size), dtype)
        for sp in (S, TAU):  # species is static in `species_rows`
            def put(k, acc, sp=sp):
                rows = self.species_rows(sp, k * b, b)
                return jax.lax.dynamic_update_slice_in_dim(acc, rows, sp * n + k * b, 0)
            out = jax.lax.fori_loop(0, n // b, put, out)
        return out

    def stored(self) -> Hamiltonian:
        """The same Hamiltonian with K stored densely (`dense()`)."""
        return eqx.tree_at(lambda h: h.matrix, self, self.dense(), is_leaf=lambda x: x is None)

    def on_the_fly(self) -> Hamiltonian:
        """The same Hamiltonian with K generated row block by row block."""
        return eqx.tree_at(lambda h: h.matrix, self, None, is_leaf=lambda x: x is None)

    def scaled(self, ss=1.0, stau=1.0, tautau=1.0) -> Hamiltonian:
        """The Hamiltonian with J^SS, J^Stau, J^tautau multiplied by these factors (fields
        unchanged); a stored K is rebuilt."""
        new = eqx.tree_at(lambda h: h.scales, self.on_the_fly(),
                          self.scales * jnp.asarray([ss, stau, tautau], self.scales.dtype))
        return new.stored() if self.matrix is not None else new

    # -- energies ---------------------------------------------------------------------------
    def local_fields(self, s: Float[Array, "*batch 2n"]) -> Float[Array, "*batch 2n"]:
        """lambda = dH/ds = h + K s, for one or a batch of spin vectors (blocked; products
        in the full precision of the dtype on every backend, `exact_matmul`)."""
        flat = s.reshape(-1, self.size).astype(self.h.dtype)
        b = self.block_size

        def add_block(acc, start, species):
            rows = self.species_rows(species, start, b)
            sb = jax.lax.dynamic_slice_in_dim(flat, species * self.n + start, b, 1)
            return acc + exact_matmul(sb, rows), None

        acc = jnp.broadcast_to(self.h, flat.shape)
        starts = jnp.arange(0, self.n, b)
        for species in (S, TAU):
            acc, _ = jax.lax.scan(lambda a, st, sp=species: add_block(a, st, sp), acc, starts)
        return acc.reshape(s.shape)

    def energy(self, s: Float[Array, "*batch 2n"], fields: Float[Array, "*batch 2n"] | None = None
               ) -> Float[Array, "*batch"]:
        """H(s) in K; pass the local `fields` of `s` if known (then O(N))."""
        lam = self.local_fields(s) if fields is None else fields
        return 0.5 * jnp.sum(s * (_lead(self.h, s) + lam), axis=-1)

    def flip_energies(self, s: Float[Array, "*batch 2n"],
                      fields: Float[Array, "*batch 2n"] | None = None) -> Float[Array, "*batch 2n"]:
        """eps_k = -2 s_k lambda_k in K (0 on padded sites); pass `fields` if known."""
        lam = self.local_fields(s) if fields is None else fields
        return jnp.where(_lead(self.mask, s), -2.0 * s * lam, 0.0)

    def pair_flip_energies(self, s: Float[Array, " 2n"], k: Int[Array, ...], l: Int[Array, ...],  # noqa: E741
                           fields: Float[Array, " 2n"] | None = None) -> Float[Array, ...]:
        """eps_k + eps_l + 4 K_kl s_k s_l: the energy change of flipping s_k and s_l
        together (k != l), in K; pass the `fields` of `s` if known."""
        eps = self.flip_energies(s, fields)
        return eps[k] + eps[l] + 4.0 * self.coupling(k, l) * s[k] * s[l]

    def coupling_matrices(self) -> dict[str, Float[Array, ...]]:
        """J_SS, J_Stau, J_tautau (n x n, K; J_Stau[i, j] the coefficient of S_i tau_j,
        zero diagonals) and h_S, h_tau (n, K): Eq. (1) in the sums of docs/conventions.md section 6
        (sum_{i<j} J_SS, sum_{i != j} J_Stau, sum_{i<j} J_tautau). Dense: small n only."""
        k, n = self.dense(), self.n
        return dict(J_SS=k[:n, :n], J_Stau=k[:n, n:], J_tautau=k[n:, n:], h_S=self.h[:n],
                    h_tau=self.h[n:])


def hamiltonian(
    sample: Sample,
    params: HamiltonianParams | ModelParams,
    key: PRNGKeyArray,
    *,
    pad_to: int = DEFAULT_PAD,
    max_dense_bytes: int = DEFAULT_DENSE_BYTES,
) -> Hamiltonian:
    """Draw the full Hamiltonian (Eq. 1) of one realization from `key`.

    **Arguments:**

    - `sample`: the `Sample` (lattice, x).
    - `params`: `HamiltonianParams` (or `ModelParams`, then h_S = h_tau = 0, no dipoles).
    - `key`: a JAX PRNG key; split as in `simulate`, so the positions and J^Stau are the
      ES reduction's for the same key (with dipoles: those of `DipolarDefects.simulate`;
      module docstring).
    - `pad_to`: the capacity is rounded up to a multiple of this (>= 1); it is also the
      block size of the blocked operations (the Monte Carlo's blocks divide it).
    - `max_dense_bytes`: store K densely if its (2n)^2 entries take at most this many
      bytes (>= 0; 0 never stores), else generate rows when needed.

    **Returns:** a `Hamiltonian`.
    """
    check_type("hamiltonian", "sample", sample, Sample)
    check_type("hamiltonian", "params", params, (HamiltonianParams, ModelParams))
    if isinstance(params, ModelParams):
        params = HamiltonianParams.from_model(params)
    if is_traced(params):
        params = params.checked()
    pad_to = check_int("hamiltonian", "pad_to", pad_to, 1)
    max_dense_bytes = check_int("hamiltonian", "max_dense_bytes", max_dense_bytes, 0)
    draw = draw_couplings(sample, params.atilde, key)
    n0 = draw.couplings.realization.capacity
    n = round_up(n0, pad_to)
    real = pad_realization(draw.couplings.realization, n)
    couplings = Couplings(real, draw.couplings.amplitudes, draw.couplings.atilde)
    if params.J_ee_over_gJ0 is not None:  # the dipoles of `DipolarDefects.simulate`
        a_d = params.atilde if params.dipole_atilde is None else params.dipole_atilde
        couplings = DipolarSTauCouplings(real, couplings.amplitudes, couplings.atilde,
                                         dipolar_couplings(real, draw.key_c, a_d),
                                         jnp.asarray(params.J_ee_over_gJ0))
    ss = SymmetricGaussianAmplitudes(seed_from_key(jax.random.fold_in(draw.key_c, 1)))
    tt = SymmetricGaussianAmplitudes(seed_from_key(jax.random.fold_in(draw.key_c, 2)))
    h_s_normals = standard_normals(jax.random.fold_in(draw.key_h, 1), (n0,))
    g, j0 = jnp.asarray(params.g), jnp.asarray(params.J0)
    h = jnp.concatenate([
        jnp.pad(params.h_S * j0 * h_s_normals, (0, n - n0)),
        jnp.pad(params.h_tau * g * j0 * draw.h_normals, (0, n - n0)),
    ])
    h = jnp.where(jnp.concatenate([real.mask, real.mask]), h, 0.0)
    ham = Hamiltonian(couplings, ss, tt, h, j0, g, jnp.ones(3, h.dtype), None, pad_to)
    if ham.dense_bytes <= max_dense_bytes:
        ham = ham.stored()
    return ham
