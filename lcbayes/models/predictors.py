"""Traits and time-varying predictors of the climate models (A and B): latent centring and contextual effects.

A time-varying predictor x_m (session level) is split into a within-person part, the person's deviation from the
community mean and the community's deviation from the grand mean. With ``centring = "latent"`` (the default) the
means are parameters informed by the observed values (Lüdtke et al. 2008; the latent centring of Mplus' DSEM, as in
model C)::

    x_tim = xi_im + w_tim,           w_tim ~ N(0, sigma_within_m)        observed values are data of this part
    xi_i  ~ MVN(kappa_j(i), Sigma_p)                                     person means, correlated over predictors
    kappa_jm ~ N(mu_x_m, tau_c_m)                                        community means
    term  = gamma_within w_tim + gamma_between (xi_im - kappa_jm) + gamma_community (kappa_jm - mu_x_m)

and a trait t_k (participant level, standardised over participants)::

    t_ik ~ N(kappa^t_jk, tau_tp_k),  kappa^t_jk ~ N(0, tau_tc_k)
    term  = gamma_trait (t_ik - kappa^t_jk) + gamma_trait_community kappa^t_jk

The contextual effects ``contextual`` = gamma_community - gamma_between and ``contextual_trait`` = gamma_trait_community
- gamma_trait say how much more (or less) the same difference does between communities than between persons of one
community. Without ``contextual`` there are no community means: xi_i ~ MVN(mu_x, Sigma_p), the between term is
gamma_between (xi_im - mu_x_m), and a trait enters as gamma_trait t_ik.

``centring = "observed"`` puts the observed means in their place (the person mean of the observed values, the mean of
a community's person means, their grand mean; the community mean of a trait): the usual practice, whose person means
carry sampling error that biases gamma_between towards gamma_within when few sessions measure each person (Lüdtke et
al. 2008); kept for comparison. Missing values are never dropped: a missing x_tim where the outcome is observed is a
latent w_tim ~ N(0, sigma_within), a missing trait a latent t_ik ~ N(kappa^t_j, tau_tp) (observed centring: N(0, 1));
an observed person mean that does not exist (no value at all) is a latent N(grand mean, SD of the observed ones).

The observed values enter as ``pm.Data`` (a refit may swap them) through a potential, which is not part of the
outcome's log likelihood.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from lcbayes.data.study import Study
from lcbayes.errors import ConfigError
from lcbayes.models.components import GroupEffects, fill_missing
from lcbayes.models.panel import Panel
from lcbayes.models.priors import GROUP, SPREAD, Prior, create, half_normal, mean_prior, slope_prior
from lcbayes.processes import normal_logpdf

CENTRING = ("latent", "observed")


@dataclass(frozen=True)
class Predictors:
    """The predictors of a climate model: ``traits`` (P, k) standardised over participants and ``values`` (P, T, m)
    of the time-varying predictors, NaN where missing; ``community`` (P,) codes; the options ``centring`` and
    ``contextual``."""

    trait_names: list[str]
    traits: np.ndarray
    tv_names: list[str]
    values: np.ndarray
    community: np.ndarray
    n_communities: int
    centring: str = "latent"
    contextual: bool = True

    @classmethod
    def from_study(cls, panel: Panel, traits: list[str], time_varying: list[str], centring: str = "latent",
                   contextual: bool = True, standardise_by: Study | None = None) -> Predictors:
        """The predictors named in ``traits`` (participant-level, standardised by the mean and SD of their values in
        ``standardise_by``, default the panel's study) and ``time_varying`` (session-level)."""
        study = panel.study
        if centring not in CENTRING:
            raise ConfigError(f"option centring must be one of {', '.join(CENTRING)}, got {centring!r}.")
        if not isinstance(contextual, bool):
            raise ConfigError(f"option contextual must be true or false, got {contextual!r}.")
        for name in traits:
            if study.roles.level_of(name) != "participant":
                raise ConfigError(f"trait '{name}' is session-level; list it under time_varying instead.")
        for name in time_varying:
            if study.roles.level_of(name) != "session":
                raise ConfigError(f"time-varying predictor '{name}' is participant-level; list it under traits.")
        P, T = panel.shape
        cols = [study.participant_values(n).to_numpy() for n in traits]
        x = np.column_stack(cols) if cols else np.zeros((P, 0))
        if x.shape[1]:
            basis = standardise_by or study
            by = np.column_stack([basis.participant_values(n).to_numpy() for n in traits])
            x = (x - np.nanmean(by, axis=0)) / np.nanstd(by, axis=0)
        grids = [np.where(mask > 0, values, np.nan) for values, mask in (panel.cells(n) for n in time_varying)]
        values = np.stack(grids, axis=-1) if grids else np.zeros((P, T, 0))
        return cls(list(traits), x, list(time_varying), values, panel.community, study.n("community"), centring,
                   contextual)

    # ---- priors and names -------------------------------------------------------------------------------------------

    @property
    def person_means(self) -> GroupEffects:
        """The person means xi_i of the time-varying predictors (latent centring): SDs ``tau_predictor_person`` and,
        with two or more predictors, correlations ``corr_predictor_person``."""
        return GroupEffects("predictor_person", "participant", "predictor", tuple(self.tv_names))

    def priors(self, outcome_half: float, predictor_halves: np.ndarray, predictor_mids: np.ndarray,
               lkj_eta: float) -> dict[str, Prior]:
        """Defaults on the natural scales (:mod:`lcbayes.models.priors`): coefficients N(0, h_y/2 per h_x) (per SD of
        a standardised trait, h_x = 2); the predictors' grand means N(m_x, h_x/4), person-mean SDs half-normal(h_x/5)
        with LKJ correlations, community-mean SDs half-normal(h_x/8), within SDs half-normal(h_x/5); a trait's
        person and community SDs half-normal(1) and half-normal(0.5) (standardised units)."""
        latent, ctx = self.centring == "latent", self.contextual
        priors: dict[str, Prior] = {}
        if self.trait_names:
            priors["gamma_trait"] = slope_prior(outcome_half)
            if ctx:
                priors["gamma_trait_community"] = slope_prior(outcome_half)
            if ctx and latent:
                priors["tau_trait_person"] = half_normal(1.0)
                priors["tau_trait_community"] = half_normal(0.5)
        if self.tv_names:
            h = np.asarray(predictor_halves, dtype=float)
            for name in ("gamma_within", "gamma_between") + (("gamma_community",) if ctx else ()):
                priors[name] = slope_prior(outcome_half, h)
            priors["sigma_within"] = half_normal(SPREAD * h)
            if latent:
                priors["predictor_mean"] = mean_prior(predictor_mids, h)
                priors.update(self.person_means.priors(list(SPREAD * h), lkj_eta))
                if ctx:
                    priors["tau_predictor_community"] = half_normal(GROUP * h)
        return priors

    @property
    def coefficients(self) -> list[str]:
        """The coefficients and contextual effects, in report order."""
        ctx = self.contextual
        names = (["gamma_trait"] + (["gamma_trait_community", "contextual_trait"] if ctx else [])
                 if self.trait_names else [])
        if self.tv_names:
            names += ["gamma_within", "gamma_between"] + (["gamma_community", "contextual"] if ctx else [])
        return names

    @property
    def population(self) -> list[str]:
        """Coefficients and the parameters of the predictors' own distribution."""
        names = list(self.coefficients)
        if self.tv_names:
            names.append("sigma_within")
            if self.centring == "latent":
                names += ["predictor_mean", *self.person_means.population] + \
                    (["tau_predictor_community"] if self.contextual else [])
        if self.trait_names and self.centring == "latent" and self.contextual:
            names += ["tau_trait_person", "tau_trait_community"]
        return names

    def observed_means(self) -> dict[str, np.ndarray]:
        """With latent centring, the observed counterparts of the latent means by variable name (``predictor_mean``,
        ``predictor_community``, ``predictor_person``, ``trait_community``): the prior predictive of the outcome given
        the predictors sets the means there (``pm.do``), since prior draws of them, blind to the observed values,
        would make within-person deviations of the observed values from an unrelated mean; {} with observed
        centring."""
        if self.centring != "latent":
            return {}
        out: dict[str, np.ndarray] = {}
        if self.tv_names:
            person = _person_means(self.values)
            grand = np.nanmean(person, axis=0)
            person = _fill(person, grand)
            out |= {"predictor_mean": grand, "predictor_person": person}
            if self.contextual:
                out["predictor_community"] = _group_means(person, self.community, self.n_communities)
        if self.trait_names and self.contextual:
            out["trait_community"] = _group_means(self.traits, self.community, self.n_communities)
        return out

    # ---- new participants and communities (prediction) -------------------------------------------------------------

    def condition_new(self, draws: xr.Dataset, new_people: np.ndarray, new_communities: np.ndarray, at_mean: bool,
                      rng: np.random.Generator) -> dict[str, xr.DataArray]:
        """The latent means of new participants and communities given the predictor values the new data give them,
        per draw (latent centring; with observed centring the observed means are used as they are): a new
        community's means of the time-varying predictors kappa_j ~ N(mu_x, tau_c) updated by its members' observed
        person means (each with variance tau_p^2 + sigma_w^2 / n_i: a two-stage Gaussian update that treats the
        members' person means as independent), then a new participant's person means xi_i ~ MVN(kappa_j(i), Sigma_p)
        by their values, x_tim ~ N(xi_im, sigma_w_m) (exact); a new community's trait means kappa^t_j ~ N(0, tau_tc)
        by its members' traits, t_ik ~ N(kappa^t_jk, tau_tp_k) (exact). Draws from these conditionals; with
        ``at_mean`` (population-level predictions) new communities stay at their population mean (as carried over:
        kappa_j = mu_x, kappa^t_j = 0) and new participants' person means take their conditional means.
        ``new_people`` (P,) and ``new_communities`` (J,) are boolean. Returns the updated free parameters
        (``predictor_person``, ``z_predictor_community``, ``z_trait_community``) that the model has."""
        if self.centring != "latent":
            return {}
        out: dict[str, xr.DataArray] = {}
        if self.tv_names and new_people.any():
            out.update(self._condition_person_means(draws, new_people, new_communities, at_mean, rng))
        if self.trait_names and self.contextual and new_communities.any() and not at_mean:
            tau_p = draws["tau_trait_person"].values[..., None, :]          # (chain, draw, 1, k)
            tau_c = draws["tau_trait_community"].values[..., None, :]
            seen = ~np.isnan(self.traits)
            n = _group_sums(seen.astype(float), self.community, self.n_communities)           # (J, k)
            total = _group_sums(np.where(seen, self.traits, 0.0), self.community, self.n_communities)
            precision = 1 / tau_c**2 + n / tau_p**2
            mean = total / tau_p**2 / precision
            kappa = mean if at_mean else mean + rng.standard_normal(mean.shape) / np.sqrt(precision)
            z = draws["z_trait_community"].copy()
            z.values[..., new_communities, :] = (kappa / tau_c)[..., new_communities, :]
            out["z_trait_community"] = z
        return out

    def _condition_person_means(self, draws: xr.Dataset, new_people: np.ndarray, new_communities: np.ndarray,
                                at_mean: bool, rng: np.random.Generator) -> dict[str, xr.DataArray]:
        m = len(self.tv_names)
        seen = ~np.isnan(self.values)                                         # (P, T, m)
        n = seen.sum(axis=1).astype(float)                                    # (P, m)
        total = np.where(seen, self.values, 0.0).sum(axis=1)                  # (P, m)
        tau = draws["tau_predictor_person"].values                            # (chain, draw, m)
        corr = np.broadcast_to(np.eye(m), tau.shape[:2] + (m, m)).copy()
        if m > 1:
            for pair, (a, b) in enumerate(combinations(range(m), 2)):
                corr[..., a, b] = corr[..., b, a] = draws["corr_predictor_person"].values[..., pair]
        cov = tau[..., :, None] * corr * tau[..., None, :]                    # Sigma_p (chain, draw, m, m)
        sigma_w = draws["sigma_within"].values                                # (chain, draw, m)
        mu = draws["predictor_mean"].values                                   # (chain, draw, m)
        out: dict[str, xr.DataArray] = {}
        if self.contextual:
            tau_c = draws["tau_predictor_community"].values
            z = draws["z_predictor_community"].copy()
            kappa = mu[..., None, :] + z.values * tau_c[..., None, :]         # (chain, draw, J, m)
            if new_communities.any() and not at_mean:
                with np.errstate(divide="ignore", invalid="ignore"):
                    person_mean = np.where(n > 0, total / n, 0.0)             # (P, m)
                    weight = np.where(n > 0, 1.0 / (tau[..., None, :] ** 2 + sigma_w[..., None, :] ** 2 / n), 0.0)
                precision = 1 / tau_c[..., None, :] ** 2 + _group_sums_draws(weight, self.community,
                                                                            self.n_communities)
                mean = (mu[..., None, :] / tau_c[..., None, :] ** 2
                        + _group_sums_draws(weight * person_mean, self.community, self.n_communities)) / precision
                fresh = mean if at_mean else mean + rng.standard_normal(mean.shape) / np.sqrt(precision)
                kappa[..., new_communities, :] = fresh[..., new_communities, :]
                z.values[..., new_communities, :] = ((kappa - mu[..., None, :]) / tau_c[..., None, :])[
                    ..., new_communities, :]
                out["z_predictor_community"] = z
            centre = kappa[..., self.community, :]                            # (chain, draw, P, m)
        else:
            centre = np.broadcast_to(mu[..., None, :], mu.shape[:2] + (len(self.community), m))
        people = np.flatnonzero(new_people)
        prior_precision = np.linalg.inv(cov)[..., None, :, :]                 # (chain, draw, 1, m, m)
        data_precision = n[people][None, None] / sigma_w[..., None, :] ** 2   # (chain, draw, p, m)
        precision = prior_precision + _diagonal(data_precision)
        rhs = (prior_precision @ centre[..., people, :, None])[..., 0] + total[people][None, None] / \
            sigma_w[..., None, :] ** 2
        mean = np.linalg.solve(precision, rhs[..., None])[..., 0]
        if not at_mean:
            chol = np.linalg.cholesky(np.linalg.inv(precision))
            mean = mean + (chol @ rng.standard_normal(mean.shape)[..., None])[..., 0]
        xi = draws["predictor_person"].copy()
        xi.values[..., people, :] = mean
        out["predictor_person"] = xi
        return out

    # ---- the graph --------------------------------------------------------------------------------------------------

    def add(self, outcome_mask: np.ndarray, priors: Mapping[str, Prior]) -> pt.TensorVariable:
        """Contribution of the predictors to the cell means, (P, T), in the model in context (see the module
        docstring). Cells without an outcome do not enter the likelihood: their within part is 0."""
        terms = []
        if self.trait_names:
            terms.append(self._traits(priors))
        if self.tv_names:
            terms.append(self._time_varying(outcome_mask, priors))
        return sum(terms[1:], terms[0])

    def _community_of(self) -> Any:
        return pm.modelcontext(None)["community_of"]

    def _traits(self, priors: Mapping[str, Prior]) -> pt.TensorVariable:
        gamma = create(priors, "gamma_trait", dims="trait")
        if not self.contextual:
            x = fill_missing("traits", self.traits, lambda dim: pm.Normal("trait_missing", 0.0, 1.0, dims=dim))
            return (x * gamma).sum(-1)[:, None]
        gamma_c = create(priors, "gamma_trait_community", dims="trait")
        pm.Deterministic("contextual_trait", gamma_c - gamma, dims="trait")
        c = self._community_of()
        if self.centring == "observed":
            x = fill_missing("traits", self.traits, lambda dim: pm.Normal("trait_missing", 0.0, 1.0, dims=dim))
            kappa = pm.Data("trait_community_observed", _group_means(self.traits, self.community, self.n_communities),
                            dims=("community", "trait"))[c]
        else:
            tau_p = create(priors, "tau_trait_person", dims="trait")
            tau_c = create(priors, "tau_trait_community", dims="trait")
            z = pm.Normal("z_trait_community", 0.0, 1.0, dims=("community", "trait"))   # non-centred: tau_c may be ~0
            kappa_j = pm.Deterministic("trait_community", z * tau_c, dims=("community", "trait"))
            kappa = kappa_j[c]
            rows, cols = np.nonzero(np.isnan(self.traits))
            x = fill_missing("traits", self.traits,
                             lambda dim: pm.Normal("trait_missing", kappa[rows, cols], tau_p[cols], dims=dim))
            seen = pm.Data("traits_seen", (~np.isnan(self.traits)).astype(float), dims=("participant", "trait"))
            pm.Potential("traits_likelihood", (seen * normal_logpdf(x - kappa, tau_p, pt.log)).sum())
        return ((x - kappa) * gamma + kappa * gamma_c).sum(-1)[:, None]

    def _time_varying(self, outcome_mask: np.ndarray, priors: Mapping[str, Prior]) -> pt.TensorVariable:
        sigma_w = create(priors, "sigma_within", dims="predictor")
        gamma_w = create(priors, "gamma_within", dims="predictor")
        gamma_b = create(priors, "gamma_between", dims="predictor")
        gamma_c = None
        if self.contextual:
            gamma_c = create(priors, "gamma_community", dims="predictor")
            pm.Deterministic("contextual", gamma_c - gamma_b, dims="predictor")
        person, community, grand = (self._latent_means(priors) if self.centring == "latent"
                                    else self._observed_means())
        seen = ~np.isnan(self.values)
        x = pm.Data("predictor_values", np.where(seen, self.values, 0.0), dims=("participant", "session", "predictor"))
        seen_data = pm.Data("predictor_seen", seen.astype(float), dims=("participant", "session", "predictor"))
        deviation = x - person[:, None, :]
        # the observed values inform the within SDs (and, latent, the person means)
        pm.Potential("predictors_likelihood", (seen_data * normal_logpdf(deviation, sigma_w, pt.log)).sum())
        used = (outcome_mask > 0)[..., None] & ~seen     # missing where the outcome needs it: latent w
        within = seen_data * deviation
        if used.any():
            p, t, m = np.nonzero(used)
            model = pm.modelcontext(None)
            labels = [f"{model.coords['participant'][i]}/{model.coords['session'][j]}/{model.coords['predictor'][k]}"
                      for i, j, k in zip(p, t, m, strict=True)]
            model.add_coord("missing_predictor_value", labels)    # participant/session/predictor
            w = pm.Normal("within_missing", 0.0, sigma_w[m], dims="missing_predictor_value")
            within = pt.set_subtensor(within[p, t, m], w)
        terms = (within * gamma_w).sum(-1)
        upper = community if self.contextual else grand
        terms = terms + ((person - upper) * gamma_b).sum(-1)[:, None]
        if self.contextual:
            terms = terms + ((community - grand) * gamma_c).sum(-1)[:, None]
        return terms

    def _latent_means(self, priors: Mapping[str, Prior]) -> tuple[Any, Any, Any]:
        """(xi (P, m), kappa_j(i) (P, m), mu_x (m,)) as parameters: ``predictor_person``, ``predictor_community``."""
        mu = create(priors, "predictor_mean", dims="predictor")
        centre = mu
        if self.contextual:
            tau_c = create(priors, "tau_predictor_community", dims="predictor")
            z = pm.Normal("z_predictor_community", 0.0, 1.0, dims=("community", "predictor"))   # non-centred
            centre = pm.Deterministic("predictor_community", mu + z * tau_c,
                                      dims=("community", "predictor"))[self._community_of()]
        group = self.person_means
        if len(self.tv_names) > 1:
            chol = group.centred_cholesky(priors)
            xi = pm.MvNormal("predictor_person", mu=centre + pt.zeros((len(self.community), 1)), chol=chol,
                             dims=("participant", "predictor"))
        else:
            tau = create(priors, group.tau, dims="predictor")
            xi = pm.Normal("predictor_person", centre, tau, dims=("participant", "predictor"))
        return xi, centre + pt.zeros((len(self.community), 1)), mu

    def _observed_means(self) -> tuple[Any, Any, Any]:
        """Observed person means (a latent N(grand mean, SD) for a person without values), the means of each community's
        person means and their grand mean, as data."""
        person = _person_means(self.values)
        grand = np.nanmean(person, axis=0)
        missing = np.isnan(person)
        sd = np.nanstd(person, axis=0)[np.nonzero(missing)[1]]
        xi = fill_missing("predictor_person_observed", person, lambda dim: pm.Normal(
            "predictor_person_missing", grand[np.nonzero(missing)[1]], sd, dims=dim))
        community = _group_means(_fill(person, grand), self.community, self.n_communities)
        kappa = pm.Data("predictor_community_observed", community, dims=("community", "predictor"))
        return xi, kappa[self._community_of()], pt.as_tensor(grand)


def _person_means(values: np.ndarray) -> np.ndarray:
    """Mean of each participant's observed values (P, T, m) -> (P, m), NaN for one without values."""
    seen = ~np.isnan(values)
    count = seen.sum(axis=1)
    total = np.where(seen, values, 0.0).sum(axis=1)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def _fill(x: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``x`` (P, m) with its NaN entries replaced by ``values`` (m,) of their column."""
    filled = x.copy()
    np.copyto(filled, np.broadcast_to(values, x.shape), where=np.isnan(x))
    return filled


def _group_means(x: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    """Mean of the rows of ``x`` (P, k) per group (n, k), over the non-missing values (0 where a group has none)."""
    seen = ~np.isnan(x)
    total = _group_sums(np.where(seen, x, 0.0), group, n)
    count = _group_sums(seen.astype(float), group, n)
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def _group_sums(x: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    """Sums of the rows of ``x`` (P, k) per group, (n, k)."""
    return np.stack([np.bincount(group, weights=x[:, k], minlength=n) for k in range(x.shape[1])], axis=1)


def _group_sums_draws(x: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    """Sums over the participant axis (-2) of ``x`` (..., P, k) per group, (..., n, k)."""
    onehot = (np.arange(n)[:, None] == group[None, :]).astype(float)      # (n, P)
    return np.einsum("gp,...pk->...gk", onehot, x)


def _diagonal(x: np.ndarray) -> np.ndarray:
    """(..., m) -> (..., m, m) diagonal matrices."""
    return x[..., :, None] * np.eye(x.shape[-1])
