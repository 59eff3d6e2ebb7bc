"""Model C's Kalman filter against the exact multivariate normal density of the same scores, and its moments with the
support x self-efficacy product against simulation."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
from scipy import linalg, stats

from lcbayes.kalman import marginal_filter, scan_filter, scan_marginal, sharing_filter
from lcbayes.processes import SharingDynamics as Dynamics
from lcbayes.processes import lag_power, sharing_paths

P, T = 4, 5


def dynamics(**change) -> Dynamics:
    values = dict(phi=0.4, beta_m=0.15, delta=0.2, phi_m=0.3, theta=0.25, beta_e=0.3, beta_se=0.0,
                  q=(0.5, 0.4, 0.3, 0.35))
    return Dynamics(**{**values, **change})


def exact_logpdf(dyn: Dynamics, slope: np.ndarray, residual: np.ndarray, error: np.ndarray,
                 observed: np.ndarray, person_variance: float, person_cov: np.ndarray | None = None,
                 gaps: np.ndarray | None = None) -> float:
    """One participant (``slope`` (T,), the others (4, T)): every state as a linear map of z = (Mw_0, Kw_0, the
    innovations nuS, nuE, zeta, eps of each session, those (zeta, eps) of each unit of time between sessions, the
    person-mean deviations dS, dE, dM, cK), the joint normal of the observed scores by brute force. ``person_cov``
    (4, 4) of the deviations (default: only cK, variance ``person_variance``). ``gaps`` (T,) whole units of time before
    each session (the first unused): g - 1 steps of the lagged states with their innovations and no session
    between."""
    between = [0] + [int(g) - 1 for g in (np.ones(T) if gaps is None else gaps)[1:]]
    dim = 2 + 4 * T + 2 * sum(between) + 4
    lag = np.zeros((2, dim))
    lag[:, :2] = np.eye(2)
    A = np.array([[dyn.phi_m, dyn.delta], [dyn.beta_m, dyn.phi]])
    rows, cov_z = [], np.zeros((dim, dim))
    s11, s12, s22 = dyn.stationary(slope[0], doublings=12)
    cov_z[:2, :2] = [[s11, s12], [s12, s22]]
    cov_z[2:-4, 2:-4] = np.diag(np.concatenate([np.tile(dyn.q, T), np.tile(dyn.q[2:], sum(between))]))
    cov_z[-4:, -4:] = np.diag([0, 0, 0, person_variance]) if person_cov is None else person_cov
    d = np.eye(dim)[-4:]
    unit = iter(range(2 + 4 * T, dim - 4, 2))                  # the next unit step's (zeta, eps)
    for t in range(T):
        for _ in range(between[t]):
            k = next(unit)
            lag = A @ lag + np.eye(dim)[k:k + 2]
        nu = np.zeros((4, dim))
        nu[:, 2 + 4 * t: 6 + 4 * t] = np.eye(4)
        m = A[0] @ lag + dyn.theta * nu[0] + nu[2]
        k = A[1] @ lag + slope[t] * nu[0] + dyn.beta_e * nu[1] + nu[3]
        rows += [(state + d[v], v, t) for v, state in enumerate([nu[0], nu[1], m, k]) if observed[v, t]]
        lag = np.stack([m, k])
    M = np.array([r for r, _, _ in rows])
    cov = M @ cov_z @ M.T + np.diag([error[v, t] for _, v, t in rows])
    return stats.multivariate_normal(np.zeros(len(rows)), cov).logpdf([residual[v, t] for _, v, t in rows])


def test_filter_density_is_the_exact_joint_density_with_missing_scores():
    rng = np.random.default_rng(3)
    slope = rng.normal(0.3, 0.2, (P, T))
    residual = rng.normal(size=(4, P, T))
    error = rng.uniform(0.05, 0.4, (4, P, T))
    error[1] = 0.0                                            # a measure without item error
    observed = (rng.random((4, P, T)) > 0.3).astype(float)
    observed[:, 0, :2] = 0                                    # joined late
    residual *= observed
    dyn = dynamics()
    loglik, expected, variance = sharing_filter(residual, error, observed, slope, dyn, np, T, person_variance=0.3)
    exact = [exact_logpdf(dyn, slope[i], residual[:, i], error[:, i], observed[:, i], 0.3) for i in range(P)]
    np.testing.assert_allclose(loglik, exact, rtol=1e-6)
    assert len(expected) == len(variance) == T and np.all(np.stack(variance) > 0)


def test_scan_in_the_graph_equals_the_loop_and_has_the_right_gradient():
    rng = np.random.default_rng(4)
    slope = rng.normal(0.3, 0.2, (P, T))
    residual, error = rng.normal(size=(4, P, T)), rng.uniform(0.05, 0.4, (4, P, T))
    observed = (rng.random((4, P, T)) > 0.2).astype(float)
    phi = pt.dscalar("phi")
    loglik, expected, variance = scan_filter(pt.as_tensor(residual), pt.as_tensor(error), pt.as_tensor(observed),
                                             pt.as_tensor(slope), dynamics(phi=phi, beta_se=0.2), (P, T), 0.2)
    fn = pytensor.function([phi], [loglik, expected, variance, pytensor.grad(loglik.sum(), phi)])
    value, k, v, grad = fn(0.4)
    loop = sharing_filter(residual, error, observed, slope, dynamics(beta_se=0.2), np, T, 0.2)
    np.testing.assert_allclose(value, loop[0], rtol=1e-10)
    np.testing.assert_allclose(k, np.stack(loop[1], 1), rtol=1e-10)
    np.testing.assert_allclose(v, np.stack(loop[2], 1), rtol=1e-10)
    eps = 1e-6
    np.testing.assert_allclose(grad, (fn(0.4 + eps)[0].sum() - fn(0.4 - eps)[0].sum()) / (2 * eps), rtol=1e-5)


def test_moments_with_the_interaction_match_simulation():
    """With betaSE != 0 the filter carries the exact mean and variance of K given the session's S and E scores (one
    session, M and K not yet seen): compared with 400,000 simulated participants."""
    dyn = dynamics(beta_se=0.5)
    n, b = 400_000, 0.3
    rng = np.random.default_rng(5)
    h_s, h_e, r_s, r_e = 0.2, 0.1, 0.8, -0.6
    # states given the scores: Sw | r_s ~ N(q r / (q + h), q h / (q + h)); lags stationary
    post = [(dyn.q[v] * r / (dyn.q[v] + h), dyn.q[v] * h / (dyn.q[v] + h))
            for v, r, h in ((0, r_s, h_s), (1, r_e, h_e))]
    sw, ew = (rng.normal(mean, np.sqrt(var), n) for mean, var in post)
    s11, s12, s22 = dyn.stationary(b, doublings=12)
    lag = rng.multivariate_normal([0.0, 0.0], [[s11, s12], [s12, s22]], n)
    k = dyn.beta_m * lag[:, 0] + dyn.phi * lag[:, 1] + b * sw + dyn.beta_e * ew + dyn.beta_se * sw * ew \
        + rng.normal(0, np.sqrt(dyn.q[3]), n)
    shape = (4, 1, 1)
    residual, error, observed = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    residual[:2, 0, 0], error[:2, 0, 0], observed[:2, 0, 0] = (r_s, r_e), (h_s, h_e), 1
    _, expected, variance = sharing_filter(residual, error, observed, np.full((1, 1), b), dyn, np, 1)
    assert abs(expected[0][0] - k.mean()) < 4 * k.std() / np.sqrt(n)
    assert abs(variance[0][0] / k.var() - 1) < 0.01


def test_marginal_filter_is_exact_when_linear_and_equals_the_conditional_filter_without_person_variance():
    """Person means of S, E, M, K integrated (linear-Gaussian case: the exact joint density); with no person-level
    variance and betaSE != 0, the conditional filter's density."""
    rng = np.random.default_rng(6)
    slope = np.full((P, T), 0.3)
    residual = rng.normal(size=(4, P, T))
    error = rng.uniform(0.05, 0.4, (4, P, T))
    observed = (rng.random((4, P, T)) > 0.3).astype(float)
    residual *= observed
    L = rng.normal(size=(4, 4)) * 0.4
    person_cov = L @ L.T + 0.05 * np.eye(4)
    dyn = dynamics()
    marginal = marginal_filter(residual, error, observed, slope[0], 0.0, person_cov, 0.0, dyn, np, T)
    exact = [exact_logpdf(dyn, slope[i], residual[:, i], error[:, i], observed[:, i], 0.0, person_cov)
             for i in range(P)]
    np.testing.assert_allclose(marginal, exact, rtol=1e-6)
    dyn = dynamics(beta_se=0.4)
    marginal = marginal_filter(residual, error, observed, slope[0], 0.0, np.zeros((4, 4)), 0.0, dyn, np, T)
    np.testing.assert_allclose(marginal, sharing_filter(residual, error, observed, slope, dyn, np, T)[0], rtol=1e-9)


