"""Model configs as in RecTools: ``get_config`` / ``from_config``, flat ``get_params`` / ``from_params``,
and the module-level ``model_from_config`` / ``model_from_params``.

A config is the dict of a model's constructor parameters plus ``"cls"``, the model class. With
``simple_types=True`` every value is JSON-able: classes and functions appear by registered name
(:mod:`seqrec.registry`), and turning the names back into objects never imports a module.
RecTools' names of the equivalent objects are accepted (``"rectools.models.nn.item_net.IdEmbeddingsItemNet"``),
so a config written by RecTools loads; RecTools' internal extension keys are accepted at their
default values only.
"""

from __future__ import annotations

import inspect
import typing as tp

from .registry import name_of, register, resolve

# parameters whose value is a class, a tuple of classes or a function, stored by name
_CLASS_PARAMS = ("similarity_module_type", "transformer_layers_type")
_CLASS_TUPLE_PARAMS = ("item_net_block_types",)
_FUNCTION_PARAMS = ("get_val_mask_func", "get_trainer_func")

# RecTools' internal extension points (not its user API): a config may carry them at RecTools'
# defaults, which is what seqrec implements; anything else is refused by name
_RECTOOLS_INTERNAL_KEYS = (
    "data_preparator_type", "item_net_constructor_type", "pos_encoding_type", "lightning_module_type",
    "negative_sampler_type", "backbone_type", "data_preparator_kwargs", "item_net_constructor_kwargs",
    "pos_encoding_kwargs", "lightning_module_kwargs", "negative_sampler_kwargs", "backbone_kwargs",
)
_RECTOOLS_DEFAULTS = {
    "data_preparator_type": ("rectools.models.nn.transformers.sasrec.SASRecDataPreparator",
                             "rectools.models.nn.transformers.bert4rec.BERT4RecDataPreparator"),
    "item_net_constructor_type": ("rectools.models.nn.item_net.SumOfEmbeddingsConstructor",),
    "pos_encoding_type": ("rectools.models.nn.transformers.net_blocks.LearnableInversePositionalEncoding",),
    "lightning_module_type": ("rectools.models.nn.transformers.lightning.TransformerLightningModule",),
    "negative_sampler_type": ("rectools.models.nn.transformers.negative_sampler.CatalogUniformSampler",),
    "backbone_type": ("rectools.models.nn.transformers.torch_backbone.TransformerTorchBackbone",),
}


def _model_classes() -> tp.Dict[str, type]:
    from .models import BERT4RecModel, HSTUModel, SASRecModel
    return {"SASRecModel": SASRecModel, "BERT4RecModel": BERT4RecModel, "HSTUModel": HSTUModel}


def _cls_name(cls: type) -> str:
    return cls.__name__ if cls.__name__ in _model_classes() else name_of(cls)


def _resolve_cls(value: tp.Any) -> type:
    if isinstance(value, type):
        return value
    if not isinstance(value, str):
        raise TypeError(f"config key 'cls' must name a model class, got {value!r}")
    short = value.rsplit(".", 1)[-1] if value.startswith(("rectools.", "seqrec.")) else value
    classes = _model_classes()
    if short in classes:
        return classes[short]
    return resolve(value, "cls")


def _simple(name: str, value: tp.Any) -> tp.Any:
    """A parameter value in JSON-able form."""
    if value is None:
        return None
    if name in _CLASS_PARAMS or name in _FUNCTION_PARAMS:
        return name_of(value)
    if name in _CLASS_TUPLE_PARAMS:
        return [name_of(v) for v in value]
    if isinstance(value, tuple):
        return list(value)
    return value


def _from_simple(name: str, value: tp.Any) -> tp.Any:
    """A parameter value back from its JSON-able form (names resolved through the registry)."""
    if value is None:
        return None
    if name in _CLASS_PARAMS or name in _FUNCTION_PARAMS:
        return value if not isinstance(value, str) else resolve(value, name)
    if name in _CLASS_TUPLE_PARAMS:
        return tuple(v if not isinstance(v, str) else resolve(v, name) for v in value)
    return value


def get_config(model: tp.Any, mode: str = "dict", simple_types: bool = False) -> tp.Dict[str, tp.Any]:
    if mode != "dict":
        raise ValueError(f"Unknown mode {mode!r}: seqrec configs are dicts (mode='dict'); RecTools' 'pydantic' "
                         "mode has no seqrec equivalent")
    params = model.get_params()
    if not simple_types:
        return {"cls": type(model), **params}
    return {"cls": _cls_name(type(model)), **{k: _simple(k, v) for k, v in params.items()}}


