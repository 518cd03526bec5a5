"""Descriptors of every feature of one deconvolution (one layer, one track).

All computed from the feature's auralisation at the model's sample rate: its STFT is
``Y = M * X``, the feature's mask on the model's STFT grid
(:func:`mirdeconv.auralisation.stft_domain_mask`, with the same reading and sign as the
sound) times the track's complex STFT ``X``; its audio is ``istft(Y)``.  See the package's
documentation for what each column measures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..auralisation import signals, stft_domain_mask, stft_peak
from ..engine import DeconvResult
from ..errors import InvalidOptionError
from ..inversion import BLOCK_FRAMES
from ..options import SoundOptions
from ..representations import Waveform
from .context import CHROMA_FFT, FFT_WORKERS, ONSET_WINDOW, TrackContext, fast_sdr

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["DESCRIPTORS", "describe", "describe_masks"]

#: Descriptor columns per feature (besides ``pitch_profile``), in report order.
DESCRIPTORS = (
    "onset_f", "onset_precision", "onset_recall", "attack_lift", "percussive_share", "harmonic_share",
    "centroid_hz", "spread_hz", "low_share", "mid_share", "high_share", "pitch_correlation",
    "temporal_sparsity", "energy_ratio", "sdr_percussive", "sdr_harmonic", "output_energy",
)


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


def describe(result: DeconvResult, context: TrackContext, *, sound: SoundOptions = SoundOptions(),
             chunk: int = 16, audio: np.ndarray | None = None) -> pd.DataFrame:
    """Descriptors of every feature of one deconvolution (one layer, one track).

    Parameters
    ----------
    result : DeconvResult
        From :func:`mirdeconv.deconvolve`.
    context : TrackContext
        The same track's precomputation (``result.track`` must be its track).
    sound : SoundOptions
        How the masks become sound (its ``reading`` and ``sign``).
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

    if result.track.stft.shape != context.X.shape:
        raise InvalidOptionError("the deconvolution and the context describe different tracks")
    d = describe_masks(result.masks, context, activations=result.activations, sound=sound,
                    chunk=chunk, audio=audio)
    head = pd.DataFrame({
        "layer": result.layer.name, "feature": np.asarray(result.features, int),
        "dead": np.asarray(result.dead, bool),
        "activation_max": result.activation_max.astype(float),
        "activation_mean": result.activation_mean.astype(float),
        "fraction_active": result.fraction_active.astype(float),
    })
    return pd.concat([head, d], axis=1)


