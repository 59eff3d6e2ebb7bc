"""Model B: consensus emergence as a Bayesian mixed-effects location-scale model
(``docs/models.md``, model B; Lang, Bliese & de Voogt 2018).

    y_tij = beta0 + beta1 s + u0j + u1j s + r0ij [+ r1ij s] [+ o_org(i)] [+ Gamma x] + e_tij
    e_tij ~ N(0, sigma_tij)
    log sigma_tij = alpha0 + alpha1 s + alpha2 z_j + alpha3 z_j s + alpha4 w_i [+ v0j + v1j s]

alpha1 < 0 is consensus emergence (the within-community spread shrinks over sessions); z_j are standardised composition
predictors (:mod:`lcbayes.data.composition`), alpha3 says whether composition speeds or slows emergence, w_i are
standardised individual traits and (v0j, v1j) optional community-specific emergence (independent, non-centred, with
tight half-normal priors so that few communities do not destabilise it).

Derived per community x session: climate *strength* (latent community mean, the location part at w = 0 and predictors
at their means), *consensus* (latent within-community SD sigma_jt at w = 0), consensus on the r_wg scale
(1 - sigma^2 / sigma_EU^2 for an A-point item, truncated to [0, 1] as r_wg is) and the time to consensus (first session
whose SD is at or below the SD equivalent of an r_wg threshold).

Outcome submodel (same joint model): a participant-level learning outcome regressed on the strength and consensus of
the participant's community at the last session and their product, with both centred at constants (the observed mean
climate and mean within-community SD at the last session): ``eta_centred`` holds the effects at average strength and
consensus (the ones to interpret when the interaction is present); ``eta`` the same model's coefficients on the
uncentred scale (effects at strength 0 and SD 0, far outside the data).
"""

from __future__ import annotations

from typing import Any, ClassVar

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from lcbayes import plots, tables
from lcbayes.agreement import uniform_null_variance
from lcbayes.data.composition import community_composition, standardize
from lcbayes.errors import ConfigError
from lcbayes.models.base import ReportContent, on_fit
from lcbayes.models.climate import LOCATION_OPTIONS, ClimateModel
from lcbayes.models.components import GroupEffects, fill_missing
from lcbayes.models.priors import Prior, normal_scaled
from lcbayes.processes import climate_log_sd, learning_mean, normal_logpdf
from lcbayes.tables import describe

COMPOSITION_COLUMNS = ("size", "n_organizations", "largest_org_share")
OUTCOME_TERMS = ["intercept", "strength", "consensus", "strength_x_consensus"]


