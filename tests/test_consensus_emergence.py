"""Model B (ConsensusEmergence): recovery, the no-emergence case, the ML reference fit,
derived quantities and the outcome submodel."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import optimize, stats

from lcbayes.data.simulate import ClimateTruth, Design, simulate_study
from lcbayes.data.study import Study
from lcbayes.errors import ConfigError
from lcbayes.models import BayesModel, ConsensusEmergence

FAST = {"chains": 2, "draws": 1000, "tune": 700, "target_accept": 0.95}   # 0.9 left 2 divergences on some CPUs
LOCATION_ONLY = dict(gamma_lgo=0.0, gamma_support_within=0.0, gamma_support_between=0.0, tau_r=(0.5, 0.0))


def interval(idata, name, prob=0.9):
    draws = idata.posterior[name].stack(sample=("chain", "draw")).values
    return np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=-1)


@pytest.fixture(scope="module")
def full():
    """Emergence, composition x time, a scale trait (with trait x time), Likert items (measurement error from the
    items) and the learning outcome on the composition-implied spread."""
    truth = ClimateTruth(**LOCATION_ONLY, alpha1=-0.10, alpha3=0.04, alpha5=-0.03, eta_interaction=0.0)
    sim = simulate_study(Design(communities=24, participants=10, sessions=6, likert=5), climate=truth, seed=31)
    study = Study.from_frame(sim.table, sim.roles)
    model = ConsensusEmergence(study, {"outcome": "climate", "options": {
        "composition": ["lgo_sd"], "scale_traits": ["psych_safety"], "learning": "learning",
        "composition_implied_spread": True}})
    model.fit(**FAST, seed=3)
    return sim, model


def test_recovers_emergence_composition_and_trait_effects(full):
    sim, model = full
    t = sim.truth.climate
    assert model.diagnostics().divergences == 0
    assert model.error is not None and model.error.n_items == 4
    checks = {"alpha_intercept": t.alpha0, "alpha_time": t.alpha1, "alpha_composition": [t.alpha2],
              "alpha_composition_time": [t.alpha3], "alpha_trait": [t.alpha4], "alpha_trait_time": [t.alpha5],
              "beta_intercept": t.beta0, "beta_time": [t.beta1]}
    # 98% intervals: with 8 parameters at 90%, a calibrated model misses at least one in half of the seeds (1 - .9^8);
    # calibration itself is the slow coverage test's job
    for name, value in checks.items():
        lo, hi = interval(model.idata, name, prob=0.98)
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
    # effects at the average latent strength and log consensus_sd (no interaction in the truth: equal to the truth)
    post = model.idata.posterior
    s_bar = post["strength"].values[..., -1].mean(-1)
    c_bar = np.log(post["consensus_sd"].values[..., -1]).mean(-1)
    eta = post["eta"].values
    assert np.allclose(post["eta_average"].values[..., 1], eta[..., 1] + eta[..., 3] * c_bar)
    assert np.allclose(post["eta_average"].values[..., 2], eta[..., 2] + eta[..., 3] * s_bar)
    lo, hi = interval(model.idata, "eta_average")
    assert lo[1] <= t.eta_strength <= hi[1] and lo[2] <= t.eta_consensus <= hi[2], (lo, hi)


def test_learning_log_likelihood_matches_an_independent_computation(full):
    """The per-learner log densities (used to power-scale the likelihood) equal normal densities computed here from
    the posterior strength, log consensus_sd, community residuals and outcome coefficients."""
    model = full[1]
    terms = model.log_likelihood_terms()
    assert set(terms.data_vars) == {"climate", "learning"}
    learners = np.flatnonzero(model.learning_mask > 0)
    assert terms.sizes["learner"] == len(learners)
    s_bar, c_bar = model._centres()
    comm = model.study.participant_community[learners]
    for draw in (0, 57):
        post = model.idata.posterior.isel(chain=1, draw=draw)
        S = post["strength"].isel(session=-1).values[comm] - s_bar
        C = np.log(post["consensus_sd"].isel(session=-1).values[comm]) - c_bar
        eta = post["eta_centred"].values
        mean = eta[0] + eta[1] * S + eta[2] * C + eta[3] * S * C + post["u_learning_community"].values[comm]
        expected = stats.norm.logpdf(model.learning_values[learners], mean, float(post["sigma_learning"]))
        np.testing.assert_allclose(terms["learning"].isel(chain=1, draw=draw).values, expected, rtol=1e-9)


def test_derived_consensus_quantities_match_an_independent_computation(full):
    """consensus_sd^2 = participant + organization + member-mean residual variance, computed here from the draws and
    the cells; r*_wg(J) and r_wg(J) from it and the items' theta; reached-by is the running maximum."""
    sim, model = full
    post = model.idata.posterior
    cells = model.cell_deterministics()
    one, c1 = post.isel(chain=0, draw=5), cells.isel(chain=0, draw=5)
    comm = model.study.participant_community
    sigma2 = np.exp(2 * c1["log_sigma"].values)                                          # (P, T) latent
    residual = np.stack([sigma2[comm == j].mean(0) for j in range(model.study.n("community"))])
    org = model.panel.organization
    conc = np.array([np.sum(np.unique(org[comm == j], return_counts=True)[1] ** 2) / (comm == j).sum() ** 2
                     for j in range(model.study.n("community"))])
    V = (float(one["tau_participant"][0]) ** 2 + float(one["tau_organization"]) ** 2 * (1 - conc)[:, None]
         + residual)
    assert one["consensus_sd"].values == pytest.approx(np.sqrt(V), rel=1e-9)
    assert one["transient_sd"].values == pytest.approx(np.sqrt(residual), rel=1e-9)
    # theta: the pooled within-row variance of the item-centred responses
    items = model.study.items["climate"].to_numpy(dtype=float)
    items = items - np.nanmean(items, axis=0)
    theta = np.nansum((items - np.nanmean(items, axis=1, keepdims=True)) ** 2) / ((~np.isnan(items)).sum(1) - 1).sum()
    assert model.error.theta_hat == pytest.approx(theta)
    q = (V + theta) / 2.0
    assert one["consensus_rstar"].values == pytest.approx(1 - q, rel=1e-9)
    assert one["consensus_rwg_j"].values == pytest.approx(np.where(q < 1, 4 * (1 - q) / (4 * (1 - q) + q), 0))
    np.testing.assert_array_equal(one["consensus_index"].values, one["consensus_rstar"].values)
    reached = np.maximum.accumulate(one["consensus_rstar"].values >= 0.7, axis=1)
    np.testing.assert_array_equal(one["consensus_reached_by"].values, reached.astype(float))
    table = model.p_consensus_by()
    assert table.shape == (model.study.n("community"), model.study.n("session"))
    assert (np.diff(table.to_numpy(), axis=1) >= 0).all()
    # latent truth covered at its nominal rate
    for name in ("consensus_sd", "transient_sd"):
        true = sim.truth.community_sessions.pivot(index="community", columns="session", values=name)
        lo, hi = post[name].quantile([0.05, 0.95], dim=("chain", "draw")).values
        assert ((lo <= true.values) & (true.values <= hi)).mean() >= 0.75, name


