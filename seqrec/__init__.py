"""seqrec: sequential recommendation with transformers (SASRec, BERT4Rec) on pandas data."""

from .columns import Columns
from .dataset import Dataset, IdMap
from .models import BERT4RecModel, NotFittedError, PopularModel, RandomModel, SASRecModel
from .nn.item_net import CatFeaturesItemNet, IdEmbeddingsItemNet, ItemNetBase
from .nn.layers import PreLNTransformerLayers, SASRecTransformerLayers, TransformerLayersBase
from .types import AnyIds, AnySequence, ExternalId, ExternalIds, InternalId, InternalIds

__version__ = "0.1.0"

__all__ = [
    "AnyIds",
    "AnySequence",
    "BERT4RecModel",
    "CatFeaturesItemNet",
    "Columns",
    "Dataset",
    "ExternalId",
    "ExternalIds",
    "IdEmbeddingsItemNet",
    "IdMap",
    "InternalId",
    "InternalIds",
    "ItemNetBase",
    "NotFittedError",
    "PopularModel",
    "PreLNTransformerLayers",
    "RandomModel",
    "SASRecModel",
    "SASRecTransformerLayers",
    "TransformerLayersBase",
    "__version__",
]
