"""How strongly each feature of a layer responds to a track: its map's positive part, averaged
and maximised over the whole track (the plain forward pass, patch by patch)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import check_model, model_input, run_graph, track_input
from ..graph import LayerInfo
from ..model import FrozenModel
from ..representations import TrackInput

__all__ = ["layer_activity", "chosen_features", "features_or_top", "Subject", "layer_subject",
           "PATCHES_PER_PASS"]

#: Patches that go through the model together (memory is bounded by them, not by the track).
PATCHES_PER_PASS = 8


def layer_activity(model: FrozenModel, track: TrackInput, layer: LayerInfo
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's mean and maximum of ``max(a, 0)`` over the layer's units for a track.

    Parameters
    ----------
    model : FrozenModel
    track : TrackInput
        From ``model.representation.prepare(audio, sr)``.
    layer : LayerInfo

    Returns
    -------
    mean, peak : np.ndarray, float64, shape (n_features,)
        Over every unit of every patch (a whole-track model: the whole track).
    """
    whole = model.input_length is None
    x, _ = model_input(model, track.frames, whole=whole)
    fa = layer.feature_axis
    total = np.zeros(layer.n_features)
    peak = np.zeros(layer.n_features)
    count = 0
    size = min(PATCHES_PER_PASS, len(x))
    for a in range(0, len(x), size):
        items = np.minimum(np.arange(a, a + size), len(x) - 1)   # one batch size: padded
        act = np.maximum(run_graph(model, x[items], layer.tensor)[:len(x) - a], 0.0)
        act = np.moveaxis(act, fa, -1).reshape(-1, layer.n_features)
        total += act.sum(axis=0, dtype=np.float64)
        peak = np.maximum(peak, act.max(axis=0))
        count += act.shape[0]
    return total / max(count, 1), peak


def features_or_top(features: Sequence[int] | int | None, top: int, function: str,
                    old: str = "features", new: str = "top") -> int | list[int]:
    """What a check works on: the feature indices ``features``, else the ``top`` most active.

    ``features`` as an int (how many of the most active: its meaning before ``top``) is still
    taken, with a DeprecationWarning naming ``function``'s new keyword, for one release.
    """
    if features is None:
        return int(top)
    if isinstance(features, (int, np.integer)) and not isinstance(features, bool):
        warnings.warn(f"{function}({old}=N), the N most active features, is now {new}=N "
                      f"({old}= gives feature indices)", DeprecationWarning, stacklevel=3)
        return int(features)
    return [int(f) for f in features]


def chosen_features(features: int | Sequence[int], peak: np.ndarray) -> list[int]:
    """Feature indices as given, or (an int) that many of the most active by their maps'
    peaks ``peak`` (n_features,), strongest first."""
    if isinstance(features, (int, np.integer)):
        return np.argsort(-peak, kind="stable")[:int(features)].tolist()
    return [int(f) for f in features]


@dataclass(frozen=True, eq=False)
class Subject:
    """What a sanity check of a layer's features works on, resolved once (:func:`layer_subject`).

    Attributes
    ----------
    model : FrozenModel
    track : TrackInput
    layer : LayerInfo
    features : list of int
    activity : (mean, peak) of :func:`layer_activity`, or None when it was not needed
    """

    model: FrozenModel
    track: TrackInput
    layer: LayerInfo
    features: list[int]
    activity: tuple[np.ndarray, np.ndarray] | None


def layer_subject(model: Any, audio: np.ndarray | None, sr: float | None, track: TrackInput | None,
            layer: str | int, features: int | Sequence[int], activity: bool = False) -> Subject:
    """The model checked, the track prepared (or ``track`` checked), the layer found and the
    features chosen (:func:`chosen_features`: an int, that many of the most active); the
    layer's activity measured when the choice needs it or ``activity``."""
    model = check_model(model)
    track = track_input(model, audio, sr, track)
    info = model.layer(layer)
    act = layer_activity(model, track, info) \
        if activity or isinstance(features, (int, np.integer)) else None
    return Subject(model, track, info, chosen_features(features, None if act is None else act[1]),
                   act)
