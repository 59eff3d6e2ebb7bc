"""Model B: consensus emergence as a Bayesian mixed-effects location-scale model
(DESIGN.md, "Model B"; Lang, Bliese & de Voogt 2018).

    y_tij = beta0 + beta1 s + u0j + u1j s + r0ij [+ r1ij s] [+ o_org(i)] [+ Gamma x] + e_tij
    e_tij ~ N(0, sigma_tij)
    log sigma_tij = alpha0 + alpha1 s + alpha2 z_j + alpha3 z_j s + alpha4 w_i [+ v0j + v1j s]

alpha1 < 0 is consensus emergence (the within-community spread shrinks over sessions);
z_j are standardised composition predictors (:mod:`lcbayes.data.composition`), alpha3 says
whether composition speeds or slows emergence, w_i are standardised individual traits and
(v0j, v1j) optional community-specific emergence (independent, non-centred, with tight
half-normal priors so that few communities do not destabilise it).

Derived per community x session: climate *strength* (latent community mean, the location
part at w = 0 and predictors at their means), *consensus* (latent within-community SD
sigma_jt at w = 0), consensus on the r_wg scale (1 - sigma^2 / sigma_EU^2 for an A-point
item, truncated to [0, 1] as r_wg is) and the time to consensus (first session whose SD is
at or below the SD equivalent of an r_wg threshold).

Outcome submodel (same joint model): a participant-level learning outcome regressed on the
strength and consensus of the participant's community at the last session and their
product, with both centred at constants (the observed mean climate and mean within-community
SD at the last session): ``eta_centred`` holds the effects at average strength and consensus
(the ones to interpret when the interaction is present); ``eta`` the same model's
coefficients on the uncentred scale (effects at strength 0 and SD 0, far outside the data).
"""

from __future__ import annotations

from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from lcbayes.agreement import uniform_null_variance
from lcbayes.data.composition import community_composition, standardize
from lcbayes.errors import ConfigError
from lcbayes.models.climate_growth import ClimateGrowth
from lcbayes.models.components import fill_missing, time_basis
from lcbayes.models.priors import Prior

COMPOSITION_COLUMNS = ("size", "n_organizations", "largest_org_share")
OUTCOME_TERMS = ["intercept", "strength", "consensus", "strength_x_consensus"]


