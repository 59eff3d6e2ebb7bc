"""The closed-form marginal likelihood of participant effects against brute-force linear algebra."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from lcbayes.models.marginal import draw_effects, intercept_posterior, marginal_loglik


def explicit(e, mask, log_sigma, s, tau0, tau1, rho):
    """log N(e | 0, Z Sigma Z' + diag sigma^2) over the observed cells of each participant."""
    sigma_r = np.array([[tau0**2, rho * tau0 * tau1], [rho * tau0 * tau1, tau1**2]])
    out = []
    for p in range(e.shape[0]):
        obs = mask[p] > 0
        Z = np.column_stack([np.ones(obs.sum()), s[p, obs]])
        V = Z @ sigma_r @ Z.T + np.diag(np.exp(2 * log_sigma[p, obs]))
        out.append(stats.multivariate_normal(np.zeros(obs.sum()), V).logpdf(e[p, obs]))
    return np.array(out)


@pytest.fixture
def panel():
    rng = np.random.default_rng(0)
    P, T = 7, 5
    e = rng.normal(size=(P, T))
    mask = (rng.random((P, T)) > 0.3).astype(float)
    mask[:, 0] = 1
    mask[3] = [1, 0, 0, 0, 0]                       # a single observation
    s = np.tile(np.arange(T, dtype=float), (P, 1)) + rng.uniform(0, 0.5, (P, T))
    log_sigma = rng.normal(-0.5, 0.3, (P, T))       # heteroscedastic, as in the location-scale model
    return e, mask, log_sigma, s


@pytest.mark.parametrize("tau0, tau1, rho", [(0.5, 0.1, -0.3), (0.8, 0.0, 0.0), (0.3, 0.2, 0.9)])
def test_marginal_loglik_matches_multivariate_normal(panel, tau0, tau1, rho):
    e, mask, log_sigma, s = panel
    got = marginal_loglik(e, mask, log_sigma, s, tau0, tau1, rho)
    assert got == pytest.approx(explicit(e, mask, log_sigma, s, tau0, tau1, rho), abs=1e-9)


def test_marginal_loglik_ignores_masked_cells(panel):
    e, mask, log_sigma, s = panel
    changed = np.where(mask > 0, e, 1e6)
    assert marginal_loglik(changed, mask, log_sigma, s, 0.5, 0.1, 0.2) == pytest.approx(
        marginal_loglik(e, mask, log_sigma, s, 0.5, 0.1, 0.2))


def test_effect_draws_have_the_gaussian_posterior_moments(panel):
    e, mask, log_sigma, s = panel
    tau0, tau1, rho = 0.5, 0.2, -0.4
    n = 200_000
    shape = (n, 1)
    draws = draw_effects(e, mask, log_sigma, s, np.full(shape, tau0), np.full(shape, tau1), np.full(shape, rho),
                         np.random.default_rng(1))
    sigma_r = np.array([[tau0**2, rho * tau0 * tau1], [rho * tau0 * tau1, tau1**2]])
    for p in range(e.shape[0]):
        obs = mask[p] > 0
        Z = np.column_stack([np.ones(obs.sum()), s[p, obs]])
        W = np.diag(np.exp(-2 * log_sigma[p, obs]))
        cov = np.linalg.inv(np.linalg.inv(sigma_r) + Z.T @ W @ Z)
        mean = cov @ Z.T @ W @ e[p, obs]
        assert draws[:, p].mean(axis=0) == pytest.approx(mean, abs=4 * np.sqrt(np.diag(cov) / n).max() + 1e-4)
        assert np.cov(draws[:, p].T) == pytest.approx(cov, abs=0.01 * np.abs(cov).max())


@pytest.mark.parametrize("tau1, rho", [(0.2, -0.4), (None, 0.0)], ids=["intercept_and_slope", "intercept_only"])
def test_intercept_posterior_is_the_gaussian_conditional(panel, tau1, rho):
    """Mean and variance of r0 given the data (used to integrate the own-perception term of model B's outcome)
    equal the dense Gaussian conditional."""
    e, mask, log_sigma, s = panel
    tau0 = 0.5
    mean, var = intercept_posterior(e, mask, log_sigma, s, tau0, tau1, rho)
    t1 = tau1 or 0.0
    sigma_r = np.array([[tau0**2, rho * tau0 * t1], [rho * tau0 * t1, t1**2]])[: 1 + (tau1 is not None),
                                                                                  : 1 + (tau1 is not None)]
    for p in range(e.shape[0]):
        obs = mask[p] > 0
        Z = np.column_stack([np.ones(obs.sum()), s[p, obs]])[:, : len(sigma_r)]
        W = np.diag(np.exp(-2 * log_sigma[p, obs]))
        cov = np.linalg.inv(np.linalg.inv(sigma_r) + Z.T @ W @ Z)
        assert mean[p] == pytest.approx((cov @ Z.T @ W @ e[p, obs])[0], rel=1e-9)
        assert var[p] == pytest.approx(cov[0, 0], rel=1e-9)
