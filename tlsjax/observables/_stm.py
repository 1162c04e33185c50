"""Standard-tunneling-model observables for any C(E) (docs/conventions.md section 5).

One code path for the plain model (`ConstantC`) and the S-tau model (`StauTLS`): every
function takes an `AbstractTLS` (populations p with tunneling strengths C_p(E) and
relaxation-rate scales s_p) and a `Material`. SI units throughout: temperatures T in
kelvin, angular frequencies omega in rad/s, lengths in m, kappa in W/(m K), specific
heats in J/(m^3 K).

Formulas (references: Phillips, Rep. Prog. Phys. 50, 1657 (1987); Hunklinger &
Raychaudhuri, Prog. Low Temp. Phys. 9, 265 (1986); Jackle, Z. Phys. 257, 212 (1972)):

- C_alpha(E) = C(E) (gamma_alpha / gamma_t)^2 (v_t / v_alpha)^2 (`Material.strength_factors`).
- Resonant: l^-1 = (pi C_alpha(hbar omega) omega / v_alpha) tanh(hbar omega / 2 k_B T),
  Q^-1_res = pi C_alpha(hbar omega) tanh(hbar omega / 2 k_B T).
- Relaxation: tau^-1 = r s_p A E^3 coth(E / 2 k_B T), r = (Delta_o / E)^2, and
  Q^-1_rel = sum_p int_0^inf dE C_p(E) sech^2(E / 2 k_B T) / (2 k_B T)
             int_{r_min}^1 dr (sqrt(1 - r) / r) omega tau / (1 + omega^2 tau^2);
  (Delta v / v)_rel has 1 / (1 + omega^2 tau^2) in place of omega tau / (...) and a
  factor -1/2.
- (Delta v / v)_res(T) - (Delta v / v)_res(T0)
  = -int_0^inf dE (C(E) / E) [tanh(E / 2 k_B T) - tanh(E / 2 k_B T0)]  (hbar omega << k_B T),
  which is C ln(T / T0) for constant C.
- kappa = (1/3) sum over the three acoustic branches (l, t, t) of
  int d omega c(omega) v l(omega, T), with Matthiessen's rule
  l^-1 = l^-1_res + A_R omega^4 + 1 / l_b. For constant C and resonant scattering only,
  kappa = (k_B^3 T^2 / (6 pi hbar^2)) (1 / (v_l C_l) + 2 / (v_t C_t))
  (`thermal_conductivity_closed_form`).
- C_v,TLS = int dE n(E) k_B (E / 2 k_B T)^2 sech^2(E / 2 k_B T), with
  n(E) = sum_p (P_p(E) / 2) ln(4 t / tau_min,p(E)), P_p = C_p rho v_t^2 / (s_p gamma_t^2)
  (P as in P(eps, Delta_o) = P / Delta_o); for constant n this is (pi^2 / 6) n k_B^2 T.
- C_v,Debye = (2 pi^2 k_B^4 T^3 / (15 hbar^3)) (1 / v_l^3 + 2 / v_t^3).

Integrals use fixed composite Gauss-Legendre rules (nodes from NumPy at import), except
the relaxation integral over r, which is in closed form (`_r_integral`); so
everything is jit-compatible and differentiable; outputs are vectorized over
temperature (first axis) and frequency (second axis). Products of SI constants, C(E),
omega and powers of T span far more than float32's range (1e-38 to 3e38) for
reasonable inputs, so kappa, l^-1 and Q^-1_res are assembled from logarithms and the
relaxation kernels are written in ln(omega tau): a result is inf or 0 only if its
value is. Temperatures must lie in [`T_MIN_K`, `T_MAX_K`] = [1e-6, 1e4] K.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._validate import check_grid, check_range, is_traced
from ._material import EV, HBAR, K_B, Material
from ._tls import AbstractTLS, ConstantC

#: Default lower cutoff r_min = (Delta_o,min / E)^2 of the relaxation integrals.
DEFAULT_R_MIN = 1e-24
#: hbar / k_B in K s: x = hbar omega / k_B T = _HBAR_OVER_KB omega / T.
_HBAR_OVER_KB = HBAR / K_B
#: k_B (k_B / hbar)^3 / (6 pi^2): kappa prefactor per T^3 (SI constants combined in
#: Python floats so that float32 results stay finite).
_KAPPA_CONST = K_B * (K_B / HBAR) ** 3 / (6.0 * math.pi**2)
#: k_B^2 / eV^2, for C_v = k_B^2 T int n with n ~ C rho v^2 / gamma^2.
_CV_CONST = K_B**2 / EV**2
#: Temperatures accepted by every observable, in K: the model (TLSs in a solid, Debye
#: phonons) needs T far below the melting point of every solid (< 4e3 K); below 1 uK no
#: solid's phonons have been measured, and kappa ~ T^2 would leave float32's range near
#: 1e-18 K.
T_MIN_K, T_MAX_K = 1e-6, 1e4
_T_REASON = ("TLSs and Debye phonons in a solid: from 1 uK to far above every melting "
             "point")
#: Smallest angular frequency accepted, in rad/s (1.6e-12 Hz: a period of 20000
#: years, beyond any measurement; below it the relaxation peak can leave the quadrature).
OMEGA_MIN = 1e-11
_OMEGA_REASON = "a period of 20000 years, beyond any measurement of Q^-1 or sound velocity"
#: Temperatures per batch in the `lax.map` over T (bounds memory).
_T_BATCH = 8
_ORDER = 8


def _gauss_legendre(edges, order: int = _ORDER) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes and weights on the panels given by `edges`."""
    x, w = np.polynomial.legendre.leggauss(order)
    a, b = np.asarray(edges[:-1])[:, None], np.asarray(edges[1:])[:, None]
    nodes = 0.5 * (b - a) * x[None] + 0.5 * (b + a)
    weights = 0.5 * (b - a) * w[None]
    return nodes.reshape(-1), weights.reshape(-1)


