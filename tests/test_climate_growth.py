"""Model A (ClimateGrowth): recovery, agreement with REML, save/load, options and priors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from lcbayes.data.simulate import ClimateTruth, Design, SharingTruth, simulate_study
from lcbayes.data.study import Study
from lcbayes.errors import ConfigError
from lcbayes.models import ClimateGrowth, DataMismatchError, NotFittedError
from lcbayes.models.base import DRAW_PRECISION, BayesModel, draw_encoding

FAST = {"chains": 2, "draws": 1000, "tune": 600}
NO_SCALE = dict(alpha1=0.0, alpha2=0.0, alpha3=0.0, alpha4=0.0)   # homoscedastic residuals, as model A assumes
NO_PREDICTORS = dict(gamma_lgo=0.0, gamma_support_within=0.0, gamma_support_between=0.0)


def inside(idata, name, truth, prob=0.9):
    """Whether ``truth`` lies in the central ``prob`` interval of posterior ``name`` (per element)."""
    draws = idata.posterior[name].stack(sample=("chain", "draw")).values
    lo, hi = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=-1)
    return np.all((lo <= np.asarray(truth)) & (np.asarray(truth) <= hi)), (lo, hi)


@pytest.fixture(scope="module")
def plain():
    """Plain form (linear time, no predictors, no organizations): the lme4 model."""
    truth = ClimateTruth(**NO_SCALE, **NO_PREDICTORS, tau_o=0.0)
    sim = simulate_study(Design(communities=16, participants=8, sessions=5), climate=truth, seed=21)
    study = Study.from_frame(sim.table, sim.roles)
    model = ClimateGrowth(study, {"outcome": "climate", "options": {"organization": False}})
    model.fit(**FAST, seed=5)
    return sim, model


def test_plain_fit_matches_reml(plain):
    """Posterior means of beta0, beta1 within one posterior SD of statsmodels' REML fit of
    y ~ s + (s | community) + (1 | participant) + (0 + s | participant)."""
    import warnings

    import statsmodels.formula.api as smf

    _, model = plain
    t = model.study.table.assign(s=model.study.table["session"] - 1.0)
    with warnings.catch_warnings():  # small slope variances sit near the boundary; fixed effects are stable
        warnings.simplefilter("ignore")
        reml = smf.mixedlm("climate ~ s", t, groups="community", re_formula="~s",
                           vc_formula={"p0": "0 + C(participant)", "p1": "0 + C(participant):s"}).fit(reml=True)
    post = model.idata.posterior
    for name, ref in [("beta_intercept", reml.fe_params["Intercept"]), ("beta_time", reml.fe_params["s"])]:
        draws = post[name].values.ravel()
        assert abs(draws.mean() - ref) < draws.std(), (name, draws.mean(), ref)


def test_plain_fit_converges_and_recovers(plain):
    sim, model = plain
    truth = sim.truth.climate
    assert model.diagnostics().divergences == 0
    idata = model.idata
    checks = {
        "beta_intercept": truth.beta0, "beta_time": [truth.beta1], "tau_community": truth.tau_u,
        "tau_participant": truth.tau_r, "sigma": np.exp(truth.alpha0),
    }
    for name, value in checks.items():
        ok, (lo, hi) = inside(idata, name, value)
        assert ok, f"{name}: truth {value} outside 90% interval [{lo}, {hi}]"


def test_idata_has_coords_data_and_provenance(plain):
    _, model = plain
    idata = model.idata
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data", "constant_data"} <= set(idata.children)
    assert list(idata.posterior["u_community"].coords["community"].values) == model.study.coords["community"]
    assert idata.log_likelihood["climate"].sizes["participant"] == model.study.n("participant")
    assert idata.observed_data["climate"].size == np.isfinite(model.study.values("climate")).sum()
    assert len(idata.attrs["data_hash"]) == 64 and idata.attrs["model"] == "climate_growth"
    share = idata.posterior["variance_share"].sum("level")
    assert np.allclose(share.values, 1.0)


def test_community_trajectories_cover_true_strength(plain):
    """The posterior community trajectories cover the simulated latent community means
    (beta0 + beta1 s + u0j + u1j s) at about their nominal rate."""
    sim, model = plain
    traj = model.idata.posterior["trajectory_community"]
    lo, hi = traj.quantile([0.05, 0.95], dim=("chain", "draw")).values
    true = sim.truth.community_sessions.pivot(index="community", columns="session", values="strength")
    covered = (lo <= true.values) & (true.values <= hi)
    assert covered.mean() >= 0.75, covered.mean()


def test_save_load_predict_round_trip(plain, tmp_path, same_draws):
    _, model = plain
    before = model.predict(seed=3)["predictions"]["climate"]
    model.sample_posterior_predictive(seed=1)
    path = model.save(tmp_path / "fit.nc")
    again = BayesModel.load(path)                      # data restored from the file
    assert isinstance(again, ClimateGrowth)
    same_draws(again.predict(seed=3)["predictions"]["climate"], before)
    with_study = ClimateGrowth.load(path, model.study)  # or checked against the same study
    same_draws(with_study.predict(seed=3)["predictions"]["climate"], before)
    fitted, loaded = model.idata.posterior, again.idata.posterior
    assert set(loaded.data_vars) == set(fitted.data_vars)
    for name in fitted.data_vars:                       # each stored draw within half of DRAW_PRECISION of its SD
        same_draws(loaded[name], fitted[name], shares=0.5 if name != "trajectory_community" else 2.0)
    same_draws(again.idata.log_likelihood["climate"], model.idata.log_likelihood["climate"], shares=0.5)
    with xr.open_datatree(str(path)) as stored:         # draws packed, data exactly, all compressed
        sigma = stored["posterior"]["sigma"]
        assert sigma.encoding["dtype"] in (np.int16, np.int32)
        assert sigma.encoding.get("zlib") or sigma.encoding.get("compression")
        assert stored["log_likelihood"]["climate"].encoding["dtype"] in (np.int16, np.int32)
        assert stored["constant_data"]["climate"].dtype == np.float64
        assert "trajectory_community" not in stored["posterior"]          # a grid: recomputed on load
        assert json.loads(stored.attrs["recomputed_on_load"]) == ["trajectory_community"]
        assert "posterior_predictive" not in stored.children              # redrawn from its seed, not stored
    assert again.idata.posterior["sigma"].dtype == np.float64         # read back as double


def test_draw_encoding_keeps_zero_exact_and_falls_back_to_float32():
    rng = np.random.default_rng(1)
    draws = xr.DataArray(np.stack([rng.normal(3.5, 0.02, (2, 50)), np.zeros((2, 50))], axis=-1),
                         dims=("chain", "draw", "k"))
    packed = draw_encoding(draws)
    assert packed["dtype"] in ("int16", "int32") and packed["scale_factor"] == pytest.approx(0.02 * DRAW_PRECISION,
                                                                                               rel=0.2)
    stored = np.round((draws.values - packed["add_offset"]) / packed["scale_factor"])
    back = stored * packed["scale_factor"] + packed["add_offset"]
    assert np.all(back[..., 1] == 0.0)                                  # an anchored element stays exactly 0
    assert np.abs(back - draws.values).max() <= 0.5 * packed["scale_factor"] * (1 + 1e-9)
    assert draw_encoding(draws.where(draws > 3.5))["dtype"] == "float32"        # not finite
    assert draw_encoding(xr.ones_like(draws))["dtype"] == "float32"              # constant


@pytest.mark.review_case(74)
def test_a_failed_save_keeps_the_earlier_file(plain, tmp_path, monkeypatch):
    """Saving is atomic: a save that fails part-way (here after writing half a file) leaves the earlier fit intact
    and no partial file behind."""
    _, model = plain
    path = model.save(tmp_path / "fit.nc")
    before = path.read_bytes()

    def broken(self, filename, *args, **kwargs):
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(type(model.fitted()), "to_netcdf", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["fit.nc"]


@pytest.mark.review_case(75, 80, 82, 83)
@pytest.mark.parametrize("damage, message", [
    ("truncate", "a truncated run"), ("spec", "the file was changed"), ("group", "lacks log_likelihood"),
    ("data", "data stored in the file no longer match"), ("no_hash", "lacks data_hash"),
    ("spec_json", "provenance attributes are not valid JSON")])
def test_load_refuses_an_incomplete_or_altered_fit(plain, tmp_path, damage, message):
    _, model = plain
    idata = model.fitted().copy()
    if damage == "truncate":     # what an interrupted run used to save: fewer draws than the settings record
        idata = idata.isel(draw=slice(0, 10))
    elif damage == "spec":
        spec = json.loads(idata.attrs["spec"])
        spec["sampler"]["draws"] += 1
        idata.attrs["spec"] = json.dumps(spec)
    elif damage == "group":
        del idata["log_likelihood"]
    elif damage == "no_hash":
        del idata.attrs["data_hash"]
    elif damage == "spec_json":
        idata.attrs["spec"] = "{not json"
    else:                        # a stored outcome value changed
        first = next(iter(idata.constant_data.data_vars.values())).name
        column = "climate" if "climate" in idata.constant_data else first
        idata.constant_data[column].values[0] += 1.0
    path = tmp_path / "damaged.nc"
    idata.to_netcdf(str(path))
    with pytest.raises(DataMismatchError, match=message) as err:
        BayesModel.load(path)
    assert "Fix: refit" in str(err.value)
    assert isinstance(xr.open_datatree(str(path)), xr.DataTree)


def test_load_against_other_data_fails_clearly(plain, tmp_path):
    sim, model = plain
    path = model.save(tmp_path / "fit.nc")
    other = sim.table.copy()
    other.loc[other.index[0], "climate"] += 1.0
    with pytest.raises(DataMismatchError, match="was fitted to other data"):
        ClimateGrowth.load(path, Study.from_frame(other, sim.roles))


def test_posterior_predictive_reproduces_the_data_scale(plain):
    _, model = plain
    idata = model.sample_posterior_predictive(seed=1)
    rep = idata.posterior_predictive["climate"]
    y = idata.observed_data["climate"].values
    assert rep.sizes["obs"] == y.size
    assert abs(float(rep.mean()) - y.mean()) < 0.05
    assert float(rep.std()) == pytest.approx(y.std(), rel=0.1)
    # same seed, same replicates
    again = model.sample_posterior_predictive(seed=1).posterior_predictive["climate"].values
    np.testing.assert_array_equal(rep.values, again)


def test_recovery_with_traits_time_varying_predictors_and_organizations():
    truth = ClimateTruth(**NO_SCALE, gamma_lgo=0.2, gamma_support_within=0.15, gamma_support_between=0.25)
    sharing = SharingTruth(support_trend=0.0)
    sim = simulate_study(Design(communities=20, participants=10, sessions=5, predictor_missing=0.15),
                         climate=truth, sharing=sharing, seed=4)
    study = Study.from_frame(sim.table, sim.roles)
    model = ClimateGrowth(study, {"outcome": "climate",
                                 "options": {"traits": ["lgo"], "time_varying": ["support"]}})
    idata = model.fit(**FAST, seed=2)
    d = model.diagnostics()
    assert d.divergences == 0
    checks = {
        "beta_intercept": truth.beta0, "beta_time": [truth.beta1], "gamma_trait": [truth.gamma_lgo],
        "gamma_within": [truth.gamma_support_within], "gamma_between": [truth.gamma_support_between],
        "tau_community": truth.tau_u, "tau_participant": truth.tau_r, "tau_organization": truth.tau_o,
        "sigma": np.exp(truth.alpha0),
    }
    # at 98%: the simulator's effects act on the person's value whatever its community (no contextual effects),
    # and the predictors' own model (grand mean and person-mean SD of support) under latent centring
    wide = {"gamma_trait_community": [truth.gamma_lgo], "gamma_community": [truth.gamma_support_between],
            "contextual": [0.0], "contextual_trait": [0.0],
            "predictor_mean": [SharingTruth().mu[0]], "tau_predictor_person": [SharingTruth().sd_mu[0]]}
    for prob, group in ((0.9, checks), (0.98, wide)):
        for name, value in group.items():
            ok, (lo, hi) = inside(idata, name, value, prob)
            assert ok, f"{name}: truth {value} outside {prob:.0%} interval [{lo}, {hi}]"
    # missing support values were imputed, not dropped; every participant has a latent person mean
    assert idata.posterior["within_missing"].sizes["missing_predictor_value"] > 0
    assert idata.posterior["predictor_person"].sizes["participant"] == study.n("participant")


def test_prior_override_and_prior_predictive():
    sim = simulate_study(Design(communities=6, participants=5, sessions=4), seed=4)
    study = Study.from_frame(sim.table, sim.roles)
    model = ClimateGrowth(study, {"outcome": "climate",
                                 "priors": {"sigma": {"dist": "Exponential", "lam": 10.0}}})
    assert model.priors["sigma"].params == {"lam": 10.0}
    prior = model.sample_prior_predictive(draws=400, seed=1)
    sigma = prior.prior["sigma"].values
    assert sigma.mean() == pytest.approx(0.1, rel=0.15)          # Exponential(10) has mean 0.1
    assert prior.prior_predictive["climate"].sizes["obs"] == np.isfinite(study.values("climate")).sum()
    with pytest.raises(ConfigError, match="prior for unknown parameter 'sigmaa'"):
        ClimateGrowth(study, {"outcome": "climate", "priors": {"sigmaa": {"dist": "Exponential", "lam": 1}}})


def test_options_are_validated():
    sim = simulate_study(Design(communities=4, participants=4, sessions=4), seed=5)
    study = Study.from_frame(sim.table, sim.roles)
    with pytest.raises(ConfigError, match="unknown option of climate_growth 'trnd'. Did you mean 'trend'"):
        ClimateGrowth(study, {"outcome": "climate", "options": {"trnd": "linear"}})
    with pytest.raises(ConfigError, match="piecewise trend needs breakpoint"):
        ClimateGrowth(study, {"outcome": "climate", "options": {"trend": "piecewise"}})
    with pytest.raises(ConfigError, match="trait 'support' is session-level"):
        ClimateGrowth(study, {"outcome": "climate", "options": {"traits": ["support"]}})
    with pytest.raises(ConfigError, match="participant-level; the climate models need a session-level outcome"):
        ClimateGrowth(study, {"outcome": "learning"})
    with pytest.raises(NotFittedError):
        ClimateGrowth(study, {"outcome": "climate"}).summary()


def test_time_basis_codings():
    from lcbayes.processes import time_basis

    s = np.arange(5.0)
    session = np.arange(1, 6)
    names, b = time_basis(s, session, "piecewise", 2)
    assert names == ["time", "transition", "recovery"]
    assert b[1].tolist() == [0, 0, 1, 1, 1]
    assert b[2].tolist() == [0, 0, 0, 1, 2]
    names, b = time_basis(s, session, "quadratic", 0)
    assert b[1].tolist() == [0, 1, 4, 9, 16]


def test_piecewise_growth_recovers_a_level_shift():
    """Discontinuous growth: a jump of +0.5 after session 3 is recovered by 'transition'."""
    sim = simulate_study(Design(communities=12, participants=8, sessions=6),
                         climate=ClimateTruth(**NO_SCALE, **NO_PREDICTORS), seed=6)
    table = sim.table.copy()
    table.loc[table["session"] > 3, "climate"] += 0.5
    study = Study.from_frame(table, sim.roles)
    model = ClimateGrowth(study, {"outcome": "climate", "options": {"trend": "piecewise", "breakpoint": 3}})
    idata = model.fit(**FAST, backend="nutpie-jax", seed=1)
    jump = idata.posterior["beta_time"].sel(time_term="transition").values.ravel()
    assert np.quantile(jump, 0.05) < 0.5 < np.quantile(jump, 0.95)
    assert pd.Series(jump).mean() > 0.3


def test_trajectory_plot_draws_every_community(plain):
    import matplotlib

    from lcbayes.plots import overlapping_text

    matplotlib.use("Agg")
    _, model = plain
    axes = model.plot_trajectories()                    # small multiples: a panel per community
    n = model.study.n("community")
    assert len(axes) == n and all(len(ax.lines) == 2 for ax in axes)   # its mean line and observed dots
    assert axes[0].figure.get_supylabel() == "climate"
    assert [ax.get_title() for ax in axes] == [str(c) for c in model.coords["community"]]
    assert overlapping_text(axes[0].figure) == []


@pytest.mark.parametrize("backend", ["pymc", "numpyro", "nutpie-jax"])
def test_every_backend_completes_the_inference_data(backend):
    """PyMC-based back ends return observed/constant data groups of their own; fit replaces them."""
    sim = simulate_study(Design(communities=5, participants=4, sessions=3), seed=8)
    model = ClimateGrowth(Study.from_frame(sim.table, sim.roles),
                          {"outcome": "climate", "options": {"time_varying": ["support"]}})
    idata = model.fit(backend=backend, chains=1, draws=100, tune=100)
    assert list(idata.observed_data.data_vars) == ["climate"]
    assert "participant" in idata.constant_data and "support" in idata.constant_data
    assert idata.posterior.sizes["draw"] == 100


def test_loo_pit_is_uniform_under_the_model_and_not_when_the_spread_is_wrong(plain):
    """LOO-PIT of the participants' mean scores (128 participants): uniform on data from the model itself (KS p above
    0.01); with the participant SD fixed at a tenth of its estimate the replicated means are too narrow, and the
    values pile up at 0 and 1."""
    from scipy import stats

    _, model = plain
    pit = model.loo_pit(seed=1)
    assert pit.dims == ("participant",) and pit.sizes["participant"] == model.study.n("participant")
    assert float(pit.min()) >= 0.0 and float(pit.max()) <= 1.0
    assert stats.kstest(pit.values, "uniform").pvalue > 0.01
    idata = model.idata
    saved = idata.posterior["tau_participant"].copy()
    try:
        idata.posterior["tau_participant"] = saved * 0.1
        narrow = model.loo_pit(seed=1)
    finally:
        idata.posterior["tau_participant"] = saved
    assert stats.kstest(narrow.values, "uniform").pvalue < 0.001
    assert float(((narrow < 0.05) | (narrow > 0.95)).mean()) > 0.3