def test_marginal_filter_moments_with_random_slopes_match_simulation():
    """One session, only K seen: the marginal filter's density of K equals a normal with the simulated mean and
    variance of K, where the support effect has a person part (gamma1 dE + ubeta) and the product betaSE Sw Ew."""
    dyn = dynamics(beta_se=0.5)
    gamma1, tau_b, b, n = -0.4, 0.3, 0.3, 400_000
    person_cov = np.diag([0.3, 0.4, 0.2, 0.25])
    rng = np.random.default_rng(7)
    d = rng.multivariate_normal(np.zeros(4), person_cov, n)
    u = rng.normal(0, tau_b, n)
    sw, ew = rng.normal(0, np.sqrt(dyn.q[0]), n), rng.normal(0, np.sqrt(dyn.q[1]), n)
    s11, s12, s22 = dyn.stationary(b, doublings=12)
    lag = rng.multivariate_normal([0.0, 0.0], [[s11, s12], [s12, s22]], n)
    k = d[:, 3] + dyn.beta_m * lag[:, 0] + dyn.phi * lag[:, 1] + (b + gamma1 * d[:, 1] + u) * sw \
        + dyn.beta_e * ew + dyn.beta_se * sw * ew + rng.normal(0, np.sqrt(dyn.q[3]), n)
    shape = (4, 2, 1)
    residual, error, observed = np.zeros(shape), np.full(shape, 0.1), np.zeros(shape)
    observed[3] = 1
    residual[3, :, 0] = (0.0, 1.0)
    ll = marginal_filter(residual, error, observed, np.array([b]), gamma1, person_cov, tau_b**2, dyn, np, 1)
    mean, var = k.mean(), k.var() + 0.1
    expected = -0.5 * (np.log(2 * np.pi * var) + (residual[3, :, 0] - mean) ** 2 / var)
    np.testing.assert_allclose(ll, expected, atol=0.01)


