"""Model C: knowledge sharing with time-varying predictors (``docs/models.md``, model C).

Latent mean centring as in dynamic SEM: each time-varying predictor v in {S, E, M} (supervisor support, self-efficacy,
motivation to transfer) is a latent person mean plus a within-person deviation, and so is knowledge sharing K::

    S_ti = muS_i + lambda (t - 1) + Sw_ti,   E_ti = muE_i + Ew_ti,   Sw ~ N(0, sdS), Ew ~ N(0, sdE)
    M_ti = muM_i + Mw_ti,   Mw_ti = phiM Mw_(t-1)i + delta Kw_(t-1)i + theta Sw_ti + zeta_ti
    K_ti = muK_i + Kw_ti,   Kw_ti = phi Kw_(t-1)i + betaS_i(t) Sw_ti + betaE Ew_ti
                                    + betaSE Sw_ti Ew_ti + betaM Mw_(t-1)i + eps_ti
    betaS_i(t) = gamma0 + f(t) + gamma1 (muE_i - mE) + ubeta_i,   f(1) = 0, f(t) = f(t-1) + sd_f z_t
    muK_i = pi0 + pi1 (muS_i - mS) + pi2 (muE_i - mE) + pi3 (muM_i - mM) + a_org(i) + b_comm(i) + uK_i
    (muS_i, muE_i, muM_i) ~ MVN(m, diag(tau) Omega diag(tau))

The process starts at each community's first session (lags there are 0) and runs to the participant's last session in
the table (their *window*). Every value in the window that is not observed (a missed session, a missing predictor
value, a late joiner's sessions before joining) is a latent parameter, imputed by the model; nothing is dropped.

Latent values live on a fixed participant x session x variable grid, with a standard-normal placeholder where a value
is observed or outside the window, so the graph's shape depends on the design only and a compiled model takes another
study of the same design by swapping data (power analysis). Placeholders are not stored after sampling.

Person means of S, E, M and muK are centred parameters (each is informed by several sessions); ubeta, the organization
and community intercepts and the random-walk steps are non-centred.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from lcbayes import plots, tables
from lcbayes.data.study import Study
from lcbayes.errors import ConfigError
from lcbayes.models.base import BayesModel, ReportContent, on_fit
from lcbayes.models.components import GroupEffects, uses_organization
from lcbayes.models.priors import Prior, normal_scaled
from lcbayes.processes import normal_logpdf, sharing_paths, sharing_step, spectral_radius, support_slope
from lcbayes.tables import describe

VARIABLES = ("S", "E", "M", "K")     # order of the latent grid's first axis
EFFICACY_LEVELS = [-1.0, 0.0, 1.0]   # self-efficacy levels (SDs of muE) for the support effect
SWITCHES = ("autoregression", "time_varying_support", "cross_level", "support_slopes", "interaction",
            "spiral", "between", "support_trend", "community")


class KnowledgeSharing(BayesModel):
    """Knowledge sharing after each session with time-varying support, self-efficacy and motivation.

    Options (``spec["options"]`` or keyword arguments):

    - ``support``, ``self_efficacy``, ``motivation``: names of the session-level measures (S, E, M); the spec's
      ``outcome`` is knowledge sharing K;
    - ``centring``: ``"latent"`` person means (default) or ``"observed"`` ones (the classic two-step approach, biased
      with few sessions; kept for comparison);
    - switches, each true by default, to compare simpler models with LOO: ``autoregression`` (phi),
      ``time_varying_support`` (f), ``cross_level`` (gamma1), ``support_slopes`` (ubeta), ``interaction`` (betaSE),
      ``spiral`` (betaM and delta: off drops both paths between K and M), ``between`` (pi), ``support_trend``
      (lambda), ``community`` (b_comm); ``organization`` intercepts: true, false or ``"auto"``.
    """

    name = "knowledge_sharing"
    option_defaults: ClassVar[dict[str, Any]] = {
        "support": "support", "self_efficacy": "self_efficacy", "motivation": "motivation", "centring": "latent",
        "organization": "auto", "lkj_eta": 2.0, **{switch: True for switch in SWITCHES}}
    # measured on the reference design (benchmarks/RESULTS.md): 0.9 leaves a few divergences;
    # JAX samples this graph as fast as Numba and compiles in seconds instead of ~40 s
    sampler_defaults = {"backend": "nutpie-jax", "target_accept": 0.95, "draws": 1000, "tune": 1000}
    cell_vars = ("loglik", "expected")

    def prepare(self) -> None:
        o, study = self.options, self.study
        for switch in SWITCHES:
            if not isinstance(o[switch], bool):
                raise ConfigError(f"option {switch} must be true or false, got {o[switch]!r}.")
        if o["centring"] not in ("latent", "observed"):
            raise ConfigError(f"option centring must be \"latent\" or \"observed\", got {o['centring']!r}.")
        self.use_org = uses_organization(o["organization"], study)
        for name in self.measures:
            if study.roles.level_of(name) != "session":
                raise ConfigError(f"'{name}' is participant-level; model C needs session-level measures "
                                  f"for the outcome and the options support, self_efficacy and motivation.")
        grids = [self.panel.cells(name) for name in self.measures]   # S, E, M, K: (values 0 where missing, mask)
        self.values, self.observed = (np.stack(g) for g in zip(*grids, strict=True))   # (4, P, T) each, 1 = observed
        present = self.panel.present()
        last = present.shape[1] - 1 - np.argmax(present[:, ::-1], axis=1)   # last session in the table
        self.window = (np.arange(present.shape[1])[None, :] <= last[:, None]).astype(float)
        self.session_index = np.broadcast_to(np.arange(present.shape[1], dtype=float), present.shape).copy()
        self.person_means = self._observed_means()[:3].T                    # (P, 3)
        if o["centring"] == "observed":
            if o["support_trend"]:
                raise ConfigError("centring = \"observed\" uses plain person means, which a support trend would "
                                  "bias. Fix: set support_trend = false, or use centring = \"latent\".")
            empty = np.isnan(self.person_means)
            if empty.any():
                who = np.asarray(self.coords["participant"])[empty.any(axis=1)][:5]
                raise ConfigError(f"centring = \"observed\" needs at least one value of each predictor per "
                                  f"participant; participants {', '.join(map(str, who))} have none. "
                                  "Fix: use centring = \"latent\", which treats their means as unknown.")

    @property
    def measures(self) -> list[str]:
        o = self.options
        return [o["support"], o["self_efficacy"], o["motivation"], self.spec.outcome]

    @property
    def predictors(self) -> list[str]:
        return self.measures[:3]

    def _observed_means(self) -> np.ndarray:
        """Observed person means of S, E, M, K, shape (4, P), NaN for a participant without values."""
        with np.errstate(invalid="ignore"):
            return (self.values * self.observed).sum(-1) / self.observed.sum(-1)

    def _scales(self) -> dict[str, np.ndarray]:
        """Observed SDs for scaling priors: of all values, of within-person deviations from the
        observed person mean, and of the observed person means, each for S, E, M, K."""
        obs = self.observed > 0
        means = self._observed_means()                                              # (4, P)
        within = np.where(obs, self.values - means[..., None], np.nan)
        total = np.array([self.values[k][obs[k]].std() for k in range(4)])
        return {"mean": np.array([self.values[k][obs[k]].mean() for k in range(4)]), "total": total,
                "within": np.nan_to_num(np.nanstd(within, axis=(1, 2)), nan=1.0) + 1e-9,
                "between": np.nan_to_num(np.nanstd(means, axis=1), nan=1.0) + 1e-9}

    def default_priors(self) -> dict[str, Prior]:
        """Weakly informative priors on the data's scale.

        With observed SDs sd (all values), sw (within persons) and sb (of person means) per variable:
        means N(mean, 2.5 sd); person-mean SDs half-normal(sd), their correlations LKJ(2); within SDs of S, E and the
        innovation SD of M half-normal(sw); autoregressions phi, phiM N(0, 0.5); each other slope
        N(0, 2.5 x outcome scale / predictor scale) (within slopes use sw, between slopes and gamma1 sb); random-walk
        step SD and ubeta SD half-normal(sw_K / sw_S / 2); intercept SDs half-normal(sd_K / 2); residual SD of K
        exponential(rate 1 / sw_K); support trend N(0, sd_S / 2) per session.
        """
        sc = self._scales()
        sw, sb, sd = sc["within"], sc["between"], sc["total"]
        S, E, M, K = range(4)
        o = self.options
        priors = {
            "sigma_within": Prior("HalfNormal", {"sigma": list(sw[:3])}),
            "sigma": Prior("Exponential", {"lam": 1.0 / sw[K]}), "pi_intercept": normal_scaled(sc["mean"][K], sd[K]),
            "tau_sharing": Prior("HalfNormal", {"sigma": sd[K]}), "gamma_support": normal_scaled(0.0, sw[K], sw[S]),
            "beta_efficacy": normal_scaled(0.0, sw[K], sw[E]), "theta_support": normal_scaled(0.0, sw[M], sw[S])}
        if o["centring"] == "latent":
            priors["mean_predictor"] = normal_scaled(sc["mean"][:3], sd[:3])
            priors.update(self.person_means_group.priors(list(sd[:3]), float(o["lkj_eta"])))
        optional = [   # (the switch that adds the parameter, None = always; parameter; prior)
            ("support_trend", "support_trend", Prior("Normal", {"mu": 0.0, "sigma": sd[S] / 2})),
            ("autoregression", "phi", Prior("Normal", {"mu": 0.0, "sigma": 0.5})),
            (None, "phi_motivation", Prior("Normal", {"mu": 0.0, "sigma": 0.5})),
            ("time_varying_support", "sd_support_walk", Prior("HalfNormal", {"sigma": sw[K] / sw[S] / 2})),
            ("cross_level", "gamma_efficacy", normal_scaled(0.0, sw[K], sw[S] * sb[E])),
            ("support_slopes", "tau_support_slope", Prior("HalfNormal", {"sigma": sw[K] / sw[S] / 2})),
            ("interaction", "beta_interaction", normal_scaled(0.0, sw[K], sw[S] * sw[E])),
            ("spiral", "beta_motivation", normal_scaled(0.0, sw[K], sw[M])),
            ("spiral", "delta", normal_scaled(0.0, sw[M], sw[K])),
            ("between", "pi", normal_scaled(0.0, sd[K], sb[:3])),
        ]
        priors.update({name: prior for switch, name, prior in optional if switch is None or o[switch]})
        for level in self._intercept_levels():
            priors.update(GroupEffects(level, level).priors(sd[K] / 2, 1.0))
        return priors

    @property
    def coords(self) -> dict[str, list]:
        coords = {**super().coords, **self.person_means_group.coords(), "variable": list(VARIABLES)}
        return {**coords, "step": coords["session"][1:]}

    def build(self) -> pm.Model:
        o = self.options
        S, E, M, K = range(4)
        with pm.Model(coords=self.coords) as model:
            cell = ("participant", "session")
            values = pm.Data("values", self.values, dims=("variable",) + cell)
            observed = pm.Data("observed", self.observed, dims=("variable",) + cell)
            window = pm.Data("window", self.window, dims=cell)

            # person means (muS_i, muE_i, muM_i) ~ MVN(m, Sigma) and their centred versions
            if o["centring"] == "latent":
                m = self.prior("mean_predictor", dims="predictor")
                chol = self.person_means_group.centred_cholesky(self.priors)
                mu = pm.MvNormal("mu_person", mu=m, chol=chol, dims=("participant", "predictor"))
            else:
                mu = pm.Data("mu_person", self.person_means, dims=("participant", "predictor"))
                m = mu.mean(0)
            centred = mu - m                                                  # (P, 3)

            # muK_i = pi0 + pi . (mu_i - m) + a_org(i) + b_comm(i) + uK_i   (centred in muK)
            mu_k = self.prior("pi_intercept") + pt.zeros(self.panel.shape[0])
            if o["between"]:
                pi = self.prior("pi", dims="predictor")
                mu_k = mu_k + (centred * pi).sum(-1)
            for level, codes in self._intercept_levels().items():
                a = GroupEffects(level, level).effects(self.priors)
                mu_k = mu_k + a[pm.Data(f"{level}_of", codes, dims="participant")]
            mu_k = pm.Normal("mu_sharing", mu_k, self.prior("tau_sharing"), dims="participant")

            # within parts: observed value minus person mean, else latent (placeholder N(0, 1) where unused)
            latent = pm.Flat("latent", dims=("variable",) + cell)
            trend = 0.0
            if o["support_trend"]:   # lambda (t - 1)
                trend = self.prior("support_trend") * pm.Data("session_index", self.session_index, dims=cell)
            means = [mu[:, 0][:, None] + trend, mu[:, 1][:, None], mu[:, 2][:, None], mu_k[:, None]]
            Sw, Ew, Mw, Kw = [observed[k] * (values[k] - means[k]) + (1 - observed[k]) * latent[k] for k in range(4)]
            used = window[None] * (1 - observed)
            pm.Potential("placeholders", -0.5 * ((1 - used) * latent**2).sum())
            K_lag, M_lag = _lag(Kw), _lag(Mw)

            # betaS_i(t) = gamma0 + f(t) + gamma1 (muE_i - mE) + ubeta_i
            beta_s = self.prior("gamma_support") + pt.zeros((1, 1))
            if o["time_varying_support"]:
                z_f = pm.Normal("z_support_walk", 0.0, 1.0, dims="step")
                f = pm.Deterministic("support_walk", pt.concatenate(
                    [pt.zeros(1), pt.cumsum(self.prior("sd_support_walk") * z_f)]), dims="session")
                beta_s = beta_s + f[None, :]
            if o["cross_level"]:
                beta_s = beta_s + (self.prior("gamma_efficacy") * centred[:, 1])[:, None]
            if o["support_slopes"]:
                z_b = pm.Normal("z_support_slope", 0.0, 1.0, dims="participant")
                beta_s = beta_s + (self.prior("tau_support_slope") * z_b)[:, None]

            # Kw_ti = Kw_hat + eps, Mw_ti = Mw_hat + zeta (lcbayes.processes.sharing_step)
            k_hat, m_hat = sharing_step(Sw, Ew, K_lag, M_lag, beta_s,
                                        **{symbol: self.prior(name) for symbol, name in self._coefficients().items()})

            sigma_w = self.prior("sigma_within", dims="predictor")
            k_cell = normal_logpdf(Kw - k_hat, self.prior("sigma"), log=pt.log)
            logp = (normal_logpdf(Sw, sigma_w[0], log=pt.log) + normal_logpdf(Ew, sigma_w[1], log=pt.log)
                    + normal_logpdf(Mw - m_hat, sigma_w[2], log=pt.log) + k_cell)
            pm.Potential("likelihood", (window * logp).sum())
            pm.Deterministic("loglik", window * observed[K] * k_cell, dims=cell)
            pm.Deterministic("expected", mu_k[:, None] + k_hat, dims=cell)
        return model

    def _coefficients(self) -> dict[str, str]:
        """The coefficients of :func:`~lcbayes.processes.sharing_step` in this model (paths the
        options switch off have no prior and are left out), as argument -> parameter name, in graph order."""
        names = {"beta_e": "beta_efficacy", "phi": "phi", "beta_se": "beta_interaction", "phi_m": "phi_motivation",
                 "theta": "theta_support", "beta_m": "beta_motivation", "delta": "delta"}
        return {k: v for k, v in names.items() if v in self.priors}

    def _intercept_levels(self) -> dict[str, np.ndarray]:
        """The levels with intercepts in muK (organization, community) and each participant's code."""
        levels = {"organization": self.panel.organization if self.use_org else None,
                  "community": self.panel.community if self.options["community"] else None}
        return {level: codes for level, codes in levels.items() if codes is not None}

    @property
    def person_means_group(self) -> GroupEffects:
        """(muS_i, muE_i, muM_i) - m: participant-level, correlated."""
        return GroupEffects("predictor", "participant", "predictor", tuple(self.predictors))

    @property
    def population(self) -> list[str]:
        means = ["mean_predictor", "tau_predictor", "corr_predictor"]   # latent centring only; listed last
        names = [n for n in self.priors if n not in means] + [n for n in means if n in self.priors]
        return names + (["support_walk"] if self.options["time_varying_support"] else [])

    def pointwise_loglik(self, idata: az.InferenceData) -> xr.DataArray:
        """Log density of each observed K given its lags and predictors (one-step-ahead, as
        brms computes it for autoregressive models), over ``obs`` like ``observed_data``."""
        return self._at_rows(self._cells(idata.posterior, ["loglik"])["loglik"])

    def trim(self, posterior: xr.Dataset) -> xr.Dataset:
        """The posterior to keep: without the latent grid, with the one-step expected K at the
        observed rows (``expected`` over ``obs``)."""
        expected = self._at_rows(self._cells(posterior, ["expected"])["expected"])
        return posterior.drop_vars("latent", errors="ignore").assign(expected=expected)

    def _at_rows(self, cells: xr.DataArray) -> xr.DataArray:
        """(..., participant, session) values at the rows with an observed outcome, over ``obs``."""
        obs = self._observed()["obs"].values
        at = {g: xr.DataArray(self.study.idx[g][obs], [("obs", obs)]) for g in ("participant", "session")}
        return cells.isel(at).drop_vars(list(at))

    def derived(self, idata: az.InferenceData) -> xr.Dataset:
        """When and for whom support matters, the spiral, and within vs between effects.

        - ``support_effect`` (efficacy_level, session): gamma0 + f(t) + gamma1 c tau_E for self-efficacy c = -1, 0, +1
          SDs of the latent person means around their mean;
        - ``spiral_gain`` = delta betaM, the feedback K -> M -> K per two sessions;
        - ``spectral_radius``: the largest |eigenvalue| of A = [[phi, betaM], [delta, phiM]], the lag matrix of
          (Kw, Mw); the K-M system is stable (shocks die out) when < 1; ``stable`` is 1 in draws where it is;
        - ``within_between`` (predictor, effect): within effects (support: gamma0 + mean f, the average over sessions;
          self-efficacy: betaE; motivation: betaM, lagged) beside the between effects pi.
        """
        post, o = idata.posterior, self.options
        zero = xr.zeros_like(post["gamma_support"])
        f = post.get("support_walk", zero.expand_dims(session=self.coords["session"]))   # switched off: absent, 0
        level = xr.DataArray(EFFICACY_LEVELS, dims="efficacy_level", coords={"efficacy_level": EFFICACY_LEVELS})
        sd_e = post["tau_predictor"].isel(predictor=1, drop=True) if o["centring"] == "latent" else \
            float(np.std(self.person_means[:, 1]))
        effect = post["gamma_support"] + f + post.get("gamma_efficacy", zero) * level * sd_e
        phi, beta_m, delta = (post.get(name, zero) for name in ("phi", "beta_motivation", "delta"))
        radius = spectral_radius(phi.values, beta_m.values, delta.values, post["phi_motivation"].values)
        within = xr.concat([post["gamma_support"] + f.mean("session"), post["beta_efficacy"], beta_m], dim="predictor")
        between = post.get("pi", xr.zeros_like(within))
        wb = xr.concat([part.assign_coords(predictor=self.predictors) for part in (within, between)],
                       dim=pd.Index(["within", "between"], name="effect"))
        return xr.Dataset({"support_effect": effect.transpose("chain", "draw", "efficacy_level", "session"),
                           "spiral_gain": delta * beta_m, "spectral_radius": (("chain", "draw"), radius),
                           "stable": (("chain", "draw"), (radius < 1).astype(float)),
                           "within_between": wb.transpose("chain", "draw", "predictor", "effect")})

    support_effect_table = on_fit(tables.support_effect_table)
    within_between_table = on_fit(tables.within_between_table)
    spiral = on_fit(tables.spiral)

    def predict(self) -> xr.DataArray:
        """One-step-ahead expected sharing at the observed rows given the latent states, (chain, draw, obs)."""
        return self.fitted().posterior["expected"]

    def sample_posterior_predictive(self, seed: int = 0) -> az.InferenceData:
        """Add replicated sharing at the observed rows (one-step-ahead: expected + N(0, sigma))."""
        idata = self.fitted()
        mean = idata.posterior["expected"]
        rng = np.random.default_rng(seed)
        rep = mean + idata.posterior["sigma"] * xr.DataArray(rng.standard_normal(mean.shape), dims=mean.dims)
        idata.extend(az.InferenceData(posterior_predictive=xr.Dataset({self.spec.outcome: rep})), join="right")
        return idata

    def prior_study(self, seed: int) -> tuple[Study, xr.Dataset]:
        """Parameters drawn from the prior; S, E, M, K drawn from the model's equations at
        them (process from session 1, lags 0 there) and kept where this study has values."""
        p = self._prior_draws(1, seed).isel(chain=0, draw=0)
        return self.study.with_values(self._simulate(p, np.random.default_rng(seed))), p

    def sample_prior_predictive(self, draws: int = 200, seed: int = 0) -> az.InferenceData:
        """Prior draws of the parameters and the sharing values they generate at the observed
        rows (groups ``prior``, ``prior_predictive`` and ``observed_data``)."""
        prior = self._prior_draws(draws, seed)
        rng = np.random.default_rng(seed)
        obs = self._observed()["obs"].values
        k = np.stack([self._simulate(prior.isel(chain=0, draw=d), rng)[self.spec.outcome][obs] for d in range(draws)])
        pp = xr.Dataset({self.spec.outcome: (("chain", "draw", "obs"), k[None])}, coords={"obs": obs})
        return az.InferenceData(prior=prior, prior_predictive=pp, observed_data=self._observed())

    def _prior_draws(self, draws: int, seed: int) -> xr.Dataset:
        names = [v.name for v in self.model.free_RVs if v.name != "latent"] + \
            [v.name for v in self.model.deterministics if v.name not in self.cell_vars]
        with self.model, warnings.catch_warnings():   # the likelihood is a Potential: right to ignore
            warnings.filterwarnings("ignore", message="The effect of Potentials")
            return pm.sample_prior_predictive(draws=draws, var_names=names, random_seed=seed).prior

    def _simulate(self, p: xr.Dataset, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """S, E, M, K per row of the study (NaN where the study has none) from one parameter
        draw ``p``, by :func:`~lcbayes.processes.sharing_paths` from session 1 (lags 0 there)."""
        o = self.options
        P, T = self.panel.shape
        value: Any = {name: draw.values for name, draw in p.items()}.get   # None or a default: path switched off
        mu = value("mu_person", self.person_means)
        centred = mu - (value("mean_predictor") if o["centring"] == "latent" else mu.mean(0))
        sd_s, sd_e, sd_m = value("sigma_within")
        gamma1, tau_b = value("gamma_efficacy"), value("tau_support_slope")
        beta_s = support_slope(float(value("gamma_support")), value("support_walk", np.zeros(T))[None, :],
                               None if gamma1 is None else (float(gamma1) * centred[:, 1])[:, None],
                               None if tau_b is None else (float(tau_b) * value("z_support_slope"))[:, None])
        beta_s = np.broadcast_to(beta_s, (P, T))
        Sw, Ew = rng.normal(0, sd_s, (P, T)), rng.normal(0, sd_e, (P, T))
        eps, zeta = rng.normal(0, float(value("sigma")), (P, T)), rng.normal(0, sd_m, (P, T))
        Kw, Mw = sharing_paths(Sw, Ew, eps, zeta, beta_s,
                               **{k: float(value(name)) for k, name in self._coefficients().items()})
        grids = [mu[:, [0]] + float(value("support_trend", 0.0)) * self.session_index + Sw, mu[:, [1]] + Ew,
                 mu[:, [2]] + Mw, value("mu_sharing")[:, None] + Kw]
        pi, ti = self.study.idx["participant"], self.study.idx["session"]
        return {name: np.where(np.isnan(self.study.values(name)), np.nan, grid[pi, ti])
                for name, grid in zip(self.measures, grids, strict=True)}

    plot_support_effect = on_fit(plots.plot_support_effect)
    plot_within_between = on_fit(plots.plot_within_between)

    def report_content(self) -> ReportContent:
        post = self.fitted().posterior
        derived = post[["support_effect", "within_between", "spiral_gain", "spectral_radius"]].assign(
            p_stable=post["stable"].astype(float))
        out = [describe("Support effect at session 1 and average self-efficacy, gamma0", post["gamma_support"]),
               describe("Support effect at the last session (average self-efficacy)",
                        post["support_effect"].sel(efficacy_level=0).isel(session=-1))]
        if "gamma_efficacy" in post:
            out.append(describe("Cross-level moderation by mean self-efficacy, gamma1", post["gamma_efficacy"]))
        out.append(describe("Spiral gain delta x betaM (sharing -> motivation -> sharing)", post["spiral_gain"])
                   + f". P(the sharing-motivation system is stable) = {float(post['stable'].mean()):.2f}.")
        wb = post["within_between"]
        for v in wb["predictor"].values:
            out.append(describe(f"{v}: within-person effect", wb.sel(predictor=v, effect="within")) + "; "
                       + describe("between-person effect", wb.sel(predictor=v, effect="between")))
        figures = [("Support effect over sessions at low (-1 SD), mean and high (+1 SD) self-efficacy, 90% HDI.",
                    self.plot_support_effect().figure),
                   ("Within- and between-person effects of each predictor, 90% HDI.",
                    self.plot_within_between().figure)]
        report_tables = [("Support effect per session and self-efficacy level", self.support_effect_table()),
                         ("Within- and between-person effects", self.within_between_table()),
                         ("Spiral (motivation <-> sharing) and stability", self.spiral().to_frame("value"))]
        return ReportContent(derived, figures, report_tables, out)


def _lag(x: pt.TensorVariable) -> pt.TensorVariable:
    """x shifted one session later, 0 at the first session: (P, T) -> (P, T)."""
    return pt.concatenate([pt.zeros_like(x[:, :1]), x[:, :-1]], axis=1)
