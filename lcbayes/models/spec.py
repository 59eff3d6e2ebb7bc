"""Model specifications: which model, which outcome, its options, priors and sampler settings.

A spec is data (TOML on disk, a dict in code)::

    model = "climate_growth"
    outcome = "climate"

    [options]                 # model-specific; unknown names are rejected
    trend = "linear"

    [priors]                  # overrides of the data-scaled defaults
    sigma = { dist = "Exponential", lam = 2.0 }

    [sampler]
    backend = "nutpie"
    draws = 2000

Its SHA-256 (of the canonical JSON) identifies a fit together with the data hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lcbayes.data.io import read_toml
from lcbayes.errors import ConfigError, reject_unknown, table
from lcbayes.sampling import BACKENDS, SamplerSettings

# BACKENDS and SamplerSettings describe the sampler and live in lcbayes.sampling; re-exported here
__all__ = ["BACKENDS", "ModelSpec", "SamplerSettings", "read_spec"]


def read_spec(path: str | Path) -> dict[str, Any]:
    """Read a spec TOML file into a mapping (validated when given to a model)."""
    return read_toml(path, "spec file")


@dataclass(frozen=True)
class ModelSpec:
    """A validated model specification (see the module docstring)."""

    model: str
    outcome: str
    options: dict[str, Any] = field(default_factory=dict)
    priors: dict[str, dict[str, Any]] = field(default_factory=dict)
    sampler: SamplerSettings = field(default_factory=SamplerSettings)

    @classmethod
    def parse(cls, spec: ModelSpec | Mapping[str, Any], model: str, option_defaults: Mapping[str, Any],
              sampler_defaults: Mapping[str, Any] | None = None) -> ModelSpec:
        """Validate ``spec`` for ``model``; options are completed with ``option_defaults`` and
        sampler settings with the model's ``sampler_defaults``, then :class:`SamplerSettings`'."""
        if isinstance(spec, ModelSpec):
            spec = spec.to_dict()
        spec = table(spec, "a model spec", 'model = "climate_growth" and outcome = "climate"')
        reject_unknown(spec, ["model", "outcome", "options", "priors", "sampler"], "spec key")
        if spec.get("model", model) != model:
            raise ConfigError(f"this spec is for model '{spec['model']}', not '{model}'.")
        if not spec.get("outcome") or not isinstance(spec["outcome"], str):
            raise ConfigError(f"the spec names no outcome (got {spec.get('outcome')!r}). Fix: outcome = "
                              "\"<variable or scale>\".")
        options = dict(table(spec.get("options", {}), "the spec's [options]", "random_slopes = true"))
        reject_unknown(options, list(option_defaults), f"option of {model}")
        sampler = dict(table(spec.get("sampler", {}), "the spec's [sampler]", "draws = 1000"))
        reject_unknown(sampler, [f.name for f in fields(SamplerSettings)], "sampler setting")
        priors = table(spec.get("priors", {}), "the spec's [priors]", 'sigma = { dist = "HalfNormal", sigma = 1 }')
        return cls(model, spec["outcome"], {**option_defaults, **options},
                   {str(k): dict(table(v, f"prior '{k}'", '{ dist = "HalfNormal", sigma = 1 }'))
                    for k, v in priors.items()},
                   SamplerSettings(**{**(sampler_defaults or {}), **sampler}))

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "outcome": self.outcome, "options": dict(self.options),
                "priors": dict(self.priors), "sampler": asdict(self.sampler)}

    def hash(self) -> str:
        """SHA-256 of the spec's canonical JSON (sampler progress display excluded)."""
        return spec_hash(self.to_dict())


def spec_hash(spec: Mapping[str, Any]) -> str:
    """SHA-256 of a complete spec mapping (:meth:`ModelSpec.to_dict`) as canonical JSON, without the sampler's progress
    display: what a fit records, and what ``load`` checks its stored spec against."""
    d = json.loads(json.dumps(spec, default=str))
    d.get("sampler", {}).pop("progress", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()
