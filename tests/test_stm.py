import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

import tlsjax as t
from tlsjax.observables._material import HBAR, K_B

C = 3e-4
MAT = t.Material(2200.0, 5800.0, 3800.0)
TLS = t.ConstantC(C)
OMEGA = jnp.asarray([2 * math.pi * 1e3, 2 * math.pi * 1e6])


@pytest.mark.parametrize("gamma_ratio", [None, 1.3])
def test_kappa_closed_form(gamma_ratio):
    m = t.Material(2200.0, 5800.0, 3800.0, gamma_ratio=gamma_ratio)
    T = jnp.geomspace(1e-3, 100.0, 9)
    k = t.thermal_conductivity(TLS, m, T)
    kc = t.thermal_conductivity_closed_form(C, m, T)
    np.testing.assert_allclose(k, kc, rtol=1e-6)
    # and the closed form itself, written out
    s = 1 / (5800.0 * C * m.strength_factors[0]) + 2 / (3800.0 * C)
    np.testing.assert_allclose(kc, K_B**3 * T**2 / (6 * math.pi * HBAR**2) * s, rtol=1e-12)


def test_kappa_matthiessen_lowers_kappa():
    m = t.Material(2200.0, 5800.0, 3800.0, rayleigh=1e-42, boundary=1e-3)
    T = jnp.asarray([0.05, 1.0, 10.0])
    k = t.thermal_conductivity(TLS, m, T)
    kc = t.thermal_conductivity_closed_form(C, m, T)
    assert np.all(np.asarray(k) < np.asarray(kc))
    # boundary scattering only: kappa -> (1/3) c_Debye v l_b summed over branches
    mb = t.Material(2200.0, 5800.0, 3800.0, boundary=1e-4)
    kb = t.thermal_conductivity(t.ConstantC(1e-12), mb, jnp.asarray([0.01]))
    cd = (2 * math.pi**2 * K_B**4 * 0.01**3 / (15 * HBAR**3))
    expected = cd / 3 * 1e-4 * (1 / 5800.0**2 + 2 / 3800.0**2)
    assert float(kb[0]) == pytest.approx(expected, rel=1e-6)


def test_qinv_relaxation_plateau_and_t3():
    T = jnp.asarray([1e-3, 2e-3, 10.0, 30.0])
    q = np.asarray(t.qinv_relaxation(TLS, MAT, T, OMEGA[:1]))[:, 0]
    # omega tau_min >> 1 at low T: pi^4 C A (k_B T)^3 / (12 omega)
    law = math.pi**4 * C * float(MAT.relaxation_A_K) * np.asarray(T) ** 3 / (12 * float(OMEGA[0]))
    assert q[0] / law[0] == pytest.approx(1.0, abs=1e-4)
    assert q[1] / law[1] == pytest.approx(1.0, abs=5e-3)
    # omega tau_min << 1 at high T: plateau pi C / 2
    assert q[2] / (math.pi * C / 2) == pytest.approx(1.0, abs=2e-4)
    assert q[3] / (math.pi * C / 2) == pytest.approx(1.0, abs=1e-4)


def test_qinv_resonant_and_total():
    T = jnp.geomspace(1e-3, 1.0, 5)
    x = HBAR * OMEGA[None, :] / (K_B * T[:, None])
    qr = t.qinv_resonant(TLS, MAT, T, OMEGA)
    np.testing.assert_allclose(qr, math.pi * C * np.tanh(np.asarray(x) / 2), rtol=1e-12)
    qt = t.qinv(TLS, MAT, T, OMEGA)
    np.testing.assert_allclose(qt, qr + t.qinv_relaxation(TLS, MAT, T, OMEGA), rtol=1e-12)
    assert qt.shape == (5, 2)


