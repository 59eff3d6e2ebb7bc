"""The lcbayes models, by spec name."""

from lcbayes.models.base import BayesModel, DataMismatchError, NotFittedError
from lcbayes.models.climate_growth import ClimateGrowth
from lcbayes.models.consensus_emergence import ConsensusEmergence
from lcbayes.models.knowledge_sharing import KnowledgeSharing

MODELS: dict[str, type[BayesModel]] = {cls.name: cls for cls in (ClimateGrowth, ConsensusEmergence, KnowledgeSharing)}

__all__ = ["MODELS", "BayesModel", "ClimateGrowth", "ConsensusEmergence", "KnowledgeSharing", "DataMismatchError", "NotFittedError"]
