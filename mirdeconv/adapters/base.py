"""The adapter protocol: every model family ends as a :class:`~mirdeconv.model.FrozenModel`.

An adapter knows one model family (Keras, Essentia, a bare frozen graph, a plugin's own) and
turns a source (a file, an object in memory) into a FrozenModel.  The engine only ever sees
FrozenModels, so a new model family costs an adapter and never a change in the engine.

An adapter is a small class (in the style of xarray's backends), registered through the
entry-point group ``mirdeconv.adapters`` (see :mod:`mirdeconv.adapters`)::

    class MyAdapter(ModelAdapter):
        name = "mine"
        def guess_can_open(self, source) -> bool: ...
        def open(self, source, **options) -> FrozenModel: ...
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from ..model import FrozenModel

__all__ = ["ModelAdapter"]


class ModelAdapter(ABC):
    """Opens one family of models as :class:`~mirdeconv.model.FrozenModel`.

    Attributes
    ----------
    name : str
        Short name of the family (``"keras"``, ``"essentia"``, ...): ``load_model(...,
        adapter=name)`` picks it.
    priority : int
        Adapters are asked in increasing priority (then by name) whether they can open a
        source; the first that says yes opens it.
    description : str
        One line for people.
    options : tuple of str
        The keyword options :meth:`open` takes besides ``representation`` (anything else
        given to :func:`mirdeconv.load_model` is refused, naming these).
    """

    name: str = ""
    priority: int = 100
    description: str = ""
    options: tuple[str, ...] = ()

    @abstractmethod
    def guess_can_open(self, source: Any) -> bool:
        """Whether ``source`` (a path or an object) looks like a model of this family."""

    @abstractmethod
    def open(self, source: Any, **options: Any) -> FrozenModel:
        """Open ``source`` as a frozen model."""
