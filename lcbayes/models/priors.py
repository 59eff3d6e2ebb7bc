"""Priors as data: a distribution name and its parameters, serialisable to TOML/JSON.

>>> Prior("HalfNormal", {"sigma": 0.5}).to_dict()
{'dist': 'HalfNormal', 'sigma': 0.5}

Any univariate PyMC distribution can be named. ``LKJ`` is the prior of the correlation matrix of a group's effects
(``corr_<group>``; Lewandowski, Kurowicka & Joe 2009): eta = 1 is uniform, eta > 1 shrinks towards 0;
:class:`~lcbayes.models.components.GroupEffects` samples it for any number of terms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pymc as pm

from lcbayes.errors import ConfigError

# parameters that are scales, rates, shapes or concentrations in every PyMC distribution that has them
POSITIVE = frozenset({"sigma", "tau", "lam", "alpha", "beta", "nu", "eta", "a", "b", "scale"})


@dataclass(frozen=True)
class Prior:
    """A prior distribution: PyMC class name ``dist`` and its keyword ``params``."""

    dist: str
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, name: str, spec: Prior | Mapping[str, Any]) -> Prior:
        if isinstance(spec, Prior):
            return spec
        if not isinstance(spec, Mapping) or "dist" not in spec:
            raise ConfigError(f"prior '{name}': expected a table with 'dist' and its parameters, got {spec!r}. "
                              f"Fix: e.g. {name} = {{ dist = \"Normal\", mu = 0, sigma = 1 }}.")
        dist = str(spec["dist"])
        if dist != "LKJ" and not isinstance(getattr(pm, dist, None), type):
            raise ConfigError(f"prior '{name}': unknown distribution '{dist}' (use a PyMC class name).")
        params = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in spec.items() if k != "dist"}
        for key, value in params.items():
            try:
                numbers = np.asarray(value, dtype=float)
            except (TypeError, ValueError):
                raise ConfigError(f"prior '{name}': parameter {key} must be a number or a list of numbers, got "
                                  f"{value!r}. Fix: e.g. {key} = 1.0.") from None
            positive = key in POSITIVE and not (dist == "SkewNormal" and key == "alpha")   # its skewness is any real
            if positive and not (np.isfinite(numbers) & (numbers > 0)).all():
                raise ConfigError(f"prior '{name}': parameter {key} of {dist} must be positive, got {value!r}. "
                                  f"Fix: e.g. {key} = 1.0.")
        return cls(dist, params)

    def to_dict(self) -> dict[str, Any]:
        return {"dist": self.dist, **{k: _plain(v) for k, v in self.params.items()}}

    def create(self, name: str, **kwargs: Any) -> Any:
        """Add the random variable ``name`` to the PyMC model in context."""
        return self._call(name, **kwargs)

    def distribution(self, **kwargs: Any) -> Any:
        """The prior as an unnamed PyMC distribution (e.g. the ``sd_dist`` of an LKJ covariance)."""
        return self._call(None, **kwargs)

    def _call(self, name: str | None, **kwargs: Any) -> Any:
        if self.dist == "LKJ":
            raise ConfigError(f"prior '{name}': an LKJ prior describes the correlations of a group's effects "
                              "(corr_<group>); it cannot stand for another parameter.")
        params = {k: np.asarray(v, dtype=float) for k, v in self.params.items()}
        dist = getattr(pm, self.dist)
        try:
            return dist(name, **params, **kwargs) if name else dist.dist(**params, **kwargs)
        except TypeError as err:
            raise ConfigError(f"prior '{name}': {self.dist} does not take {sorted(params)} ({err}).") from None


def create(priors: Mapping[str, Prior], name: str, **kwargs: Any) -> Any:
    """Parameter ``name`` from its prior in ``priors``, in the model in context."""
    return priors[name].create(name, **kwargs)


def _plain(value: Any) -> Any:
    """JSON/TOML-friendly numbers (lists for arrays, floats for numpy scalars)."""
    if isinstance(value, (np.ndarray, list, tuple)):
        return np.asarray(value, dtype=float).tolist()   # nested lists keep a matrix's shape
    if isinstance(value, (np.floating, np.integer)):
        return float(value)
    return value


# Default priors on a measure's natural scale: its response range [low, high] (Study.response_range), with middle m
# and half range h (3 and 2 on a 1-5 scale), the same for every study on that scale however its data look (Gelman et
# al. 2020, Bayesian workflow: weakly informative on the outcome's scale; the prior predictive check in
# lcbayes.prior_check measures what they imply). Each constant is a share of h.
MEAN = 1 / 4       # means and intercepts N(m, h/4): two SDs reach m -/+ h/2 (2 to 4 on a 1-5 scale)
CHANGE = 1 / 4     # total change over the study N(0, h/4); a slope SD spreads as much over the study
GROUP = 1 / 8      # SDs of community, organization, session and community x session effects HN(h/8)
SPREAD = 1 / 5     # SDs of participant effects and person means, residual and innovation SDs HN(h/5)
SLOPE = 1 / 2      # a coefficient N(0, h_y/2 per h_x of the predictor); per SD of a standardised predictor h_x = 2


def slope_prior(half_out: Any, half_in: Any = 2.0, mean: Any = 0.0, share: float = SLOPE) -> Prior:
    """Normal(mean, share x h_out / h_in): a coefficient of a predictor with half range ``half_in`` (2 for a
    standardised predictor, +-2 SDs; the product of both half ranges for a product term) on an outcome with half
    range ``half_out``; arrays give one prior per element."""
    return Prior("Normal", {"mu": _plain(mean), "sigma": _plain(share * np.asarray(half_out) / np.asarray(half_in))})


def mean_prior(mid: Any, half: Any) -> Prior:
    """Normal(m, h/4): a mean or intercept on a measure with middle ``mid`` and half range ``half`` (arrays: one per
    element)."""
    return Prior("Normal", {"mu": _plain(mid), "sigma": _plain(MEAN * np.asarray(half))})


def half_normal(sigma: Any) -> Prior:
    """HalfNormal(sigma) (a list for an array of SDs)."""
    return Prior("HalfNormal", {"sigma": _plain(sigma)})


def merge_priors(defaults: Mapping[str, Prior], overrides: Mapping[str, Any] | None) -> dict[str, Prior]:
    """Defaults updated with user overrides; an override for an unknown parameter is an error."""
    priors = dict(defaults)
    for name, spec in (overrides or {}).items():
        if name not in priors:
            raise ConfigError(
                f"prior for unknown parameter '{name}'. This model's parameters: {', '.join(sorted(priors))}.")
        priors[name] = Prior.parse(name, spec)
    return priors
