"""Disorder averages: realizations streamed in batches with running statistics."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from jaxtyping import PRNGKeyArray, PyTree

from ._validate import check_int


class RunningStats:
    """Running mean and standard error of a pytree of arrays (Welford, float64).

    `update(batch)` takes a pytree whose leaves have a leading realization axis.
    """

    def __init__(self):
        self.count = 0
        self._mean = None
        self._m2 = None
        self._treedef = None

    def update(self, batch: PyTree) -> None:
        leaves, treedef = jax.tree_util.tree_flatten(batch)
        leaves = [np.asarray(x, dtype=np.float64) for x in leaves]
        if self._treedef is None:
            self._treedef = treedef
            self._mean = [np.zeros(x.shape[1:]) for x in leaves]
            self._m2 = [np.zeros(x.shape[1:]) for x in leaves]
        elif treedef != self._treedef:
            raise ValueError("`RunningStats.update`: batch structure changed between updates")
        for r in range(leaves[0].shape[0]):
            self.count += 1
            for k, leaf in enumerate(leaves):
                delta = leaf[r] - self._mean[k]
                self._mean[k] += delta / self.count
                self._m2[k] += delta * (leaf[r] - self._mean[k])

    @property
    def mean(self) -> PyTree:
        if self._treedef is None:
            raise ValueError("`RunningStats.mean`: no realization has been added")
        return jax.tree_util.tree_unflatten(self._treedef, [m.copy() for m in self._mean])

    @property
    def stderr(self) -> PyTree:
        """Standard error of the mean, sqrt(var / n) with the n - 1 variance; NaN if n < 2."""
        if self._treedef is None:
            raise ValueError("`RunningStats.stderr`: no realization has been added")
        n = self.count
        if n < 2:
            errs = [np.full_like(m, np.nan) for m in self._m2]
        else:
            errs = [np.sqrt(m2 / (n - 1) / n) for m2 in self._m2]
        return jax.tree_util.tree_unflatten(self._treedef, errs)


def mean_and_stderr(values, axis: int = 0):
    """Mean and standard error along `axis` (n - 1 variance; NaN stderr for n < 2)."""
    v = np.asarray(values, dtype=np.float64)
    n = v.shape[axis]
    if n == 0:
        raise ValueError("`mean_and_stderr(values=...)` needs at least one value along `axis`")
    mean = v.mean(axis=axis)
    if n < 2:
        return mean, np.full_like(mean, np.nan)
    return mean, v.std(axis=axis, ddof=1) / np.sqrt(n)


def disorder_average(
    fn: Callable[[PRNGKeyArray], PyTree],
    keys: PRNGKeyArray,
    *,
    batch_size: int = 1,
    progress: bool = False,
    description: str = "realizations",
) -> tuple[PyTree, PyTree, int]:
    """Average `fn(key)` over disorder realizations.

    `fn` is `jax.vmap`ped over batches of `batch_size` keys and jit-compiled once;
    batches run one after another (memory stays that of one batch), with a
    progress bar if `progress`. A `KeyboardInterrupt` stops the loop and returns
    the statistics of the realizations finished so far.

    **Returns:** `(mean, stderr, count)` as pytrees of NumPy arrays.
    """
    n = keys.shape[0]
    check_int("disorder_average", "number of keys", n, 1)
    batch_size = min(check_int("disorder_average", "batch_size", batch_size, 1), n)
    batched = jax.jit(jax.vmap(fn))
    stats = RunningStats()
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=description, unit="real")
    try:
        for start in starts:
            stats.update(batched(keys[start:start + batch_size]))
            if progress:
                bar.update(min(batch_size, n - start))
    except KeyboardInterrupt:
        if stats.count == 0:
            raise
    finally:
        if progress:
            bar.close()
    return stats.mean, stats.stderr, stats.count
