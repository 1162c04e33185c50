"""A plain NumPy Metropolis of the full Hamiltonian: the baseline of `bench_mc.py`.

The same algorithm as `tlsjax.metropolis`: sequential single-spin Metropolis over the
spins 0..2n-1 in order, spin k of replica r flipped iff eps_k = -2 s_k lambda_k is below
the threshold T_r E (E ~ Exponential(1)), local fields lambda = h + K s maintained
incrementally. Vectorized over replicas as far as NumPy allows: each attempt is one
vector operation over the R replicas, and the fields are updated only for the replicas
that flipped (one row of K per flip, `lam[r] += 2 s_new K[k]`). No blocking, no
compilation: K is a dense (2n x 2n) array.
"""

from __future__ import annotations

import numpy as np


def numpy_sweep(k_matrix: np.ndarray, spins: np.ndarray, fields: np.ndarray,
                thresholds: np.ndarray, movable: np.ndarray) -> int:
    """One sweep in place. Arrays: K (2n, 2n), spins / fields / thresholds (R, 2n),
    movable (2n,) bool. Returns the number of accepted flips."""
    accepted = 0
    for k in np.flatnonzero(movable):
        s_k = spins[:, k]
        flip = -2.0 * s_k * fields[:, k] < thresholds[:, k]
        if not flip.any():
            continue
        r = np.flatnonzero(flip)
        new = -s_k[r]
        spins[r, k] = new
        fields[r] += (2.0 * new)[:, None] * k_matrix[k][None, :]
        accepted += r.size
    return accepted


def numpy_metropolis(k_matrix, h, spins, temperatures, sweeps, movable, rng) -> int:
    """`sweeps` sweeps from `spins` (R, 2n) at `temperatures` (R,), in place; fields
    computed once from scratch. Returns the accepted flips."""
    dtype = k_matrix.dtype
    fields = (h[None, :] + spins @ k_matrix).astype(dtype)
    accepted = 0
    for _ in range(sweeps):
        thr = (temperatures[:, None] * rng.exponential(size=spins.shape)).astype(dtype)
        accepted += numpy_sweep(k_matrix, spins, fields, thr, movable)
    return accepted
