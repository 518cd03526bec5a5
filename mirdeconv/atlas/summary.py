"""One track's part of an atlas: for every feature of the chosen layers its strongest
moments, and for every tag its most confident patches, as a top-k table
(:mod:`mirdeconv.atlas.topk`).

A feature's moments are the units of its map (maximised over frequency) on the track's
time axis, each at its centre in the input (unit ``u`` of ``n`` over an input of ``T``
frames at stride ``s``: ``u s + (T - (n - 1) s) / 2``, which is the receptive field's centre
for unpadded layers and the stride's for "same"-padded ones), each taken from the patch
where it lies furthest from the patch's edges; the strongest are taken with
non-maximum suppression, at least an excerpt apart, so one track gives a feature at most
``k`` distinct excerpts.  The excerpt (``excerpt`` seconds centred on the moment, clipped to
the track) is what a listener hears.  A tag's moments are the model's patches, by the tag's
probability, no two overlapping.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from ..engine import Patching, run_graph
from ..engine.patches import normalize_track, patch_input, plan_patches
from ..errors import MirdeconvError
from ..explanations.api import patch_fill, patch_outputs
from ..explanations.targets import explained_output
from ..graph import LayerInfo
from ..model import FrozenModel
from .topk import COLUMNS, empty, top_k

__all__ = ["summarise", "moment_batches", "top_moments", "PATCHES_PER_PASS"]

#: Patches that go through the model together (memory is bounded by them, not by the track).
PATCHES_PER_PASS = 8


def summarise(model: FrozenModel, audio: np.ndarray, sr: int, *, track: str,
              layers: Sequence[str], k: int, excerpt: float, tags: bool = True
              ) -> pd.DataFrame:
    """The top-``k`` table of one track.

    Parameters
    ----------
    model : FrozenModel
    audio : np.ndarray, shape (n_samples,)
    sr : int
        Sample rate in Hz.
    track : str
        The track's id (kept in every row).
    layers : sequence of str
        Feature layers.
    k : int
        Winners per unit.
    excerpt : float
        Seconds of an excerpt (and the least distance between two winners of a unit).
    tags : bool
        Also the tags (a model with a class output).

    Returns
    -------
    pandas.DataFrame
        :data:`mirdeconv.atlas.topk.COLUMNS` and ``rank``.
    """
    prepared = model.representation.prepare(audio, sr)
    duration, frames = prepared.duration, prepared.frames
    del prepared                 # only the frames are read: the STFT and the audio go at once
    spf = model.representation.seconds_per_frame
    parts = [empty()]
    for name in layers:
        info = model.layer(name)
        # the k winners of greedy suppression lie among the k (2 g + 1) strongest units, g
        # the units an excerpt spans: each winner suppresses at most 2 g + 1 of them
        gap = int(np.ceil(excerpt / ((info.stride[0] or 1) * spf)))
        times, values = top_moments(model, frames, info, k * (2 * gap + 1))
        parts.append(_winners(times * spf, values, info.name, k, excerpt, duration, track))
    if tags:
        parts.append(_tag_winners(model, frames, k, track, duration))
    return top_k(pd.concat(parts, ignore_index=True), k)


def moment_batches(model: FrozenModel, frames: np.ndarray, info: LayerInfo
                   ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The units of a track, :data:`PATCHES_PER_PASS` patches at a time: each batch's unit
    times (frames, their centres in the input; (n,)) and every feature's activation there,
    maximised over frequency ((n_features, n)).  Memory: one batch (a model that takes any
    length goes whole)."""
    n_frames = frames.shape[0]
    norm = normalize_track(model, frames)
    patching = (Patching([0], n_frames, n_frames) if model.input_length is None
                else plan_patches(model, n_frames))
    n_items = len(patching.starts)
    stride = info.stride[0] or 1
    ta, fa = info.time_axis, info.feature_axis
    starts = np.asarray(patching.starts, float)
    ends = starts + patching.length
    # a unit counts in the patch where it is furthest from an edge: the patches' cores meet
    # in the middle of their overlaps (whole tracks and the track's own ends: no edge)
    bounds = np.concatenate([[-np.inf], (starts[1:] + ends[:-1]) / 2, [np.inf]])
    size = min(PATCHES_PER_PASS, n_items)
    for a in range(0, n_items, size):
        items = np.minimum(np.arange(a, a + size), n_items - 1)    # one batch size: padded
        act = run_graph(model, patch_input(model, norm, patching, items), info.tensor)
        act = act[:n_items - a]
        rest = tuple(i for i in range(1, act.ndim) if i not in (ta, fa))
        act = act.max(axis=rest) if rest else act                   # items, then F and T
        act = act if fa < ta else np.swapaxes(act, 1, 2)             # items, features, units
        times, values = [], []
        for j, item in enumerate(range(a, min(a + size, n_items))):
            n = act.shape[2]
            t = starts[item] + np.arange(n) * stride + (patching.length - (n - 1) * stride) / 2
            keep = (t < n_frames) & (t >= bounds[item]) & (t < bounds[item + 1])
            times.append(t[keep])
            values.append(act[j][:, keep])
        yield np.concatenate(times), np.concatenate(values, axis=1)


