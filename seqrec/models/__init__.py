from .base import NotFittedError, TransformerModelBase
from .bert4rec import BERT4RecModel
from .popular import PopularModel
from .random import RandomModel
from .sasrec import SASRecModel

__all__ = ["BERT4RecModel", "NotFittedError", "PopularModel", "RandomModel", "SASRecModel", "TransformerModelBase"]
