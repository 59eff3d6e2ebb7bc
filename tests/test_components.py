"""GroupEffects: LKJ correlations of any size through canonical partial correlations, and
the variance of a linear combination of the effects."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from scipy import stats

from lcbayes.errors import ConfigError
from lcbayes.models.components import GroupEffects


@pytest.mark.parametrize(("n", "eta"), [(3, 2.0), (4, 1.0)])
def test_correlations_have_the_lkj_distribution(n, eta):
    group = GroupEffects("g", "group", "term", tuple(f"t{k}" for k in range(n)))
    priors = group.priors([1.0] * n, eta)
    with pm.Model(coords={"group": range(3), **group.coords()}):
        group.effects(priors)
        draws = pm.sample_prior_predictive(draws=4000, random_seed=1, var_names=["corr_g"]).prior["corr_g"]
    ours = draws.values.reshape(-1, n * (n - 1) // 2)
    cholesky = pm.draw(pm.LKJCorr.dist(n=n, eta=eta), 4000, random_seed=2)   # PyMC 6: (draw, n, n) Cholesky factors
    reference = (cholesky @ np.swapaxes(cholesky, -1, -2))[:, *np.triu_indices(n, 1)]
    for k in range(ours.shape[1]):        # same pairs in the same (upper-triangle) order
        assert stats.ks_2samp(ours[:, k], reference[:, k]).pvalue > 0.001
        a = eta - 1 + n / 2               # every marginal correlation: (rho + 1) / 2 ~ Beta(a, a)
        assert stats.kstest((ours[:, k] + 1) / 2, stats.beta(a, a).cdf).pvalue > 0.001


def test_effects_have_the_covariance_that_variance_reports():
    group = GroupEffects("g", "group", "term", ("intercept", "slope", "other"))
    priors = group.priors([0.5, 0.2, 1.0], 1.0)
    with pm.Model(coords={"group": range(20000), **group.coords()}):
        group.effects(priors)
        prior = pm.sample_prior_predictive(draws=3, random_seed=4).prior
    x = (1.0, 2.0, -0.5)
    for d in range(3):
        one = prior.isel(chain=[0], draw=[d])
        u = one["u_g"].values[0, 0]                                  # (group, term)
        empirical = np.var(u @ np.array(x))
        assert abs(float(group.variance(one, x).squeeze()) / empirical - 1) < 0.05


def test_a_non_lkj_prior_for_correlations_is_a_config_error():
    group = GroupEffects("g", "group", "term", ("a", "b"))
    priors = {**group.priors([1.0, 1.0], 2.0), "corr_g": group.priors([1.0], 1.0)["tau_g"]}
    with pm.Model(coords={"group": range(3), **group.coords()}):
        with pytest.raises(ConfigError, match="correlations take an LKJ prior"):
            group.effects(priors)
