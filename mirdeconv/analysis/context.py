"""Everything the descriptors need about one track, computed once for all its features.

Memory is bounded by blocks of frames, not by the track: the STFT is read block by block, and
what is as long as the track (the HPSS mask, the separation references, the sounds of the
features being described) is held as the track's STFT is, in a memory map when that was
spilled (:func:`mirdeconv.engine.memory.spill_track`).  The reference onsets of a track
without annotations are found block by block too (:func:`detect_onsets`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..auralisation import stft_window
from ..engine.memory import read_block, release_pages, spill, track_zeros, zeros_held_as
from ..inversion import BLOCK_FRAMES, invert_blocks
from ..representations import TrackInput
from .references import Reference

__all__ = ["LOW_HZ", "HIGH_HZ", "ONSET_WINDOW", "SDR_FILTER", "SDR_BLOCK", "ATTACK_WINDOW",
           "FFT_WORKERS", "CHROMA_FFT", "HPSS_KERNEL", "HPSS_MARGIN", "ONSET_BLOCK", "TrackContext",
           "detect_onsets", "track_reference", "fast_sdr", "lag_correlation"]

LOW_HZ = 200.0
HIGH_HZ = 2000.0
#: mir_eval's onset tolerance in seconds.
ONSET_WINDOW = 0.05
#: Length of bss_eval's distortion filter in samples (mir_eval's default).
SDR_FILTER = 512
#: Samples of the estimates correlated with the reference at once.
SDR_BLOCK = 1 << 18
#: Half-width in seconds of the attack window of ``attack_lift``.
ATTACK_WINDOW = 0.025
#: Threads of the descriptors' long FFTs.
FFT_WORKERS = 2
#: FFT size of the pitch-class profile.
CHROMA_FFT = 4096
#: librosa's HPSS median-filter length (its default), in frames and in bins.
HPSS_KERNEL = 31
#: Frames read on each side of a block for its HPSS: half the filter.
HPSS_MARGIN = HPSS_KERNEL // 2
#: Frames of the onset detector's mel spectrogram computed at once (:func:`detect_onsets`).
ONSET_BLOCK = 4096
#: librosa's onset detector's STFT (its defaults), in samples.
ONSET_FFT, ONSET_HOP = 2048, 512


def detect_onsets(y: np.ndarray, sr: int, budget: int | None = None) -> np.ndarray:
    """``librosa.onset.onset_detect(y=y, sr=sr, units="time")``, its mel spectrogram computed
    :data:`ONSET_BLOCK` frames at a time: the same STFT frames (each from its own stretch of
    the zero-padded signal), the same dB scale (clipped 80 dB below the track's loudest bin)
    and spectral flux, so the same onsets; a whole-track call holds the track's STFT (1.3 GB
    as complex64 for 30 minutes at 44.1 kHz).

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono audio (a memory map is read block by block).
    sr : int
        Its sample rate in Hz.
    budget : int, optional
        Bytes (:attr:`DeconvOptions.budget`, its default if None): the dB spectrogram (128 mel
        bands x frames, float32) is a memory map when it passes ``budget / TRACK_SHARE``.

    Returns
    -------
    np.ndarray, float64, shape (n_onsets,)
        Onset times in seconds.
    """
    import librosa

    from ..options import DeconvOptions

    n = len(y)
    n_frames = 1 + n // ONSET_HOP                    # centred frames (padded n_fft / 2 each side)
    if n_frames <= ONSET_BLOCK or n < ONSET_FFT:     # one block: librosa itself
        return librosa.onset.onset_detect(y=np.asarray(y, np.float32), sr=int(sr), units="time")
    half = ONSET_FFT // 2
    db = track_zeros((128, n_frames), np.float32, DeconvOptions().budget if budget is None else budget)
    top = -np.inf
    for f0 in range(0, n_frames, ONSET_BLOCK):
        f1 = min(n_frames, f0 + ONSET_BLOCK)
        start, stop = f0 * ONSET_HOP - half, (f1 - 1) * ONSET_HOP + ONSET_FFT - half
        seg = np.zeros(stop - start, np.float32)
        lo, hi = max(0, start), min(n, stop)
        seg[lo - start:hi - start] = y[lo:hi]
        mel = np.abs(librosa.feature.melspectrogram(y=seg, sr=int(sr), n_fft=ONSET_FFT,
                                                    hop_length=ONSET_HOP, center=False))
        block = librosa.power_to_db(mel, top_db=None)              # ref 1, amin 1e-10
        top = max(top, float(block.max()))
        db[:, f0:f1] = block
    floor = np.float32(top) - 80.0                                 # power_to_db's top_db
    env = np.zeros(n_frames, np.float32)
    lag, pad = 1, 1 + ONSET_FFT // (2 * ONSET_HOP)                 # onset_strength's shift
    for f0 in range(0, n_frames - lag, ONSET_BLOCK):
        f1 = min(n_frames - lag, f0 + ONSET_BLOCK)                 # flux k: frames k + 1, k
        S = np.maximum(np.asarray(db[:, f0:f1 + lag]), floor)
        flux = librosa.util.sync(np.maximum(0.0, S[:, lag:] - S[:, :-lag]), [slice(None)],
                                 aggregate=np.mean, pad=True, axis=-2)[0]
        stop = min(n_frames, f1 + pad)
        env[f0 + pad:stop] = flux[:stop - f0 - pad]
    release_pages(db)
    return librosa.onset.onset_detect(onset_envelope=env, sr=int(sr), hop_length=ONSET_HOP,
                                      units="time")


def track_reference(path: str | None, y: np.ndarray, sr: int, budget: int | None = None
                    ) -> Reference:
    """:meth:`Reference.for_track` with the onsets detected block by block
    (:func:`detect_onsets`): ``TRACK.jams`` beside the audio when there is one.

    Parameters
    ----------
    path : str or PathLike or None
        The track's file.
    y : np.ndarray, shape (n_samples,)
        Its audio.
    sr : int
        Its sample rate in Hz.
    budget : int, optional
        As for :func:`detect_onsets`.

    Returns
    -------
    Reference
    """
    from pathlib import Path

    if path is not None and Path(path).with_suffix(".jams").is_file():
        return Reference.for_track(path, y, sr)
    return Reference(np.asarray(detect_onsets(y, sr, budget), float), None, "librosa")


class TrackContext:
    """Everything :func:`describe` needs about one track, computed once for all features.

    Parameters
    ----------
    track : TrackInput
        The track through the model's representation.
    reference : Reference, optional
        Onsets and notes; default: onsets detected on the track by librosa.
    """

    def __init__(self, track: TrackInput, reference: Reference | None = None) -> None:
        import librosa
        import scipy.linalg

        rep = track.representation
        self.track = track
        self.reference = reference if reference is not None else track_reference(
            None, track.audio, track.sr)
        self.sr = int(track.sr)
        self.hop = rep.hop_length
        self.grid = {"n_fft": rep.n_fft, "hop_length": rep.hop_length, "win_length": rep.win_length}
        self.window = stft_window(rep, self.grid)
        self.center = rep.center
        self.n = len(track.audio)
        X = track.stft.astype(np.complex64, copy=False)
        self.X = X
        n_fr = X.shape[1]
        freqs = librosa.fft_frequencies(sr=self.sr, n_fft=rep.n_fft)
        self.freqs = freqs
        self.bands = np.stack([freqs < LOW_HZ, (freqs >= LOW_HZ) & (freqs < HIGH_HZ),
                               freqs >= HIGH_HZ]).astype(np.float64)
        self.mel = librosa.filters.mel(sr=self.sr, n_fft=rep.n_fft,
                                       n_mels=min(128, max(32, rep.n_fft // 8))).astype(np.float32)
        self.chroma = librosa.filters.chroma(sr=self.sr, n_fft=CHROMA_FFT)
        t = librosa.frames_to_time(np.arange(n_fr), sr=self.sr, hop_length=self.hop)
        near = np.zeros(n_fr, bool)
        for o in self.reference.onsets:
            near |= np.abs(t - o) <= ATTACK_WINDOW
        self.near_onsets = near
        frame_power = np.concatenate([self.power(a, min(n_fr, a + BLOCK_FRAMES)).sum(0, np.float64)
                                      for a in range(0, n_fr, BLOCK_FRAMES)] or [np.zeros(0)])
        self.total = float(frame_power.sum()) or 1.0
        share = float(frame_power[near].sum()) / self.total
        self.attack_share = share if share > 0 else None
        # the percussive HPSS mask (block by block; the harmonic is its complement) and the
        # parts' signals, the separation references with their autocorrelations (bss_eval's G)
        self.p_mask = zeros_held_as(X, np.float32)     # (a memory map if the STFT is spilled)
        # (the signals in a memory map: a 30-minute track's are 2 x 115 MB, read only by
        # fast_sdr, block by block)
        parts = self.istft_masks(self._hpss, 2)
        lus = {name: scipy.linalg.lu_factor(scipy.linalg.toeplitz(lag_correlation(r[None], r)[0]))
               for name, r in zip(("percussive", "harmonic"), parts)
               if _any(r)}                         # (a silent part has no reference)
        if not isinstance(parts, np.memmap):
            parts = spill(parts)
        self.refs = {name: (parts[i], lus[name]) if name in lus else None
                     for i, name in enumerate(("percussive", "harmonic"))}

    def power(self, f0: int, f1: int) -> np.ndarray:
        """``|X|^2`` of frames f0 .. f1 - 1, float32 (bins, f1 - f0)."""
        return np.square(np.abs(read_block(self.X, np.s_[:, f0:f1])), dtype=np.float32)

    def hpss_power(self, f0: int, f1: int, power: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """The percussive and harmonic parts of ``|X|^2`` of frames f0 .. f1 - 1:
        ``(mp^2 |X|^2, mh^2 |X|^2)``, float32 (bins, f1 - f0) each, with librosa's HPSS soft
        masks ``mp``, ``mh`` (kept as one: ``mh = 1 - mp``).  ``power``:
        :meth:`power` of those frames, when the caller has it."""
        q = read_block(self.p_mask, np.s_[:, f0:f1])
        P = self.power(f0, f1) if power is None else power
        return q ** 2 * P, (1 - q) ** 2 * P

    def _hpss(self, f0: int, f1: int) -> np.ndarray:
        """librosa's HPSS soft masks of frames f0 .. f1 - 1 (percussive, harmonic), from the
        magnitudes of those frames and :data:`HPSS_MARGIN` more on each side: the median
        filters see what they see on the whole track, so the masks are its masks.  Keeps
        the percussive one in :attr:`p_mask` on the way (with librosa's default margins the
        two sum to 1: where both medians are 0 it splits them, 0.5 each)."""
        import librosa

        n_fr = self.X.shape[1]
        a, b = max(0, f0 - HPSS_MARGIN), min(n_fr, f1 + HPSS_MARGIN)
        mh, mp = librosa.decompose.hpss(np.abs(read_block(self.X, np.s_[:, a:b])),
                                        kernel_size=HPSS_KERNEL, mask=True)
        mh, mp = mh[:, f0 - a:f1 - a], mp[:, f0 - a:f1 - a]
        self.p_mask[:, f0:f1] = mp
        release_pages(self.p_mask)
        return np.stack([mp, mh])

    def istft(self, Y: np.ndarray) -> np.ndarray:
        """(F, bins, frames) -> (F, n_samples) at the model's rate (block by block)."""
        return invert_blocks(Y.shape[2], self.n, self.grid, self.window, self.center,
                             lambda a, b: Y[:, :, a:b], None, None)[0]

    def istft_masks(self, mask_of: Callable[[int, int], np.ndarray], count: int | None = None
                    ) -> np.ndarray:
        """The sounds of masks on the track's STFT, ``istft(M * X)``, (F, n_samples) at the
        model's rate; ``mask_of(f0, f1)`` gives the masks (F, bins, f1 - f0) of frames
        f0 .. f1 - 1, one block at a time.  ``count``: F, when known: the sounds are then held
        as the track's STFT is (a memory map when it was spilled)."""
        out = None if count is None else zeros_held_as(self.X, np.float32, (count, self.n))
        return invert_blocks(self.X.shape[1], self.n, self.grid, self.window, self.center,
                             mask_of, lambda a, b: read_block(self.X, np.s_[:, a:b]), None,
                             out=out)[0]


