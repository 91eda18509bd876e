"""seqrec: sequential recommendation with transformers (SASRec, BERT4Rec) on pandas data."""

from .columns import Columns
from .dataset import Dataset, IdMap
from .models import BERT4RecModel, NotFittedError, SASRecModel
from .nn.item_net import CatFeaturesItemNet, IdEmbeddingsItemNet, ItemNetBase
from .nn.layers import PreLNTransformerLayers, SASRecTransformerLayers, TransformerLayersBase

__version__ = "0.1.0"

__all__ = [
    "BERT4RecModel",
    "CatFeaturesItemNet",
    "Columns",
    "Dataset",
    "IdEmbeddingsItemNet",
    "IdMap",
    "ItemNetBase",
    "NotFittedError",
    "PreLNTransformerLayers",
    "SASRecModel",
    "SASRecTransformerLayers",
    "TransformerLayersBase",
    "__version__",
]
