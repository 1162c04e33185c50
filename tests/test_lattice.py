import math

import jax
import numpy as np
import pytest

import tlsjax as tj


def test_fcc_geometry():
    lat = tj.FCC(3)
    pos = lat.site_positions()
    assert pos.shape == (4 * 27, 3)
    assert lat.box == pytest.approx(3 * math.sqrt(2))
    d = pos[:, None, :] - pos[None, :, :]
    d -= lat.box * np.round(d / lat.box)
    r = np.sqrt((d**2).sum(-1))
    r = r[~np.eye(len(pos), dtype=bool)]
    assert r.min() == pytest.approx(1.0)  # nearest-neighbour distance a_o = 1
    assert np.sum(np.isclose(r, 1.0)) == 12 * len(pos)  # 12 nearest neighbours


def test_simple_cubic_geometry():
    lat = tj.SimpleCubic(4)
    assert lat.n_sites == 64 and lat.cell_edge == 1.0


def test_sample_counts_and_padding():
    s = tj.Sample(0.2, cells=18)
    assert s.lattice.n_sites == 4 * 18**3  # 23328 sites, ~4666 impurities
    assert s.n_sites_mean == pytest.approx(4665.6)
    r = s.draw(jax.random.key(0))
    n = int(r.n_sites)
    assert abs(n - 4665.6) < 8 * math.sqrt(23328 * 0.16)
    mask = np.asarray(r.mask)
    assert mask[:n].all() and not mask[n:].any()
    assert np.all(np.asarray(r.positions)[n:] == 0)
    full = tj.Sample(1.0, cells=2).draw(jax.random.key(1))
    assert int(full.n_sites) == 32 and full.capacity == 32


def test_draw_is_deterministic_and_vmappable():
    s = tj.Sample(0.3, cells=4)
    a = s.draw(jax.random.key(3))
    b = s.draw(jax.random.key(3))
    assert np.array_equal(a.positions, b.positions)
    batch = jax.vmap(s.draw)(jax.random.split(jax.random.key(0), 5))
    assert batch.positions.shape == (5, s.capacity, 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=0.0, cells=4), r"Sample\(x=...\)` must be finite and in \(0, 1\]"),
        (dict(x=1.2, cells=4), r"Sample\(x=...\)"),
        (dict(x=-0.5, cells=4), r"Sample\(x=...\)"),
        (dict(x=float("nan"), cells=4), r"Sample\(x=...\)"),
        (dict(x=0.2, cells=1), r"FCC\(cells=...\)` must be >= 2"),
        (dict(x=0.2, cells=2.5), r"FCC\(cells=...\)` must be an integer"),
        (dict(x=0.2), r"exactly one of"),
    ],
)
def test_bad_sample(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tj.Sample(**kwargs)


def test_capacity_overflow_raises():
    s = tj.Sample(0.5, cells=3, capacity=4)
    with pytest.raises(Exception, match="capacity"):
        jax.block_until_ready(s.draw(jax.random.key(0)).positions)