def top_moments(model: FrozenModel, frames: np.ndarray, info: LayerInfo, keep: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's ``keep`` strongest units over the track, by time: times (frames) and
    values, both (n_features, <= keep).  Memory: ``keep`` per feature and one batch."""
    cand_t = np.zeros((info.n_features, 0))
    cand_v = np.zeros((info.n_features, 0), np.float32)
    for t, v in moment_batches(model, frames, info):
        cand_t = np.concatenate([cand_t, np.broadcast_to(t, v.shape)], axis=1)
        cand_v = np.concatenate([cand_v, np.where(np.isfinite(v), v, -np.inf)], axis=1)
        if cand_v.shape[1] > keep:
            idx = np.argpartition(-cand_v, keep - 1, axis=1)[:, :keep]
            cand_t = np.take_along_axis(cand_t, idx, axis=1)
            cand_v = np.take_along_axis(cand_v, idx, axis=1)
    order = np.argsort(cand_t, axis=1, kind="stable")
    return np.take_along_axis(cand_t, order, axis=1), np.take_along_axis(cand_v, order, axis=1)


def _apart(times: np.ndarray, values: np.ndarray, k: int, gap: float) -> list[int]:
    """The ``k`` largest positive ``values`` whose ``times`` lie at least ``gap`` apart
    (non-maximum suppression), strongest first."""
    chosen: list[int] = []
    values = np.where(np.isfinite(values), values, -np.inf)        # NaN never wins
    for i in np.argsort(-values, kind="stable"):
        if not values[i] > 0 or len(chosen) == k:
            break
        if all(abs(times[i] - times[c]) >= gap for c in chosen):
            chosen.append(int(i))
    return chosen


def _winners(times: np.ndarray, values: np.ndarray, layer: str, k: int, excerpt: float,
             duration: float, track: str) -> pd.DataFrame:
    """Each feature's ``k`` strongest moments, at least ``excerpt`` seconds apart (``times``
    and ``values``: (n_features, n), each feature's candidates)."""
    rows = []
    for f, v in enumerate(values):
        for i in _apart(times[f], v, k, excerpt):
            start, end = _span(times[f][i], excerpt, duration)
            rows.append(("feature", layer, f, float(v[i]), track, start, end))
    return pd.DataFrame(rows, columns=COLUMNS) if rows else empty()


def _span(centre: float, excerpt: float, duration: float) -> tuple[float, float]:
    """``excerpt`` seconds around ``centre``, moved (not cut) to lie inside the track."""
    start = min(max(0.0, centre - excerpt / 2), max(0.0, duration - excerpt))
    return round(start, 6), round(min(duration, start + excerpt), 6)


def _tag_winners(model: FrozenModel, frames: np.ndarray, k: int, track: str, duration: float
                 ) -> pd.DataFrame:
    """Each tag's ``k`` most confident patches that do not overlap (none for a model without
    class output); ``frames``: the track's model input (n_frames, n_bands)."""
    try:
        explained = explained_output(model, "probability")
    except MirdeconvError:
        return empty()
    frames = normalize_track(model, frames)
    n = frames.shape[0]
    patching = Patching([0], n, n) if model.input_length is None else plan_patches(model, n)
    probs = patch_outputs(model, explained.tensor, frames, patching, patch_fill(model, frames))
    spf = model.representation.seconds_per_frame
    starts = np.asarray(patching.starts, float) * spf
    rows = []
    for c in range(probs.shape[1]):                  # patches that do not overlap
        for i in _apart(starts, probs[:, c], k, patching.length * spf - 1e-9):
            s = starts[i]
            rows.append(("tag", "", c, float(probs[i, c]), track, round(s, 6),
                         round(min(duration, s + patching.length * spf), 6)))
    return pd.DataFrame(rows, columns=COLUMNS) if rows else empty()
