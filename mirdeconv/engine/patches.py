"""How a track goes through a model: in one piece, or in patches overlap-added back.

A track goes through the graph whole when everything up to the layer is fully
convolutional along time; otherwise it is cut into patches of the model's input length
with 50 % overlap, and the patches' masks are overlap-added with weights that ignore the
frames next to each patch's edges (where the patch saw padding the whole track lacks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..model import FrozenModel
from ..normalization import get_normalization, standardize

__all__ = ["Patching", "model_input", "normalize_track", "patch_input", "patch_starts",
           "patch_weights", "plan_patches"]


def patch_starts(n_frames: int, length: int, hop: int | None = None, stride: int = 1
                 ) -> list[int]:
    """First frame of every patch: ``hop`` apart (default: half a patch, rounded down to a
    multiple of ``stride``, so that every patch decimates the track on the same grid as the
    whole track would be), the last patch reaching the end."""
    if n_frames <= length:
        return [0]
    if hop is None:
        half = length // 2
        hop = half // max(1, stride) * max(1, stride) or half
    hop = max(1, hop)
    n = int(math.ceil((n_frames - length) / hop)) + 1
    return [i * hop for i in range(n)]


def patch_weights(length: int, margin: int, first: bool, last: bool) -> np.ndarray:
    """Overlap-add weights of a patch: a Hann taper over the centre, zero ``margin`` frames
    from either edge, full weight towards the track's own start and end.

    Returns
    -------
    np.ndarray, float64, shape (length,)
    """
    w = np.zeros(length, np.float64)
    core = length - 2 * margin
    n = np.arange(core)
    w[margin:length - margin] = 0.5 - 0.5 * np.cos(2 * np.pi * (n + 0.5) / core)
    half = length // 2
    if first:
        w[:half] = np.maximum(w[:half], 1.0)
    if last:
        w[half:] = np.maximum(w[half:], 1.0)
    return w


@dataclass(frozen=True)
class Patching:
    """Where a track's items lie in it.

    Attributes
    ----------
    starts : list of int
        First frame of every item (``[0]`` for a whole track).
    length : int
        Frames per item.
    n_frames : int
        Frames of the track.
    """

    starts: list[int]
    length: int
    n_frames: int

    def weights(self, item: int, margin: int) -> np.ndarray:
        """Overlap-add weights of one item (:func:`patch_weights`), shape (length,)."""
        return patch_weights(self.length, margin, item == 0, item == len(self.starts) - 1)

    def add(self, out: np.ndarray, g: np.ndarray, margin: int, weighted: bool,
            first: int = 0) -> None:
        """Add items ``first, first + 1, ...`` of ``g`` (F, n, length, bands) into the track's
        masks ``out`` (F, n_frames, bands), weighted (or not: one seeded unit, or patches
        that add up); :meth:`normalize` divides by the weights' sum once all are in."""
        for j in range(g.shape[1]):
            s = self.starts[first + j]
            e = min(s + self.length, self.n_frames)
            part = g[:, j, :e - s]
            out[:, s:e] += part * self.weights(first + j, margin)[None, :e - s, None] \
                if weighted else part

    def normalize(self, out: np.ndarray, margin: int) -> None:
        """Divide weighted sums ``out`` (F, n_frames, bands) by the sum of the weights."""
        norm = np.zeros(self.starts[-1] + self.length)
        for i, s in enumerate(self.starts):
            norm[s:s + self.length] += self.weights(i, margin)
        out /= norm[None, :self.n_frames, None]

    def overlap_add(self, g: np.ndarray, margin: int, target: str, add_up: bool = False
                    ) -> np.ndarray:
        """Masks of the items ``(F, N, length, bands)`` -> masks of the track
        ``(F, n_frames, bands)``.  With ``target="max"`` the one seeded unit lies in one
        patch and its mask is placed unweighted; with ``add_up`` the patches are separate
        applications of the model (framed waveforms) and their masks add up."""
        weighted = target != "max" and not add_up
        acc = np.zeros((len(g), self.n_frames, g.shape[-1]), np.float64)
        self.add(acc, g, margin, weighted)
        if weighted:
            self.normalize(acc, margin)
        return acc


def normalize_track(model: FrozenModel, frames: np.ndarray) -> np.ndarray:
    """The track's frames (n_frames, n_bands) normalised as the model normalises a whole
    track (unchanged for models that normalise each patch, or nothing)."""
    norm = get_normalization(model.input_normalization)
    return frames if norm.per_patch else norm.apply(frames[None])[0]


def model_input(model: FrozenModel, frames: np.ndarray, whole: bool, stride: int = 1,
                normalized: bool = False) -> tuple[np.ndarray, Patching]:
    """The model input for a track: one item (whole) or patches of the model's length, the
    last padded with the track's minimum (silence in any compression); normalised as the
    model asks (:mod:`mirdeconv.normalization`: the track before it is cut, or each patch as
    Essentia's ``TensorNormalize``).

    Parameters
    ----------
    model : FrozenModel
    frames : np.ndarray, shape (n_frames, n_bands)
        The track through the model's representation.
    whole : bool
        One item of the whole track.
    stride : int
        The layer's stride along time (frames): patches start on its grid (unless the model
        fixes its own hop).
    normalized : bool
        ``frames`` are already normalised as the whole track (:func:`normalize_track`): a
        chunk of a long track.

    Returns
    -------
    x : np.ndarray, float32, shape (n_items, *input_shape[1:])
    patching : Patching
    """
    if not normalized:
        frames = normalize_track(model, frames)
    n_frames = frames.shape[0]
    if whole:
        return model.to_input(frames[None]), Patching([0], n_frames, n_frames)
    patching = plan_patches(model, n_frames, stride)
    return patch_input(model, frames, patching, range(len(patching.starts))), patching


def plan_patches(model: FrozenModel, n_frames: int, stride: int = 1) -> Patching:
    """Where the patches of a track of ``n_frames`` lie (:func:`patch_starts`)."""
    length = model.input_length or n_frames
    return Patching(patch_starts(n_frames, length, model.patch_hop, stride), length, n_frames)


def patch_input(model: FrozenModel, frames: np.ndarray, patching: Patching, items: Any,
                fill: float | None = None) -> np.ndarray:
    """The model input of some patches, shape (len(items), *input_shape[1:]): each cut from
    the (normalised) track (``frames`` (n_frames, n_bands), or one frame (n_bands,) for
    every frame), the last padded with ``fill`` (default: the track's minimum),
    standardised when the model standardises each patch."""
    if frames.ndim == 1:
        frames = np.broadcast_to(frames, (patching.n_frames, len(frames)))
    fill = model.representation.silence(frames) if fill is None else fill
    L = patching.length
    patches = np.full((len(items), L, frames.shape[1]), fill, np.float32)
    for j, i in enumerate(items):
        part = frames[patching.starts[i]:patching.starts[i] + L]
        patches[j, :len(part)] = part
    if model.standardizes:
        patches = standardize(patches)
    return model.to_input(patches.astype(np.float32, copy=False))
