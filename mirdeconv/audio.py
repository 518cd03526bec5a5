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
    TruncatedAudioError,
    UnsupportedAudioError,
)

__all__ = ["load", "validate", "to_mono", "resample", "integrity", "SILENCE_PEAK"]

#: Peak amplitude at or below which a track counts as digital silence (-140 dBFS).
SILENCE_PEAK = 1e-7


def load(
    path: str | os.PathLike,
    sr: float | None = None,
    *,
    mono: bool = True,
    allow_truncated: bool = False,
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
    allow_truncated : bool
        Decode what there is of a file that is cut short (see :func:`integrity`) instead of
        refusing it.

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
    TruncatedAudioError
        The file is cut short (unless ``allow_truncated``).
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
    problem = "" if allow_truncated else integrity(p, y.shape[1])
    if problem:
        raise TruncatedAudioError(
            f"{p.name} is truncated or damaged: {problem}; refusing half a song (pass "
            "allow_truncated=True, or --allow-truncated, to use what decodes)")
    if mono:
        y = to_mono(y)
    if sr is not None and int(round(sr)) != file_sr:
        y = resample(y, file_sr, sr)
        file_sr = int(round(sr))
    validate(y, file_sr, name=p.name, mono=mono)
    return y, int(file_sr)


def _ogg_complete(path: Path) -> str:
    """An Ogg stream ends with a complete page that carries the end-of-stream flag."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - (1 << 16)))      # a page is at most 65,307 bytes
        tail = fh.read()
    k = tail.rfind(b"OggS")
    if k < 0 or len(tail) < k + 27:
        return "no Ogg page at its end"
    n_seg = tail[k + 26]
    body = sum(tail[k + 27:k + 27 + n_seg])
    if len(tail) < k + 27 + n_seg + body:
        return "its last Ogg page is cut off"
    if not tail[k + 5] & 0x04:
        return "its Ogg stream has no end-of-stream page"
    return ""


def _wav_complete(path: Path) -> str:
    """A RIFF/WAVE file holds as many bytes of samples as its data chunk declares."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
    k = head.find(b"data", 12)
    if head[:4] != b"RIFF" or k < 0 or len(head) < k + 8:
        return ""                              # RF64 and others: libsndfile's own checks
    declared = int.from_bytes(head[k + 4:k + 8], "little")
    have = size - (k + 8)
    if declared not in (0, 0xFFFFFFFF) and have < declared:
        return f"its data chunk declares {declared} bytes of samples, the file holds {have}"
    return ""


#: Per container (soundfile's format name): how to tell that a file is complete.
CONTAINER_CHECKS = {"OGG": _ogg_complete, "WAV": _wav_complete}


def integrity(path: str | os.PathLike, n_decoded: int) -> str:
    """Why a decoded file looks cut short or damaged, or ``""``.

    The decoded length is checked against the length the container declares (soundfile's
    ``frames``: FLAC's STREAMINFO, an MP3's Xing header), and each container in
    :data:`CONTAINER_CHECKS` by its own structure (an Ogg stream's last page is complete and
    marks the end of the stream, since its length is read from that page; a WAV's data
    chunk holds what it declares).

    Parameters
    ----------
    path : str or PathLike
    n_decoded : int
        Samples per channel that decoding gave.
    """
    import soundfile as sf

    p = Path(path)
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError):
        return "its header cannot be read"
    if 0 < n_decoded < info.frames:
        return f"it decodes to {n_decoded} of the {info.frames} samples its header declares"
    check = CONTAINER_CHECKS.get(info.format)
    return check(p) if check else ""


def to_mono(y: np.ndarray) -> np.ndarray:
    """Average channels: ``(n_channels, n_samples) -> (n_samples,)``; 1-D input is returned as is."""
    y = np.asarray(y)
    if y.ndim == 1:
        return y
    if len(y) == 1:                       # one channel: no copy
        return y[0]
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
    if max(float(y.max()), -float(y.min())) <= SILENCE_PEAK:      # (no |y| copy)
        raise SilentAudioError(
            f"{name}: audio is silent (peak <= {SILENCE_PEAK:g}); every feature map would be zero"
        )
    return y