#: x = E / k_B T (or hbar omega / k_B T): panels [0, 1e-4] then log-spaced to 60.
_X_NODES, _X_WEIGHTS = _gauss_legendre(np.concatenate([[0.0], np.geomspace(1e-4, 60.0, 31)]))
#: The relaxation integrals also need tiny x: at low frequencies the TLSs with
#: omega tau ~ 1 sit near x* = (omega / (2 s A T^3 r_min))^(1/2), far below 1e-4 (x* =
#: 2e-7 at 1e-30 Hz, 1 K, r_min = 1e-24), and Q^-1_rel ~ C x* comes from there. So
#: [1e-24, 1e-4] is covered by one-decade panels (error < 1e-4 relative at 1e-30 Hz),
#: and `OMEGA_MIN` keeps x* > 1e-20 for any material, T <= T_MAX_K and r_min <= 1/2.
_XR_NODES, _XR_WEIGHTS = _gauss_legendre(np.concatenate(
    [[0.0], np.geomspace(1e-24, 1e-4, 21), np.geomspace(1e-4, 60.0, 31)[1:]]))
#: ln of the kappa integrand's x-dependent factors: weights times x^4 e^x / (e^x - 1)^2
#: = x^4 / (4 sinh^2(x / 2)), and ln tanh(x / 2) (float64 here, rounded once).
_X_LOG_HEAT = (np.log(_X_WEIGHTS) + 4.0 * np.log(_X_NODES) - np.log(4.0)
               - 2.0 * np.log(np.sinh(0.5 * _X_NODES)))
_X_LOG_TANH = np.log(np.tanh(0.5 * _X_NODES))
#: t in [0, 1] for log-energy integrals between per-temperature bounds.
_T_NODES, _T_WEIGHTS = _gauss_legendre(np.linspace(0.0, 1.0, 41))


