"""Model C (KnowledgeSharing): recovery with missing predictors, latent cells, derived
quantities against their formulas, switches and LOO, persistence and bad input."""

from __future__ import annotations

from pathlib import Path

import arviz as az
import numpy as np
import pytest

from lcbayes.data.simulate import Design, SharingTruth, simulate_study
from lcbayes.data.study import Study
from lcbayes.errors import ConfigError
from lcbayes.models import BayesModel, KnowledgeSharing

ROOT = Path(__file__).resolve().parents[1]
FAST = {"backend": "nutpie-jax", "chains": 2, "draws": 600, "tune": 600}
TRUTH = SharingTruth(f=(0.0, -0.05, -0.10, -0.10, -0.15, -0.20))


def interval(idata, name, prob=0.9):
    draws = idata.posterior[name].stack(sample=("chain", "draw")).values
    return np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=-1)


@pytest.fixture(scope="module")
def fitted():
    """Reference-sized study, 15% of predictor values missing at random."""
    sim = simulate_study(Design(communities=20, participants=12, sessions=6, predictor_missing=0.15),
                         sharing=TRUTH, seed=41)
    study = Study.from_frame(sim.table, sim.roles)
    model = KnowledgeSharing(study, {"outcome": "sharing"})
    model.fit(**FAST, seed=5)
    return sim, model


def test_recovers_dynamics_support_effects_spiral_and_between_effects(fitted):
    sim, model = fitted
    t = sim.truth.sharing
    assert model.diagnostics().divergences == 0
    checks = {"phi": t.phi, "gamma_support": t.gamma0, "support_walk": t.f_values(6), "gamma_efficacy": t.gamma1,
              "beta_interaction": t.beta_se, "delta": t.delta, "beta_motivation": t.beta_m, "pi": t.pi,
              "beta_efficacy": t.beta_e, "phi_motivation": t.phi_m, "theta_support": t.theta,
              "sigma": t.sigma_k, "support_trend": t.support_trend}
    for name, value in checks.items():
        lo, hi = interval(model.idata, name)
        assert np.all((lo <= value) & (value <= hi)), f"{name}: {value} outside [{lo}, {hi}]"
    # latent person means track the simulated ones
    truth = sim.truth.participants.set_index("participant")[["mu_support", "mu_self_efficacy", "mu_motivation"]]
    est = model.idata.posterior["mu_person"].mean(("chain", "draw")).to_pandas()
    assert np.corrcoef(est.to_numpy().ravel(), truth.loc[est.index].to_numpy().ravel())[0, 1] > 0.9


def test_missing_values_are_latent_cells_not_dropped(fitted):
    sim, model = fitted
    table = sim.table
    # every row of the table is a cell of the grid, and its observed values are kept
    observed = model.observed
    for k, name in enumerate(model.measures):
        assert observed[k].sum() == table[name].notna().sum()
    # cells imputed = window cells without a value, per variable
    used = model.window[None] * (1 - observed)
    assert used.sum() > 0.15 * 0.9 * 3 * len(table)          # at least the missing predictor values
    # the window ends at each participant's last row
    last = table.groupby("participant")["session"].max()
    window_last = model.window.sum(axis=1)
    assert (window_last == last.reindex(model.coords["participant"]).to_numpy()).all()
    # one log-likelihood value per observed outcome row
    ll = model.idata.log_likelihood["sharing"]
    assert ll.sizes["obs"] == table["sharing"].notna().sum()
    assert np.isfinite(ll.values).all()
    assert "latent" not in model.idata.posterior


def test_support_effect_spiral_and_within_between_follow_their_formulas(fitted):
    _, model = fitted
    post = model.idata.posterior
    one = post.isel(chain=1, draw=17)
    sd_e = float(one["tau_predictor"].sel(predictor="self_efficacy"))
    expected = (float(one["gamma_support"]) + one["support_walk"].values[None, :]
                + float(one["gamma_efficacy"]) * np.array([-1.0, 0.0, 1.0])[:, None] * sd_e)
    assert one["support_effect"].values == pytest.approx(expected, rel=1e-12)
    a = np.array([[float(one["phi"]), float(one["beta_motivation"])],
                  [float(one["delta"]), float(one["phi_motivation"])]])
    assert float(one["spectral_radius"]) == pytest.approx(np.abs(np.linalg.eigvals(a)).max(), rel=1e-10)
    assert float(one["spiral_gain"]) == pytest.approx(float(one["delta"]) * float(one["beta_motivation"]))
    wb = one["within_between"]
    assert float(wb.sel(predictor="support", effect="within")) == pytest.approx(
        float(one["gamma_support"]) + one["support_walk"].values.mean())
    assert float(wb.sel(predictor="motivation", effect="between")) == pytest.approx(float(one["pi"][2]))
    table = model.support_effect_table()
    assert len(table) == 3 * 6 and (table["lower"] <= table["mean"]).all() and (table["mean"] <= table["upper"]).all()
    assert 0.9 < model.spiral()["p_stable"] <= 1.0                # truth: radius ~0.48


