"""The lcbayes models, by spec name."""

from lcbayes.models.base import BayesModel, DataMismatchError, NotFittedError
from lcbayes.models.climate_growth import ClimateGrowth
from lcbayes.models.consensus_emergence import ConsensusEmergence

MODELS: dict[str, type[BayesModel]] = {cls.name: cls for cls in (ClimateGrowth, ConsensusEmergence)}

__all__ = ["MODELS", "BayesModel", "ClimateGrowth", "ConsensusEmergence", "DataMismatchError", "NotFittedError"]
