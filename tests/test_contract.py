"""The model contract: every registered model, and a toy model defined here in one class,
one registry line and one spec, goes through a tiny fit, save/load, prediction, its report
section, one power cell and one SBC replicate. A fourth model that passes this test works
with the report, the power runner and SBC."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
import xarray as xr

from lcbayes.data.simulate import Design, simulate_study
from lcbayes.data.study import Study
from lcbayes.diagnostics import summarize
from lcbayes.models import MODELS, BayesModel, create, model_class, register
from lcbayes.models.base import Conclusion, ReportContent
from lcbayes.models.components import predictive_streams
from lcbayes.models.priors import Prior
from lcbayes.power import Plan, run
from lcbayes.power.sbc import sbc_replicate
from lcbayes.report.config import ModelEntry
from lcbayes.report.model_section import analyse_model
from lcbayes.tables import describe

TINY = {"chains": 2, "draws": 150, "tune": 150, "seed": 3}


class CommunityMeans(BayesModel):
    """Toy model: y_ti = mu + u_j + e_ti, u_j ~ N(0, tau), e ~ N(0, sigma) (one file's worth)."""

    name = "community_means"
    option_defaults: dict = {}

    def prepare(self) -> None:
        self.y, self.mask = self.panel.cells(self.spec.outcome)

    def default_priors(self) -> dict[str, Prior]:
        sd = float(self.y[self.mask > 0].std())
        return {"mu": Prior("Normal", {"mu": float(self.y[self.mask > 0].mean()), "sigma": 2.5 * sd}),
                "tau": Prior("HalfNormal", {"sigma": sd}), "sigma": Prior("Exponential", {"lam": 1 / sd})}

    def build(self) -> pm.Model:
        with pm.Model(coords=self.coords) as model:
            y = pm.Data("y", self.y, dims=("participant", "session"))
            mask = pm.Data("mask", self.mask, dims=("participant", "session"))
            z = pm.Normal("z", 0, 1, dims="community")
            u = pm.Deterministic("u", self.prior("tau") * z, dims="community")
            c = pm.Data("community_of", self.panel.community, dims="participant")
            mean = pm.Deterministic("mean", self.prior("mu") + u[c][:, None] * pt_ones(self.panel.shape[1]),
                                    dims=("participant", "session"))
            logp = mask * pm.logp(pm.Normal.dist(mean, self.prior("sigma")), y)
            pm.Potential("likelihood", logp.sum())
            pm.Deterministic("loglik", logp.sum(-1), dims="participant")
        return model

    cell_vars = ("mean", "loglik")

    @property
    def population(self) -> list[str]:
        return ["mu", "tau", "sigma"]

    def pointwise_loglik(self, idata):
        return self._cells(idata.posterior, ["loglik"])["loglik"]

    def _replicate(self, post: xr.Dataset, seed: int) -> xr.Dataset:
        obs = self._observed()["obs"].values
        c = self.study.idx["community"][obs]
        mean = post["mu"].values[..., None] + post["u"].values[..., c]
        noise = predictive_streams(seed)[1].standard_normal(mean.shape)
        replicate = mean + post["sigma"].values[..., None] * noise
        return xr.Dataset({self.spec.outcome: (("chain", "draw", "obs"), replicate)}, coords={"obs": obs})

    def sample_prior_predictive(self, draws=500, seed=0):

        with self.model:
            prior = pm.sample_prior_predictive(
                draws=draws, random_seed=seed, var_names=["mu", "tau", "sigma", "z", "u"]).prior
        return xr.DataTree.from_dict({"prior": prior, "prior_predictive": self._replicate(prior, seed),
                                      "observed_data": self._observed()})

    def sample_posterior_predictive(self, seed=0):
        idata = self.fitted()
        idata["posterior_predictive"] = self._replicate(idata["posterior"].to_dataset(), seed)
        return idata

    def predicted(self, posterior, kind, seed, fitted, new_groups):
        """The community mean per cell (the model has no participant effects); new communities come with their u
        (carried over by label, or drawn) in ``posterior``."""
        cells = self._cells(posterior, ["mean"])["mean"]
        if kind == "predictive":
            cells = cells + posterior["sigma"] * predictive_streams(seed)[1].standard_normal(cells.shape)
        return {self.spec.outcome: cells}

    def prior_study(self, seed):
        draw = self.sample_prior_predictive(draws=1, seed=seed)
        y = np.full(self.study.n_obs, np.nan)
        y[draw.prior_predictive["obs"].values] = draw.prior_predictive[self.spec.outcome].values[0, 0]
        return self.study.with_values({self.spec.outcome: y}), draw.prior.isel(chain=0, draw=0)

    def report_content(self) -> ReportContent:
        post = self.fitted().posterior
        return ReportContent(xr.Dataset({"icc": post["tau"] ** 2 / (post["tau"] ** 2 + post["sigma"] ** 2)}),
                             conclusions=[describe("Grand mean", post["mu"])])


def pt_ones(n: int):
    import pytensor.tensor as pt

    return pt.ones((1, n))


@pytest.fixture(autouse=True, scope="module")
def toy_registered():
    register(CommunityMeans)                       # the one registry line
    yield
    MODELS.pop(CommunityMeans.name)


SPECS = {   # one spec per model: small options so that the whole round trip takes seconds
    "climate_growth": {"outcome": "climate", "options": {"random_slopes": False}},
    "consensus_emergence": {"outcome": "climate", "options": {"composition": ["lgo_sd"], "learning": "learning",
                                                             "composition_implied_spread": True}},
    "knowledge_sharing": {"outcome": "sharing", "sampler": {"target_accept": 0.9}},
    "community_means": {"outcome": "climate"},
}
TRUTH = {"climate_growth": "climate.beta1", "consensus_emergence": "climate.alpha1",
         "knowledge_sharing": "sharing.gamma0", "community_means": "climate.beta0"}
TARGET = {"climate_growth": "beta_time[time]", "consensus_emergence": "alpha_time",
          "knowledge_sharing": "gamma_support", "community_means": "mu"}
DESIGN = {"communities": 4, "participants": 5, "sessions": 4}


def spec_of(name: str) -> dict:
    spec = SPECS[name]
    return {**spec, "model": name, "sampler": {**TINY, **spec.get("sampler", {})}}


@pytest.fixture(scope="module")
def raw():
    """The simulated study's table, in the form a user gives it."""
    return simulate_study(Design(**DESIGN), seed=11).table


@pytest.fixture(scope="module")
def study(raw) -> Study:
    return Study.from_frame(raw, simulate_study(Design(**DESIGN), seed=11).roles)


def names():
    return ["climate_growth", "consensus_emergence", "knowledge_sharing", "community_means"]


def test_every_registered_model_has_a_contract_spec():
    assert set(MODELS) == set(SPECS)
    with pytest.raises(Exception, match="unknown model 'nope'. Valid: climate_growth"):
        model_class("nope")


def test_abstract_contract_is_enforced_at_instantiation(study):
    class Incomplete(BayesModel):
        name = "incomplete"
        option_defaults: dict = {}

    with pytest.raises(TypeError, match="abstract"):
        Incomplete(study, {"outcome": "climate"})


@pytest.mark.parametrize("name", names())
def test_fit_save_load_predict_report(name, study, raw, tmp_path, same_draws):
    model = create(spec_of(name), study)
    idata = model.fit()
    assert set(model.population) <= set(idata.posterior.data_vars)
    assert idata.log_likelihood[model.spec.outcome].sizes["chain"] == TINY["chains"]
    path = model.save(tmp_path / "fit.nc")
    again = BayesModel.load(path)
    assert type(again) is type(model)
    # ArviZ conventions: parameters on their own scale only, named dims, chain and draw first
    posterior = again.idata.posterior
    assert not [v for v in posterior.data_vars if v.endswith("__")]
    assert not [d for d in posterior.dims if d.endswith("_dim_0")]
    assert all(posterior[v].dims[:2] == ("chain", "draw") for v in posterior.data_vars)
    assert not [name for name in summarize(again.fitted()).index if "__" in name]     # what az.summary lists
    own = name in ("climate_growth", "consensus_emergence", "knowledge_sharing")   # a user's model may skip LOO-PIT
    if own or type(again).marginal_replicates is not BayesModel.marginal_replicates:
        pit = again.loo_pit(seed=1)             # a loaded fit: LOO-PIT per participant, in [0, 1]
        assert pit.dims == ("participant",) and 0.0 <= float(pit.min()) and float(pit.max()) <= 1.0
    out = model.spec.outcome
    in_sample = model.predict(seed=2)["predictions"][out]
    same_draws(again.predict(seed=2)["predictions"][out], in_sample)
    # the fitted data through the path of new data: the same predictions (the same draws, exactly)
    through_new = model.predict(raw, seed=2)["predictions"][out].sel(row=in_sample["row"])
    np.testing.assert_allclose(through_new.values, in_sample.values, rtol=1e-9, atol=1e-9)
    pp = model.sample_posterior_predictive(seed=1).posterior_predictive[model.spec.outcome]
    assert pp.sizes["obs"] == idata.observed_data[model.spec.outcome].sizes["obs"]
    content = again.report_content()
    assert content.conclusions and all(isinstance(c, str | Conclusion) for c in content.conclusions)
    for c in content.conclusions:        # what a conclusion rests on is in the fit or its derived quantities
        for name in getattr(c, "rests_on", ()):
            assert name.split("[")[0] in again.fitted()["posterior"] or name.split("[")[0] in content.derived, name
    assert len(content.derived.data_vars) >= 1


@pytest.mark.parametrize("name", names())
def test_report_section(name, study):
    entry = ModelEntry(key=name, label=name, spec_path=None, spec=spec_of(name), variants=())
    section = analyse_model(entry, study, seed=5, prior_draws=20, log=lambda _: None)
    assert section.results["diagnostics"].keys() >= {"converged", "divergences"}
    assert section.tables["parameters"].shape[0] >= len(section.model.population)
    assert section.conclusions and all(isinstance(c, Conclusion) for c in section.conclusions)


@pytest.mark.parametrize("name", names())
def test_one_power_cell_and_one_sbc_replicate(name, tmp_path):
    raw = {"model": name, "spec": SPECS[name] | {"sampler": {**TINY, **SPECS[name].get("sampler", {})}},
           "design": DESIGN, "replicates": 1, "seed": 4,
           "targets": [{"parameter": TARGET[name], "truth": TRUTH[name], "rules": [{"rule": "excludes_zero"}]}]}
    store = run(Plan.parse(raw), str(tmp_path / "power"), workers=1, progress=False)
    rows = store.load()
    assert len(rows) == 1 and np.isfinite(rows["mean"]).all()
    plan = Plan.parse({k: v for k, v in raw.items() if k != "targets"}, require_targets=False)
    sbc = run(plan, str(tmp_path / "sbc"), workers=1, progress=False, task=sbc_replicate, kind="sbc").load()
    assert len(sbc) >= 3 and sbc["replicate"].eq(0).all()
    assert ((sbc["rank"] >= 0) & (sbc["rank"] <= sbc["n_draws"])).all()
