"""P_S(E) from an `ESResult`, with a hard or a soft Theta, and the crossover T_U.

Hard Theta (the paper's algorithm): P_S(E) = fraction of S spins with E_min < E.
Soft Theta (the differentiable relaxation, docs/conventions.md section 3):
Theta(z) -> sigmoid(z / w), p_i(E) = prod_j sigmoid((E - a_ij) / w), computed as
a sum of log-sigmoids over the `top_k` largest a_ij of each row. The partners left
out each contribute log sigmoid((E - a) / w) with a <= a_(k), so the truncation
error of log p_i is at most tail_count_i * softplus((a_(k) - E) / w);
`SoftTheta.truncation_bound` turns that into a bound on |P_S| error.

T_U is the energy where P_S(T_U) = 5 g (the paper's shortcut for
gamma_tau^2 n_tau = gamma_S^2 n_S, Fig. 2 caption). Energies of S spins are >= 0, and
a spin with E_min <= 0 is counted by P_S(E) at every E > 0 (no tau partner stops it);
where such spins are at least 5 g of all (strong random fields, h_rel >~ 3), P_S(0+) >=
5 g and T_U = 0: the S spins are not gapped and dominate at every energy.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._validate import check_grid, check_range, check_type, is_traced, runtime_check
from ._es import MAX_SOFT_WIDTH, SOFT_WIDTH_REASON, ESResult


def _check_energies(energies) -> Float[Array, " m"]:
    return check_grid("P_S", "energies", energies)


def _valid_count(es: ESResult) -> Float[Array, ""]:
    return es.n_sites.astype(es.top.dtype)


class AbstractTheta(eqx.Module):
    """How the ES product of step functions is evaluated."""

    def p_s(self, es: ESResult, energies) -> Float[Array, " m"]:
        """P_S on a grid of energies in units of <E_tau>."""
        raise NotImplementedError

    def crossover(self, es: ESResult, g) -> Float[Array, ""]:
        """T_U / <E_tau>: the energy where P_S = 5 g."""
        raise NotImplementedError


class HardTheta(AbstractTheta):
    """The paper's step function: P_S(E) = #(E_min < E) / N."""

    def p_s(self, es, energies):
        energies = _check_energies(energies)
        below = (es.e_min[None, :] < energies[:, None]) & es.mask[None, :]
        # count x (1 / N), written out: XLA turns `count / N` into this product in some
        # compiled contexts and not in others (1 ulp apart), so results would depend on
        # the number of devices or processes; with the product they do not.
        return jnp.sum(below, axis=1) * (1.0 / _valid_count(es))

    def crossover(self, es, g):
        """The m-th smallest E_min, m = ceil(5 g N): the least E >= 0 with P_S(E+) >= 5 g
        (0 where P_S(0+) >= 5 g already, see the module docstring)."""
        target = _check_target(g)
        e = jnp.sort(jnp.where(es.mask, es.e_min, jnp.inf))
        m = jnp.ceil(target * _valid_count(es)).astype(jnp.int32)
        return jnp.maximum(e[jnp.clip(m - 1, 0, e.shape[0] - 1)], 0.0)


