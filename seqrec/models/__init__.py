from .base import NotFittedError, TransformerModelBase
from .bert4rec import BERT4RecModel
from .sasrec import SASRecModel

__all__ = ["BERT4RecModel", "NotFittedError", "SASRecModel", "TransformerModelBase"]
