"""Placing work on every device: a 1-D device mesh, sharded batches, sharded row blocks.

JAX's own machinery does the work (`jax.sharding.Mesh`, `NamedSharding`,
`jax.shard_map`); there is no process pool. One mesh axis, `DEVICE_AXIS`, spans the
devices. The same code runs on one CPU, on a GPU, on several (emulated or real)
devices of one host, and on several hosts after `jax.distributed.initialize()`
(then `jax.devices()` lists the devices of every host and each host runs the same
program).

Results do not depend on the number of devices: each device runs exactly the
computation that a single device would run on the same elements (a `jax.lax.map`
over its share, with the same body), and the shares are cut along axes whose
elements are independent (realizations, or rows/columns of the pair matrix).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Int, PyTree

from .._validate import check_int

#: The name of the single mesh axis.
DEVICE_AXIS = "devices"


def device_mesh(devices: int | Sequence[jax.Device] | Mesh | None = None) -> Mesh:
    """A 1-D `Mesh` over devices, axis name `DEVICE_AXIS`.

    **Arguments:**

    - `devices`: `None` for every device of every process (`jax.devices()`, the
      default), an integer n for the first n of them, a sequence of devices, or a
      `Mesh` (returned unchanged if it is 1-D).

    **Returns:** the `Mesh`.
    """
    if isinstance(devices, Mesh):
        if devices.devices.ndim != 1:
            raise ValueError("`device_mesh(devices=...)` must be a 1-D Mesh; got axes "
                             f"{devices.axis_names}")
        return devices
    available = jax.devices()
    if devices is None:
        chosen = available
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        n = check_int("device_mesh", "devices", devices, 1, len(available))
        chosen = available[:n]
    else:
        chosen = list(devices)
        if not chosen:
            raise ValueError("`device_mesh(devices=...)` must name at least one device")
    return Mesh(np.array(chosen), (DEVICE_AXIS,))


def mesh_size(mesh: Mesh | None) -> int:
    """Number of devices in `mesh` (1 for `None`)."""
    return 1 if mesh is None else int(mesh.devices.size)


def round_up(value: int, multiple: int) -> int:
    """The least multiple of `multiple` that is >= `value`."""
    return -(-value // multiple) * multiple


def shard_leading(tree: PyTree, mesh: Mesh) -> PyTree:
    """Put NumPy arrays on `mesh`, split along their leading axis.

    Built with `jax.make_array_from_callback`, so it also works across hosts (each
    host holds the same full array and contributes the shards of its own devices).
    The leading axis must be a multiple of the number of devices.
    """
    sharding = NamedSharding(mesh, P(DEVICE_AXIS))

    def put(x):
        x = np.asarray(x)
        if x.shape[0] % mesh_size(mesh):
            raise ValueError(f"leading axis {x.shape[0]} is not a multiple of the "
                             f"{mesh_size(mesh)} devices")
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree_util.tree_map(put, tree)


def to_host(tree: PyTree) -> PyTree:
    """NumPy copies of (possibly sharded, possibly multi-host) arrays.

    Arrays spread over the devices of several hosts are gathered with
    `jax.experimental.multihost_utils.process_allgather`, so every host gets the
    whole array.
    """

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree_util.tree_map(get, tree)


def sharded_map(fn: Callable, xs: PyTree, mesh: Mesh | None = None, *,
                batch_size: int | None = None) -> PyTree:
    """`jax.lax.map(fn, xs, batch_size=...)`, with the leading axis split over `mesh`.

    Each device maps `fn` over its own contiguous share of `xs` (in chunks of
    `batch_size` elements vmapped together, as `jax.lax.map` does), so element k of
    the result is computed by the same code whatever the number of devices. With
    `mesh=None` or a one-device mesh this is exactly `jax.lax.map`. The leading axis
    of `xs` must be a multiple of the mesh size (and of `batch_size` per device).
    `fn` may close over arrays: they are replicated on every device.

    `batch_size=1` maps without `vmap` (`jax.lax.map` would vmap chunks of one element:
    the same numbers, but under `vmap` every `lax.cond` computes both branches and every
    dynamic slice of a large operand becomes a gather; the Monte Carlo sweep ran 1.7x
    slower that way).
    """
    if batch_size == 1:
        batch_size = None
    if mesh_size(mesh) == 1:
        return jax.lax.map(fn, xs, batch_size=batch_size)

    def local(shard):
        return jax.lax.map(fn, shard, batch_size=batch_size)

    # check_vma=False: `eqx.error_if` (used for run-time argument checks) builds a
    # `lax.cond` whose branches JAX's varying-axis checker cannot reconcile.
    return jax.shard_map(local, mesh=mesh, in_specs=P(DEVICE_AXIS), out_specs=P(DEVICE_AXIS),
                         check_vma=False)(xs)


def replicate(tree: PyTree, mesh: Mesh | None) -> PyTree:
    """Constrain (inside `jit`) the arrays of `tree` to be whole on every device of `mesh`.

    Used on the output of `sharded_map` before it is reduced (sums, means): a reduction
    over an array split across devices adds per-device partial sums, in another order
    than one device would (results then differ in the last bit, depending on the data).
    Gathered first, every device reduces the whole array as a single device does.
    A no-op without a mesh or with one device.
    """
    if mesh_size(mesh) == 1:
        return tree
    sharding = NamedSharding(mesh, P())
    return jax.tree_util.tree_map(lambda x: jax.lax.with_sharding_constraint(x, sharding), tree)


def index_blocks(n: int, block_size: int, mesh: Mesh | None = None) -> Int[Array, "nb B"]:
    """Row (or column) indices 0..n-1 cut into blocks of `block_size`.

    The number of blocks is rounded up to a multiple of the mesh size; indices >= n
    are padding (masked by `Couplings.pairs`, dropped by the caller).
    """
    nb = round_up(-(-n // block_size), mesh_size(mesh))
    return jnp.arange(nb * block_size).reshape(nb, block_size)
