"""What does each feature detect?  Descriptors, invariance scores and labels.

Choi et al. 2016 listened to 960 auralisations and asked for "a computational way for
analysis".  This module measures every feature instead.

Descriptors of one feature on one track (:func:`describe`)
---------------------------------------------------------
All computed from the feature's auralisation at the model's sample rate: its STFT is
``Y = M * X``, the feature's mask on the model's STFT grid (:func:`mirdeconv.auralise.stft_domain_mask`,
with the same ``reading`` and ``sign`` as the sound) times the track's complex STFT ``X``;
its audio is ``istft(Y)``.

``output_energy``
    ``sum |Y|^2``: how loud the feature's output is (the weight when averaging over tracks).
``energy_ratio``
    How much of the track the feature passes: ``sum |M / max|M||^2 |X|^2 / sum |X|^2``
    (the mask scaled to a peak of 1), in [0, 1]; 1 = everything.
``percussive_share``, ``harmonic_share``
    The track is split by librosa's HPSS (median filtering, soft masks, margin 1):
    ``X = X_h + X_p``.  The auralisation is linear in ``X``, so it splits the same way,
    ``Y = M X_h + M X_p``; the shares are ``|M X_p|^2`` and ``|M X_h|^2`` over their sum.
``centroid_hz``, ``spread_hz``, ``low_share``, ``mid_share``, ``high_share``
    Energy-weighted mean frequency and standard deviation of the time-summed power
    spectrum ``sum_t |Y|^2``; shares of its energy below :data:`LOW_HZ` (200 Hz), between,
    and above :data:`HIGH_HZ` (2 kHz).
``onset_f``, ``onset_precision``, ``onset_recall``
    The auralisation's onsets (librosa's onset detector on the mel spectrogram of ``Y``)
    against the track's reference onsets, ``mir_eval.onset.f_measure`` with a 50 ms
    window.  NaN when the track has no reference onsets.
``attack_lift``
    The share of the auralisation's energy in the frames within 25 ms of a reference onset,
    divided by the same share of the track: 1 for a feature that passes everything, > 1
    for one that keeps attacks and drops what follows them (a drum loop is mostly attacks
    already, so its onset F-measure alone says little).
``pitch_profile``, ``pitch_correlation``
    The auralisation's pitch-class profile (librosa's chroma filterbank on its mean power
    spectrum, 4096-point frames; 12 values from C, sum 1) and its Pearson correlation with
    the duration-weighted pitch classes of the notes played (NaN when no notes are known).
``temporal_sparsity``
    Hoyer sparsity of the feature's activation over time, in [0, 1]: 0 = equally active
    everywhere, 1 = active in a single unit.
``sdr_percussive``, ``sdr_harmonic``
    The source-separation view: the SDR (dB) of the auralisation as an estimate of the
    track's percussive (``istft(X_p)``) or harmonic (``istft(X_h)``) component, as
    ``mir_eval.separation.bss_eval_sources`` defines it for one source (512-tap distortion
    filter).  Computed in closed form, sharing the reference's correlations over all
    features of a track (agrees with mir_eval to 1e-6 dB, tested; mir_eval itself costs
    0.1 s per call on a 30 s track).  NaN for a silent feature.
plus the engine's ``activation_max``, ``activation_mean``, ``fraction_active`` and ``dead``.

Over many tracks (:func:`analyse`)
----------------------------------
Each descriptor is averaged over the tracks, weighted by ``output_energy`` (tracks where
the feature is silent do not count), ignoring tracks where it is undefined.

Invariance (:func:`invariance`): on the probe set's chord clips (:mod:`mirdeconv.probes`),
a feature's mean activation per clip ``a[key, instrument, chord_set]``.  The invariance to
one factor is ``1 - V_within / V_total``: ``V_within`` is the variance across that factor's
levels with the other two factors fixed (averaged over those cells), ``V_total`` the variance
over all clips.  1 = the activation does not change with the factor; 0 = all of its
variation comes from it.  NaN for a feature that never varies.

Labels (:func:`label`): rules on the descriptors with the thresholds in :data:`THRESHOLDS`,
each with its evidence, e.g. ``"onset detector: F = 0.83"``, ``"low band / bass: 78 % of
energy below 200 Hz"``, ``"harmonic: 91 % of energy in the harmonic part, key-invariant
(0.93)"``, ``"texture: ..."``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InvalidOptionError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .adapters.base import FrozenModel
    from .engine import DeconvResult
    from .probes import Probe
    from .representations import Analysis

__all__ = [
    "LOW_HZ", "HIGH_HZ", "ONSET_WINDOW", "SDR_FILTER", "THRESHOLDS", "DESCRIPTORS",
    "Reference", "TrackContext", "describe", "descriptors", "invariance", "label", "add_labels",
    "aggregate", "analyse", "AnalysisResult", "fast_sdr", "typical_features",
]

LOW_HZ = 200.0
HIGH_HZ = 2000.0
#: mir_eval's onset tolerance in seconds.
ONSET_WINDOW = 0.05
#: Length of bss_eval's distortion filter in samples (mir_eval's default).
SDR_FILTER = 512
#: Half-width in seconds of the attack window of ``attack_lift``.
ATTACK_WINDOW = 0.025
#: Threads of the descriptors' long FFTs.
FFT_WORKERS = 2
#: FFT size of the pitch-class profile.
CHROMA_FFT = 4096

#: Label thresholds (see :func:`label`).
THRESHOLDS: dict[str, float] = {
    "onset_f": 0.7,             # onset detector: F-measure at least this ...
    "attack_lift": 1.2,         # ... and this much more of its energy at the onsets
    "band_share": 0.6,          # low / high band: this share of the energy in the band
    "percussive_share": 0.7,    # percussive: this share in the percussive part
    "harmonic_share": 0.7,      # harmonic: this share in the harmonic part
    "pitch_correlation": 0.7,   # follows the notes: pitch-class correlation at least this
    "invariant": 0.8,           # X-invariant: invariance at least this
    "specific": 0.4,            # X-specific: invariance at most this
    "texture_sparsity": 0.35,   # texture: no other label and sparsity below this
}

#: Descriptor columns per feature (besides ``pitch_profile``), in report order.
DESCRIPTORS = (
    "onset_f", "onset_precision", "onset_recall", "attack_lift", "percussive_share", "harmonic_share",
    "centroid_hz", "spread_hz", "low_share", "mid_share", "high_share", "pitch_correlation",
    "temporal_sparsity", "energy_ratio", "sdr_percussive", "sdr_harmonic", "output_energy",
)
INVARIANCES = ("invariance_key", "invariance_chord", "invariance_instrument")


# =====================================================================================
# reference annotations
# =====================================================================================
@dataclass
class Reference:
    """What is known about a track.

    Attributes
    ----------
    onsets : np.ndarray, shape (n_onsets,)
        Reference onset times in seconds.
    pitch_classes : np.ndarray, shape (12,) or None
        Duration-weighted pitch classes of the notes played (C first), or None if unknown.
    onsets_from : str
        ``"annotations"`` (given) or ``"librosa"`` (detected on the original track).
    """

    onsets: np.ndarray
    pitch_classes: np.ndarray | None = None
    onsets_from: str = "annotations"

    @classmethod
    def from_probe(cls, probe: Probe) -> Reference:
        """The probe's own ground truth."""
        pcs = probe.pitch_classes() if len(probe.notes) else None
        return cls(np.asarray(probe.onsets, float), pcs, "annotations")

    @classmethod
    def detect(cls, y: np.ndarray, sr: int) -> Reference:
        """Onsets found by librosa's onset detector on the original track (no notes)."""
        import librosa

        on = librosa.onset.onset_detect(y=np.asarray(y, np.float32), sr=int(sr), units="time")
        return cls(np.asarray(on, float), None, "librosa")

    @classmethod
    def from_jams(cls, path: str | os.PathLike) -> Reference:
        """Onsets (namespace ``onset``) and notes (``note_midi``) of a JAMS file."""
        import jams

        from .errors import AudioError

        try:
            j = jams.load(str(path), validate=False)
        except Exception as exc:  # noqa: BLE001 - jams raises many kinds
            raise AudioError(f"cannot read annotations {path}: {exc}") from None
        onsets = [float(o.time) for a in j.search(namespace="onset") for o in a.data]
        prof = np.zeros(12)
        for a in j.search(namespace="note_midi"):
            for o in a.data:
                prof[int(round(float(o.value))) % 12] += float(o.duration)
        return cls(np.sort(np.asarray(onsets, float)),
                   prof / prof.sum() if prof.sum() > 0 else None, "annotations")

    @classmethod
    def for_track(cls, path: str | os.PathLike | None, y: np.ndarray, sr: int) -> Reference:
        """``TRACK.jams`` beside the audio when there is one, else onsets detected by librosa."""
        if path is not None:
            side = Path(path).with_suffix(".jams")
            if side.is_file():
                return cls.from_jams(side)
        return cls.detect(y, sr)


