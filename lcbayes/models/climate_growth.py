r"""Model A: three-level growth of learning-climate perceptions (``docs/models.md``, section 2).

For participant $i$ of community $j$ (organization $g$) at session $t$, at time $s_{ti}$:

$$
y_{ti} = \beta_0 + \sum_{k} \beta_k B_k(s_{ti}) + \Gamma x_{ti}
  + u_{0j} + u_{1j} s_{ti} + r_{0i} + r_{1i} s_{ti} + a_g + e_{ti},
\qquad e_{ti} \sim \mathrm{N}(0, \sigma^2)
$$

$$
(u_{0j}, u_{1j})^\top \sim \mathrm{MVN}(0, \Sigma_u),\quad
(r_{0i}, r_{1i})^\top \sim \mathrm{MVN}(0, \Sigma_r),\quad
\Sigma = \begin{pmatrix} \tau_0^2 & \rho\,\tau_0\tau_1 \\ \rho\,\tau_0\tau_1 & \tau_1^2 \end{pmatrix},\quad
a_g \sim \mathrm{N}(0, \tau_a^2)
$$

$B_k(s)$ is the time trend (linear, quadratic or piecewise; $\beta_k$ is ``beta_time``, $\beta_0$
``beta_intercept``) and $\Gamma x_{ti}$ the within-person, between-person and community parts of the predictors
(``gamma_within``, ``gamma_between``, ``gamma_community``, ``gamma_trait``). $(\tau_{u0}, \tau_{u1}, \rho_u)$ are
``tau_community`` and ``corr_community``, $(\tau_{r0}, \tau_{r1}, \rho_r)$ ``tau_participant`` and
``corr_participant``, $\tau_a$ ``tau_organization`` and $\sigma$ ``sigma``. Community (u) and organization (a)
effects are non-centred; participant effects (r) are integrated out of the likelihood in closed form and drawn
exactly afterwards (:mod:`lcbayes.models.marginal`). Reduced to linear time without predictors it is
``lme4::lmer(y ~ time + (time|community) + (time|participant))``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from lcbayes import plots
from lcbayes.data.study import Study
from lcbayes.errors import ConfigError
from lcbayes.models import formula
from lcbayes.models.base import Conclusion, ReportContent, on_fit
from lcbayes.models.climate import LOCATION_OPTIONS, ClimateModel
from lcbayes.models.integrated import integrated_loglik
from lcbayes.models.ordinal import ORDINAL_OPTIONS, OrdinalOutcome, response_logp
from lcbayes.models.priors import SPREAD, Prior, half_normal
from lcbayes.tables import describe

LEVELS = ["community", "participant", "organization", "residual"]


class ClimateGrowth(ClimateModel):
    """Three-level growth model of a session-level outcome (e.g. climate perceptions).

    Options (``spec["options"]`` or keyword arguments):

    - ``trend``: ``"linear"``, ``"quadratic"`` or ``"piecewise"`` (with ``breakpoint``, the
      last session before the transition);
    - ``time``: ``"session"`` (s = session - 1) or ``"time"`` (the study's time role), divided by ``time_scale``;
    - ``random_slopes``: random time slopes for communities and participants (default true);
    - ``organization``: crossed organization intercepts, ``"auto"`` = when the study has them;
    - ``traits``: participant-level predictors (standardised);
    - ``time_varying``: session-level predictors split into within- and between-participant parts
      (``centring``: ``"latent"`` person means, or ``"observed"``; ``contextual``: also between communities);
    - ``measurement``: ``"scale"`` (the scale score, Gaussian) or ``"items"`` (the scale's Likert items as ordinal
      indicators of the latent score, :mod:`lcbayes.models.ordinal`); ``family``: ``"gaussian"`` or ``"ordinal"``
      (one rated item as an ordinal response); ``thresholds``: ``"invariant"`` across sessions or free per
      ``"session"``.
    """

    name = "climate_growth"
    over_sessions = ("beta_time", "gamma_within", "sigma_within")
    option_defaults: ClassVar[dict[str, Any]] = {**LOCATION_OPTIONS, **ORDINAL_OPTIONS}
    ordinal: OrdinalOutcome | None = None

    def prepare(self) -> None:
        self.prepare_parts(participant_slopes=bool(self.options["random_slopes"]))
        self.ordinal = OrdinalOutcome.from_options(self.panel, self.spec.outcome, self.options)

    def check_new_data(self) -> None:
        if self.ordinal is not None:
            raise ConfigError("prediction on new data is available for measurement = \"scale\" and family = "
                              "\"gaussian\": the ordinal measurement model's latent scores exist at the fitted cells "
                              "only. Fix: predict() without data (in sample), or fit the Gaussian model.")

    def default_priors(self) -> dict[str, Prior]:
        """The location's and participants' priors (:class:`~lcbayes.models.climate.Location`,
        :class:`~lcbayes.models.climate.Participants`) and the residual SD half-normal(h/5), h the outcome's half
        range (one rated item: half-normal(2h/5), its SD includes the item's own); with ordinal measurement, the
        thresholds' and item SDs' priors (:class:`~lcbayes.models.ordinal.OrdinalOutcome`)."""
        loc, o = self.location, self.ordinal
        single = o is not None and not o.items
        return {**loc.priors(), **self.participants.priors(loc.scale, loc.span()),
                "sigma": half_normal((2 if single else 1) * SPREAD * loc.scale.half),
                **(o.priors(loc.scale.half) if o else {})}

    def build(self) -> pm.Model:
        with pm.Model(coords=self.coords) as model:
            if self.ordinal is None:
                self.build_climate()
            else:
                self.build_ordinal(self.ordinal)
        return model

    def build_ordinal(self, o: OrdinalOutcome) -> None:
        """The growth equations on latent scores measured by ordinal responses (:mod:`lcbayes.models.ordinal`).

        Items: the latent scores eta_tij of the observed cells (``eta``, dim ``cell``) are parameters whose density is
        the growth model's, with the participant effects integrated out as for observed scores; each answered item adds
        its ordinal log probability. One rated item: the response's cell probability replaces the normal density, and
        the participant effects are sampled."""
        resp, cells = o.responses, ("participant", "session")
        mask = pm.Data("mask", resp.cells, dims=cells)
        s = pm.Data("s", self.panel.time, dims=cells)
        mu = self.location.build(self.priors, s)
        log_sigma = self.log_sigma(s)
        kappa = o.thresholds.build(self.priors)
        if not o.items:
            self.participants.likelihood(self.priors, None, mask, s, mu, log_sigma, cell_logp=o.cell_logp(kappa))
            return
        pi, ti = np.nonzero(resp.cells)
        eta_cells = pm.Flat("eta", dims="cell", initval=resp.score[pi, ti])
        eta = pt.set_subtensor(pt.zeros(self.panel.shape)[pi, ti], eta_cells)
        self.participants.likelihood(self.priors, eta, mask, s, mu, log_sigma)
        psi = self.prior("item_sd", dims="item")
        pm.Deterministic("discrimination", 1 / psi, dims="item")
        logp = response_logp(resp, eta[resp.participant, resp.session], kappa, psi[resp.item])
        pm.Potential("items_likelihood", (mask[resp.participant, resp.session] * logp).sum())
        # a cell left out by a refit (mask 0, cross-validation) keeps a proper density for its latent score, N(score, 1)
        pm.Potential("left_out_scores", -0.5 * ((1 - mask[pi, ti]) * (eta_cells - resp.score[pi, ti]) ** 2).sum())

    @property
    def coords(self) -> dict[str, list]:
        return {**super().coords, **(self.ordinal.coords() if self.ordinal else {})}

    @property
    def item_measures(self) -> list[str]:
        return [self.spec.outcome] if self.ordinal is not None and self.ordinal.items else []

    def log_sigma(self, s: pt.TensorVariable) -> pt.TensorVariable:
        """log sigma, one residual SD for all cells."""
        return pt.log(self.prior("sigma"))

    @property
    def population(self) -> list[str]:
        return (self.location.population + self.participants.effects.population + ["sigma"]
                + (self.ordinal.population if self.ordinal else []))

    def latent_scores(self, ds: xr.Dataset) -> np.ndarray:
        """With item measurement, the latent scores eta per draw (chain, draw, P, T); else the outcome."""
        if self.ordinal is None or not self.ordinal.items or "eta" not in ds:
            return super().latent_scores(ds)
        eta = ds["eta"].values
        out = np.zeros(eta.shape[:-1] + self.panel.shape)
        pi, ti = np.nonzero(self.ordinal.responses.cells)
        out[..., pi, ti] = eta
        return out

    def simulate_cells(self, ds: xr.Dataset, r: xr.DataArray, rng: np.random.Generator) -> np.ndarray:
        """Replicated scores per cell; with ordinal measurement, replicated responses (and the mean of the answered
        items) from the thresholds (:meth:`~lcbayes.models.ordinal.OrdinalOutcome.simulate`)."""
        if self.ordinal is None:
            return super().simulate_cells(ds, r, rng)
        kappa = ds["thresholds"].values
        kappa = kappa if self.ordinal.thresholds.per_session else kappa[..., None, :, :]
        psi = ds["item_sd"].values if self.ordinal.items else None
        return self.ordinal.simulate(self._expected(ds, r), np.exp(ds["log_sigma"].values), kappa, psi, rng)

    def pointwise_loglik(self, idata: xr.DataTree) -> xr.DataArray:
        """Log probability of each participant's observed scores, participant effects (and with item measurement the
        latent scores) integrated out: comparable across measurement models. Gaussian: the marginal density times the
        score's resolution 1 / items answered (1 for a rated item: the density itself); ordinal: adaptive quadrature
        (:mod:`lcbayes.models.integrated`)."""
        if self.ordinal is None:
            return super().pointwise_loglik(idata) + self._log_resolution()
        post = idata["posterior"].to_dataset()
        cells = self._cells(post, ["mu", "log_sigma"])
        shape = (post.sizes["chain"], post.sizes["draw"])

        def flat(a: xr.DataArray) -> np.ndarray:
            return a.values.reshape((-1,) + a.shape[2:])

        tau = flat(post["tau_participant"])
        slopes = self.participants.slopes
        rho = flat(post["corr_participant"])[:, 0] if slopes else np.zeros(len(tau))
        kappa = flat(post["thresholds"])
        kappa = kappa if self.ordinal.thresholds.per_session else kappa[:, None]
        psi = flat(post["item_sd"]) if self.ordinal.items else None
        loglik = integrated_loglik(self.ordinal.responses, flat(cells["mu"]), flat(cells["log_sigma"]),
                                   self.panel.time, tau[:, 0], tau[:, 1] if slopes else None, rho, kappa, psi)
        return xr.DataArray(loglik.reshape(shape + loglik.shape[1:]), dims=("chain", "draw", "participant"),
                            coords={"chain": post["chain"], "draw": post["draw"],
                                    "participant": self.coords["participant"]})

    def _log_resolution(self) -> xr.DataArray:
        """Per participant, the sum over observed cells of log(1 / items answered): the scale score's resolution (0
        for a measure without items)."""
        items = self.study.items.get(self.spec.outcome)
        out = np.zeros(self.panel.shape[0])
        if items is not None:
            ok = ~np.isnan(self.study.values(self.spec.outcome))
            answered = items.notna().sum(axis=1).to_numpy()[ok]
            np.add.at(out, self.study.idx["participant"][ok], -np.log(answered))
        return xr.DataArray(out, dims="participant", coords={"participant": self.coords["participant"]})

    def prior_study(self, seed: int) -> tuple[Study, xr.Dataset]:
        if self.ordinal is not None:
            raise ConfigError("simulation-based calibration replaces the outcome's scores, which the ordinal "
                              "measurement model does not read (it reads the responses). Fix: calibrate the model with "
                              "measurement = \"scale\" and family = \"gaussian\".")
        return super().prior_study(seed)

    def grids(self, posterior: xr.Dataset) -> xr.Dataset:
        """``trajectory_community`` (community, session) from :meth:`community_trajectories`."""
        return xr.Dataset({"trajectory_community": self.community_trajectories(posterior)})

    def derived(self, idata: xr.DataTree, grids: xr.Dataset) -> xr.Dataset:
        """Variance partition per session: ``variance`` (session, level): community, participant and organization
        variances (:meth:`random_effect_variances`) and the residual sigma^2 at each session's typical time;
        ``variance_share`` the same as shares of their sum."""
        post = idata["posterior"].to_dataset()
        resid = post["sigma"] ** 2 + 0 * self.session_grid()
        var = xr.concat(self.random_effect_variances(post) + [resid],
                        dim=xr.DataArray(LEVELS, dims="level", name="level"))
        var = var.drop_vars([c for c in var.coords if c not in ("chain", "draw", "session", "level")])
        return xr.Dataset({"variance": var, "variance_share": var / var.sum("level")})

    plot_trajectories = on_fit(plots.plot_trajectories)

    def report_content(self) -> ReportContent:
        post = self.fitted()["posterior"].to_dataset()
        out: list[Conclusion | str] = [
            Conclusion(describe(f"Change in {self.spec.outcome} per unit of time ({term})",
                                post["beta_time"].sel(time_term=term)), (f"beta_time[{term}]",))
            for term in post["time_term"].values]
        share = post["variance_share"].sel(level="community")
        out.append(Conclusion(f"Share of variance between communities: {float(share.isel(session=0).mean()):.2f} at "
                              f"the first session, {float(share.isel(session=-1).mean()):.2f} at the last (posterior "
                              "means).", ("variance_share", "tau_community")))
        split = self.location.predictors.contextual
        labels = {"gamma_trait": "within communities" if split else "per SD",
                  "gamma_trait_community": "between communities",
                  "contextual_trait": "contextual effect (between minus within communities)",
                  "gamma_within": "within persons",
                  "gamma_between": "between persons within communities" if split else "between persons",
                  "gamma_community": "between communities",
                  "contextual": "contextual effect (between communities minus between persons)"}
        for name in self.location.predictors.coefficients:
            dim = "trait" if "trait" in name else "predictor"
            out += [Conclusion(describe(f"{v}: {labels[name]} ({name})", post[name].sel({dim: v})), (f"{name}[{v}]",))
                    for v in post[dim].values]
        figure = ("Community trajectories: posterior mean and 90% HDI; dots are observed community means.",
                  self.plot_trajectories()[0].figure)
        tables = []
        if self.ordinal is not None:
            tables.append(("Item thresholds kappa (posterior means, response units; the reference cut points are "
                           f"{', '.join(f'{g:g}' for g in self.ordinal.thresholds.reference)})",
                           self.threshold_table()))
            if self.ordinal.items:
                out.append(Conclusion(describe("Latent residual SD of the score, free of item error (sigma)",
                                               post["sigma"]), ("sigma",)))
                out += [Conclusion(describe(f"SD of item {k} around the latent score (item_sd)",
                                            post["item_sd"].sel(item=k)), (f"item_sd[{k}]",))
                        for k in post["item"].values]
        out += formula.conclusions(post, self.location.extra)
        return ReportContent(xr.Dataset({"variance_share": post["variance_share"]}), [figure], tables, out)

    def threshold_table(self) -> pd.DataFrame:
        """Posterior mean thresholds: one row per item (and session, with thresholds per session), one column per cut
        between adjacent categories."""
        kappa = self.fitted()["posterior"].to_dataset()["thresholds"].mean(("chain", "draw"))
        return kappa.to_dataframe()["thresholds"].unstack("cut")[list(kappa["cut"].values)].round(3)