def test_lag_power_is_the_real_principal_matrix_power():
    """Against SciPy for random lag matrices (real, complex and negative eigenvalues, triangular, repeated ones) and
    whole and fractional powers; its PyTensor gradient is finite at a repeated eigenvalue and matches differences."""
    rng = np.random.default_rng(8)
    cases = [rng.normal(0, 0.5, (2, 2)) for _ in range(300)] + [np.diag(rng.normal(0, 0.5, 2)) for _ in range(50)]
    cases += [np.array([[0.3, 0.0], [0.2, 0.3]]), np.array([[-0.4, 0.1], [0.0, -0.4]])]
    for A in cases:
        for x in (0.0, 0.4, 1.0, 1.25, 2.0, 3.0):
            got = np.reshape(lag_power(A[0, 0], A[0, 1], A[1, 0], A[1, 1], x), (2, 2))
            ref = np.linalg.matrix_power(A, int(x)) if x == int(x) else linalg.fractional_matrix_power(A, x).real
            np.testing.assert_allclose(got, ref, atol=1e-10)
    a = pt.dscalar("a")
    power = sum(lag_power(a, 0.1, 0.0, 0.5, 1.6, pt))
    fn = pytensor.function([a], [power, pytensor.grad(power, a)])
    for point in (0.5, 0.45, -0.3):                              # 0.5: repeated eigenvalue
        value, grad = fn(point)
        eps = 1e-6
        assert np.isfinite(grad)
        np.testing.assert_allclose(grad, (fn(point + eps)[0] - fn(point - eps)[0]) / (2 * eps), rtol=1e-4)


def test_dynamics_over_a_gap():
    """Over whole gaps, the lag matrix multiplies and the innovations accumulate (Q_2 = Q + A Q A'), also for an
    unstable lag matrix; one unit is the dynamics themselves; a fractional gap of a scalar AR(1) decays as phi^x with
    innovation variance q (1 - phi^2x) / (1 - phi^2)."""
    for dyn in (dynamics(), dynamics(phi=1.1, delta=0.3)):
        A = np.array([[dyn.phi_m, dyn.delta], [dyn.beta_m, dyn.phi]])
        Q = np.diag(dyn.q[2:])
        for x, Ax, Qx in ((1.0, A, Q), (2.0, A @ A, Q + A @ Q @ A.T),
                          (3.0, A @ A @ A, Q + A @ Q @ A.T + A @ A @ Q @ A.T @ A.T)):
            over = dyn.over(x)
            np.testing.assert_allclose([[over.phi_m, over.delta], [over.beta_m, over.phi]], Ax, atol=1e-12)
            np.testing.assert_allclose([[over.q[2], over.q_mk], [over.q_mk, over.q[3]]], Qx, atol=1e-12)
            assert over.q[:2] == dyn.q[:2]
    ar = dynamics(beta_m=0.0, delta=0.0).over(np.array([0.5, 1.7]))
    np.testing.assert_allclose(ar.phi, 0.4 ** np.array([0.5, 1.7]))
    np.testing.assert_allclose(ar.q[3], 0.35 * (1 - 0.4 ** (2 * np.array([0.5, 1.7]))) / (1 - 0.4**2))
    np.testing.assert_allclose(ar.q_mk, 0.0, atol=1e-15)


