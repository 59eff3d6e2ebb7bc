"""Model A: three-level growth of learning-climate perceptions (DESIGN.md, "Model A").

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
from lcbayes.models.base import BayesModel
from lcbayes.models.components import Predictors, correlated_effects, time_basis
from lcbayes.models.marginal import draw_effects, marginal_loglik
from lcbayes.models.priors import Prior

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
        if o["organization"] not in ("auto", True, False):
            raise ConfigError(f"option organization must be true, false or \"auto\", got {o['organization']!r}.")
        has_org = "organization" in study.idx
        if o["organization"] is True and not has_org:
            raise ConfigError("option organization = true, but the study maps no organization column.")
        self.use_org = has_org and o["organization"] is not False
        if study.roles.level_of(self.spec.outcome) != "session":
            raise ConfigError(f"outcome '{self.spec.outcome}' is participant-level; growth needs a session-level outcome.")
        self.y, self.mask = self.panel.cells(self.spec.outcome)
        session_label = np.broadcast_to(np.asarray(study.coords["session"]), self.panel.shape)
        self.basis_names, self.basis = time_basis(self.panel.time, session_label, o["trend"], int(o["breakpoint"]))
        self.predictors = Predictors.from_study(study, self.panel.cells, list(o["traits"]), list(o["time_varying"]))
        self._cells: xr.Dataset | None = None   # posterior mu, log_sigma (computed on demand)

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
            "beta_intercept": Prior("Normal", {"mu": mean_y, "sigma": 2.5 * sd_y}),
            "beta_time": Prior("Normal", {"mu": 0.0, "sigma": [2.5 * sd_y / v for v in sd_b]}),
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
            priors["gamma_trait"] = Prior("Normal", {"mu": 0.0, "sigma": 2.5 * sd_y})
        if self.predictors.tv_names:
            priors["gamma_within"] = Prior("Normal", {"mu": 0.0, "sigma": list(2.5 * sd_y / sd_w)})
            priors["gamma_between"] = Prior("Normal", {"mu": 0.0, "sigma": list(2.5 * sd_y / sd_bt)})
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
        mu = beta0 + (beta[:, None, None] * basis).sum(0)   # elementwise, see components' docstring
        # Gamma x: traits, within and between parts of time-varying predictors
        p = self.predictors
        if p.trait_names or p.tv_names:
            mu = mu + p.add(
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
        mu = mu + u0[c][:, None]
        if slopes:
            mu = mu + u1[c][:, None] * s
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
        cells = pm.compute_deterministics(idata.posterior, var_names=list(self.cell_vars), model=self.model,
                                          progressbar=False)
        self._cells = cells[["mu", "log_sigma"]]
        return cells["loglik"]

    def cell_deterministics(self) -> xr.Dataset:
        """Posterior ``mu`` and ``log_sigma`` per participant x session (computed once)."""
        idata = self._fitted()
        if self._cells is None:
            self._cells = pm.compute_deterministics(idata.posterior, var_names=["mu", "log_sigma"],
                                                    model=self.model, progressbar=False)
        return self._cells

    def participant_effects(self, seed: int = 0) -> xr.DataArray:
        """Draws of the participant intercept and slope, (chain, draw, participant, effect):
        exact draws from their conditional posterior given each draw of the other parameters."""
        ds = self._fitted().posterior.merge(self.cell_deterministics())
        return self._draw_effects(ds, self.panel.cells(self.spec.outcome)[1], np.random.default_rng(seed))

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
        rng = np.random.default_rng(seed)
        ds = idata.posterior.merge(self.cell_deterministics())
        r = self._draw_effects(ds, self.panel.cells(self.spec.outcome)[1], np.random.default_rng(seed))
        pp = self._replicate(ds, r, rng)
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
        no_data = np.zeros(self.panel.shape)
        r = self._draw_effects(prior, no_data, np.random.default_rng(seed))
        pp = self._replicate(prior, r, np.random.default_rng(seed))
        return az.InferenceData(prior=prior, prior_predictive=pp, observed_data=self._observed())

    def prior_study(self, seed: int) -> tuple[Study, xr.Dataset]:
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
        fixed = post["beta_intercept"] + (post["beta_time"] * basis).sum("time_term")
        u = post["u_community"]
        traj = fixed + u.sel(effect="intercept", drop=True)
        if self.options["random_slopes"]:
            traj = traj + u.sel(effect="slope", drop=True) * s
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

    def plot_trajectories(self, communities: list | None = None, hdi_prob: float = 0.9, ax=None):
        """Posterior community trajectories (mean and HDI band) with observed community means."""
        import matplotlib.pyplot as plt

        post = self._fitted().posterior["trajectory_community"]
        chosen = communities or self.coords["community"]
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4.5))
        sessions = np.asarray(self.coords["session"])
        observed = self.study.table.groupby(["community", "session"])[self.spec.outcome].mean()
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(chosen)))
        for color, comm in zip(colors, chosen):
            draws = post.sel(community=comm)
            band = az.hdi(draws, hdi_prob=hdi_prob)["trajectory_community"].values
            ax.fill_between(sessions, band[:, 0], band[:, 1], color=color, alpha=0.15, linewidth=0)
            ax.plot(sessions, draws.mean(("chain", "draw")).values, color=color, linewidth=1.5)
            ax.plot(observed.loc[comm].index, observed.loc[comm].values, "o", color=color, markersize=3)
        ax.set_xlabel("session")
        ax.set_ylabel(self.spec.outcome)
        ax.set_title(f"{self.spec.outcome}: community trajectories ({int(hdi_prob * 100)}% HDI), dots = observed means")
        return ax
