"""The report's log prior: PyMC's densities of the top-level priors, LKJ matrices included;
and priors keep their shape through to_dict."""

from __future__ import annotations

import numpy as np
from scipy import stats

from lcbayes.data.simulate import Design, simulate_study
from lcbayes.data.study import Study
from lcbayes.models import create
from lcbayes.models.priors import Prior
from lcbayes.report.sensitivity import log_prior, prior_variables


def test_log_prior_equals_the_scipy_densities_of_the_top_level_priors():
    sim = simulate_study(Design(communities=5, participants=5, sessions=4), seed=3)
    model = create({"model": "climate_growth", "outcome": "climate",
                    "sampler": {"chains": 1, "draws": 30, "tune": 60}}, Study.from_frame(sim.table, sim.roles))
    model.fit()
    names = prior_variables(model)
    assert {"chol_community", "chol_participant"} <= set(names) and not any(n.startswith("z_") for n in names)
    lp, post, priors = log_prior(model), model.idata.posterior, model.priors
    lam = priors["sigma"].params["lam"]
    np.testing.assert_allclose(lp["sigma"], stats.expon(scale=1 / lam).logpdf(post["sigma"]), rtol=1e-6, atol=1e-6)
    # the packed Cholesky factor (L00, L10, L11) = (tau0, tau1 rho, tau1 sqrt(1 - rho^2)) carries
    # tau ~ half-normal and (rho + 1) / 2 ~ Beta(eta, eta); |dL / d(tau0, tau1, rho)| = tau1 / sqrt(1 - rho^2)
    tau, rho = post["tau_community"].values, post["corr_community"].values[..., 0]
    eta, sd = priors["corr_community"].params["eta"], np.asarray(priors["tau_community"].params["sigma"])
    expected = (stats.halfnorm(scale=sd).logpdf(tau).sum(-1) + stats.beta(eta, eta).logpdf((rho + 1) / 2) - np.log(2)
                - np.log(tau[..., 1]) + 0.5 * np.log1p(-rho**2))
    # equal up to a constant: PyMC 5.28's LKJ normalising constant for n = 2, eta = 2 is log(4/3)
    # where the density integrates to 1 with log(3/4); power-scaling needs the density up to a constant
    gap = (lp["chol_community"] - expected).values
    np.testing.assert_allclose(gap, gap.flat[0], atol=1e-6)
    assert abs(gap.flat[0] - np.log(16 / 9)) < 1e-6


def test_lkj_cholesky_prior_of_three_variables_is_included():
    sim = simulate_study(Design(communities=4, participants=4, sessions=3), seed=2)
    model = create({"model": "knowledge_sharing", "outcome": "sharing"}, Study.from_frame(sim.table, sim.roles))
    assert "chol_predictor" in prior_variables(model)      # carries tau_predictor and corr_predictor


def test_prior_to_dict_keeps_the_shape_of_matrix_parameters():
    cov = [[1.0, 0.3], [0.3, 2.0]]
    again = Prior.parse("x", Prior("MvNormal", {"mu": [0.0, 0.0], "cov": cov}).to_dict())
    assert np.asarray(again.params["cov"]).shape == (2, 2)
    assert again.to_dict()["cov"] == cov
