r"""Model C: knowledge sharing with time-varying support, self-efficacy and motivation, as a state-space model
(``docs/models.md``, section 4).

Each observed scale score of support (S), self-efficacy (E), motivation (M) and sharing (K) is a person mean, a
session effect, a within-person state and item measurement error; the within-person states follow the lagged
equations of :class:`~lcbayes.processes.SharingDynamics`:

$$
y^v_{ti} = \mu^v_i + s^v_t + [c_{jt}]_{v=K} + w^v_{ti} + e^v_{ti},\qquad
e^v_{ti} \sim \mathrm{N}(0, \theta_v / n^v_{ti}),\qquad v \in \{S, E, M, K\}
$$

$$
M^w_{ti} = \phi_M M^w_{t-1,i} + \delta K^w_{t-1,i} + \theta S^w_{ti} + \zeta_{ti},\qquad
K^w_{ti} = \phi K^w_{t-1,i} + \beta_M M^w_{t-1,i} + \beta^S_i(t) S^w_{ti} + \beta_E E^w_{ti}
  + \beta_{SE} S^w_{ti} E^w_{ti} + \varepsilon_{ti}
$$

$$
\beta^S_i(t) = \gamma_0 + f(t) + \gamma_1 (\mu^E_i - m_E) + \tau_\beta z^\beta_i,\qquad
\mu_i = (\mu^S_i, \mu^E_i, \mu^M_i)^\top \sim \mathrm{MVN}(m, \Sigma),\qquad
\mu^K_i \sim \mathrm{N}\!\left(\pi_0 + \pi^\top (\mu_i - m) + a_g + b_j,\ \tau_K^2\right)
$$

$S^w_{ti}$ and $E^w_{ti}$ are white noise ($\sigma_S$, $\sigma_E$: ``sigma_within``), $\zeta$ and $\varepsilon$ the
innovations of motivation and sharing (``sigma_within``, ``sigma``). The names in the summaries: $\phi$ ``phi``,
$\phi_M$ ``phi_motivation``, $\delta$ ``delta``, $\beta_M$ ``beta_motivation`` (the spiral gain is
$\delta\beta_M$), $\theta$ ``theta_support``, $\gamma_0$ ``gamma_support``, $f(t)$ ``support_walk`` (a random walk
that sums to 0 over sessions), $\gamma_1$ ``gamma_efficacy``, $\tau_\beta$ ``tau_support_slope``, $\beta_E$
``beta_efficacy``, $\beta_{SE}$ ``beta_interaction``, $\pi$ ``pi``, $\pi_0$ ``pi_intercept``, $\tau_K$
``tau_sharing``, $s^v_t$ ``session_effect``, $c_{jt}$ ``community_session``, $m$ and $\Sigma$ ``mean_predictor``,
``tau_predictor`` and ``corr_predictor``.

The within-person states are integrated out by a Kalman filter (:mod:`lcbayes.kalman`), run over sessions as a
``scan`` and vectorised over participants, so that NUTS samples the population parameters and the participant-level
ones (person means, support slopes $z^\beta_i$), the community x session shocks $c_{jt}$ and the intercepts of the
organizations and communities, but no latent cell of a participant and session ($\mu^K_i$ is integrated out with
the states). The log likelihood stored for leave-one-participant-out cross-validation integrates out every
participant-level quantity (person means, support slope, states): a second, forward-only filter
(:func:`~lcbayes.kalman.marginal_filter`) evaluated once per draw, since a log likelihood conditional on sampled
person means gave Pareto k > 0.68 for 88% of participants at the reference design. The lagged states before the first
session are drawn from the stationary distribution of the first session's dynamics. Unobserved values (missed
sessions, missing predictors, sessions before joining or after leaving) are simply not observed. With
``time = "time"``, $(M^w, K^w)$ evolve over the time between sessions: $A^{\Delta t}$ and the innovations accumulated
over the gap (:meth:`~lcbayes.processes.SharingDynamics.over`), a discrete-time view of a continuous-time process.

The moderator $\mu^E_i$ of the cross-level term is sampled, so that term is exact. The within-person moderation
$\beta_{SE} S^w_{ti} E^w_{ti}$ is a product of two latent states: given the session's S and E scores both are
independent normals, and the filter carries the exact mean and variance of the product (assumed-density
filtering: the only approximation in the likelihood is treating that product as normal; exact when
$\beta_{SE} = 0$). The coverage study measures what this leaves of bias in $\beta_{SE}$.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from lcbayes import plots, tables
from lcbayes.data.study import Study
from lcbayes.errors import ConfigError
from lcbayes.kalman import scan_filter, scan_marginal
from lcbayes.models import formula
from lcbayes.models.base import BayesModel, Conclusion, ReportContent, on_fit
from lcbayes.models.components import GroupEffects, MeasurementError, uses_organization
from lcbayes.models.formula import COLUMNS as FORMULA_COLUMNS
from lcbayes.models.formula import FormulaTerms
from lcbayes.models.priors import GROUP, SLOPE, SPREAD, Prior, half_normal, mean_prior, slope_prior
from lcbayes.processes import SharingDynamics, sharing_paths, spectral_radius, support_slope
from lcbayes.sampling import fastest_compiling_backend
from lcbayes.tables import describe

VARIABLES = ("S", "E", "M", "K")     # order of the measures' first axis
# the coefficients of the dynamics (SharingDynamics argument -> parameter; 0 where an option switches a path off)
COEFFICIENTS = {"phi": "phi", "beta_m": "beta_motivation", "delta": "delta", "phi_m": "phi_motivation",
                "theta": "theta_support", "beta_e": "beta_efficacy", "beta_se": "beta_interaction"}
EFFICACY_LEVELS = [-1.0, 0.0, 1.0]   # self-efficacy levels (SDs of muE) for the support effect
SWITCHES = ("autoregression", "time_varying_support", "cross_level", "support_slopes", "interaction",
            "spiral", "between", "trends", "community", "community_sessions")
ERROR_MODES = ("auto", "items", "none")
AUTOREGRESSION = 0.3   # prior SD of phi and phiM (within-person inertia from one session to the next)


class KnowledgeSharing(BayesModel):
    """Knowledge sharing after each session with time-varying support, self-efficacy and motivation.

    Options (``spec["options"]`` or keyword arguments):

    - ``support``, ``self_efficacy``, ``motivation``: names of the session-level measures (S, E, M); the spec's
      ``outcome`` is knowledge sharing K;
    - ``measurement_error``: ``"auto"`` (item error of every measure that has items; default), ``"items"`` (all four
      must have items) or ``"none"`` (scale scores taken as error-free);
    - ``time``: ``"session"`` (default: one step of the dynamics per session) or ``"time"`` (the study's time role:
      the K-M dynamics run over the time between sessions, A^gap, with gaps in units of ``gap_unit``, default the
      median gap, so that phi, phiM, delta and betaM are per typical gap; equal gaps give the session model);
    - switches, each true by default, to compare simpler models: ``autoregression`` (phi), ``time_varying_support``
      (f), ``cross_level`` (gamma1), ``support_slopes`` (ubeta), ``interaction`` (betaSE), ``spiral`` (betaM and
      delta: off drops both paths between K and M), ``between`` (pi), ``trends`` (session effects of S, E, M, K),
      ``community`` (b_comm), ``community_sessions`` (c_jt); ``organization`` intercepts: true, false or ``"auto"``.
    """

    name = "knowledge_sharing"
    over_sessions = ("phi", "phi_motivation", "delta", "beta_motivation", "session_effect", "tau_community_session",
                     "sd_support_walk")
    option_defaults: ClassVar[dict[str, Any]] = {
        "support": "support", "self_efficacy": "self_efficacy", "motivation": "motivation",
        "measurement_error": "auto", "organization": "auto", "lkj_eta": 2.0, "time": "session", "gap_unit": None,
        "location": "",
        **{switch: True for switch in SWITCHES}}
    # the filter's scan compiles in seconds with JAX (lcbayes[jax]), in minutes with Numba
    sampler_defaults = {"backend": fastest_compiling_backend(), "target_accept": 0.9, "draws": 1000, "tune": 1000}
    cell_vars = ("loglik", "expected", "predictive_sd")
    observation_masks: ClassVar[dict[str, int]] = {"observed": 1}
    extra: FormulaTerms | None = None   # the option location's formula terms (on sharing)
    errors: dict[str, MeasurementError | None]

    def prepare(self) -> None:
        o, study = self.options, self.study
        for switch in SWITCHES:
            if not isinstance(o[switch], bool):
                raise ConfigError(f"option {switch} must be true or false, got {o[switch]!r}.")
        if o["measurement_error"] not in ERROR_MODES:
            raise ConfigError(f"option measurement_error must be one of {', '.join(ERROR_MODES)} for model C, got "
                              f"{o['measurement_error']!r}.")
        self.use_org = uses_organization(o["organization"], study)
        fitted = self.reference
        if fitted is not None and list(study.coords["session"]) != list(fitted.study.coords["session"]):
            raise ConfigError(f"model C predicts at the fitted sessions ({fitted.study.coords['session']}): session "
                              "effects and the random walk of the support effect are estimated per session; these "
                              f"data have sessions {study.coords['session']}. Fix: give rows of exactly those "
                              "sessions (a row may leave every measure missing).")
        self.gap_unit = 1.0   # the time of one step of the dynamics (time = "time": set by _gaps)
        self.gaps = self._gaps() if o["time"] == "time" else None
        for name in self.processes:
            if study.roles.level_of(name) != "session":
                raise ConfigError(f"'{name}' is participant-level; model C needs session-level measures "
                                  f"for the outcome and the options support, self_efficacy and motivation.")
        self.extra = FormulaTerms.parse("location", o["location"], self.panel, self.spec.outcome,
                                        fitted.extra if isinstance(fitted, KnowledgeSharing) else None)
        grids = [self.panel.cells(name) for name in self.processes]   # S, E, M, K: (values 0 where missing, mask)
        self.values, self.observed = (np.stack(g) for g in zip(*grids, strict=True))   # (4, P, T) each, 1 = observed
        self.errors = ({name: MeasurementError.of(self.panel, name, o["measurement_error"]) for name in self.processes}
                       if not isinstance(fitted, KnowledgeSharing) else
                       {name: e and e.on(self.panel, name) for name, e in fitted.errors.items()})
        self.error_variance = np.stack([np.zeros(self.panel.shape) if e is None else e.theta_hat * e.inv_answered
                                        for e in self.errors.values()])   # (4, P, T) theta_v / n_vti

    def _gaps(self) -> np.ndarray | None:
        """(P, T) time since the previous session in units of ``gap_unit`` (default: the median gap between sessions
        that a participant attended one after the other), column 0 set to 1; None where every gap is 1 (the session
        model)."""
        unit = self.options["gap_unit"]
        steps = np.diff(self.panel.time, axis=1)
        present = self.panel.present()
        if unit is None and isinstance(self.reference, KnowledgeSharing):
            unit = self.reference.gap_unit
        if unit is None:
            both = (present[:, 1:] > 0) & (present[:, :-1] > 0)
            unit = float(np.median(steps[both])) if both.any() else 1.0
        if isinstance(unit, bool) or not isinstance(unit, int | float) or not unit > 0:
            raise ConfigError(f"option gap_unit must be a positive number (the time of a typical gap between "
                              f"sessions, in the time column's units), got {unit!r}.")
        bad = np.flatnonzero((steps <= 0).any(axis=1))
        if len(bad):
            names = ", ".join(str(self.study.coords["participant"][i]) for i in bad[:5])
            raise ConfigError(f"time does not increase from session to session for {len(bad)} participant(s) "
                              f"({names}) once missed sessions take their community's typical time; check the time "
                              f"column, or use time = 'session'.")
        self.gap_unit = float(unit)
        gaps = np.concatenate([np.ones((steps.shape[0], 1)), steps / unit], axis=1)
        return None if np.allclose(gaps, 1.0) else gaps

    @property
    def processes(self) -> list[str]:
        """The measures of S, E, M and K, in that order."""
        o = self.options
        return [o["support"], o["self_efficacy"], o["motivation"], self.spec.outcome]

    @property
    def measures(self) -> list[str]:
        """S, E, M, K and the variables the option ``location``'s formula reads."""
        extra = [v for v in self.extra.variables if v not in FORMULA_COLUMNS] if self.extra else []
        return list(dict.fromkeys(self.processes + extra))

    @property
    def item_measures(self) -> list[str]:
        return [name for name, error in self.errors.items() if error is not None]

    @property
    def predictors(self) -> list[str]:
        return self.processes[:3]

    def default_priors(self) -> dict[str, Prior]:
        """Priors on the natural scale of each measure (:mod:`lcbayes.models.priors`): with the middle m_v and half
        range h_v of the response range of S, E, M, K (3 and 2 on a 1-5 scale), the same for every study on those
        scales:

        means N(m_v, h_v/4); SDs of the person means, of muK around its expectation, the within SDs of S, E and
        the innovation SDs of M and K half-normal(h_v/5); correlations of the person means LKJ(2); autoregressions
        phi, phiM N(0, 0.3) (truncated to stable dynamics with the lags, below); a coefficient of a predictor on
        an outcome N(0, h_out/2 per h_in of the predictor): gamma0, betaE, theta, betaM, delta and pi; the product
        terms betaSE (Sw Ew) and gamma1 (Sw muE) per h_S h_E; the SD of the person-specific support slopes ubeta
        half-normal(h_K/4 per h_S) and the random-walk step of f half-normal(h_K/10 per h_S); session effects
        zero-sum normal(h_v/8) per variable; SDs of community x session shocks and of organization and community
        intercepts half-normal(h_K/8).
        """
        half = np.array([self.study.response_range(name).half for name in self.processes])
        mid = np.array([self.study.response_range(name).mid for name in self.processes])
        S, E, M, K = range(4)
        o = self.options
        priors = {
            "sigma_within": half_normal(SPREAD * half[:3]), "sigma": half_normal(SPREAD * half[K]),
            "pi_intercept": mean_prior(mid[K], half[K]), "tau_sharing": half_normal(SPREAD * half[K]),
            "gamma_support": slope_prior(half[K], half[S]), "beta_efficacy": slope_prior(half[K], half[E]),
            "theta_support": slope_prior(half[M], half[S]), "mean_predictor": mean_prior(mid[:3], half[:3]),
            **self.person_means_group.priors(list(SPREAD * half[:3]), float(o["lkj_eta"])),
            "phi_motivation": Prior("Normal", {"mu": 0.0, "sigma": AUTOREGRESSION})}
        optional = [   # (the switch that adds the parameter; parameter; prior)
            ("trends", "session_effect", Prior("ZeroSumNormal", {"sigma": [[GROUP * v] for v in half]})),
            ("community_sessions", "tau_community_session", half_normal(GROUP * half[K])),
            ("autoregression", "phi", Prior("Normal", {"mu": 0.0, "sigma": AUTOREGRESSION})),
            ("time_varying_support", "sd_support_walk", half_normal(SLOPE / 5 * half[K] / half[S])),
            ("cross_level", "gamma_efficacy", slope_prior(half[K], half[S] * half[E])),
            ("support_slopes", "tau_support_slope", half_normal(SLOPE / 2 * half[K] / half[S])),
            ("interaction", "beta_interaction", slope_prior(half[K], half[S] * half[E])),
            ("spiral", "beta_motivation", slope_prior(half[K], half[M])),
            ("spiral", "delta", slope_prior(half[M], half[K])),
            ("between", "pi", slope_prior(half[K], half[:3])),
        ]
        priors.update({name: prior for switch, name, prior in optional if o[switch]})
        if self.extra:   # the option location's formula terms on sharing: N(0, h_K/2 per 2 SDs of each column)
            priors["beta_location"] = slope_prior(half[K], 2 * self.extra.sd)
        for level in self._intercept_levels():
            priors.update(GroupEffects(level, level).priors(GROUP * half[K], 1.0))
        return priors

    @property
    def coords(self) -> dict[str, list]:
        coords = {**super().coords, **self.person_means_group.coords(), "process": list(VARIABLES)}
        return {**coords, "step": coords["session"][1:], **(self.extra.coords() if self.extra else {})}

    def build(self) -> pm.Model:
        o = self.options
        with pm.Model(coords=self.coords) as model:
            cell = ("participant", "session")
            values = pm.Data("values", self.values, dims=("process",) + cell)
            observed = pm.Data("observed", self.observed, dims=("process",) + cell)
            error = pm.Data("error_variance", self.error_variance, dims=("process",) + cell)
            codes = {level: pm.Data(f"{level}_of", c, dims="participant") for level, c in self._group_codes().items()}

            # offsets: session effects s_vt (zero-sum over sessions) and, for K, community x session shocks c_jt
            offsets: list[Any] = [0.0] * 4
            if o["trends"]:
                s = self.prior("session_effect", dims=("process", "session"))
                offsets = [s[v][None, :] for v in range(4)]
            if o["community_sessions"]:
                z_c = pm.Normal("z_community_session", 0.0, 1.0, dims=("community", "session"))
                c = pm.Deterministic("community_session", self.prior("tau_community_session") * z_c,
                                     dims=("community", "session"))
                offsets[3] = offsets[3] + c[codes["community"]]
            if self.extra:   # the option location's formula terms, on sharing
                offsets[3] = offsets[3] + self.extra.term(self.priors)
            sigma_w = self.prior("sigma_within", dims="predictor")
            q = [sigma_w[0] ** 2, sigma_w[1] ** 2, sigma_w[2] ** 2, self.prior("sigma") ** 2]

            # person means: (muS, muE, muM) ~ MVN(m, Sigma); muK ~ N(pi0 + pi . (mu - m) + a_org + b_comm, tauK)
            m = self.prior("mean_predictor", dims="predictor")
            chol = self.person_means_group.centred_cholesky(self.priors)
            mu = pm.MvNormal("mu_person", mu=m, chol=chol, dims=("participant", "predictor"))
            mean_k = self.prior("pi_intercept") + pt.zeros(self.panel.shape[0])
            for level in self._intercept_levels():   # non-centred (centred: 4x the leapfrog steps, measured)
                u = GroupEffects(level, level).effects(self.priors)
                mean_k = mean_k + u[codes[level]]
            pi = self.prior("pi", dims="predictor") if o["between"] else None
            # muK ~ N(mean_sharing, tauK), integrated out by the filter
            tau_k = self.prior("tau_sharing")
            mean_k = pm.Deterministic("mean_sharing", mean_k + (0.0 if pi is None else ((mu - m) * pi).sum(-1)),
                                      dims="participant")

            # support effect b_ti = gamma0 + f(t) + gamma1 (muE_i - mE) + ubeta_i
            f = None
            if o["time_varying_support"]:
                z_f = pm.Normal("z_support_walk", 0.0, 1.0, dims="step")
                walk = pt.concatenate([pt.zeros(1), pt.cumsum(self.prior("sd_support_walk") * z_f)])
                f = pm.Deterministic("support_walk", walk - walk.mean(), dims="session")[None, :]
            u_beta, tau_b = None, None
            if o["support_slopes"]:
                z_b = pm.Normal("z_support_slope", 0.0, 1.0, dims="participant")
                tau_b = self.prior("tau_support_slope")
                u_beta = (tau_b * z_b)[:, None]
            gamma1 = self.prior("gamma_efficacy") if o["cross_level"] else None
            gamma0 = self.prior("gamma_support")
            slope = support_slope(gamma0, f,
                                  None if gamma1 is None else (gamma1 * (mu[:, 1] - m[1]))[:, None], u_beta)
            dynamics = SharingDynamics(**{symbol: self.prior(name) if name in self.priors else 0.0
                                          for symbol, name in COEFFICIENTS.items()}, q=tuple(q))
            # the prior truncated to stable K-M dynamics (where the stationary start exists): both eigenvalues of A
            # inside the unit circle, |det A| < 1 and |tr A| < 1 + det A (Jury's conditions)
            trace = dynamics.phi + dynamics.phi_m
            det = dynamics.phi * dynamics.phi_m - dynamics.beta_m * dynamics.delta
            pm.Potential("stable_dynamics", pt.switch((pt.abs(det) < 1) & (pt.abs(trace) < 1 + det), 0.0, -np.inf))

            # the within-person states and muK integrated out by the filter, given the other person means
            means = [mu[:, 0], mu[:, 1], mu[:, 2], mean_k]
            residual = pt.stack([observed[v] * (values[v] - means[v][:, None] - offsets[v]) for v in range(4)])
            gap = None if self.gaps is None else pm.Data("gap", self.gaps, dims=cell)
            loglik, expected, variance = scan_filter(residual, error, observed, slope + pt.zeros(self.panel.shape),
                                                     dynamics, self.panel.shape, tau_k**2, gap)
            pm.Potential("likelihood", loglik.sum())

            # leave-one-participant-out: every participant-level quantity integrated out (evaluated per draw only)
            Sigma = chol @ chol.T
            cov_k = pt.zeros(3) if pi is None else pt.matmul(Sigma, pi)          # Cov((muS, muE, muM), muK)
            var_k = tau_k**2 + (0.0 if pi is None else pt.dot(pi, cov_k))
            person_cov = pt.concatenate([pt.concatenate([Sigma, cov_k[:, None]], axis=1),
                                         pt.concatenate([cov_k, pt.stack([var_k])])[None, :]], axis=0)
            zero = pt.zeros(self.panel.shape[0])
            population = [m[0] + zero, m[1] + zero, m[2] + zero,
                          mean_k - (0.0 if pi is None else ((mu - m) * pi).sum(-1))]
            centred = pt.stack([observed[v] * (values[v] - population[v][:, None] - offsets[v]) for v in range(4)])
            base = support_slope(gamma0, f) + pt.zeros((1, self.panel.shape[1]))
            marginal = scan_marginal(centred, error, observed, base[0], 0.0 if gamma1 is None else gamma1, person_cov,
                                     0.0 if tau_b is None else tau_b**2, dynamics, self.panel.shape, gap)
            pm.Deterministic("loglik", marginal, dims="participant")
            pm.Deterministic("expected", means[3][:, None] + offsets[3] + expected, dims=cell)
            pm.Deterministic("predictive_sd", pt.sqrt(variance), dims=cell)
        return model

    def _group_codes(self) -> dict[str, np.ndarray]:
        """Each participant's community and (where used) organization code."""
        organization = self.panel.organization
        org = {"organization": organization} if self.use_org and organization is not None else {}
        return {"community": self.panel.community, **org}

    def _intercept_levels(self) -> dict[str, np.ndarray]:
        """The levels with intercepts in muK (organization, community) and each participant's code."""
        return {level: codes for level, codes in self._group_codes().items()
                if level == "organization" or self.options["community"]}

    @property
    def person_means_group(self) -> GroupEffects:
        """(muS_i, muE_i, muM_i) - m: participant-level, correlated (integrated out by the filter)."""
        return GroupEffects("predictor", "participant", "predictor", tuple(self.predictors))

    def parameter_role(self, name: str) -> str:
        """Besides the shared roles: the K-M dynamics (lags and the spiral's paths) and the effects of support,
        self-efficacy and the person means on sharing and motivation."""
        if name in ("phi", "phi_motivation", "delta", "beta_motivation"):
            return "dynamics"
        if name.startswith(("beta_", "theta_")) or name in ("pi", "support_walk"):
            return "effects"
        return super().parameter_role(name)

    @property
    def population(self) -> list[str]:
        means = ["mean_predictor", "tau_predictor", "corr_predictor"]   # listed last
        names = [n for n in self.priors if n not in means] + means
        return names + (["support_walk"] if self.options["time_varying_support"] else [])

    def pointwise_loglik(self, idata: xr.DataTree) -> xr.DataArray:
        """Each participant's marginal log likelihood from the filter: the joint density of their S, E, M and K
        scores with their person means, support slope and within-person states integrated out (LOO leaves out whole
        participants), (chain, draw, participant)."""
        return self._cells(idata["posterior"].to_dataset(), ["loglik"])["loglik"]

    def grids(self, posterior: xr.Dataset) -> xr.Dataset:
        """The filter's one-step-ahead expected K (``expected``) and its predictive SD (``predictive_sd``) at the
        observed rows (over ``obs``)."""
        cells = self._cells(posterior, ["expected", "predictive_sd"])
        return xr.Dataset({name: self._at_rows(cells[name]) for name in ("expected", "predictive_sd")})

    def _at_rows(self, cells: xr.DataArray) -> xr.DataArray:
        """(..., participant, session) values at the rows with an observed outcome, over ``obs``."""
        obs = self._observed()["obs"].values
        at = {g: xr.DataArray(self.study.idx[g][obs], [("obs", obs)]) for g in ("participant", "session")}
        return cells.isel(at).drop_vars(list(at))

    def derived(self, idata: xr.DataTree, grids: xr.Dataset) -> xr.Dataset:
        """When and for whom support matters, the spiral, and within vs between effects.

        - ``support_effect`` (efficacy_level, session): gamma0 + f(t) + gamma1 c tau_E for self-efficacy c = -1, 0, +1
          SDs of the person means around their mean (f sums to 0, so gamma0 is the average over sessions);
        - ``support_late_minus_early``: the mean support effect over the second half of the sessions minus that
          over the first half (the pre-specified contrast of the time-varying support effect; a middle session of
          an odd number is in neither);
        - ``spiral_gain`` = delta betaM, the feedback K -> M -> K per two sessions;
        - ``spectral_radius``: the largest |eigenvalue| of A = [[phi, betaM], [delta, phiM]], the lag matrix of
          (Kw, Mw); the K-M system is stable (shocks die out) when < 1, which the prior demands (``stable`` is 1 in
          draws where it is: every draw);
        - ``within_between`` (predictor, effect): within effects (support: gamma0, the average over sessions;
          self-efficacy: betaE; motivation: betaM, lagged) beside the between effects pi.
        """
        post = idata["posterior"].to_dataset()
        zero = xr.zeros_like(post["gamma_support"])
        f = post.get("support_walk", zero.expand_dims(session=self.coords["session"]))   # switched off: absent, 0
        level = xr.DataArray(EFFICACY_LEVELS, dims="efficacy_level", coords={"efficacy_level": EFFICACY_LEVELS})
        sd_e = post["tau_predictor"].isel(predictor=1, drop=True)
        effect = post["gamma_support"] + f + post.get("gamma_efficacy", zero) * level * sd_e
        half = len(self.coords["session"]) // 2
        contrast = f.isel(session=slice(-half, None)).mean("session") - f.isel(session=slice(0, half)).mean("session")
        phi, beta_m, delta = (post.get(name, zero) for name in ("phi", "beta_motivation", "delta"))
        radius = spectral_radius(phi.values, beta_m.values, delta.values, post["phi_motivation"].values)
        within = xr.concat([post["gamma_support"], post["beta_efficacy"], beta_m], dim="predictor")
        between = post.get("pi", xr.zeros_like(within))
        wb = xr.concat([part.assign_coords(predictor=self.predictors) for part in (within, between)],
                       dim=pd.Index(["within", "between"], name="effect"))
        return xr.Dataset({"support_effect": effect.transpose("chain", "draw", "efficacy_level", "session"),
                           "support_late_minus_early": contrast,
                           "spiral_gain": delta * beta_m, "spectral_radius": (("chain", "draw"), radius),
                           "stable": (("chain", "draw"), (radius < 1).astype(float)),
                           "within_between": wb.transpose("chain", "draw", "predictor", "effect")})

    support_effect_table = on_fit(tables.support_effect_table)
    within_between_table = on_fit(tables.within_between_table)
    spiral = on_fit(tables.spiral)

    def predicted(self, posterior: xr.Dataset, kind: str, seed: int, fitted: BayesModel | None,
                  new_groups: str) -> dict[str, xr.DataArray]:
        """The filter's one-step-ahead expected sharing per participant x session (``expected``), given the
        participant's earlier scores and the session's support, self-efficacy and motivation where the data have
        them, or draws from its predictive distribution N(expected, predictive_sd) (``predictive``). New
        participants' person means and support slopes come from their population (:mod:`lcbayes.models.prediction`)."""
        cells = self._cells(posterior, ["expected", "predictive_sd"])
        values = cells["expected"]
        if kind == "predictive":
            noise = np.random.default_rng(seed).standard_normal(values.shape)
            values = values + cells["predictive_sd"] * noise
        return {self.spec.outcome: values.transpose("chain", "draw", "participant", "session")}

    def sample_posterior_predictive(self, seed: int = 0) -> xr.DataTree:
        """Add replicated sharing at the observed rows from the one-step-ahead predictive distributions of the
        filter, N(expected, predictive_sd)."""
        idata = self.fitted()
        post = idata["posterior"].to_dataset()
        rng = np.random.default_rng(seed)
        rep = post["expected"] + post["predictive_sd"] * xr.DataArray(rng.standard_normal(post["expected"].shape),
                                                                      dims=post["expected"].dims)
        idata["posterior_predictive"] = xr.Dataset({self.spec.outcome: rep})
        return idata

    def marginal_replicates(self, seed: int = 0) -> xr.DataArray:
        """Replicated sharing at the observed rows, (chain, draw, obs), for participants new to the study: at each
        posterior draw, their person means of S, E, M (``mu_person``, and with them ``mean_sharing`` through ``pi``),
        their person mean of K (integrated out in the fit) and their support slopes drawn anew from their population,
        then S, E, M and K simulated forward by the model's equations (:meth:`_simulate`); session effects,
        community x session shocks and community and organization effects as sampled. The per-participant log
        likelihood integrates the same quantities out, so :meth:`loo_pit` can weigh these replicates."""
        post = self.fitted()["posterior"].to_dataset()
        rng = np.random.default_rng(seed)
        n_people, k = self.study.n("participant"), len(self.predictors)
        obs = self._observed()["obs"].values
        out = np.empty((post.sizes["chain"], post.sizes["draw"], len(obs)))
        for c in range(post.sizes["chain"]):
            for d in range(post.sizes["draw"]):
                p = post.isel(chain=c, draw=d)
                tau = p["tau_predictor"].values
                corr = np.eye(k)
                if "corr_predictor" in p:
                    for (a, b), r in zip(combinations(range(k), 2), p["corr_predictor"].values, strict=True):
                        corr[a, b] = corr[b, a] = r
                mu = p["mean_predictor"].values + rng.standard_normal((n_people, k)) @ np.linalg.cholesky(
                    tau[:, None] * corr * tau[None, :]).T
                fresh: dict[str, Any] = {"mu_person": (("participant", "predictor"), mu)}
                if "pi" in p:
                    shift = ((mu - p["mu_person"].values) * p["pi"].values).sum(-1)
                    fresh["mean_sharing"] = ("participant", p["mean_sharing"].values + shift)
                if "z_support_slope" in p:
                    fresh["z_support_slope"] = ("participant", rng.standard_normal(n_people))
                out[c, d] = self._simulate(p.assign(fresh), rng)[self.spec.outcome][obs]
        return xr.DataArray(out, coords={"obs": obs}, dims=("chain", "draw", "obs"), name=self.spec.outcome)

    def prior_study(self, seed: int) -> tuple[Study, xr.Dataset]:
        """Parameters drawn from the prior; S, E, M, K drawn from the model's equations at them and kept where this
        study has values."""
        p = self._prior_draws(1, seed).isel(chain=0, draw=0)
        return self.study.with_values(self._simulate(p, np.random.default_rng(seed))), p

    def sample_prior_predictive(self, draws: int = 200, seed: int = 0) -> xr.DataTree:
        """Prior draws of the parameters and the S, E, M, K values they generate at the rows where sharing is observed
        (NaN where the study has no value of a predictor), groups ``prior``, ``prior_predictive`` and
        ``observed_data`` (sharing)."""
        prior = self._prior_draws(draws, seed)
        rng = np.random.default_rng(seed)
        obs = self._observed()["obs"].values
        sims = [self._simulate(prior.isel(chain=0, draw=d), rng) for d in range(draws)]
        pp = xr.Dataset({name: (("chain", "draw", "obs"), np.stack([x[name][obs] for x in sims])[None])
                         for name in self.processes}, coords={"obs": obs})
        return xr.DataTree.from_dict({"prior": prior, "prior_predictive": pp, "observed_data": self._observed()})

    def _prior_draws(self, draws: int, seed: int) -> xr.Dataset:
        """``draws`` draws of the parameters from the prior truncated to stable K-M dynamics (the model's
        ``stable_dynamics`` term): draws from the untruncated prior, the unstable ones rejected."""
        names = [v.name for v in self.model.free_RVs] + \
            [v.name for v in self.model.deterministics if v.name not in self.cell_vars]
        kept: list[xr.Dataset] = []
        rng = np.random.default_rng(seed)
        for _ in range(100):
            batch = pm.sample_prior_predictive(draws=max(4 * draws, 20), var_names=names, model=self.model,
                                               random_seed=int(rng.integers(2**31)))["prior"].to_dataset()
            zero = xr.zeros_like(batch["phi_motivation"])
            radius = spectral_radius(*(batch.get(name, zero).values for name in
                                       ("phi", "beta_motivation", "delta", "phi_motivation")))
            kept.append(batch.isel(draw=np.flatnonzero(radius[0] < 1)))
            if sum(k.sizes["draw"] for k in kept) >= draws:
                stable = xr.concat(kept, dim="draw").isel(draw=slice(0, draws))
                return stable.assign_coords(draw=np.arange(draws))
        tried = 100 * max(4 * draws, 20)
        raise ConfigError(f"the priors of phi, phi_motivation, delta and beta_motivation gave stable dynamics in only "
                          f"{sum(k.sizes['draw'] for k in kept)} of {tried} draws ({draws} needed); narrow them.")

    def _simulate(self, p: xr.Dataset, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """S, E, M, K per row of the study (NaN where the study has none) from one parameter draw ``p`` (person means
        included), lagged states before session 1 from the stationary distribution, the states run
        forward by :func:`~lcbayes.processes.sharing_paths`, plus session effects, community x session shocks and
        item error of variance theta_v / n_vti."""
        P, T = self.panel.shape
        value: Any = {name: draw.values for name, draw in p.items()}.get   # None or a default: path switched off
        m, mu = value("mean_predictor"), value("mu_person")
        mean_k = value("mean_sharing") + float(value("tau_sharing")) * rng.standard_normal(P)
        sd_s, sd_e, sd_m = value("sigma_within")
        sd = np.array([sd_s, sd_e, sd_m, float(value("sigma"))])
        nu = rng.standard_normal((4, P, T)) * sd[:, None, None]
        gamma1, tau_b = value("gamma_efficacy"), value("tau_support_slope")
        slope = support_slope(float(value("gamma_support")), value("support_walk", np.zeros(T))[None, :],
                              None if gamma1 is None else (float(gamma1) * (mu[:, 1] - m[1]))[:, None],
                              None if tau_b is None else (float(tau_b) * value("z_support_slope"))[:, None])
        slope = np.broadcast_to(slope, (P, T))
        dynamics = SharingDynamics(**{symbol: float(value(name, 0.0)) for symbol, name in COEFFICIENTS.items()},
                                   q=tuple(sd**2))
        s11, s12, s22 = dynamics.stationary(slope[:, 0])
        z1, z2 = rng.standard_normal((2, P))
        lag_m = np.sqrt(s11) * z1
        lag_k = s12 / np.sqrt(s11) * z1 + np.sqrt(np.maximum(s22 - s12**2 / s11, 0.0)) * z2
        within = sharing_paths(slope, nu, (lag_m, lag_k), dynamics, self.gaps)
        session = value("session_effect", np.zeros((4, T)))
        shocks = value("community_session", np.zeros((self.study.n("community"), T)))[self.panel.community]
        grids = [mu[:, [v]] + session[v] + within[v] for v in range(3)]
        extra = (np.tensordot(np.asarray(value("beta_location", 0.0)), self.extra.columns, axes=1) if self.extra
                 else 0.0)
        grids.append(mean_k[:, None] + session[3] + shocks + within[3] + extra)
        grids = [g + np.sqrt(e) * rng.standard_normal((P, T)) for g, e in zip(grids, self.error_variance, strict=True)]
        pi, ti = self.study.idx["participant"], self.study.idx["session"]
        return {name: np.where(np.isnan(self.study.values(name)), np.nan, grid[pi, ti])
                for name, grid in zip(self.processes, grids, strict=True)}

    plot_support_effect = on_fit(plots.plot_support_effect)
    plot_within_between = on_fit(plots.plot_within_between)

    def report_content(self) -> ReportContent:
        post = self.fitted()["posterior"].to_dataset()
        derived = post[["support_effect", "support_late_minus_early", "within_between", "spiral_gain",
                        "spectral_radius"]].assign(p_stable=post["stable"].astype(float))
        out: list[Conclusion | str] = [
            Conclusion(describe("Support effect averaged over sessions (average self-efficacy), gamma0",
                                post["gamma_support"]), ("gamma_support",)),
            Conclusion(describe("Support effect, late minus early sessions", post["support_late_minus_early"]),
                       ("support_late_minus_early", "sd_support_walk"))]
        if "gamma_efficacy" in post:
            out.append(Conclusion(describe("Cross-level moderation by mean self-efficacy, gamma1",
                                           post["gamma_efficacy"]), ("gamma_efficacy",)))
        out.append(Conclusion(
            describe("Spiral gain delta x betaM (sharing -> motivation -> sharing)", post["spiral_gain"]) + "; "
            + describe("largest |eigenvalue| of the sharing-motivation lag matrix (the prior keeps it below 1: stable "
                       "dynamics)", post["spectral_radius"]) + ".",
            ("spiral_gain", "delta", "beta_motivation", "phi", "phi_motivation"),
            ("a product of two lagged paths: its posterior is right-skewed, so report its median and interval "
             "beside the mean",)))
        wb = post["within_between"]
        names = {"within": dict(zip(self.predictors, ("gamma_support", "beta_efficacy", "beta_motivation"),
                                    strict=True)), "between": {v: f"pi[{v}]" for v in self.predictors}}
        for v in wb["predictor"].values:
            out.append(Conclusion(describe(f"{v}: within-person effect", wb.sel(predictor=v, effect="within")) + "; "
                                  + describe("between-person effect", wb.sel(predictor=v, effect="between")),
                                  (names["within"][v], names["between"][v])))
        figures = [("Support effect over sessions at low (-1 SD), mean and high (+1 SD) self-efficacy, 90% HDI.",
                    self.plot_support_effect().figure),
                   ("Within- and between-person effects of each predictor, 90% HDI.",
                    self.plot_within_between().figure)]
        report_tables = [("Support effect per session and self-efficacy level", self.support_effect_table()),
                         ("Within- and between-person effects", self.within_between_table()),
                         ("Spiral (motivation <-> sharing) and stability", self.spiral().to_frame("value"))]
        out += formula.conclusions(post, self.extra)
        return ReportContent(derived, figures, report_tables, out)

