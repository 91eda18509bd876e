"""Saving and loading models: a file format that runs no code when read.

A saved model is a zip archive of

- ``seqrec-model.json``: format name and version, seqrec's version, the model class and its config
  (``get_config(simple_types=True)``: classes and functions by registered name), and, for a fitted
  model, what rebuilds the network without data (the item blocks' specs), the training seed, the
  epochs done and the per-epoch history;
- ``weights.safetensors`` and ``optimizer.safetensors``: the network's tensors and Adam's state;
- ``item_ids.npy`` (numbers or strings, read with ``allow_pickle=False``) or the ids in the JSON.

Reading it parses JSON, safetensors and a plain ``.npy``; names of classes and functions resolve
only through :mod:`seqrec.registry`. A path is written atomically (a temporary file in the same
folder, then a rename), so an interrupted save never leaves a half-written file under the name.
Lightning checkpoints written during ``fit`` carry the same archive without weights, which lets
:func:`load_from_checkpoint` rebuild the model; they are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import io
import json
import os
import tempfile
import typing as tp
import zipfile

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load as st_load, save as st_save

from .dataset import IdMap
from .registry import name_of, resolve

FORMAT = "seqrec-model"
FORMAT_VERSION = 1
META = "seqrec-model.json"
WEIGHTS = "weights.safetensors"
OPTIMIZER = "optimizer.safetensors"
ITEM_IDS = "item_ids.npy"

FileLike = tp.Union[str, "os.PathLike[str]", tp.BinaryIO]


class ModelFileError(ValueError):
    """A file that is not a readable seqrec model (not one, corrupt, truncated or too new)."""


def _version() -> str:
    from . import __version__
    return __version__


# ----------------------------------------------------------------- ids
def _ids_payload(ids: np.ndarray) -> tp.Tuple[tp.Optional[bytes], tp.Optional[tp.List[tp.Any]]]:
    """External ids as a ``.npy`` (all numbers or all strings) or as a JSON list (mixed JSON scalars)."""
    index = pd.Index(ids)
    if index.dtype.kind in "iuf":
        buf = io.BytesIO()
        np.save(buf, index.to_numpy(), allow_pickle=False)
        return buf.getvalue(), None
    values = list(ids)
    if all(isinstance(v, str) for v in values):
        buf = io.BytesIO()
        np.save(buf, np.asarray(values, dtype=str), allow_pickle=False)
        return buf.getvalue(), None
    out = []
    for v in values:
        v = v.item() if isinstance(v, np.generic) else v
        if not isinstance(v, (str, int, float, bool)):
            raise ValueError(f"Cannot save item id {v!r} of type {type(v).__name__}: ids must be numbers or strings")
        out.append(v)
    return None, out


def _ids_from(npy: tp.Optional[bytes], values: tp.Optional[tp.List[tp.Any]]) -> np.ndarray:
    if values is not None:
        return np.asarray(values, dtype=object)
    assert npy is not None
    array = np.load(io.BytesIO(npy), allow_pickle=False)
    return array.astype(object) if array.dtype.kind == "U" else array


# ----------------------------------------------------------------- optimizer state
def _optimizer_payload(state: tp.Optional[tp.Dict[str, tp.Any]]
                       ) -> tp.Tuple[tp.Optional[bytes], tp.Optional[tp.List[tp.Dict[str, tp.Any]]]]:
    if state is None:
        return None, None
    tensors = {}
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            tensors[f"{pid}/{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    return st_save(tensors) if tensors else b"", groups


def _optimizer_from(data: tp.Optional[bytes], groups: tp.Optional[tp.List[tp.Dict[str, tp.Any]]]
                    ) -> tp.Optional[tp.Dict[str, tp.Any]]:
    if groups is None:
        return None
    state: tp.Dict[int, tp.Dict[str, torch.Tensor]] = {}
    for name, value in (st_load(data) if data else {}).items():
        pid, key = name.split("/", 1)
        state.setdefault(int(pid), {})[key] = value
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in groups]
    return {"state": state, "param_groups": groups}


# ----------------------------------------------------------------- archive
def _zip(meta: tp.Dict[str, tp.Any], files: tp.Dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(META, json.dumps(meta))
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _checkpoint_config(model: tp.Any) -> tp.Dict[str, tp.Any]:
    """The config for a checkpoint: functions without an importable name (lambdas, local
    functions) are left out (None), so that a checkpoint can always rebuild the model."""
    from .config import _FUNCTION_PARAMS
    params = {}
    for name in _FUNCTION_PARAMS:
        value = getattr(model, name, None)
        if value is not None:
            try:
                name_of(value)
            except ValueError:
                params[name] = None
    if not params:
        return model.get_config(simple_types=True)
    clone = copy.copy(model)
    clone.__dict__.update(params)
    return clone.get_config(simple_types=True)


def _archive(model: tp.Any, with_weights: bool, net: tp.Any = None, item_id_map: tp.Any = None) -> bytes:
    net = net if net is not None else getattr(model, "net_", None)
    item_id_map = item_id_map if item_id_map is not None else getattr(model, "item_id_map_", None)
    meta: tp.Dict[str, tp.Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "seqrec_version": _version(),
        "class": type(model).__name__,
        "config": model.get_config(simple_types=True) if with_weights else _checkpoint_config(model),
        "fitted": net is not None,
    }
    files: tp.Dict[str, bytes] = {}
    if net is not None:
        meta["item_blocks"] = [{"type": name_of(type(b)), "spec": b.get_spec()} for b in net.item_net.blocks]
        meta["train_seed"] = int(getattr(model, "train_seed_", 0))
        meta["epochs_done"] = int(getattr(model, "epochs_done_", 0))
        best = getattr(model, "best_epoch_", None)
        meta["best_epoch"] = None if best is None else int(best)
        history = getattr(model, "history_", None)
        meta["history"] = [] if history is None else json.loads(history.to_json(orient="records"))
        npy, values = _ids_payload(item_id_map.external_ids)
        if npy is not None:
            files[ITEM_IDS] = npy
        meta["item_ids"] = values
        meta["weights"] = with_weights
        if with_weights:
            files[WEIGHTS] = st_save({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()})
            opt_data, groups = _optimizer_payload(getattr(model, "optimizer_state_", None))
            meta["optimizer_param_groups"] = groups
            if opt_data is not None:
                files[OPTIMIZER] = opt_data
    return _zip(meta, files)


# ----------------------------------------------------------------- baselines (PopularModel, RandomModel)
def _json_param(value: tp.Any) -> tp.Any:
    """A baseline's parameter as JSON: times and durations tagged, numpy scalars as Python ones."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (pd.Timestamp, np.datetime64)) or type(value).__name__ == "datetime":
        return {"__datetime__": pd.Timestamp(value).isoformat()}
    if isinstance(value, (pd.Timedelta, np.timedelta64)) or type(value).__name__ == "timedelta":
        return {"__timedelta__": pd.Timedelta(value).isoformat()}
    if isinstance(value, dict):
        return {k: _json_param(v) for k, v in value.items()}
    return value