def test_save_and_load_keep_the_derived_quantities(full, tmp_path, same_draws):
    _, model = full
    path = model.save(tmp_path / "b.nc")
    again = BayesModel.load(path)
    assert isinstance(again, ConsensusEmergence)
    same_draws(again.idata.posterior["consensus_sd"], model.idata.posterior["consensus_sd"])   # recomputed on load
    assert again.error is not None and again.error.theta_hat == pytest.approx(model.error.theta_hat)
    same_draws(again.predict(seed=1)["predictions"]["climate"], model.predict(seed=1)["predictions"]["climate"])


def test_plots_draw(full):
    import matplotlib

    matplotlib.use("Agg")
    _, model = full
    from lcbayes.plots import overlapping_text

    n = model.study.n("community")
    axes = model.plot_consensus()                       # small multiples: a panel per community
    assert len(axes) == n and all(len(ax.lines) == 2 for ax in axes)   # its mean line and the threshold
    assert axes[0].figure.get_supylabel().startswith("r*_wg(J)")
    axes = model.plot_consensus_by()
    assert len(axes) == n and all(len(ax.lines) == 1 for ax in axes)
    ax = model.plot_strength_consensus()
    assert ax.get_xlabel().startswith("climate strength")
    for figure in (axes[0].figure, ax.figure):
        assert overlapping_text(figure) == []


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
        assert -comparison.loc["no_emergence", "elpd_diff"] < 2 * comparison.loc["no_emergence", "dse"]


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
        ConsensusEmergence(study, {"outcome": "climate", "options": {"learning": "support", "community_scale": True}})
    # consensus that cannot vary beyond composition: an error naming the fix, not an IndexError
    with pytest.raises(ConfigError, match="composition_implied_spread = true"):
        ConsensusEmergence(study, {"outcome": "climate", "options": {"learning": "learning",
                                                                     "composition": ["lgo_sd"]}})
    with pytest.raises(ConfigError, match="the same in every community"):
        ConsensusEmergence(study, {"outcome": "climate", "options": {
            "learning": "learning", "organization": False, "composition_implied_spread": True}})
    with pytest.raises(ConfigError, match="needs the items of 'climate'"):
        ConsensusEmergence(study, {"outcome": "climate", "options": {"measurement_error": "items"}})
    with pytest.raises(ConfigError, match="consensus_index = 'rstar' needs the item error variance"):
        ConsensusEmergence(study, {"outcome": "climate", "options": {"consensus_index": "rstar"}})
    with pytest.raises(ConfigError, match="consensus_null"):
        ConsensusEmergence(study, {"outcome": "climate", "options": {"consensus_null": "skewed"}})


