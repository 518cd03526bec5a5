"""Model adapters: each turns one family of models into a :class:`~mirdeconv.model.FrozenModel`.

The registry, in the style of xarray's backends: the built-in adapters are listed in
:data:`BUILTIN`; other packages add theirs through the entry-point group
``mirdeconv.adapters`` (``[project.entry-points."mirdeconv.adapters"] mine =
"my_package.adapter:MyAdapter"``).  Discovery is cached; :func:`refresh_adapters` reads the
entry points again.  :func:`mirdeconv.load_model` asks every adapter, in priority order,
whether it can open a source (``guess_can_open``), or takes the one named by ``adapter=``.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from ..entrypoints import load_group
from ..errors import ModelLoadError
from .base import ModelAdapter

__all__ = ["ModelAdapter", "BUILTIN", "ENTRY_POINT_GROUP", "list_adapters", "refresh_adapters",
           "get_adapter", "guess_adapter", "adapter_errors"]

ENTRY_POINT_GROUP = "mirdeconv.adapters"
#: The adapters that ship with mirdeconv: name -> ``module:Class``.
BUILTIN: dict[str, str] = {
    "keras": "mirdeconv.adapters.keras:KerasAdapter",
    "essentia": "mirdeconv.adapters.essentia:EssentiaAdapter",
    "pb": "mirdeconv.adapters.essentia:GraphAdapter",
}

_lock = threading.Lock()
_cache: tuple[dict[str, ModelAdapter], dict[str, str]] | None = None


def _instantiate(obj: Any, name: str) -> ModelAdapter:
    adapter = obj() if isinstance(obj, type) else obj
    if not isinstance(adapter, ModelAdapter):
        raise TypeError(f"{name} is not a mirdeconv.adapters.ModelAdapter")
    return adapter


def _discover() -> tuple[dict[str, ModelAdapter], dict[str, str]]:
    found: dict[str, ModelAdapter] = {}
    errors: dict[str, str] = {}
    for name, path in BUILTIN.items():
        module, _, cls = path.partition(":")
        found[name] = getattr(importlib.import_module(module), cls)()
    for ep in load_group(ENTRY_POINT_GROUP):
        if ep.name in found:
            continue  # the built-in (or an earlier distribution) keeps the name
        try:
            if ep.error:
                raise RuntimeError(ep.error)
            found[ep.name] = _instantiate(ep.obj, ep.value)
        except Exception as exc:
            errors[ep.name] = str(exc)
    order = sorted(found.values(), key=lambda a: (a.priority, a.name))
    return {a.name: a for a in order}, errors


def list_adapters() -> dict[str, ModelAdapter]:
    """Every adapter, name -> adapter, in the order they are asked (cached)."""
    global _cache
    with _lock:
        if _cache is None:
            _cache = _discover()
        return dict(_cache[0])


def adapter_errors() -> dict[str, str]:
    """Adapters of installed packages that failed to load: name -> error."""
    list_adapters()
    return dict(_cache[1]) if _cache else {}


def refresh_adapters() -> dict[str, ModelAdapter]:
    """Read the entry points again (after installing a package in this process)."""
    global _cache
    with _lock:
        _cache = None
    return list_adapters()


def get_adapter(name: str) -> ModelAdapter:
    """The adapter called ``name``.

    Raises
    ------
    ModelLoadError
        No such adapter (the message lists those there are).
    """
    adapters = list_adapters()
    if name not in adapters:
        raise ModelLoadError(f"no model adapter named {name!r}; adapters: {', '.join(adapters)}")
    return adapters[name]


def guess_adapter(source: Any) -> ModelAdapter | None:
    """The first adapter (in priority order) that says it can open ``source``."""
    for adapter in list_adapters().values():
        if adapter.guess_can_open(source):
            return adapter
    return None
