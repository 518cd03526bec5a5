"""Statistics of the features' activations in the forward pass."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph import LayerInfo
from .patches import Patching

__all__ = ["ActivationStats", "activation_stats", "DEAD_REASONS"]


#: Why a feature is dead: its map is zero everywhere, or never above zero.
DEAD_REASONS = ("", "all zero", "never positive")


@dataclass(frozen=True)
class ActivationStats:
    """Per selected feature: ``max``, ``mean``, ``fraction`` of units > 0, ``min`` (each
    shape (F,)), and ``over_time`` (F, n_units): the activation's maximum over every axis
    but time."""

    max: np.ndarray
    mean: np.ndarray
    fraction: np.ndarray
    over_time: np.ndarray
    min: np.ndarray

    @property
    def all_zero(self) -> np.ndarray:
        """Features whose map is zero everywhere (their masks are zero)."""
        return (self.max == 0) & (self.min == 0)

    @property
    def dead(self) -> np.ndarray:
        """Features that never respond: never above zero (after batch norm or an ELU, a map
        can be negative everywhere without being zero)."""
        return self.max <= 0

    @property
    def dead_reason(self) -> np.ndarray:
        """``""``, ``"all zero"`` or ``"never positive"`` per feature."""
        return np.where(self.all_zero, DEAD_REASONS[1], np.where(self.dead, DEAD_REASONS[2], ""))


def activation_stats(act: np.ndarray, info: LayerInfo, patching: Patching, first: int = 0,
                     over_time: np.ndarray | None = None) -> ActivationStats:
    """Statistics of the selected features of a layer's output, ``act`` (only those features,
    in order; batch = items ``first, first + 1, ...`` of ``patching``; their activations over
    time written into ``over_time``, the whole track's (F, n_units), when given)."""
    fa, ta = info.feature_axis, info.time_axis
    rest = tuple(i for i in range(act.ndim) if i != fa)     # reduced in place: no copy
    count = act.size // max(act.shape[fa], 1)
    kept = sorted({0, fa, ta})
    per_t = act.max(axis=tuple(i for i in rest if i not in kept))
    per_t = np.transpose(per_t, [kept.index(fa), 0, kept.index(ta)])          # F, N, T
    if len(patching.starts) == 1:
        over_time = per_t[:, 0]
    else:
        over_time = _units_over_time(np.moveaxis(per_t, 0, -1), patching, info.stride[0],
                                     first, over_time)
    return ActivationStats(per_t.max(axis=(1, 2)).astype(np.float32),
                           act.mean(axis=rest, dtype=np.float64).astype(np.float32),
                           (np.count_nonzero(act > 0, axis=rest) / count).astype(np.float32),
                           over_time.astype(np.float32), act.min(axis=rest).astype(np.float32))


def _units_over_time(per_t: np.ndarray, patching: Patching, stride: int, first: int = 0,
                     out: np.ndarray | None = None) -> np.ndarray:
    """Activation over time from patches ``first, first + 1, ...`` (N, units, F): later patches
    overwrite the overlap (into ``out``, the whole track's, when given)."""
    starts = patching.starts
    step = max(stride, 1)
    n_units = per_t.shape[1]
    if out is None:
        out = np.zeros((per_t.shape[2], starts[-1] // step + n_units), np.float32)
    for s, p in zip(starts[first:], per_t):
        out[:, s // step:s // step + n_units] = p.T
    return out