def _any(signal: np.ndarray) -> bool:
    """``np.any(signal)``, block by block (a memory map's pages given back)."""
    return any(bool(np.any(signal[a:a + SDR_BLOCK])) for a in range(0, len(signal), SDR_BLOCK))


def lag_correlation(estimates: np.ndarray, reference: np.ndarray, n_lags: int = SDR_FILTER
                    ) -> np.ndarray:
    """``D[f, k] = sum_n reference[n] * estimates[f, n + k]`` for lags ``k < n_lags``,
    in blocks of :data:`SDR_BLOCK` samples (float64, FFTs of the block's size).

    Returns
    -------
    np.ndarray, float64, shape (n_estimates, n_lags)
    """
    import scipy.fft

    F, n = estimates.shape
    D = np.zeros((F, n_lags))
    size = int(scipy.fft.next_fast_len(SDR_BLOCK + 2 * n_lags, real=True))
    lags = np.arange(n_lags)
    for a in range(0, n, SDR_BLOCK):
        b = min(n, a + SDR_BLOCK)
        lo = max(0, a - n_lags + 1)               # the reference from n_lags - 1 before
        RS = scipy.fft.rfft(np.asarray(reference[lo:b], np.float64), size)
        EB = scipy.fft.rfft(np.asarray(estimates[:, a:b], np.float64), size, axis=1,
                            workers=FFT_WORKERS)
        xc = scipy.fft.irfft(RS[None] * np.conj(EB), size, axis=1, workers=FFT_WORKERS)
        # xc[s] = sum_i e[a + i] r[lo + i + s]; lag k is s = a - lo - k (negative at the
        # track's start: the padding past the reference's end is zero, so no wrap-around)
        D += xc[:, (a - lo - lags) % size]
    return D


