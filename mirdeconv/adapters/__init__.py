"""Model adapters: each turns one family of models into a :class:`~mirdeconv.model.FrozenModel`.

The registry, in the style of xarray's backends: every adapter, mirdeconv's own ones
included, is registered through the entry-point group ``mirdeconv.adapters``
(``[project.entry-points."mirdeconv.adapters"] mine = "my_package.adapter:MyAdapter"``),
under the adapter's own name.  Discovery is one :class:`~mirdeconv.entrypoints.EntryPointRegistry`
(the same mechanism as the plugins'): cached, and :func:`refresh_adapters` (or
:func:`mirdeconv.registry.refresh`) reads the entry points again.
:func:`mirdeconv.load_model` asks every adapter, in priority order, whether it can open a
source (``guess_can_open``), or takes the one given by ``adapter=``: a name, or an adapter
class (registered or not) or instance.  The options an adapter takes are read from its
``open`` signature (:func:`~mirdeconv.adapters.base.open_options`).  An adapter that fails
to load, or a second one with a name already taken, is reported by :func:`adapter_errors`
(and ``mirdeconv plugins``) and never hides the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..entrypoints import EntryPointRegistry, Loaded, unknown_name
from ..errors import InvalidOptionError, ModelLoadError
from .base import ModelAdapter, open_options

__all__ = ["ModelAdapter", "ENTRY_POINT_GROUP", "list_adapters", "refresh_adapters",
           "get_adapter", "guess_adapter", "adapter_errors", "open_options"]

ENTRY_POINT_GROUP = "mirdeconv.adapters"


@dataclass
class _Found:
    adapters: dict[str, ModelAdapter] = field(default_factory=dict)   # in priority order
    errors: dict[str, str] = field(default_factory=dict)


def _instantiate(obj: Any, name: str) -> ModelAdapter:
    adapter = obj() if isinstance(obj, type) else obj
    if not isinstance(adapter, ModelAdapter):
        raise TypeError(f"{name} is not a mirdeconv.adapters.ModelAdapter")
    return adapter


def _build(loaded: list[Loaded]) -> _Found:
    found = _Found()
    for ep in loaded:
        try:
            if ep.error:
                raise RuntimeError(ep.error)
            adapter = _instantiate(ep.obj, ep.value)
            if adapter.name != ep.name:
                raise TypeError(f"{ep.value} is named {adapter.name!r}, its entry point {ep.name!r}")
            if ep.name in found.adapters:
                raise TypeError(f"an adapter named {ep.name!r} is already registered "
                                f"({type(found.adapters[ep.name]).__module__})")
            open_options(type(adapter))          # a signature that cannot be read is an error
            found.adapters[ep.name] = adapter
        except Exception as exc:
            found.errors.setdefault(ep.name, str(exc))
    order = sorted(found.adapters.values(), key=lambda a: (a.priority, a.name))
    found.adapters = {a.name: a for a in order}
    return found


REGISTRY: EntryPointRegistry[_Found] = EntryPointRegistry(ENTRY_POINT_GROUP, _build)


def list_adapters() -> dict[str, ModelAdapter]:
    """Every adapter, name -> adapter, in the order they are asked (cached)."""
    return dict(REGISTRY.discover().adapters)


def adapter_errors() -> dict[str, str]:
    """Adapters of installed packages that failed to load: name -> error."""
    return dict(REGISTRY.discover().errors)


def refresh_adapters() -> dict[str, ModelAdapter]:
    """Read the entry points again, of adapters and plugins alike (after installing a
    package in this process)."""
    return dict(REGISTRY.refresh().adapters)


def get_adapter(adapter: str | type[ModelAdapter] | ModelAdapter) -> ModelAdapter:
    """The adapter ``adapter`` names, or an instance of an adapter class.

    Parameters
    ----------
    adapter : str, ModelAdapter subclass or ModelAdapter
        A registered adapter's name; or an adapter class (the registered instance of that
        class if there is one, else a new one: an adapter need not be registered to be
        used); or an adapter itself.

    Raises
    ------
    ModelLoadError
        No adapter of that name (the message lists those there are, and the closest).
    InvalidOptionError
        Neither a name nor an adapter class.
    """
    if isinstance(adapter, ModelAdapter):
        return adapter
    if isinstance(adapter, type) and issubclass(adapter, ModelAdapter):
        for known in list_adapters().values():
            if type(known) is adapter:
                return known
        try:
            return adapter()
        except TypeError as exc:  # abstract, or an __init__ that wants arguments
            raise InvalidOptionError(f"cannot use adapter class {adapter.__name__}: {exc}") \
                from None
    if not isinstance(adapter, str):
        raise InvalidOptionError(
            "adapter= takes an adapter's name or a mirdeconv.adapters.ModelAdapter subclass, "
            f"not {type(adapter).__name__}")
    adapters = _registered()
    if adapter not in adapters:
        raise ModelLoadError(unknown_name("model adapter", adapter, adapters, "adapters"))
    return adapters[adapter]


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