def _param_from_json(value: tp.Any) -> tp.Any:
    if isinstance(value, dict):
        if set(value) == {"__datetime__"}:
            return pd.Timestamp(value["__datetime__"])
        if set(value) == {"__timedelta__"}:
            return pd.Timedelta(value["__timedelta__"])
        return {k: _param_from_json(v) for k, v in value.items()}
    return value


def _baseline_archive(model: tp.Any) -> bytes:
    fitted = bool(model.is_fitted)
    meta: tp.Dict[str, tp.Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, "seqrec_version": _version(),
                                  "class": type(model).__name__, "baseline": True, "fitted": fitted,
                                  "params": {k: _json_param(v) for k, v in model.get_params().items()},
                                  "arrays": {}}
    files: tp.Dict[str, bytes] = {}
    if fitted:
        for name, array in model._state_arrays().items():
            npy, values = _ids_payload(np.asarray(array))
            meta["arrays"][name] = values
            if npy is not None:
                files[f"{name}.npy"] = npy
    return _zip(meta, files)


def _baseline_from_archive(meta: tp.Dict[str, tp.Any], files: tp.Dict[str, bytes], source: str,
                           expected: tp.Optional[type]) -> tp.Any:
    from .models import PopularModel, RandomModel
    classes = {"PopularModel": PopularModel, "RandomModel": RandomModel}
    if meta.get("class") not in classes:
        raise ModelFileError(f"{source}: unknown baseline class {meta.get('class')!r}")
    cls = classes[meta["class"]]
    if expected is not None and cls is not expected:
        raise TypeError(f"{source} holds a {cls.__name__}, not a {expected.__name__}")
    model = cls(**{k: _param_from_json(v) for k, v in meta["params"].items()})
    if meta.get("fitted"):
        model._set_state_arrays({name: _ids_from(files.get(f"{name}.npy"), values)
                                 for name, values in meta["arrays"].items()})
    return model


def _read_archive(data: bytes, source: str) -> tp.Tuple[tp.Dict[str, tp.Any], tp.Dict[str, bytes]]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
            if META not in names:
                raise ModelFileError(f"{source} is not a seqrec model file (no {META} inside)")
            files = {name: zf.read(name) for name in names}
    except zipfile.BadZipFile as e:
        raise ModelFileError(f"{source} is not a seqrec model file, or it is truncated or corrupt ({e})") from None
    except (zipfile.LargeZipFile, OSError, EOFError) as e:
        raise ModelFileError(f"{source} is truncated or corrupt ({e})") from None
    try:
        meta = json.loads(files[META])
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{source}: {META} is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{source} is not a seqrec model file (format {meta.get('format')!r})"
                             if isinstance(meta, dict) else f"{source} is not a seqrec model file")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(f"{source} was written in model format {version!r} by seqrec "
                             f"{meta.get('seqrec_version')}; this seqrec ({_version()}) reads formats up to "
                             f"{FORMAT_VERSION}: upgrade seqrec")
    return meta, files