def fast_sdr(estimates: np.ndarray, reference: tuple[np.ndarray, Any]) -> np.ndarray:
    """bss_eval's SDR of each estimate against one reference source, in closed form.

    With a single reference source, ``mir_eval.separation.bss_eval_sources`` projects the
    estimate ``e`` onto the span of the reference delayed by 0..511 samples (``G c = D``,
    ``G`` the reference's autocorrelation Toeplitz matrix, ``D`` its cross-correlation with
    the estimate) and returns ``10 log10(|P e|^2 / |e - P e|^2)``; ``|P e|^2 = D . c``.

    Parameters
    ----------
    estimates : np.ndarray, shape (n_estimates, n_samples)
    reference : (np.ndarray, lu)
        The reference signal (n_samples,) and the LU factors of its ``G``
        (see :class:`TrackContext`).  The correlations go block by block
        (:func:`lag_correlation`), in memory bounded by the block.

    Returns
    -------
    np.ndarray, shape (n_estimates,)
        dB; NaN for a silent estimate.
    """
    import scipy.linalg

    r, lu = reference
    D = lag_correlation(estimates, r)                                           # (F, flen)
    release_pages(r)                                              # (spilled: back to the file)
    C = scipy.linalg.lu_solve(lu, D.T)                                          # (flen, F)
    proj = np.einsum("fk,kf->f", D, C)
    energy = sum(np.einsum("ft,ft->f", e, e, dtype=np.float64)
                 for e in np.array_split(estimates, max(1, estimates.shape[1] // SDR_BLOCK), 1))
    out = np.full(len(estimates), np.nan)
    ok = energy > 0
    resid = np.maximum(energy - proj, 0.0)
    with np.errstate(divide="ignore"):
        out[ok] = 10 * np.log10(np.maximum(proj[ok], 1e-300) / resid[ok])
    return out