def test_mfp_over_wavelength():
    T = jnp.geomspace(1e-3, 10.0, 6)
    omega = jnp.geomspace(1e6, 1e12, 4)
    lr = t.mfp_over_wavelength(TLS, MAT, T, omega)
    x = np.asarray(HBAR * omega[None, :] / (K_B * T[:, None]))
    np.testing.assert_allclose(lr, 1 / (2 * math.pi**2 * C * np.tanh(x / 2)), rtol=1e-12)
    mfp = t.mean_free_path(TLS, MAT, T, omega, polarization="l")
    lam = 2 * math.pi * 5800.0 / np.asarray(omega)
    np.testing.assert_allclose(np.asarray(mfp) / lam[None, :], lr, rtol=1e-12)  # C_l = C_t


def test_sound_velocity_resonant_log_and_relaxation_slope():
    # omega tau_min >> 1 (1 GHz, T <= 0.05 K): only the resonant C ln(T / T0)
    T = jnp.asarray([0.01, 0.03, 0.05])
    dv = np.asarray(t.sound_velocity_shift(TLS, MAT, T, jnp.asarray([2 * math.pi * 1e9]),
                                           0.02))[:, 0]
    np.testing.assert_allclose(dv, C * np.log(np.asarray(T) / 0.02), atol=1e-3 * C)
    # omega tau_min << 1 (1 kHz, 5-30 K): slope C - (3/2) C = -C/2 per ln T
    T2 = jnp.asarray([5.0, 30.0])
    dv2 = np.asarray(t.sound_velocity_shift(TLS, MAT, T2, OMEGA[:1], 5.0))[:, 0]
    slope = (dv2[1] - dv2[0]) / math.log(6.0)
    assert slope / (-C / 2) == pytest.approx(1.0, abs=0.03)


def test_tls_specific_heat_matches_scipy():
    T, t_exp = 0.5, 10.0
    cv = float(t.tls_specific_heat(TLS, MAT, jnp.asarray([T]), t_exp)[0])
    P = float(MAT.density_of_states_P(C))
    A = float(MAT.relaxation_A_K)

    def f(x):
        e = x * T
        rate = A * e**3 / math.tanh(x / 2)
        n = 0.5 * P * max(math.log(4 * t_exp * rate), 0.0)
        return n * K_B**2 * T * (x / 2) ** 2 / math.cosh(x / 2) ** 2

    ref = integrate.quad(f, 0, 60, limit=200, points=[1e-3, 1e-2, 0.1, 1.0])[0]
    assert cv == pytest.approx(ref, rel=1e-5)
    # close to (pi^2/6) n_o k_B^2 T with n_o evaluated at E = k_B T (log varies slowly)
    n0 = 0.5 * P * math.log(4 * t_exp * A * T**3 / math.tanh(0.5))
    assert cv / (math.pi**2 / 6 * n0 * K_B**2 * T) == pytest.approx(1.0, abs=0.15)


def test_debye_specific_heat():
    T = jnp.asarray([0.1, 1.0])
    cd = t.debye_specific_heat(MAT, T)
    # per branch: int d omega (omega^2 / 2 pi^2 v^3) k_B x^2 e^x / (e^x - 1)^2, exact 4 pi^4/15
    i = integrate.quad(lambda x: x**4 * math.exp(-x) / (1 - math.exp(-x)) ** 2, 1e-12, 200)[0]
    s = 1 / 5800.0**3 + 2 / 3800.0**3
    ref = K_B * (K_B * np.asarray(T) / HBAR) ** 3 / (2 * math.pi**2) * i * s
    np.testing.assert_allclose(cd, ref, rtol=1e-8)


