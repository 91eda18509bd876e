"""The allow-list of classes and functions that configs and saved models may name.

A config or a saved model names its item blocks, layer types and functions (trainer factory,
validation mask) by importable name (``module.qualname``). Loading resolves a name only through
this registry, never by importing a module named in a file: seqrec's own objects are registered
here, RecTools' names of their equivalents are aliases of them, and a user registers their own
with :func:`register` before loading.
"""

from __future__ import annotations

import typing as tp

_REGISTRY: tp.Dict[str, tp.Any] = {}


def name_of(obj: tp.Any) -> str:
    """The importable name ``module.qualname`` of a class or function (its registered name if any)."""
    for name, value in _REGISTRY.items():
        if value is obj and not name.startswith("rectools."):
            return name
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise ValueError(f"{obj!r} has no importable name (a lambda or a local function?): define it at module "
                         "level to store it in a config or a saved model")
    return f"{module}.{qualname}"


def register(obj: tp.Any, name: tp.Optional[str] = None) -> tp.Any:
    """Allow ``obj`` (a class or function) to be named in configs and saved models.

    Registered under its importable name ``module.qualname`` (or ``name``). Returns ``obj``, so it
    works as a decorator. Register before loading a model or config that names it.
    """
    key = name or name_of(obj)
    if key in _REGISTRY and _REGISTRY[key] is not obj:
        raise ValueError(f"{key!r} is already registered for another object")
    _REGISTRY[key] = obj
    return obj


def resolve(name: str, what: str) -> tp.Any:
    """The registered object called ``name``; an error naming ``what`` (the parameter) otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"{what}: expected a registered name (str), got {type(name).__name__}")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"{what}: {name!r} is not a registered name; seqrec never imports modules named in a config or a "
            f"file. Register it first with seqrec.register(obj) (registered: {sorted(_REGISTRY)})"
        ) from None


def is_registered(obj: tp.Any) -> bool:
    return any(value is obj for value in _REGISTRY.values())