def _check_within(where: str, name: str, arr, lo: float, hi: float, reason: str):
    """`check_range` of a checked grid, tolerating the float32 rounding of the bounds
    themselves (1e-6 becomes 9.99999997e-07); a refusal names the exact bounds."""
    slack_lo, slack_hi = lo * (1 - 1e-6), hi * (1 + 1e-6)
    if is_traced(arr):
        return check_range(where, name, arr, slack_lo, slack_hi, reason=reason)
    a = np.asarray(arr, dtype=float)
    if np.any(a < slack_lo) or np.any(a > slack_hi):
        check_range(where, name, a, lo, hi, reason=reason)
    return arr


def _temperatures(where: str, T) -> Float[Array, " nT"]:
    """Check a temperature grid: 1-D, finite, in [T_MIN_K, T_MAX_K]."""
    arr = check_grid(where, "T", T, positive=True)
    return _check_within(where, "T", arr, T_MIN_K, T_MAX_K, _T_REASON)


def _omegas(where: str, omega) -> Float[Array, " nw"]:
    """Check an angular-frequency grid: 1-D, finite, >= OMEGA_MIN."""
    arr = check_grid(where, "omega", omega, positive=True)
    return _check_within(where, "omega", arr, OMEGA_MIN, math.inf, _OMEGA_REASON)


def _polarization_index(where: str, polarization: str) -> int:
    if polarization not in ("l", "t"):
        raise ValueError(f"`{where}(polarization=...)` must be 'l' or 't'; got {polarization!r}")
    return 0 if polarization == "l" else 1


def _check_r_min(where: str, r_min) -> float:
    """r_min sets the quadrature nodes, so it must be a concrete number in (0, 1/2)."""
    check_range(where, "r_min", r_min, 0.0, 0.5, lo_open=True, hi_open=True)
    return float(r_min)


def _map_T(fn, T):
    # a short grid is vectorized at once: same values, and far cheaper to compile
    # (and to differentiate twice) than a loop over batches
    if T.shape[0] <= 4 * _T_BATCH:
        return jax.vmap(fn)(T)
    return jax.lax.map(fn, T, batch_size=_T_BATCH)


def _log_rayleigh(material: Material, log_omega):
    """ln(A_R omega^4) (ln of 1/m); -inf without Rayleigh scattering (double `where`:
    finite gradients at A_R = 0)."""
    a = material.rayleigh
    on = a > 0
    safe = jnp.where(on, a, 1.0)
    return jnp.where(on, jnp.log(safe) + 4.0 * log_omega, -jnp.inf)


def _log_tanh_half(log_x):
    """ln tanh(x / 2) from ln x, also where x itself under- or overflows float32."""
    small = log_x < math.log(1e-20)  # tanh(x/2) = (x/2)(1 - x^2/12 + ...): exact here
    large = log_x > math.log(50.0)  # ln tanh(x/2) = -2 e^-x + ...: |error| < 4e-22
    x = jnp.exp(jnp.where(small | large, 0.0, log_x))  # double where: finite gradients
    mid = jnp.log(jnp.tanh(0.5 * x))
    return jnp.where(small, log_x - math.log(2.0), jnp.where(large, 0.0, mid))


def _log_sum(*terms):
    """ln(sum_i e^{terms_i}) of broadcastable terms (-inf terms allowed)."""
    terms = jnp.broadcast_arrays(*terms)
    return jax.nn.logsumexp(jnp.stack(terms), axis=0)


# ---------------------------------------------------------------- resonant scattering