class ConsensusEmergence(ClimateModel):
    """Location-scale model of climate perceptions with consensus emergence.

    Options: ``trend``, ``breakpoint``, ``time``, ``time_scale``, ``organization``, ``traits``,
    ``time_varying`` and ``lkj_eta`` as in :class:`~lcbayes.models.ClimateGrowth`, and

    - ``random_slopes``: random time slopes for communities (default true);
    - ``participant_slopes``: random time slopes for participants (default false, the
      classic consensus emergence model has participant intercepts only);
    - ``emergence``: estimate alpha1 (false fixes alpha1 = 0: constant spread, for comparison);
    - ``composition``: z_j columns of :func:`~lcbayes.data.composition.community_composition`,
      e.g. ``["lgo_sd", "n_organizations"]`` (``<trait>_sd``, ``<trait>_mean``, ``size``,
      ``n_organizations``, ``largest_org_share``), standardised over communities;
    - ``scale_traits``: participant-level traits w_i in the scale model (standardised);
    - ``community_scale``: community-specific emergence (v0j, v1j);
    - ``learning``: participant-level learning outcome for the outcome submodel ("" = none);
    - ``scale_points``: A of the A-point items for the r_wg scale (0: from the roles);
    - ``consensus_rwg``: r_wg threshold defining consensus for the time to consensus.
    """

    name = "consensus_emergence"
    option_defaults: ClassVar[dict[str, Any]] = {
        **LOCATION_OPTIONS, "participant_slopes": False, "emergence": True, "composition": [], "scale_traits": [],
        "community_scale": False, "learning": "", "scale_points": 0, "consensus_rwg": 0.7}
    cell_vars = ClimateModel.cell_vars + ("learning_loglik",)

    def prepare(self) -> None:
        self.prepare_parts(participant_slopes=bool(self.options["participant_slopes"]))
        o, study = self.options, self.study
        self.composition_names = list(o["composition"])
        self.composition_traits = [c.rsplit("_", 1)[0] for c in self.composition_names if c not in COMPOSITION_COLUMNS]
        comp = community_composition(study, sorted(set(self.composition_traits)))
        unknown = [c for c in self.composition_names if c not in comp]
        if unknown:
            raise ConfigError(f"unknown composition predictor(s) {unknown}; available: {', '.join(comp)}.")
        self.z = standardize(comp[self.composition_names]).to_numpy(dtype=float)   # (J, 0) without predictors
        self.scale_trait_names = list(o["scale_traits"])
        cols = []
        for name in self.scale_trait_names:
            if study.roles.level_of(name) != "participant":
                raise ConfigError(f"scale trait '{name}' is session-level; scale_traits must be participant-level.")
            v = study.participant_values(name).to_numpy()
            cols.append((v - np.nanmean(v)) / np.nanstd(v))
        self.w = np.column_stack(cols) if cols else np.zeros((study.n("participant"), 0))
        self.learning = str(o["learning"])
        if self.learning:
            if study.roles.level_of(self.learning) != "participant":
                raise ConfigError(f"learning outcome '{self.learning}' must be participant-level.")
            v = study.participant_values(self.learning).to_numpy()
            self.learning_mask = (~np.isnan(v)).astype(float)
            self.learning_values = np.nan_to_num(v)
        self.n_options = int(o["scale_points"]) or self._options_from_roles()

    def _options_from_roles(self) -> int:
        roles, outcome = self.study.roles, self.spec.outcome
        r = roles.scales[outcome].range if outcome in roles.scales else roles.variables[outcome].range
        return r[1] - r[0] + 1 if r else 0

    @property
    def measures(self) -> list[str]:
        extra = self.scale_trait_names + self.composition_traits + ([self.learning] if self.learning else [])
        return list(dict.fromkeys(super().measures + extra))

    @property
    def coords(self) -> dict[str, list]:
        return {**super().coords, "composition": self.composition_names, "scale_trait": self.scale_trait_names,
                "outcome_term": OUTCOME_TERMS, **self.community_scale.coords()}

    @property
    def community_scale(self) -> GroupEffects:
        """Community-specific spread and emergence (v0j, v1j), independent."""
        return GroupEffects("scale_community", "community", "effect_scale", ("intercept", "slope"), correlated=False)

    def default_priors(self) -> dict[str, Prior]:
        """Location and participant priors as in :class:`ClimateGrowth`; scale part (log-SD scale, weakly informative):
        alpha0 ~ N(log sd_y, 1); alpha1 ~ N(0, 0.5 / sd_s) per time unit; composition and trait effects N(0, 0.5) per
        SD, composition x time N(0, 0.5 / sd_s); SDs of v0j, v1j half-normal(0.2) and half-normal(0.1 / sd_s). Outcome
        submodel: intercept N(mean_L, 2.5 sd_L), slopes N(0, 2.5 sd_L / sd_x) with sd_x the spread of the observed
        community means (strength) and SDs (consensus) at the last session, residual SD exponential(1 / sd_L)."""
        loc = self.location
        sd_y, sd_s = loc.sd_y(), loc.sd_s()
        priors = {**loc.priors(), **self.participants.priors(sd_y, sd_s)}
        priors["alpha_intercept"] = Prior("Normal", {"mu": float(np.log(sd_y)), "sigma": 1.0})
        if self.options["emergence"]:
            priors["alpha_time"] = Prior("Normal", {"mu": 0.0, "sigma": 0.5 / sd_s})
        if self.composition_names:
            priors["alpha_composition"] = Prior("Normal", {"mu": 0.0, "sigma": 0.5})
            priors["alpha_composition_time"] = Prior("Normal", {"mu": 0.0, "sigma": 0.5 / sd_s})
        if self.scale_trait_names:
            priors["alpha_trait"] = Prior("Normal", {"mu": 0.0, "sigma": 0.5})
        if self.options["community_scale"]:
            priors.update(self.community_scale.priors([0.2, 0.1 / sd_s], 1.0))
        if self.learning:
            level, spread = self._last_session_climate()
            v = self.learning_values[self.learning_mask > 0]
            sd_l = float(v.std()) or 1.0
            sd_strength, sd_consensus = float(level.std()) or sd_y, float(spread.std()) or sd_y
            priors["eta_centred"] = normal_scaled([float(v.mean()), 0.0, 0.0, 0.0], sd_l,
                                                  [1.0, sd_strength, sd_consensus, sd_strength * sd_consensus])
            priors["sigma_learning"] = Prior("Exponential", {"lam": 1.0 / sd_l})
        return priors

    def _last_session_climate(self) -> tuple[pd.Series, pd.Series]:
        """Observed mean and SD of the outcome per community at the last session."""
        t = self.study.table
        last = t[t["session"] == t["session"].max()]
        g = last.groupby("community")[self.spec.outcome]
        return g.mean(), g.std()

    def build(self) -> pm.Model:
        with pm.Model(coords=self.coords) as model:
            self.build_climate()
            if self.learning:
                self._learning_outcome(model)
        return model

    def log_sigma(self, s: pt.TensorVariable) -> pt.TensorVariable:
        """log sigma_tij = alpha0 + alpha1 s + alpha2 z_j + alpha3 z_j s + alpha4 w_i [+ v0j + v1j s]."""
        c = pm.modelcontext(None)["community_of"]
        alpha0 = self.prior("alpha_intercept")
        alpha1 = self.prior("alpha_time") if self.options["emergence"] else None
        composition = composition_time = trait = v0 = v1 = None
        if self.composition_names:
            z = pm.Data("composition_z", self.z, dims=("community", "composition"))[c]
            composition = (z * self.prior("alpha_composition", dims="composition")).sum(-1)[:, None]
            composition_time = (z * self.prior("alpha_composition_time", dims="composition")).sum(-1)[:, None]
        if self.scale_trait_names:
            w = fill_missing("scale_traits", self.w, lambda n: pm.Normal("scale_trait_missing", 0.0, 1.0, shape=n))
            trait = (w * self.prior("alpha_trait", dims="scale_trait")).sum(-1)[:, None]
        if self.options["community_scale"]:
            v = self.community_scale.effects(self.priors)
            v0, v1 = v[c, 0][:, None], v[c, 1][:, None]
        return pt.broadcast_to(climate_log_sd(alpha0, s, alpha1, composition, composition_time, trait, v0, v1),
                               self.panel.shape)

    def _learning_outcome(self, model: pm.Model) -> None:
        """Outcome submodel: learning_i ~ N(eta0 + eta1 S_j + eta2 C_j + eta3 S_j C_j, sigma_L),
        S_j, C_j the community's strength and consensus at the last session."""
        s_last = float(self.session_times()[-1])
        strength = self.location.strength_at(model, s_last, int(self.coords["session"][-1]))
        consensus = pt.broadcast_to(pt.exp(self._community_log_sd(model, s_last)), strength.shape)
        level, spread = self._last_session_climate()
        s_bar, c_bar = float(level.mean()), float(spread.mean())
        eta = self.prior("eta_centred", dims="outcome_term")
        c = model["community_of"]
        mean = learning_mean((eta[0], eta[1], eta[2], eta[3]), (strength - s_bar)[c], (consensus - c_bar)[c])
        sigma_l = self.prior("sigma_learning")
        y = pm.Data("learning", self.learning_values, dims="participant")
        m = pm.Data("learning_mask", self.learning_mask, dims="participant")
        loglik = m * normal_logpdf(y - mean, sigma_l, log=pt.log)
        pm.Potential("learning_likelihood", loglik.sum())
        pm.Deterministic("learning_loglik", loglik, dims="participant")
        pm.Deterministic("eta", pt.stack([
            eta[0] - eta[1] * s_bar - eta[2] * c_bar + eta[3] * s_bar * c_bar,
            eta[1] - eta[3] * c_bar, eta[2] - eta[3] * s_bar, eta[3]]), dims="outcome_term")

    def _community_log_sd(self, model, s):
        """:func:`~lcbayes.processes.climate_log_sd` per community (w = 0), on graph variables
        (``model``) or a posterior Dataset alike."""
        draws = isinstance(model, xr.Dataset)
        composition = composition_time = v0 = v1 = None
        if self.composition_names:
            z = xr.DataArray(self.z, dims=("community", "composition"), coords={
                "community": self.coords["community"], "composition": self.composition_names}) if draws else self.z
            dot = (lambda a: (z * a).sum("composition")) if draws else (lambda a: (z * a).sum(-1))
            composition, composition_time = dot(model["alpha_composition"]), dot(model["alpha_composition_time"])
        if self.options["community_scale"]:
            v = model["u_scale_community"]
            v0, v1 = (v.isel(effect_scale=k, drop=True) if draws else v[:, k] for k in (0, 1))
        alpha1 = model["alpha_time"] if self.options["emergence"] else None
        return climate_log_sd(model["alpha_intercept"], s, alpha1, composition, composition_time, None, v0, v1)

    @property
    def population(self) -> list[str]:
        names = self.location.population + self.participants.effects.population
        names += [n for n in self.priors if n.startswith("alpha_") or n == "tau_scale_community"]   # scale part
        return names + (["eta_centred", "eta", "sigma_learning"] if self.learning else [])

    def consensus_sd_threshold(self) -> float:
        """SD equivalent of the r_wg threshold: sqrt((1 - r_wg) sigma_EU^2) for A options."""
        return float(np.sqrt((1 - float(self.options["consensus_rwg"])) * uniform_null_variance(self.n_options)))

    def derived(self, idata: az.InferenceData) -> xr.Dataset:
        """Per community x session ``strength``, ``consensus`` (SD), ``consensus_rwg``; per community
        ``time_to_consensus`` (session label, NaN = not reached); ``variance`` of the random effects per session
        (community, participant, organization). The two r_wg-based quantities need the number of response options
        (``scale_points`` or the outcome's range in the roles) and are left out when it is unknown.

        With a learning outcome, ``eta_average`` (outcome_term) holds the outcome model at the communities' average
        latent strength and consensus at the last session, per draw: the expected outcome there, the effect of strength
        at average consensus, the effect of consensus at average strength, and the interaction. These are the effects
        to interpret; ``eta_centred`` centres at observed constants (the observed within-community SD includes
        participant differences, so it lies above the latent consensus SD)."""
        post = idata.posterior
        s = self.session_grid()
        strength = self.community_trajectories(post)
        consensus = np.exp(self._community_log_sd(post, s)).broadcast_like(strength).transpose(*strength.dims)
        out = {"strength": strength, "consensus": consensus}
        if self.n_options:
            consensus.attrs.update(threshold_sd=self.consensus_sd_threshold(),
                                   threshold_rwg=float(self.options["consensus_rwg"]))
            out["consensus_rwg"] = (1 - consensus**2 / uniform_null_variance(self.n_options)).clip(0, 1)
            reached = consensus <= self.consensus_sd_threshold()
            first = reached.argmax("session")
            labels = xr.DataArray(np.asarray(self.coords["session"], dtype=float), dims="first")
            out["time_to_consensus"] = xr.where(reached.any("session"), labels.isel(first=first), np.nan)
        var = xr.concat(self.random_effect_variances(post),
                        dim=xr.DataArray(["community", "participant", "organization"], dims="level", name="level"))
        out["variance"] = var.drop_vars([c for c in var.coords if c not in ("chain", "draw", "session", "level")])
        if self.learning:
            s_bar = strength.isel(session=-1, drop=True).mean("community")
            c_bar = consensus.isel(session=-1, drop=True).mean("community")
            e0, e1, e2, e3 = (post["eta"].isel(outcome_term=k, drop=True) for k in range(4))
            out["eta_average"] = xr.concat(
                [learning_mean((e0, e1, e2, e3), s_bar, c_bar), e1 + e3 * c_bar, e2 + e3 * s_bar, e3],
                dim=post["outcome_term"]).transpose("chain", "draw", "outcome_term")
        return xr.Dataset(out)

    def log_likelihood_terms(self) -> xr.Dataset:
        """The outcome's log likelihood per participant and, with a learning outcome, its log
        density per participant who has one (``learning``, over ``learner``)."""
        idata = self.fitted()
        if not self.learning:
            return idata.log_likelihood
        logp = self._cells(idata.posterior, ["learning_loglik"])["learning_loglik"]
        learners = np.flatnonzero(self.learning_mask > 0)
        logp = logp.isel(participant=learners).rename(participant="learner").drop_vars("learner")
        return idata.log_likelihood.assign(learning=logp.transpose("chain", "draw", "learner"))

    emergence_evidence = on_fit(tables.emergence_evidence)

    def compare_emergence(self, **sampler: Any) -> pd.DataFrame:
        """LOO (leave one participant out) of this model against the same model without
        emergence (alpha1 = 0), refitted with the same sampler settings."""
        constant = type(self)(self.study, self.spec, emergence=False)
        constant.fit(**sampler)
        return az.compare({"emergence": self.fitted(), "no_emergence": constant.idata}, ic="loo")

    plot_consensus = on_fit(plots.plot_consensus)
    plot_strength_consensus = on_fit(plots.plot_strength_consensus)

    def report_content(self) -> ReportContent:
        post = self.fitted().posterior
        derived = {"consensus_sd_mean": post["consensus"].mean("community")}
        out = []
        if "alpha_time" in post:
            derived["p_emergence"] = (post["alpha_time"] < 0).astype(float)
            p = float((post["alpha_time"] < 0).mean())
            trend = "shrinks" if p >= 0.95 else "grows" if p <= 0.05 else "may or may not change"
            out.append(describe("Emergence, alpha1 (change in log within-community SD per unit of time)",
                                post["alpha_time"])
                       + f". P(alpha1 < 0) = {p:.2f}: the spread within communities {trend}.")
        if "alpha_composition_time" in post:
            out += [describe(f"Composition x time, alpha3 ({c}; negative = faster emergence)",
                             post["alpha_composition_time"].sel(composition=c)) for c in post["composition"].values]
        if "eta_average" in post:
            derived["eta_average"] = post["eta_average"]
            out += [describe(f"Learning outcome on {t} (at the communities' average latent strength and consensus)",
                             post["eta_average"].sel(outcome_term=t)) for t in post["outcome_term"].values[1:]]
        if "consensus_rwg" in post:
            derived["consensus_rwg_mean"] = post["consensus_rwg"].mean("community")
            reached = post["time_to_consensus"].notnull().mean("community").astype(float)
            derived["share_reaching_consensus"] = reached
            out.append(f"Communities reaching consensus (r_wg >= {self.options['consensus_rwg']}) by the last "
                       f"session: {float(reached.mean()):.0%} (posterior mean).")
        figures = [("Consensus (within-community SD) per community over sessions.", self.plot_consensus().figure),
                   ("Strength and consensus at the last session.", self.plot_strength_consensus().figure)]
        return ReportContent(xr.Dataset(derived), figures, [], out)
