"""Reading, validating and resampling tracks.

Audio is a float32 numpy array, mono ``(n_samples,)``, in [-1, 1], with its
sample rate in Hz.  Files are decoded with soundfile (wav, flac, ogg, mp3, ...);
resampling uses librosa (soxr).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import (
    AudioFileNotFoundError,
    InvalidAudioError,
    SilentAudioError,
    UnsupportedAudioError,
)

__all__ = ["load", "validate", "to_mono", "resample", "SILENCE_PEAK"]

#: Peak amplitude at or below which a track counts as digital silence (-140 dBFS).
SILENCE_PEAK = 1e-7


def load(
    path: str | os.PathLike,
    sr: float | None = None,
    *,
    mono: bool = True,
) -> tuple[np.ndarray, int]:
    """Read an audio file.

    Parameters
    ----------
    path : str or PathLike
        Audio file in any format libsndfile decodes (wav, flac, ogg, mp3, aiff, ...).
    sr : float or None
        Target sample rate in Hz; ``None`` keeps the file's own rate.
    mono : bool
        Average the channels into one.

    Returns
    -------
    y : np.ndarray, float32, shape (n_samples,) or (n_channels, n_samples)
        The samples in [-1, 1].
    sr : int
        Their sample rate in Hz.

    Raises
    ------
    AudioFileNotFoundError
        The file does not exist.
    UnsupportedAudioError
        The file is empty, corrupt or in a format that cannot be decoded.
    InvalidAudioError, SilentAudioError
        The decoded samples are unusable (see :func:`validate`).
    """
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise AudioFileNotFoundError(f"audio file not found: {p}")
    if p.is_dir():
        raise UnsupportedAudioError(f"{p} is a folder, not an audio file")
    if p.stat().st_size == 0:
        raise UnsupportedAudioError(f"audio file {p} is empty (0 bytes)")
    try:
        data, file_sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise UnsupportedAudioError(
            f"cannot decode {p.name}: not a supported or intact audio file ({exc})"
        ) from exc
    y = data.T  # (channels, samples)
    if y.shape[1] == 0:
        raise InvalidAudioError(f"audio file {p} holds no samples")
    if mono:
        y = to_mono(y)
    if sr is not None and int(round(sr)) != file_sr:
        y = resample(y, file_sr, sr)
        file_sr = int(round(sr))
    validate(y, file_sr, name=p.name, mono=mono)
    return y, int(file_sr)


def to_mono(y: np.ndarray) -> np.ndarray:
    """Average channels: ``(n_channels, n_samples) -> (n_samples,)``; 1-D input is returned as is."""
    y = np.asarray(y)
    if y.ndim == 1:
        return y
    return np.mean(y, axis=0, dtype=np.float64).astype(np.float32)


def resample(y: np.ndarray, orig_sr: float, target_sr: float) -> np.ndarray:
    """Resample with librosa's high-quality soxr resampler (float32 out)."""
    import librosa

    if int(round(orig_sr)) == int(round(target_sr)):
        return np.asarray(y, dtype=np.float32)
    out = librosa.resample(
        np.asarray(y, dtype=np.float32), orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq"
    )
    return out.astype(np.float32, copy=False)


def validate(
    y: np.ndarray, sr: float, *, name: str = "audio", mono: bool = True
) -> np.ndarray:
    """Check that samples can be analysed, and return them as float32.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,) (or (n_channels, n_samples) if ``mono=False``)
    sr : float
        Sample rate in Hz, > 0.
    name : str
        How to call the audio in error messages (a file name, say).
    mono : bool
        Require a 1-D array.

    Raises
    ------
    InvalidAudioError
        Not a numeric array of the right shape, empty, NaN/inf samples, bad sample rate.
    SilentAudioError
        Digital silence (peak at or below :data:`SILENCE_PEAK`).
    """
    if not isinstance(y, np.ndarray):
        raise InvalidAudioError(f"{name}: audio must be a numpy array, got {type(y).__name__}")
    if not np.issubdtype(y.dtype, np.floating) and not np.issubdtype(y.dtype, np.integer):
        raise InvalidAudioError(f"{name}: audio must hold numbers, got dtype {y.dtype}")
    if mono and y.ndim != 1:
        raise InvalidAudioError(
            f"{name}: audio must be mono with shape (n_samples,), got shape {y.shape} "
            "(use mirdeconv.audio.to_mono)"
        )
    if y.size == 0:
        raise InvalidAudioError(f"{name}: audio is empty (0 samples)")
    if not (np.isscalar(sr) and np.isfinite(sr) and sr > 0):
        raise InvalidAudioError(f"{name}: sample rate must be a positive number, got {sr!r}")
    y = y.astype(np.float32, copy=False)
    finite = np.isfinite(y)
    if not finite.all():
        bad = int(y.size - np.count_nonzero(finite))
        raise InvalidAudioError(f"{name}: audio holds {bad} NaN or infinite samples")
    if float(np.max(np.abs(y))) <= SILENCE_PEAK:
        raise SilentAudioError(
            f"{name}: audio is silent (peak <= {SILENCE_PEAK:g}); every feature map would be zero"
        )
    return y
