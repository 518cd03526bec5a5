"""Everything the descriptors need about one track, computed once for all its features."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..auralisation import stft_window
from ..inversion import invert_blocks
from ..representations import TrackInput
from .references import Reference

__all__ = ["LOW_HZ", "HIGH_HZ", "ONSET_WINDOW", "SDR_FILTER", "SDR_BLOCK", "ATTACK_WINDOW",
           "FFT_WORKERS", "CHROMA_FFT", "TrackContext", "fast_sdr", "lag_correlation"]

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
        self.reference = reference if reference is not None else Reference.detect(
            track.audio, track.sr)
        self.sr = int(track.sr)
        self.hop = rep.hop_length
        self.grid = {"n_fft": rep.n_fft, "hop_length": rep.hop_length, "win_length": rep.win_length}
        self.window = stft_window(rep, self.grid)
        self.center = rep.center
        self.n = len(track.audio)
        X = track.stft.astype(np.complex64, copy=False)
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
        # the separation references and their autocorrelations (bss_eval's G), once per track
        self.refs = {}
        for name, mask in (("percussive", mp), ("harmonic", mh)):
            r = self.istft(mask[None] * X[None])[0]
            if not np.any(r):
                self.refs[name] = None
                continue
            G = scipy.linalg.toeplitz(lag_correlation(r[None], r)[0])
            self.refs[name] = (r, scipy.linalg.lu_factor(G))

    def istft(self, Y: np.ndarray) -> np.ndarray:
        """(F, bins, frames) -> (F, n_samples) at the model's rate (block by block)."""
        return invert_blocks(Y.shape[2], self.n, self.grid, self.window, self.center,
                             lambda a, b: Y[:, :, a:b], None)[0]


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
