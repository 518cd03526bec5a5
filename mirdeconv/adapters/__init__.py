"""Model adapters: each turns one family of models into a :class:`~mirdeconv.model.FrozenModel`.

The registry, in the style of xarray's backends: every adapter, mirdeconv's own ones
included, is registered through the entry-point group ``mirdeconv.adapters``
(``[project.entry-points."mirdeconv.adapters"] mine = "my_package.adapter:MyAdapter"``),
under the adapter's own name.  Discovery is cached; :func:`refresh_adapters` reads the entry
points again.  :func:`mirdeconv.load_model` asks every adapter, in priority order, whether
it can open a source (``guess_can_open``), or takes the one named by ``adapter=``.  An
adapter that fails to load, or a second one with a name already taken, is reported by
:func:`adapter_errors` (and ``mirdeconv plugins``) and never hides the others.
"""

from __future__ import annotations

import threading
from typing import Any

from ..entrypoints import load_group
from ..errors import ModelLoadError
from .base import ModelAdapter

__all__ = ["ModelAdapter", "ENTRY_POINT_GROUP", "list_adapters", "refresh_adapters",
           "get_adapter", "guess_adapter", "adapter_errors"]

ENTRY_POINT_GROUP = "mirdeconv.adapters"

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
    for ep in load_group(ENTRY_POINT_GROUP):
        try:
            if ep.error:
                raise RuntimeError(ep.error)
            adapter = _instantiate(ep.obj, ep.value)
            if adapter.name != ep.name:
                raise TypeError(f"{ep.value} is named {adapter.name!r}, its entry point {ep.name!r}")
            if ep.name in found:
                raise TypeError(f"an adapter named {ep.name!r} is already registered "
                                f"({type(found[ep.name]).__module__})")
            found[ep.name] = adapter
        except Exception as exc:
            errors.setdefault(ep.name, str(exc))
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
    adapters = _registered()
    if name not in adapters:
        raise ModelLoadError(f"no model adapter named {name!r}; adapters: {', '.join(adapters)}")
    return adapters[name]


def guess_adapter(source: Any) -> ModelAdapter | None:
    """The first adapter (in priority order) that says it can open ``source``."""
    for adapter in _registered().values():
        if adapter.guess_can_open(source):
            return adapter
    return None


def _registered() -> dict[str, ModelAdapter]:
    adapters = list_adapters()
    if not adapters:
        raise ModelLoadError(
            "no model adapters are registered: mirdeconv's own come through its package's entry "
            "points, so install it (pip install -e . in a checkout) rather than running it "
            "from a bare folder")
    return adapters
