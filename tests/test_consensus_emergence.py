"""Model B (ConsensusEmergence): recovery, the no-emergence case, the ML reference fit,
derived quantities and the outcome submodel."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from lcbayes.data.simulate import ClimateTruth, Design, simulate_study
from lcbayes.data.study import Study
from lcbayes.errors import ConfigError
from lcbayes.models import BayesModel, ConsensusEmergence

FAST = {"chains": 2, "draws": 1000, "tune": 700}
LOCATION_ONLY = dict(gamma_lgo=0.0, gamma_support_within=0.0, gamma_support_between=0.0, tau_r=(0.5, 0.0))


def interval(idata, name, prob=0.9):
    draws = idata.posterior[name].stack(sample=("chain", "draw")).values
    return np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=-1)


@pytest.fixture(scope="module")
def full():
    """Emergence, composition x time, a scale trait and the learning outcome."""
    truth = ClimateTruth(**LOCATION_ONLY, alpha1=-0.10, alpha3=0.04, eta_interaction=0.0)
    sim = simulate_study(Design(communities=24, participants=10, sessions=6), climate=truth, seed=31)
    study = Study.from_frame(sim.table, sim.roles)
    model = ConsensusEmergence(study, {"outcome": "climate", "options": {
        "composition": ["lgo_sd"], "scale_traits": ["psych_safety"], "learning": "learning", "scale_points": 5}})
    model.fit(**FAST, seed=3)
    return sim, model


def test_recovers_emergence_composition_and_trait_effects(full):
    sim, model = full
    t = sim.truth.climate
    assert model.diagnostics().divergences == 0
    checks = {"alpha_intercept": t.alpha0, "alpha_time": t.alpha1, "alpha_composition": [t.alpha2],
              "alpha_composition_time": [t.alpha3], "alpha_trait": [t.alpha4],
              "beta_intercept": t.beta0, "beta_time": [t.beta1]}
    for name, value in checks.items():
        lo, hi = interval(model.idata, name)
        assert np.all((lo <= value) & (value <= hi)), f"{name}: {value} outside [{lo}, {hi}]"
    assert model.emergence_evidence().loc["alpha_time", "p_emergence"] > 0.95


def test_outcome_submodel_recovers_strength_and_consensus_effects(full):
    sim, model = full
    t = sim.truth.climate
    lo, hi = interval(model.idata, "eta")
    truth = np.array([t.eta0, t.eta_strength, t.eta_consensus, t.eta_interaction])
    terms = model.idata.posterior["eta"].coords["outcome_term"].values.tolist()
    assert terms == ["intercept", "strength", "consensus", "strength_x_consensus"]
    inside = (lo <= truth) & (truth <= hi)
    assert inside[1:].all(), (lo, hi, truth)          # the three effects
    # effects at the average latent strength and consensus (no interaction in the truth: equal to the truth)
    post = model.idata.posterior
    s_bar = post["strength"].values[..., -1].mean(-1)
    c_bar = post["consensus"].values[..., -1].mean(-1)
    eta = post["eta"].values
    assert np.allclose(post["eta_average"].values[..., 1], eta[..., 1] + eta[..., 3] * c_bar)
    assert np.allclose(post["eta_average"].values[..., 2], eta[..., 2] + eta[..., 3] * s_bar)
    lo, hi = interval(model.idata, "eta_average")
    assert lo[1] <= t.eta_strength <= hi[1] and lo[2] <= t.eta_consensus <= hi[2], (lo, hi)


def test_learning_log_likelihood_matches_an_independent_computation(full):
    """The per-learner log densities (used to power-scale the likelihood) equal normal
    densities computed here from the posterior strength, consensus and outcome coefficients."""
    model = full[1]
    terms = model.log_likelihood_terms()
    assert set(terms.data_vars) == {"climate", "learning"}
    learners = np.flatnonzero(model.learning_mask > 0)
    assert terms.sizes["learner"] == len(learners)
    level, spread = model._last_session_climate()           # the centring constants of eta_centred
    comm = model.study.participant_community[learners]
    for draw in (0, 57):
        post = model.idata.posterior.isel(chain=1, draw=draw)
        S = post["strength"].isel(session=-1).values[comm] - level.mean()
        C = post["consensus"].isel(session=-1).values[comm] - spread.mean()
        eta = post["eta_centred"].values
        mean = eta[0] + eta[1] * S + eta[2] * C + eta[3] * S * C
        expected = stats.norm.logpdf(model.learning_values[learners], mean, float(post["sigma_learning"]))
        np.testing.assert_allclose(terms["learning"].isel(chain=1, draw=draw).values, expected, rtol=1e-9)


def test_derived_consensus_strength_and_time_to_consensus(full):
    sim, model = full
    post = model.idata.posterior
    # consensus is exp(alpha0 + alpha1 s + alpha2 z + alpha3 z s) per draw
    z = sim.truth.communities.set_index("community")["z"].reindex(model.coords["community"]).to_numpy()
    s = model.session_times()
    one = post.isel(chain=0, draw=5)
    expected = np.exp(float(one["alpha_intercept"]) + float(one["alpha_time"]) * s[None, :]
                      + float(one["alpha_composition"][0]) * z[:, None]
                      + float(one["alpha_composition_time"][0]) * z[:, None] * s[None, :])
    assert one["consensus"].values == pytest.approx(expected, rel=1e-10)
    # r_wg of a 5-point item: 1 - SD^2 / 2, truncated to [0, 1]
    rwg = np.clip(1 - expected**2 / 2.0, 0, 1)
    assert one["consensus_rwg"].values == pytest.approx(rwg, rel=1e-10)
    # time to consensus: the first session whose SD is at or below sqrt(0.3 * 2)
    threshold = np.sqrt(0.3 * 2.0)
    first = [float(model.coords["session"][np.argmax(row <= threshold)]) if (row <= threshold).any() else np.nan
             for row in expected]
    np.testing.assert_array_equal(one["time_to_consensus"].values, first)
    # latent truth covered at its nominal rate
    true = sim.truth.community_sessions.pivot(index="community", columns="session", values="consensus")
    lo, hi = post["consensus"].quantile([0.05, 0.95], dim=("chain", "draw")).values
    assert ((lo <= true.values) & (true.values <= hi)).mean() >= 0.75


def test_save_and_load_keep_the_derived_quantities(full, tmp_path):
    _, model = full
    path = model.save(tmp_path / "b.nc")
    again = BayesModel.load(path)
    assert isinstance(again, ConsensusEmergence)
    np.testing.assert_array_equal(again.idata.posterior["consensus"].values, model.idata.posterior["consensus"].values)
    np.testing.assert_array_equal(again.predict(seed=1).values, model.predict(seed=1).values)


def test_plots_draw(full):
    import matplotlib

    matplotlib.use("Agg")
    _, model = full
    ax = model.plot_consensus()
    assert len(ax.lines) >= model.study.n("community")
    ax = model.plot_strength_consensus()
    assert ax.get_xlabel().startswith("climate strength")


def test_no_emergence_covers_zero_and_loo_does_not_prefer_emergence():
    truth = ClimateTruth(**LOCATION_ONLY, alpha1=0.0, alpha2=0.0, alpha3=0.0, alpha4=0.0)
    sim = simulate_study(Design(communities=16, participants=8, sessions=5), climate=truth, seed=43)
    model = ConsensusEmergence(Study.from_frame(sim.table, sim.roles), {"outcome": "climate"})
    model.fit(**FAST, seed=4)
    lo, hi = interval(model.idata, "alpha_time")
    assert lo < 0 < hi
    comparison = model.compare_emergence(**FAST, seed=4)
    # either the constant-spread model ranks first, or the emergence model's lead is within 2 SE
    if comparison.index[0] == "emergence":
        assert comparison.loc["no_emergence", "elpd_diff"] < 2 * comparison.loc["no_emergence", "dse"]


def cem_maximum_likelihood(table) -> float:
    """ML estimate of alpha1 in y ~ s + (s | community) + (1 | participant), residual SD
    exp(alpha0 + alpha1 s): nlme's lme(..., weights = varExp(form = ~time)). The marginal
    likelihood is written with dense covariance matrices per community (independent of
    lcbayes' closed form) and maximised with scipy."""
    groups = []
    for _, g in table.groupby("community"):
        s = g["session"].to_numpy() - 1.0
        p = g["participant"].to_numpy()
        groups.append((g["climate"].to_numpy(), s, (p[:, None] == p[None, :]).astype(float)))

    def nll(theta):
        b0, b1, lt0, lt1, zr, ltp, a0, a1 = theta
        t0, t1, rho, tp = np.exp(lt0), np.exp(lt1), np.tanh(zr), np.exp(ltp)
        su = np.array([[t0**2, rho * t0 * t1], [rho * t0 * t1, t1**2]])
        total = 0.0
        for y, s, same in groups:
            Z = np.column_stack([np.ones_like(s), s])
            V = Z @ su @ Z.T + tp**2 * same + np.diag(np.exp(2 * (a0 + a1 * s)))
            total -= stats.multivariate_normal(b0 + b1 * s, V).logpdf(y)
        return total

    start = np.array([table["climate"].mean(), 0.0, np.log(0.2), np.log(0.03), 0.0, np.log(0.4), np.log(0.5), 0.0])
    fit = optimize.minimize(nll, start, method="L-BFGS-B")
    assert fit.success, fit.message
    return float(fit.x[7])


def test_reduced_form_matches_maximum_likelihood():
    truth = ClimateTruth(**LOCATION_ONLY, tau_o=0.0, alpha1=-0.10, alpha2=0.0, alpha3=0.0, alpha4=0.0)
    sim = simulate_study(Design(communities=16, participants=8, sessions=5), climate=truth, seed=33)
    study = Study.from_frame(sim.table, sim.roles)
    model = ConsensusEmergence(study, {"outcome": "climate", "options": {"organization": False}})
    model.fit(**FAST, seed=5)
    draws = model.idata.posterior["alpha_time"].values.ravel()
    ml = cem_maximum_likelihood(study.table)
    assert abs(draws.mean() - ml) < draws.std(), (draws.mean(), draws.std(), ml)


def test_options_are_checked():
    sim = simulate_study(Design(communities=4, participants=4, sessions=4), seed=34)
    study = Study.from_frame(sim.table, sim.roles)
    with pytest.raises(ConfigError, match="unknown composition predictor"):
        ConsensusEmergence(study, {"outcome": "climate", "options": {"composition": ["lgo_variance"]}})
    with pytest.raises(ConfigError, match="learning outcome 'support' must be participant-level"):
        ConsensusEmergence(study, {"outcome": "climate", "options": {"learning": "support"}})