def test_posterior_predictive_and_plots(fitted):
    sim, model = fitted
    idata = model.sample_posterior_predictive(seed=2)
    rep = idata.posterior_predictive["sharing"]
    y = idata.observed_data["sharing"]
    assert rep.sizes["obs"] == y.sizes["obs"]
    # one-step-ahead replicates scatter around the data with the residual SD
    resid = (rep.mean(("chain", "draw")) - y).std().item()
    assert 0.8 * TRUTH.sigma_k < resid < 1.3 * TRUTH.sigma_k
    import matplotlib
    matplotlib.use("Agg")
    ax = model.plot_support_effect()
    assert len(ax.lines) >= 3
    ax = model.plot_within_between()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["support", "self_efficacy", "motivation"]


def test_save_load_round_trip(fitted, tmp_path):
    _, model = fitted
    path = model.save(tmp_path / "c.nc")
    again = BayesModel.load(path)
    assert isinstance(again, KnowledgeSharing)
    np.testing.assert_array_equal(again.idata.posterior["support_effect"].values,
                                  model.idata.posterior["support_effect"].values)
    a, b = again.within_between_table(), model.within_between_table()
    assert a[["predictor", "effect"]].astype(str).equals(b[["predictor", "effect"]].astype(str))
    np.testing.assert_allclose(a[["mean", "lower", "upper"]], b[["mean", "lower", "upper"]], rtol=1e-12)
    assert again.data_hash() == model.data_hash()


def test_switches_remove_parts_and_models_compare_with_loo():
    sim = simulate_study(Design(communities=8, participants=8, sessions=6), sharing=TRUTH, seed=43)
    study = Study.from_frame(sim.table, sim.roles)
    simple = KnowledgeSharing(study, {"outcome": "sharing", "options": {
        "spiral": False, "time_varying_support": False, "cross_level": False, "support_slopes": False,
        "interaction": False}})
    names = {v.name for v in simple.model.free_RVs}
    assert not names & {"delta", "beta_motivation", "z_support_walk", "gamma_efficacy", "z_support_slope",
                        "beta_interaction"}
    full = KnowledgeSharing(study, {"outcome": "sharing"})
    fits = {"full": full.fit(**FAST, seed=1), "simple": simple.fit(**FAST, seed=1)}
    post = fits["simple"].posterior
    assert float(post["spiral_gain"].max()) == 0.0
    assert np.allclose(post["support_effect"].sel(efficacy_level=1.0), post["support_effect"].sel(efficacy_level=-1.0))
    table = az.compare(fits)
    assert set(table.index) == {"full", "simple"} and np.isfinite(table["elpd_loo"]).all()


def test_bad_options_are_rejected_with_the_fix():
    sim = simulate_study(Design(communities=3, participants=4, sessions=3), seed=1)
    study = Study.from_frame(sim.table, sim.roles)
    with pytest.raises(ConfigError, match="participant-level"):
        KnowledgeSharing(study, {"outcome": "sharing", "options": {"support": "lgo"}})
    with pytest.raises(ConfigError, match="support_trend = false"):
        KnowledgeSharing(study, {"outcome": "sharing", "options": {"centring": "observed"}})
    with pytest.raises(ConfigError, match="true or false"):
        KnowledgeSharing(study, {"outcome": "sharing", "options": {"spiral": "yes"}})
    with pytest.raises(ConfigError, match="centring"):
        KnowledgeSharing(study, {"outcome": "sharing", "options": {"centring": "group"}})


def test_observed_centring_uses_person_means_and_needs_values():
    sim = simulate_study(Design(communities=3, participants=4, sessions=3, predictor_missing=0.0), seed=2)
    study = Study.from_frame(sim.table, sim.roles)
    model = KnowledgeSharing(study, {"outcome": "sharing", "options": {"centring": "observed", "support_trend": False}})
    means = sim.table.groupby("participant")[["support", "self_efficacy", "motivation"]].mean()
    np.testing.assert_allclose(model.person_means, means.loc[model.coords["participant"]].to_numpy())
    table = sim.table.copy()
    table.loc[table["participant"] == table["participant"].iloc[0], "motivation"] = np.nan
    with pytest.raises(ConfigError, match=str(table["participant"].iloc[0])):
        KnowledgeSharing(Study.from_frame(table, sim.roles),
                         {"outcome": "sharing", "options": {"centring": "observed", "support_trend": False}})


def test_spec_file_defaults():
    sim = simulate_study(Design(communities=3, participants=4, sessions=3), seed=1)
    model = KnowledgeSharing(Study.from_frame(sim.table, sim.roles), ROOT / "models" / "knowledge_sharing.toml")
    assert model.spec.sampler.target_accept == 0.95
    bare = KnowledgeSharing(Study.from_frame(sim.table, sim.roles), {"outcome": "sharing"})
    assert bare.spec.sampler.target_accept == 0.95 and bare.spec.sampler.draws == 1000
    assert bare.spec.sampler.backend == model.spec.sampler.backend == "nutpie-jax"