@functools.partial(jax.jit, static_argnames="alpha")
def _log_qinv_res(tls: AbstractTLS, material: Material, T, omega, alpha: int):
    """ln(pi C_alpha(hbar omega) tanh(hbar omega / 2 k_B T)) on the (T, omega) grid."""
    log_omega = jnp.log(omega)[None, :]
    log_x = math.log(_HBAR_OVER_KB) + log_omega - jnp.log(T)[:, None]
    e_K = jnp.broadcast_to(_HBAR_OVER_KB * omega[None, :], log_x.shape)
    log_c = tls.log_tunneling_strength(e_K) + jnp.log(material.strength_factors[alpha])
    return math.log(math.pi) + log_c + _log_tanh_half(log_x)


@functools.partial(jax.jit, static_argnames="alpha")
def _log_inverse_mfp(tls: AbstractTLS, material: Material, T, omega, alpha: int):
    """ln l^-1 (l^-1 in m^-1) on the (T, omega) grid for polarization index alpha."""
    log_omega = jnp.log(omega)[None, :]
    log_res = (_log_qinv_res(tls, material, T, omega, alpha) + log_omega
               - jnp.log(material.velocities[alpha]))
    return _log_sum(log_res, _log_rayleigh(material, log_omega), -jnp.log(material.boundary))


def mean_free_path(tls: AbstractTLS, material: Material, T, omega, *,
                   polarization: str = "t") -> Float[Array, "nT nw"]:
    """Phonon mean free path l(omega, T) in m (resonant + Rayleigh + boundary).

    **Arguments:**

    - `tls`: the tunneling-strength model (`ConstantC` or `StauTLS`).
    - `material`: the `Material`.
    - `T`: temperatures in K (1-D, > 0).
    - `omega`: angular frequencies in rad/s (1-D, > 0).
    - `polarization`: `"l"` or `"t"`.

    **Returns:** array of shape (len(T), len(omega)).
    """
    a = _polarization_index("mean_free_path", polarization)
    T, omega = _temperatures("mean_free_path", T), _omegas("mean_free_path", omega)
    return jnp.exp(-_log_inverse_mfp(tls, material, T, omega, a))


def mfp_over_wavelength(tls: AbstractTLS, material: Material, T, omega, *,
                        polarization: str = "t") -> Float[Array, "nT nw"]:
    """l / lambda with lambda = 2 pi v / omega; resonant only it is
    1 / (2 pi^2 C tanh(hbar omega / 2 k_B T)). Arguments as `mean_free_path`."""
    a = _polarization_index("mfp_over_wavelength", polarization)
    T, omega = _temperatures("mfp_over_wavelength", T), _omegas("mfp_over_wavelength", omega)
    log_lam = math.log(2.0 * math.pi) + jnp.log(material.velocities[a]) - jnp.log(omega)
    return jnp.exp(-_log_inverse_mfp(tls, material, T, omega, a) - log_lam[None, :])


def qinv_resonant(tls: AbstractTLS, material: Material, T, omega, *,
                  polarization: str = "t") -> Float[Array, "nT nw"]:
    """Resonant internal friction pi C_alpha(hbar omega) tanh(hbar omega / 2 k_B T)."""
    a = _polarization_index("qinv_resonant", polarization)
    T, omega = _temperatures("qinv_resonant", T), _omegas("qinv_resonant", omega)
    return jnp.exp(_log_qinv_res(tls, material, T, omega, a))


# ---------------------------------------------------------------- relaxation


def max_relaxation_rate(material: Material, energies_K, T, scale=1.0):
    """tau_min^-1 = s A E^3 coth(E / 2 k_B T) in 1/s, energies E / k_B and T in kelvin
    (broadcast), s the population's coupling scale (`Material.relaxation_A_K`)."""
    return jnp.exp(_log_max_relaxation_rate(material, jnp.log(energies_K), jnp.log(T),
                                            jnp.log(scale)))


def _log_max_relaxation_rate(material: Material, log_e, log_t, log_scale):
    """ln tau_min^-1 from ln E, ln T (kelvin) and ln s."""
    return (log_scale + jnp.log(material.relaxation_A_K) + 3.0 * log_e
            - _log_tanh_half(log_e - log_t))


