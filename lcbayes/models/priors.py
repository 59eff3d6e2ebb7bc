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


SCALE = 2.5   # outcome SDs per predictor SD in a weakly informative coefficient prior


def normal_scaled(mean: Any, sd_out: Any, sd_in: Any = 1.0) -> Prior:
    """Normal(mean, 2.5 sd_out / sd_in): the weakly informative prior of an intercept or coefficient on the data's scale
    (Gelman, Jakulin, Pittau & Su 2008; the auto-scaling of rstanarm and Bambi). ``sd_out`` is the outcome's SD,
    ``sd_in`` the predictor's (1 for an intercept or a standardised predictor); arrays give one prior per element."""
    return Prior("Normal", {"mu": _plain(mean), "sigma": _plain(SCALE * np.asarray(sd_out) / np.asarray(sd_in))})


def merge_priors(defaults: Mapping[str, Prior], overrides: Mapping[str, Any] | None) -> dict[str, Prior]:
    """Defaults updated with user overrides; an override for an unknown parameter is an error."""
    priors = dict(defaults)
    for name, spec in (overrides or {}).items():
        if name not in priors:
            raise ConfigError(
                f"prior for unknown parameter '{name}'. This model's parameters: {', '.join(sorted(priors))}.")
        priors[name] = Prior.parse(name, spec)
    return priors