def test_filter_over_unequal_whole_gaps_is_the_exact_joint_density():
    """Gaps of 1-3 units between sessions: the filter's density equals the joint normal of the scores where the lagged
    states step once per unit of time (with their innovations) and the session's S and E act once; the marginal
    filter too; the scan equals the loop, with fractional gaps as well."""
    rng = np.random.default_rng(9)
    slope = rng.normal(0.3, 0.2, (P, T))
    residual, error = rng.normal(size=(4, P, T)), rng.uniform(0.05, 0.4, (4, P, T))
    observed = (rng.random((4, P, T)) > 0.3).astype(float)
    residual *= observed
    gaps = rng.integers(1, 4, (P, T)).astype(float)
    dyn = dynamics()
    loglik, _, _ = sharing_filter(residual, error, observed, slope, dyn, np, T, person_variance=0.3, gap=gaps)
    exact = [exact_logpdf(dyn, slope[i], residual[:, i], error[:, i], observed[:, i], 0.3, gaps=gaps[i])
             for i in range(P)]
    np.testing.assert_allclose(loglik, exact, rtol=1e-6)
    equal = sharing_filter(residual, error, observed, slope, dyn, np, T, person_variance=0.3)[0]
    assert np.abs(loglik - equal).max() > 0.01                  # the gaps matter
    L = rng.normal(size=(4, 4)) * 0.4
    person_cov = L @ L.T + 0.05 * np.eye(4)
    flat = np.full((P, T), 0.3)
    marginal = marginal_filter(residual, error, observed, flat[0], 0.0, person_cov, 0.0, dyn, np, T, gap=gaps)
    exact = [exact_logpdf(dyn, flat[i], residual[:, i], error[:, i], observed[:, i], 0.0, person_cov, gaps[i])
             for i in range(P)]
    np.testing.assert_allclose(marginal, exact, rtol=1e-6)
    fractional = rng.uniform(0.3, 2.5, (P, T))
    dyn = dynamics(beta_se=0.2)
    scan, _, _ = scan_filter(pt.as_tensor(residual), pt.as_tensor(error), pt.as_tensor(observed),
                             pt.as_tensor(slope), dyn, (P, T), 0.2, gap=pt.as_tensor(fractional))
    loop = sharing_filter(residual, error, observed, slope, dyn, np, T, 0.2, gap=fractional)[0]
    np.testing.assert_allclose(scan.eval(), loop, rtol=1e-10)
    scan = scan_marginal(pt.as_tensor(residual), pt.as_tensor(error), pt.as_tensor(observed), pt.as_tensor(flat[0]),
                         -0.2, pt.as_tensor(person_cov), 0.04, dyn, (P, T), gap=pt.as_tensor(fractional))
    loop = marginal_filter(residual, error, observed, flat[0], -0.2, person_cov, 0.04, dyn, np, T, gap=fractional)
    np.testing.assert_allclose(scan.eval(), loop, rtol=1e-10)


def test_paths_over_gaps_keep_the_stationary_covariance_and_decay_as_the_power():
    """The simulator's paths with no session input, started stationary: after any gap x the states keep the
    stationary covariance Sigma and their covariance with the lagged states is A^x Sigma (400,000 participants)."""
    dyn = dynamics(theta=0.0, beta_e=0.0)
    n, rng = 400_000, np.random.default_rng(10)
    A = np.array([[dyn.phi_m, dyn.delta], [dyn.beta_m, dyn.phi]])
    sigma = linalg.solve_discrete_lyapunov(A, np.diag(dyn.q[2:]))
    lags = rng.multivariate_normal([0.0, 0.0], sigma, n)
    gaps = np.repeat([[1.0, 0.4], [1.0, 2.6]], n // 2, axis=0)
    nu = rng.standard_normal((4, n, 2)) * np.sqrt(np.array(dyn.q))[:, None, None]
    paths = sharing_paths(np.zeros((n, 2)), nu, (lags[:, 0], lags[:, 1]), dyn, gaps)
    for half, x in ((slice(0, n // 2), 0.4), (slice(n // 2, n), 2.6)):
        before, after = paths[2:, half, 0], paths[2:, half, 1]
        cov = np.cov(np.concatenate([after, before]))
        np.testing.assert_allclose(cov[:2, :2], sigma, atol=0.01)
        np.testing.assert_allclose(cov[:2, 2:], np.reshape(lag_power(*A.ravel(), x), (2, 2)) @ sigma, atol=0.01)
