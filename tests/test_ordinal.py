"""Ordinal measurement in model A (lcbayes.models.ordinal, lcbayes.models.integrated): the stable interval
probability, the responses and their checks, the threshold anchoring, the quadrature against brute force, and recovery
of item thresholds, item SDs and growth parameters from simulated Likert items whose items differ."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.special import ndtr

from lcbayes.data.simulate import ClimateTruth, Design, simulate_study
from lcbayes.data.study import Study
from lcbayes.errors import ConfigError, StudyValidationError
from lcbayes.models.climate import ClimateModel
from lcbayes.models.climate_growth import ClimateGrowth
from lcbayes.models.integrated import integrated_loglik
from lcbayes.models.ordinal import Responses, Thresholds, category_probabilities, log_interval
from lcbayes.models.panel import Panel

# item k's thresholds: 3 + delta_k + 3 exp(zeta_k) (pi - 1/2) with equal spacing pi = 0, 1/3, 2/3, 1
DELTA = np.array([-0.3, 0.1, 0.2, 0.0])
ZETA = np.array([0.2, -0.1, 0.0, -0.1])
ITEM_SD = np.array([0.5, 0.7, 0.6, 0.8])
KAPPA = 3 + DELTA[:, None] + 3 * np.exp(ZETA)[:, None] * (np.array([0, 1 / 3, 2 / 3, 1]) - 0.5)
FLAT = ClimateTruth(gamma_lgo=0.0, gamma_support_within=0.0, gamma_support_between=0.0, alpha1=0.0, alpha2=0.0,
                    alpha3=0.0, alpha4=0.0)   # homoscedastic residual SD exp(alpha0) = 0.5, no predictors


def likert_items(design: Design, seed: int, kappa: np.ndarray = KAPPA, item_sd: np.ndarray = ITEM_SD) -> Study:
    """A study whose climate is measured by items with thresholds ``kappa`` (K, 4) and SDs ``item_sd`` around the
    simulator's latent climate (model A's assumptions, no predictors)."""
    sim = simulate_study(design, climate=FLAT, seed=seed)
    table = sim.table.drop(columns=["climate"])
    latent = sim.table["climate"].to_numpy()
    rng = np.random.default_rng(seed)
    names = [f"climate_{k + 1}" for k in range(len(kappa))]
    for k, name in enumerate(names):
        response = latent + item_sd[k] * rng.standard_normal(len(latent))
        value = 1 + (response[:, None] > kappa[k]).sum(-1).astype(float)
        table[name] = np.where(np.isnan(latent), np.nan, value)
    roles = sim.roles.to_dict()
    roles.setdefault("scales", {})["climate"] = {"items": names, "range": [1, 5], "level": "session"}
    roles.get("variables", {}).pop("climate", None)
    return Study.from_frame(table, roles)


def test_log_interval_matches_scipy_in_both_tails_with_finite_gradients():
    lower = pt.dvector("lower")
    upper = pt.dvector("upper")
    out = log_interval(lower, upper)
    f = pytensor.function([lower, upper], [out, *pt.grad(out.sum(), [lower, upper])])
    lo = np.array([-40.0, -3.0, 0.5, 6.0, 9.0, -1.0])
    hi = np.array([-35.0, -2.9, 0.6, 7.0, 40.0, 40.0])
    value, *grads = f(lo, hi)
    exact = np.log(np.where(lo > 0, ndtr(-lo) - ndtr(-hi), ndtr(hi) - ndtr(lo)))
    np.testing.assert_allclose(value[1:], exact[1:], rtol=1e-9)
    assert np.isfinite(value).all() and all(np.isfinite(g).all() for g in grads)
    assert value[0] == pytest.approx(-35**2 / 2 - np.log(35 * np.sqrt(2 * np.pi)), abs=0.01)   # log Phi(-35), finite


def test_responses_codes_and_a_typed_error_for_non_integer_items():
    study = likert_items(Design(communities=2, participants=3, sessions=2, attrition=0, late_join=0, missed=0), 1)
    resp = Responses.of(Panel.from_study(study), "climate")
    assert resp.categories == 5 and resp.low == 1 and resp.items == ("climate_1", "climate_2", "climate_3", "climate_4")
    assert len(resp.category) == 4 * study.n_obs and resp.category.min() >= 0 and resp.category.max() <= 4
    np.testing.assert_allclose(resp.score[study.idx["participant"], study.idx["session"]], study.values("climate"))
    table = study.table.copy()
    items = study.items["climate"].copy()
    items.iloc[3, 1] = 3.5
    bad = Study(pd.concat([table, items], axis=1), study.roles, {"climate": items}, study.coords, study.idx)
    with pytest.raises(StudyValidationError, match="climate_2") as err:
        Responses.of(Panel.from_study(bad), "climate")
    assert str(items.index[3]) in str(err.value)


def test_option_errors_name_the_fix():
    study = likert_items(Design(communities=2, participants=3, sessions=2), 1)
    with pytest.raises(ConfigError, match="measurement = \"items\""):
        ClimateGrowth(study, {"outcome": "climate", "options": {"family": "ordinal", "traits": [], "time_varying": []}})
    with pytest.raises(ConfigError, match="thresholds applies"):
        ClimateGrowth(study, {"outcome": "climate", "options": {"thresholds": "session", "traits": [],
                                                                 "time_varying": []}})
    with pytest.raises(ConfigError, match="measurement must be one of"):
        ClimateGrowth(study, {"outcome": "climate", "options": {"measurement": "irt", "traits": [],
                                                                 "time_varying": []}})


@pytest.mark.parametrize("per_session", [False, True])
def test_thresholds_are_anchored_on_average_at_the_reference_cuts(per_session):
    thresholds = Thresholds(("a", "b", "c"), 5, 1.0, per_session)
    coords = {"session": [1, 2], **thresholds.coords()}
    with pm.Model(coords=coords):
        kappa = thresholds.build(thresholds.priors(2.0))
    draws = pm.draw(kappa, draws=200, random_seed=1)           # (200, S, K, C - 1)
    assert draws.shape == (200, 2 if per_session else 1, 3, 4)
    assert (np.diff(draws, axis=-1) > 0).all()                 # ordered
    centre = (draws[..., 0] + draws[..., -1]) / 2
    span = draws[..., -1] - draws[..., 0]
    np.testing.assert_allclose(centre.mean(-1), 3.0, atol=1e-9)               # mean item centre = middle of 1-5
    np.testing.assert_allclose(np.exp(np.log(span).mean(-1)), 3.0, rtol=1e-9)  # geometric mean span = g_4 - g_1
    assert draws[..., 1].std() > 0.05                          # the items do differ


def test_integrated_likelihood_matches_brute_force_monte_carlo():
    """The quadrature's participant log likelihood against plain Monte Carlo over r and eta (400k draws)."""
    study = likert_items(Design(communities=2, participants=2, sessions=3, attrition=0, late_join=0, missed=0), 5,
                         kappa=KAPPA[:3], item_sd=ITEM_SD[:3])
    resp = Responses.of(Panel.from_study(study), "climate")
    P, T = resp.cells.shape
    s = np.broadcast_to(np.arange(T, dtype=float), (P, T))
    mu = np.full((1, P, T), 3.2) + 0.1 * s
    sigma, tau0, tau1, rho = 0.45, 0.5, 0.1, -0.3
    kappa, psi = KAPPA[None, None, :3], ITEM_SD[None, :3]
    quad = integrated_loglik(resp, mu, np.log([sigma]), s, np.array([tau0]), np.array([tau1]), np.array([rho]),
                             kappa, psi)[0]
    rng = np.random.default_rng(0)
    n = 400_000
    cov = np.array([[tau0**2, rho * tau0 * tau1], [rho * tau0 * tau1, tau1**2]])
    for p in range(P):
        r = rng.multivariate_normal([0, 0], cov, size=n)
        like = np.ones(n)
        for t in range(T):
            eta = mu[0, p, t] + r[:, 0] + r[:, 1] * s[p, t] + sigma * rng.standard_normal(n)
            probs = category_probabilities(kappa[0, 0][None], eta[:, None], psi[0][None])   # (n, K, C)
            answered = resp.answered[p, t]
            dist = np.ones((n, 1))
            for k in np.flatnonzero(answered):
                new = np.zeros((n, dist.shape[1] + 4))
                for c in range(5):
                    new[:, c:c + dist.shape[1]] += dist * probs[:, k, c:c + 1]
                dist = new
            like *= dist[:, resp.total[p, t]]
        assert quad[p] == pytest.approx(np.log(like.mean()), abs=0.02)


