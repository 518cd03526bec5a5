"""``target="max"`` in windows: each feature's strongest unit deconvolved from a window of the
track around it.

With ``target="max"`` a feature's backward pass starts from ONE unit, and its mask is zero
outside that unit's receptive field.  A window of the track that starts on the layer's time
stride and reaches ``m >= rf`` frames (rounded up to the stride) beyond the unit's own
frames on both sides holds every unit whose receptive field reaches the unit's (as a chunk
of :mod:`.chunks` does): the unit's activation, the switches and derivatives under it and
its backward pass are the whole track's, so its mask over the window is the whole track's
mask.  So the forward pass finds each feature's strongest unit over the whole track, then
the windows (one per feature, all the same length) go through the graph as ONE batch whose
item ``i`` is seeded with feature ``i``'s unit: one backward pass over windows a few
receptive fields long instead of one pass per feature over the whole track.  A window
clipped by the track's end is moved back to end with it (still on the stride), so windows
take at most two lengths (two batches).  It pays when the windows hold fewer frames than
the track (a long track, few features), and it is how a track too long for the memory
budget takes ``target="max"`` (its strongest units are searched chunk by chunk); otherwise
the whole track goes through in one piece.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..graph import LayerInfo
from ..model import FrozenModel
from ..progress import Progress
from ..representations import TrackInput
from .chunks import Chunk, combine_stats, crop_units
from .forward import run_graph
from .memory import FORWARD_SHARE, MemoryPlan, mask_array, release_pages
from .patches import Patching, model_input, normalize_track
from .program import Program
from .stats import ActivationStats, activation_stats

__all__ = ["unit_windows", "window_length", "windowed_max"]


def unit_windows(units: Sequence[int], n_frames: int, rf: int, stride: int
                 ) -> list[tuple[int, int]]:
    """The window ``(start, stop)`` in frames around each unit (a time index of the layer):
    ``m = rf`` rounded up to the stride on either side of the unit's ``stride`` frames, moved
    back from the track's end to end with it, starting on the stride (the whole track when
    it is shorter than one window)."""
    s = max(1, stride)
    length = window_length(rf, s)
    last = max(0, (n_frames - length) // s * s)           # the last window that ends the track
    out = []
    for u in units:
        start = min(max(0, int(u) * s - (length - s) // 2), last)
        stop = n_frames if start == last else start + length
        out.append((start, stop))
    return out


def window_length(rf: int, stride: int) -> int:
    """Frames of a unit's window: its ``stride`` frames and ``rf`` (rounded up to the stride)
    on either side."""
    s = max(1, stride)
    return 2 * math.ceil(max(rf, 1) / s) * s + s


def windowed_max(prog: Program, plan: MemoryPlan, model: FrozenModel, info: LayerInfo,
                 track: TrackInput, feats: list[int], bar: Progress
                 ) -> tuple[np.ndarray, ActivationStats] | None:
    """Every feature's mask for ``target="max"`` (:mod:`.windows`): (masks (F, n_frames,
    n_bands), the statistics of the whole track's activations), or None when the track is
    short enough to take in one piece and its windows would hold more frames than it (the
    caller takes the whole track).

    A track the memory plan cuts into chunks is searched for the strongest units chunk by
    chunk; a batch of windows holds at most an eighth of the budget.
    """
    stride = info.stride[0] or 1
    length = window_length(info.receptive_field[0], stride)
    if not plan.chunks and len(feats) * length > track.n_frames:
        return None
    frames = normalize_track(model, track.frames)
    where, stats = _strongest_units(model, info, frames, feats, plan.chunks)
    tpos = info.time_axis - (info.time_axis > info.feature_axis)    # time in a map
    windows = unit_windows([w[tpos] for w in where], track.n_frames, info.receptive_field[0],
                           stride)
    masks = mask_array((len(feats), track.n_frames, model.representation.n_bands), plan.budget)
    groups: dict[int, list[int]] = {}
    for i, (a, b) in enumerate(windows):
        groups.setdefault(b - a, []).append(i)
    with bar:
        for n, items in groups.items():
            per_batch = len(items) if not plan.per_unit else max(
                1, int(plan.budget / FORWARD_SHARE // (plan.per_unit * n)))
            for k in range(0, len(items), per_batch):
                part = items[k:k + per_batch]
                _window_batch(prog, model, info, frames, feats, windows, where, part, tpos, masks,
                              stride)
                release_pages(masks)
                bar.update(len(part))
    return masks, stats


def _strongest_units(model: FrozenModel, info: LayerInfo, frames: np.ndarray, feats: list[int],
                     chunks: list[Chunk] | None) -> tuple[list[list[int]], ActivationStats]:
    """Each feature's strongest unit over the track (its index in the layer's output without
    the feature axis; the first on ties within a piece) and the activations' statistics,
    from the plain forward pass, piece by piece."""
    stride = info.stride[0] or 1
    n = len(frames)
    pieces = chunks or [Chunk(0, n, slice(0, n), slice(0, None))]
    best = np.full(len(feats), -np.inf)
    where: list[list[int]] = [[] for _ in feats]
    parts = []
    tpos = info.time_axis - (info.time_axis > info.feature_axis)
    for c in pieces:
        x, _ = model_input(model, frames[c.start:c.stop], True, stride, normalized=True)
        act = crop_units(np.take(run_graph(model, x, info.tensor), feats, axis=info.feature_axis),
                         info, c)
        units = act.shape[info.time_axis]
        if not units:                  # (a last core shorter than the layer's stride has none)
            continue
        parts.append((activation_stats(act, info, Patching([0], units, units)), units))
        first = c.start // stride + (c.units.start or 0)
        for k, m in enumerate(np.moveaxis(act, info.feature_axis, 0)):
            i = int(np.argmax(m))
            if m.flat[i] > best[k]:
                best[k] = m.flat[i]
                where[k] = list(np.unravel_index(i, m.shape))
                where[k][tpos] += first
    for k, w in enumerate(where):                     # all -inf: never happens; all equal: unit 0
        if not w:
            where[k] = [0] * (act.ndim - 1)
    return where, combine_stats(parts)


def _window_batch(prog: Program, model: FrozenModel, info: LayerInfo, frames: np.ndarray,
                  feats: list[int], windows: list[tuple[int, int]], where: list[tuple],
                  items: list[int], tpos: int, masks: np.ndarray, stride: int) -> None:
    """One batch of windows of the same length: forward, each item seeded with its feature's
    strongest unit, one backward pass, each item's mask written into its window."""
    x = np.concatenate([model_input(model, frames[windows[i][0]:windows[i][1]], True, stride,
                                    normalized=True)[0] for i in items])
    act, saved, _, _ = prog.forward(x)
    act = act.numpy()
    seed = np.zeros_like(act)
    for j, i in enumerate(items):
        unit = list(where[i])
        unit[tpos] -= windows[i][0] // stride             # the unit's place in its window
        unit[0] = j                                       # item j of the batch
        unit.insert(info.feature_axis, feats[i])
        seed[tuple(unit)] = act[tuple(unit)]
    grads = model.from_input(prog.backward_seeded(saved, seed))   # items, length, bands
    for j, i in enumerate(items):
        a, b = windows[i]
        masks[i, a:b] = grads[j, :b - a]