def test_vmap_and_grad_constant_c():
    T = jnp.asarray([0.5, 2.0])
    f = jax.vmap(lambda c: t.thermal_conductivity(t.ConstantC(c), MAT, T))
    k = f(jnp.asarray([1e-4, 2e-4]))
    np.testing.assert_allclose(k[0] / k[1], 2.0, rtol=1e-10)
    g = jax.grad(lambda rho: t.qinv_relaxation(
        TLS, t.Material(rho, 5800.0, 3800.0), jnp.asarray([0.05]), OMEGA[:1])[0, 0])(2200.0)
    h = 1e-3
    fd = (t.qinv_relaxation(TLS, t.Material(2200 + h, 5800.0, 3800.0), jnp.asarray([0.05]),
                            OMEGA[:1])[0, 0]
          - t.qinv_relaxation(TLS, t.Material(2200 - h, 5800.0, 3800.0),
                              jnp.asarray([0.05]), OMEGA[:1])[0, 0]) / (2 * h)
    assert float(g) == pytest.approx(float(fd), rel=1e-6)


@pytest.mark.parametrize("fn,args,name", [
    (t.thermal_conductivity, ([-1.0],), "T"),
    (t.thermal_conductivity, ([0.0, 1.0],), "T"),
    (t.thermal_conductivity, ([math.nan],), "T"),
    (t.qinv, ([1.0], [-5.0]), "omega"),
    (t.qinv_relaxation, ([1.0], [0.0]), "omega"),
    (t.mfp_over_wavelength, ([1.0], [math.nan]), "omega"),
    (t.tls_specific_heat, ([1.0], -1.0), "t_exp"),
    (t.sound_velocity_shift, ([1.0], [1.0], 0.0), "T0"),
])
def test_bad_input(fn, args, name):
    with pytest.raises(ValueError, match=rf"\({name}="):
        fn(TLS, MAT, *args)


def test_bad_polarization_and_r_min():
    with pytest.raises(ValueError, match="polarization"):
        t.qinv(TLS, MAT, [1.0], [1.0], polarization="x")
    with pytest.raises(ValueError, match="r_min"):
        t.qinv_relaxation(TLS, MAT, [1.0], [1.0], r_min=2.0)
    with pytest.raises(ValueError, match=r"ConstantC\(C="):
        t.ConstantC(-1.0)


def test_bad_input_under_jit():
    f = jax.jit(lambda T: t.thermal_conductivity(TLS, MAT, T))
    assert np.all(np.isfinite(f(jnp.asarray([1.0, 2.0]))))
    with pytest.raises(Exception, match=r"T=\.\.\.\)` must be finite and > 0"):
        jax.block_until_ready(f(jnp.asarray([1.0, -2.0])))
    g = jax.jit(lambda w: t.qinv(TLS, MAT, jnp.asarray([1.0]), w))
    with pytest.raises(Exception, match=r"omega=\.\.\.\)` must be finite and > 0"):
        jax.block_until_ready(g(jnp.asarray([jnp.nan])))


def _dvv_and_qinv_sum(log_c, log_rho, T):
    tls, m = t.ConstantC(jnp.exp(log_c)), t.Material(jnp.exp(log_rho), 5800.0, 3800.0)
    return (jnp.sum(t.sound_velocity_shift(tls, m, T, OMEGA, T[0])) / C
            + jnp.sum(t.qinv_relaxation(tls, m, T, OMEGA)) / C)


def test_relaxation_derivatives_store_no_integrand_and_match_differences():
    """The r integral is in closed form (`_r_integral`): a reverse-mode gradient at 16
    temperatures keeps no (T, p, x, omega, r) array (2 x 16 x 408 x 2 x 472 float64 =
    98 MB per kind; with the quadrature over r the temporaries were 296 MB), and first
    and second derivatives equal central differences."""
    T = jnp.geomspace(0.02, 5.0, 16)
    x = (jnp.asarray(math.log(C)), jnp.asarray(math.log(2200.0)))
    vg = jax.jit(jax.value_and_grad(_dvv_and_qinv_sum, argnums=(0, 1))).lower(*x, T).compile()
    memory = vg.memory_analysis()
    if memory is not None:  # not every backend reports it
        assert memory.temp_size_in_bytes < 25e6, memory.temp_size_in_bytes
    _, g = vg(*x, T)
    hess = jax.jit(jax.hessian(_dvv_and_qinv_sum, argnums=(0, 1)))(*x, T)
    h = 1e-4
    for i in range(2):
        up = [x[j] + (h if j == i else 0.0) for j in range(2)]
        down = [x[j] - (h if j == i else 0.0) for j in range(2)]
        (fu, gu), (fd, gd) = vg(*up, T), vg(*down, T)
        assert float(g[i]) == pytest.approx(float(fu - fd) / (2 * h), rel=1e-6, abs=1e-9)
        for j in range(2):
            fd2 = float(gu[j] - gd[j]) / (2 * h)
            assert float(hess[j][i]) == pytest.approx(fd2, rel=1e-5, abs=1e-6)