def random_responders(seed: int, latent_sd: float | None) -> Study:
    """A Likert study (20 communities x 8 x 5, climate as 4 five-point items) whose climate items are answered purely
    at random (``latent_sd`` None: uniform over 1..5, no true-score differences), or are a common latent value 3.5
    plus member differences of SD ``latent_sd`` plus item noise (SD 0.5), rounded and clipped."""
    sim = simulate_study(Design(communities=20, participants=8, sessions=5, likert=5, attrition=0, late_join=0),
                         seed=seed)
    table, rng = sim.table.copy(), np.random.default_rng(seed)
    items = [f"climate_{k}" for k in range(1, 5)]
    if latent_sd is None:
        values = rng.integers(1, 6, size=(len(table), 4)).astype(float)
    else:
        person = rng.normal(0, latent_sd, table["participant"].nunique())
        codes = table["participant"].astype("category").cat.codes.to_numpy()
        values = np.clip(np.rint(3.5 + person[codes][:, None] + rng.normal(0, 0.5, (len(table), 4))), 1, 5)
    values[:, 2] = 6 - values[:, 2]              # the reverse-keyed item is stored reversed
    table[items] = values.astype(int)
    return Study.from_frame(table, sim.roles)


@pytest.mark.parametrize("latent_sd", [None, 0.15], ids=["random_responders", "small_latent_spread"])
def test_random_responders_are_not_consensus_and_small_spread_is(latent_sd):
    """Pure random responding (uniform items) gives r*_wg(J) near 0 and no community at consensus; a small true
    latent spread reaches it (the old index, 1 - SD^2 / sigma_EU^2 of the scale mean's residual, put 72% of random
    groups at consensus)."""
    model = ConsensusEmergence(random_responders(61, latent_sd), {"outcome": "climate", "options": {
        "organization": False, "random_slopes": False}})
    model.fit(chains=2, draws=500, tune=500, seed=6)
    post = model.idata.posterior
    rstar = post["consensus_rstar"].mean(("chain", "draw"))
    reached = model.p_consensus_by().iloc[:, -1]
    if latent_sd is None:
        assert float(rstar.max()) < 0.1, rstar.values
        assert reached.max() < 0.05, reached
    else:
        assert float(rstar.min()) > 0.7, rstar.values
        assert reached.min() > 0.9, reached


def test_crossing_time_interpolates_extrapolates_and_censors(full):
    """Continuous time to consensus (threshold 0.7, sessions 1..6): interpolated between the sessions around the first
    rise through the threshold; extrapolated from the last interval when still rising; +inf when never reached or
    falling; the first session when at consensus from the start."""
    model = full[1]
    rows = np.array([[0.5, 0.6, 0.65, 0.75, 0.8, 0.8],     # crosses between sessions 3 and 4: 3.5
                     [0.5, 0.55, 0.6, 0.62, 0.64, 0.66],   # rising by 0.02 per session: 6 + 0.04 / 0.02 = 8
                     [0.5, 0.5, 0.5, 0.5, 0.5, 0.5],       # flat: never
                     [0.6, 0.6, 0.6, 0.6, 0.65, 0.6],      # falling at the end: never
                     [0.8, 0.6, 0.5, 0.5, 0.5, 0.5],       # at consensus at session 1
                     [0.3, 0.35, 0.4, 0.45, 0.5, 0.51]])   # rising, but slower than one more study length allows: never
    index = xr.DataArray(rows[None, None], dims=("chain", "draw", "community", "session"),
                         coords={"session": model.coords["session"]})
    time = model._crossing_time(index).values[0, 0]
    np.testing.assert_allclose(time, [3.5, 8.0, np.inf, np.inf, 1.0, np.inf])


