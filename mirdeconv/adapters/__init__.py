"""Model adapters: each turns one family of models into a :class:`~mirdeconv.adapters.base.FrozenModel`."""

from .base import FrozenModel, ModelAdapter

__all__ = ["FrozenModel", "ModelAdapter", "builtin_adapters"]


def builtin_adapters() -> list[ModelAdapter]:
    """The adapters that ship with mirdeconv, in the order they are tried."""
    from .essentia import EssentiaAdapter
    from .keras import KerasAdapter

    return [KerasAdapter(), EssentiaAdapter()]
