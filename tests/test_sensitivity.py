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
                    "priors": {"sigma": {"dist": "Exponential", "lam": 2.0}},   # an override: a second family
                    "sampler": {"chains": 1, "draws": 30, "tune": 60}}, Study.from_frame(sim.table, sim.roles))
    model.fit()
    names = prior_variables(model)
    assert {"cpc_community", "cpc_participant"} <= set(names) and not any(n.startswith("z_") for n in names)
    lp, post, priors = log_prior(model), model.idata.posterior, model.priors
    lam = priors["sigma"].params["lam"]
    np.testing.assert_allclose(lp["sigma"], stats.expon(scale=1 / lam).logpdf(post["sigma"]), rtol=1e-6, atol=1e-6)
    sd = np.asarray(priors["tau_community"].params["sigma"])
    expected = stats.halfnorm(scale=sd).logpdf(post["tau_community"].values).sum(-1)
    np.testing.assert_allclose(lp["tau_community"], expected, rtol=1e-6, atol=1e-6)
    # a single correlation rho = 2 u - 1 with u ~ Beta(eta, eta), i.e. LKJ(eta) for a 2 x 2 matrix
    eta, rho = priors["corr_community"].params["eta"], post["corr_community"].values[..., 0]
    np.testing.assert_allclose(lp["cpc_community"], stats.beta(eta, eta).logpdf((rho + 1) / 2), rtol=1e-6, atol=1e-6)


def test_lkj_prior_of_three_variables_is_included():
    sim = simulate_study(Design(communities=4, participants=4, sessions=3), seed=2)
    model = create({"model": "knowledge_sharing", "outcome": "sharing"}, Study.from_frame(sim.table, sim.roles))
    assert "chol_predictor" in prior_variables(model)   # the packed Cholesky factor carries tau_ and corr_predictor


def test_prior_to_dict_keeps_the_shape_of_matrix_parameters():
    cov = [[1.0, 0.3], [0.3, 2.0]]
    again = Prior.parse("x", Prior("MvNormal", {"mu": [0.0, 0.0], "cov": cov}).to_dict())
    assert np.asarray(again.params["cov"]).shape == (2, 2)
    assert again.to_dict()["cov"] == cov
