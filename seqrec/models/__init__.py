from .base import NotFittedError, TransformerModelBase
from .bert4rec import BERT4RecModel
from .hstu import HSTUModel, get_context
from .popular import PopularModel
from .random import RandomModel
from .sasrec import SASRecModel

__all__ = ["BERT4RecModel", "HSTUModel", "NotFittedError", "PopularModel", "RandomModel", "SASRecModel",
           "TransformerModelBase", "get_context"]
