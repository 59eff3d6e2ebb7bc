"""Parts of the climate models (A, climate growth; B, consensus emergence), which each model composes with its own
scale part:

- :class:`Location`: mu_tij = beta0 + sum_k beta_k B_k(s) + Gamma x + u0j + u1j s [+ o_org(i)], the cell means
  without participant effects (``docs/models.md``);
- :class:`Participants`: participant intercepts and slopes (r0i, r1i) ~ MVN(0, Sigma_r), integrated out of the
  Gaussian likelihood (:mod:`lcbayes.models.marginal`) and drawn exactly after fitting;
- :class:`ClimateModel`: the body both models share (the data in the graph, the participant-level log likelihood,
  predictive draws and the session grid).
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from pytensor.graph.traversal import ancestors

from lcbayes.data.roles import ResponseRange
from lcbayes.data.study import Study
from lcbayes.errors import ConfigError
from lcbayes.models.base import BayesModel
from lcbayes.models.components import GroupEffects, MeasurementError, predictive_streams, uses_organization
from lcbayes.models.formula import COLUMNS as FORMULA_COLUMNS
from lcbayes.models.formula import FormulaTerms
from lcbayes.models.marginal import draw_effects, marginal_loglik
from lcbayes.models.panel import Panel
from lcbayes.models.prediction import keep_known
from lcbayes.models.predictors import Predictors
from lcbayes.models.priors import CHANGE, GROUP, SPREAD, Prior, create, mean_prior, slope_prior
from lcbayes.processes import climate_strength, time_basis

# options of the location part and the time coding, shared by models A and B
LOCATION_OPTIONS: dict[str, Any] = {
    "time": "session", "time_scale": 1.0, "trend": "linear", "breakpoint": 0, "random_slopes": True,
    "organization": "auto", "traits": [], "time_varying": [], "centring": "latent", "contextual": True, "lkj_eta": 2.0,
    "location": ""}


@dataclass(frozen=True)
class Location:
    """The location part: cell means without participant effects (see the module docstring).

    Built from the model's options ``trend``, ``breakpoint``, ``random_slopes`` (community
    slopes), ``organization``, ``traits``, ``time_varying``, ``lkj_eta``."""

    panel: Panel
    outcome: str
    y: np.ndarray              # (P, T) outcome, 0 where unobserved
    mask: np.ndarray           # (P, T) 1 = observed
    basis_names: list[str]
    basis: np.ndarray          # (K, P, T) trend columns B_k(s)
    predictors: Predictors
    trend: str                 # linear, quadratic or piecewise
    breakpoint: int            # last session before the transition (piecewise)
    slopes: bool               # community slopes u1j
    use_org: bool
    lkj_eta: float
    scale_terms: tuple[str, ...] = ()   # community effects of the scale part, correlated with the location ones
    extra: FormulaTerms | None = None   # the option location's formula terms

    @property
    def communities(self) -> GroupEffects:
        """Community intercepts and (with ``slopes``) time slopes (u0j, u1j), and the scale part's community effects
        ``scale_terms`` (model B's v0j, v1j) in the same correlated group."""
        return GroupEffects("community", "community", "effect", ("intercept", "slope")[: 1 + self.slopes]
                            + self.scale_terms)

    @property
    def organizations(self) -> GroupEffects:
        return GroupEffects("organization", "organization")

    @classmethod
    def from_options(cls, panel: Panel, outcome: str, options: dict[str, Any], scale_terms: tuple[str, ...] = (),
                     fitted: Location | None = None) -> Location:
        """The location part of ``options``; ``fitted``: the location of the fitted model whose standardisation
        and formula coding new data take over (prediction)."""
        study = panel.study
        if study.roles.level_of(outcome) != "session":
            raise ConfigError(f"outcome '{outcome}' is participant-level; the climate models need a "
                              "session-level outcome.")
        y, mask = panel.cells(outcome)
        session_label = np.broadcast_to(np.asarray(study.coords["session"]), panel.shape)
        names, basis = time_basis(panel.time, session_label, options["trend"], int(options["breakpoint"]))
        predictors = Predictors.from_study(panel, list(options["traits"]), list(options["time_varying"]),
                                           str(options["centring"]), options["contextual"],
                                           fitted.panel.study if fitted else None)
        extra = FormulaTerms.parse("location", options["location"], panel, outcome, fitted.extra if fitted else None)
        return cls(panel, outcome, y, mask, names, basis, predictors, options["trend"], int(options["breakpoint"]),
                   bool(options["random_slopes"]),
                   uses_organization(options["organization"], study), float(options["lkj_eta"]), scale_terms, extra)

    @property
    def scale(self) -> ResponseRange:
        """The outcome's response range (the unit of the default priors)."""
        return self.panel.study.response_range(self.outcome)

    def span(self) -> float:
        """Span (max - min) of the time s over the observed cells (1 when constant): a slope times it is the change
        over the study."""
        s = self.panel.time[self.mask > 0]
        return float(s.max() - s.min()) if len(s) and s.max() > s.min() else 1.0

    def priors(self) -> dict[str, Prior]:
        """Default priors on the outcome's natural scale (:mod:`lcbayes.models.priors`; middle m and half range h
        of its response range, 3 and 2 on a 1-5 scale), the same for every study on that scale:

        intercept N(m, h/4); each trend coefficient N(0, h/4 / span of its column), a total change over the study of
        about h/4; SDs of community intercepts half-normal(h/8) and slopes half-normal(h/8 / span of s), their
        correlation LKJ(eta); organization SD half-normal(h/8); the predictors' priors
        (:meth:`~lcbayes.models.predictors.Predictors.priors`)."""
        obs = self.mask > 0
        y, span = self.scale, self.span()
        spans = [float(np.ptp(b[obs])) or 1.0 for b in self.basis]
        priors = {"beta_intercept": mean_prior(y.mid, y.half),
                  "beta_time": slope_prior(CHANGE * y.half, spans, share=1.0),
                  **self.communities.priors([GROUP * y.half, GROUP * y.half / span][: 1 + self.slopes], self.lkj_eta)}
        if self.use_org:
            priors.update(self.organizations.priors(GROUP * y.half, self.lkj_eta))
        study, p = self.panel.study, self.predictors
        ranges = [study.response_range(n) for n in p.tv_names]
        priors.update(p.priors(y.half, np.array([r.half for r in ranges]), np.array([r.mid for r in ranges]),
                               self.lkj_eta))
        if self.extra:   # N(0, h_y/2 per 2 SDs of each formula column)
            priors["beta_location"] = slope_prior(y.half, 2 * self.extra.sd)
        return priors

    def coords(self) -> dict[str, list]:
        p = self.predictors
        return {**self.communities.coords(), "time_term": self.basis_names, "trait": p.trait_names,
                "predictor": p.tv_names, **(p.person_means.coords() if p.tv_names else {}),
                **(self.extra.coords() if self.extra else {})}

    @property
    def population(self) -> list[str]:
        return (["beta_intercept", "beta_time"] + (["beta_location"] if self.extra else [])
                + self.communities.population + (self.organizations.population if self.use_org else [])
                + self.predictors.population)

    @property
    def measures(self) -> list[str]:
        extra = [v for v in self.extra.variables if v not in FORMULA_COLUMNS] if self.extra else []
        return list(dict.fromkeys(self.predictors.trait_names + self.predictors.tv_names + extra))

    def build(self, priors: Mapping[str, Prior], s: pt.TensorVariable) -> pt.TensorVariable:
        """mu = beta0 + sum_k beta_k B_k(s) + Gamma x + u0j + u1j s [+ o_org(i)] per participant x
        session (P, T) in the model in context."""
        prior = partial(create, priors)
        basis = pm.Data("basis", self.basis, dims=("time_term", "participant", "session"))
        beta0 = prior("beta_intercept")
        beta = prior("beta_time", dims="time_term")
        trend = [(beta[k], basis[k]) for k in range(len(self.basis_names))]   # elementwise, see components
        u = self.communities.effects(priors)[pm.Data("community_of", self.panel.community, dims="participant")]
        mu = climate_strength(beta0, trend, u[:, 0][:, None], u[:, 1][:, None] if self.slopes else None, s)
        if self.predictors.trait_names or self.predictors.tv_names:   # Gamma x (lcbayes.models.predictors)
            mu = mu + self.predictors.add(self.mask, priors)
        if self.use_org:
            o = self.organizations.effects(priors)
            mu = mu + o[pm.Data("organization_of", self.panel.organization, dims="participant")][:, None]
        if self.extra:
            mu = mu + self.extra.term(priors)
        return mu

    def strength(self, post: xr.Dataset, s: xr.DataArray) -> xr.DataArray:
        """beta0 + sum_k beta_k B_k(s) + u0j + u1j s per community and session at the sessions' typical times ``s``,
        predictors at their means (0): the latent community mean (climate *strength*), (chain, draw, community,
        session)."""
        session_label = np.asarray(s["session"].values)
        _, grid = time_basis(s.values[None], session_label[None], self.trend, self.breakpoint)
        basis = xr.DataArray(grid[:, 0], dims=("time_term", "session"), coords={"session": s["session"]})
        trend = [(post["beta_time"].isel(time_term=k, drop=True), basis.isel(time_term=k, drop=True))
                 for k in range(basis.sizes["time_term"])]
        u = post["u_community"]
        u1 = u.sel(effect="slope", drop=True) if self.slopes else None
        traj = climate_strength(post["beta_intercept"], trend, u.sel(effect="intercept", drop=True), u1, s)
        return traj.transpose("chain", "draw", "community", "session")

    def strength_at(self, graph: Any, s: float, label: int) -> pt.TensorVariable:
        """Community strength (J,) at time ``s`` (session ``label``) inside the graph."""
        _, b = time_basis(np.array([s]), np.array([label]), self.trend, self.breakpoint)
        u = graph["u_community"]
        trend = [(graph["beta_time"][k], float(b[k, 0])) for k in range(len(b))]
        return climate_strength(graph["beta_intercept"], trend, u[:, 0], u[:, 1] if self.slopes else None, s)

    def variances(self, post: xr.Dataset, s: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
        """Community and organization variances at time s (0 without organizations)."""
        comm = self.communities.variance(post, (1.0, s)[: 1 + self.slopes]) + 0 * s
        org = (self.organizations.variance(post) if self.use_org else xr.zeros_like(comm)) + 0 * s
        return comm, org


@dataclass(frozen=True)
class Participants:
    """Participant intercepts and (with ``slopes``) time slopes (r0i, r1i), integrated out."""

    slopes: bool
    lkj_eta: float

    @property
    def effects(self) -> GroupEffects:
        terms = ("intercept", "slope")[: 1 + self.slopes]
        return GroupEffects("participant", "participant", "participant_effect", terms)

    def priors(self, scale: ResponseRange, span: float) -> dict[str, Prior]:
        """On the outcome's half range h: intercept SD half-normal(h/5), slope SD half-normal(h/5 / span of s),
        correlation LKJ(eta)."""
        sd = SPREAD * scale.half
        return self.effects.priors([sd, sd / span][: 1 + self.slopes], self.lkj_eta)

    def likelihood(self, priors: Mapping[str, Prior], y: Any, mask: Any, s: Any, mu: Any, log_sigma: Any,
                   error_var: Any = None, cell_logp: Callable[[Any, Any], Any] | None = None) -> None:
        """y_tij ~ N(mu + r0i + r1i s, sqrt(sigma_tij^2 + error_var_tij)) with (r0i, r1i) integrated out (``error_var``:
        the measurement error variance of the observed score, (P, T), or None); stores the per-participant log
        likelihood ``loglik`` and the cell parts ``mu``, ``log_sigma`` (latent) and ``log_sigma_observed``.

        With ``cell_logp`` (the log density of each cell's observation given its mean and SD, (P, T)), the cells follow
        that instead of the normal: scores censored at the scale's bounds (:func:`censored_logp`), or an ordinal
        response (model A's ``family = "ordinal"``). That breaks the closed-form integral, so the participant effects
        are then sampled (``u_participant``)."""
        cells = ("participant", "session")
        pm.Deterministic("log_sigma", log_sigma, dims=cells if log_sigma.ndim == 2 else None)
        if error_var is not None:
            log_sigma = pm.Deterministic("log_sigma_observed", 0.5 * pt.log(pt.exp(2 * log_sigma) + error_var),
                                         dims=cells)
        if cell_logp is None:
            tau, rows = self.effects.scale(priors)
            loglik = marginal_loglik(y - mu, mask, log_sigma, s, tau[0], tau[1] if self.slopes else None,
                                     rows[1][0] if rows else 0.0, xp=pt)
        else:
            r = self.effects.effects(priors)
            mean = mu + r[:, 0][:, None] + (r[:, 1][:, None] * s if self.slopes else 0.0)
            loglik = (mask * cell_logp(mean, pt.broadcast_to(pt.exp(log_sigma), mean.shape))).sum(-1)
        pm.Potential("likelihood", loglik.sum())
        pm.Deterministic("mu", mu, dims=cells)
        pm.Deterministic("loglik", loglik, dims="participant")

    def draw(self, ds: xr.Dataset, y: np.ndarray, mask: np.ndarray, s: np.ndarray, labels: list,
             rng: np.random.Generator) -> xr.DataArray:
        """Participant effects (chain, draw, participant, effect) given the draws in ``ds`` (with ``mu`` and
        ``log_sigma``); an all-zero ``mask`` conditions on no data, i.e. draws from N(0, Sigma_r)."""
        tau = ds["tau_participant"].values
        rho = ds["corr_participant"].values[..., 0] if self.slopes else np.zeros(tau.shape[:2])
        tau0, tau1 = tau[..., 0:1], (tau[..., 1:2] if self.slopes else np.zeros_like(tau[..., 0:1]))
        mu, log_sigma = ds["mu"].values, observed_log_sigma(ds).values
        r = draw_effects(y - mu, mask, log_sigma, s, tau0, tau1, rho[..., None], rng)
        return xr.DataArray(r, dims=("chain", "draw", "participant", "effect"),
                            coords={"participant": labels, "effect": ["intercept", "slope"]})


def censored_logp(y: Any, bounds: tuple[float, float]) -> Callable[[Any, Any], Any]:
    """Cell log density of scores censored at the response scale's bounds (a ceiling or floor sensitivity variant): a
    score at a bound contributes P(y <= low) or P(y >= high), any other the normal density."""
    low, high = bounds

    def logp(mean: Any, sd: Any) -> Any:
        return pt.switch(y <= low, pm.logcdf(pm.Normal.dist(mean, sd), low),
                         pt.switch(y >= high, pm.logcdf(pm.Normal.dist(-mean, sd), -high),
                                   pm.logp(pm.Normal.dist(mean, sd), y)))
    return logp


def observed_log_sigma(ds: xr.Dataset) -> xr.DataArray:
    """Log SD of the observed score per cell: ``log_sigma_observed`` with measurement error, else ``log_sigma``."""
    return ds["log_sigma_observed" if "log_sigma_observed" in ds else "log_sigma"].broadcast_like(ds["mu"])


class ClimateModel(BayesModel):
    """What models A and B share: a :class:`Location`, marginalised :class:`Participants` and a scale part (log
    sigma_tij) of the subclass's own in :meth:`log_sigma`; anything else goes in the subclass's :meth:`build`.
    Subclasses set ``self.location`` and ``self.participants`` in :meth:`prepare` (via :meth:`prepare_parts`)."""

    cell_vars: ClassVar[tuple[str, ...]] = ("mu", "log_sigma", "log_sigma_observed", "loglik")
    observation_masks: ClassVar[dict[str, int]] = {"mask": 0, "learning_mask": 0}   # (learning: model B's option)
    location: Location
    participants: Participants
    error: MeasurementError | None = None   # item measurement error of the outcome (model B)
    bounds: tuple[float, float] | None = None   # censoring of the outcome at the scale's bounds (model B)

    def prepare_parts(self, participant_slopes: bool, scale_terms: tuple[str, ...] = ()) -> None:
        fitted = self.reference if isinstance(self.reference, ClimateModel) else None
        self.location = Location.from_options(self.panel, self.spec.outcome, self.options, scale_terms,
                                              fitted.location if fitted else None)
        self.participants = Participants(participant_slopes, float(self.options["lkj_eta"]))

    @abstractmethod
    def log_sigma(self, s: pt.TensorVariable) -> pt.TensorVariable:
        """Log residual SD, a scalar or (P, T), in the model in context."""

    def build_climate(self) -> tuple[pt.TensorVariable, pt.TensorVariable]:
        """Data, location, scale and marginal likelihood in the model in context; (mu, log sigma)."""
        cells = {"y": self.location.y, "mask": self.location.mask, "s": self.panel.time}
        y, mask, s = (pm.Data(name, values, dims=("participant", "session")) for name, values in cells.items())
        mu = self.location.build(self.priors, s)
        log_sigma = self.log_sigma(s)
        error_var = self.error.variance(self.priors) if self.error else None
        self.participants.likelihood(self.priors, y, mask, s, mu, log_sigma, error_var,
                                     censored_logp(y, self.bounds) if self.bounds else None)
        return mu, log_sigma

    @property
    def coords(self) -> dict[str, list]:
        return {**super().coords, **self.location.coords(), **self.participants.effects.coords()}

    @property
    def measures(self) -> list[str]:
        return [self.spec.outcome] + self.location.measures

    def pointwise_loglik(self, idata: xr.DataTree) -> xr.DataArray:
        """Marginal log likelihood per participant (participant effects integrated out)."""
        return self._cells(idata["posterior"].to_dataset(), ["loglik"])["loglik"]

    def cell_deterministics(self) -> xr.Dataset:
        """Posterior ``mu``, ``log_sigma`` (latent) and, with measurement error, ``log_sigma_observed`` per
        participant x session."""
        names = ["mu", "log_sigma"] + (["log_sigma_observed"] if self.error else [])
        return self._cells(self.fitted()["posterior"].to_dataset(), names)

    def participant_effects(self, seed: int = 0) -> xr.DataArray:
        """Draws of the participant intercept and slope, (chain, draw, participant, effect): exact draws from their
        conditional posterior given each draw of the other parameters (the same draws
        ``sample_posterior_predictive(seed)`` uses)."""
        ds = self.fitted()["posterior"].to_dataset().merge(self.cell_deterministics())
        return self._draw_effects(ds, self.location.mask, predictive_streams(seed)[0])

    def _draw_effects(self, ds: xr.Dataset, mask: np.ndarray, rng: np.random.Generator) -> xr.DataArray:
        if "u_participant" in ds:          # sampled (censored likelihood): the draws themselves, slope 0 if absent
            u = ds["u_participant"].rename(participant_effect="effect")
            return u.reindex(effect=["intercept", "slope"], fill_value=0.0).transpose("chain", "draw", "participant",
                                                                                     "effect")
        return self.participants.draw(ds, self.latent_scores(ds), mask, self.panel.time, self.coords["participant"],
                                      rng)

    def latent_scores(self, ds: xr.Dataset) -> np.ndarray:
        """The values the participant effects are conditioned on, (P, T) or per draw (chain, draw, P, T): the outcome
        (model A with item measurement: its latent scores)."""
        return self.location.y

    def _expected(self, ds: xr.Dataset, r: xr.DataArray) -> np.ndarray:
        """Cell means with participant effects: mu + r0 + r1 s, shape (chain, draw, P, T)."""
        return ds["mu"].values + r.values[..., 0:1] + r.values[..., 1:2] * self.panel.time

    def condition_new_groups(self, posterior: xr.Dataset, fitted: BayesModel, new_groups: str,
                             seed: int) -> dict[str, xr.DataArray]:
        """The latent means of the predictors of new participants and communities given the new data's predictor
        values (:meth:`~lcbayes.models.predictors.Predictors.condition_new`)."""
        predictors = self.location.predictors
        if not (predictors.tv_names or predictors.trait_names):
            return {}
        new_people = ~np.isin(np.asarray(self.coords["participant"], dtype=object),
                              np.asarray(fitted.coords["participant"], dtype=object))
        new_communities = ~np.isin(np.asarray(self.coords["community"], dtype=object),
                                   np.asarray(fitted.coords["community"], dtype=object))
        rng = np.random.default_rng(np.random.SeedSequence([seed, 13]))
        return predictors.condition_new(posterior, new_people, new_communities, new_groups == "zero", rng)

    def predicted(self, posterior: xr.Dataset, kind: str, seed: int, fitted: BayesModel | None,
                  new_groups: str) -> dict[str, xr.DataArray]:
        """The expected outcome (``expected``: mu + r0 + r1 s) or posterior predictive draws (``predictive``) per
        participant x session, also for sessions a participant missed. Participant effects: in sample, their draws
        given the data (:meth:`participant_effects`, the draws ``sample_posterior_predictive(seed)`` uses); on new
        data, the fitted participants' draws, and for new participants draws from N(0, Sigma_r) (``new_groups =
        "sample"``) or 0 (``"zero"``)."""
        names = ["mu", "log_sigma"] + (["log_sigma_observed"] if self.error else [])
        ds = posterior.merge(self._cells(posterior, names))
        effects_rng, noise_rng = predictive_streams(seed)
        if fitted is None:
            r = self._draw_effects(ds, self.location.mask, effects_rng)
        else:
            assert isinstance(fitted, ClimateModel)
            r = self._draw_effects(ds, np.zeros(self.panel.shape), np.random.default_rng(
                np.random.SeedSequence([seed, 11])))
            if new_groups == "zero":
                r = xr.zeros_like(r)
            if set(r["participant"].values) & set(fitted.coords["participant"]):   # known participants: theirs
                r = keep_known(r, fitted.participant_effects(seed), ("participant", "effect"))
        if kind == "predictive":
            values = self.simulate_cells(ds, r, noise_rng)
        else:
            values = self._expected(ds, r)
        cells = ds["mu"]
        return {self.spec.outcome: xr.DataArray(values, dims=cells.dims, coords=cells.coords)}

    def simulate_cells(self, ds: xr.Dataset, r: xr.DataArray, rng: np.random.Generator) -> np.ndarray:
        """Replicated outcomes per cell, (chain, draw, P, T), from cell means, effects and residual SDs."""
        mean = self._expected(ds, r)
        sd = np.exp(observed_log_sigma(ds).values)
        y = mean + sd * rng.standard_normal(mean.shape)
        return y if self.bounds is None else np.clip(y, *self.bounds)

    def _replicate(self, ds: xr.Dataset, r: xr.DataArray, rng: np.random.Generator) -> xr.Dataset:
        """Replicated outcomes at the observed rows (:meth:`simulate_cells`)."""
        y = self.simulate_cells(ds, r, rng)
        obs = self._observed()["obs"].values
        pi, ti = self.study.idx["participant"][obs], self.study.idx["session"][obs]
        return xr.Dataset({self.spec.outcome: (("chain", "draw", "obs"), y[..., pi, ti])}, coords={"obs": obs})

    def sample_posterior_predictive(self, seed: int = 0) -> xr.DataTree:
        """Add replicated outcomes (group ``posterior_predictive``) for the observed rows."""
        idata = self.fitted()
        effects_rng, noise_rng = predictive_streams(seed)
        ds = idata["posterior"].to_dataset().merge(self.cell_deterministics())
        pp = self._replicate(ds, self._draw_effects(ds, self.location.mask, effects_rng), noise_rng)
        idata["posterior_predictive"] = pp
        return idata

    def marginal_replicates(self, seed: int = 0) -> xr.DataArray:
        """Replicated outcomes at the observed rows, (chain, draw, obs), with every participant's effects drawn anew
        from their population (conditioned on no data) and community and organization effects as sampled."""
        ds = self.fitted()["posterior"].to_dataset().merge(self.cell_deterministics())
        effects_rng, noise_rng = predictive_streams(seed)
        fresh = self.participants.draw(ds, self.latent_scores(ds), np.zeros(self.panel.shape), self.panel.time,
                                       self.coords["participant"], effects_rng)
        return self._replicate(ds, fresh, noise_rng)[self.spec.outcome]

    def sample_prior_predictive(self, draws: int = 500, seed: int = 0) -> xr.DataTree:
        """Prior draws of the parameters and replicated outcomes (groups ``prior``,
        ``prior_predictive`` and ``observed_data``) as an InferenceData of its own. The predictors are data: their
        latent means are set at the observed ones (:meth:`~lcbayes.models.predictors.Predictors.observed_means`)."""
        fixed = self.location.predictors.observed_means()   # the outcome's prior predictive given the predictors
        model = pm.do(self.model, fixed) if fixed else self.model
        with model, warnings.catch_warnings():   # the likelihood is a Potential: right to ignore
            warnings.filterwarnings("ignore", message="The effect of Potentials")
            names = [v.name for v in model.free_RVs + model.deterministics   # not the latent scores (flat)
                     if "eta" not in {a.name for a in ancestors([v])}]
            prior = pm.sample_prior_predictive(draws=draws, var_names=names, random_seed=seed)["prior"].to_dataset()
        effects_rng, noise_rng = predictive_streams(seed)
        pp = self._replicate(prior, self._draw_effects(prior, np.zeros(self.panel.shape), effects_rng), noise_rng)
        return xr.DataTree.from_dict({"prior": prior, "prior_predictive": pp, "observed_data": self._observed()})

    def prior_study(self, seed: int) -> tuple[Study, xr.Dataset]:
        """This study with its outcome replaced by one prior predictive draw, and its parameters."""
        draw = self.sample_prior_predictive(draws=1, seed=seed)
        replicate = draw["prior_predictive"].to_dataset()[self.spec.outcome]
        y = np.full(self.study.n_obs, np.nan)
        y[replicate["obs"].values] = replicate.values[0, 0]
        return self.study.with_values({self.spec.outcome: y}), draw["prior"].to_dataset().isel(chain=0, draw=0)

    def session_times(self) -> np.ndarray:
        """Typical time of each session in model units (median over observed cells), shape (T,)."""
        s = np.where(self.location.mask > 0, self.panel.time, np.nan)
        return np.nanmedian(np.where(np.isnan(s).all(axis=0), self.panel.time, s), axis=0)

    def session_grid(self) -> xr.DataArray:
        """Typical time s of each session, as a DataArray over ``session``."""
        return xr.DataArray(self.session_times(), dims="session", coords={"session": self.coords["session"]})

    def community_trajectories(self, post: xr.Dataset) -> xr.DataArray:
        """Climate strength per community and session (:meth:`Location.strength`)."""
        return self.location.strength(post, self.session_grid())

    def random_effect_variances(self, post: xr.Dataset) -> list[xr.DataArray]:
        """Community, participant and organization variances at each session's time s:
        tau0^2 + 2 rho tau0 tau1 s + tau1^2 s^2 (tau_o^2 for organizations)."""
        s = self.session_grid()
        comm, org = self.location.variances(post, s)
        return [comm, self.participants.effects.variance(post, (1.0, s)) + 0 * s, org]