def _check_rectools_internal(key: str, value: tp.Any) -> None:
    defaults = _RECTOOLS_DEFAULTS.get(key, ())
    if value is None or (isinstance(value, str) and value in defaults):
        return
    raise ValueError(f"config key {key!r} is one of RecTools' internal extension points, which seqrec does not "
                     f"have; it is accepted only at RecTools' default ({defaults[0] if defaults else None!r}), got "
                     f"{value!r}. See the README for seqrec's own extension points")


def from_config(cls: tp.Optional[type], config: tp.Dict[str, tp.Any]) -> tp.Any:
    """The model of ``config``; ``cls`` (when given) must agree with ``config["cls"]``."""
    if not isinstance(config, dict):
        raise TypeError(f"a config must be a dict, got {type(config).__name__}")
    config = dict(config)
    named = config.pop("cls", None)
    model_cls = _resolve_cls(named) if named is not None else cls
    if model_cls is None:
        raise ValueError("the config has no 'cls' key naming the model class (e.g. 'SASRecModel')")
    if cls is not None and model_cls is not cls:
        raise TypeError(f"`{cls.__name__}` is used, but the config is for `{model_cls.__name__}`")
    allowed = [p for p in inspect.signature(model_cls.__init__).parameters if p != "self"]
    for key in _RECTOOLS_INTERNAL_KEYS:
        if key in config and key not in allowed:
            _check_rectools_internal(key, config.pop(key))
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise ValueError(f"Unknown config key(s) {unknown} for {model_cls.__name__}; allowed: {['cls'] + allowed}")
    return model_cls(**{k: _from_simple(k, v) for k, v in config.items()})


def flatten(d: tp.Dict[str, tp.Any], sep: str = ".", prefix: str = "") -> tp.Dict[str, tp.Any]:
    out: tp.Dict[str, tp.Any] = {}
    for key, value in d.items():
        full = f"{prefix}{sep}{key}" if prefix else key
        if isinstance(value, dict) and value:
            out.update(flatten(value, sep, full))
        else:
            out[full] = value
    return out


def unflatten(d: tp.Dict[str, tp.Any], sep: str = ".") -> tp.Dict[str, tp.Any]:
    out: tp.Dict[str, tp.Any] = {}
    for key, value in d.items():
        parts = key.split(sep)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"parameter {key!r} conflicts with a non-dict value at {part!r}")
        node[parts[-1]] = value
    return out


def from_params(cls: tp.Optional[type], params: tp.Dict[str, tp.Any], sep: str = ".") -> tp.Any:
    return from_config(cls, unflatten(params, sep))


def model_from_config(config: tp.Dict[str, tp.Any]) -> tp.Any:
    """The model a config describes; its ``"cls"`` key names the class (``"SASRecModel"``, ...)."""
    return from_config(None, config)


def model_from_params(params: tp.Dict[str, tp.Any], sep: str = ".") -> tp.Any:
    """The model of flat parameters with a ``"cls"`` key (``get_params(simple_types=True)``)."""
    return from_params(None, params, sep)


def _register_builtins() -> None:
    """seqrec's own classes and functions, and RecTools' names for the equivalent ones."""
    from .nn.item_net import CatFeaturesItemNet, DenseFeaturesItemNet, IdEmbeddingsItemNet
    from .ranking import DistanceSimilarityModule
    from .validation import leave_one_out_mask
    for obj in (IdEmbeddingsItemNet, CatFeaturesItemNet, DenseFeaturesItemNet, DistanceSimilarityModule,
                leave_one_out_mask):
        register(obj)
    aliases = {
        "rectools.models.nn.item_net.IdEmbeddingsItemNet": IdEmbeddingsItemNet,
        "rectools.models.nn.item_net.CatFeaturesItemNet": CatFeaturesItemNet,
        "rectools.models.nn.transformers.similarity.DistanceSimilarityModule": DistanceSimilarityModule,
        "rectools.models.nn.transformers.utils.leave_one_out_mask": leave_one_out_mask,
    }
    for name, obj in aliases.items():
        register(obj, name)
    from .nn.hstu import STULayers  # HSTU's layer stack
    register(STULayers)
    register(STULayers, "rectools.models.nn.transformers.hstu.STULayers")
    try:  # the layer types, where this version has them
        from .nn import layers
    except ImportError:
        return
    rectools_paths = {
        "PreLNTransformerLayers": ("net_blocks", "base"),  # "base": an older path RecTools still imports
        "SASRecTransformerLayers": ("sasrec",),
        "LiGRLayers": ("ligr",),
    }
    for name, modules in rectools_paths.items():
        obj = getattr(layers, name, None)
        if obj is not None:
            # the package name first (the one configs are written with), then the file's
            register(obj, f"seqrec.nn.layers.{name}")
            register(obj, f"{obj.__module__}.{obj.__qualname__}")
            for module in modules:
                register(obj, f"rectools.models.nn.transformers.{module}.{name}")


_register_builtins()