class SoftTheta(AbstractTheta):
    """Theta(z) -> sigmoid(z / w); `width` w in units of <E_tau>, in (0, `MAX_SOFT_WIDTH` = 1].

    The soft Theta is a regularization: at finite w, P_S and T_U differ from the hard
    (paper's) values, increasingly with w and with the number of impurities
    (experiments/soft_width_bias.py measures T_U(w) / T_U(hard)).

    p_i(E) = prod_j sigmoid((E - a_ij) / w) over every partner j (docs/conventions.md section 3).
    The `top_k` largest a_ij of each row enter exactly; the others (far partners, and
    the many tau spins with small E_tau) through the row's `tail_lse`, to first order:
    sum_{j not kept} log sigmoid((E - a_ij)/w) ~ -exp(tail_lse_i - E/w), whose error is
    bounded in `truncation_bound`. This needs an `ESResult` made with
    `soft_width=width` (or one that keeps every partner). Leaving the tail out is not
    a small error for large samples: each of the N tau spins contributes a factor
    sigmoid((E + E_tau_j)/w) < 1, a total of ~exp(-N phi_tau(0) w exp(-E/w)).
    `allow_truncation=True` accepts a top-k-only result anyway (then
    `truncation_bound` reports the size of what was left out).
    """

    width: Float[Array, ""]
    allow_truncation: bool = eqx.field(static=True)

    def __init__(self, width, allow_truncation: bool = False):
        self.width = check_range("SoftTheta", "width", width, 0.0, MAX_SOFT_WIDTH, lo_open=True,
                                 reason=SOFT_WIDTH_REASON)
        self.allow_truncation = bool(allow_truncation)

    def _parts(self, es: ESResult):
        """(top, tail_lse or None), after checking that the tail is the one for this width
        (or that nothing was left out)."""
        if es.tail_lse is None:
            if self.allow_truncation:
                return es.top, None
            msg = ("`SoftTheta.p_s(es=...)`: the ES result keeps only the top_k largest "
                   "a_ij of each row; run it with `soft_width=width` (or use "
                   "SoftTheta(allow_truncation=True) to accept the truncation)")
            if is_traced(es.tail_count):
                return runtime_check(es.top, jnp.any(es.tail_count > 0), msg), None
            if int(np.max(np.asarray(es.tail_count))) > 0:
                raise ValueError(msg)
            return es.top, None
        msg = "`SoftTheta(width=...)` must equal the `soft_width` the ES result was made with"
        if is_traced((self.width, es.soft_width)):
            same = jnp.allclose(self.width, es.soft_width, rtol=1e-6)
            return es.top, runtime_check(es.tail_lse, ~same, msg)
        if not np.allclose(np.asarray(self.width), np.asarray(es.soft_width), rtol=1e-6):
            raise ValueError(f"{msg} (width {float(self.width):g}, soft_width "
                             f"{float(es.soft_width):g})")
        return es.top, es.tail_lse

    def _log_p_top(self, top, energies) -> Float[Array, "m n"]:
        """sum over the kept partners of log sigmoid((E - a_ij) / w)."""
        keep = jnp.isfinite(top)  # (n, k)
        safe_top = jnp.where(keep, top, 0.0)
        z = (energies[:, None, None] - safe_top[None]) / self.width
        return jnp.sum(jnp.where(keep[None], jax.nn.log_sigmoid(z), 0.0), axis=-1)

    def _tail_term(self, tail_lse, energies) -> Float[Array, "m n"]:
        """exp(tail_lse - E/w) (capped at e^60: p is 0 there either way)."""
        x = tail_lse[None, :] - energies[:, None] / self.width
        return jnp.exp(jnp.minimum(x, 60.0))

    def log_p(self, es: ESResult, energies) -> Float[Array, "m n"]:
        """log p_i(E) = sum_j log sigmoid((E - a_ij) / w) (kept partners + tail)."""
        top, tail_lse = self._parts(es)
        lp = self._log_p_top(top, energies)
        if tail_lse is not None:
            lp = lp - self._tail_term(tail_lse, energies)
        return lp

    def log_p_s(self, es: ESResult, energies) -> Float[Array, " m"]:
        """log P_S(E), computed stably as a log-mean-exp over S spins."""
        lp = self.log_p(es, energies)
        lp = jnp.where(es.mask[None, :], lp, -jnp.inf)
        return jax.nn.logsumexp(lp, axis=1) - jnp.log(_valid_count(es))

    def p_s(self, es, energies):
        energies = _check_energies(energies)
        return jnp.exp(self.log_p_s(es, energies))

    def truncation_bound(self, es: ESResult, energies) -> Float[Array, " m"]:
        """Upper bound on |P_S(computed) - P_S(product over every partner)| per energy.

        With a tail (`soft_width`): e^x >= softplus(x) >= e^x - e^{2x}/2, and each left-out
        partner has x = (a_ij - E)/w <= x_k = (a_(k) - E)/w, so the true log p_i lies in
        [lp_i, lp_i + err_i] with err_i = e^{x_k} exp(tail_lse_i - E/w) / 2, and also below
        the kept partners' product. Without a tail: each of the tail_count_i left-out
        factors is in [sigmoid(-x_k), 1], so log p_i lies in [lp_i - err_i, lp_i] with
        err_i = tail_count_i softplus(x_k).
        """
        energies = _check_energies(energies)
        top, tail_lse = self._parts(es)
        lp_top = self._log_p_top(top, energies)
        last = top[:, -1]  # -inf where a row has fewer than k partners
        x_k = (last[None, :] - energies[:, None]) / self.width
        if tail_lse is None:
            err = es.tail_count[None, :] * jax.nn.softplus(jnp.where(jnp.isfinite(x_k), x_k,
                                                                      -60.0))
            bound = jnp.exp(lp_top) * -jnp.expm1(-err)
        else:
            tail = self._tail_term(tail_lse, energies)
            lp = lp_top - tail
            # capped: beyond e^60 the bound is min(...)'s first term anyway
            err = jnp.minimum(0.5 * jnp.exp(jnp.minimum(x_k, 60.0)) * tail, 60.0)
            bound = jnp.minimum(jnp.exp(lp_top) - jnp.exp(lp), jnp.exp(lp) * jnp.expm1(err))
        bound = jnp.where(es.mask[None, :], bound, 0.0)
        return jnp.sum(bound, axis=1) / _valid_count(es)

    def crossover(self, es, g):
        """Root of log P_S(E) = log(5 g) by bisection, differentiated implicitly; 0 where
        the root is below 0 (P_S(0) >= 5 g: no gap, see the module docstring)."""
        target = _check_target(g)
        lo = jnp.min(jnp.where(es.mask, es.e_min, jnp.inf)) - 50.0 * self.width
        hi = jnp.max(jnp.where(es.mask, es.e_min, -jnp.inf)) + 50.0 * self.width

        # Bisection stops when the bracket is below atol + rtol |E| AND |log P_S - log 5g|
        # < atol; float32 cannot resolve log P_S much below 1e-5 where P_S is steep. In
        # float64, 1e-14 keeps the root's error far below what finite differences of T_U
        # with steps ~1e-8 (w = 0.005) resolve (1e-12 left errors of 5e-5 relative).
        tol = 1e-5 if es.top.dtype == jnp.float32 else 1e-14
        import optimistix as optx  # here: importing it took ~0.2 s of every command

        sol = optx.root_find(
            _log_p_s_minus_target,
            optx.Bisection(rtol=tol, atol=tol, flip="detect", expand_if_necessary=True),
            0.5 * (lo + hi),
            args=(self, es, target),
            options=dict(lower=lo, upper=hi),
            max_steps=256,
        )
        return jnp.maximum(sol.value, 0.0)