def _model_from_archive(meta: tp.Dict[str, tp.Any], files: tp.Dict[str, bytes], source: str,
                        expected: tp.Optional[type] = None, state_dict: tp.Optional[tp.Dict[str, torch.Tensor]] = None
                        ) -> tp.Any:
    from .config import model_from_config
    from .nn.item_net import SumItemNet
    model = model_from_config(meta["config"])
    if expected is not None and type(model) is not expected:
        raise TypeError(f"{source} holds a {type(model).__name__}, not a {expected.__name__}: load it with "
                        f"{type(model).__name__}.load or seqrec.load_model")
    if not meta.get("fitted"):
        return model
    blocks = [resolve(b["type"], "item block").from_spec(b["spec"], model.n_factors) for b in meta["item_blocks"]]
    net = model._net_from_item_net(SumItemNet(blocks))
    if state_dict is None:
        if WEIGHTS not in files:
            raise ModelFileError(f"{source} has no weights ({WEIGHTS})")
        try:
            state_dict = st_load(files[WEIGHTS])
        except Exception as e:  # safetensors raises its own error types
            raise ModelFileError(f"{source}: the weights are corrupt ({e})") from None
    try:
        net.load_state_dict(state_dict)
    except RuntimeError as e:
        net = _standard_pre_ln(model, net, state_dict, blocks)
        if net is None:
            raise ModelFileError(f"{source}: the weights do not match the model its config describes ({e})") from None
    model.net_ = net.eval()
    model.item_id_map_ = IdMap(_ids_from(files.get(ITEM_IDS), meta.get("item_ids")))
    if model.item_id_map_.size != net.n_items:
        raise ModelFileError(f"{source}: {model.item_id_map_.size} item ids for a network of {net.n_items} items")
    model.train_seed_ = int(meta.get("train_seed", 0))
    model.epochs_done_ = int(meta.get("epochs_done", 0))
    model.best_epoch_ = meta.get("best_epoch")
    model.history_ = pd.DataFrame(meta.get("history", []))
    model.optimizer_state_ = _optimizer_from(files.get(OPTIMIZER), meta.get("optimizer_param_groups"))
    return model


def _standard_pre_ln(model: tp.Any, net: tp.Any, state_dict: tp.Dict[str, torch.Tensor],
                     blocks: tp.List[tp.Any]) -> tp.Any:
    """A file written before ``PreLNTransformerLayers``' defaults became RecTools' stack holds a
    final LayerNorm (``layers.ln_out.*``) its config does not ask for: such a model was trained with
    the standard pre-LN stack, which is rebuilt (``final_norm=True, output_dropout=False``, set in
    the model's ``transformer_layers_kwargs``) and loaded. None for any other mismatch."""
    from torch import nn

    from .nn.item_net import SumItemNet
    from .nn.layers import PreLNTransformerLayers
    options = dict(model.transformer_layers_kwargs or {})
    if not (isinstance(net.layers, PreLNTransformerLayers) and isinstance(net.layers.ln_out, nn.Identity)
            and "final_norm" not in options and "layers.ln_out.weight" in state_dict):
        return None
    model.set_params(transformer_layers_kwargs={**options, "final_norm": True, "output_dropout": False})
    net = model._net_from_item_net(SumItemNet(blocks))
    try:
        net.load_state_dict(state_dict)
    except RuntimeError:
        return None
    return net


