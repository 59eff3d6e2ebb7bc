"""The lcbayes models, by spec name."""

from lcbayes.models.base import BayesModel, DataMismatchError, NotFittedError
from lcbayes.models.climate_growth import ClimateGrowth

MODELS: dict[str, type[BayesModel]] = {cls.name: cls for cls in (ClimateGrowth,)}

__all__ = ["MODELS", "BayesModel", "ClimateGrowth", "DataMismatchError", "NotFittedError"]