#: ln a above which `_r_integral` sums its series in 1 / a^2 (a = omega tau_min), and
#: the series' number of terms: (1/4)^30 ~ 1e-18.
_LOG_A_SERIES, _N_SERIES = math.log(2.0), 30


@functools.cache
def _r_moments(r_min: float) -> np.ndarray:
    """m_n = int_{r_min}^1 sqrt(1 - r) r^n dr, n = 0 .. 2 `_N_SERIES` - 1 (exact: with
    r = 1 - s^2 a polynomial in s of degree <= 4 `_N_SERIES`, Gauss-Legendre of 2
    `_N_SERIES` + 2 nodes)."""
    s, w = _gauss_legendre(np.asarray([0.0, math.sqrt(1.0 - r_min)]), 2 * _N_SERIES + 2)
    n = np.arange(2 * _N_SERIES)[:, None]
    return np.sum(2.0 * s**2 * (1.0 - s**2) ** n * w, axis=1)


def _r_integral(kind: str, r_min: float, log_a):
    """int_{r_min}^1 dr (sqrt(1 - r) / r) h(a / r), elementwise over ln a = ln(omega
    tau_min), with h(omega tau) = omega tau / (1 + (omega tau)^2) for kind "q" (Q^-1)
    and 1 / (1 + (omega tau)^2) for kind "v" (Delta v / v), in closed form.

    The two are the imaginary and real parts of I = int_{r_min}^1 dr sqrt(1 - r) / (r - i a)
    = -2 s_0 + b ln((b + s_0)^2 / (r_min - i a)), s_0 = sqrt(1 - r_min), b = sqrt(1 - i a)
    (s = sqrt(1 - r) turns the integrand into 2 s^2 / (b^2 - s^2)). Above a = 2, where the
    two terms cancel, I = (i / a) sum_n (-i / a)^n m_n with the moments m_n of
    `_r_moments`. Both branches agree with an adaptive quadrature to < 2e-14 in float64
    and ~1e-5 in float32 (below the switch, where the two terms cancel) from a = 1e-56
    to 1e26 (`tests/test_stm.py`); nothing over- or underflows before the result itself
    does, and first and second derivatives are finite.
    """
    if kind not in ("q", "v"):
        raise ValueError(f"_r_integral(kind={kind!r}): must be 'q' or 'v'")
    series = log_a > _LOG_A_SERIES
    # double `where`: each branch is evaluated (and differentiated) where it is finite
    la = jnp.where(series, 0.0, log_a)
    s0 = math.sqrt(1.0 - r_min)
    ia = 1j * jnp.exp(la)
    b = jnp.sqrt(1.0 - ia)
    # ln(r_min - i a) scaled by the larger of the two: a itself underflows (and the
    # log's second derivative, 1 / (r_min - i a)^2, in float32) long before Q^-1 ~ a / r_min
    top = jnp.maximum(la, math.log(r_min))
    log_z = top + jnp.log(jnp.exp(math.log(r_min) - top) - 1j * jnp.exp(la - top))
    closed = -2.0 * s0 + b * (2.0 * jnp.log(b + s0) - log_z)
    closed = closed.imag if kind == "q" else closed.real
    la = jnp.where(series, log_a, _LOG_A_SERIES)
    u = jnp.exp(-2.0 * la)  # 1 / a^2 <= 1/4
    m = _r_moments(r_min)[(1 if kind == "v" else 0)::2]
    total = jnp.zeros_like(u)
    for mk in m[::-1]:  # Horner: sum_k (-u)^k m_(2k [+1])
        total = total * -u + float(mk)
    # kind "q": sum_k (-1)^k m_2k / a^(2k+1); kind "v": sum_k (-1)^k m_(2k+1) / a^(2k+2)
    total = total * (u if kind == "v" else jnp.exp(-la))
    return jnp.where(series, total, closed)


