"""The analyst API: prediction on new data, conditional and marginal effects, extra covariates by formula.

The data: model A's simulation with two participant-level covariates the built-in equations do not name, tenure
(continuous) and sector (three levels coded 1, 2, 3), whose known effects are added to the climate scores."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from lcbayes import effects
from lcbayes.data.simulate import ClimateTruth, Design, simulate_study
from lcbayes.data.study import Study
from lcbayes.errors import ConfigError, LcbayesError
from lcbayes.models import ClimateGrowth, ConsensusEmergence

FIT = {"chains": 2, "draws": 600, "tune": 600}
TENURE, SECTOR = 0.12, {1: 0.0, 2: 0.5, 3: -0.4}     # effect per year of tenure; of each sector against sector 1
FORMULA = "tenure + C(sector)"
NO_SCALE = dict(alpha1=0.0, alpha2=0.0, alpha3=0.0, alpha4=0.0)
NO_PREDICTORS = dict(gamma_lgo=0.0, gamma_support_within=0.0, gamma_support_between=0.0)


def with_covariates(seed: int) -> tuple[pd.DataFrame, dict]:
    """A simulated study with tenure and sector and their effects on climate: the table and its roles."""
    sim = simulate_study(Design(communities=16, participants=8, sessions=5),
                         climate=ClimateTruth(**NO_SCALE, **NO_PREDICTORS, tau_o=0.0), seed=seed)
    table = sim.table.copy()
    rng = np.random.default_rng(seed)
    people = table["participant"].unique()
    tenure = dict(zip(people, rng.normal(5.0, 2.0, len(people)).round(1), strict=True))
    sector = dict(zip(people, rng.integers(1, 4, len(people)), strict=True))
    table["tenure"] = table["participant"].map(tenure)
    table["sector"] = table["participant"].map(sector).astype(float)
    table["climate"] += TENURE * (table["tenure"] - 5.0) + table["sector"].map(SECTOR)
    roles = sim.roles.to_dict()
    roles["variables"] |= {"tenure": {"column": "tenure", "level": "participant"},
                           "sector": {"column": "sector", "level": "participant"}}
    return table, roles


@pytest.fixture(scope="module")
def data():
    return with_covariates(seed=41)


@pytest.fixture(scope="module")
def full(data):
    table, roles = data
    model = ClimateGrowth(Study.from_frame(table, roles), {"outcome": "climate", "options": {
        "organization": False, "location": FORMULA}})
    model.fit(**FIT, seed=3)
    return model


@pytest.fixture(scope="module")
def held_out(data):
    """The same model fitted without community C01."""
    table, roles = data
    model = ClimateGrowth(Study.from_frame(table[table["community"] != "C01"], roles), {
        "outcome": "climate", "options": {"organization": False, "location": FORMULA}})
    model.fit(**FIT, seed=4)
    return model


def interval(draws, prob: float = 0.9) -> tuple[float, float]:
    lo, hi = az.hdi(np.asarray(draws).ravel(), prob=prob)
    return float(lo), float(hi)


def test_formula_covariates_recovered_with_one_coefficient_per_non_reference_level(full):
    post = full.fitted().posterior
    labels = list(post["location_term"].values)
    assert labels == ["tenure", "C(sector)[2.0]", "C(sector)[3.0]"]       # sector 1 is the reference
    truth = {"tenure": TENURE, "C(sector)[2.0]": SECTOR[2], "C(sector)[3.0]": SECTOR[3]}
    for label, value in truth.items():
        lo, hi = interval(post["beta_location"].sel(location_term=label))
        assert lo <= value <= hi, (label, lo, hi, value)
    assert "beta_location" in full.population and full.parameter_role("beta_location") == "effects"
    assert "beta_location[tenure]" in full.summary().index                  # the report's tables list the terms


def test_the_fitted_data_through_the_new_data_path_equal_the_in_sample_predictions(full, data):
    table, _ = data
    for kind in ("expected", "predictive"):
        in_sample = full.predict(kind=kind, seed=5)["predictions"]["climate"]
        through_new = full.predict(table, kind=kind, seed=5)["predictions"]["climate"].sel(row=in_sample["row"])
        np.testing.assert_allclose(through_new.values, in_sample.values, rtol=1e-10, atol=1e-10)
    tree = full.predict(table.iloc[:7], seed=5)
    assert list(tree["predictions"]["row"].values) == list(table.index[:7])        # the new table's rows, its order
    assert list(tree["predictions_constant_data"]["participant"].values) == list(table["participant"].iloc[:7])


def test_a_held_out_community_is_predicted_as_a_refit_that_includes_it(full, held_out, data):
    """Population-level part (new_groups = "zero"): the fit without C01 predicts C01's rows as the fit with it does,
    within a fraction of the posterior SD (the fits share 15 of 16 communities; C01's 8 participants also inform the
    covariate effects): on average within 0.3 SD of the difference of the two, at most 0.75 (measured 0.1 to 0.5
    over C01's 37 rows). Drawn from
    the population (new_groups = "sample"), the same mean and a wider spread: the community's own effect."""
    table, _ = data
    rows = table[table["community"] == "C01"].assign(community="C_new", participant=lambda t: t["participant"] + "x")
    zero_out = held_out.predict(rows, new_groups="zero", seed=1)["predictions"]["climate"]
    zero_in = full.predict(rows, new_groups="zero", seed=1)["predictions"]["climate"]
    sd = np.sqrt(zero_out.var(("chain", "draw")) + zero_in.var(("chain", "draw")))
    gap = np.abs(zero_out.mean(("chain", "draw")) - zero_in.mean(("chain", "draw")))
    assert float((gap / sd).mean()) < 0.3 and float((gap / sd).max()) < 0.75, (gap / sd).values
    ratio = zero_out.std(("chain", "draw")) / zero_in.std(("chain", "draw"))
    assert 0.75 < float(ratio.min()) and float(ratio.max()) < 1.33
    sampled = held_out.predict(rows, new_groups="sample", seed=1)["predictions"]["climate"]
    tau = float(held_out.fitted().posterior["tau_community"].sel(effect="intercept").mean())
    spread = sampled.std(("chain", "draw")) ** 2 - zero_out.std(("chain", "draw")) ** 2
    assert float(spread.mean()) > 0.25 * tau**2                      # the new community's effect is in the spread
    mc = 4 * sampled.std(("chain", "draw")) / np.sqrt(sampled.sizes["chain"] * sampled.sizes["draw"] / 4)
    assert bool((np.abs(sampled.mean(("chain", "draw")) - zero_out.mean(("chain", "draw"))) < mc + 0.5 * sd).all())
    # a known community keeps its effects, draw by draw: new members of C01 are predicted at u0 + u1 s above the
    # population part
    members = rows.assign(community="C01")
    own = full.predict(members, new_groups="zero", seed=1)["predictions"]["climate"]
    u = full.fitted().posterior["u_community"].sel(community="C01")
    s = xr.DataArray(full.session_times()[members["session"].to_numpy() - 1], dims="row")
    shift = u.sel(effect="intercept") + u.sel(effect="slope") * s
    np.testing.assert_allclose((own - zero_in).values, shift.transpose("chain", "draw", "row").values, atol=1e-9)


def test_conditional_effects_table_equals_the_hand_computation_from_the_draws(full):
    result = effects.conditional(full, over="tenure", by="sector", values=[2.0, 8.0], levels=[1, 2, 3])
    table = result.table().set_index(["tenure", "sector"])
    post = full.fitted().posterior
    s = full.session_grid()          # time averaged over the fitted sessions
    base = post["beta_intercept"] + (post["beta_time"].sel(time_term="time") * s).mean("session")
    beta = post["beta_location"]
    for tenure in (2.0, 8.0):
        for sector in (1, 2, 3):
            draws = base + beta.sel(location_term="tenure") * tenure
            if sector > 1:
                draws = draws + beta.sel(location_term=f"C(sector)[{sector:.1f}]")
            row = table.loc[(tenure, float(sector))]
            lo, hi = interval(draws)
            assert row["mean"] == pytest.approx(float(draws.mean()), abs=1e-9)
            assert (row["lower"], row["upper"]) == pytest.approx((lo, hi), abs=1e-9)
    slope = effects.conditional(full, over="session", effect_of="tenure").draws       # the effect of tenure
    np.testing.assert_allclose(slope.isel(session=0).values, beta.sel(location_term="tenure").values, rtol=1e-6)
    ax = result.plot()
    from lcbayes.plots import overlapping_text

    assert not overlapping_text(ax.figure)


def test_marginal_effects_average_the_sample_and_their_slope_is_the_coefficient(full):
    curve = effects.marginal(full, over="tenure", values=[3.0, 7.0]).draws
    beta = full.fitted().posterior["beta_location"].sel(location_term="tenure")
    np.testing.assert_allclose(((curve.sel(tenure=7.0) - curve.sel(tenure=3.0)) / 4.0).values, beta.values,
                               rtol=1e-6)
    by_session = effects.marginal(full, over="session").draws
    expected = full.predict(seed=0)["predictions"]["climate"]
    observed_mean = float(expected.mean())
    assert by_session.sizes["session"] == 5 and abs(float(by_session.mean()) - observed_mean) < 0.1


def test_bad_formulas_and_new_data_get_typed_errors_naming_the_fix(full, data):
    table, roles = data
    study = Study.from_frame(table, roles)
    with pytest.raises(LcbayesError, match="'tenur' is not a variable"):
        ClimateGrowth(study, {"outcome": "climate", "options": {"location": "tenur"}})
    with pytest.raises(ConfigError, match="without an outcome"):
        ClimateGrowth(study, {"outcome": "climate", "options": {"location": "climate ~ tenure"}})
    with pytest.raises(ConfigError, match="group terms"):
        ClimateGrowth(study, {"outcome": "climate", "options": {"location": "tenure + (1 | sector)"}})
    gaps = table.assign(tenure=table["tenure"].where(table.index % 50 != 3))
    with pytest.raises(ConfigError, match=r"lack a value of tenure \(rows 3, 53"):
        ClimateGrowth(Study.from_frame(gaps, roles), {"outcome": "climate", "options": {"location": "tenure"}})
    with pytest.raises(ConfigError, match="cannot code these data"):
        full.predict(table.iloc[:5].assign(sector=4.0))
    moved = table[table["participant"] == "C01P01"].assign(community="C02")
    with pytest.raises(ConfigError, match="C01P01 \\(C01 in the fit, C02 here\\)"):
        full.predict(moved)
    with pytest.raises(ConfigError, match="kind must be one of expected, predictive"):
        full.predict(table.iloc[:5], kind="consensus")
    with pytest.raises(LcbayesError, match="tenure"):
        full.predict(table.iloc[:5].drop(columns="tenure"))
    with pytest.raises(ConfigError, match="'lgo' is not a predictor"):
        effects.conditional(full, over="lgo")


def test_model_b_takes_location_and_scale_formulas(data):
    """Model B with both formulas: the location effect recovered, the scale effect (none in these data) near 0, and
    the composition of new communities from their members, standardised as the fitted ones."""
    table, roles = data
    model = ConsensusEmergence(Study.from_frame(table, roles), {"outcome": "climate", "options": {
        "organization": False, "location": "tenure", "scale": "C(sector)", "composition": ["lgo_sd"]}})
    model.fit(chains=2, draws=400, tune=500, seed=2)
    post = model.fitted().posterior
    lo, hi = interval(post["beta_location"].sel(location_term="tenure"))
    assert lo <= TENURE <= hi
    assert list(post["scale_term"].values) == ["C(sector)[2.0]", "C(sector)[3.0]"]
    for label in post["scale_term"].values:
        lo, hi = interval(post["alpha_scale"].sel(scale_term=label), 0.98)
        assert lo <= 0.0 <= hi, (label, lo, hi)
    new = table[table["community"].isin(["C01", "C02"])].assign(
        community=lambda t: t["community"] + "n", participant=lambda t: t["participant"] + "n")
    consensus = model.predict(new, kind="consensus", seed=1)["predictions"]
    assert list(consensus["community"].values) == ["C01n", "C02n"]
    assert consensus["consensus_sd"].dims == ("chain", "draw", "community", "session")
    fitted_sd = post["consensus_sd"].sel(community=["C01", "C02"]).mean()
    assert abs(float(consensus["consensus_sd"].mean() - fitted_sd)) < 0.25 * float(fitted_sd)
    curves = effects.marginal(model, over="session", by="lgo_sd", kind="consensus").table()
    assert set(curves["lgo_sd"]) == {"lower third", "middle third", "upper third"} and len(curves) == 15
