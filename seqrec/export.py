"""Export for serving: the sequence encoder as ONNX, the item table and ids beside it.

:func:`export_onnx` writes two files:

- ``path`` (e.g. ``model.onnx``): the encoder. Input ``tokens``, int64 ``(batch, L)`` with
  ``L = session_max_len`` and a dynamic batch axis; output ``user_vectors``, float32
  ``(batch, d)``: the vector at each row's last real token. The graph holds the item embeddings it
  looks tokens up in, so it needs nothing else.
- ``path + ".items.npz"``: ``vectors``, float32 ``(n_items, d)``, and ``ids``, the external item id
  of each row (numbers or strings; read with ``np.load(..., allow_pickle=False)``).

Tokens are seqrec's, not item ids: ``0`` is padding, ``1`` the mask token, and row ``i`` of the
item table is token ``i + 2``. A row holds a user's most recent items, oldest first, then padding
on the right. SASRec reads the last ``L`` items; BERT4Rec the last ``L - 1`` items followed by the
mask token, whose vector scores the next item. :func:`encode_histories` makes exactly the tokens
``recommend`` uses.

The score of an item is ``user_vectors @ vectors.T``, the score ``recommend`` gives: for a model
trained with ``similarity="cosine"`` both the output and the saved vectors are unit length.
The ONNX metadata (``custom_metadata_map`` in onnxruntime) repeats this layout: ``pad_token``,
``mask_token``, ``item_token_offset``, ``session_max_len``, ``mask_appended``, ``similarity``,
``model``, ``n_items``, ``n_factors``.
"""

from __future__ import annotations

import importlib
import json
import os
import typing as tp
import warnings

import numpy as np
import pandas as pd
import torch
from torch import nn

from .dataset import Dataset
from .nn.transformer import MASK, N_SPECIAL, PAD
from .ranking import similarity_vectors

if tp.TYPE_CHECKING:
    from .models.base import TransformerModelBase

INPUT_NAME = "tokens"
OUTPUT_NAME = "user_vectors"
ITEMS_SUFFIX = ".items.npz"
OPSET = 17

PathLike = tp.Union[str, "os.PathLike[str]"]


class OnnxExport(tp.NamedTuple):
    """The files :func:`export_onnx` wrote."""

    model_path: str
    items_path: str


def require(module: str, extra: str) -> tp.Any:
    """Import an optional dependency, or raise an ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{module} is not installed; it comes with seqrec's '{extra}' extra: "
                          f"pip install 'seqrec[{extra}]'") from e


class _Encoder(nn.Module):
    """Tokens ``(B, L)`` -> scoring vectors ``(B, d)`` at the last real token, in a traceable form.

    ``TransformerNet.last_vectors`` cuts padding columns by a data-dependent width, which a trace
    would freeze; this runs the full ``encode`` and gathers the last position instead (the same
    values: padding never reaches a real position, or, without a key padding mask, recommend
    reads the full width too). The item table is a constant of the graph.
    """

    def __init__(self, net: nn.Module, item_table: torch.Tensor, similarity: str) -> None:
        super().__init__()
        self.net = net
        self.similarity = similarity
        self.register_buffer("item_table", item_table)  # (n_items, d)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.net.encode(tokens, self.item_table)  # (B, L, d)
        last = ((tokens != PAD).sum(dim=1) - 1).clamp(min=0)  # (B,)
        index = last.view(-1, 1, 1).expand(-1, 1, h.shape[-1])  # (B, 1, d)
        return similarity_vectors(h.gather(1, index).squeeze(1), self.similarity)  # (B, d)


def _ids_array(ids: np.ndarray) -> np.ndarray:
    """External ids as an array ``np.load`` reads without pickle: numbers, or strings."""
    index = pd.Index(ids)
    if index.dtype.kind in "iuf":
        return index.to_numpy()
    values = list(ids)
    if all(isinstance(v, str) for v in values):
        return np.asarray(values, dtype=str)
    kinds = sorted({type(v).__name__ for v in values})
    raise ValueError(f"Cannot export item ids of mixed types {kinds}: ids must be all numbers or all strings")


def export_onnx(model: "TransformerModelBase", path: PathLike, opset_version: int = OPSET) -> OnnxExport:
    """Write the fitted ``model``'s encoder to ``path`` (ONNX) and its item table and ids to
    ``path + ".items.npz"``; see the module docstring for the inputs, outputs and files.

    The legacy TorchScript exporter (``torch.onnx.export(..., dynamo=False)``) is used: it needs
    only the ``onnx`` package (extra ``seqrec[onnx]``). Returns the two paths.
    """
    onnx = require("onnx", "onnx")
    model._check_fitted()
    if model._uses_times():
        raise ValueError(f"export_onnx does not export {type(model).__name__} with relative time attention: its "
                         "encoder also reads the interaction and request times; export a model without "
                         "time attention (relative_time_attention=False) or serve it from Python")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if not (isinstance(opset_version, int) and 14 <= opset_version):
        raise ValueError(f"opset_version must be an integer >= 14 (attention export), got {opset_version!r}")
    model_path = os.fspath(path)
    items_path = model_path + ITEMS_SUFFIX
    ids = _ids_array(model.item_id_map_.external_ids)
    similarity = model._similarity()
    net = model.net_.cpu()  # traced on the host, as the network rests between recommend calls
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            table = net.item_table().detach().float().cpu()  # (n_items, d)
        encoder = _Encoder(net, table, similarity).eval()
        # the trace's example: the model's own tokens of two short histories (padding, mask token)
        example = torch.from_numpy(model._inference_tokens(np.array([0, 1, 3]), np.array([0, 0, 0])))  # (2, L)
        with warnings.catch_warnings():
            # the exporter's own notices (legacy exporter, traced constants such as d) say nothing
            # about this graph: the only dynamic axis, the batch, is declared below
            warnings.simplefilter("ignore")
            torch.onnx.export(
                encoder, (example,), model_path, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset_version, do_constant_folding=True, dynamo=False,
            )
    finally:
        net.train(was_training)
    proto = onnx.load(model_path)
    meta = _metadata(model, similarity, os.path.basename(items_path))
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, model_path)
    vectors = similarity_vectors(table, similarity).numpy().astype(np.float32, copy=False)  # (n_items, d)
    with open(items_path, "wb") as f:
        np.savez(f, vectors=vectors, ids=ids)
    return OnnxExport(model_path, items_path)


def _appends_mask(model: "TransformerModelBase") -> bool:
    """Whether the model's inference tokens end with the mask token (BERT4Rec), read from the
    model's own ``_inference_tokens`` on a one-item history."""
    tokens = model._inference_tokens(np.array([0, 1]), np.array([0]))  # (1, L)
    return bool((tokens == MASK).any())