@functools.partial(jax.jit, static_argnames=("alpha", "r_min", "kind"))
def _relaxation_integrals(tls, material, T, omega, alpha, r_min, kind):
    """sum_p C_p,alpha int dE (sech^2 / 2 k_B T) int dr (sqrt(1-r)/r) h(omega tau), (nT, nw).

    kind "q": h = omega tau / (1 + (omega tau)^2); kind "v": h = 1 / (1 + (omega tau)^2);
    the r integral in closed form (`_r_integral`), the E integral by quadrature.
    """
    dt = T.dtype
    xn = jnp.asarray(_XR_NODES, dtype=dt)
    log_xn = jnp.asarray(np.log(_XR_NODES), dtype=dt)
    # weight of the E integral in x = E / k_B T: (1/2) sech^2(x/2) dx
    wE = jnp.asarray(_XR_WEIGHTS * 0.5 / np.cosh(0.5 * _XR_NODES) ** 2, dtype=dt)
    log_scales = jnp.log(tls.coupling_scales())
    factor = material.strength_factors[alpha]
    log_omega = jnp.log(omega)

    def per_T(t):
        log_t = jnp.log(t)
        c = tls.strength_parts(xn * t) * factor  # (p, nx)
        log_rate = _log_max_relaxation_rate(material, (log_xn + log_t)[None, :], log_t,
                                            log_scales[:, None])  # (p, nx)
        # ln a = ln(omega tau_min) (omega tau = a / r)
        inner = _r_integral(kind, r_min, log_omega[None, None, :]
                            - log_rate[:, :, None])  # (p, nx, nw)
        return jnp.sum(c[:, :, None] * wE[None, :, None] * inner, axis=(0, 1))

    return _map_T(per_T, T)


def qinv_relaxation(tls: AbstractTLS, material: Material, T, omega, *,
                    polarization: str = "t", r_min: float = DEFAULT_R_MIN
                    ) -> Float[Array, "nT nw"]:
    """One-phonon relaxation internal friction (the double integral of the module doc).

    Tends to pi C / 2 where omega tau_min << 1 (plateau) and to
    pi^4 C A (k_B T)^3 / (12 omega) where omega tau_min >> 1. Each population's rate is
    scaled by its s_p (tau TLSs: g^2, S TLSs: 1).

    **Arguments:** as `mean_free_path`, plus `r_min` in (0, 1), the lower cutoff of
    r = (Delta_o / E)^2 (default 1e-24).

    **Returns:** array of shape (len(T), len(omega)).
    """
    a = _polarization_index("qinv_relaxation", polarization)
    T, omega = _temperatures("qinv_relaxation", T), _omegas("qinv_relaxation", omega)
    r_min = _check_r_min("qinv_relaxation", r_min)
    return _relaxation_integrals(tls, material, T, omega, a, r_min, "q")


def qinv(tls: AbstractTLS, material: Material, T, omega, *, polarization: str = "t",
         r_min: float = DEFAULT_R_MIN) -> Float[Array, "nT nw"]:
    """Total internal friction Q^-1 = Q^-1_res + Q^-1_rel (shape (len(T), len(omega)))."""
    return (qinv_resonant(tls, material, T, omega, polarization=polarization)
            + qinv_relaxation(tls, material, T, omega, polarization=polarization,
                              r_min=r_min))


