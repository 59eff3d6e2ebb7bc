"""Building blocks shared by the models: options, random streams, group effects, predictors.

Each function adds variables to the PyMC model in context and returns tensors shaped for
the participant x session layout of :class:`~lcbayes.models.panel.Panel`. Linear
combinations are written as elementwise products and sums, not matrix products: BLAS calls
start threads of their own that fight the sampler's chains for the cores (a 3x slowdown
measured at 23k cells on 2 cores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from lcbayes.data.study import Study
from lcbayes.errors import ConfigError
from lcbayes.models.panel import Panel


def uses_organization(option: object, study: Study) -> bool:
    """Whether a model adds organization effects: the ``organization`` option is true, false or
    ``"auto"`` (when the study maps an organization column)."""
    if option not in ("auto", True, False):
        raise ConfigError(f"option organization must be true, false or \"auto\", got {option!r}.")
    has_org = "organization" in study.idx
    if option is True and not has_org:
        raise ConfigError("option organization = true, but the study maps no organization column. "
                          "Fix: map it in the roles, or set organization = false.")
    return has_org and option is not False


def predictive_streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Two independent generators from one seed: for random effects and for residual noise
    (one generator per purpose, so that no draw repeats another's normals)."""
    effects, noise = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(effects), np.random.default_rng(noise)


def correlated_effects(name: str, tau: pt.TensorVariable, rho: pt.TensorVariable | float, dim: str,
                       slopes: bool) -> tuple[pt.TensorVariable, pt.TensorVariable | None]:
    """Non-centred group intercepts and slopes (u0, u1) ~ MVN(0, diag(tau) Omega diag(tau)).

    u0 = tau0 z0,  u1 = tau1 (rho z0 + sqrt(1 - rho^2) z1): the Cholesky factor of the 2 x 2
    covariance written out. Stored as Deterministic ``u_<name>`` (group, effect); without
    slopes the ``effect`` dimension holds the intercept only and u1 is None.
    """
    z = pm.Normal(f"z_{name}", 0.0, 1.0, dims=(dim, "effect"))
    u0 = tau[0] * z[:, 0]
    if not slopes:
        pm.Deterministic(f"u_{name}", u0[:, None], dims=(dim, "effect"))
        return u0, None
    u1 = tau[1] * (rho * z[:, 0] + pt.sqrt(1 - rho**2) * z[:, 1])
    pm.Deterministic(f"u_{name}", pt.stack([u0, u1], axis=1), dims=(dim, "effect"))
    return u0, u1


@dataclass(frozen=True)
class Predictors:
    """Person-level traits and time-varying predictors prepared for the model.

    traits: (P, k) standardised (mean 0, SD 1 over participants), NaN where missing.
    within: (P, T, m) deviations from the participant's observed mean, NaN where missing.
    between: (P, m) participant means centred at the mean of participant means.
    Missing values become latent parameters in :meth:`add` (never dropped).
    """

    trait_names: list[str]
    traits: np.ndarray
    tv_names: list[str]
    within: np.ndarray
    between: np.ndarray

    @classmethod
    def from_study(cls, panel: Panel, traits: list[str], time_varying: list[str]) -> Predictors:
        """The predictors named in ``traits`` (participant-level) and ``time_varying``
        (session-level) from the study of ``panel``."""
        study = panel.study
        for name in traits:
            if study.roles.level_of(name) != "participant":
                raise ConfigError(f"trait '{name}' is session-level; list it under time_varying instead.")
        for name in time_varying:
            if study.roles.level_of(name) != "session":
                raise ConfigError(f"time-varying predictor '{name}' is participant-level; list it under traits.")
        P = study.n("participant")
        cols = [study.participant_values(n).to_numpy() for n in traits]
        x = np.column_stack(cols) if cols else np.zeros((P, 0))
        x = (x - np.nanmean(x, axis=0)) / np.nanstd(x, axis=0) if x.shape[1] else x
        within, between = [], []
        for name in time_varying:
            values, mask = panel.cells(name)
            v = np.where(mask > 0, values, np.nan)
            with np.errstate(invalid="ignore"):
                person = np.nanmean(np.where(mask.any(axis=1, keepdims=True), v, 0.0), axis=1)
            person[mask.sum(axis=1) == 0] = np.nan
            within.append(v - person[:, None])
            between.append(person - np.nanmean(person))
        T = study.n("session")
        return cls(list(traits), x, list(time_varying),
                   np.stack(within, axis=-1) if within else np.zeros((P, T, 0)),
                   np.column_stack(between) if between else np.zeros((P, 0)))

    def sds(self) -> tuple[np.ndarray, np.ndarray]:
        """Observed SDs of the within and between parts (for scaling priors)."""
        return np.nanstd(self.within, axis=(0, 1)), np.nanstd(self.between, axis=0)

    def add(self, outcome_mask: np.ndarray, gamma_trait: Any, gamma_within: Any, gamma_between: Any,
            sigma_within: Any) -> pt.TensorVariable:
        """Contribution of the predictors to the cell means, shape (P, T).

        Missing values become latent parameters: traits (standardised) N(0, 1); participant
        means with no observed value N(0, SD of the observed means); a missing within value
        in a cell whose outcome is observed N(0, sigma_within), the distribution the observed
        within values inform. Cells without an outcome do not enter the likelihood: 0 there.
        """
        terms = []
        if self.trait_names:
            x = fill_missing("traits", self.traits, lambda n: pm.Normal("trait_missing", 0.0, 1.0, shape=n))
            terms.append((x * gamma_trait).sum(-1)[:, None])
        if self.tv_names:
            used = (outcome_mask > 0)[..., None]
            within = np.where(used, self.within, 0.0)          # NaN only where used and missing
            for k, name in enumerate(self.tv_names):
                seen = used[..., 0] & ~np.isnan(self.within[..., k])
                pm.Normal(f"within_{name}", 0.0, sigma_within[k], observed=self.within[..., k][seen])
            which = np.nonzero(np.isnan(within))[2]
            w = fill_missing("within", within, lambda n: pm.Normal("within_missing", 0.0, sigma_within[which], shape=n))
            sd_between = np.nanstd(self.between, axis=0)[np.nonzero(np.isnan(self.between))[1]]
            b = fill_missing("between", self.between, lambda n: pm.Normal("between_missing", 0.0, sd_between, shape=n))
            terms += [(w * gamma_within).sum(-1), (b * gamma_between).sum(-1)[:, None]]
        return sum(terms[1:], terms[0])


def fill_missing(name: str, values: np.ndarray, latent) -> pt.TensorVariable:
    """``values`` as model data ``name`` with its NaN entries replaced by new latent parameters
    (``latent(n)`` creates n of them). The observed values are swappable ``pm.Data``; the
    positions of the missing ones are part of the graph."""
    missing = np.isnan(values)
    data = pm.Data(name, np.where(missing, 0.0, values))
    if not missing.any():
        return data
    return pt.set_subtensor(data[np.nonzero(missing)], latent(int(missing.sum())))
