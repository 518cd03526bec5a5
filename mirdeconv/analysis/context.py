"""Everything the descriptors need about one track, computed once for all its features."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..auralisation import stft_window
from ..representations import TrackInput
from .references import Reference

__all__ = ["LOW_HZ", "HIGH_HZ", "ONSET_WINDOW", "SDR_FILTER", "ATTACK_WINDOW", "FFT_WORKERS",
           "CHROMA_FFT", "TrackContext", "fast_sdr"]

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
