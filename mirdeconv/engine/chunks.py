"""Long tracks in bounded memory: a whole track cut into chunks extended by the receptive field.

A layer that is fully convolutional along time sees a track through units whose receptive
fields are ``rf`` frames wide.  Cut the track into cores that start on the layer's time
stride ``S`` and extend each core by ``m >= rf`` frames (rounded up to ``S``) on both sides:
every unit whose receptive field reaches a core frame then lies wholly inside the extended
chunk, so its activation, its pooling switches and the backward signal through it are the
ones the whole track would give, and the chunk's mask over its core equals the whole track's
(to float rounding).  Units near a chunk's cut edges see the cut, but their fields end more
than ``m`` frames before the core.  Each unit of the layer is counted in exactly one core
(the one its first frame ``u * S`` falls in), so the activation statistics combine exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..graph import LayerInfo
from .stats import ActivationStats

__all__ = ["Chunk", "plan_chunks", "combine_stats", "crop_units"]


@dataclass(frozen=True)
class Chunk:
    """One piece of a track.

    Attributes
    ----------
    start, stop : int
        The extended chunk, in frames of the track.
    core : slice
        Its core, relative to ``start``.
    units : slice
        The layer's units that belong to the core, relative to the chunk's first unit.
    """

    start: int
    stop: int
    core: slice
    units: slice


def plan_chunks(n_frames: int, core_frames: int, rf: int, stride: int) -> list[Chunk]:
    """Cores of ``core_frames`` (rounded down to the stride; at least one stride) covering
    ``n_frames``, each extended by the receptive field (rounded up to the stride).

    Returns
    -------
    list of Chunk
        One chunk covering the track when it fits in one core.
    """
    s = max(1, stride)
    margin = math.ceil(max(rf, 1) / s) * s
    core = max(s, core_frames // s * s)
    out = []
    for a in range(0, n_frames, core):
        b = min(n_frames, a + core)
        start, stop = max(0, a - margin), min(n_frames, b + margin)
        out.append(Chunk(start, stop, slice(a - start, b - start),
                         slice((a - start) // s, -(-(b - start) // s))))
    return out


def combine_stats(parts: list[tuple[ActivationStats, int]],
                  over_time: np.ndarray | None = None) -> ActivationStats:
    """The statistics of the whole track from its pieces' (statistics, units) pairs (their
    activations over time concatenated, unless the whole track's ``over_time`` is given)."""
    units = np.array([n for _, n in parts], np.float64)
    w = units / max(units.sum(), 1.0)

    def stack(name: str) -> np.ndarray:
        return np.stack([getattr(p, name) for p, _ in parts])

    return ActivationStats(
        max=stack("max").max(axis=0),
        mean=(stack("mean") * w[:, None]).sum(axis=0).astype(np.float32),
        fraction=(stack("fraction") * w[:, None]).sum(axis=0).astype(np.float32),
        over_time=np.concatenate([p.over_time for p, _ in parts], axis=1)
        if over_time is None else over_time,
        min=stack("min").min(axis=0),
    )


def crop_units(act: np.ndarray, info: LayerInfo, chunk: Chunk) -> np.ndarray:
    """The layer's output over the chunk's core units only."""
    index = [slice(None)] * act.ndim
    index[info.time_axis] = chunk.units
    return act[tuple(index)]
