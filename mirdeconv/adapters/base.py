"""The adapter protocol: every model family ends as a :class:`~mirdeconv.model.FrozenModel`.

An adapter knows one model family (Keras, Essentia, a bare frozen graph, a plugin's own) and
turns a source (a file, an object in memory) into a FrozenModel.  The engine only ever sees
FrozenModels, so a new model family costs an adapter and never a change in the engine.

An adapter is a small class (in the style of xarray's backends), registered through the
entry-point group ``mirdeconv.adapters`` (see :mod:`mirdeconv.adapters`)::

    class MyAdapter(ModelAdapter):
        name = "mine"
        def guess_can_open(self, source) -> bool: ...
        def open(self, source, *, representation=None, labels=None) -> FrozenModel: ...

The keywords an adapter takes are read from its ``open`` signature (as xarray reads a
backend's from ``open_dataset``): every parameter after the source but ``representation``
(:func:`open_options`).  :func:`mirdeconv.load_model` refuses any other, naming these.
"""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from typing import Any

from .. import backend
from ..errors import ModelLoadError, message_of
from ..model import FrozenModel
from ..representations import Representation

__all__ = ["ModelAdapter", "needs_representation", "freeze", "open_options"]


def needs_representation(rep: Representation | None, what: str) -> Representation:
    """``rep``, or an error saying how to give the representation ``what`` needs.

    Raises
    ------
    ModelLoadError
    """
    if rep is None:
        raise ModelLoadError(
            f"{what} needs its input representation: pass representation=... (a preset such "
            "as 'musicnn' or 'won2020', a mirdeconv.representations object, a dict or a JSON "
            "file), or -r on the command line, or write NAME.mirdeconv.json beside the model file")
    return rep


def freeze(call: Any, in_shape: tuple, what: str) -> Any:
    """``call`` (a model called on a batch) as a concrete function of a batch of any size,
    its variables as constants: the frozen graph every adapter ends in.

    Raises
    ------
    ModelLoadError
        TensorFlow cannot trace or freeze it (its message, one line).
    """
    tf = backend.tensorflow()
    spec = tf.TensorSpec([None, *in_shape[1:]], tf.float32)
    fn = tf.function(lambda x: call(x, training=False))
    try:
        return backend.convert_variables_to_constants(fn.get_concrete_function(spec))
    except Exception as exc:  # noqa: BLE001 - TensorFlow's errors for graphs it cannot trace
        raise ModelLoadError(f"cannot freeze {what} into a graph for a batch of any size: "
                             f"{message_of(exc)}") from exc


@functools.cache
def open_options(adapter: type) -> tuple[str, ...]:
    """The keywords ``adapter.open`` takes: its parameters after ``self`` and the source that
    can be passed by name, but ``representation`` (which :func:`mirdeconv.load_model` always
    passes); ``*args`` and ``**kwargs`` add none."""
    params = list(inspect.signature(adapter.open).parameters.values())[2:]
    return tuple(p.name for p in params if p.name != "representation" and p.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY))


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
        The keyword options :meth:`open` takes besides ``representation``, read from its
        signature (:func:`open_options`); anything else given to
        :func:`mirdeconv.load_model` is refused, naming these.  A ``**options`` catch-all in
        ``open`` adds none: each option is a parameter of its own.
    """

    name: str = ""
    priority: int = 100
    description: str = ""

    @property
    def options(self) -> tuple[str, ...]:
        return open_options(type(self))

    @abstractmethod
    def guess_can_open(self, source: Any) -> bool:
        """Whether ``source`` (a path or an object) looks like a model of this family."""

    @abstractmethod
    def open(self, source: Any, **options: Any) -> FrozenModel:
        """Open ``source`` as a frozen model."""
