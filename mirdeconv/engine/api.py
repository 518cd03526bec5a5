"""The engine's public call: :func:`deconvolve` and its :class:`DeconvResult`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import FeatureIndexError
from ..graph import LayerInfo
from ..model import FrozenModel
from ..options import DeconvOptions
from ..progress import Progress, ProgressArg
from ..representations import TrackInput
from .cache import compiled
from .chunks import Chunk, combine_stats, crop_units
from .memory import MemoryPlan, features_per_pass, mask_array, release_pages
from .patches import Patching, model_input, normalize_track, patch_input, plan_patches
from .program import Program
from .request import Request, check_model, deconv_options, resolve_request, track_input
from .stats import ActivationStats, activation_stats
from .windows import windowed_max

__all__ = ["DeconvResult", "deconvolve", "deconvolve_request", "check_model", "memory_plan",
           "track_input"]


@dataclass
class DeconvResult:
    """Deconvolved features of one layer for one track.

    Attributes
    ----------
    masks : np.ndarray, float32, shape (n_features, n_frames, n_bands)
        One mask per requested feature, in the model input's domain (time first).
        Deconvnet masks are real-valued and can be negative.
    features : list of int
        The feature indices, in the order of ``masks``.
    dead : np.ndarray, bool, shape (n_features,)
        True where the feature never responds on this track: its map is never above zero.
    dead_reason : np.ndarray of str, shape (n_features,)
        ``"all zero"`` (the map is zero everywhere, and so is the mask), ``"never positive"``
        (negative everywhere, e.g. after batch norm or an ELU), or ``""`` (alive).
    activation_max, activation_mean, fraction_active : np.ndarray, shape (n_features,)
        Statistics of each feature's activation map: its maximum, its mean, and the
        fraction of its units that are > 0.
    activations : np.ndarray, float32, shape (n_features, n_units)
        Each feature's activation over time (max over frequency), at the layer's time
        resolution (``layer.stride[0]`` input frames per unit).
    layer : LayerInfo
    options : DeconvOptions
        The settings used.
    mode : {"whole", "patches"}
        How the track went through the graph.
    track : TrackInput
        The track's model input and STFT.
    model : str
        The model's name.
    """

    masks: np.ndarray
    features: list[int]
    dead: np.ndarray
    activation_max: np.ndarray
    activation_mean: np.ndarray
    fraction_active: np.ndarray
    activations: np.ndarray
    layer: LayerInfo
    options: DeconvOptions
    mode: str
    track: TrackInput
    model: str
    dead_reason: np.ndarray | None = None

    @property
    def method(self) -> str:
        return self.options.method

    @property
    def target(self) -> str:
        return self.options.target

    def select(self, positions: slice | list[int]) -> DeconvResult:
        """The same result for some of its features (by position; masks are views for a
        slice)."""
        idx = positions if isinstance(positions, slice) else np.asarray(positions, int)
        feats = np.asarray(self.features)[idx].tolist()
        return dataclasses.replace(
            self, masks=self.masks[idx], features=feats, dead=self.dead[idx],
            activation_max=self.activation_max[idx], activation_mean=self.activation_mean[idx],
            fraction_active=self.fraction_active[idx], activations=self.activations[idx],
            dead_reason=None if self.dead_reason is None else self.dead_reason[idx])

    def mask(self, feature: int) -> np.ndarray:
        """The mask of one feature index, shape (n_frames, n_bands)."""
        try:
            return self.masks[self.features.index(int(feature))]
        except ValueError:
            raise FeatureIndexError(
                f"feature {feature} was not deconvolved; this result holds {self.features}"
            ) from None


def deconvolve(
    model: FrozenModel,
    audio: np.ndarray | None = None,
    sr: float | None = None,
    *,
    layer: str | int,
    features: Any = None,
    method: str = DeconvOptions.method,
    target: str = DeconvOptions.target,
    mode: str = DeconvOptions.mode,
    precision: str = DeconvOptions.precision,
    memory: int | str | None = None,
    options: DeconvOptions | None = None,
    track: TrackInput | None = None,
    progress: ProgressArg = False,
) -> DeconvResult:
    """Deconvolve features of one layer back into the model's input spectrogram.

    Parameters
    ----------
    model : FrozenModel
        From :func:`mirdeconv.load_model`.
    audio : np.ndarray, shape (n_samples,)
        Mono track (any sample rate; resampled to the model's).
    sr : float
        Sample rate of ``audio`` in Hz.
    layer : str or int
        A feature layer's name (see ``model.layers``) or position.
    features : None, int, list of int, or str
        Which feature maps (``None``/``"all"``: every one; ``"0-7,12"``).
    method : {"deconvnet", "guided", "saliency"}
        How the backward pass treats the non-linearities (:data:`mirdeconv.options.METHODS`).
    target : {"map", "max"}
        Seed the backward pass with the whole feature map (Zeiler & Fergus, Choi) or only
        with its strongest unit over the track.
    mode : {"auto", "whole", "patches"}
        ``"whole"``: the whole track through the graph at once (only when the graph up to
        the layer is fully convolutional along time); ``"patches"``: patches of the
        model's input length, 50 % overlap, overlap-added; ``"auto"``: whole when possible.
    precision : {"float32", "bfloat16"}
        Arithmetic of the backward pass.
    memory : int or str, optional
        Bytes one chunk of features may use, or a size such as ``"2G"`` (default:
        ``MIRDECONV_MEMORY`` or :data:`mirdeconv.options.DEFAULT_MEMORY`).
    options : DeconvOptions, optional
        All of ``method`` ... ``memory`` in one object (then leave those at their defaults).
    track : TrackInput, optional
        A precomputed ``model.representation.prepare(audio, sr)`` (then ``audio`` is unused).
    progress : bool or callable
        True for a tqdm bar, or ``callable(done, total)`` called after every chunk.

    Returns
    -------
    DeconvResult
        ``masks`` has shape ``(n_features, n_frames, n_bands)``.

    Raises
    ------
    UnknownLayerError, FeatureIndexError, InvalidOptionError
        Bad layer, feature index, method, target or mode.
    AudioError
        Unusable audio (silent, NaN, too short for the layer's receptive field, ...).
    """
    opts = deconv_options(options, method, target, mode, precision, memory)
    return deconvolve_request(resolve_request(model, audio, sr, layer=layer, features=features,
                                      options=opts, track=track), progress=progress)


def deconvolve_request(req: Request, progress: ProgressArg = False) -> DeconvResult:
    """Run a resolved :class:`~mirdeconv.engine.request.Request` (:func:`deconvolve`'s work,
    with the request's memory plan: no second probe).

    Parameters
    ----------
    req : Request
        From :func:`mirdeconv.engine.request.resolve_request`.
    progress : bool or callable
        As for :func:`deconvolve`.

    Returns
    -------
    DeconvResult
    """
    model, info, track, opts, whole = req.model, req.layer, req.track, req.options, req.whole
    feats, plan = list(req.features), req.engine_plan
    prog = compiled(model, info, opts.method, opts.precision)
    label = f"{info.name} ({opts.method})"
    in_windows = opts.target == "max" and whole and info.time_agnostic   # each feature once
    bar = Progress(progress, len(feats) * (1 if in_windows else plan.n_pieces), label, "feature")
    windowed = windowed_max(prog, plan, model, info, track, feats, bar) if in_windows else None
    if windowed is not None:
        masks, stats = windowed
    elif plan.chunks:
        masks, stats = _chunked(prog, plan.chunks, model, info, track, feats, opts, bar)
    elif plan.unit == "patch" and plan.n_pieces > 1:
        masks, stats = _batched(prog, plan, model, info, track, feats, opts, bar)
    else:
        x, patching = model_input(model, track.frames, whole, info.stride[0] or 1)
        with bar:
            masks, act = _piece(prog, x, patching, model, info, feats, opts, whole, bar)
        stats = activation_stats(act, info, patching)
    masks[stats.all_zero] = 0.0
    release_pages(masks)
    return DeconvResult(
        masks=masks, features=feats, dead=stats.dead, activation_max=stats.max,
        activation_mean=stats.mean, fraction_active=stats.fraction, activations=stats.over_time,
        layer=info, options=opts, mode="whole" if whole else "patches", track=track,
        model=model.name, dead_reason=stats.dead_reason)


def memory_plan(model: FrozenModel, track: TrackInput, *, layer: str | int, features: Any = None,
                options: DeconvOptions | None = None, probe_short: bool = True) -> MemoryPlan:
    """How :func:`deconvolve` would take ``track`` through ``layer``, and what it would hold
    (one probe forward pass), before the work starts.

    ``probe_short=False``: exactly :func:`deconvolve`'s plan, which takes a track no longer
    than the probe in one piece, unmeasured and never refused.  (To print the plan and then
    follow it, build one :func:`~mirdeconv.engine.request.resolve_request` and run it with
    :func:`deconvolve_request`: one probe.)

    Returns
    -------
    MemoryPlan
        Chunks or patch batches, bytes per piece, bytes of masks; ``plan.describe()``.

    Raises
    ------
    MemoryBudgetError
        Even the smallest piece does not fit in the budget.
    """
    return resolve_request(model, layer=layer, features=features, options=options, track=track,
                   probe_short=probe_short).plan


def _piece(prog: Program, x: np.ndarray, patching: Patching, model: FrozenModel, info: LayerInfo,
           feats: list[int], opts: DeconvOptions, whole: bool, bar: Progress,
           out: tuple[np.ndarray, int] | None = None, piece: bool = False
           ) -> tuple[np.ndarray, np.ndarray]:
    """One forward pass over ``x`` (the track, a chunk of it, or some of its patches), then
    every feature's mask: (masks (F, n_frames, n_bands), the selected features of the layer's
    output, in order, as numpy).

    ``out``: (the track's masks, the first patch of ``x``) for a batch of patches, whose
    weighted masks are added there (the caller normalises once all batches are in).
    ``piece``: ``x`` is one of the track's chunks or batches (:func:`features_per_pass`)."""
    act, saved, elems, _ = prog.forward(x)
    native_ft = whole and model.input_axes.startswith("NFT")
    masks = _backward(prog, (act, saved), feats, opts, model, patching, (whole, native_ft),
                      features_per_pass(opts, elems * len(x), len(feats), piece=piece),
                      margin=_margin(info, patching), progress=bar, out=out)
    return masks, np.take(np.asarray(act), feats, axis=info.feature_axis)


def _margin(info: LayerInfo, patching: Patching) -> int:
    """Frames next to a patch's edges that the overlap-add ignores."""
    return min(info.receptive_field[0], patching.length // 4)


def _batched(prog: Program, plan: MemoryPlan, model: FrozenModel, info: LayerInfo,
             track: TrackInput, feats: list[int], opts: DeconvOptions, bar: Progress
             ) -> tuple[np.ndarray, ActivationStats]:
    """A track's patches in batches of ``plan.patches_per_pass``: each batch's weighted masks
    added into the track's, normalised once at the end; the statistics combined."""
    stride = info.stride[0] or 1
    frames = normalize_track(model, track.frames)
    patching = plan_patches(model, track.n_frames, stride)
    masks = mask_array((len(feats), track.n_frames, model.representation.n_bands), opts.budget)
    over_time, parts = None, []
    with bar:
        for first in range(0, plan.n_patches, plan.patches_per_pass):
            items = range(first, min(plan.n_patches, first + plan.patches_per_pass))
            x = patch_input(model, frames, patching, items)
            _, act = _piece(prog, x, patching, model, info, feats, opts, False, bar,
                            out=(masks, first), piece=True)
            release_pages(masks)
            part = activation_stats(act, info, patching, first, over_time)
            over_time = part.over_time
            parts.append((part, len(items)))
    if not model.patches_add_up:
        for f in range(len(masks)):        # feature by feature: a memory map's pages go back
            patching.normalize(masks[f:f + 1], _margin(info, patching))
            release_pages(masks)
    return masks, combine_stats(parts, over_time)


def _chunked(prog: Program, plan: list[Chunk], model: FrozenModel, info: LayerInfo,
             track: TrackInput, feats: list[int], opts: DeconvOptions, bar: Progress
             ) -> tuple[np.ndarray, ActivationStats]:
    """The whole-track result, chunk by chunk (:mod:`mirdeconv.engine.chunks`): each chunk's
    core of the masks into one (F, n_frames, n_bands) array, the statistics combined."""
    frames = normalize_track(model, track.frames)
    masks = mask_array((len(feats), track.n_frames, model.representation.n_bands), opts.budget)
    parts = []
    with bar:
        for c in plan:
            x, patching = model_input(model, frames[c.start:c.stop], True, info.stride[0] or 1,
                                      normalized=True)
            m, act = _piece(prog, x, patching, model, info, feats, opts, True, bar, piece=True)
            masks[:, c.start + c.core.start:c.start + c.core.stop] = m[:, c.core]
            release_pages(masks)
            act = crop_units(act, info, c)
            n_units = act.shape[info.time_axis]
            if n_units:                 # (a last core shorter than the layer's stride has none)
                parts.append((activation_stats(act, info, Patching([0], n_units, n_units)),
                              n_units))
    return masks, combine_stats(parts)


def _backward(prog: Program, forward: tuple, feats: list[int], opts: DeconvOptions,
              model: FrozenModel, patching: Patching, layout: tuple[bool, bool], chunk: int, *,
              margin: int, progress: Progress, out: tuple[np.ndarray, int] | None = None
              ) -> np.ndarray:
    """Every feature's mask, chunk by chunk: ``(F, n_frames, n_bands)``.

    ``layout`` is (the track went through whole, the model input is frequency-first).

    Frequency-first models fill an (F, bands, frames) buffer without transposing it; the
    result is its (F, frames, bands) view (auralisation reads it back frequency-first).
    ``out`` (the track's masks, the first patch): a batch of patches, added there.
    """
    act, saved = forward
    whole, native_ft = layout
    n_frames, n_bands = patching.n_frames, model.representation.n_bands   # = the track's
    if out is not None:
        buf = masks = out[0]
    else:
        buf = mask_array((len(feats), n_bands, n_frames) if native_ft else
                         (len(feats), n_frames, n_bands), opts.budget)
        masks = np.swapaxes(buf, 1, 2) if native_ft else buf
    # (the caller owns the bar: it counts every piece, and closes it when all are done)
    for c0 in range(0, len(feats), chunk):
        sel = feats[c0:c0 + chunk]
        padded = sel + [sel[-1]] * (chunk - len(sel)) if chunk < len(feats) else sel
        raw = prog.backward(act, saved, padded, opts.target)[:len(sel)]   # (F, N, *input)
        if native_ft:
            buf[c0:c0 + len(sel)] = raw[:, 0, ..., 0] if raw.ndim == 5 else raw[:, 0]
        elif whole:
            masks[c0:c0 + len(sel)] = model.from_input(raw)[:, 0, :n_frames]
        elif out is not None:
            patching.add(masks[c0:c0 + len(sel)], model.from_input(raw), margin,
                         not model.patches_add_up, first=out[1])
        else:
            masks[c0:c0 + len(sel)] = patching.overlap_add(model.from_input(raw), margin,
                                                           opts.target, model.patches_add_up)
        progress.update(len(sel))
    return masks
