"""The in-block sequential attempts of the blocked Metropolis sweep (`_mc.sweep`), two
ways, and the one place where the way is chosen.

- `"xla"`: `block_attempts_xla`, a `lax.scan` over the B spins of a block. On a CPU this
  is the fastest; on a GPU every step of the scan is one or more kernel launches, so a
  sweep of 2n spins costs ~2n launches whatever the number of replicas (latency bound).
  It is the reference.
- `"pallas"`: `block_attempts_pallas`, one Pallas kernel (Triton lowering on GPUs) per
  block that runs the B attempts with the (R, B) spins, fields and thresholds and the
  B x B couplings held on chip. Elsewhere it runs in Pallas' interpret mode (slow: for
  tests only).

Both make the same floating-point operations in the same order on each element, so with
the same thresholds they give the same spins (`tests/test_mc_kernel.py`).
`resolve_kernel("auto")` is "pallas" on GPUs and "xla" on every other backend.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

# Pallas' Triton part is imported where a kernel is traced: only the "pallas" way uses it,
# and its import took ~0.04 s of every command.

#: The ways of running a block's attempts (`resolve_kernel`).
KERNELS = ("auto", "xla", "pallas")

#: Replica rows per Pallas program (the grid runs over tiles of this many replicas).
_ROW_TILE = 16


def resolve_kernel(kernel: str, backend: str | None = None) -> str:
    """The way a block's attempts run: `kernel` if "xla" or "pallas"; for "auto", "pallas"
    on a GPU backend and "xla" elsewhere (`backend`: default `jax.default_backend()`)."""
    if kernel not in KERNELS:
        raise ValueError(f"`kernel` must be one of {', '.join(KERNELS)}; got {kernel!r}")
    if kernel != "auto":
        return kernel
    backend = jax.default_backend() if backend is None else backend
    return "pallas" if backend == "gpu" else "xla"


def block_attempts(kernel: str):
    """The block-attempts function of `kernel` ("auto", "xla" or "pallas"): it takes the
    (R, B) spins, fields and thresholds, the (B,) movable mask and the (B, B) couplings of
    a block and returns the new (R, B) spins."""
    return block_attempts_pallas if resolve_kernel(kernel) == "pallas" else block_attempts_xla


def block_attempts_xla(s_b, l_b, thr_b, mov_b, kbb):
    """Sequential attempts on one block: (R, B) spins, fields, thresholds; (B,) movable;
    (B, B) couplings. Returns the new (R, B) spins.

    A `lax.scan` over the B spins: the per-spin inputs arrive as scanned slices and the
    carry is the (B, R) block of fields, corrected after each flip by one row of the
    B x B couplings (3x faster on CPUs than indexing (R, B) carries in a `fori_loop`).
    """

    def step(lam, x):
        t, s_t, thr_t, mov_t, k_t = x
        d = jnp.where((-2.0 * s_t * lam[t] < thr_t) & mov_t, -2.0 * s_t, 0.0)
        return lam + k_t[:, None] * d[None, :], s_t + d

    _, s_new = jax.lax.scan(step, l_b.T, (jnp.arange(s_b.shape[1]), s_b.T, thr_b.T, mov_b, kbb))
    return s_new.T


def _attempts_kernel(s_ref, l_ref, thr_ref, k_ref, out_ref):
    """Pallas body: the B attempts on an (r, B) tile of replicas. Column t is read with a
    one-hot mask (a sum with a single nonzero term: exact), so no value is indexed
    dynamically; row t of the couplings is loaded from its ref."""
    from jax.experimental import pallas as pl

    s, lam, thr = s_ref[...], l_ref[...], thr_ref[...]
    cols = jax.lax.broadcasted_iota(jnp.int32, s.shape, 1)
    zero = jnp.zeros((), s.dtype)

    def step(t, carry):
        s, lam = carry
        hot = cols == t
        s_t = jnp.sum(jnp.where(hot, s, zero), axis=1, keepdims=True)
        lam_t = jnp.sum(jnp.where(hot, lam, zero), axis=1, keepdims=True)
        thr_t = jnp.sum(jnp.where(hot, thr, zero), axis=1, keepdims=True)
        d = jnp.where(-2.0 * s_t * lam_t < thr_t, -2.0 * s_t, zero)
        k_t = k_ref[pl.ds(t, 1), :]
        return s + jnp.where(hot, d, zero), lam + d * k_t

    s, _ = jax.lax.fori_loop(0, s.shape[1], step, (s, lam))
    out_ref[...] = s


def _pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


@functools.partial(jax.jit, static_argnames="interpret")
def _pallas_call(s_b, l_b, thr_b, kbb, interpret):
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plt

    r, b = s_b.shape
    tile = min(r, _ROW_TILE)
    row = pl.BlockSpec((tile, b), lambda i: (i, 0))
    params = None if interpret else plt.CompilerParams(num_warps=4)
    return pl.pallas_call(
        _attempts_kernel, out_shape=jax.ShapeDtypeStruct(s_b.shape, s_b.dtype), grid=(r // tile,),
        in_specs=[row, row, row, pl.BlockSpec((b, b), lambda i: (0, 0))], out_specs=row,
        interpret=interpret, compiler_params=params)(s_b, l_b, thr_b, kbb)


def block_attempts_pallas(s_b, l_b, thr_b, mov_b, kbb):
    """As `block_attempts_xla`, as one Pallas kernel (Triton on GPUs, interpret mode on
    other backends). Spins that may not move get the threshold -inf (no spin passes it);
    the replica axis is padded to a power of two (Triton's block shapes) with such rows,
    and so is B (padded spins never flip and couple to nothing)."""
    r, b = s_b.shape
    rp, bp = _pow2(r), _pow2(b)
    thr = jnp.where(mov_b[None, :], thr_b, -jnp.inf).astype(s_b.dtype)

    def pad(a, value):
        return jnp.pad(a, ((0, rp - r), (0, bp - b)), constant_values=value)

    kbb = jnp.pad(kbb.astype(s_b.dtype), ((0, bp - b), (0, bp - b)))
    out = _pallas_call(pad(s_b, 1.0), pad(l_b, 0.0), pad(thr, -jnp.inf), kbb,
                       interpret=jax.default_backend() != "gpu")
    return out[:r, :b]