def _r_integral_reference(a, r_min):
    """int_{r_min}^1 dr sqrt(1 - r) (r, a) / (r^2 + a^2) by scipy's adaptive quadrature:
    in u = ln r up to r = 1/2 (the Lorentzian in r sits at u = ln a), in s = sqrt(1 - r)
    above (no square-root end point)."""
    def in_u(u, part):
        r = math.exp(u)
        return math.sqrt(1.0 - r) * r * (r if part == 0 else a) / (r * r + a * a)

    def in_s(s, part):
        r = 1.0 - s * s
        return 2.0 * s * s * (r if part == 0 else a) / (r * r + a * a)

    lo, mid = math.log(r_min), math.log(0.5)
    kw = dict(limit=500, epsabs=0.0, epsrel=1e-13)
    u_points = [math.log(a)] if lo < math.log(a) < mid else None
    s_points = [math.sqrt(1.0 - a)] if 0.0 < a < 0.5 else None
    return [integrate.quad(in_u, lo, mid, args=(part,), points=u_points, **kw)[0]
            + integrate.quad(in_s, 0.0, math.sqrt(0.5), args=(part,), points=s_points, **kw)[0]
            for part in (0, 1)]


@pytest.mark.parametrize("r_min", [1e-24, 0.4])
def test_r_integral_closed_form_matches_quadrature(r_min):
    """`_r_integral` (closed form below a = omega tau_min = 2, series in 1 / a^2 above)
    against an adaptive quadrature from a = 1e-56 to 1e26, densely on both sides of the
    switch, in float64 (relative 1e-13) and float32 (1.2e-5: the closed form's two terms
    cancel just below the switch), with finite first and second derivatives in float32."""
    from tlsjax.observables._stm import _LOG_A_SERIES, _r_integral

    log_a = np.concatenate([np.linspace(-130.0, 60.0, 39), _LOG_A_SERIES + np.asarray([-1e-6, 1e-6]),
                            np.linspace(_LOG_A_SERIES - 1.5, _LOG_A_SERIES + 0.3, 25)])
    ref = np.asarray([_r_integral_reference(math.exp(la), r_min) for la in log_a])
    for kind, col in (("v", 0), ("q", 1)):
        got = np.asarray(_r_integral(kind, r_min, jnp.asarray(log_a)))
        np.testing.assert_allclose(got, ref[:, col], rtol=1e-13, atol=0.0)
        with jax.enable_x64(False):
            x32 = jnp.asarray(log_a, dtype=jnp.float32)
            got32 = np.asarray(_r_integral(kind, r_min, x32))
            first = jax.grad(lambda x, k=kind: _r_integral(k, r_min, x))
            d1, d2 = (np.asarray(jax.vmap(f)(x32)) for f in (first, jax.grad(first)))
        assert got32.dtype == np.float32 and np.all(np.isfinite(d1)) and np.all(np.isfinite(d2))
        big = np.abs(ref[:, col]) > 1e-36  # float32's normal range
        np.testing.assert_allclose(got32[big], ref[big, col], rtol=1.2e-5)
        assert np.all(got32[~big] < 1e-36)