def _log_p_s_minus_target(e, args):
    """log P_S(e) - log(5 g), the function whose root is T_U. At module level, so that
    `optx.root_find` (jitted, keyed on the function) compiles once per shape."""
    theta, es, target = args
    return theta.log_p_s(es, e[None])[0] - jnp.log(target)


def _check_target(g):
    """5 g must lie in (0, 1) for the criterion P_S(T_U) = 5 g to have a solution."""
    if is_traced(g):
        return check_range("crossover", "5*g", 5.0 * jnp.asarray(g), 0.0, 1.0,
                           lo_open=True, hi_open=True)
    check_range("crossover", "g", g, 0.0, 0.2, lo_open=True, hi_open=True)
    return 5.0 * jnp.asarray(g, dtype=jnp.result_type(float))


def theta_from_width(width: float) -> AbstractTheta:
    """`HardTheta()` for width 0, else `SoftTheta(width)`; widths outside [0, 1] raise."""
    check_range("theta_from_width", "width", width, 0.0, MAX_SOFT_WIDTH,
                reason=SOFT_WIDTH_REASON)
    if not is_traced(width) and float(width) == 0.0:
        return HardTheta()
    return SoftTheta(width)


def p_s(es: ESResult, energies, theta: AbstractTheta | None = None) -> Float[Array, " m"]:
    """P_S(E) on a grid of energies (units of <E_tau>, >= 0); hard Theta by default."""
    check_type("p_s", "es", es, ESResult, "ESResult (from es_reduction or simulate)")
    check_type("p_s", "theta", theta, (AbstractTheta, type(None)), "HardTheta, SoftTheta or None")
    if not is_traced(energies):
        check_range("p_s", "energies", energies, 0.0)
    return (theta or HardTheta()).p_s(es, energies)


def crossover_temperature(es: ESResult, g, theta: AbstractTheta | None = None
                          ) -> Float[Array, ""]:
    """T_U / <E_tau> from P_S(T_U) = 5 g (Fig. 2 caption); hard Theta by default.

    With a `SoftTheta`, the result is differentiable (implicit function theorem
    through the bisection root, `optimistix.ImplicitAdjoint`).
    """
    return (theta or HardTheta()).crossover(es, g)