@pytest.fixture(scope="module")
def items_fit():
    design = Design(communities=14, participants=8, sessions=5, attrition=0, late_join=0, missed=0)
    study = likert_items(design, seed=11)
    model = ClimateGrowth(study, {"outcome": "climate", "options": {"traits": [], "time_varying": [],
                                                                    "measurement": "items"}})
    model.fit(chains=2, tune=600, draws=600, seed=3)
    return model


def test_items_model_recovers_thresholds_item_sds_and_growth(items_fit):
    """Items that differ in location, spread and SD, generated under the model: 90% intervals cover the true
    thresholds and item SDs (at least 18 of 20) and the growth parameters."""
    post = items_fit.fitted().posterior
    diagnostics = items_fit.diagnostics()
    assert diagnostics.divergences == 0 and diagnostics.table["max_r_hat"].max() < 1.05

    def covered(name, truth):
        draws = post[name].values.reshape((-1,) + post[name].shape[2:])
        low, high = np.quantile(draws, [0.05, 0.95], axis=0)
        return (low <= truth) & (truth <= high)

    hits = np.concatenate([covered("thresholds", KAPPA).ravel(), covered("item_sd", ITEM_SD)])
    assert hits.sum() >= 18, hits
    assert covered("beta_intercept", FLAT.beta0) and covered("beta_time", np.array([FLAT.beta1])).all()
    assert covered("sigma", 0.5)
    tau = float(post["tau_participant"].sel(participant_effect="intercept").mean())
    assert abs(tau - FLAT.tau_r[0]) < 0.25 * FLAT.tau_r[0]     # one sample of 112 participants: within 25%


