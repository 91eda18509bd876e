"""seqrec: sequential recommendation with transformers (SASRec, BERT4Rec, HSTU) on pandas data."""

from .columns import Columns
from .dataset import Dataset, IdMap
from .models import (BERT4RecModel, HSTUModel, NotFittedError, PopularModel, RandomModel, SASRecModel,
                     TransformerModelBase, get_context)
from .nn.hstu import STULayers
from .nn.item_net import CatFeaturesItemNet, DenseFeaturesItemNet, IdEmbeddingsItemNet, ItemNetBase
from .nn.layers import LiGRLayers, PreLNTransformerLayers, SASRecTransformerLayers, TransformerLayersBase
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
    "DenseFeaturesItemNet",
    "DistanceSimilarityModule",
    "ExternalId",
    "ExternalIds",
    "HSTUModel",
    "IdEmbeddingsItemNet",
    "IdMap",
    "InternalId",
    "InternalIds",
    "ItemNetBase",
    "LiGRLayers",
    "ModelFileError",
    "NotFittedError",
    "PopularModel",
    "PreLNTransformerLayers",
    "RandomModel",
    "SASRecModel",
    "SASRecTransformerLayers",
    "STULayers",
    "TransformerLayersBase",
    "TransformerModelBase",
    "get_context",
    "leave_one_out_mask",
    "load_model",
    "model_from_config",
    "model_from_params",
    "read_interactions",
    "read_item_features",
    "register",
    "__version__",
]
