"""Compiled programs, kept per model for as long as the model lives.

The model description (:class:`mirdeconv.model.FrozenModel`) holds no engine state; the
engine keeps its programs here, keyed by the model object (weakly: a model that is no
longer used takes its programs with it) and by layer, method and precision.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from ..graph import LayerInfo
from ..model import FrozenModel
from .program import Program

__all__ = ["program", "graph_function", "forget"]

_PROGRAMS: weakref.WeakKeyDictionary[FrozenModel, dict[tuple, Any]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _cached(model: FrozenModel, key: tuple, build: Any) -> Any:
    with _LOCK:
        per_model = _PROGRAMS.setdefault(model, {})
        if key in per_model:
            return per_model[key]
    made = build()
    with _LOCK:
        return _PROGRAMS[model].setdefault(key, made)


def program(model: FrozenModel, layer: LayerInfo, method: str, precision: str) -> Program:
    """The compiled program for a layer, method and precision of a model (made once)."""
    return _cached(model, ("program", layer.tensor, method, precision), lambda: Program(
        model.graph, model.input_tensor, layer.tensor, layer.feature_axis, method, precision))


def graph_function(model: FrozenModel, output: str, build: Any) -> Any:
    """A compiled forward function of a model's graph up to ``output`` (made once by
    ``build()``), e.g. for predictions."""
    return _cached(model, ("function", output), build)


def forget(model: FrozenModel) -> None:
    """Drop every compiled program of ``model``."""
    with _LOCK:
        _PROGRAMS.pop(model, None)
