"""The predictors of the climate models: observed means by hand, latent and observed centring, the contextual split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lcbayes.data.simulate import Design, simulate_study
from lcbayes.data.study import Study
from lcbayes.errors import ConfigError
from lcbayes.models import ClimateGrowth


@pytest.fixture(scope="module")
def study():
    sim = simulate_study(Design(communities=5, participants=6, sessions=4, predictor_missing=0.2), seed=8)
    return Study.from_frame(sim.table, sim.roles)


def _model(study, **options):
    return ClimateGrowth(study, {"outcome": "climate", "options": {"traits": ["lgo"], "time_varying": ["support"],
                                                                   **options}})


def test_observed_means_match_pandas(study):
    p = _model(study).location.predictors
    means = p.observed_means()
    t = study.table
    person = t.groupby("participant", sort=False)["support"].mean().reindex(study.coords["participant"])
    assert person.isna().any()                                   # someone without support values: the grand mean
    assert means["predictor_mean"][0] == pytest.approx(person.mean())
    person = person.fillna(person.mean())
    np.testing.assert_allclose(means["predictor_person"][:, 0], person.to_numpy())
    community = person.groupby(pd.Series(study.participant_community, index=person.index)).mean()
    np.testing.assert_allclose(means["predictor_community"][:, 0], community.to_numpy())
    lgo = study.participant_values("lgo")
    z = (lgo - lgo.mean()) / lgo.std(ddof=0)
    by_community = z.groupby(study.participant_community).mean()
    np.testing.assert_allclose(means["trait_community"][:, 0], by_community.to_numpy())


def test_parts_and_names_follow_the_options(study):
    latent = _model(study)
    names = {v.name for v in latent.model.free_RVs} | {v.name for v in latent.model.deterministics}
    assert {"gamma_community", "contextual", "gamma_trait_community", "contextual_trait", "predictor_person",
            "predictor_community", "trait_community"} <= names
    assert {"predictor_mean", "tau_predictor_person", "tau_predictor_community"} <= set(latent.population)
    plain = _model(study, contextual=False)
    names = {v.name for v in plain.model.free_RVs} | {v.name for v in plain.model.deterministics}
    assert "gamma_community" not in names and "trait_community" not in names and "predictor_person" in names
    observed = _model(study, centring="observed")
    names = {v.name for v in observed.model.free_RVs}
    assert "predictor_person" not in names and "gamma_community" in names
    assert not observed.location.predictors.observed_means()     # nothing latent to fix in a prior predictive
    with pytest.raises(ConfigError, match="option centring must be one of latent, observed"):
        _model(study, centring="person")
    with pytest.raises(ConfigError, match="option contextual must be true or false"):
        _model(study, contextual="yes")


def test_contextual_effect_is_the_difference_of_its_parts(study):
    model = _model(study)
    prior = model.sample_prior_predictive(draws=50, seed=2).prior
    np.testing.assert_allclose(prior["contextual"], prior["gamma_community"] - prior["gamma_between"])
    np.testing.assert_allclose(prior["contextual_trait"], prior["gamma_trait_community"] - prior["gamma_trait"])


def test_new_participants_person_means_are_their_exact_gaussian_posterior():
    """For a new participant, xi | x ~ MVN(c, Sigma_p) updated by x_tm ~ N(xi_m, sigma_w_m): the conditional mean that
    population-level predictions use equals the joint-Gaussian conditioning of (xi, x) done by hand, with two
    correlated predictors and a missing value."""
    import xarray as xr

    from lcbayes.models.predictors import Predictors

    values = np.array([[[3.0, 2.0], [4.0, np.nan], [5.0, 2.5]]])           # one participant, 3 sessions, 2 predictors
    p = Predictors([], np.zeros((1, 0)), ["a", "b"], values, np.array([0]), 1, "latent", False)
    tau, rho, sigma_w, mu = np.array([0.8, 0.5]), 0.6, np.array([0.4, 0.3]), np.array([3.5, 2.0])
    draws = xr.Dataset({"tau_predictor_person": (("chain", "draw", "predictor"), tau[None, None]),
                        "corr_predictor_person": (("chain", "draw", "pair"), np.array([[[rho]]])),
                        "sigma_within": (("chain", "draw", "predictor"), sigma_w[None, None]),
                        "predictor_mean": (("chain", "draw", "predictor"), mu[None, None]),
                        "predictor_person": (("chain", "draw", "participant", "predictor"), np.zeros((1, 1, 1, 2)))})
    out = p.condition_new(draws, np.array([True]), np.array([False]), True, np.random.default_rng(0))
    got = out["predictor_person"].values[0, 0, 0]
    # by hand: the joint normal of (xi_a, xi_b, the 5 observed x) and the conditional mean of xi given x
    cov_xi = np.array([[tau[0] ** 2, rho * tau[0] * tau[1]], [rho * tau[0] * tau[1], tau[1] ** 2]])
    which = [0, 1, 0, 0, 1]                                                 # the predictor of each observed value
    x = np.array([3.0, 2.0, 4.0, 5.0, 2.5])
    cross = cov_xi[:, which]                                                # Cov(xi, x)
    cov_x = cov_xi[np.ix_(which, which)] + np.diag(sigma_w[which] ** 2)
    expected = mu + cross @ np.linalg.solve(cov_x, x - mu[which])
    np.testing.assert_allclose(got, expected, rtol=1e-10)
