"""The S-tau densities of states, the tunneling strength C(E) and the crossover T_U.

docs/conventions.md section 4 (paper Sec. II B and Sec. III A, Eq. 3):

    C(E) = kappa_log [ g phi_tau(E / g J_o) + P_S(E) phi_S(E / J_o) ]

- phi_tau: the per-impurity density of the tau energies |E_tau| (from the ES reduction
  of a sample, `simulate`), made dimensionless with g J_o and normalized on E >= 0. It
  is smoothed with a Gaussian kernel (reflected at E = 0) so that it is differentiable
  in E and in a~.
- P_S(E): the ES reduction factor of the S DOS, soft Theta (differentiable), averaged
  over realizations, each with its own <E_tau> (E[K] = (E / <E_tau>) e_tau_mean g J_o).
  Width 0 is the hard Theta (the paper's algorithm; `StauDOS.hard()`), a step function
  of E, for comparison: the soft width is a regularization and moves T_U.
- phi_S: the mean-field Gaussian of width J_o folded onto E >= 0,
  phi_S(e) = sqrt(2 / pi) exp(-e^2 / 2) (a convention: sigma = J_o, per impurity).

The ES reduction depends only on (a~, h_rel) and the sample; g, J_o and kappa_log enter
by rescaling, so a `StauDOS` is built once (differentiably in a~ via `simulate`) and
evaluated at any energy. Two crossovers are reported: the full criterion
gamma_tau^2 n_tau = gamma_S^2 n_S, i.e. g phi_tau(E / g J_o) = P_S(E) phi_S(E / J_o)
(the two terms of C(E) are equal), and the paper's shortcut P_S(T_U) = 5 g.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validate import check_int, check_range, check_type, checked_inputs, is_traced
from .._xla import TABLE_COMPILE, quick_compile_wanted
from ..model._es import (
    DEFAULT_TOP_K,
    MAX_SOFT_WIDTH,
    SOFT_WIDTH_REASON,
    TOO_FEW_SITES,
    ESResult,
    simulate,
)
from ..model._lattice import OVER_CAPACITY, Sample, check_sample_size
from ..model._params import ModelParams
from ..model._theta import HardTheta, SoftTheta
from ._tls import AbstractTLS

#: Default sample of the S-tau DOS model: fcc, x = 0.2, L = 10 (~800 impurities).
DEFAULT_DOS_X = 0.2
DEFAULT_DOS_CELLS = 10
#: Default number of realizations (drawn from `jax.random.PRNGKey(DEFAULT_DOS_SEED)`).
DEFAULT_DOS_REALIZATIONS = 4
DEFAULT_DOS_SEED = 0
#: Default soft-Theta width of P_S, in units of <E_tau>: the largest width tried whose
#: T_U lies within 3% of the hard-Theta value (the paper's algorithm) on the default
#: sample, by both criteria (experiments/soft_width_bias.py, 4 realizations: 1.005 x
#: hard (full criterion), 0.996 (P_S = 5 g); at w = 0.01: 1.037 and 1.011; at the old
#: 0.02: 1.19 and 1.07).
DEFAULT_DOS_WIDTH = 0.005
#: Default kernel bandwidth of phi_tau, in units of <E_tau>.
DEFAULT_DOS_BANDWIDTH = 0.1
#: Energies per chunk when P_S is evaluated (bounds memory at chunk * R * n * top_k).
_CHUNK = 32


def log_phi_s(e: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """log phi_S(e), phi_S(e) = sqrt(2 / pi) exp(-e^2 / 2), e = E / J_o >= 0 (Sec. II A)."""
    return 0.5 * math.log(2.0 / math.pi) - 0.5 * jnp.square(e)


def phi_s(e: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """The mean-field S DOS per impurity in units of 1 / J_o, normalized on e >= 0."""
    return jnp.exp(log_phi_s(e))


class StauDOS(eqx.Module):
    """ES data of several realizations at fixed (a~, h_rel): P_S(E) and phi_tau(E).

    Build it with `stau_dos`. Energies passed to the methods are in units of g J_o.

    **Fields:**

    - `es`: an `ESResult` batched over realizations (leading axis R).
    - `width`: soft-Theta width of P_S, in units of <E_tau>, in [0, 1]; 0 is the hard
      Theta (a step function of E; not differentiable in E or a~).
    - `bandwidth`: Gaussian kernel bandwidth of phi_tau, in units of <E_tau> (> 0).
    """

    es: ESResult
    width: Float[Array, ""]
    bandwidth: Float[Array, ""]
    is_hard: bool = eqx.field(static=True)

    def __init__(self, es: ESResult, width=DEFAULT_DOS_WIDTH, bandwidth=DEFAULT_DOS_BANDWIDTH):
        if es.top.ndim != 3:
            raise ValueError("`StauDOS(es=...)` must be an ESResult batched over realizations "
                             f"(top of shape (R, n, k)); got top of shape {es.top.shape}")
        self.es = es
        check_range("StauDOS", "width", width, 0.0, MAX_SOFT_WIDTH, reason=SOFT_WIDTH_REASON)
        self.is_hard = not is_traced(width) and float(np.asarray(width)) == 0.0
        self.width = check_range("StauDOS", "width", width, 0.0, MAX_SOFT_WIDTH,
                                 lo_open=not self.is_hard, reason=SOFT_WIDTH_REASON)
        self.bandwidth = check_range("StauDOS", "bandwidth", bandwidth, 0.0, lo_open=True)

    def hard(self) -> StauDOS:
        """The same realizations with the hard Theta (the paper's step function).

        `top[:, 0]` of the ES results is E_min, so this costs nothing: use it to report
        the hard-Theta value beside every soft one (the soft width moves T_U).
        """
        return StauDOS(self.es, 0.0, self.bandwidth)

    @property
    def realizations(self) -> int:
        return self.es.top.shape[0]

    @property
    def e_tau_mean(self) -> Float[Array, ""]:
        """<E_tau> in units of g J_o, averaged over realizations."""
        return jnp.mean(self.es.e_tau_mean)

    def _map(self, fn, eps: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        """Apply a scalar function over `eps` in checkpointed chunks (bounded memory)."""
        eps = jnp.asarray(eps)
        flat = eps.reshape(-1)
        out = jax.lax.map(jax.checkpoint(fn), flat, batch_size=_CHUNK)
        return out.reshape(eps.shape)

    # The evaluations are jitted (compiled once per shape): called outside `jit` they
    # would otherwise re-trace their `lax.map` at every call.
    @eqx.filter_jit
    def log_p_s(self, eps: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        """log P_S at energies eps = E / (g J_o): log of the mean over realizations
        (-inf below the smallest E_min with the hard Theta)."""
        return self.log_p_s_body(eps)

    def log_p_s_body(self, eps):
        """`log_p_s` not compiled on its own: for a caller's trace that must not share
        the compiled `log_p_s` (`observables._table._tables`, traced within
        `checked_inputs`)."""
        if self.is_hard:
            def per_real(es_r, e):
                return jnp.log(HardTheta().p_s(es_r, (e / es_r.e_tau_mean)[None])[0])
        else:
            theta = SoftTheta(self.width)

            def per_real(es_r, e):
                return theta.log_p_s(es_r, (e / es_r.e_tau_mean)[None])[0]

        def one(e):

            lp = jax.vmap(per_real, (0, None))(self.es, e)
            return jax.nn.logsumexp(lp) - math.log(self.realizations)

        return self._map(one, eps)

    def p_s(self, eps: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        """P_S at energies eps = E / (g J_o) (soft Theta, mean over realizations)."""
        return jnp.exp(self.log_p_s(eps))

    @eqx.filter_jit
    def log_phi_tau(self, eps: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        """log phi_tau(eps): the density of |E_tau| per impurity in units of 1 / (g J_o).

        Gaussian kernel of bandwidth `bandwidth` <E_tau>, reflected at 0, pooled over
        realizations (each realization weighted equally).
        """
        return self.log_phi_tau_body(eps)

    def log_phi_tau_body(self, eps):
        """`log_phi_tau` not compiled on its own (see `log_p_s_body`)."""
        es = self.es
        pts = es.e_tau * es.e_tau_mean[:, None]  # (R, n), units g J_o
        h = (self.bandwidth * es.e_tau_mean)[:, None]
        n = es.n_sites.astype(pts.dtype)[:, None]
        log_w = jnp.where(es.mask, -jnp.log(n) - jnp.log(h) - 0.5 * math.log(2.0 * math.pi),
                          -jnp.inf)

        def one(e):
            lo = log_w - 0.5 * jnp.square((e - pts) / h)
            hi = log_w - 0.5 * jnp.square((e + pts) / h)
            both = jnp.stack([lo, hi])
            return jax.nn.logsumexp(both) - math.log(self.realizations)

        return self._map(one, eps)

    def phi_tau(self, eps: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        """phi_tau(eps), eps = E / (g J_o), normalized on eps >= 0."""
        return jnp.exp(self.log_phi_tau(eps))


def stau_dos(
    params: ModelParams | None = None,
    sample: Sample | None = None,
    key: PRNGKeyArray | None = None,
    *,
    realizations: int = DEFAULT_DOS_REALIZATIONS,
    top_k: int = DEFAULT_TOP_K,
    width=DEFAULT_DOS_WIDTH,
    bandwidth=DEFAULT_DOS_BANDWIDTH,
    block_size: int | None = None,
) -> StauDOS:
    """Run the soft-Theta ES reduction on a modest sample and keep what C(E) needs.

    Differentiable with respect to `params.atilde` and `params.h_rel` (through
    `simulate`); g, J_o and kappa_log do not enter here (they rescale, see `StauTLS`).

    **Arguments:**

    - `params`: `ModelParams` (default `ModelParams()`); only a~ and h_rel are used.
    - `sample`: the `Sample` (default fcc, x = 0.2, L = 10: ~800 impurities).
    - `key`: PRNG key (default `jax.random.PRNGKey(0)`), split into `realizations`.
    - `realizations`: number of realizations (default 4).
    - `top_k`: partners kept exactly per S spin for the soft Theta (default 8; the
      others enter through the tail term of `simulate(soft_width=...)`).
    - `width`: soft-Theta width in units of <E_tau>, in [0, 1] (default
      `DEFAULT_DOS_WIDTH` = 0.005, within 3% of the hard T_U; 0: the hard Theta).
    - `bandwidth`: phi_tau kernel bandwidth in units of <E_tau> (default 0.1).
    - `block_size`: as in `es_reduction`.

    **Returns:** a `StauDOS`.
    """
    params = ModelParams() if params is None else params
    sample = Sample(DEFAULT_DOS_X, DEFAULT_DOS_CELLS) if sample is None else sample
    key = jax.random.PRNGKey(DEFAULT_DOS_SEED) if key is None else key
    check_sample_size("stau_dos", sample)
    realizations = check_int("stau_dos", "realizations", realizations, 1)
    top_k = check_int("stau_dos", "top_k", top_k, 1)
    checked = check_range("stau_dos", "width", width, 0.0, MAX_SOFT_WIDTH,
                          reason=SOFT_WIDTH_REASON)
    hard = not is_traced(width) and float(np.asarray(width)) == 0.0
    width = checked
    batch = (_simulate_batch_quick if quick_compile_wanted() and not is_traced((params, key))
             else _simulate_batch)
    es = batch(sample, params, jax.random.split(key, realizations), top_k, block_size,
               None if hard else width)
    return StauDOS(_check_sites(es, sample), 0.0 if hard else width, bandwidth)


def _simulate_batch_body(sample, params, keys, top_k, block_size, width):
    # every input is checked before (`stau_dos`, `ModelParams`) and the checks of computed
    # values run on the result (`_check_sites`): a program without run-time checks is
    # one that JAX's persistent compilation cache can store
    with checked_inputs():
        return jax.vmap(lambda k: simulate(sample, params, k, top_k=top_k,
                                           block_size=block_size, soft_width=width))(keys)


_simulate_batch = eqx.filter_jit(_simulate_batch_body)
#: The same with `tlsjax._xla.TABLE_COMPILE`, where `quick_compile()` asks for it.
_simulate_batch_quick = eqx.filter_jit(_simulate_batch_body, compiler_options=TABLE_COMPILE)


def _check_sites(es, sample: Sample):
    """The checks `Sample.draw` and `es_reduction` make inside `jit`, on the result of
    `_simulate_batch`: at once for concrete values, at run time for traced ones."""
    n = es.n_sites if is_traced(es.n_sites) else np.asarray(es.n_sites)  # NumPy: no program
    for bad, msg in ((n > sample.capacity, OVER_CAPACITY), (n < 2, TOO_FEW_SITES)):
        if is_traced(n):
            es = eqx.tree_at(lambda e: e.top, es, eqx.error_if(es.top, jnp.any(bad), msg))
        elif np.any(np.asarray(bad)):
            raise ValueError(msg)
    return es


class StauTLS(AbstractTLS):
    """The S-tau tunneling strength C(E) (docs/conventions.md section 4) as two TLS populations.

    - tau TLSs: C_tau(E) = kappa_log g phi_tau(E / g J_o); coupling g gamma_S, so their
      relaxation rate carries s = g^2.
    - S TLSs: C_S(E) = kappa_log P_S(E) phi_S(E / J_o); coupling gamma_S, s = 1.

    Here gamma_S is the material's `gamma_t` (see `Material`). Well below T_U,
    C(E) -> kappa_log g phi_tau(0) (phi_tau(0) is an O(1) number measured from the
    sample); above T_U the S term takes over and C rises by up to ~1/g.

    **Fields:**

    - `dos`: a `StauDOS` (built at the a~, h_rel of `params`; see `stau_dos`).
    - `params`: `ModelParams` (g, J0 in K, kappa_log used here).
    """

    dos: StauDOS
    params: ModelParams

    @eqx.filter_jit
    def strength_parts(self, energies_K):
        return jnp.exp(self.log_strength_parts(energies_K))

    @eqx.filter_jit
    def log_strength_parts(self, energies_K):
        p = self.params
        e = jnp.asarray(energies_K)
        eps = e / (p.g * p.J0)
        log_c_tau = jnp.log(p.kappa_log * p.g) + self.dos.log_phi_tau(eps)
        log_c_s = jnp.log(p.kappa_log) + self.dos.log_p_s(eps) + log_phi_s(e / p.J0)
        return jnp.stack([log_c_tau, log_c_s])

    def coupling_scales(self):
        g = self.params.g
        return jnp.stack([g**2, jnp.ones_like(g)])


def stau_tls(params: ModelParams | None = None, **dos_kwargs) -> StauTLS:
    """`StauTLS(stau_dos(params, **dos_kwargs), params)`: C(E) for the given parameters."""
    params = ModelParams() if params is None else params
    return StauTLS(stau_dos(params, **dos_kwargs), params)


class Crossover(eqx.Module):
    """The crossover T_U by both criteria, in kelvin.

    **Fields:**

    - `full`: the root of g phi_tau(E / g J_o) = P_S(E) phi_S(E / J_o), i.e.
      gamma_tau^2 n_tau = gamma_S^2 n_S (Sec. II B).
    - `shortcut`: the root of P_S(E) = 5 g (Fig. 2 caption).
    - `e_tau`: <E_tau> in kelvin (mean over realizations), for T_U / <E_tau>.
    """

    full: Float[Array, ""]
    shortcut: Float[Array, ""]
    e_tau: Float[Array, ""]


# The two criteria as "S dominance" d(eps), increasing in eps = E / (g J_o): the S TLSs
# win where d >= 0. At module level, so that `optx.root_find` (jitted, keyed on the
# function) compiles once per shape rather than at every call.
def _full_dominance(eps, dos, prm):
    """ln(P_S phi_S) - ln(g phi_tau): gamma_S^2 n_S against gamma_tau^2 n_tau."""
    return (dos.log_p_s(eps) + log_phi_s(eps * prm.g) - jnp.log(prm.g)
            - dos.log_phi_tau(eps))


def _shortcut_dominance(eps, dos, prm):
    """ln P_S - ln(5 g)."""
    return dos.log_p_s(eps) - jnp.log(5.0 * prm.g)


def _log_bracketed(u, args):
    """d(e^u) where the bracket holds a sign change, else u - mid (a stand-in with a
    root, so that the bisection never fails; its result is then discarded)."""
    dominance, dos, prm, valid, mid = args
    return jnp.where(valid, dominance(jnp.exp(u), dos, prm), u - mid)


def _crossing(dominance, lo: float, hi: float, dos, prm, at_bound: str = "raise"):
    """The least eps >= 0 with d(eps) >= 0: 0 where the S TLSs dominate already at
    E -> 0 (no gap), else the bisection root in log eps on [lo, hi] (implicitly
    differentiated). A crossing in (0, lo), or none below hi, raises at run time
    (`at_bound="raise"`) or gives that end of the bracket with zero derivative
    (`at_bound="edge"`, for fits, which then report the target as unreachable)."""
    d0, d_lo, d_hi = (dominance(jnp.asarray(e, dos.es.top.dtype), dos, prm) for e in (0.0, lo, hi))
    no_gap = d0 >= 0.0
    valid = (d_lo < 0.0) & (d_hi > 0.0)
    ul, uh = math.log(lo), math.log(hi)
    mid = 0.5 * (ul + uh)
    import optimistix as optx  # here: importing it took ~0.2 s of every command

    sol = optx.root_find(
        _log_bracketed, optx.Bisection(rtol=1e-10, atol=1e-10, flip="detect"),
        jnp.asarray(mid), args=(dominance, dos, prm, valid, mid),
        options=dict(lower=ul, upper=uh), max_steps=200, throw=False)
    if at_bound == "edge":
        edge = jax.lax.stop_gradient(jnp.where(d_lo >= 0.0, lo, hi))
        return jnp.where(no_gap, 0.0, jnp.where(valid, jnp.exp(sol.value), edge))
    t = jnp.where(no_gap, 0.0, jnp.exp(sol.value))
    t = eqx.error_if(t, ~no_gap & (d_lo >= 0.0), _BELOW_LO)
    return eqx.error_if(t, ~no_gap & (d_hi <= 0.0), _ABOVE_HI)


_BELOW_LO = "`crossover(lo=...)`: T_U lies between 0 and lo g J_o; pass a smaller `lo`"
_ABOVE_HI = "`crossover(hi=...)`: no crossover below hi g J_o; pass a larger `hi`"


def crossover(tls: StauTLS, *, lo: float = 1e-3, hi: float = 20.0,
              at_bound: str = "raise") -> Crossover:
    """T_U of an S-tau model by the full criterion and by the shortcut P_S = 5 g.

    Each T_U is the least E >= 0 from which the S TLSs dominate: 0 where they do already
    at E -> 0 (no gap, e.g. strong random fields h_rel >~ 3), else the root in
    E / (g J_o) in [`lo`, `hi`] (bisection in log E). A root in (0, `lo`) or none
    below `hi` raises (pass another bracket), or with `at_bound="edge"` gives that end
    of the bracket (with zero derivative; fits use it and report the target as
    unreachable).

    **Returns:** a `Crossover` (kelvin).
    """
    # validate, then use the Python floats (under `jit` check_range returns a tracer)
    check_type("crossover", "tls", tls, StauTLS, "StauTLS (from stau_tls)")
    check_range("crossover", "lo", lo, 0.0, lo_open=True)
    check_range("crossover", "hi", hi, lo, lo_open=True)
    if at_bound not in ("raise", "edge"):
        raise ValueError(f"`crossover(at_bound=...)` must be 'raise' or 'edge'; got {at_bound!r}")
    try:
        return _crossover(tls, float(lo), float(hi), at_bound)
    except eqx.EquinoxRuntimeError as err:  # called outside `jit`: a plain ValueError
        for msg in (_BELOW_LO, _ABOVE_HI):
            if msg in str(err):
                raise ValueError(f"{msg} (lo = {lo:g}, hi = {hi:g})") from None
        raise


@eqx.filter_jit  # lo, hi, at_bound are Python values: static
def _crossover(tls: StauTLS, lo: float, hi: float, at_bound: str) -> Crossover:
    """The body of `crossover`, compiled once per DOS structure and bracket."""
    p, dos = tls.params, tls.dos
    gJ0 = p.g * p.J0
    t_full = _crossing(_full_dominance, lo, hi, dos, p, at_bound) * gJ0
    t_short = _crossing(_shortcut_dominance, lo, hi, dos, p, at_bound) * gJ0
    return Crossover(t_full, t_short, dos.e_tau_mean * gJ0)
