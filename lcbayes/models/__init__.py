"""The lcbayes models: one registry (:data:`MODELS`, spec name -> class) and one factory.

A new model is one module defining a :class:`BayesModel` subclass, one :func:`register`
call (here, or in the module that defines it) and one spec TOML.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lcbayes.errors import ConfigError
from lcbayes.models.base import BayesModel, DataMismatchError, NotFittedError
from lcbayes.models.climate_growth import ClimateGrowth
from lcbayes.models.consensus_emergence import ConsensusEmergence
from lcbayes.models.knowledge_sharing import KnowledgeSharing
from lcbayes.models.spec import read_spec

MODELS: dict[str, type[BayesModel]] = {}


def register(cls: type[BayesModel]) -> type[BayesModel]:
    """Add a model class to :data:`MODELS` under its ``name`` (usable as a decorator)."""
    MODELS[cls.name] = cls
    return cls


def model_class(name: object) -> type[BayesModel]:
    """The class registered as ``name``; an unknown name is a :class:`ConfigError` listing them."""
    if not isinstance(name, str) or name not in MODELS:
        raise ConfigError(f"unknown model {name!r}. Valid: {', '.join(MODELS)}. "
                          "Fix: set model = \"<one of these>\" in the spec.")
    return MODELS[name]


def create(spec: Mapping[str, Any] | str | Path, study: Any, **options: Any) -> BayesModel:
    """The model a spec names (``spec["model"]``), built on ``study``; ``options`` override the
    spec's options. ``spec`` is a mapping or the path of a spec TOML file."""
    mapping = read_spec(spec) if isinstance(spec, (str, Path)) else dict(spec)
    return model_class(mapping.get("model"))(study, mapping, **options)


for _cls in (ClimateGrowth, ConsensusEmergence, KnowledgeSharing):
    register(_cls)

__all__ = ["MODELS", "BayesModel", "ClimateGrowth", "ConsensusEmergence", "KnowledgeSharing",
           "DataMismatchError", "NotFittedError", "create", "model_class", "register"]
