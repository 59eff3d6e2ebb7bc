"""Model A: three-level growth of learning-climate perceptions (``docs/models.md``, model A).

    y_tij = beta0 + sum_k beta_k B_k(s) + Gamma x + u0j + u1j s + r0ij + r1ij s [+ o_org(i)] + e_tij
    (u0j, u1j) ~ MVN(0, diag(tau_u) Omega_u diag(tau_u)),   Omega_u ~ LKJ(eta)
    (r0ij, r1ij) ~ MVN(0, diag(tau_r) Omega_r diag(tau_r)), o ~ N(0, tau_o), e ~ N(0, sigma)

B_k(s) is the time trend (linear, quadratic or piecewise). Community (u) and organization (o)
effects are non-centred; participant effects (r) are integrated out of the likelihood in
closed form and drawn exactly afterwards (:mod:`lcbayes.models.marginal`). Reduced to
linear time without predictors it is ``lme4::lmer(y ~ time + (time|community) + (time|participant))``.
"""

from __future__ import annotations

import warnings
from typing import Any

import arviz as az
import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from lcbayes.data.study import Study
from lcbayes.errors import ConfigError
from lcbayes import plots
from lcbayes.models.base import BayesModel, ReportContent
from lcbayes.models.components import Predictors, correlated_effects, predictive_streams, uses_organization
from lcbayes.models.marginal import draw_effects, marginal_loglik
from lcbayes.models.priors import Prior, normal_scaled
from lcbayes.processes import climate_strength, time_basis
from lcbayes.tables import HDI, describe

LEVELS = ["community", "participant", "organization", "residual"]


