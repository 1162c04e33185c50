"""Colour scales that one extreme value cannot wash out."""

from __future__ import annotations

import numpy as np


def robust_diverging_norm(values, *, linear_fraction: float = 0.25):
    """A symmetric-log colour scale for signed values spanning decades.

    Linear within +-t, logarithmic beyond, up to the largest |value| (nothing is
    clipped). t is the `linear_fraction` quantile of the nonzero |values| (at least
    1e-3 of the largest), so that most cells fall in the logarithmic part and a single
    large entry (e.g. 27 among values of order 0.1-1) takes only its share of the
    colour range instead of pushing every other cell to white.

    **Returns:** a `matplotlib.colors.SymLogNorm`.
    """
    from matplotlib.colors import SymLogNorm

    a = np.abs(np.asarray(values, dtype=float))
    a = a[np.isfinite(a) & (a > 0)]
    vmax = float(a.max()) if a.size else 1.0
    t = float(np.quantile(a, linear_fraction)) if a.size else 1.0
    t = min(max(t, 1e-3 * vmax, 1e-12), vmax)
    return SymLogNorm(linthresh=t, linscale=1.0, vmin=-vmax, vmax=vmax, base=10)
