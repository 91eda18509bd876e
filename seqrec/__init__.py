"""seqrec: sequential recommendation with transformers (SASRec, BERT4Rec) on pandas data."""

from .columns import Columns
from .dataset import Dataset, IdMap
from .models import BERT4RecModel, NotFittedError, PopularModel, RandomModel, SASRecModel, TransformerModelBase
from .nn.item_net import CatFeaturesItemNet, IdEmbeddingsItemNet, ItemNetBase
from .nn.layers import PreLNTransformerLayers, SASRecTransformerLayers, TransformerLayersBase
from .types import AnyIds, AnySequence, ExternalId, ExternalIds, InternalId, InternalIds
from .config import model_from_config, model_from_params
from .io import read_interactions, read_item_features
from .persistence import ModelFileError, load_model
from .ranking import DistanceSimilarityModule
from .registry import register
from .validation import leave_one_out_mask

__version__ = "0.1.0"

__all__ = [
    "AnyIds",
    "AnySequence",
    "BERT4RecModel",
    "CatFeaturesItemNet",
    "Columns",
    "Dataset",
    "DistanceSimilarityModule",
    "ExternalId",
    "ExternalIds",
    "IdEmbeddingsItemNet",
    "IdMap",
    "InternalId",
    "InternalIds",
    "ItemNetBase",
    "ModelFileError",
    "NotFittedError",
    "PopularModel",
    "PreLNTransformerLayers",
    "RandomModel",
    "SASRecModel",
    "SASRecTransformerLayers",
    "TransformerLayersBase",
    "TransformerModelBase",
    "leave_one_out_mask",
    "load_model",
    "model_from_config",
    "model_from_params",
    "read_interactions",
    "read_item_features",
    "register",
    "__version__",
]