def test_items_model_log_likelihood_and_predictive_draws(items_fit):
    idata = items_fit.fitted()
    loglik = idata.log_likelihood["climate"]
    assert loglik.dims == ("chain", "draw", "participant") and np.isfinite(loglik.values).all()
    pp = items_fit.sample_posterior_predictive(seed=1).posterior_predictive["climate"].values
    observed = items_fit.study.values("climate")
    assert np.isin(np.round(pp * 4), np.arange(4, 21)).all()        # means of four 1-5 items
    assert abs(pp.mean() - np.nanmean(observed)) < 0.05
    checks = items_fit.prior_check(draws=100, seed=2)
    assert checks[0].passed and checks[0].share_outside == 0.0


def test_items_model_report_parts(items_fit):
    content = items_fit.report_content()
    (caption, table), = content.tables
    assert table.shape == (4, 4) and list(table.columns) == ["1|2", "2|3", "3|4", "4|5"]
    np.testing.assert_allclose(table.to_numpy(), KAPPA, atol=0.5)
    assert any("free of item error" in getattr(c, "text", c) for c in content.conclusions)


def test_gaussian_scale_model_scores_the_probability_of_the_observed_scale_mean():
    """The scale-mean model's participant log likelihood is its density times the score's resolution (1/4 for four
    items), so that LOO compares it with the items model on the same observations."""
    study = likert_items(Design(communities=3, participants=4, sessions=3, attrition=0, late_join=0, missed=0), 2)
    model = ClimateGrowth(study, {"outcome": "climate", "options": {"traits": [], "time_varying": []}})
    model.fit(chains=1, tune=100, draws=20, seed=1)
    density = ClimateModel.pointwise_loglik(model, model.fitted())
    shift = model.fitted().log_likelihood["climate"] - density
    np.testing.assert_allclose(shift.values, 3 * np.log(1 / 4))      # three sessions of four answered items each


def test_one_rated_item_as_an_ordinal_response():
    """family = "ordinal" on a single seven-point item: thresholds near the reference cuts, growth recovered, and a
    log likelihood on the same scale as the Gaussian model's (a probability per response)."""
    design = Design(communities=12, participants=8, sessions=4, attrition=0, late_join=0, missed=0)
    sim = simulate_study(design, climate=FLAT, seed=4)
    rng = np.random.default_rng(4)
    table = sim.table.copy()
    latent = 1 + (table["climate"].to_numpy() - 1) * 6 / 4            # 1-5 latent stretched to 1-7
    table["rating"] = np.clip(np.rint(latent + 0.7 * rng.standard_normal(len(table))), 1, 7)
    roles = sim.roles.to_dict()
    roles["variables"]["rating"] = {"column": "rating", "level": "session", "range": [1, 7]}
    study = Study.from_frame(table, roles)
    opts = {"traits": [], "time_varying": []}
    ordinal = ClimateGrowth(study, {"outcome": "rating", "options": {**opts, "family": "ordinal"}})
    assert set(ordinal.priors) >= {"threshold_shape", "sigma"} and "item_sd" not in ordinal.priors
    ordinal.fit(chains=2, tune=500, draws=500, seed=2)
    post = ordinal.fitted().posterior
    kappa = post["thresholds"].mean(("chain", "draw")).values.ravel()
    np.testing.assert_allclose(kappa, np.arange(1.5, 7), atol=0.35)
    low, high = np.quantile(post["beta_time"].values.ravel(), [0.05, 0.95])
    assert low <= FLAT.beta1 * 6 / 4 <= high
    loglik = ordinal.fitted().log_likelihood["rating"]
    assert np.isfinite(loglik.values).all() and (loglik.values < 0).all()


def test_items_model_save_load_round_trip(items_fit, tmp_path):
    """The items are stored with the fit, so the loaded model rebuilds the same responses and predictions."""
    from lcbayes.models import BayesModel

    path = items_fit.save(tmp_path / "items.nc")
    again = BayesModel.load(path)
    assert isinstance(again, ClimateGrowth) and again.ordinal is not None and again.ordinal.items
    np.testing.assert_array_equal(again.ordinal.responses.category, items_fit.ordinal.responses.category)
    before, after = (m.predict(seed=1)["predictions"][m.spec.outcome].values for m in (items_fit, again))
    assert np.abs(after - before).mean() < 1e-3   # draws to 1e-3 SD