def sound_velocity_shift(tls: AbstractTLS, material: Material, T, omega, T0, *,
                         polarization: str = "t", r_min: float = DEFAULT_R_MIN
                         ) -> Float[Array, "nT nw"]:
    """Delta v / v (T) - Delta v / v (T0): resonant (hbar omega << k_B T) + relaxation.

    For constant C the resonant part is C ln(T / T0); where omega tau_min << 1 the
    relaxation part adds -(3/2) C ln(T / T0).

    **Arguments:** as `qinv_relaxation`, plus the reference temperature `T0` in K (> 0).

    **Returns:** array of shape (len(T), len(omega)).
    """
    a = _polarization_index("sound_velocity_shift", polarization)
    T = _temperatures("sound_velocity_shift", T)
    omega = _omegas("sound_velocity_shift", omega)
    T0 = check_range("sound_velocity_shift", "T0", T0, 0.0, lo_open=True)
    r_min = _check_r_min("sound_velocity_shift", r_min)
    factor = material.strength_factors[a]
    tn, wt = jnp.asarray(_T_NODES, dtype=T.dtype), jnp.asarray(_T_WEIGHTS, dtype=T.dtype)

    def resonant(t):
        lo = jnp.log(1e-4 * jnp.minimum(t, T0))
        hi = jnp.log(60.0 * jnp.maximum(t, T0))
        e_K = jnp.exp(lo + (hi - lo) * tn)
        c = tls.tunneling_strength(e_K) * factor
        diff = jnp.tanh(0.5 * e_K / t) - jnp.tanh(0.5 * e_K / T0)
        return -(hi - lo) * jnp.sum(wt * c * diff)  # dE / E = d ln E

    res = _map_T(resonant, T)
    T0v = jnp.reshape(T0, (1,))
    rel = _relaxation_integrals(tls, material, T, omega, a, r_min, "v")
    rel0 = _relaxation_integrals(tls, material, T0v, omega, a, r_min, "v")
    return res[:, None] - 0.5 * (rel - rel0)


# ---------------------------------------------------------------- thermal conductivity


def thermal_conductivity(tls: AbstractTLS, material: Material, T, *,
                         extra_scattering=None) -> Float[Array, " nT"]:
    """kappa(T) in W/(m K): Debye kinetic integral with Matthiessen's rule.

    kappa = (1/3) sum_{l,t,t} int d omega c(omega) v l(omega, T), integrated over
    x = hbar omega / k_B T in [0, 60] (composite Gauss-Legendre, log-spaced panels),
    with l^-1 = resonant (C(hbar omega)) + Rayleigh + boundary.

    **Arguments:**

    - `tls`: the tunneling-strength model.
    - `material`: the `Material` (Rayleigh and boundary terms are taken from it).
    - `T`: temperatures in K (1-D, > 0).
    - `extra_scattering`: optional function of the phonon energies hbar omega / k_B in
      kelvin (1-D) returning a further inverse mean free path in 1/m, the same for every
      branch (the fits use it for Rayleigh and boundary terms in float32-safe units).

    **Returns:** kappa at each T, shape (len(T),).
    """
    return _thermal_conductivity(tls, material, _temperatures("thermal_conductivity", T),
                                 extra_scattering)


@functools.partial(jax.jit, static_argnames="extra_scattering")
def _thermal_conductivity(tls, material, T, extra_scattering=None):
    """The body of `thermal_conductivity` (T checked). Compiled once per TLS structure and
    shape, so that calls outside `jit` do not re-trace the quadrature every time."""
    # NumPy constants take T's dtype explicitly (the process may switch x64 on and off)
    xn = jnp.asarray(_X_NODES, dtype=T.dtype)
    log_xn = jnp.asarray(np.log(_X_NODES), dtype=T.dtype)
    log_heat = jnp.asarray(_X_LOG_HEAT, dtype=T.dtype)
    log_tanh = jnp.asarray(_X_LOG_TANH, dtype=T.dtype)
    log_v = jnp.log(material.velocities)
    log_branches = jnp.log(material.weights)
    log_factors = jnp.log(material.strength_factors)
    log_bnd = -jnp.log(material.boundary)

    def per_T(t):
        # everything in logs: T^3, omega, C(E) and l span more than float32's range
        log_t = jnp.log(t)
        log_omega = log_xn + log_t - math.log(_HBAR_OVER_KB)
        log_c = tls.log_tunneling_strength(xn * t)  # E = hbar omega = x k_B T
        log_res = (math.log(math.pi) + log_c[None, :] + log_factors[:, None]
                   + log_omega[None, :] - log_v[:, None] + log_tanh[None, :])
        log_inv_l = _log_sum(log_res, _log_rayleigh(material, log_omega)[None, :], log_bnd)
        if extra_scattering is not None:
            extra = extra_scattering(xn * t)
            ok = extra > 0
            # double where: no NaN gradient through log(0)
            log_extra = jnp.where(ok, jnp.log(jnp.where(ok, extra, 1.0)), -jnp.inf)
            log_inv_l = _log_sum(log_inv_l, log_extra[None, :])
        log_per_branch = jax.nn.logsumexp(log_heat[None, :] - log_inv_l, axis=1) - 2.0 * log_v
        return jnp.exp(math.log(_KAPPA_CONST) + 3.0 * log_t
                       + jax.nn.logsumexp(log_branches + log_per_branch))

    return _map_T(per_T, T)