# =====================================================================================
# per-track precomputation
# =====================================================================================
class TrackContext:
    """Everything :func:`describe` needs about one track, computed once for all features.

    Parameters
    ----------
    analysis : Analysis
        The track through the model's representation.
    reference : Reference, optional
        Onsets and notes; default: onsets detected on the track by librosa.
    """

    def __init__(self, analysis: Analysis, reference: Reference | None = None) -> None:
        import librosa
        import scipy.linalg

        from .auralise import _window

        rep = analysis.representation
        self.analysis = analysis
        self.reference = reference if reference is not None else Reference.detect(
            analysis.audio, analysis.sr)
        self.sr = int(analysis.sr)
        self.hop = rep.hop_length
        self.grid = {"n_fft": rep.n_fft, "hop_length": rep.hop_length, "win_length": rep.win_length}
        self.window = _window(rep, self.grid)
        self.center = rep.center
        self.n = len(analysis.audio)
        X = analysis.stft.astype(np.complex64, copy=False)
        self.X = X
        self.power = (np.abs(X) ** 2).astype(np.float32)
        self.total = float(self.power.sum()) or 1.0
        mh, mp = librosa.decompose.hpss(np.abs(X), mask=True)
        self.p_power = (mp ** 2 * self.power).astype(np.float32)
        self.h_power = (mh ** 2 * self.power).astype(np.float32)
        freqs = librosa.fft_frequencies(sr=self.sr, n_fft=rep.n_fft)
        self.freqs = freqs
        self.bands = np.stack([freqs < LOW_HZ, (freqs >= LOW_HZ) & (freqs < HIGH_HZ),
                               freqs >= HIGH_HZ]).astype(np.float64)
        self.mel = librosa.filters.mel(sr=self.sr, n_fft=rep.n_fft,
                                       n_mels=min(128, max(32, rep.n_fft // 8))).astype(np.float32)
        self.chroma = librosa.filters.chroma(sr=self.sr, n_fft=CHROMA_FFT)
        t = librosa.frames_to_time(np.arange(X.shape[1]), sr=self.sr, hop_length=self.hop)
        near = np.zeros(X.shape[1], bool)
        for o in self.reference.onsets:
            near |= np.abs(t - o) <= ATTACK_WINDOW
        self.near_onsets = near
        share = float(self.power[:, near].sum()) / self.total
        self.attack_share = share if share > 0 else None
        # the separation references and their correlations (bss_eval's G), once per track
        self.n_fft_sdr = _next_fast_len(self.n + SDR_FILTER - 1)
        self.refs = {}
        for name, mask in (("percussive", mp), ("harmonic", mh)):
            r = self.istft(mask[None] * X[None])[0].astype(np.float64)
            R = np.fft.rfft(r, self.n_fft_sdr)
            if not np.any(r):
                self.refs[name] = None
                continue
            acf = np.fft.irfft(np.abs(R) ** 2, self.n_fft_sdr)[:SDR_FILTER]
            G = scipy.linalg.toeplitz(acf)
            self.refs[name] = (R, scipy.linalg.lu_factor(G))

    def istft(self, Y: np.ndarray) -> np.ndarray:
        """(F, bins, frames) -> (F, n_samples) at the model's rate."""
        import librosa

        return librosa.istft(Y, window=self.window, center=self.center, length=self.n, **self.grid)


def _next_fast_len(n: int) -> int:
    import scipy.fft

    return int(scipy.fft.next_fast_len(n, real=True))


def fast_sdr(estimates: np.ndarray, reference: tuple[np.ndarray, Any], n_fft: int,
             spectra: np.ndarray | None = None) -> np.ndarray:
    """bss_eval's SDR of each estimate against one reference source, in closed form.

    With a single reference source, ``mir_eval.separation.bss_eval_sources`` projects the
    estimate ``e`` onto the span of the reference delayed by 0..511 samples (``G c = D``,
    ``G`` the reference's autocorrelation Toeplitz matrix, ``D`` its cross-correlation with
    the estimate) and returns ``10 log10(|P e|^2 / |e - P e|^2)``; ``|P e|^2 = D . c``.

    Parameters
    ----------
    estimates : np.ndarray, shape (n_estimates, n_samples)
    reference : (np.ndarray, lu)
        The reference's rFFT of size ``n_fft`` and the LU factors of its ``G``
        (see :class:`TrackContext`).
    n_fft : int
        At least ``n_samples + 511``.
    spectra : np.ndarray, shape (n_estimates, n_fft // 2 + 1), optional
        The estimates' rFFTs of size ``n_fft``, when already computed.

    Returns
    -------
    np.ndarray, shape (n_estimates,)
        dB; NaN for a silent estimate.
    """
    import scipy.fft
    import scipy.linalg

    R, lu = reference
    E = spectra if spectra is not None else scipy.fft.rfft(
        np.asarray(estimates, np.float64), n_fft, axis=1, workers=FFT_WORKERS)
    D = scipy.fft.irfft(np.conj(R)[None] * E, n_fft, axis=1, workers=FFT_WORKERS)[:, :SDR_FILTER]
    C = scipy.linalg.lu_solve(lu, D.T)                                          # (flen, F)
    proj = np.einsum("fk,kf->f", D, C)
    energy = np.einsum("ft,ft->f", estimates, estimates, dtype=np.float64)
    out = np.full(len(estimates), np.nan)
    ok = energy > 0
    resid = np.maximum(energy - proj, 0.0)
    with np.errstate(divide="ignore"):
        out[ok] = 10 * np.log10(np.maximum(proj[ok], 1e-300) / resid[ok])
    return out


# =====================================================================================
# descriptors of one track
# =====================================================================================
def _hoyer(x: np.ndarray) -> np.ndarray:
    """Hoyer sparsity of each row of ``x`` (n, d): (sqrt(d) - L1/L2) / (sqrt(d) - 1)."""
    x = np.abs(np.asarray(x, np.float64))
    d = x.shape[1]
    if d < 2:
        return np.zeros(len(x))
    l1, l2 = x.sum(1), np.sqrt((x ** 2).sum(1))
    out = np.zeros(len(x))
    ok = l2 > 0
    out[ok] = (math.sqrt(d) - l1[ok] / l2[ok]) / (math.sqrt(d) - 1)
    return np.clip(out, 0.0, 1.0)


def _onsets(mel_power: np.ndarray, sr: int, hop: int, n_fft: int) -> np.ndarray:
    """Onset times (s) of one signal from its mel power spectrogram (n_mels, frames)."""
    import librosa

    peak = float(mel_power.max())
    if peak <= 0:
        return np.zeros(0)
    S = librosa.power_to_db(mel_power, ref=peak, top_db=80.0)
    env = librosa.onset.onset_strength(S=S, sr=sr, hop_length=hop, n_fft=n_fft)
    return librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=hop, units="time")


def describe(result: DeconvResult, context: TrackContext, *, reading: str = "mask",
             sign: str = "signed", chunk: int = 16, audio: np.ndarray | None = None) -> pd.DataFrame:
    """Descriptors of every feature of one deconvolution (one layer, one track).

    Parameters
    ----------
    result : DeconvResult
        From :func:`mirdeconv.deconvolve`.
    context : TrackContext
        The same track's precomputation (``result.analysis`` must be its analysis).
    reading, sign : str
        How the masks become sound (see :mod:`mirdeconv.auralise`).
    chunk : int
        Features processed together.
    audio : np.ndarray, shape (n_features, n_samples), optional
        The features' auralisations at the model's rate, if already made (any gain per
        row: the descriptors that use the audio do not depend on its level).

    Returns
    -------
    pandas.DataFrame
        One row per feature: ``layer``, ``feature``, ``dead``, the engine's activation
        statistics, and every column of :data:`DESCRIPTORS` plus ``pitch_profile`` (a list
        of 12 floats) and ``onsets_from``.
    """
    import pandas as pd

    if result.analysis.stft.shape != context.X.shape:
        raise InvalidOptionError("the deconvolution and the context describe different tracks")
    d = descriptors(result.masks, context, activations=result.activations, reading=reading,
                    sign=sign, chunk=chunk, audio=audio)
    head = pd.DataFrame({
        "layer": result.layer.name, "feature": np.asarray(result.features, int),
        "dead": np.asarray(result.dead, bool),
        "activation_max": result.activation_max.astype(float),
        "activation_mean": result.activation_mean.astype(float),
        "fraction_active": result.fraction_active.astype(float),
    })
    return pd.concat([head, d], axis=1)


def descriptors(masks: np.ndarray, context: TrackContext, *, activations: np.ndarray | None = None,
                reading: str = "mask", sign: str = "signed", chunk: int = 16,
                audio: np.ndarray | None = None) -> pd.DataFrame:
    """Descriptors of masks in the model input's domain on one track.

    Parameters
    ----------
    masks : np.ndarray, shape (n_features, n_frames, n_bands)
        As :attr:`DeconvResult.masks` (any mask works: an all-ones mask describes the track).
    context : TrackContext
    activations : np.ndarray, shape (n_features, n_units), optional
        Activation over time, for ``temporal_sparsity`` (default: the frame energy of the
        auralisation).
    reading, sign, chunk, audio
        As for :func:`describe`.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`DESCRIPTORS`, ``pitch_profile``, ``onsets_from``.
    """
    import mir_eval
    import pandas as pd
    import scipy.fft

    from .auralise import stft_domain_mask

    ctx = context
    ref = ctx.reference
    n_feat = len(masks)
    if audio is not None and audio.shape != (n_feat, ctx.n):
        raise InvalidOptionError(f"audio must have shape ({n_feat}, {ctx.n}) (model rate); "
                                 f"got {audio.shape}")
    frame_energy = np.zeros((n_feat, ctx.X.shape[1]))
    out: dict[str, np.ndarray] = {k: np.full(n_feat, np.nan) for k in DESCRIPTORS}
    profiles = np.full((n_feat, 12), np.nan)
    P_all = ctx.power
    for c0 in range(0, n_feat, chunk):
        sl = slice(c0, min(n_feat, c0 + chunk))
        M = stft_domain_mask(masks[sl], ctx.analysis, reading=reading, sign=sign)
        M2 = M.astype(np.float32) ** 2                                # (F, bins, frames)
        Pw = M2 * P_all[None]
        spec = Pw.sum(axis=2, dtype=np.float64)                      # (F, bins)
        frame_energy[sl] = Pw.sum(axis=1, dtype=np.float64)
        if ctx.attack_share is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                out["attack_lift"][sl] = np.where(
                    frame_energy[sl].sum(1) > 0, frame_energy[sl][:, ctx.near_onsets].sum(1)
                    / frame_energy[sl].sum(1) / ctx.attack_share, np.nan)
        total = spec.sum(axis=1)
        out["output_energy"][sl] = total
        mmax = np.abs(M).reshape(len(M), -1).max(axis=1).astype(np.float64)
        live = total > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            out["energy_ratio"][sl] = np.where(
                live, total / np.maximum(mmax, 1e-30) ** 2 / ctx.total, 0.0)
            flat = M2.reshape(len(M2), -1)
            ep = (flat @ ctx.p_power.ravel()).astype(np.float64)
            eh = (flat @ ctx.h_power.ravel()).astype(np.float64)
            out["percussive_share"][sl] = np.where(ep + eh > 0, ep / (ep + eh), np.nan)
            out["harmonic_share"][sl] = np.where(ep + eh > 0, eh / (ep + eh), np.nan)
            w = spec / total[:, None]
            cen = w @ ctx.freqs
            out["centroid_hz"][sl] = np.where(live, cen, np.nan)
            out["spread_hz"][sl] = np.where(
                live, np.sqrt(np.maximum((w * (ctx.freqs[None] - cen[:, None]) ** 2).sum(1), 0)), np.nan)
            shares = w @ ctx.bands.T                                   # (F, 3)
        for j, name in enumerate(("low_share", "mid_share", "high_share")):
            out[name][sl] = np.where(live, shares[:, j], np.nan)
        # onsets of the auralisation
        mel = np.matmul(ctx.mel, Pw)                                  # (F, mels, frames)
        for i in range(len(M)):
            k = c0 + i
            if not live[i] or len(ref.onsets) == 0:
                if len(ref.onsets):
                    out["onset_f"][k] = out["onset_precision"][k] = out["onset_recall"][k] = 0.0
                continue
            est = _onsets(mel[i], ctx.sr, ctx.hop, ctx.grid["n_fft"])
            f, p, r = (mir_eval.onset.f_measure(ref.onsets, est, window=ONSET_WINDOW)
                       if len(est) else (0.0, 0.0, 0.0))
            out["onset_f"][k], out["onset_precision"][k], out["onset_recall"][k] = f, p, r
        # the sound itself: pitch classes and separation
        a = ctx.istft(M * ctx.X[None]) if audio is None else audio[sl]   # (F, n)
        n_fr = max(1, len(a[0]) // CHROMA_FFT)
        frames = a[:, :n_fr * CHROMA_FFT].reshape(len(a), n_fr, -1) if len(a[0]) >= CHROMA_FFT else \
            np.pad(a, ((0, 0), (0, CHROMA_FFT - len(a[0]))))[:, None]
        mean_pow = (np.abs(scipy.fft.rfft(frames * np.hanning(CHROMA_FFT), axis=2, workers=FFT_WORKERS))
                    ** 2).mean(axis=1)
        chroma = mean_pow @ ctx.chroma.T                               # (F, 12)
        csum = chroma.sum(axis=1, keepdims=True)
        prof = np.where(csum > 0, chroma / np.where(csum > 0, csum, 1), np.nan)
        profiles[sl] = prof
        if ref.pitch_classes is not None:
            for i in range(len(M)):
                if np.isfinite(prof[i]).all() and prof[i].std() > 0:
                    out["pitch_correlation"][c0 + i] = float(np.corrcoef(prof[i], ref.pitch_classes)[0, 1])
        A = scipy.fft.rfft(a.astype(np.float64), ctx.n_fft_sdr, axis=1, workers=FFT_WORKERS)
        for name in ("percussive", "harmonic"):
            if ctx.refs[name] is not None:
                out[f"sdr_{name}"][sl] = fast_sdr(a, ctx.refs[name], ctx.n_fft_sdr, spectra=A)
    act = np.sqrt(frame_energy) if activations is None else np.asarray(activations, np.float64)
    out["temporal_sparsity"][:] = _hoyer(np.maximum(act, 0))
    df = pd.DataFrame(out)
    df["pitch_profile"] = [list(map(float, p)) for p in profiles]
    df["onsets_from"] = ref.onsets_from
    return df


# =====================================================================================
# over tracks: aggregation, invariance, labels
# =====================================================================================
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


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def label(row: dict[str, Any] | Any, thresholds: dict[str, float] | None = None) -> tuple[str, list[str]]:
    """A short label with its evidence, and the list of tags, from a feature's descriptors.

    Rules, in this order (thresholds from :data:`THRESHOLDS`):

    * ``dead``: never active;
    * ``onset detector``: ``onset_f >= 0.7`` and ``attack_lift >= 1.2``;
    * ``low band / bass``: ``low_share >= 0.6`` (energy below 200 Hz);
      ``high band``: ``high_share >= 0.6`` (above 2 kHz);
    * ``percussive``: ``percussive_share >= 0.7``; ``harmonic``: ``harmonic_share >= 0.7``;
    * ``follows the notes``: ``pitch_correlation >= 0.7``;
    * ``key-``, ``chord-``, ``instrument-invariant``: invariance >= 0.8;
      ``...-specific``: invariance <= 0.4 (only where the probe set measured it);
    * ``texture``: none of the detector/band/part/pitch tags and ``temporal_sparsity < 0.35``;
    * otherwise ``unspecific``.

    Returns
    -------
    (str, list of str)
        E.g. ``("onset detector: F = 0.83; percussive: 88 % of energy in the percussive part",
        ["onset detector", "percussive"])``.
    """
    t = {**THRESHOLDS, **(thresholds or {})}
    if not isinstance(row, dict):
        row = dict(row._asdict()) if hasattr(row, "_asdict") else dict(row)

    def get(k: str) -> Any:
        return row.get(k, float("nan"))

    def val(k: str) -> float:
        v = get(k)
        return float(v) if v is not None else float("nan")

    if get("dead") is True or (isinstance(get("dead"), np.bool_) and get("dead")):
        return "dead: never active", ["dead"]
    parts: list[tuple[str, str]] = []
    if val("onset_f") >= t["onset_f"] and val("attack_lift") >= t["attack_lift"]:
        parts.append(("onset detector", f"onset detector: F = {val('onset_f'):.2f}, "
                                        f"{val('attack_lift'):.1f}x the energy at onsets"))
    if val("low_share") >= t["band_share"]:
        parts.append(("low band", f"low band / bass: {_pct(val('low_share'))} of energy "
                                  f"below {LOW_HZ:.0f} Hz"))
    if val("high_share") >= t["band_share"]:
        parts.append(("high band", f"high band: {_pct(val('high_share'))} of energy "
                                   f"above {HIGH_HZ / 1000:g} kHz"))
    if val("percussive_share") >= t["percussive_share"]:
        parts.append(("percussive", f"percussive: {_pct(val('percussive_share'))} of energy "
                                    "in the percussive part"))
    if val("harmonic_share") >= t["harmonic_share"]:
        parts.append(("harmonic", f"harmonic: {_pct(val('harmonic_share'))} of energy "
                                  "in the harmonic part"))
    if val("pitch_correlation") >= t["pitch_correlation"]:
        parts.append(("follows the notes",
                      f"follows the notes: pitch-class r = {val('pitch_correlation'):.2f}"))
    main = bool(parts)
    for factor in ("key", "chord", "instrument"):
        v = val(f"invariance_{factor}")
        if v >= t["invariant"]:
            parts.append((f"{factor}-invariant", f"{factor}-invariant ({v:.2f})"))
        elif v <= t["specific"]:
            parts.append((f"{factor}-specific", f"{factor}-specific (invariance {v:.2f})"))
    if not main:
        s = val("temporal_sparsity")
        if s < t["texture_sparsity"]:
            parts.insert(0, ("texture", f"texture: active throughout (sparsity {s:.2f}), "
                                        f"passes {_pct(val('energy_ratio'))} of the track"))
        else:
            parts.insert(0, ("unspecific", f"unspecific: sparsity {s:.2f}, "
                                           f"passes {_pct(val('energy_ratio'))} of the track"))
    return "; ".join(p[1] for p in parts), [p[0] for p in parts]


def add_labels(df: pd.DataFrame, thresholds: dict[str, float] | None = None) -> pd.DataFrame:
    """Add ``label`` (text with evidence) and ``tags`` (list) columns to a descriptor table."""
    labels = [label(r, thresholds) for r in df.to_dict("records")]
    df = df.copy()
    df["label"] = [lab for lab, _ in labels]
    df["tags"] = [tags for _, tags in labels]
    df["primary"] = [tags[0] for _, tags in labels]
    return df


# =====================================================================================
# the whole study
# =====================================================================================
@dataclass
class AnalysisResult:
    """Every feature of the analysed layers, described.

    Attributes
    ----------
    features : pandas.DataFrame
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

    features: Any
    per_track: Any
    tracks: list[dict]
    settings: dict = field(default_factory=dict)
    audio: dict = field(default_factory=dict, repr=False)


def _as_tracks(tracks: Iterable[Any] | None, sr: int
               ) -> list[tuple[str, np.ndarray, int, Reference | None, dict]]:
    from . import audio as audio_mod
    from .probes import Probe, probe_set

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


def analyse(model: FrozenModel, tracks: Iterable[Any] | None = None, *, layers: Any = "all",
            features: Any = None, method: str = "deconvnet", target: str = "map",
            reading: str = "mask", sign: str = "signed", precision: str = "float32",
            probe_sr: int = 22050, progress: bool | Callable[[int, int], None] = False,
            thresholds: dict[str, float] | None = None) -> AnalysisResult:
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
    method, target, reading, sign, precision
        As for :func:`mirdeconv.auralise`.
    probe_sr : int
        Sample rate of the probe set when ``tracks`` is None.
    progress : bool or callable
        True for a tqdm bar over (track, layer) steps, or ``callable(done, total)``.
    thresholds : dict, optional
        Overrides of :data:`THRESHOLDS`.

    Returns
    -------
    AnalysisResult
    """
    import pandas as pd

    from .audio import validate
    from .engine import deconvolve

    names = [li.name for li in model.layers] if layers in ("all", None) else \
        [model.layer(x).name for x in ([layers] if isinstance(layers, str | int) else layers)]
    items = _as_tracks(tracks, probe_sr)
    total = len(items) * len(names)
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="analyse", unit="step")
    done = 0
    frames, infos, kept = [], [], {}
    try:
        for name, y, sr, ref, factors in items:
            y = validate(y, sr)
            kept[name] = (y, sr)
            an = model.representation.analyse(y, sr)
            if ref is None:
                ref = Reference.detect(y, sr)
            ctx = TrackContext(an, ref)
            infos.append({"track": name, "duration": len(y) / sr, "onsets_from": ref.onsets_from,
                          "n_onsets": len(ref.onsets), **factors})
            for layer in names:
                res = deconvolve(model, analysis=an, layer=layer, features=features, method=method,
                                 target=target, precision=precision)
                d = describe(res, ctx, reading=reading, sign=sign)
                d.insert(0, "track", name)
                for k, v in factors.items():
                    d[k] = v
                frames.append(d)
                done += 1
                if bar is not None:
                    bar.update(1)
                elif callable(progress):
                    progress(done, total)
    finally:
        if bar is not None:
            bar.close()
    per_track = pd.concat(frames, ignore_index=True)
    feats = aggregate(per_track)
    inv = probe_invariance(per_track)
    if not inv.empty:
        feats = feats.merge(inv, on=["layer", "feature"], how="left")
    for col in INVARIANCES:
        if col not in feats:
            feats[col] = np.nan
    feats = add_labels(feats, thresholds)
    settings = {"model": model.name, "layers": names, "method": method, "target": target,
                "reading": reading, "sign": sign, "precision": precision,
                "thresholds": {**THRESHOLDS, **(thresholds or {})},
                "probe_set": tracks is None}
    return AnalysisResult(features=feats, per_track=per_track, tracks=infos, settings=settings,
                          audio=kept)


def typical_features(features: pd.DataFrame, layer: str, n: int = 3) -> list[tuple[str, int]]:
    """For each of the ``n`` most common primary labels of a layer, its most typical feature:
    the one with the largest output energy among those carrying that label.

    Returns
    -------
    list of (label, feature index)
    """
    g = features[features["layer"] == layer]
    out = []
    for lab in g["primary"].value_counts().index[:n]:
        if lab == "dead":
            continue
        sub = g[g["primary"] == lab]
        out.append((lab, int(sub.sort_values("output_energy", ascending=False)["feature"].iloc[0])))
    return out