def describe_masks(masks: np.ndarray, context: TrackContext, *, activations: np.ndarray | None = None,
                sound: SoundOptions = SoundOptions(), chunk: int = 16,
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
    sound, chunk, audio
        As for :func:`describe`.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`DESCRIPTORS`, ``pitch_profile``, ``onsets_from``.
    """
    import pandas as pd

    ctx = context
    n_feat = len(masks)
    if audio is not None and audio.shape != (n_feat, ctx.n):
        raise InvalidOptionError(f"audio must have shape ({n_feat}, {ctx.n}) (model rate); "
                                 f"got {audio.shape}")
    waveform = isinstance(ctx.track.representation, Waveform)
    peak = stft_peak(ctx.track) if sound.reading == "magnitude" and not waveform else None
    frame_energy = np.zeros((n_feat, ctx.X.shape[1]))
    out: dict[str, np.ndarray] = {k: np.full(n_feat, np.nan) for k in DESCRIPTORS}
    profiles = np.full((n_feat, 12), np.nan)
    for c0 in range(0, n_feat, chunk):
        sl = slice(c0, min(n_feat, c0 + chunk))

        def mask_of(f0: int, f1: int, sl: slice = sl) -> np.ndarray:
            return stft_domain_mask(masks[sl, f0:f1], ctx.track, sound, frames=slice(f0, f1),
                                    peak=peak)

        if waveform:
            sums, a = _waveform_sums(masks[sl], ctx, sound)
        else:
            sums, a = _mask_sums(mask_of, sl.stop - sl.start, ctx), None
        frame_energy[sl] = sums.frame_energy
        live = _energy(sums, ctx, out, sl)
        _onset_scores(sums.mel, live, ctx, out, c0)
        if audio is not None:
            a = audio[sl]
        elif a is None:
            a = ctx.istft_masks(mask_of, sl.stop - sl.start)          # (F, n)
        profiles[sl] = _pitch(a, ctx, out, c0)
        _separation(a, ctx, out, sl)
    act = np.sqrt(frame_energy) if activations is None else np.asarray(activations, np.float64)
    out["temporal_sparsity"][:] = _hoyer(np.maximum(act, 0))
    df = pd.DataFrame(out)
    df["pitch_profile"] = [list(map(float, p)) for p in profiles]
    df["onsets_from"] = ctx.reference.onsets_from
    return df


@dataclass
class _Sums:
    """What the descriptors need of the features' power spectrograms ``Pw = |M|^2 |X|^2``,
    summed block by block: per bin ``spec`` and per frame ``frame_energy`` (float64), the
    mel spectrograms for the onsets (F, mels, frames), the percussive and harmonic energies,
    and the masks' peak (``mmax``; a waveform model's ``cover`` instead)."""

    spec: np.ndarray
    frame_energy: np.ndarray
    mel: np.ndarray
    ep: np.ndarray
    eh: np.ndarray
    mmax: np.ndarray | None = None
    cover: np.ndarray | None = None

    @classmethod
    def zeros(cls, n_feat: int, ctx: TrackContext, waveform: bool) -> _Sums:
        bins, n_fr = ctx.X.shape
        z = np.zeros(n_feat)
        return cls(np.zeros((n_feat, bins)), np.zeros((n_feat, n_fr)),
                   np.zeros((n_feat, len(ctx.mel), n_fr), np.float32), z.copy(), z.copy(),
                   None if waveform else z.copy(), z.copy() if waveform else None)

    def add(self, M2: np.ndarray, Pw: np.ndarray, P: np.ndarray, ctx: TrackContext, f0: int,
            f1: int) -> None:
        """Frames f0 .. f1 - 1: ``M2 = |M|^2`` and ``Pw`` (F, bins, f1 - f0), the track's
        ``P = |X|^2`` (bins, f1 - f0)."""
        self.spec += Pw.sum(axis=2, dtype=np.float64)
        self.frame_energy[:, f0:f1] = Pw.sum(axis=1, dtype=np.float64)
        self.mel[:, :, f0:f1] = np.matmul(ctx.mel, Pw)
        for acc, part in zip((self.ep, self.eh), ctx.hpss_power(f0, f1, P)):
            acc += np.tensordot(M2, part, axes=([1, 2], [0, 1]))


def _mask_sums(mask_of: Any, n_feat: int, ctx: TrackContext) -> _Sums:
    """:class:`_Sums` of masks on the track's STFT grid, :data:`BLOCK_FRAMES` frames at a
    time (``mask_of(f0, f1)``: the masks of those frames, (F, bins, f1 - f0))."""
    n_fr = ctx.X.shape[1]
    sums = _Sums.zeros(n_feat, ctx, waveform=False)
    for f0 in range(0, n_fr, BLOCK_FRAMES):
        f1 = min(n_fr, f0 + BLOCK_FRAMES)
        M = mask_of(f0, f1)
        M2 = np.square(np.abs(M), dtype=np.float32)
        P = ctx.power(f0, f1)
        sums.add(M2, M2 * P[None], P, ctx, f0, f1)
        np.maximum(sums.mmax, np.abs(M).reshape(len(M), -1).max(axis=1, initial=0.0),
                   out=sums.mmax)
    return sums


def _waveform_sums(masks: np.ndarray, ctx: TrackContext, sound: SoundOptions
                   ) -> tuple[_Sums, np.ndarray]:
    """A waveform model's masks are signals: :class:`_Sums` of their power spectrograms
    (straight from their STFTs; ``M2 = Pw / |X|^2`` where the track sounds, 0 elsewhere,
    never an overflowing ratio), and the signals (F, n_samples)."""
    a = signals(masks, ctx.track, sound)
    Pw = np.square(np.abs(ctx.track.representation.stft(a)), dtype=np.float32)
    P = ctx.power(0, ctx.X.shape[1])
    floor = 1e-10 * float(P.max(initial=0.0))
    M2 = np.where(P[None] > floor, Pw / np.maximum(P[None], floor), 0.0).astype(np.float32)
    sums = _Sums.zeros(len(masks), ctx, waveform=True)
    sums.add(M2, Pw, P, ctx, 0, ctx.X.shape[1])
    sums.cover += np.sqrt(Pw * P[None]).sum(axis=(1, 2), dtype=np.float64)
    return sums, a


def _energy(s: _Sums, ctx: TrackContext, out: dict[str, np.ndarray], sl: slice) -> np.ndarray:
    """Output energy, energy ratio, attack lift, percussive/harmonic shares, centroid, spread
    and band shares of one chunk; returns which features make any sound."""
    total = s.spec.sum(axis=1)
    live = total > 0
    out["output_energy"][sl] = total
    with np.errstate(invalid="ignore", divide="ignore"):
        if ctx.attack_share is not None:
            fe = s.frame_energy.sum(1)
            out["attack_lift"][sl] = np.where(
                fe > 0, s.frame_energy[:, ctx.near_onsets].sum(1) / fe / ctx.attack_share, np.nan)
        if s.mmax is None:   # a waveform model: how much of the track's spectrum its sound covers
            out["energy_ratio"][sl] = np.where(live, s.cover ** 2 / np.maximum(total, 1e-300)
                                               / ctx.total, 0.0)
        else:
            out["energy_ratio"][sl] = np.where(
                live, total / np.maximum(s.mmax, 1e-30) ** 2 / ctx.total, 0.0)
        ep, eh = s.ep, s.eh
        out["percussive_share"][sl] = np.where(ep + eh > 0, ep / (ep + eh), np.nan)
        out["harmonic_share"][sl] = np.where(ep + eh > 0, eh / (ep + eh), np.nan)
        w = s.spec / total[:, None]
        cen = w @ ctx.freqs
        out["centroid_hz"][sl] = np.where(live, cen, np.nan)
        out["spread_hz"][sl] = np.where(
            live, np.sqrt(np.maximum((w * (ctx.freqs[None] - cen[:, None]) ** 2).sum(1), 0)), np.nan)
        shares = w @ ctx.bands.T                                      # (F, 3)
    for j, name in enumerate(("low_share", "mid_share", "high_share")):
        out[name][sl] = np.where(live, shares[:, j], np.nan)
    return live


def _onset_scores(mel: np.ndarray, live: np.ndarray, ctx: TrackContext,
                  out: dict[str, np.ndarray], c0: int) -> None:
    """The auralisations' onsets (librosa's detector on their mel power spectrograms, (F,
    mels, frames)) against the reference onsets (mir_eval, 50 ms)."""
    import mir_eval

    ref = ctx.reference.onsets
    if len(ref) == 0:
        return
    for i in range(len(mel)):
        k = c0 + i
        if not live[i]:
            out["onset_f"][k] = out["onset_precision"][k] = out["onset_recall"][k] = 0.0
            continue
        est = _onsets(mel[i], ctx.sr, ctx.hop, ctx.grid["n_fft"])
        f, p, r = (mir_eval.onset.f_measure(ref, est, window=ONSET_WINDOW)
                   if len(est) else (0.0, 0.0, 0.0))
        out["onset_f"][k], out["onset_precision"][k], out["onset_recall"][k] = f, p, r


#: Frames of the pitch-class profile's FFTs computed at once.
CHROMA_BLOCK = 256


def _pitch(a: np.ndarray, ctx: TrackContext, out: dict[str, np.ndarray], c0: int) -> np.ndarray:
    """Pitch-class profiles (F, 12) of the sounds, and their correlation with the notes."""
    import scipy.fft

    n_fr = max(1, len(a[0]) // CHROMA_FFT)
    frames = a[:, :n_fr * CHROMA_FFT].reshape(len(a), n_fr, -1) if len(a[0]) >= CHROMA_FFT else \
        np.pad(a, ((0, 0), (0, CHROMA_FFT - len(a[0]))))[:, None]
    window = np.hanning(CHROMA_FFT)
    mean_pow = np.zeros((len(a), CHROMA_FFT // 2 + 1))
    for f0 in range(0, n_fr, CHROMA_BLOCK):          # a few hundred frames' FFTs at a time
        spec = scipy.fft.rfft(frames[:, f0:f0 + CHROMA_BLOCK] * window, axis=2,
                              workers=FFT_WORKERS)
        mean_pow += (np.abs(spec) ** 2).sum(axis=1)
    mean_pow /= n_fr
    chroma = mean_pow @ ctx.chroma.T                               # (F, 12)
    csum = chroma.sum(axis=1, keepdims=True)
    prof = np.where(csum > 0, chroma / np.where(csum > 0, csum, 1), np.nan)
    notes = ctx.reference.pitch_classes
    if notes is not None:
        for i in range(len(a)):
            if np.isfinite(prof[i]).all() and prof[i].std() > 0:
                out["pitch_correlation"][c0 + i] = float(np.corrcoef(prof[i], notes)[0, 1])
    return prof


def _separation(a: np.ndarray, ctx: TrackContext, out: dict[str, np.ndarray], sl: slice) -> None:
    """SDRs of the sounds against the track's percussive and harmonic parts."""
    for name in ("percussive", "harmonic"):
        if ctx.refs[name] is not None:
            out[f"sdr_{name}"][sl] = fast_sdr(a, ctx.refs[name])