def thermal_conductivity_closed_form(C, material: Material, T) -> Float[Array, " nT"]:
    """kappa = (k_B^3 T^2 / (6 pi hbar^2)) (1 / (v_l C_l) + 2 / (v_t C_t)), W/(m K).

    The exact result for constant (transverse) C and resonant scattering only.
    """
    C = ConstantC(C).C
    T = _temperatures("thermal_conductivity_closed_form", T)
    s = jnp.sum(material.weights / (material.velocities * C * material.strength_factors))
    return (K_B**3 / (6.0 * math.pi * HBAR**2)) * T**2 * s


# ---------------------------------------------------------------- specific heat


def tls_specific_heat(tls: AbstractTLS, material: Material, T, t_exp) -> Float[Array, " nT"]:
    """TLS specific heat in J/(m^3 K) on the time scale `t_exp` (s).

    C_v = int dE n(E) k_B (E / 2 k_B T)^2 sech^2(E / 2 k_B T), with
    n(E) = sum_p (P_p(E) / 2) max(0, ln(4 t_exp / tau_min,p(E, T))) and
    P_p = C_p rho v_t^2 / (s_p gamma_t^2) (convention: P as in P(eps, Delta_o) = P /
    Delta_o). For an energy-independent n this is (pi^2 / 6) n k_B^2 T.

    **Returns:** shape (len(T),).
    """
    T = _temperatures("tls_specific_heat", T)
    t_exp = check_range("tls_specific_heat", "t_exp", t_exp, 0.0, lo_open=True)
    xn, wx = jnp.asarray(_X_NODES, dtype=T.dtype), jnp.asarray(_X_WEIGHTS, dtype=T.dtype)
    w = wx * (0.5 * xn) ** 2 / jnp.cosh(0.5 * xn) ** 2
    scales = tls.coupling_scales()

    def per_T(t):
        e_K = xn * t
        c = tls.strength_parts(e_K)  # (p, nx)
        # k_B^2 P_p = _CV_CONST C_p rho v_t^2 / (s_p gamma_t[eV]^2)
        kP = _CV_CONST * c * material.rho * material.v_t**2 / (
            scales[:, None] * material.gamma_t**2)
        rate = max_relaxation_rate(material, e_K[None, :], t, scales[:, None])
        n = 0.5 * kP * jnp.maximum(jnp.log(4.0 * t_exp * rate), 0.0)
        return t * jnp.sum(w[None, :] * n)

    return _map_T(per_T, T)


def debye_specific_heat(material: Material, T) -> Float[Array, " nT"]:
    """Low-T Debye phonon specific heat (2 pi^2 k_B^4 T^3 / (15 hbar^3)) (1/v_l^3 + 2/v_t^3)."""
    T = _temperatures("debye_specific_heat", T)
    s = 1.0 / material.v_l**3 + 2.0 / material.v_t**3
    return (2.0 * math.pi**2 * K_B**4 / (15.0 * HBAR**3)) * T**3 * s