class ClimateGrowth(BayesModel):
    """Three-level growth model of a session-level outcome (e.g. climate perceptions).

    Options (``spec["options"]`` or keyword arguments):

    - ``trend``: ``"linear"``, ``"quadratic"`` or ``"piecewise"`` (with ``breakpoint``, the
      last session before the transition);
    - ``time``: ``"session"`` (s = session - 1) or ``"time"`` (the study's time role), divided
      by ``time_scale``;
    - ``random_slopes``: random time slopes for communities and participants (default true);
    - ``organization``: crossed organization intercepts, ``"auto"`` = when the study has them;
    - ``traits``: participant-level predictors (standardised);
    - ``time_varying``: session-level predictors split into within-participant deviations
      and between-participant means (observed person-mean centring).
    """

    name = "climate_growth"
    option_defaults: dict[str, Any] = {
        "time": "session", "time_scale": 1.0, "trend": "linear", "breakpoint": 0,
        "random_slopes": True, "organization": "auto", "traits": [], "time_varying": [], "lkj_eta": 2.0,
    }

    def prepare(self) -> None:
        o, study = self.options, self.study
        self.use_org = uses_organization(o["organization"], study)
        if study.roles.level_of(self.spec.outcome) != "session":
            raise ConfigError(f"outcome '{self.spec.outcome}' is participant-level; growth needs a session-level outcome.")
        self.y, self.mask = self.panel.cells(self.spec.outcome)
        session_label = np.broadcast_to(np.asarray(study.coords["session"]), self.panel.shape)
        self.basis_names, self.basis = time_basis(self.panel.time, session_label, o["trend"], int(o["breakpoint"]))
        self.predictors = Predictors.from_study(self.panel, list(o["traits"]), list(o["time_varying"]))

    # ------------------------------------------------------------------ priors and graph
    def default_priors(self) -> dict[str, Prior]:
        """Weakly informative priors on the data's scale (sd_y: SD of the observed outcome).

        Intercept N(mean_y, 2.5 sd_y); trend and predictor coefficients N(0, 2.5 sd_y / sd_x);
        SDs of intercepts half-normal(sd_y), of slopes half-normal(sd_y / sd_s); organization SD
        half-normal(sd_y / 2); residual SD exponential(rate 1 / sd_y); correlations LKJ(2).
        """
        obs = self.mask > 0
        y = self.y[obs]
        sd_y, mean_y = float(y.std()), float(y.mean())
        sd_s = float(self.panel.time[obs].std()) or 1.0
        sd_b = [float(b[obs].std()) or 1.0 for b in self.basis]
        sd_w, sd_bt = self.predictors.sds()
        slopes = bool(self.options["random_slopes"])
        tau_scale = [sd_y, sd_y / sd_s]
        eta = float(self.options["lkj_eta"])
        priors = {
            "beta_intercept": normal_scaled(mean_y, sd_y),
            "beta_time": normal_scaled(0.0, sd_y, sd_b),
            "tau_community": Prior("HalfNormal", {"sigma": tau_scale[: 1 + slopes]}),
            "tau_participant": Prior("HalfNormal", {"sigma": tau_scale[: 1 + self.participant_slopes()]}),
            "sigma": Prior("Exponential", {"lam": 1.0 / sd_y}),
        }
        if slopes:
            priors["rho_community"] = Prior("LKJ", {"eta": eta})
        if self.participant_slopes():
            priors["rho_participant"] = Prior("LKJ", {"eta": eta})
        if self.use_org:
            priors["tau_organization"] = Prior("HalfNormal", {"sigma": sd_y / 2})
        if self.predictors.trait_names:
            priors["gamma_trait"] = normal_scaled(0.0, sd_y)
        if self.predictors.tv_names:
            priors["gamma_within"] = normal_scaled(0.0, sd_y, sd_w)
            priors["gamma_between"] = normal_scaled(0.0, sd_y, sd_bt)
            priors["sigma_within"] = Prior("HalfNormal", {"sigma": list(2 * sd_w)})
        return priors

    @property
    def coords(self) -> dict[str, list]:
        coords = super().coords
        coords["effect"] = ["intercept", "slope"] if self.options["random_slopes"] else ["intercept"]
        coords["participant_effect"] = ["intercept", "slope"] if self.participant_slopes() else ["intercept"]
        coords["time_term"] = self.basis_names
        coords["trait"] = self.predictors.trait_names
        coords["predictor"] = self.predictors.tv_names
        return coords

    def participant_slopes(self) -> bool:
        """Whether participants have random time slopes (model A: with ``random_slopes``)."""
        return bool(self.options["random_slopes"])

    def build(self) -> pm.Model:
        with pm.Model(coords=self.coords) as model:
            y = pm.Data("y", self.y, dims=("participant", "session"))
            mask = pm.Data("mask", self.mask, dims=("participant", "session"))
            s = pm.Data("s", self.panel.time, dims=("participant", "session"))
            mu = self._location(s)
            log_sigma = self._log_sigma(s)
            self._likelihood(y, mask, s, mu, log_sigma)
            self._extend(mu, log_sigma)
        return model

    def _location(self, s: pt.TensorVariable) -> pt.TensorVariable:
        """Cell means without participant effects, (P, T)."""
        slopes = bool(self.options["random_slopes"])
        basis = pm.Data("basis", self.basis, dims=("time_term", "participant", "session"))
        # beta0 + sum_k beta_k B_k(s)
        beta0 = self.prior("beta_intercept")
        beta = self.prior("beta_time", dims="time_term")
        trend = [(beta[k], basis[k]) for k in range(len(self.basis_names))]   # elementwise, see components
        # Gamma x: traits, within and between parts of time-varying predictors
        p = self.predictors
        gamma_x = None
        if p.trait_names or p.tv_names:
            gamma_x = p.add(
                self.mask,
                self.prior("gamma_trait", dims="trait") if p.trait_names else None,
                self.prior("gamma_within", dims="predictor") if p.tv_names else None,
                self.prior("gamma_between", dims="predictor") if p.tv_names else None,
                self.prior("sigma_within", dims="predictor") if p.tv_names else None,
            )
        # u0j + u1j s (non-centred, correlated)
        tau_u = self.prior("tau_community", dims="effect")
        rho_u = self.prior("rho_community") if slopes else 0.0
        u0, u1 = correlated_effects("community", tau_u, rho_u, "community", slopes)
        c = pm.Data("community_of", self.panel.community, dims="participant")
        mu = climate_strength(beta0, trend, u0[c][:, None], u1[c][:, None] if slopes else None, s)
        if gamma_x is not None:
            mu = mu + gamma_x
        # o_org(i)
        if self.use_org:
            tau_o = self.prior("tau_organization")
            z_o = pm.Normal("z_organization", 0.0, 1.0, dims="organization")
            o = pm.Deterministic("u_organization", tau_o * z_o, dims="organization")
            org = pm.Data("organization_of", self.panel.organization, dims="participant")
            mu = mu + o[org][:, None]
        return mu

    def _log_sigma(self, s: pt.TensorVariable) -> pt.TensorVariable:
        """Log residual SD: log sigma, one value for all cells (model A)."""
        return pt.log(self.prior("sigma"))

    def _likelihood(self, y, mask, s, mu, log_sigma) -> None:
        """(r0ij, r1ij) integrated out of y ~ N(mu + r0 + r1 s, sigma_tij)."""
        slopes = self.participant_slopes()
        tau_r = self.prior("tau_participant", dims="participant_effect")
        rho_r = self.prior("rho_participant") if slopes else 0.0
        loglik = marginal_loglik(y - mu, mask, log_sigma, s, tau_r[0], tau_r[1] if slopes else None, rho_r, xp=pt)
        pm.Potential("likelihood", loglik.sum())
        pm.Deterministic("mu", mu, dims=("participant", "session"))
        dims = ("participant", "session") if log_sigma.ndim == 2 else None
        pm.Deterministic("log_sigma", log_sigma, dims=dims)
        pm.Deterministic("loglik", loglik, dims="participant")

    def _extend(self, mu, log_sigma) -> None:
        """Further parts of the joint model (none in model A)."""

    @property
    def measures(self) -> list[str]:
        return [self.spec.outcome] + list(self.options["traits"]) + list(self.options["time_varying"])

    @property
    def population(self) -> list[str]:
        names = ["beta_intercept", "beta_time", "tau_community", "tau_participant", "sigma"]
        if self.options["random_slopes"]:
            names.append("rho_community")
        if self.participant_slopes():
            names.append("rho_participant")
        if self.use_org:
            names.append("tau_organization")
        if self.predictors.trait_names:
            names.append("gamma_trait")
        if self.predictors.tv_names:
            names += ["gamma_within", "gamma_between"]
        return names


    # ------------------------------------------------------------------ per-cell results and prediction
    cell_vars = ("mu", "log_sigma", "loglik")

    def pointwise_loglik(self, idata: az.InferenceData) -> xr.DataArray:
        """Marginal log likelihood per participant (participant effects integrated out)."""
        return self._cells(idata.posterior, ["loglik"])["loglik"]

    def _cells(self, post: xr.Dataset, names: list[str]) -> xr.Dataset:
        """Per-cell deterministics ``names`` of the graph at the draws in ``post``."""
        return pm.compute_deterministics(post, var_names=names, model=self.model, progressbar=False)

    def cell_deterministics(self) -> xr.Dataset:
        """Posterior ``mu`` and ``log_sigma`` per participant x session."""
        return self._cells(self._fitted().posterior, ["mu", "log_sigma"])

    def participant_effects(self, seed: int = 0) -> xr.DataArray:
        """Draws of the participant intercept and slope, (chain, draw, participant, effect):
        exact draws from their conditional posterior given each draw of the other parameters
        (the same draws ``sample_posterior_predictive(seed)`` uses)."""
        ds = self._fitted().posterior.merge(self.cell_deterministics())
        return self._draw_effects(ds, self.panel.cells(self.spec.outcome)[1], predictive_streams(seed)[0])

    def _draw_effects(self, ds: xr.Dataset, mask: np.ndarray, rng: np.random.Generator) -> xr.DataArray:
        """Participant effects given the draws in ``ds`` (with ``mu`` and ``log_sigma``); an
        all-zero ``mask`` conditions on no data, i.e. draws from N(0, Sigma_r)."""
        tau = ds["tau_participant"].values
        rho = ds["rho_participant"].values if "rho_participant" in ds else np.zeros(tau.shape[:2])
        tau0, tau1 = tau[..., 0:1], (tau[..., 1:2] if tau.shape[-1] > 1 else np.zeros_like(tau[..., 0:1]))
        y, _ = self.panel.cells(self.spec.outcome)
        mu, log_sigma = ds["mu"].values, ds["log_sigma"].broadcast_like(ds["mu"]).values
        r = draw_effects(y - mu, mask, log_sigma, self.panel.time, tau0, tau1, rho[..., None], rng)
        return xr.DataArray(r, dims=("chain", "draw", "participant", "effect"),
                            coords={"participant": self.coords["participant"], "effect": ["intercept", "slope"]})

    def _expected(self, ds: xr.Dataset, r: xr.DataArray) -> np.ndarray:
        """Cell means with participant effects: mu + r0 + r1 s, shape (chain, draw, P, T)."""
        r = r.values
        return ds["mu"].values + r[..., 0:1] + r[..., 1:2] * self.panel.time

    def predict(self, seed: int = 0) -> xr.DataArray:
        """Expected outcome per participant x session including participant effects,
        (chain, draw, participant, session); also for sessions a participant missed."""
        cells = self.cell_deterministics()
        return xr.DataArray(self._expected(cells, self.participant_effects(seed)), dims=cells["mu"].dims,
                            coords=cells["mu"].coords, name="expected")

    def _replicate(self, ds: xr.Dataset, r: xr.DataArray, rng: np.random.Generator) -> xr.Dataset:
        """Replicated outcomes at the observed rows from cell means, effects and residual SDs."""
        mean = self._expected(ds, r)
        sd = np.exp(ds["log_sigma"].broadcast_like(ds["mu"]).values)
        y = mean + sd * rng.standard_normal(mean.shape)
        obs = self._observed()["obs"].values
        pi, ti = self.study.idx["participant"][obs], self.study.idx["session"][obs]
        return xr.Dataset({self.spec.outcome: (("chain", "draw", "obs"), y[..., pi, ti])}, coords={"obs": obs})

    def sample_posterior_predictive(self, seed: int = 0) -> az.InferenceData:
        """Add replicated outcomes (group ``posterior_predictive``) for the observed rows."""
        idata = self._fitted()
        effects_rng, noise_rng = predictive_streams(seed)
        ds = idata.posterior.merge(self.cell_deterministics())
        r = self._draw_effects(ds, self.panel.cells(self.spec.outcome)[1], effects_rng)
        pp = self._replicate(ds, r, noise_rng)
        if "posterior_predictive" in idata.groups():
            del idata.posterior_predictive
        idata.add_groups(posterior_predictive=pp)
        return idata

    def sample_prior_predictive(self, draws: int = 500, seed: int = 0) -> az.InferenceData:
        """Prior draws of the parameters and replicated outcomes (groups ``prior`` and
        ``prior_predictive``) as an InferenceData of its own."""
        with self.model, warnings.catch_warnings():   # the likelihood is a Potential: right to ignore
            warnings.filterwarnings("ignore", message="The effect of Potentials")
            prior = pm.sample_prior_predictive(draws=draws, random_seed=seed).prior
        effects_rng, noise_rng = predictive_streams(seed)
        r = self._draw_effects(prior, np.zeros(self.panel.shape), effects_rng)
        pp = self._replicate(prior, r, noise_rng)
        return az.InferenceData(prior=prior, prior_predictive=pp, observed_data=self._observed())

    def prior_study(self, seed: int) -> tuple[Study, xr.Dataset]:
        """This study with its outcome replaced by one prior predictive draw, and its parameters."""
        draw = self.sample_prior_predictive(draws=1, seed=seed)
        y = np.full(self.study.n_obs, np.nan)
        y[draw.prior_predictive["obs"].values] = draw.prior_predictive[self.spec.outcome].values[0, 0]
        return self.study.with_values({self.spec.outcome: y}), draw.prior.isel(chain=0, draw=0)

    # ------------------------------------------------------------------ derived quantities
    def session_times(self) -> np.ndarray:
        """Typical time of each session in model units (median over observed cells), shape (T,)."""
        s = np.where(self.mask > 0, self.panel.time, np.nan)
        med = np.nanmedian(np.where(np.isnan(s).all(axis=0), self.panel.time, s), axis=0)
        return med

    def session_grid(self) -> xr.DataArray:
        """Typical time s of each session, as a DataArray over ``session``."""
        return xr.DataArray(self.session_times(), dims="session", coords={"session": self.coords["session"]})

    def community_trajectories(self, post: xr.Dataset) -> xr.DataArray:
        """beta0 + sum_k beta_k B_k(s) + u0j + u1j s per community and session, predictors at
        their means (0): the latent community mean (climate *strength*)."""
        s = self.session_grid()
        session_label = np.asarray(self.coords["session"])
        _, grid = time_basis(s.values[None], session_label[None], self.options["trend"], int(self.options["breakpoint"]))
        basis = xr.DataArray(grid[:, 0], dims=("time_term", "session"), coords={"session": self.coords["session"]})
        trend = [(post["beta_time"].isel(time_term=k, drop=True), basis.isel(time_term=k, drop=True))
                 for k in range(basis.sizes["time_term"])]
        u = post["u_community"]
        u1 = u.sel(effect="slope", drop=True) if self.options["random_slopes"] else None
        traj = climate_strength(post["beta_intercept"], trend, u.sel(effect="intercept", drop=True), u1, s)
        return traj.transpose("chain", "draw", "community", "session")

    def random_effect_variances(self, post: xr.Dataset) -> list[xr.DataArray]:
        """Community, participant and organization variances at each session's time s:
        tau0^2 + 2 rho tau0 tau1 s + tau1^2 s^2 (tau_o^2 for organizations)."""
        s = self.session_grid()

        def level_var(tau: xr.DataArray, rho: xr.DataArray | float) -> xr.DataArray:
            tau = tau.rename({tau.dims[-1]: "effect"})
            if tau.sizes["effect"] == 1:
                return (tau.isel(effect=0, drop=True) ** 2) + 0 * s
            t0, t1 = tau.isel(effect=0, drop=True), tau.isel(effect=1, drop=True)
            return t0**2 + 2 * rho * t0 * t1 * s + t1**2 * s**2

        comm = level_var(post["tau_community"], post["rho_community"] if self.options["random_slopes"] else 0.0)
        part = level_var(post["tau_participant"], post["rho_participant"] if self.participant_slopes() else 0.0)
        org = (post["tau_organization"] ** 2 if self.use_org else xr.zeros_like(comm)) + 0 * s
        return [comm, part, org]

    def derived(self, idata: az.InferenceData) -> xr.Dataset:
        """Variance partition and community trajectories per session.

        ``variance`` (session, level): community, participant and organization variances
        (:meth:`random_effect_variances`) and the residual sigma^2 at each session's typical
        time; ``variance_share`` the same as shares of their sum; ``trajectory_community``
        (community, session) from :meth:`community_trajectories`.
        """
        post = idata.posterior
        resid = post["sigma"] ** 2 + 0 * self.session_grid()
        var = xr.concat(self.random_effect_variances(post) + [resid],
                        dim=xr.DataArray(LEVELS, dims="level", name="level"))
        var = var.drop_vars([c for c in var.coords if c not in ("chain", "draw", "session", "level")])
        return xr.Dataset({"variance": var, "variance_share": var / var.sum("level"),
                           "trajectory_community": self.community_trajectories(post)})

    def plot_trajectories(self, communities: list | None = None, hdi_prob: float = HDI, ax: Any = None) -> Any:
        """Community trajectories with observed means (:func:`lcbayes.plots.plot_trajectories`)."""
        return plots.plot_trajectories(self._fitted(), communities, hdi_prob, ax)

    def report_content(self) -> ReportContent:
        post = self._fitted().posterior
        out = [describe(f"Change in {self.spec.outcome} per unit of time ({term})", post["beta_time"].sel(time_term=term))
               for term in post["time_term"].values]
        share = post["variance_share"].sel(level="community")
        out.append(f"Share of variance between communities: {float(share.isel(session=0).mean()):.2f} at the first "
                   f"session, {float(share.isel(session=-1).mean()):.2f} at the last (posterior means).")
        for name, dim in (("gamma_trait", "trait"), ("gamma_within", "predictor"), ("gamma_between", "predictor")):
            if name in post:
                out += [describe(f"{name} ({v})", post[name].sel({dim: v})) for v in post[dim].values]
        figure = ("Community trajectories: posterior mean and 90% HDI; dots are observed community means.",
                  self.plot_trajectories().figure)
        return ReportContent(xr.Dataset({"variance_share": post["variance_share"]}), [figure], [], out)
