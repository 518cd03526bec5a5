"""The whole study: descriptors over many tracks, invariance on the probe set, labels."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import audio as audio_mod
from ..audio import validate
from ..engine import check_model, deconv_options, deconvolve
from ..model import FrozenModel
from ..options import DeconvOptions, SoundOptions, resolve
from ..probes import PROBE_SR, Probe, probe_set
from ..progress import Progress, ProgressArg
from .context import TrackContext
from .descriptors import DESCRIPTORS, describe
from .labels import THRESHOLDS, add_labels
from .references import Reference

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["INVARIANCES", "AnalysisResult", "analyse", "aggregate", "invariance",
           "probe_invariance", "typical_features"]

INVARIANCES = ("invariance_key", "invariance_chord", "invariance_instrument")


def aggregate(per_track: pd.DataFrame) -> pd.DataFrame:
    """One row per (layer, feature): descriptors averaged over tracks, weighted by the
    feature's output energy on each (NaN-aware); ``dead`` only if dead on every track.

    With a ``family`` column (the probe set: 120 chord clips, 4 drum loops, ...), every
    family the feature responds to weighs the same, so the many chord clips do not drown
    the drums: track weights are energy shares within the family, divided by the number of
    families where the feature is active.
    """
    import pandas as pd

    rows = []
    for (layer, feat), g in per_track.groupby(["layer", "feature"], sort=False):
        w = g["output_energy"].to_numpy(float).copy()
        if "family" in g:
            fam = g["family"].astype(str).to_numpy()
            live = [f for f in np.unique(fam) if w[fam == f].sum() > 0]
            for f in np.unique(fam):
                tot = w[fam == f].sum()
                w[fam == f] = w[fam == f] / tot / len(live) if tot > 0 else 0.0
        row: dict[str, Any] = {"layer": layer, "feature": int(feat), "dead": bool(g["dead"].all()),
                               "tracks": len(g), "tracks_active": int((w > 0).sum()),
                               "activation_max": float(g["activation_max"].max()),
                               "activation_mean": float(g["activation_mean"].mean()),
                               "fraction_active": float(g["fraction_active"].mean())}
        for col in DESCRIPTORS:
            v = g[col].to_numpy(float)
            if col == "output_energy":
                row[col] = float(np.nansum(v))
                continue
            ok = np.isfinite(v) & (w > 0)
            row[col] = float(np.average(v[ok], weights=w[ok])) if ok.any() else float("nan")
        prof = np.array(g["pitch_profile"].tolist(), float)
        ok = np.isfinite(prof).all(axis=1) & (w > 0)
        row["pitch_profile"] = (list(map(float, np.average(prof[ok], axis=0, weights=w[ok])))
                                if ok.any() else [float("nan")] * 12)
        rows.append(row)
    return pd.DataFrame(rows)


def invariance(values: np.ndarray) -> dict[str, float]:
    """Invariance of one feature to each factor of a (key, instrument, chord_set) table.

    Parameters
    ----------
    values : np.ndarray, shape (n_keys, n_instruments, n_chord_sets)
        The feature's mean activation on each chord clip.

    Returns
    -------
    dict
        ``invariance_key``, ``invariance_instrument``, ``invariance_chord`` in [0, 1]
        (NaN when the feature does not vary at all, or the factor has one level).
    """
    v = np.asarray(values, np.float64)
    total = v.var()
    out = {}
    for axis, name in ((0, "invariance_key"), (1, "invariance_instrument"), (2, "invariance_chord")):
        if v.shape[axis] < 2 or not total > 1e-12 * max(float(np.abs(v).max()) ** 2, 1e-300):
            out[name] = float("nan")
            continue
        within = v.var(axis=axis).mean()
        out[name] = float(np.clip(1.0 - within / total, 0.0, 1.0))
    return out


@dataclass
class AnalysisResult:
    """Every feature of the analysed layers, described.

    Attributes
    ----------
    per_feature : pandas.DataFrame
        One row per (layer, feature): aggregated descriptors, invariances (NaN without the
        probe set's chord clips), ``label``, ``tags``, ``primary``.
    per_track : pandas.DataFrame
        One row per (track, layer, feature): the descriptors on that track, with the
        track's factors (``family``, ``key``, ``instrument``, ``chord_set``).
    tracks : list of dict
        Name, duration and where each track's reference onsets came from.
    settings : dict
    audio : dict
        Track name -> (samples, sr), for listening to the features afterwards.
    """

    per_feature: Any
    per_track: Any
    tracks: list[dict]
    settings: dict = field(default_factory=dict)
    audio: dict = field(default_factory=dict, repr=False)


def _as_tracks(tracks: Iterable[Any] | None, sr: int
               ) -> list[tuple[str, np.ndarray, int, Reference | None, dict]]:
    if tracks is None:
        tracks = probe_set(sr=sr)
    out = []
    for t in tracks:
        if isinstance(t, Probe):
            out.append((t.name, t.audio, t.sr, Reference.from_probe(t),
                        {"family": t.family, "key": t.key, "instrument": t.instrument,
                         "chord_set": t.chord_set}))
        elif isinstance(t, str | os.PathLike):
            y, tsr = audio_mod.load(t)
            out.append((Path(t).stem, y, tsr, Reference.for_track(t, y, tsr),
                        {"family": "track", "key": None, "instrument": None, "chord_set": None}))
        else:
            name, y, tsr, *rest = t
            out.append((name, np.asarray(y, np.float32), int(tsr), rest[0] if rest else None,
                        {"family": "track", "key": None, "instrument": None, "chord_set": None}))
    return out


def probe_invariance(per_track: pd.DataFrame) -> pd.DataFrame:
    """Invariance scores per (layer, feature) from the chord clips in ``per_track``."""
    import pandas as pd

    chords = per_track[per_track["family"] == "chords"]
    rows = []
    if chords.empty:
        return pd.DataFrame(columns=["layer", "feature", *INVARIANCES])
    keys = sorted(chords["key"].unique())
    insts = sorted(chords["instrument"].unique())
    sets = sorted(chords["chord_set"].unique())
    for (layer, feat), g in chords.groupby(["layer", "feature"], sort=False):
        table = np.full((len(keys), len(insts), len(sets)), np.nan)
        for r in g.itertuples():
            table[keys.index(r.key), insts.index(r.instrument), sets.index(r.chord_set)] = r.activation_mean
        if np.isnan(table).any():   # an incomplete design: no invariance
            inv = dict.fromkeys(INVARIANCES, float("nan"))
        else:
            inv = invariance(table)
        rows.append({"layer": layer, "feature": int(feat), **inv})
    return pd.DataFrame(rows)


def analyse(
    model: FrozenModel,
    tracks: Iterable[Any] | None = None,
    *,
    layers: Any = "all",
    features: Any = None,
    method: str = DeconvOptions.method,
    target: str = DeconvOptions.target,
    mode: str = DeconvOptions.mode,
    precision: str = DeconvOptions.precision,
    memory: int | str | None = None,
    reading: str = SoundOptions.reading,
    sign: str = SoundOptions.sign,
    options: DeconvOptions | None = None,
    sound: SoundOptions | None = None,
    probe_sr: int = PROBE_SR,
    progress: ProgressArg = False,
    thresholds: dict[str, float] | None = None,
) -> AnalysisResult:
    """Describe and label every feature of the given layers.

    Parameters
    ----------
    model : FrozenModel
    tracks : iterable, optional
        :class:`~mirdeconv.probes.Probe` objects, audio paths (annotations from ``NAME.jams``
        beside them, else onsets detected by librosa), or ``(name, audio, sr[, Reference])``
        tuples.  Default: the whole probe set (:func:`mirdeconv.probes.probe_set`).
    layers : "all", str or list
        Layer names or positions.
    features : None, int, list or str
        As for :func:`mirdeconv.deconvolve` (default: all).
    method, target, mode, precision, memory, options
        As for :func:`mirdeconv.deconvolve`.
    reading, sign, sound
        How the masks become sound (:class:`mirdeconv.options.SoundOptions`).
    probe_sr : int
        Sample rate of the probe set when ``tracks`` is None.
    progress : bool or callable
        True for a tqdm bar over (track, layer) steps, or ``callable(done, total)``.
    thresholds : dict, optional
        Overrides of :data:`mirdeconv.analysis.THRESHOLDS`.

    Returns
    -------
    AnalysisResult
    """
    import pandas as pd

    opts = deconv_options(options, method, target, mode, precision, memory)
    snd = resolve(SoundOptions, sound, {"reading": reading, "sign": sign})
    model = check_model(model)
    names = [li.name for li in model.layers] if layers in ("all", None) else \
        [model.layer(x).name for x in ([layers] if isinstance(layers, str | int) else layers)]
    items = _as_tracks(tracks, probe_sr)
    frames, infos, kept = [], [], {}
    with Progress(progress, len(items) * len(names), "analyse", "step") as bar:
        for name, y, sr, ref, factors in items:
            y = validate(y, sr)
            kept[name] = (y, sr)
            info, per_layer = _describe_track(model, name, y, sr, ref, factors, names, features,
                                              opts, snd, bar)
            infos.append(info)
            frames.extend(per_layer)
    per_track = pd.concat(frames, ignore_index=True)
    feats = aggregate(per_track)
    inv = probe_invariance(per_track)
    if not inv.empty:
        feats = feats.merge(inv, on=["layer", "feature"], how="left")
    for col in INVARIANCES:
        if col not in feats:
            feats[col] = np.nan
    feats = add_labels(feats, thresholds)
    settings = {"model": model.name, "layers": names, **opts.key(), "reading": snd.reading,
                "sign": snd.sign, "thresholds": {**THRESHOLDS, **(thresholds or {})},
                "probe_set": tracks is None}
    return AnalysisResult(per_feature=feats, per_track=per_track, tracks=infos, settings=settings,
                          audio=kept)


def _describe_track(model: FrozenModel, name: str, y: np.ndarray, sr: int, ref: Reference | None,
                    factors: dict, layers: list[str], features: Any, opts: DeconvOptions,
                    sound: SoundOptions, bar: Progress) -> tuple[dict, list]:
    """Every layer's descriptors on one track, with the track's factors."""
    track = model.representation.prepare(y, sr)
    ref = ref if ref is not None else Reference.detect(y, sr)
    ctx = TrackContext(track, ref)
    info = {"track": name, "duration": len(y) / sr, "onsets_from": ref.onsets_from,
            "n_onsets": len(ref.onsets), **factors}
    out = []
    for layer in layers:
        res = deconvolve(model, track=track, layer=layer, features=features, options=opts)
        d = describe(res, ctx, sound=sound)
        d.insert(0, "track", name)
        for k, v in factors.items():
            d[k] = v
        out.append(d)
        bar.update()
    return info, out


def typical_features(per_feature: pd.DataFrame, layer: str, n: int = 3) -> list[tuple[str, int]]:
    """For each of the ``n`` most common primary labels of a layer, its most typical feature:
    the one with the largest output energy among those carrying that label.

    Returns
    -------
    list of (label, feature index)
    """
    g = per_feature[per_feature["layer"] == layer]
    out = []
    for lab in g["primary"].value_counts().index[:n]:
        if lab == "dead":
            continue
        sub = g[g["primary"] == lab]
        out.append((lab, int(sub.sort_values("output_energy", ascending=False)["feature"].iloc[0])))
    return out
