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

from typing import Any, ClassVar

import arviz as az
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from lcbayes import plots
from lcbayes.models.base import ReportContent, on_fit
from lcbayes.models.climate import LOCATION_OPTIONS, ClimateModel
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
    - ``time_varying``: session-level predictors split into within-participant deviations
      and between-participant means (observed person-mean centring).
    """

    name = "climate_growth"
    option_defaults: ClassVar[dict[str, Any]] = LOCATION_OPTIONS

    def prepare(self) -> None:
        self.prepare_parts(participant_slopes=bool(self.options["random_slopes"]))

    def default_priors(self) -> dict[str, Prior]:
        """The location's and participants' priors (:class:`~lcbayes.models.climate.Location`,
        :class:`~lcbayes.models.climate.Participants`) and the residual SD half-normal(h/5), h the outcome's half
        range."""
        loc = self.location
        return {**loc.priors(), **self.participants.priors(loc.scale, loc.span()),
                "sigma": half_normal(SPREAD * loc.scale.half)}

    def build(self) -> pm.Model:
        with pm.Model(coords=self.coords) as model:
            self.build_climate()
        return model

    def log_sigma(self, s: pt.TensorVariable) -> pt.TensorVariable:
        """log sigma, one residual SD for all cells."""
        return pt.log(self.prior("sigma"))

    @property
    def population(self) -> list[str]:
        return self.location.population + self.participants.effects.population + ["sigma"]

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

    plot_trajectories = on_fit(plots.plot_trajectories)

    def report_content(self) -> ReportContent:
        post = self.fitted().posterior
        out = [describe(f"Change in {self.spec.outcome} per unit of time ({term})",
                        post["beta_time"].sel(time_term=term)) for term in post["time_term"].values]
        share = post["variance_share"].sel(level="community")
        out.append(f"Share of variance between communities: {float(share.isel(session=0).mean()):.2f} at the first "
                   f"session, {float(share.isel(session=-1).mean()):.2f} at the last (posterior means).")
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
            out += [describe(f"{v}: {labels[name]} ({name})", post[name].sel({dim: v})) for v in post[dim].values]
        figure = ("Community trajectories: posterior mean and 90% HDI; dots are observed community means.",
                  self.plot_trajectories().figure)
        return ReportContent(xr.Dataset({"variance_share": post["variance_share"]}), [figure], [], out)