def _metadata(model: "TransformerModelBase", similarity: str, items_file: str) -> tp.Dict[str, str]:
    from . import __version__
    return {
        "producer": f"seqrec {__version__}",
        "model": type(model).__name__,
        "input": f"{INPUT_NAME}: int64 (batch, {model.session_max_len}), right-padded tokens",
        "output": f"{OUTPUT_NAME}: float32 (batch, {model.n_factors}); score = {OUTPUT_NAME} @ vectors.T",
        "pad_token": str(PAD),
        "mask_token": str(MASK),
        "item_token_offset": str(N_SPECIAL),
        "session_max_len": str(model.session_max_len),
        "mask_appended": json.dumps(_appends_mask(model)),
        "similarity": similarity,
        "n_items": str(model.net_.n_items),
        "n_factors": str(model.n_factors),
        "items_file": items_file,
    }


def encode_histories(model: "TransformerModelBase", dataset: Dataset, users: tp.Sequence[tp.Hashable]) -> np.ndarray:
    """The exported encoder's input for ``users`` (in the order given, duplicates removed):
    tokens ``(n_users, session_max_len)`` int64 made from their histories in ``dataset`` exactly as
    ``recommend`` makes them (items unknown to the model skipped; BERT4Rec's mask token appended).

    Raises ValueError for users with no interaction with an item the model knows.
    """
    from .models.base import _unique_ids

    model._check_fitted()
    if not isinstance(dataset, Dataset):
        raise TypeError(f"encode_histories expects a seqrec Dataset, got {type(dataset).__name__}")
    users_ext = _unique_ids(users, "users")
    indptr, items, _ = model._histories(dataset, users_ext)
    bad = np.diff(indptr) == 0
    if bad.any():
        raise ValueError(f"users: {int(bad.sum())} user(s) have no interactions with items known to the model in the "
                         f"given dataset, e.g. {list(users_ext[bad][:5])}")
    return model._inference_tokens(indptr, items)


class OnnxEncoder:
    """An exported model read back with onnxruntime (extra ``seqrec[onnx]``): the session, the
    item vectors and ids, and the metadata."""

    def __init__(self, path: PathLike, providers: tp.Sequence[str] = ("CPUExecutionProvider",)) -> None:
        ort = require("onnxruntime", "onnx")
        model_path = os.fspath(path)
        self.session = ort.InferenceSession(model_path, providers=list(providers))
        self.metadata: tp.Dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        with np.load(model_path + ITEMS_SUFFIX, allow_pickle=False) as items:
            self.item_vectors: np.ndarray = items["vectors"]  # (n_items, d)
            self.item_ids: np.ndarray = items["ids"]  # (n_items,)

    def user_vectors(self, tokens: np.ndarray) -> np.ndarray:
        """Scoring vectors ``(B, d)`` of tokens ``(B, L)``."""
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: np.asarray(tokens, dtype=np.int64)})[0]
