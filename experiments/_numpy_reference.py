"""An independent plain-NumPy implementation of the hard ES reduction (App. B 2).

Full N x N arrays, no blocking, no JAX: the baseline of `bench_es.py` and the
oracle of `tests/test_es.py`. It re-implements the counter-based c_ij of
`tlsjax/_couplings.py` (lowbias32 hash + Giles' inverse normal CDF) from the
published constants so that both produce the same couplings for the same seed.
"""

from __future__ import annotations

import numpy as np

_M1, _M2 = np.uint32(0x7FEB352D), np.uint32(0x846CA68B)
_GOLDEN, _SALT = np.uint32(0x9E3779B9), np.uint32(0x632BE5AB)
_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
            -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
         -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)


def _mix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint32(16))
    x = x * _M1
    x = x ^ (x >> np.uint32(15))
    x = x * _M2
    return x ^ (x >> np.uint32(16))


def _horner(coeffs, w):
    p = np.full_like(w, coeffs[0])
    for c in coeffs[1:]:
        p = c + p * w
    return p


def gaussian_amplitudes(n: int, seed, dtype=np.float64) -> np.ndarray:
    """The full n x n matrix c_ij for seed (uint32, uint32)."""
    s0, s1 = np.uint32(seed[0]), np.uint32(seed[1])
    idx = np.arange(n, dtype=np.uint32)
    hr = _mix(_mix(idx + s0) ^ s1)
    hc = _mix(idx * _GOLDEN + (s1 ^ _SALT))
    bits = _mix(hr[:, None] ^ hc[None, :]) >> np.uint32(9)
    u = (bits.astype(dtype) + 0.5) * dtype(2.0**-23)
    w = -np.log(4.0 * u * (1.0 - u))
    p = np.where(w < 5.0, _horner(_CENTRAL, w - 2.5), _horner(_TAIL, np.sqrt(w) - 3.0))
    return np.sqrt(2.0) * p * (2.0 * u - 1.0)


def numpy_es(positions, mask, box, x, seed, atilde, h_normals, h_rel, dtype=np.float64):
    """Hard ES reduction of one realization with full N x N arrays.

    **Arguments:** positions (n, 3) in units of a_o, mask (n,) (True entries must come
    first, as `Sample.draw` returns them), periodic box edge, occupation x, the
    uint32 seed pair, a~, the (n,) h normals and h_rel.

    **Returns:** `(e_min / <E_tau>, <E_tau> / (g J_o))` for the real sites.
    """
    mask = np.asarray(mask, bool)
    n = int(mask.sum())
    pos = np.asarray(positions, dtype)[:n]
    c = gaussian_amplitudes(n, seed, dtype)
    r2 = np.zeros((n, n), dtype)
    for a in range(3):
        d = pos[:, a][:, None] - pos[:, a][None, :]
        d -= box * np.round(d / box)
        r2 += d * d
    np.fill_diagonal(r2, 1.0)
    u = c * (1.0 / x) / (r2 * np.sqrt(r2) + atilde**3)
    np.fill_diagonal(u, 0.0)
    sums = u.sum(axis=0)
    e0 = np.abs(sums).mean()
    e = sums + h_rel * e0 * np.asarray(h_normals, dtype)[:n]
    sign = np.where(e < 0, -1.0, 1.0)
    e_abs = np.abs(e)
    a_ij = 2.0 * u * sign[None, :] - e_abs[None, :]
    np.fill_diagonal(a_ij, -np.inf)
    e_mean = e_abs.mean()
    return a_ij.max(axis=1) / e_mean, e_mean
