"""A request is a value: what one deconvolution needs, resolved once.

The edges (the public functions, the command line, the batch job) build one frozen
:class:`Request` with :func:`resolve_request`: the model checked, the layer found, the feature
selection read (:func:`selection`, once per text) and checked against the layer, the track
prepared, the options validated and the memory plan made (one probe forward pass for a track
longer than the probe).  Everything below takes the request:
:func:`mirdeconv.engine.api.deconvolve_request` runs it, and the plan a command prints is the
one the engine follows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..errors import AudioTooShortError, InvalidOptionError
from ..graph import LayerInfo
from ..model import FrozenModel
from ..options import DeconvOptions, feature_ranges, parse_features, range_indices, resolve
from ..representations import TrackInput
from .cache import compiled
from .memory import MemoryPlan, one_piece, plan_memory, short_track

__all__ = ["Request", "resolve_request", "Selection", "selection", "deconv_options", "check_model",
           "track_input"]


@dataclass(frozen=True)
class Selection:
    """A feature selection as read once, before any layer is known.

    Attributes
    ----------
    ranges : tuple of (first, last), or None
        The ranges of a text such as ``"0-7,12"`` (inclusive); None with ``items`` None:
        every feature.
    items : int, sequence of int, or None
        Indices given as numbers, checked against the layer (by
        :func:`mirdeconv.options.parse_features`).
    """

    ranges: tuple[tuple[int, int], ...] | None = None
    items: Any = None

    def indices(self, n_features: int) -> tuple[int, ...]:
        """The selected indices of a layer with ``n_features`` features (no text read again).

        Raises
        ------
        FeatureIndexError
            An index outside ``0 .. n_features - 1`` (checked before any range is built).
        InvalidOptionError
            Indices that are not integers, or none.
        """
        if self.items is not None:
            return tuple(parse_features(self.items, n_features))
        if self.ranges is None:
            return tuple(range(n_features))
        return tuple(range_indices(self.ranges, n_features))


def selection(features: Any) -> Selection:
    """A feature selection read once: ``None`` or ``"all"`` (every feature), an int, a
    sequence of ints, a text such as ``"0-7,12"`` (its syntax checked here, before any model
    is opened; the same text is read once per process) or a :class:`Selection`.

    Raises
    ------
    InvalidOptionError
        A text that cannot be read, or an empty selection.
    """
    if isinstance(features, Selection):
        return features
    if isinstance(features, str):
        return _read(str(features))
    if features is None:
        return Selection()
    if isinstance(features, Iterator):   # read once; anything else is checked as it was given
        features = list(features)
    return Selection(items=features)


@lru_cache(maxsize=64)
def _read(text: str) -> Selection:
    ranges = feature_ranges(text)
    return Selection(ranges=tuple(ranges) if ranges else None)


def deconv_options(options: DeconvOptions | None, method: str, target: str, mode: str,
                   precision: str, memory: int | str | None) -> DeconvOptions:
    """The :class:`DeconvOptions` of a public function: ``options``, or its keywords (both
    given and different: :class:`InvalidOptionError`)."""
    return resolve(DeconvOptions, options, {"method": method, "target": target, "mode": mode,
                                            "precision": precision, "memory": memory})


@dataclass(frozen=True, eq=False)
class Request:
    """One deconvolution, resolved: what :func:`mirdeconv.engine.api.deconvolve_request` runs.

    Attributes
    ----------
    model : FrozenModel
    layer : LayerInfo
    features : tuple of int
        The feature indices, in order.
    track : TrackInput
        The track through the model's representation.
    options : DeconvOptions
    whole : bool
        The track goes through the graph in one piece (else in patches).
    plan : MemoryPlan
        The memory plan (made once; measured for a short track too when asked).
    """

    model: FrozenModel
    layer: LayerInfo
    features: tuple[int, ...]
    track: TrackInput
    options: DeconvOptions
    whole: bool
    plan: MemoryPlan

    @property
    def engine_plan(self) -> MemoryPlan:
        """The plan the engine follows: :attr:`plan`, except that a track no longer than the
        probe goes in one piece, as :func:`mirdeconv.deconvolve` always took it (no probe)."""
        if self.plan.per_unit and short_track(self.model, self.track, self.whole):
            return one_piece(self.plan)
        return self.plan


def resolve_request(model: FrozenModel, audio: Any = None, sr: float | None = None, *,
            layer: str | int | LayerInfo, features: Any = None,
            options: DeconvOptions | None = None,
            track: TrackInput | Callable[[], TrackInput] | None = None,
            probe_short: bool = False) -> Request:
    """Resolve one deconvolution once, in :func:`mirdeconv.deconvolve`'s order of refusals:
    the model, the layer, the features, the track, whether it goes whole, the plan.

    Parameters
    ----------
    model : FrozenModel
    audio, sr : np.ndarray (n_samples,), float
        The track (or ``track``).
    layer : str, int or LayerInfo
        A layer of ``model``.
    features : as for :func:`mirdeconv.deconvolve`, or a :class:`Selection`
    options : DeconvOptions, optional
    track : TrackInput, or a function that makes one, optional
        A prepared track; a function is called once the layer and features are checked
        (nothing is prepared for a request that is refused).
    probe_short : bool
        Measure a track no longer than the probe too (the plan a command prints); the
        engine takes such a track in one piece all the same (:attr:`Request.engine_plan`).

    Raises
    ------
    UnknownLayerError, FeatureIndexError, InvalidOptionError, AudioError, MemoryBudgetError
    """
    opts = options or DeconvOptions()
    model = check_model(model)
    info = model.layer(layer.name if isinstance(layer, LayerInfo) else layer)
    feats = selection(features).indices(info.n_features)
    track = track_input(model, audio, sr, track() if callable(track) else track)
    whole = _goes_whole(model, info, track, opts.mode)
    plan = plan_memory(compiled(model, info, opts.method, opts.precision), model, info, track,
                       opts, whole, len(feats), probe_short=probe_short)
    return Request(model, info, feats, track, opts, whole, plan)


def check_model(model: Any) -> FrozenModel:
    """``model`` itself, when it is an open model; else a clear error."""
    if not isinstance(model, FrozenModel):
        raise InvalidOptionError(
            f"expected a model opened with mirdeconv.load_model(...), got a {type(model).__name__}")
    return model


def track_input(model: FrozenModel, audio: Any, sr: float | None,
                track: TrackInput | None) -> TrackInput:
    """The track through the model's representation: ``track`` checked, or ``audio`` prepared."""
    if track is not None:
        if track.representation != model.representation:
            raise InvalidOptionError(
                f"the track was prepared with {track.representation.describe()}, but "
                f"{model.name} takes {model.representation.describe()}")
        return track
    if audio is None or sr is None:
        raise InvalidOptionError("give audio and sr, or a precomputed track")
    return model.representation.prepare(audio, sr)


def _goes_whole(model: FrozenModel, info: LayerInfo, track: TrackInput, mode: str) -> bool:
    """Whether the track goes through the graph in one piece (else in patches)."""
    rf = info.receptive_field[0]
    if track.n_frames < rf:
        spf = model.representation.seconds_per_frame
        raise AudioTooShortError(
            f"the audio is {track.duration:.2f} s ({track.n_frames} frames) long, shorter than "
            f"the receptive field of layer {info.name} ({rf} frames = {rf * spf:.2f} s)")
    if mode == "whole" and not info.time_agnostic:
        raise InvalidOptionError(
            f"layer {info.name} cannot take a whole track at once (the graph before it is not "
            "fully convolutional along time); use mode='patches' or 'auto'")
    if mode == "whole" and (model.standardizes or model.patches_add_up):
        raise InvalidOptionError(f"{model.name} takes its input in patches; use mode='patches'")
    return ((info.time_agnostic and mode != "patches" and not model.standardizes
             and not model.patches_add_up) or model.input_length is None)
