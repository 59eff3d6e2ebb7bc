r"""Model B: consensus emergence as a Bayesian mixed-effects location-scale model (``docs/models.md``, section 3;
Lang, Bliese & de Voogt 2018).

The observed scale score is the latent perception plus item error, $n_{ti}$ the items answered:

$$
y_{ti} = y^*_{ti} + e_{ti},\quad e_{ti} \sim \mathrm{N}(0, \theta / n_{ti}),\qquad
y^*_{ti} = \beta_0 + \sum_k \beta_k B_k(s_{ti}) + \Gamma x_{ti} + u_{0j} + u_{1j} s_{ti} + r_{0i} + a_g
  + \epsilon_{ti},\quad \epsilon_{ti} \sim \mathrm{N}(0, \sigma_{ti}^2)
$$

$$
\log \sigma_{ti} = \alpha_0 + \alpha_1 s_{ti} + \sum_k \alpha_{2k} z_{jk} + \sum_k \alpha_{3k} z_{jk} s_{ti}
  + \sum_l \alpha_{4l} w_{il} + \sum_l \alpha_{5l} w_{il} s_{ti} + v_{0j} + v_{1j} s_{ti}
$$

$$
L_i \sim \mathrm{N}\!\left(\eta_0 + \eta_1 S_j + \eta_2 \log C_j + \eta_3 S_j \log C_j + b_j,\ \sigma_L^2\right),
\qquad b_j \sim \mathrm{N}(0, \tau_L^2)
$$

$\alpha_1 < 0$ (``alpha_time``) is consensus emergence: the latent within-community spread shrinks over sessions.
$z_{jk}$ are standardised composition predictors (:mod:`lcbayes.data.composition`; $\alpha_{2k}$, $\alpha_{3k}$:
``alpha_composition``, ``alpha_composition_time``: does composition speed or slow emergence), $w_{il}$ standardised
member traits (``alpha_trait``, ``alpha_trait_time``) and $(v_{0j}, v_{1j})$ optional community-specific emergence,
correlated with the community's location effects $(u_{0j}, u_{1j})$ in one LKJ group (``tau_community``,
``corr_community``). The item error variance $\theta$ comes from the scale's items
(:class:`~lcbayes.models.components.MeasurementError`), so $\alpha$ and $\sigma$ refer to latent spread.

Per community and session (:meth:`ConsensusEmergence.grids`): climate strength $S_j(t)$ (``strength``, the latent
community mean); the consensus estimand $V_{jt}$, the whole latent within-community variance (participant,
organization, residual and predictor parts, :func:`~lcbayes.processes.within_community_variance`), as
$C_{jt} = \sqrt{V_{jt}}$ (``consensus_sd``), with the residual part alone as ``transient_sd``; agreement indices
implied by $V_{jt}$ (:func:`~lcbayes.processes.consensus_indices`, $r^*_{wg(J)}$ by default) and time to consensus as
a posterior survival curve. The learning outcome $L_i$ of a participant is regressed on the strength and log
consensus SD of their community at the last session ($\eta$: ``eta``, ``eta_centred``; $\sigma_L$, $\tau_L$:
``sigma_learning``, ``tau_learning_community``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from lcbayes import plots, tables
from lcbayes.agreement import NAMED_NULLS, null_variance
from lcbayes.cv import compare_loo
from lcbayes.data.composition import community_composition, standardize
from lcbayes.data.study import Study
from lcbayes.errors import ConfigError, LcbayesWarning
from lcbayes.models import formula
from lcbayes.models.base import BayesModel, Conclusion, ReportContent, on_fit
from lcbayes.models.climate import LOCATION_OPTIONS, ClimateModel
from lcbayes.models.components import GroupEffects, MeasurementError, fill_missing
from lcbayes.models.formula import COLUMNS as FORMULA_COLUMNS
from lcbayes.models.formula import FormulaTerms
from lcbayes.models.marginal import intercept_posterior
from lcbayes.models.priors import GROUP, MEAN, SPREAD, Prior, half_normal, slope_prior
from lcbayes.processes import climate_log_sd, consensus_indices, learning_mean, normal_logpdf, within_community_variance
from lcbayes.sampling import CompiledModel
from lcbayes.tables import describe

COMPOSITION_COLUMNS = ("size", "n_organizations", "largest_org_share")
OUTCOME_TERMS = ["intercept", "strength", "consensus", "strength_x_consensus"]
SCALE_TERMS = ("scale_intercept", "scale_slope")
LOG_SD_CHANGE = 0.5     # prior SD of the change of the log residual SD over the study (alpha1 x span)
LOG_SD_EFFECT = 0.2     # prior SD of a composition or trait effect on the log residual SD, per SD
CUT_DRAWS = 250          # least stage-2 draws per chain and imputation of the cut fit (more when stage 1 has more)
CEILING_WARNING = 0.10   # share of scores at a bound in some session above which the report warns
INDEX_LABELS = {"rstar": "r*_wg(J) (Lindell et al. 1999)", "rwg_j": "r_wg(J) (J-inflated)",
                "scale": "scale-level index 1 - V / (sigma_E^2 / J) (single score: item error not separated)"}


def eta_average(eta: xr.DataArray, s_bar: Any, c_bar: Any) -> xr.DataArray:
    """The outcome model at strength ``s_bar`` and log consensus_sd ``c_bar`` from its uncentred coefficients ``eta``
    (over ``outcome_term``): the expected outcome there, the effect of strength at ``c_bar``, the effect of log
    consensus_sd at ``s_bar``, and the interaction (over ``outcome_term``)."""
    e0, e1, e2, e3 = (eta.isel(outcome_term=k, drop=True) for k in range(4))
    return xr.concat([learning_mean((e0, e1, e2, e3), s_bar, c_bar), e1 + e3 * c_bar, e2 + e3 * s_bar, e3],
                     dim=eta["outcome_term"])


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
    - ``scale_traits``: participant-level traits w_i in the scale model (standardised), with
      ``scale_traits_time`` (default true) their interaction with time, alpha5;
    - ``community_scale``: community-specific emergence (v0j, v1j), correlated with the community's location effects;
    - ``measurement_error``: ``"auto"`` (the items' error variance when the outcome is a scale with items, else none),
      ``"items"`` (theta fixed at its estimate from the items), ``"estimate"`` (theta a parameter informed by the
      items), ``"none"``;
    - ``consensus_index``: ``"auto"`` (``rstar`` with items, ``scale`` without), ``"rstar"``, ``"rwg_j"``, ``"scale"``;
      ``consensus_null``: the random-response null, ``"uniform"`` or one of ``agreement.NAMED_NULLS``;
      ``consensus_threshold``: the index value that defines consensus (0.7); ``scale_points``: A of the A-point
      items (0: from the roles);
    - ``learning``: participant-level learning outcome for the outcome submodel ("" = none); it needs
      ``community_scale`` (consensus must be able to vary beyond composition) unless
      ``composition_implied_spread`` is set, which labels the term as such; ``cut``: fit it in two stages, so that
      the learning data do not inform the climate part (:meth:`_cut`, ``cut_imputations`` refits);
    - ``own_perception``: add the participant's own stable perception deviation r0i to the learning equation
      (eta_own; shared climate beyond individual climate), integrated over its conditional posterior;
    - ``censored``: scores at the response scale's bounds are censored there (a ceiling/floor sensitivity variant;
      participant effects are then sampled, which is slower).
    """

    name = "consensus_emergence"
    over_sessions = ("beta_time", "alpha_time", "alpha_composition_time", "alpha_trait_time")
    option_defaults: ClassVar[dict[str, Any]] = {
        **LOCATION_OPTIONS, "participant_slopes": False, "emergence": True, "composition": [], "scale_traits": [],
        "scale_traits_time": True, "community_scale": False, "measurement_error": "auto", "learning": "",
        "composition_implied_spread": False, "scale_points": 0, "consensus_index": "auto",
        "consensus_null": "uniform", "consensus_threshold": 0.7, "cut": False, "cut_imputations": 20,
        "censored": False, "own_perception": False, "scale": ""}
    cell_vars = ClimateModel.cell_vars + ("learning_loglik", "learning_expected")
    prediction_kinds = ("expected", "predictive", "consensus")
    scale_extra: FormulaTerms | None = None   # the option scale's formula terms
    derived_needs_grids = True

    def prepare(self) -> None:
        o, study = self.options, self.study
        self._cut_models: dict[int, CompiledModel] = {}     # stage 2 of the cut fit, by draws per chain
        self.prepare_parts(bool(o["participant_slopes"]), SCALE_TERMS if o["community_scale"] else ())
        fitted = self.reference
        self.error = MeasurementError.of(self.panel, self.spec.outcome, str(o["measurement_error"])) \
            if not isinstance(fitted, ConsensusEmergence) else fitted.error and fitted.error.on(self.panel,
                                                                                              self.spec.outcome)
        self.composition_names = list(o["composition"])
        self.composition_traits = [c.rsplit("_", 1)[0] for c in self.composition_names if c not in COMPOSITION_COLUMNS]
        comp = community_composition(study, sorted(set(self.composition_traits)))
        unknown = [c for c in self.composition_names if c not in comp]
        if unknown:
            raise ConfigError(f"unknown composition predictor(s) {unknown}; available: {', '.join(comp)}.")
        basis = comp if fitted is None else community_composition(fitted.study, sorted(set(self.composition_traits)))
        by = basis[self.composition_names]
        standardize(by)   # a constant or undefined predictor: a typed error
        z = (comp[self.composition_names] - by.mean()) / by.std(ddof=0)    # z-scores over the fitted communities
        undefined = z.index[z.isna().any(axis=1)].tolist()
        if undefined and fitted is not None:
            warnings.warn(f"composition predictor(s) {self.composition_names} are undefined for community(ies) "
                          f"{undefined} of the new data (fewer than two members with the trait); they are taken at "
                          "the fitted communities' mean composition.", LcbayesWarning, stacklevel=2)
            z = z.fillna(0.0)
        elif undefined:
            raise ConfigError(f"composition predictor(s) {self.composition_names} are undefined for community(ies) "
                              f"{undefined} (e.g. a trait SD of a community with one rated member). Fix: give each "
                              "community two or more members with the trait.")
        self.z = z.to_numpy(dtype=float)   # (J, 0) without predictors
        self.scale_trait_names = list(o["scale_traits"])
        cols = []
        for name in self.scale_trait_names:
            if study.roles.level_of(name) != "participant":
                raise ConfigError(f"scale trait '{name}' is session-level; scale_traits must be participant-level.")
            v, by = study.participant_values(name).to_numpy(), self.fitted_study.participant_values(name).to_numpy()
            cols.append((v - np.nanmean(by)) / np.nanstd(by))
        self.w = np.column_stack(cols) if cols else np.zeros((study.n("participant"), 0))
        self.n_options = int(o["scale_points"]) or self._options_from_roles()
        if o["censored"]:
            scale_range = self._scale_range()
            if scale_range is None:
                raise ConfigError(f"censored = true needs the response range of '{self.spec.outcome}'. Fix: declare "
                                  "range = [low, high] for it in the roles.")
            self.bounds = (float(scale_range[0]), float(scale_range[1]))
        self.scale_extra = FormulaTerms.parse("scale", o["scale"], self.panel, self.spec.outcome,
                                              fitted.scale_extra if isinstance(fitted, ConsensusEmergence) else None)
        self._prepare_consensus()
        self.learning = str(o["learning"])
        if self.learning:
            self._prepare_learning()

    def _scale_range(self) -> tuple[int, int] | None:
        roles, outcome = self.study.roles, self.spec.outcome
        return roles.scales[outcome].range if outcome in roles.scales else roles.variables[outcome].range

    def _options_from_roles(self) -> int:
        r = self._scale_range()
        return r[1] - r[0] + 1 if r else 0

    def bounds_share(self) -> pd.DataFrame:
        """Share of the observed scores at the response scale's lower and upper bound, per session (``at_lower``,
        ``at_upper``; empty without a declared range). Scores piled up at a bound shrink the observed spread
        mechanically as the mean moves towards it (a ceiling), which looks like consensus emergence."""
        r = self._scale_range()
        if r is None:
            return pd.DataFrame(columns=["at_lower", "at_upper"])
        t = self.study.table
        y = t[self.spec.outcome]
        return pd.DataFrame({"at_lower": (y <= r[0]).groupby(t["session"]).mean(),
                             "at_upper": (y >= r[1]).groupby(t["session"]).mean()})

    def _prepare_consensus(self) -> None:
        """Members (averaging matrix), organization concentration and the agreement index settings."""
        o = self.options
        comm = self.panel.community
        counts = np.bincount(comm, minlength=self.study.n("community")).astype(float)
        self.members = (np.arange(len(counts))[:, None] == comm[None, :]) / counts[:, None]     # (J, P), rows sum to 1
        self.org_concentration = np.zeros(len(counts))                    # sum_o p_jo^2 per community
        if self.location.use_org:
            shares = pd.crosstab(comm, self.panel.organization).to_numpy() / counts[:, None]
            self.org_concentration = (shares**2).sum(axis=1)
        index = str(o["consensus_index"])
        if index not in ("auto", *INDEX_LABELS):
            raise ConfigError(f"option consensus_index must be auto, {', '.join(INDEX_LABELS)}; got {index!r}.")
        if index in ("rstar", "rwg_j") and self.error is None:
            raise ConfigError(f"consensus_index = '{index}' needs the item error variance, which this fit does not "
                              "have (a single-score outcome or measurement_error = 'none'). Fix: consensus_index = "
                              "'scale' (or 'auto').")
        self.index = index if index != "auto" else ("rstar" if self.error else "scale")
        null = o["consensus_null"]
        if isinstance(null, str) and null != "uniform" and null not in NAMED_NULLS:
            raise ConfigError(f"option consensus_null must be 'uniform' or one of {sorted(NAMED_NULLS)}, got {null!r}.")
        self.null_variance = null_variance(self.n_options, null) if self.n_options else None
        items = self.study.items.get(self.spec.outcome)
        self.n_items = items.shape[1] if items is not None else 1        # J of the scale score (1: a single item)
        if isinstance(self.reference, ConsensusEmergence):
            self.n_items = self.reference.n_items
        if not 0 < float(o["consensus_threshold"]) < 1:
            raise ConfigError(f"option consensus_threshold must lie in (0, 1), got {o['consensus_threshold']!r}.")

    def _prepare_learning(self) -> None:
        o, study = self.options, self.study
        if study.roles.level_of(self.learning) != "participant":
            raise ConfigError(f"learning outcome '{self.learning}' must be participant-level.")
        varies = bool(self.composition_names or self.scale_trait_names or self.location.use_org)
        if not o["community_scale"] and not (o["composition_implied_spread"] and varies):
            raise ConfigError(
                "the learning outcome needs consensus that can vary across communities beyond their composition: "
                "with community_scale = false, consensus is a function of the composition predictors "
                + ("alone, so its effect is the composition's. " if varies else
                   "and, here, the same in every community (its effect is not identified). ")
                + "Fix: set community_scale = true" + (", or set composition_implied_spread = true to estimate the "
                                                       "effect of the composition-implied spread" if varies else "")
                + ".")
        if o["own_perception"] and o["cut"]:
            raise ConfigError("own_perception is available in the joint fit only (cut = false): the deviation r0i "
                              "is part of the climate model. Fix: set one of them to false.")
        v = study.participant_values(self.learning).to_numpy()
        self.learning_mask = (~np.isnan(v)).astype(float)
        self.learning_values = np.nan_to_num(v)

    @property
    def measures(self) -> list[str]:
        extra = self.scale_trait_names + self.composition_traits + ([self.learning] if self.learning else [])
        extra += [v for v in self.scale_extra.variables if v not in FORMULA_COLUMNS] if self.scale_extra else []
        return list(dict.fromkeys(super().measures + extra))

    @property
    def item_measures(self) -> list[str]:
        return [self.spec.outcome] if self.error else []

    @property
    def coords(self) -> dict[str, list]:
        return {**super().coords, "composition": self.composition_names, "scale_trait": self.scale_trait_names,
                "outcome_term": OUTCOME_TERMS, **(self.scale_extra.coords() if self.scale_extra else {})}

    @property
    def learning_communities(self) -> GroupEffects:
        """The community residual b_j of the learning outcome."""
        return GroupEffects("learning_community", "community")

    def default_priors(self) -> dict[str, Prior]:
        """Location and participant priors as in :class:`ClimateGrowth`; the scale part on the log-SD scale, from the
        outcome's half range h and the span of s over the study: alpha0 ~ N(log(h/5), 0.4) (a latent residual SD
        of 0.4 on a 1-5 scale, 0.18 to 0.88 within two prior SDs); alpha1 ~ N(0, 0.5 / span), a change of the log SD
        over the study of about 0.5 (a factor 1.6); composition and trait effects N(0, 0.2) per SD and their
        interactions with time N(0, 0.2 / span); SDs of v0j, v1j half-normal(0.2) and half-normal(0.2 / span),
        correlated with u0j, u1j (LKJ). Estimated item error: theta ~ half-normal(sigma_E^2). Outcome submodel
        (:meth:`_learning_priors`)."""
        loc = self.location
        span = loc.span()
        priors = {**loc.priors(), **self.participants.priors(loc.scale, span)}
        priors["alpha_intercept"] = Prior("Normal", {"mu": float(np.log(SPREAD * loc.scale.half)), "sigma": 0.4})
        if self.options["emergence"]:
            priors["alpha_time"] = Prior("Normal", {"mu": 0.0, "sigma": LOG_SD_CHANGE / span})
        if self.composition_names:
            priors["alpha_composition"] = Prior("Normal", {"mu": 0.0, "sigma": LOG_SD_EFFECT})
            priors["alpha_composition_time"] = Prior("Normal", {"mu": 0.0, "sigma": LOG_SD_EFFECT / span})
        if self.scale_trait_names:
            priors["alpha_trait"] = Prior("Normal", {"mu": 0.0, "sigma": LOG_SD_EFFECT})
            if self.options["scale_traits_time"]:
                priors["alpha_trait_time"] = Prior("Normal", {"mu": 0.0, "sigma": LOG_SD_EFFECT / span})
        if self.scale_extra:   # N(0, 0.2 per SD of each formula column)
            priors["alpha_scale"] = Prior("Normal", {"mu": 0.0, "sigma": list(LOG_SD_EFFECT / self.scale_extra.sd)})
        if self.options["community_scale"]:
            location = [GROUP * loc.scale.half, GROUP * loc.scale.half / span][: 1 + loc.slopes]
            priors.update(loc.communities.priors(location + [LOG_SD_EFFECT, LOG_SD_EFFECT / span], loc.lkj_eta))
        if self.error:
            priors.update(self.error.theta_prior(self.null_variance or 1.0))
        if self.learning:
            priors.update(self._learning_priors())
        return priors

    def _learning_priors(self) -> dict[str, Prior]:
        """On the learning outcome's natural scale (middle m_L, half range h_L; its SD unit sd_L = h_L / 2):
        eta_centred intercept N(m_L, h_L/4); per *latent* between-community SD of strength (sd_S) and of log
        consensus_sd (sd_C), N(0, 0.5 sd_L) for the main effects and N(0, 0.25 sd_L) per sd_S sd_C for the product;
        community residual SD half-normal(h_L/8); residual SD half-normal(h_L/5); eta_own N(0, h_L / h). The latent
        spreads are method-of-moments estimates from the last session (observed spread minus its sampling variance,
        at least h/50 and 0.1), so the same data always get the same priors."""
        scale = self.study.response_range(self.learning)
        sd_l = scale.half / 2
        sd_strength, sd_log_c = self._latent_spreads()
        own = {"eta_own": slope_prior(scale.half, self.location.scale.half, share=1.0)} \
            if self.options["own_perception"] else {}
        sigma = [MEAN * scale.half, 0.5 * sd_l / sd_strength, 0.5 * sd_l / sd_log_c,
                 0.25 * sd_l / (sd_strength * sd_log_c)]
        return {"eta_centred": Prior("Normal", {"mu": [scale.mid, 0.0, 0.0, 0.0], "sigma": sigma}),
                **self.learning_communities.priors(GROUP * scale.half, 1.0), **own,
                "sigma_learning": half_normal(SPREAD * scale.half)}

    def _last_session(self) -> pd.DataFrame:
        """Observed mean, variance and size of each community at the last session."""
        t = self.study.table
        g = t[t["session"] == t["session"].max()].groupby("community")[self.spec.outcome]
        return pd.DataFrame({"mean": g.mean(), "var": g.var(), "n": g.count()}).reindex(self.coords["community"])

    def _latent_spreads(self) -> tuple[float, float]:
        """Method-of-moments between-community SDs of latent strength and of log consensus_sd at the last session."""
        last = self._last_session().dropna()
        last = last[last["n"] >= 2]
        var_s = last["mean"].var() - (last["var"] / last["n"]).mean() if len(last) > 1 else 0.0
        log_sd = 0.5 * np.log(last["var"].clip(lower=1e-12))
        var_c = log_sd.var() - (1 / (2 * (last["n"] - 1))).mean() if len(last) > 1 else 0.0
        floor = self.location.scale.half / 50
        return max(float(np.sqrt(max(var_s, 0.0))), floor), max(float(np.sqrt(max(var_c, 0.0))), 0.1)

    def _centres(self) -> tuple[float, float]:
        """Constants at which eta_centred centres strength and log consensus_sd: the observed mean climate at the last
        session and the log of the mean observed within-community SD there, less the item error (the reference's, for
        a model built on new data)."""
        if isinstance(self.reference, ConsensusEmergence):
            return self.reference._centres()
        last = self._last_session()
        error = self.error.theta_hat / self.error.n_items if self.error else 0.0
        var = max(float(last["var"].mean()) - error, 1e-6)
        return float(last["mean"].mean()), 0.5 * float(np.log(var))

    def build(self) -> pm.Model:
        with pm.Model(coords=self.coords) as model:
            mu, log_sigma = self.build_climate()
            if self.learning and not self.options["cut"]:
                self._learning_outcome(model, mu, log_sigma)
        return model

    def cut_model(self, draws: int = CUT_DRAWS) -> CompiledModel:
        """Stage 2 of the cut fit: the outcome submodel with the communities' strength and log consensus_sd as data
        (``cut_strength``, ``cut_log_consensus``), compiled once per number of ``draws`` per chain (2 chains)."""
        if draws not in self._cut_models:
            with pm.Model(coords=self.coords) as model:
                pm.Data("community_of", self.panel.community, dims="participant")
                strength = pm.Data("cut_strength", np.zeros(self.study.n("community")), dims="community")
                log_c = pm.Data("cut_log_consensus", np.zeros(self.study.n("community")), dims="community")
                self._learning_part(model, strength, log_c)
            settings = self.spec.sampler.updated(chains=2, tune=500, draws=draws, target_accept=0.9)
            self._cut_models[draws] = CompiledModel(model, settings,
                                                    [v.name for v in model.free_RVs] + ["eta", "u_learning_community"])
        return self._cut_models[draws]

    def _cut(self, post: xr.Dataset, strength: xr.DataArray, consensus_sd: xr.DataArray) -> xr.Dataset:
        """The outcome submodel fitted without feeding back into the climate part (a "cut", Plummer 2015): for
        ``cut_imputations`` stage-1 draws spread over the posterior, the outcome model is refitted with that draw's
        strength and log consensus_sd at the last session as data; the stage-2 draws of all refits together (nested
        multiple imputation) take the place of the joint fit's eta, eta_centred, eta_average, sigma_learning and the
        community residuals, laid out as the stage-1 (chain, draw), imputations interleaved."""
        n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
        m = int(self.options["cut_imputations"])
        per = -(-n_chain * n_draw // m)                  # stage-2 draws kept per imputation
        stage2 = self.cut_model(max(CUT_DRAWS, -(-per // 2)))   # 2 chains with at least ``per`` draws together
        flat = np.linspace(0, n_chain * n_draw - 1, m).astype(int)
        last = {name: x.isel(session=-1).stack(sample=("chain", "draw")).transpose("sample", "community").values
                for name, x in (("S", strength), ("C", consensus_sd))}
        S, C = last["S"], np.log(last["C"])
        parts = []
        for k, i in enumerate(flat):
            fit = stage2.sample({"cut_strength": S[i], "cut_log_consensus": C[i]},
                                        seed=self.spec.sampler.seed + 1 + k)["posterior"].to_dataset()
            fit = fit.stack(sample=("chain", "draw")).transpose("sample", ...).isel(sample=slice(0, per))
            fit = fit.drop_vars(["sample", "chain", "draw"])
            fit["eta_average"] = eta_average(fit["eta"], S[i].mean(), C[i].mean())
            parts.append(fit)
        # interleaved (draw 0 of every imputation, then draw 1...), so that each chain mixes all imputations
        draws = xr.concat(parts, dim="imputation").transpose("sample", "imputation", ...)
        draws = draws.stack(flat=("sample", "imputation")).transpose("flat", ...).drop_vars(["flat", "sample",
                                                                                             "imputation"])
        draws = draws.rename(flat="sample").isel(sample=slice(0, n_chain * n_draw))
        keep = ["eta", "eta_centred", "eta_average", "sigma_learning", *self.learning_communities.population,
                "u_learning_community"]
        index = pd.MultiIndex.from_product([post["chain"].values, post["draw"].values], names=["chain", "draw"])
        out = draws[keep].assign_coords(xr.Coordinates.from_pandas_multiindex(index, "sample")).unstack("sample")
        return out.transpose("chain", "draw", ...)

    def log_sigma(self, s: pt.TensorVariable) -> pt.TensorVariable:
        """log sigma_tij = alpha0 + alpha1 s + alpha2 z_j + alpha3 z_j s + alpha4 w_i + alpha5 w_i s [+ v0j + v1j s]
        [+ sum_k alpha_scale_k X_k,tij, the option scale's formula terms]."""
        c = pm.modelcontext(None)["community_of"]
        alpha0 = self.prior("alpha_intercept")
        alpha1 = self.prior("alpha_time") if self.options["emergence"] else None
        composition = composition_time = trait = trait_time = v0 = v1 = None
        if self.composition_names:
            z = pm.Data("composition_z", self.z, dims=("community", "composition"))[c]
            composition = (z * self.prior("alpha_composition", dims="composition")).sum(-1)[:, None]
            composition_time = (z * self.prior("alpha_composition_time", dims="composition")).sum(-1)[:, None]
        if self.scale_trait_names:
            w = fill_missing("scale_traits", self.w, lambda dim: pm.Normal("scale_trait_missing", 0.0, 1.0, dims=dim))
            trait = (w * self.prior("alpha_trait", dims="scale_trait")).sum(-1)[:, None]
            if self.options["scale_traits_time"]:
                trait_time = (w * self.prior("alpha_trait_time", dims="scale_trait")).sum(-1)[:, None]
        if self.options["community_scale"]:
            k = 1 + self.location.slopes
            v = pm.modelcontext(None)["u_community"]
            v0, v1 = v[c, k][:, None], v[c, k + 1][:, None]
        log_sd = climate_log_sd(alpha0, s, alpha1, composition, composition_time, trait, v0, v1, trait_time)
        if self.scale_extra:
            log_sd = log_sd + self.scale_extra.term(self.priors)
        return pt.broadcast_to(log_sd, self.panel.shape)

    def _within_parts(self, source: Any, mu: Any, log_sigma: Any, s: Any) -> tuple[Any, ...]:
        """The parts of V_jt (:func:`~lcbayes.processes.within_community_variance`) from ``source``: the PyMC model
        with ``mu``, ``log_sigma`` (P,) tensors at one session, or posterior draws with (chain, draw, participant,
        session) DataArrays. Returns (participant, organization, residual, predictors); absent parts are None."""
        draws = isinstance(source, xr.Dataset)
        mean: Any
        exp: Any
        concentration: Any
        org_of: Any
        if draws:
            members = xr.DataArray(self.members, dims=("community", "participant"),
                                   coords={"community": self.coords["community"]})
            mean, exp = (lambda x: xr.dot(members, x, dim="participant")), np.exp
            concentration = members[:, 0].copy(data=self.org_concentration)
            org_of = xr.DataArray(self.panel.organization if self.location.use_org else [], dims="participant")
        else:
            mean, exp = (lambda x: (self.members * x[None, :]).sum(1)), pt.exp
            concentration, org_of = self.org_concentration, self.panel.organization
        participant = self.participants.effects.variance(source, (1.0, s)[: 1 + self.participants.slopes])
        residual = mean(exp(2 * log_sigma))
        organization = predictors = None
        if self.location.use_org:
            organization = source["tau_organization"] ** 2 * (1 - concentration)
        if self.location.predictors.trait_names or self.location.predictors.tv_names:
            x = mu
            if self.location.use_org:
                o = source["u_organization"]
                x = mu - (o.isel(organization=org_of, drop=True) if draws else o[org_of])
            predictors = mean(x**2) - mean(x) ** 2
        return participant, organization, residual, predictors

    def _learning_outcome(self, model: pm.Model, mu: Any, log_sigma: Any) -> None:
        """The outcome submodel on the graph's strength and consensus_sd at the last session (the joint fit)."""
        s_last = float(self.session_times()[-1])
        strength = self.location.strength_at(model, s_last, int(self.coords["session"][-1]))
        V = within_community_variance(*self._within_parts(model, mu[:, -1], log_sigma[:, -1], s_last))
        self._learning_part(model, strength, 0.5 * pt.log(V), self._own_perception(model, mu))

    def _own_perception(self, model: pm.Model, mu: Any) -> tuple[Any, Any] | None:
        """Mean and variance of each participant's intercept deviation r0i given the climate data (the sampled value
        and 0 when the participant effects are sampled), or None without ``own_perception``."""
        if not self.options["own_perception"]:
            return None
        if self.bounds is not None:
            return model["u_participant"][:, 0], 0.0
        tau = model["tau_participant"]
        slopes = self.participants.slopes
        log_sigma = model["log_sigma_observed" if self.error else "log_sigma"]
        return intercept_posterior(model["y"] - mu, model["mask"], log_sigma, model["s"], tau[0],
                                   tau[1] if slopes else None, model["corr_participant"][0] if slopes else 0.0, xp=pt)

    def _learning_part(self, model: pm.Model, strength: Any, log_c: Any, own: tuple[Any, Any] | None = None) -> None:
        """learning_i ~ N(eta0 + eta1 S_j + eta2 log C_j + eta3 S_j log C_j + b_j [+ eta_own r0i], sigma_L), S_j the
        community's strength and C_j its consensus_sd at the last session (``strength``, ``log_c``: (J,), centred at
        :meth:`_centres`). ``own``: the mean m_i and variance v_i of r0i given the climate data; r0i integrated out,
        the term adds eta_own m_i to the mean and eta_own^2 v_i to the variance (exact for the Gaussian model)."""
        s_bar, c_bar = self._centres()
        eta = self.prior("eta_centred", dims="outcome_term")
        c = model["community_of"]
        b = self.learning_communities.effects(self.priors)
        mean = learning_mean((eta[0], eta[1], eta[2], eta[3]), (strength - s_bar)[c], (log_c - c_bar)[c]) + b[c]
        sigma_l = self.prior("sigma_learning")
        if own is not None:
            eta_own = self.prior("eta_own")
            mean, sigma_l = mean + eta_own * own[0], pt.sqrt(sigma_l**2 + eta_own**2 * own[1])
        pm.Deterministic("learning_expected", mean, dims="participant")
        y = pm.Data("learning", self.learning_values, dims="participant")
        m = pm.Data("learning_mask", self.learning_mask, dims="participant")
        loglik = m * normal_logpdf(y - mean, sigma_l, log=pt.log)
        pm.Potential("learning_likelihood", loglik.sum())
        pm.Deterministic("learning_loglik", loglik, dims="participant")
        pm.Deterministic("eta", pt.stack([
            eta[0] - eta[1] * s_bar - eta[2] * c_bar + eta[3] * s_bar * c_bar,
            eta[1] - eta[3] * c_bar, eta[2] - eta[3] * s_bar, eta[3]]), dims="outcome_term")

    @property
    def learning_parameters(self) -> list[str]:
        """The learning outcome's population parameters (none without a learning outcome)."""
        if not self.learning:
            return []
        names = ["eta_centred", "eta", "sigma_learning"] + self.learning_communities.population
        return names + (["eta_own"] if self.options["own_perception"] else [])

    def parameter_role(self, name: str) -> str:
        """Besides the shared roles: the scale part (log SD: alpha, item error theta) and the learning outcome's
        effects and spreads."""
        if name in self.learning_parameters:
            return "learning outcome"
        if name.startswith("alpha_") or name == "theta_items":
            return "spread (log-SD model)"
        return super().parameter_role(name)

    @property
    def population(self) -> list[str]:
        names = self.location.population + self.participants.effects.population
        names += [n for n in self.priors if n.startswith("alpha_") or n == "theta_items"]   # scale part
        return names + self.learning_parameters

    @property
    def calibration_targets(self) -> list[str]:
        """The population parameters and the community means of consensus_sd and of the consensus index at the last
        session (``consensus_sd_last``, ``consensus_index_last``)."""
        return self.population + ["consensus_sd_last"] + (["consensus_index_last"] if self.null_variance else [])

    @staticmethod
    def _last_means(consensus: Mapping[Any, xr.DataArray]) -> dict[str, xr.DataArray]:
        names = {"consensus_sd_last": "consensus_sd", "consensus_index_last": "consensus_index"}
        return {k: consensus[v].isel(session=-1, drop=True).mean("community") for k, v in names.items()
                if v in consensus}

    def prior_study(self, seed: int) -> tuple[Study, xr.Dataset]:
        """As :meth:`ClimateModel.prior_study`, with the learning outcome (when the model has one) drawn from the
        outcome submodel at the same prior draw, and the truth of :attr:`calibration_targets`."""
        if self.learning and self.options["cut"]:
            raise ConfigError("simulation-based calibration of a cut fit is not available (the cut is not one "
                              "generative model). Fix: calibrate the joint model (cut = false).")
        study, truth = super().prior_study(seed)
        draw = truth.expand_dims(chain=[0], draw=[0])
        truth = truth.assign({k: v.isel(chain=0, draw=0, drop=True)
                              for k, v in self._last_means(self.consensus(draw, draw)).items()})
        if self.learning:
            rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
            values = truth["learning_expected"].values
            values = values + float(truth["sigma_learning"]) * rng.standard_normal(values.shape)
            rows = values[self.study.idx["participant"]]
            rows[np.isnan(self.study.values(self.learning))] = np.nan
            study = study.with_values({self.learning: rows})
        return study, truth

    @property
    def threshold(self) -> float:
        return float(self.options["consensus_threshold"])

    def consensus(self, post: xr.Dataset, cells: xr.Dataset) -> dict[str, xr.DataArray]:
        """``consensus_sd``, ``transient_sd``, the indices and ``consensus_reached_by`` per draw, community and
        session from the posterior ``post`` and its cell deterministics ``cells`` (mu, latent log_sigma)."""
        s = self.session_grid()
        parts = self._within_parts(post, cells["mu"], cells["log_sigma"], s)
        V = within_community_variance(*parts).transpose("chain", "draw", "community", "session")
        out = {"consensus_sd": np.sqrt(V), "transient_sd": np.sqrt(parts[2]).transpose(*V.dims)}
        if self.null_variance is None:
            return out
        theta = self.error.theta(post) if self.error else None
        indices = consensus_indices(V, theta, self.null_variance, self.n_items)
        out.update({f"consensus_{k}": v.transpose(*V.dims) for k, v in indices.items()})
        index = out[f"consensus_{self.index}"]
        index.attrs.update(index=self.index, label=INDEX_LABELS[self.index], threshold=self.threshold)
        out["consensus_index"] = index
        reached = (index >= self.threshold).astype(float)
        out["consensus_reached_by"] = reached.cumsum("session").clip(max=1)
        out["consensus_time"] = self._crossing_time(index)
        return out

    def _crossing_time(self, index: xr.DataArray) -> xr.DataArray:
        """Continuous time to consensus per draw and community, in session units: where the index first rises through
        the threshold between two sessions, linear interpolation; if it has not reached it by the last session but
        rises over the last interval (the spread declines), linear extrapolation, at most one study length past the
        last session (attribute ``last_session``: later values are extrapolations); otherwise +inf (censored: not
        reached). At consensus from the first session: the first session (left-censored)."""
        c, x = self.threshold, index.values                                      # (chain, draw, J, T)
        labels, s = np.asarray(self.coords["session"], dtype=float), self.session_times()
        above = x >= c
        first = np.argmax(above, axis=-1)
        time = np.full(x.shape[:-1], np.inf)
        k = np.clip(first - 1, 0, None)
        lo = np.take_along_axis(x, k[..., None], -1)[..., 0]
        hi = np.take_along_axis(x, first[..., None], -1)[..., 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(first > 0, (c - lo) / (hi - lo), 0.0)
            inside = s[k] + frac * (s[first] - s[k])
            slope = (x[..., -1] - x[..., -2]) / (s[-1] - s[-2])
            ahead = s[-1] + (c - x[..., -1]) / slope
        time = np.where(above.any(axis=-1), inside, time)
        extrapolate = ~above.any(axis=-1) & (slope > 0) & (ahead <= s[-1] + (s[-1] - s[0]))
        time = np.where(extrapolate, ahead, time)
        step = (labels[-1] - labels[0]) / (s[-1] - s[0]) if s[-1] > s[0] else 1.0
        sessions = labels[0] + (time - s[0]) * step    # model time -> session units (linear; exact for session time)
        return xr.DataArray(sessions, dims=index.dims[:-1], coords={k: index.coords[k] for k in index.dims[:-1]},
                            attrs={"last_session": float(labels[-1])})

    def predicted(self, posterior: xr.Dataset, kind: str, seed: int, fitted: BayesModel | None,
                  new_groups: str) -> dict[str, xr.DataArray]:
        """Besides the expected and predictive scores (:meth:`ClimateModel.predicted`), ``kind = "consensus"``: per
        community and session, ``strength``, ``consensus_sd``, ``transient_sd`` and, where the model has them, the
        agreement indices (``consensus_index`` and the rest of :meth:`grids`), computed from the members the data
        give each community."""
        if kind != "consensus":
            return super().predicted(posterior, kind, seed, fitted, new_groups)
        grids = self.grids(posterior)
        return {str(name): grids[name].transpose("chain", "draw", "community", "session") for name in grids.data_vars
                if set(grids[name].dims) == {"chain", "draw", "community", "session"}}

    def effect_surface(self, kind: str, over: str, by: str | None, effect_of: str | None,
                       values: Any, levels: Any, points: int) -> xr.DataArray | None:
        """``kind = "learning"``: the expected learning outcome eta0 + eta1 S + eta2 log C + eta3 S log C over latent
        ``strength`` S and ``consensus_sd`` C at the last session (``over``, ``by``: these two), or its slope in
        ``effect_of`` (per point of strength, or per unit of log consensus_sd). Default grids: ``points`` values over
        the range of the communities' posterior means (consensus_sd evenly on the log scale); levels: the medians of
        their lower, middle and upper third."""
        if kind != "learning":
            return None
        names = ("strength", "consensus_sd")
        if not self.learning or over not in names or by not in (*names, None) or effect_of not in (*names, None) \
                or over == by:
            raise ConfigError(f"kind = \"learning\" needs a learning outcome (option learning) and over, by and "
                              f"effect_of among {', '.join(names)} (got over={over!r}, by={by!r}, "
                              f"effect_of={effect_of!r}).")
        post = self.fitted()["posterior"].to_dataset()
        means = {n: np.asarray(post[n].isel(session=-1).mean(("chain", "draw"))) for n in names}

        def grid(name: str, given: Any, count: int | None) -> np.ndarray:
            if given is not None:
                return np.asarray(given, dtype=float)
            low, high = means[name].min(), means[name].max()
            if count is None:
                return np.quantile(means[name], [1 / 6, 1 / 2, 5 / 6])
            return np.geomspace(low, high, count) if name == "consensus_sd" else np.linspace(low, high, count)

        axes = {over: xr.DataArray(grid(over, values, points), dims=over)}
        if by:
            axes[by] = xr.DataArray(grid(by, levels, None), dims=by)
        axes = {n: a.assign_coords({n: a.values}) for n, a in axes.items()}
        eta = post["eta"]
        e0, e1, e2, e3 = (eta.isel(outcome_term=k, drop=True) for k in range(4))
        terms = (e0, e1, e2, e3)
        held = {n: float(np.exp(np.log(means[n]).mean())) if n == "consensus_sd" else float(means[n].mean())
                for n in names}
        strength = axes.get("strength", held["strength"])
        log_c = np.log(axes.get("consensus_sd", held["consensus_sd"]))
        if effect_of == "strength":
            surface = terms[1] + terms[3] * log_c + 0 * strength
        elif effect_of == "consensus_sd":
            surface = terms[2] + terms[3] * strength + 0 * log_c
        else:
            surface = learning_mean(terms, strength, log_c)
        return surface.transpose("chain", "draw", *axes)

    def grids(self, posterior: xr.Dataset) -> xr.Dataset:
        """Per community x session: ``strength``; ``consensus_sd`` (sqrt V_jt) and ``transient_sd`` (its latent
        residual part); ``consensus_rstar`` and ``consensus_rwg_j`` (with items) or ``consensus_scale`` (a single
        score), ``consensus_index`` (the chosen one, option ``consensus_index``) and ``consensus_reached_by`` (1 when
        the index reached the threshold at some session up to this one: its posterior mean is the survival curve
        P(T_j <= t), :func:`~lcbayes.tables.p_consensus_by`); per community ``consensus_time`` (:meth:`consensus`).
        The indices need the number of response options (``scale_points`` or the outcome's range in the roles) and
        are left out when it is unknown."""
        return xr.Dataset({"strength": self.community_trajectories(posterior),
                           **self.consensus(posterior, self._cells(posterior, ["mu", "log_sigma"]))})

    def derived(self, idata: xr.DataTree, grids: xr.Dataset) -> xr.Dataset:
        """The community means of ``consensus_sd`` and ``consensus_index`` at the last session (``consensus_sd_last``,
        ``consensus_index_last``); ``variance`` of the random effects per session (community, participant,
        organization).

        With a learning outcome, ``eta_average`` (outcome_term) holds the outcome model at the communities' average
        latent strength and log consensus_sd at the last session, per draw: the expected outcome there, the effect of
        strength at average consensus, the effect of log consensus_sd at average strength, and the interaction."""
        post = idata["posterior"].to_dataset()
        strength = grids["strength"]
        out = self._last_means(grids)
        var = xr.concat(self.random_effect_variances(post),
                        dim=xr.DataArray(["community", "participant", "organization"], dims="level", name="level"))
        out["variance"] = var.drop_vars([c for c in var.coords if c not in ("chain", "draw", "session", "level")])
        if self.learning and self.options["cut"]:
            return xr.Dataset(out).merge(self._cut(post, strength, grids["consensus_sd"]))
        if self.learning:
            s_bar = strength.isel(session=-1, drop=True).mean("community")
            c_bar = xr.apply_ufunc(np.log, grids["consensus_sd"].isel(session=-1, drop=True)).mean("community")
            out["eta_average"] = eta_average(post["eta"], s_bar, c_bar).transpose("chain", "draw", "outcome_term")
        return xr.Dataset(out)

    def log_likelihood_terms(self) -> xr.Dataset:
        """The outcome's log likelihood per participant and, with a learning outcome, its log
        density per participant who has one (``learning``, over ``learner``)."""
        idata = self.fitted()
        if not self.learning:
            return idata["log_likelihood"].to_dataset()
        logp = self._cells(idata["posterior"].to_dataset(), ["learning_loglik"])["learning_loglik"]
        learners = np.flatnonzero(self.learning_mask > 0)
        logp = logp.isel(participant=learners).rename(participant="learner").drop_vars("learner")
        return idata["log_likelihood"].to_dataset().assign(learning=logp.transpose("chain", "draw", "learner"))

    emergence_evidence = on_fit(tables.emergence_evidence)
    p_consensus_by = on_fit(tables.p_consensus_by)
    consensus_time = on_fit(tables.consensus_time)

    def compare_emergence(self, **sampler: Any) -> pd.DataFrame:
        """LOO (leave one participant out) of this model against the same model without
        emergence (alpha1 = 0), refitted with the same sampler settings."""
        constant = type(self)(self.study, self.spec, emergence=False)
        constant.fit(**sampler)
        return compare_loo({"emergence": self.fitted(), "no_emergence": constant.fitted()})

    def compare_cut(self, **sampler: Any) -> pd.DataFrame:
        """The learning effects at average latent strength and consensus (``eta_average``: mean and 90% HDI) of this
        joint fit beside those of the cut (two-stage) fit of the same model, refitted with the same sampler settings
        (overridable): if they differ, the learning data are shaping the climate estimates they are regressed on."""
        if not self.learning or self.options["cut"]:
            raise ConfigError("compare_cut needs a joint fit with a learning outcome (learning set, cut = false).")
        settings = {**json.loads(self.fitted().attrs["sampler"]), **sampler}
        cut = type(self)(self.study, self.spec, cut=True)
        cut.fit(**settings)
        rows = []
        for label, idata in (("joint", self.fitted()), ("cut", cut.fitted())):
            table = tables.hdi_table(idata["posterior"].to_dataset()["eta_average"]).assign(fit=label)
            rows.append(table[table["outcome_term"] != "intercept"])
        return pd.concat(rows).set_index(["outcome_term", "fit"]).sort_index()

    plot_consensus = on_fit(plots.plot_consensus)
    plot_consensus_by = on_fit(plots.plot_consensus_by)
    plot_strength_consensus = on_fit(plots.plot_strength_consensus)

    def _spread_caveats(self, bounds: pd.DataFrame) -> tuple[str, ...]:
        """The qualifications of every conclusion about spread and consensus: scores at a bound of the scale (a
        ceiling or floor shrinks the spread without agreement; ``bounds``: :meth:`bounds_share`) and spread read
        without item error."""
        out = []
        if len(bounds) and float(bounds.to_numpy().max()) > CEILING_WARNING:
            out.append(f"up to {float(bounds.to_numpy().max()):.0%} of a session's scores lie at a bound of the "
                       "scale: part of a shrinking spread may be a ceiling or floor effect")
        if self.error is None:
            out.append("item measurement error is not separated: the spread includes it")
        return tuple(out)

    def report_content(self) -> ReportContent:
        post = self.fitted()["posterior"].to_dataset()
        derived = {"consensus_sd_mean": post["consensus_sd"].mean("community")}
        bounds = self.bounds_share()
        spread_caveats = self._spread_caveats(bounds)
        out: list[Conclusion | str] = []
        if self.error is None:
            out.append(f"The outcome '{self.spec.outcome}' is analysed without item measurement error ("
                       + ("measurement_error = 'none'" if self.options["measurement_error"] == "none" else
                          "a single score: no items to estimate it from")
                       + "), so spread and consensus include the score's measurement error.")
        if "alpha_time" in post:
            derived["p_emergence"] = (post["alpha_time"] < 0).astype(float)
            p = float((post["alpha_time"] < 0).mean())
            trend = "shrinks" if p >= 0.95 else "grows" if p <= 0.05 else "may or may not change"
            out.append(Conclusion(describe("Emergence, alpha1 (change in log latent residual SD per unit of time)",
                                           post["alpha_time"])
                                  + f". P(alpha1 < 0) = {p:.2f}: the latent residual spread within communities "
                                  f"{trend}.", ("alpha_time",), spread_caveats))
        for name, label in (("alpha_composition_time", "Composition x time, alpha3"),
                            ("alpha_trait_time", "Trait x time, alpha5")):
            if name in post:
                dim = post[name].dims[-1]
                out += [Conclusion(describe(f"{label} ({c}; negative = faster emergence)", post[name].sel({dim: c})),
                                   (f"{name}[{c}]",), spread_caveats) for c in post[dim].values]
        if "eta_average" in post:
            derived["eta_average"] = post["eta_average"]
            spread = ("log composition-implied spread" if self.options["composition_implied_spread"]
                      and not self.options["community_scale"] else "log consensus_sd")
            terms = {"strength": "strength", "consensus": spread, "strength_x_consensus": f"strength x {spread}"}
            implied = (("the consensus term varies between communities only through their composition (scale "
                        "traits, organization mix): read it as the effect of a composition-implied spread, not of "
                        "observed agreement",) if spread.startswith("log composition") else ())
            out += [Conclusion(describe(f"Learning outcome on {terms[t]} (at the communities' average latent strength "
                                        "and consensus)", post["eta_average"].sel(outcome_term=t)),
                               (f"eta_average[{t}]", "eta"), implied if t != "strength" else ())
                    for t in post["outcome_term"].values[1:]]
        if "consensus_index" in post:
            index = post["consensus_index"]
            derived["consensus_index_mean"] = index.mean("community")
            reached = post["consensus_reached_by"].isel(session=-1).mean("community")
            derived["share_reaching_consensus"] = reached
            inflated = ((f"r_wg(J) rises with the number of items (J = {self.n_items} here) for the same item "
                         "agreement, so its threshold is easier to pass on longer scales; r*_wg(J) (consensus_index "
                         "= 'rstar') does not",) if self.index == "rwg_j" else ())
            out.append(Conclusion(f"Communities at consensus ({index.attrs['label']} >= {self.threshold}) by the last "
                                  f"session: {float(reached.mean()):.0%} (posterior mean of the share; per community: "
                                  "p_consensus_by).", ("share_reaching_consensus", "consensus_index_mean"),
                                  inflated + spread_caveats))
        figures = [("Consensus index per community over sessions.", self.plot_consensus()[0].figure),
                   ("Strength and consensus at the last session.", self.plot_strength_consensus().figure)]
        tables_ = [("Share of scores at the scale's bounds per session.", bounds)] if len(bounds) else []
        if "consensus_reached_by" in post:
            figures.append(("P(consensus reached by session t) per community (posterior survival curve).",
                            self.plot_consensus_by()[0].figure))
            tables_.append(("P(consensus reached by session t) per community.", self.p_consensus_by()))
        if self.learning and not self.options["cut"]:
            both = self.compare_cut()
            tables_.append(("Learning effects (eta_average), joint fit and cut (two-stage) fit.", both))
            apart = [t for t in both.index.get_level_values(0).unique()
                     if both.loc[(t, "joint"), "lower"] > both.loc[(t, "cut"), "upper"]
                     or both.loc[(t, "joint"), "upper"] < both.loc[(t, "cut"), "lower"]]
            out.append("The cut (two-stage) fit, in which the learning data do not inform the climate estimates, "
                       + (f"gives 90% intervals that do not overlap the joint fit's for {', '.join(apart)}: the joint "
                          "estimates of these effects rest partly on feedback from the outcome." if apart else
                          "gives overlapping 90% intervals for every learning effect."))
        out += formula.conclusions(post, self.location.extra, self.scale_extra)
        return ReportContent(xr.Dataset(derived), figures, tables_, out)