def test_cut_fit_keeps_the_climate_part_free_of_the_outcome():
    """With cut = true the learning data do not touch the climate part: refitting with the learning outcome shifted
    by half a point gives the same climate draws (same seed), and the learning intercept moves by the shift (less
    what its N(3, 0.5) prior holds back); the stage-2 draws sit in the stage-1 layout and compare_cut refuses a cut
    fit."""
    sim = simulate_study(Design(communities=8, participants=6, sessions=4, likert=5),
                         climate=ClimateTruth(tau_v=(0.15, 0.02)), seed=71)
    study = Study.from_frame(sim.table, sim.roles)
    spec = {"outcome": "climate", "options": {"organization": False, "random_slopes": False, "community_scale": True,
                                              "learning": "learning", "cut": True, "cut_imputations": 2}}
    shifted = study.with_values({"learning": study.values("learning") + 0.5})
    fits = []
    for s in (study, shifted):
        model = ConsensusEmergence(s, spec)
        model.fit(chains=2, draws=600, tune=300, seed=8)   # 1,200 stage-1 draws: 600 per imputation, more than
        fits.append(model)                                  # the least stage-2 run of 2 x 250
    a, b = (m.idata.posterior for m in fits)
    assert "eta" not in [v.name for v in fits[0].model.deterministics]          # no outcome in the climate graph
    np.testing.assert_array_equal(a["alpha_intercept"].values, b["alpha_intercept"].values)
    np.testing.assert_array_equal(a["consensus_sd"].values, b["consensus_sd"].values)
    assert a["eta_average"].dims == ("chain", "draw", "outcome_term") and a["eta_average"].shape[:2] == (2, 600)
    shift = float(b["eta_average"].sel(outcome_term="intercept").mean() - a["eta_average"].sel(
        outcome_term="intercept").mean())
    assert shift == pytest.approx(0.5, abs=0.1)
    with pytest.raises(ConfigError, match="compare_cut needs a joint fit"):
        fits[0].compare_cut()


def test_censored_variant_removes_a_ceiling_made_emergence():
    """No emergence in the truth (alpha1 = 0), but the climate rises towards the top of a 1..5 scale and scores are
    clipped there: the uncensored model reads the shrinking observed spread as emergence; the censored variant does
    not, and its replicated scores respect the bounds."""
    truth = ClimateTruth(**LOCATION_ONLY, beta0=4.3, beta1=0.15, tau_u=(0.1, 0.0), tau_o=0.0, alpha1=0.0, alpha2=0.0,
                         alpha3=0.0, alpha4=0.0)
    sim = simulate_study(Design(communities=12, participants=8, sessions=5, attrition=0, late_join=0, missed=0),
                         climate=truth, seed=81)
    table = sim.table.assign(climate=sim.table["climate"].clip(1, 5))
    roles = {"community": "community", "participant": "participant", "session": "session",
             "variables": {"climate": {"column": "climate", "level": "session", "range": [1, 5]}}}
    study = Study.from_frame(table, roles)
    alpha1 = {}
    for censored in (False, True):
        model = ConsensusEmergence(study, {"outcome": "climate", "options": {
            "organization": False, "random_slopes": False, "censored": censored}})
        model.fit(chains=2, draws=400, tune=400, seed=9)
        alpha1[censored] = interval(model.idata, "alpha_time")
    assert model.bounds_share()["at_upper"].iloc[-1] > 0.3
    assert alpha1[False][1] < 0, alpha1            # spurious emergence without censoring
    assert alpha1[True][0] < 0 < alpha1[True][1], alpha1
    pp = model.sample_posterior_predictive(seed=1).posterior_predictive["climate"].values
    assert pp.min() >= 1 and pp.max() <= 5 and (pp == 5).mean() > 0.2
    assert np.isfinite(model.idata.log_likelihood["climate"].values).all()


def test_consensus_time_quantiles_count_draws_that_never_reach_as_infinite():
    """A community not at consensus in most draws has an infinite median (not NaN), and quantiles are draws."""
    import xarray as xr

    from lcbayes.tables import consensus_time

    times = np.array([[1.5, 2.5, 3.5, 4.5, np.inf, np.inf, np.inf, np.inf, np.inf, np.inf],    # reached in 4 of 10
                      [1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.2, 2.4, 2.6, 7.5]])        # in all (one extrapolated)
    draws = xr.DataArray(times.T[None], dims=("chain", "draw", "community"), coords={"community": ["A", "B"]},
                         attrs={"last_session": 6})
    table = consensus_time(xr.DataTree.from_dict({"posterior": xr.Dataset({"consensus_time": draws})}))
    assert table.loc["A", "median"] == np.inf and table.loc["A", "q95"] == np.inf and table.loc["A", "q5"] == 1.5
    assert table.loc["A", "p_reached"] == 0.4 and table.loc["B", "p_reached_by_last"] == 0.9
    assert table.loc["B", "median"] in times[1] and table.loc["B", "share_extrapolated"] == 0.1
    assert not table.isna().any().any()