class ConsensusEmergence(ClimateGrowth):
    """Location-scale model of climate perceptions with consensus emergence.

    Options beyond :class:`ClimateGrowth`'s (whose ``random_slopes`` here means community
    slopes):

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
    option_defaults: dict[str, Any] = {
        **ClimateGrowth.option_defaults,
        "participant_slopes": False, "emergence": True, "composition": [], "scale_traits": [],
        "community_scale": False, "learning": "", "scale_points": 0, "consensus_rwg": 0.7,
    }

    def participant_slopes(self) -> bool:
        return bool(self.options["participant_slopes"])

    def prepare(self) -> None:
        super().prepare()
        o, study = self.options, self.study
        self.composition_names = list(o["composition"])
        traits = sorted({c.rsplit("_", 1)[0] for c in self.composition_names if c not in COMPOSITION_COLUMNS})
        comp = community_composition(study, traits)
        unknown = [c for c in self.composition_names if c not in comp]
        if unknown:
            raise ConfigError(f"unknown composition predictor(s) {unknown}; available: {', '.join(comp)}.")
        self.z = standardize(comp[self.composition_names]).to_numpy() if self.composition_names \
            else np.zeros((study.n("community"), 0))
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
        if outcome in roles.scales:
            return roles.scales[outcome].n_options
        var = roles.variables[outcome]
        return var.range[1] - var.range[0] + 1 if var.range else 0

    @property
    def measures(self) -> list[str]:
        comp_traits = [c.rsplit("_", 1)[0] for c in self.composition_names if c not in COMPOSITION_COLUMNS]
        extra = self.scale_trait_names + comp_traits + ([self.learning] if self.learning else [])
        return list(dict.fromkeys(super().measures + extra))

    @property
    def coords(self) -> dict[str, list]:
        coords = super().coords
        coords["composition"] = self.composition_names
        coords["scale_trait"] = self.scale_trait_names
        coords["outcome_term"] = OUTCOME_TERMS
        coords["effect_scale"] = ["intercept", "slope"]
        return coords

    # ------------------------------------------------------------------ priors
    def default_priors(self) -> dict[str, Prior]:
        """Location priors as :class:`ClimateGrowth`; scale part (log-SD scale, weakly
        informative): alpha0 ~ N(log sd_y, 1); alpha1 ~ N(0, 0.5 / sd_s) per time unit;
        composition and trait effects N(0, 0.5) per SD, composition x time N(0, 0.5 / sd_s);
        SDs of v0j, v1j half-normal(0.2) and half-normal(0.1 / sd_s). Outcome submodel:
        intercept N(mean_L, 2.5 sd_L), slopes N(0, 2.5 sd_L / sd_x) with sd_x the spread of
        the observed community means (strength) and SDs (consensus) at the last session,
        residual SD exponential(1 / sd_L)."""
        priors = super().default_priors()
        del priors["sigma"]
        obs = self.mask > 0
        sd_y = float(self.y[obs].std())
        sd_s = float(self.panel.time[obs].std()) or 1.0
        priors["alpha_intercept"] = Prior("Normal", {"mu": float(np.log(sd_y)), "sigma": 1.0})
        if self.options["emergence"]:
            priors["alpha_time"] = Prior("Normal", {"mu": 0.0, "sigma": 0.5 / sd_s})
        if self.composition_names:
            priors["alpha_composition"] = Prior("Normal", {"mu": 0.0, "sigma": 0.5})
            priors["alpha_composition_time"] = Prior("Normal", {"mu": 0.0, "sigma": 0.5 / sd_s})
        if self.scale_trait_names:
            priors["alpha_trait"] = Prior("Normal", {"mu": 0.0, "sigma": 0.5})
        if self.options["community_scale"]:
            priors["tau_scale_community"] = Prior("HalfNormal", {"sigma": [0.2, 0.1 / sd_s]})
        if self.learning:
            level, spread = self._last_session_climate()
            v = self.learning_values[self.learning_mask > 0]
            sd_l = float(v.std()) or 1.0
            sd_strength, sd_consensus = float(level.std()) or sd_y, float(spread.std()) or sd_y
            priors["eta_centred"] = Prior("Normal", {
                "mu": [float(v.mean()), 0.0, 0.0, 0.0],
                "sigma": [2.5 * sd_l, 2.5 * sd_l / sd_strength, 2.5 * sd_l / sd_consensus,
                          2.5 * sd_l / (sd_strength * sd_consensus)]})
            priors["sigma_learning"] = Prior("Exponential", {"lam": 1.0 / sd_l})
        return priors

    def _last_session_climate(self) -> tuple[pd.Series, pd.Series]:
        """Observed mean and SD of the outcome per community at the last session."""
        t = self.study.table
        last = t[t["session"] == t["session"].max()]
        g = last.groupby("community")[self.spec.outcome]
        return g.mean(), g.std()

    # ------------------------------------------------------------------ graph
    def _community_of(self) -> pt.TensorVariable:
        return pm.modelcontext(None)["community_of"]

    def _log_sigma(self, s: pt.TensorVariable) -> pt.TensorVariable:
        """log sigma_tij = alpha0 + alpha1 s + alpha2 z_j + alpha3 z_j s + alpha4 w_i [+ v0j + v1j s]."""
        c = self._community_of()
        log_sigma = self.prior("alpha_intercept")
        if self.options["emergence"]:
            log_sigma = log_sigma + self.prior("alpha_time") * s
        if self.composition_names:
            z = pm.Data("composition_z", self.z, dims=("community", "composition"))[c]
            a2 = self.prior("alpha_composition", dims="composition")
            a3 = self.prior("alpha_composition_time", dims="composition")
            log_sigma = log_sigma + (z * a2).sum(-1)[:, None] + (z * a3).sum(-1)[:, None] * s
        if self.scale_trait_names:
            w = fill_missing("scale_traits", self.w, lambda n: pm.Normal("scale_trait_missing", 0.0, 1.0, shape=n))
            log_sigma = log_sigma + (w * self.prior("alpha_trait", dims="scale_trait")).sum(-1)[:, None]
        if self.options["community_scale"]:
            tau_v = self.prior("tau_scale_community", dims="effect_scale")
            z_v = pm.Normal("z_scale_community", 0.0, 1.0, dims=("community", "effect_scale"))
            v = pm.Deterministic("v_community", tau_v * z_v, dims=("community", "effect_scale"))
            log_sigma = log_sigma + v[c, 0][:, None] + v[c, 1][:, None] * s
        return pt.broadcast_to(log_sigma, self.panel.shape)

    def _extend(self, mu, log_sigma) -> None:
        """Outcome submodel: learning_i ~ N(eta0 + eta1 S_j + eta2 C_j + eta3 S_j C_j, sigma_L),
        S_j, C_j the community's strength and consensus at the last session."""
        if not self.learning:
            return
        model = pm.modelcontext(None)
        s_last = float(self.session_times()[-1])
        strength, consensus = self._last_session_latents(model, s_last)
        level, spread = self._last_session_climate()
        s_bar, c_bar = float(level.mean()), float(spread.mean())
        eta = self.prior("eta_centred", dims="outcome_term")
        sc, cc = strength - s_bar, consensus - c_bar
        c = self._community_of()
        mean = eta[0] + eta[1] * sc[c] + eta[2] * cc[c] + eta[3] * sc[c] * cc[c]
        sigma_l = self.prior("sigma_learning")
        y = pm.Data("learning", self.learning_values, dims="participant")
        m = pm.Data("learning_mask", self.learning_mask, dims="participant")
        pm.Potential("learning_likelihood", (m * pm.logp(pm.Normal.dist(mean, sigma_l), y)).sum())
        pm.Deterministic("eta", pt.stack([
            eta[0] - eta[1] * s_bar - eta[2] * c_bar + eta[3] * s_bar * c_bar,
            eta[1] - eta[3] * c_bar, eta[2] - eta[3] * s_bar, eta[3]]), dims="outcome_term")

    def _last_session_latents(self, model: pm.Model, s_last: float):
        """Strength and consensus per community at time ``s_last`` inside the graph."""
        label = np.asarray(self.coords["session"])[-1:]
        _, b = time_basis(np.array([s_last]), label, self.options["trend"], int(self.options["breakpoint"]))
        u = model["u_community"]
        strength = model["beta_intercept"] + (model["beta_time"] * b[:, 0]).sum() + u[:, 0]
        if self.options["random_slopes"]:
            strength = strength + u[:, 1] * s_last
        return strength, pt.exp(self._community_log_sd(model, s_last))

    def _community_log_sd(self, model, s):
        """alpha0 + alpha1 s + alpha2 z_j + alpha3 z_j s + v0j + v1j s, per community (w = 0);
        works on graph variables (``model``) and on posterior Datasets alike."""
        out = model["alpha_intercept"]
        if self.options["emergence"]:
            out = out + model["alpha_time"] * s
        if self.composition_names:
            if isinstance(model, xr.Dataset):
                z = xr.DataArray(self.z, dims=("community", "composition"),
                                 coords={"community": self.coords["community"], "composition": self.composition_names})
                out = out + (z * model["alpha_composition"]).sum("composition") \
                    + (z * model["alpha_composition_time"]).sum("composition") * s
            else:
                out = out + (self.z * model["alpha_composition"]).sum(-1) \
                    + (self.z * model["alpha_composition_time"]).sum(-1) * s
        if self.options["community_scale"]:
            v = model["v_community"]
            if isinstance(model, xr.Dataset):
                out = out + v.isel(effect_scale=0, drop=True) + v.isel(effect_scale=1, drop=True) * s
            else:
                out = out + v[:, 0] + v[:, 1] * s
        return out

    # ------------------------------------------------------------------ results
    @property
    def population(self) -> list[str]:
        names = [n for n in super().population if n != "sigma"] + ["alpha_intercept"]
        if self.options["emergence"]:
            names.append("alpha_time")
        if self.composition_names:
            names += ["alpha_composition", "alpha_composition_time"]
        if self.scale_trait_names:
            names.append("alpha_trait")
        if self.options["community_scale"]:
            names.append("tau_scale_community")
        if self.learning:
            names += ["eta_centred", "eta", "sigma_learning"]
        return names

    def consensus_sd_threshold(self) -> float:
        """SD equivalent of the r_wg threshold: sqrt((1 - r_wg) sigma_EU^2) for A options."""
        return float(np.sqrt((1 - float(self.options["consensus_rwg"])) * uniform_null_variance(self.n_options)))

    def derived(self, idata: az.InferenceData) -> xr.Dataset:
        """Per community x session ``strength``, ``consensus`` (SD), ``consensus_rwg``; per
        community ``time_to_consensus`` (session label, NaN = not reached); ``variance`` of the
        random effects per session (community, participant, organization). The two r_wg-based
        quantities need the number of response options (``scale_points`` or the outcome's
        range in the roles) and are left out when it is unknown.

        With a learning outcome, ``eta_average`` (outcome_term) holds the outcome model at the
        communities' average latent strength and consensus at the last session, per draw:
        the expected outcome there, the effect of strength at average consensus, the effect of
        consensus at average strength, and the interaction. These are the effects to
        interpret; ``eta_centred`` centres at observed constants (the observed within-community
        SD includes participant differences, so it lies above the latent consensus SD)."""
        post = idata.posterior
        s = self.session_grid()
        strength = self.community_trajectories(post)
        consensus = np.exp(self._community_log_sd(post, s)).broadcast_like(strength).transpose(*strength.dims)
        out = {"strength": strength, "consensus": consensus}
        if self.n_options:
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
                [e0 + e1 * s_bar + e2 * c_bar + e3 * s_bar * c_bar, e1 + e3 * c_bar, e2 + e3 * s_bar, e3],
                dim=post["outcome_term"]).transpose("chain", "draw", "outcome_term")
        return xr.Dataset(out)

    def log_likelihood_terms(self) -> xr.Dataset:
        """The outcome's log likelihood per participant and, with a learning outcome, its log
        density per participant who has one (``learning``, over ``learner``)."""
        idata = self._fitted()
        if not self.learning:
            return idata.log_likelihood
        post = idata.posterior
        level, spread = self._last_session_climate()
        sc = post["strength"].isel(session=-1, drop=True) - float(level.mean())
        cc = post["consensus"].isel(session=-1, drop=True) - float(spread.mean())
        learners = np.flatnonzero(self.learning_mask > 0)
        comm = xr.DataArray(self.study.participant_community[learners], dims="learner")
        sc, cc = sc.isel(community=comm, drop=True), cc.isel(community=comm, drop=True)
        eta = post["eta_centred"]
        mean = eta.isel(outcome_term=0) + eta.isel(outcome_term=1) * sc + eta.isel(outcome_term=2) * cc \
            + eta.isel(outcome_term=3) * sc * cc
        y = xr.DataArray(self.learning_values[learners], dims="learner")
        sigma = post["sigma_learning"]
        logp = -0.5 * ((y - mean) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
        logp = logp.drop_vars([c for c in logp.coords if c not in ("chain", "draw")])
        return idata.log_likelihood.assign(learning=logp.transpose("chain", "draw", "learner"))

    def emergence_evidence(self) -> pd.DataFrame:
        """Posterior probability that alpha1 < 0 (spread shrinks) and alpha1's summary."""
        a1 = self._fitted().posterior["alpha_time"].values.ravel()
        lo, hi = np.quantile(a1, [0.05, 0.95])
        return pd.DataFrame({"mean": [a1.mean()], "q5": [lo], "q95": [hi], "p_emergence": [(a1 < 0).mean()]},
                            index=["alpha_time"])

    def compare_emergence(self, **sampler: Any) -> pd.DataFrame:
        """LOO (leave one participant out) of this model against the same model without
        emergence (alpha1 = 0), refitted with the same sampler settings."""
        spec = self.spec.to_dict()
        spec["options"] = {**spec["options"], "emergence": False}
        constant = type(self)(self.study, spec)
        constant.fit(**sampler)
        return az.compare({"emergence": self._fitted(), "no_emergence": constant.idata}, ic="loo")

    # ------------------------------------------------------------------ plots
    def plot_consensus(self, hdi_prob: float = 0.9, ax=None):
        """Latent within-community SD over sessions per community, with HDI bands."""
        import matplotlib.pyplot as plt

        post = self._fitted().posterior["consensus"]
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4.5))
        sessions = np.asarray(self.coords["session"])
        colors = plt.cm.viridis(np.linspace(0, 0.9, post.sizes["community"]))
        for color, comm in zip(colors, self.coords["community"]):
            draws = post.sel(community=comm)
            band = az.hdi(draws, hdi_prob=hdi_prob)["consensus"].values
            ax.fill_between(sessions, band[:, 0], band[:, 1], color=color, alpha=0.08, linewidth=0)
            ax.plot(sessions, draws.mean(("chain", "draw")).values, color=color, linewidth=1.2)
        if self.n_options:
            ax.axhline(self.consensus_sd_threshold(), color="grey", linestyle="--", linewidth=1,
                       label=f"r_wg = {self.options['consensus_rwg']}")
            ax.legend(frameon=False)
        ax.set_xlabel("session")
        ax.set_ylabel("within-community SD (consensus)")
        ax.set_title(f"Consensus emergence: latent SD per community ({int(hdi_prob * 100)}% HDI)")
        return ax

    def plot_strength_consensus(self, hdi_prob: float = 0.9, ax=None):
        """Strength against consensus per community at the last session, with HDIs."""
        import matplotlib.pyplot as plt

        post = self._fitted().posterior
        last = self.coords["session"][-1]
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 5))
        x = post["strength"].sel(session=last)
        y = post["consensus"].sel(session=last)
        hx = az.hdi(x, hdi_prob=hdi_prob)["strength"].values
        hy = az.hdi(y, hdi_prob=hdi_prob)["consensus"].values
        mx, my = x.mean(("chain", "draw")).values, y.mean(("chain", "draw")).values
        ax.errorbar(mx, my, xerr=[mx - hx[:, 0], hx[:, 1] - mx], yerr=[my - hy[:, 0], hy[:, 1] - my],
                    fmt="o", color="#3b528b", ecolor="#9fb3d9", elinewidth=1, markersize=4)
        for label, a, b in zip(self.coords["community"], mx, my):
            ax.annotate(str(label), (a, b), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(f"climate strength (latent mean) at session {last}")
        ax.set_ylabel("consensus (latent within-community SD)")
        ax.set_title(f"Strength and consensus per community ({int(hdi_prob * 100)}% HDI)")
        return ax
