"""Unit-level fidelity of auralisations: does a feature's sound make that feature respond?

Each selected feature ``f`` of a layer is deconvolved and auralised as usual
(:func:`mirdeconv.auralise`), brought to the track's peak level (a mask's scale is
arbitrary: a deconvolution is not bounded by 1), and fed back through the model.  For every
feature ``g`` of the layer its *retention* is the mean of the positive part of its map for
the auralisation divided by the same for the whole track, ``r[f, g] = A_g(sound_f) /
A_g(track)``.  The auralisation is *selective* when its own feature keeps more than the
others:

* ``own``: ``r[f, f]``;
* ``others``: the median of ``r[f, g]`` over the layer's other features that respond to the
  track;
* ``ratio``: ``own / others`` (above 1: selective);
* ``rank``: 1 + how many other features keep more than ``f`` does (1: the most re-excited).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..auralisation import auralise_result
from ..engine import deconvolve
from ..errors import AudioError
from ..model import FrozenModel
from ..options import DeconvOptions, SoundOptions
from ..progress import Progress, ProgressArg
from ..representations import TrackInput
from .activity import features_or_top, layer_activity, layer_subject

__all__ = ["Selectivity", "selectivity", "FEEDBACK_SOUND"]

#: How the auralisations are made to be fed back: as the auralisation's defaults, at the
#: track's rate (and then scaled to the track's peak).
FEEDBACK_SOUND = SoundOptions(normalize="none", output_sr="track")


@dataclass
class Selectivity:
    """How selectively each feature's auralisation re-excites it.

    Attributes
    ----------
    model_name, layer, method : str
    features : list of int
        The auralised features.
    retention : np.ndarray, float64, shape (n_selected, n_features)
        ``r[f, g]`` for every feature ``g`` of the layer (NaN where ``g`` does not respond
        to the track, or the auralisation is silent).
    """

    model_name: str
    layer: str
    method: str
    features: list[int]
    retention: np.ndarray

    @property
    def own(self) -> np.ndarray:
        """``r[f, f]`` per selected feature, shape (n_selected,)."""
        return self.retention[np.arange(len(self.features)), self.features]

    @property
    def others(self) -> np.ndarray:
        """The median retention of the other responding features, shape (n_selected,)."""
        r = self.retention.copy()
        r[np.arange(len(self.features)), self.features] = np.nan
        with np.errstate(all="ignore"):
            return np.array([np.nanmedian(row) if np.isfinite(row).any() else np.nan
                             for row in r])

    @property
    def ratio(self) -> np.ndarray:
        """``own / others``, shape (n_selected,)."""
        with np.errstate(all="ignore"):
            return self.own / self.others

    @property
    def rank(self) -> np.ndarray:
        """1 + the number of other features retained more, shape (n_selected,) (0: unknown)."""
        own = self.own
        out = np.zeros(len(self.features), int)
        for i, row in enumerate(self.retention):
            if np.isfinite(own[i]):
                out[i] = 1 + int(np.sum(row[np.isfinite(row)] > own[i]))
        return out

    @property
    def n_responding(self) -> int:
        """Features of the layer that respond to the track (the ranks' range)."""
        return int(np.isfinite(self.retention).any(axis=0).sum())

    def summary(self) -> dict[str, Any]:
        """The median ratio, the share of selective features (ratio > 1) and of those their
        own sound re-excites most (rank 1)."""
        ratio, rank = self.ratio, self.rank
        ok = np.isfinite(ratio)
        return {"layer": self.layer, "method": self.method, "n_features": len(self.features),
                "n_responding": self.n_responding,
                "median_ratio": float(np.median(ratio[ok])) if ok.any() else float("nan"),
                "selective_share": float(np.mean(ratio[ok] > 1)) if ok.any() else float("nan"),
                "rank1_share": float(np.mean(rank[ok] == 1)) if ok.any() else float("nan"),
                "median_rank": float(np.median(rank[ok])) if ok.any() else float("nan")}

    def table(self) -> list[dict[str, Any]]:
        """One row per auralised feature."""
        return [{"feature": f, "own": float(o), "others": float(t), "ratio": float(r),
                 "rank": int(k)}
                for f, o, t, r, k in zip(self.features, self.own, self.others, self.ratio,
                                         self.rank)]

    def to_dict(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "layer": self.layer, "method": self.method,
                "features": self.features, "retention": self.retention.tolist(),
                "summary": self.summary(), "table": self.table()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Selectivity:
        r = np.array(d["retention"], np.float64).reshape(len(d["features"]), -1)  # None: NaN
        return cls(d["model_name"], d["layer"], d["method"], list(d["features"]), r)


def selectivity(
    model: FrozenModel,
    audio: np.ndarray,
    sr: int,
    *,
    layer: str | int,
    features: Sequence[int] | None = None,
    top: int = 16,
    method: str = DeconvOptions.method,
    track: TrackInput | None = None,
    progress: ProgressArg = False,
) -> Selectivity:
    """Feed each feature's auralisation back and measure what it re-excites.

    Parameters
    ----------
    model : FrozenModel
    audio : np.ndarray, shape (n_samples,)
        The track at its own rate (the auralisations are made at it).
    sr : int
        Its rate in Hz.
    layer : str or int
    features : sequence of int, optional
        Feature indices (default: the ``top`` most active).  An int is the deprecated
        spelling of ``top`` (a DeprecationWarning).
    top : int
        How many of the most active on the track (by their maps' peaks), when ``features``
        is not given.
    method : str
        The deconvolution's method (:data:`mirdeconv.options.METHODS`).
    track : TrackInput, optional
        ``model.representation.prepare(audio, sr)``, if already made.
    progress : bool or callable

    Returns
    -------
    Selectivity
    """
    chosen = features_or_top(features, top, "selectivity")
    sub = layer_subject(model, audio, sr, track, layer, chosen, activity=True)
    model, track, info, feats = sub.model, sub.track, sub.layer, sub.features
    base = sub.activity[0]
    res = deconvolve(model, track=track, layer=info.name, features=feats, method=method)
    sound = auralise_result(res, audio, int(sr), FEEDBACK_SOUND)
    retention = np.full((len(feats), info.n_features), np.nan)
    alive = base > 0
    level = float(np.max(np.abs(audio)))
    with Progress(progress, len(feats), f"sanity: selectivity of {info.name}", "feature") as bar:
        for i, y in enumerate(sound.audio):
            try:
                y = y * (level / max(float(np.max(np.abs(y))), 1e-12))
                mean, _ = layer_activity(model, model.representation.prepare(y, sound.sr), info)
                retention[i, alive] = mean[alive] / base[alive]
            except AudioError:                 # a silent auralisation: nothing to feed back
                pass
            bar.update(1)
    return Selectivity(model.name, info.name, method, feats, retention)