def _atomic_write(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".seqrec-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save_model(model: tp.Any, f: FileLike) -> int:
    data = _baseline_archive(model) if hasattr(model, "_state_arrays") else _archive(model, with_weights=True)
    if isinstance(f, (str, os.PathLike)):
        _atomic_write(os.fspath(f), data)
    else:
        f.write(data)
    return len(data)


def _read_bytes(f: FileLike) -> tp.Tuple[bytes, str]:
    if isinstance(f, (str, os.PathLike)):
        path = os.fspath(f)
        if not os.path.exists(path):
            raise FileNotFoundError(f"No model file at {path!r}")
        with open(path, "rb") as fh:
            return fh.read(), repr(path)
    return f.read(), "the file object"


def load_model(f: FileLike, map_location: tp.Union[str, torch.device, None] = None,
               expected: tp.Optional[type] = None) -> tp.Any:
    """A model from a file written by ``model.save`` (whatever its class).

    The network is kept on the CPU between calls, as after ``fit`` (``recommend_torch_device``
    says where it scores); ``map_location`` is accepted for compatibility.
    """
    data, source = _read_bytes(f)
    meta, files = _read_archive(data, source)
    if meta.get("baseline"):
        return _baseline_from_archive(meta, files, source, expected)
    return _model_from_archive(meta, files, source, expected)


# ----------------------------------------------------------------- Lightning checkpoints
def checkpoint_meta(model: tp.Any, net: tp.Any, item_id_map: tp.Any) -> tp.Optional[torch.Tensor]:
    """The archive without weights, as a uint8 tensor for a Lightning checkpoint (None when the
    model cannot be described, e.g. a custom item block without an importable name)."""
    try:
        data = _archive(model, with_weights=False, net=net, item_id_map=item_id_map)
    except ValueError:
        return None
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _read_checkpoint(path: tp.Any, map_location: tp.Any) -> tp.Dict[str, tp.Any]:
    try:
        return torch.load(os.fspath(path), map_location=map_location or "cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise ModelFileError(f"{os.fspath(path)!r} is not a readable checkpoint of tensors and plain values "
                             f"(read with weights_only=True): {e}") from None


def _net_state(checkpoint: tp.Dict[str, tp.Any], source: str) -> tp.Dict[str, torch.Tensor]:
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise ModelFileError(f"{source} has no 'state_dict': not a Lightning checkpoint")
    net_state = {k[len("net."):]: v.cpu() for k, v in state.items() if k.startswith("net.")}
    if not net_state:
        raise ModelFileError(f"{source} holds no weights of a seqrec network")
    return net_state


def load_from_checkpoint(cls: tp.Optional[type], path: tp.Any, map_location: tp.Any = None) -> tp.Any:
    source = repr(os.fspath(path))
    checkpoint = _read_checkpoint(path, map_location)
    meta_tensor = checkpoint.get("seqrec")
    if not isinstance(meta_tensor, torch.Tensor):
        raise ModelFileError(f"{source} was not written while a seqrec model trained (no 'seqrec' entry), or its "
                             "config could not be stored")
    meta, files = _read_archive(bytes(meta_tensor.cpu().numpy().tobytes()), source)
    model = _model_from_archive(meta, files, source, cls, state_dict=_net_state(checkpoint, source))
    optimizers = checkpoint.get("optimizer_states") or []
    model.optimizer_state_ = optimizers[0] if optimizers else None
    if "seqrec_epochs_done" in checkpoint:
        model.epochs_done_ = int(checkpoint["seqrec_epochs_done"])
    elif "epoch" in checkpoint:
        model.epochs_done_ = int(meta.get("epochs_done", 0)) + int(checkpoint["epoch"]) + 1
    # the epochs of the fit that wrote the checkpoint, from its history callback
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if str(key).startswith("HistoryCallback") and isinstance(state, dict) and state.get("rows"):
            rows = pd.DataFrame(state["rows"])
            model.history_ = pd.concat([model.history_, rows[rows["epoch"] <= model.epochs_done_]], ignore_index=True)
            break
    return model


# parameters a resumed run may change: they do not alter what the epochs already trained compute
_RESUME_FREE = {"epochs", "verbose", "dataloader_num_workers", "recommend_batch_size", "recommend_torch_device",
                "get_trainer_func_kwargs"}


def restore_checkpoint(model: tp.Any, path: tp.Any) -> None:
    """Make ``model`` the one of a checkpoint written while a model with the same parameters
    trained (``fit(checkpoint_dir=...)``): weights, Adam's state, seed, epochs done, history."""
    loaded = load_from_checkpoint(type(model), path)
    from .config import _FUNCTION_PARAMS
    mine, theirs = _checkpoint_config(model), loaded.get_config(simple_types=True)
    free = set(_FUNCTION_PARAMS) | _RESUME_FREE
    differ = sorted(k for k in set(mine) | set(theirs) if k not in free and mine.get(k) != theirs.get(k))
    if differ:
        raise ValueError(f"{os.fspath(path)!r} was written by a model with other parameters: "
                         + ", ".join(f"{k}={theirs.get(k)!r} there, {mine.get(k)!r} here" for k in differ))
    for attr in ("net_", "item_id_map_", "train_seed_", "epochs_done_", "optimizer_state_", "history_", "best_epoch_"):
        setattr(model, attr, getattr(loaded, attr))


def load_weights_from_checkpoint(model: tp.Any, path: tp.Any) -> None:
    checkpoint = _read_checkpoint(path, None)
    try:
        model.net_.load_state_dict(_net_state(checkpoint, repr(os.fspath(path))))
    except RuntimeError as e:
        raise ModelFileError(f"{os.fspath(path)!r}: the weights do not fit this model ({e})") from None
