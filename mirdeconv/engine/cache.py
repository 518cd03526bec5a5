"""Compiled programs, kept per model for as long as the model lives.

The model description (:class:`mirdeconv.model.FrozenModel`) holds no engine state; the
engine keeps its programs here, keyed by the model object's identity and by layer, method
and precision.  A model that is no longer used takes its programs with it (a finaliser
drops them), and nothing cached refers back to the model.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from ..graph import LayerInfo
from ..model import FrozenModel
from .program import Program

__all__ = ["compiled", "compiled_tensor", "graph_function", "forget", "cached_count"]

_PROGRAMS: dict[int, dict[tuple, Any]] = {}   # id(model) -> key -> program
_LOCK = threading.Lock()


def _drop(ident: int) -> None:
    with _LOCK:
        _PROGRAMS.pop(ident, None)


def _cached(model: FrozenModel, key: tuple, build: Any) -> Any:
    ident = id(model)
    with _LOCK:
        if ident not in _PROGRAMS:
            _PROGRAMS[ident] = {}
            weakref.finalize(model, _drop, ident)
        if key in _PROGRAMS[ident]:
            return _PROGRAMS[ident][key]
    made = build()
    with _LOCK:
        return _PROGRAMS.setdefault(ident, {}).setdefault(key, made)


def compiled(model: FrozenModel, layer: LayerInfo, method: str, precision: str) -> Program:
    """The compiled program for a layer, method and precision of a model (made once)."""
    return compiled_tensor(model, layer.tensor, layer.feature_axis, method, precision, layer.name)


def compiled_tensor(model: FrozenModel, tensor: str, feature_axis: int, method: str,
                    precision: str, label: str | None = None) -> Program:
    """The compiled program from any tensor of a model's graph (a feature layer, or an
    output whose classes lie on ``feature_axis``) down to its input (made once); ``label``
    names it in errors."""
    return _cached(model, ("program", tensor, method, precision), lambda: Program(
        model.graph, model.input_tensor, tensor, feature_axis, method, precision, label))


def graph_function(model: FrozenModel, output: str, build: Any) -> Any:
    """A compiled forward function of a model's graph up to ``output`` (made once by
    ``build()``), e.g. for predictions."""
    return _cached(model, ("function", output), build)


def forget(model: FrozenModel) -> None:
    """Drop every compiled program of ``model``."""
    _drop(id(model))


def cached_count(model: FrozenModel) -> int:
    """How many compiled programs and functions the engine keeps for ``model``."""
    with _LOCK:
        return len(_PROGRAMS.get(id(model), {}))
