"""Reading, validating and resampling tracks.

Audio is a float32 numpy array, mono ``(n_samples,)``, in [-1, 1], with its
sample rate in Hz.  Files are decoded with soundfile (wav, flac, ogg, mp3, ...);
resampling uses librosa (soxr).

A file that decodes to less than its header declares is judged, not guessed: within
:data:`TRUNCATION_TOLERANCE` of the declared length or :data:`TRUNCATION_TOLERANCE_SECONDS`
(whichever allows more) it is used, with a :class:`~mirdeconv.errors.TruncationWarning`;
beyond that it is a :class:`~mirdeconv.errors.TruncatedAudioError` unless ``allow_truncated``.
:func:`decode` returns the verdict with the samples (:class:`Decoded`).
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backend import verbose
from .errors import (
    AudioFileNotFoundError,
    InvalidAudioError,
    SilentAudioError,
    TruncatedAudioError,
    TruncationWarning,
    UnsupportedAudioError,
)

__all__ = ["load", "decode", "Decoded", "validate", "to_mono", "resample", "integrity",
           "SILENCE_PEAK", "TRUNCATION_TOLERANCE", "TRUNCATION_TOLERANCE_SECONDS"]

#: Peak amplitude at or below which a track counts as digital silence (-140 dBFS).
SILENCE_PEAK = 1e-7

#: A file that decodes to less than its header declares is used (with a warning) when the
#: shortfall is at most this share of the declared length, or at most
#: :data:`TRUNCATION_TOLERANCE_SECONDS`, whichever allows more.  Real MP3s whose Xing header
#: counts a little more than decodes (98.5 % to 99 % is common) pass; half a song does not.
TRUNCATION_TOLERANCE = 0.02

#: The shortfall in seconds that is always tolerated (see :data:`TRUNCATION_TOLERANCE`).
TRUNCATION_TOLERANCE_SECONDS = 1.0

_BLOCK = 1 << 16          # frames per read
_FINE_BLOCK = 1 << 10     # frames per read when a block's decoding failed, to keep what precedes
_MAX_FRAMES = 1 << 40     # a larger frame count is libsndfile's "unknown" (SF_COUNT_MAX)
_SFE_BAD_FILE = 7         # libsndfile: "File does not exist or is not a regular file (possibly a
                          # pipe?)", its answer when libmpg123 finds no MPEG stream in a file


@dataclass(frozen=True, eq=False)
class Decoded:
    """A decoded audio file and what is known about its completeness.

    Attributes
    ----------
    y : np.ndarray, float32, shape (n_samples,) or (n_channels, n_samples)
        The samples in [-1, 1] (mono unless ``mono=False`` was asked for).
    sr : int
        Their sample rate in Hz (the requested one if they were resampled).
    declared_samples : int or None
        Samples per channel, at the file's own rate, that the file's header declares (FLAC's
        STREAMINFO, an MP3's Xing/Info/VBRI header, a WAV's data chunk, ...); ``None`` when it
        declares none (an Ogg stream, an MP3 without such a header).
    truncated : bool
        The file is cut short or damaged (it decodes to less than it declares, its decoder
        failed before the end, or its container's structure is cut off) and was used anyway:
        within the tolerance, or because ``allow_truncated`` asked for it.
    shortfall_seconds : float
        How much less than declared decodes, in seconds; ``0.0`` for a complete file, ``nan``
        when the file is damaged but declares no length to measure the loss against.
    reason : str
        Why it counts as truncated, in words (``""`` when it does not).
    """

    y: np.ndarray
    sr: int
    declared_samples: int | None
    truncated: bool
    shortfall_seconds: float
    reason: str = ""


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
        Decode what there is of a file that is cut short (see :func:`decode`) instead of
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
        The file is cut short beyond the tolerance (unless ``allow_truncated``).
    InvalidAudioError, SilentAudioError
        The decoded samples are unusable (see :func:`validate`).

    Warns
    -----
    TruncationWarning
        The file is cut short and used anyway (see :func:`decode`).
    """
    d = _decode(path, sr, mono=mono, allow_truncated=allow_truncated, stacklevel=3)
    return d.y, d.sr


def decode(
    path: str | os.PathLike,
    sr: float | None = None,
    *,
    mono: bool = True,
    allow_truncated: bool = False,
) -> Decoded:
    """Read an audio file, and say whether it is complete.

    The file is decoded block by block until its end or until its decoder fails; the decoded
    length is compared with the length its header declares (see :func:`integrity`).  A
    shortfall of at most :data:`TRUNCATION_TOLERANCE` (2 %) of the declared length, or at
    most :data:`TRUNCATION_TOLERANCE_SECONDS` (1 s), whichever allows more, is accepted with a
    :class:`~mirdeconv.errors.TruncationWarning`; a larger one, a failure whose loss cannot be
    measured, or a container cut off (an Ogg stream without its last page) raises
    :class:`~mirdeconv.errors.TruncatedAudioError` unless ``allow_truncated``, which returns
    what decodes (and warns).  What the C decoders write to the process's stderr (libmpg123's
    "Note: Illegal Audio-MPEG-Header ...") is sent to /dev/null, unless ``MIRDECONV_VERBOSE``.

    Parameters
    ----------
    path : str or PathLike
        Audio file in any format libsndfile decodes (wav, flac, ogg, mp3, aiff, ...).
    sr : float or None
        Target sample rate in Hz; ``None`` keeps the file's own rate.
    mono : bool
        Average the channels into one.
    allow_truncated : bool
        Return what decodes of a file cut short beyond the tolerance instead of refusing it.

    Returns
    -------
    Decoded
        ``y`` (float32, shape (n_samples,), or (n_channels, n_samples) if not ``mono``), ``sr``
        in Hz, ``declared_samples`` (at the file's own rate, or None), ``truncated``,
        ``shortfall_seconds`` and ``reason``.

    Raises
    ------
    AudioFileNotFoundError
        The file does not exist.
    UnsupportedAudioError
        The file is empty, corrupt or in a format that cannot be decoded.
    TruncatedAudioError
        The file is cut short beyond the tolerance (unless ``allow_truncated``), or nothing of
        it decodes.
    InvalidAudioError, SilentAudioError
        The decoded samples are unusable (see :func:`validate`).

    Warns
    -----
    TruncationWarning
        The file is cut short and used anyway; the message names it and the shortfall in
        seconds and percent.
    """
    return _decode(path, sr, mono=mono, allow_truncated=allow_truncated, stacklevel=3)


def _decode(path: str | os.PathLike, sr: float | None, *, mono: bool, allow_truncated: bool,
            stacklevel: int) -> Decoded:
    p = Path(path)
    if not p.exists():
        raise AudioFileNotFoundError(f"audio file not found: {p}")
    if p.is_dir():
        raise UnsupportedAudioError(f"{p} is a folder, not an audio file")
    if p.stat().st_size == 0:
        raise UnsupportedAudioError(f"audio file {p} is empty (0 bytes)")
    with _c_stderr_silenced():
        data, file_sr, fmt, frames, failure = _read(p)
    n = data.shape[0]
    verdict = _judge(p, fmt, frames, file_sr, n, failure)
    reason = "; ".join(verdict.reasons)
    if n == 0:
        if verdict.declared or verdict.cut_off:
            raise TruncatedAudioError(f"{p.name} is truncated or damaged: {reason}; nothing of it "
                                      "decodes")
        if failure:
            raise UnsupportedAudioError(f"cannot decode {p.name}: not a supported or intact audio "
                                        f"file (its decoder fails before the first sample: {failure})")
        raise InvalidAudioError(f"audio file {p} holds no samples")
    if reason and not verdict.tolerated and not allow_truncated:
        raise TruncatedAudioError(
            f"{p.name} is truncated or damaged: {reason}; refusing part of a track (pass "
            "allow_truncated=True, or --allow-truncated, to use what decodes)")
    y = data.T  # (channels, samples)
    if mono:
        y = to_mono(y)
    if sr is not None and int(round(sr)) != file_sr:
        y = resample(y, file_sr, sr)
        file_sr = int(round(sr))
    validate(y, file_sr, name=p.name, mono=mono)
    if reason:
        how = ("used as it is" if verdict.tolerated
               else f"using the {n / verdict.rate:.2f} s that decode (allow_truncated)")
        warnings.warn(TruncationWarning(f"{p.name} is cut short: {reason}; {how}"),
                      stacklevel=stacklevel)
    if verdict.short is not None:
        shortfall = verdict.short / verdict.rate
    else:
        shortfall = float("nan") if reason else 0.0
    return Decoded(y, int(file_sr), verdict.declared, bool(reason), shortfall, reason)


def _read(p: Path) -> tuple[np.ndarray, int, str, int, str]:
    """Decode a whole file block by block until its end or until its decoder fails.

    Returns the samples (float32, shape (n_frames, n_channels)), their rate in Hz, soundfile's
    name of the format ("FLAC", "MP3", ...), the frame count its reader reports, and what the
    decoder said when it failed (``""`` when it did not).
    """
    import soundfile as sf  # heavy: ~0.1 s (libsndfile through cffi), not at import mirdeconv

    try:
        f = sf.SoundFile(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise UnsupportedAudioError(_undecodable(p, exc)) from exc
    with f:
        frames, rate, fmt, seekable = f.frames, f.samplerate, f.format, f.seekable()
        known = 0 < frames < _MAX_FRAMES       # libsndfile reads no further than this anyway
        buf = np.empty((frames if known else _BLOCK, f.channels), np.float32)
        pos = 0
        while True:
            pos, failure = _read_into(f, buf, pos, _BLOCK, len(buf))
            if failure or pos < len(buf) or known:
                break
            buf = np.concatenate([buf, np.empty_like(buf)])
    if failure and seekable:
        pos = _reread(p, buf, pos)
    return (buf if pos == len(buf) else buf[:pos].copy()), int(rate), fmt, frames, failure


def _read_into(f, buf: np.ndarray, pos: int, block: int, stop: int) -> tuple[int, str]:
    """Decode ``f`` into ``buf[pos:stop]`` ``block`` frames at a time; (where it stopped, the
    decoder's complaint or ``""``)."""
    import soundfile as sf  # heavy: ~0.1 s (libsndfile through cffi), not at import mirdeconv

    while pos < stop:
        want = min(block, stop - pos)
        try:
            got = len(f.read(want, dtype="float32", always_2d=True, out=buf[pos:pos + want]))
        except (sf.LibsndfileError, RuntimeError) as exc:
            return pos, _said(exc)
        pos += got
        if got < want:
            break
    return pos, ""


def _reread(p: Path, buf: np.ndarray, pos: int) -> int:
    """The block after ``pos`` failed to decode: decode it again with a fresh decoder in small
    blocks, to keep what precedes the failure.  Returns the new end (at least ``pos``)."""
    import soundfile as sf  # heavy: ~0.1 s (libsndfile through cffi), not at import mirdeconv

    try:
        with sf.SoundFile(str(p)) as g:
            if g.seek(pos) != pos:
                return pos
            end, _ = _read_into(g, buf, pos, _FINE_BLOCK, min(len(buf), pos + _BLOCK))
    except (sf.LibsndfileError, RuntimeError, ValueError):
        return pos
    return max(pos, end)


def _said(exc: BaseException) -> str:
    """libsndfile's own words for an error, on one line (without soundfile's "Error opening
    '<path>': " and libsndfile's "Error : ")."""
    text = getattr(exc, "error_string", None) or str(exc)
    text = " ".join(str(text).split())
    for prefix in ("Error : ", "Error: "):
        text = text.removeprefix(prefix)
    return text.rstrip(".") or type(exc).__name__


def _looks_like(head: bytes) -> str:
    """What a file's first bytes are, in a few words."""
    if head[:4] == b"RIFF":
        return "a RIFF (WAV) header" if head[8:12] == b"WAVE" else "a RIFF header"
    signatures = {b"fLaC": "a FLAC header", b"OggS": "an Ogg page", b"FORM": "an IFF (AIFF) header",
                  b"ID3": "an ID3 tag", b"PK\x03\x04": "a ZIP archive", b"%PDF": "a PDF document"}
    for magic, what in signatures.items():
        if head.startswith(magic):
            return what
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "an MPEG audio frame header"
    if head.lstrip()[:14].lower().startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if not head.strip(b"\x00"):
        return "zero bytes"
    text = head.decode("utf-8", errors="replace")
    if sum(c.isprintable() or c in "\t\r\n" for c in text) >= 0.95 * len(text):
        return "text"
    return "bytes of no audio format libsndfile knows"


def _undecodable(p: Path, exc: BaseException) -> str:
    """One line saying why ``p`` cannot be opened, in place of libsndfile's message when that
    misleads (a file with no MPEG stream in it "does not exist or is not a regular file")."""
    try:
        with open(p, "rb") as fh:
            what = f"it starts with {_looks_like(fh.read(512))}"
    except OSError as err:
        what = f"it cannot be read: {err.strerror or err}"
    if getattr(exc, "code", None) == _SFE_BAD_FILE:
        return (f"cannot decode {p.name}: not a supported or intact audio file: {p.name} is not an "
                f"MP3 (MPEG audio) stream that can be decoded (libmpg123 finds no MPEG audio "
                f"frames in it; {what})")
    return (f"cannot decode {p.name}: not a supported or intact audio file ({what}; libsndfile: "
            f"{_said(exc)})")


_stderr_lock = threading.Lock()
_stderr_users = 0                 # decodes under way in this process
_stderr_saved: int | None = None  # a duplicate of the real fd 2 while it points to /dev/null


@contextmanager
def _c_stderr_silenced() -> Iterator[None]:
    """Point the process's file descriptor 2 at /dev/null while C decoders run: libmpg123 writes
    "Note: Illegal Audio-MPEG-Header ..." and "Warning: Xing stream size off ..." straight to
    it.  Only when fd 2 is open (whatever ``sys.stderr`` is: pytest replaces it), not when
    ``MIRDECONV_VERBOSE``; counted, so that threads decoding at once restore it once, the last
    one.  (Other threads' writes to fd 2 are lost meanwhile.)"""
    global _stderr_users, _stderr_saved
    with _stderr_lock:
        if _stderr_users == 0 and not verbose():
            try:
                os.fstat(2)
                for stream in (sys.stderr, sys.__stderr__):
                    if stream is not None:
                        stream.flush()
                null = os.open(os.devnull, os.O_WRONLY)
                try:
                    saved = os.dup(2)
                    try:
                        os.dup2(null, 2)
                    except OSError:
                        os.close(saved)
                        raise
                    _stderr_saved = saved
                finally:
                    os.close(null)
            except (OSError, ValueError):        # no fd 2, or a closed sys.stderr: leave it be
                pass
        _stderr_users += 1
    try:
        yield
    finally:
        with _stderr_lock:
            _stderr_users -= 1
            if _stderr_users == 0 and _stderr_saved is not None:
                os.dup2(_stderr_saved, 2)
                os.close(_stderr_saved)
                _stderr_saved = None


@dataclass(frozen=True)
class _Verdict:
    """What a decoded length says about a file (see :func:`_judge`)."""

    rate: int                   # the file's sample rate in Hz
    declared: int | None        # samples per channel its header declares
    short: int | None           # declared - decoded (>= 0), when declared
    reasons: tuple[str, ...]    # why it looks cut short or damaged; () when complete
    cut_off: bool               # its container's structure is cut off (no length to compare)
    tolerated: bool             # cut short, but within the tolerance


def _tolerance_text() -> str:
    return f"{TRUNCATION_TOLERANCE * 100:g} % or {TRUNCATION_TOLERANCE_SECONDS:g} s tolerated"


def _judge(p: Path, fmt: str, frames: int, rate: int, n: int, failure: str = "") -> _Verdict:
    """Compare ``n`` decoded samples per channel with what the file declares, and check its
    container's structure (:data:`CONTAINER_CHECKS`); ``failure`` is what its decoder said if it
    stopped early."""
    declared, source = _declared(p, fmt, frames)
    reasons: list[str] = []
    short = None if declared is None else max(0, declared - n)
    tolerated = False
    if short:
        tolerated = short <= max(TRUNCATION_TOLERANCE * declared, TRUNCATION_TOLERANCE_SECONDS * rate)
        reasons.append(
            f"it decodes to {n} of the {declared} samples {source} declares ({short / rate:.2f} s, "
            f"{100 * short / declared:.1f} % short, {'within' if tolerated else 'more than'} the "
            f"{_tolerance_text()})" + (f", then its decoder fails: {failure}" if failure else ""))
    elif failure and short is None:
        reasons.append(f"its decoder fails after {n} samples: {failure}")
    check = CONTAINER_CHECKS.get(fmt)
    cut_off = check(p) if check else ""
    if cut_off:
        reasons.append(cut_off)
        tolerated = False
    return _Verdict(rate, declared, short, tuple(reasons), bool(cut_off), tolerated)


def _declared(p: Path, fmt: str, frames: int) -> tuple[int | None, str]:
    """Samples per channel the file's header declares, and which header: FLAC's STREAMINFO, an
    MP3's Xing/Info/VBRI header, a WAV's data chunk; ``(None, "")`` when it declares none."""
    if fmt == "WAV":
        return _wav_declared(p)              # libsndfile's frames count what the file holds
    if fmt == "OGG":
        return None, ""                      # read from the last page: see _ogg_complete
    if not 0 < frames < _MAX_FRAMES:
        return None, ""
    if fmt == "MP3":                         # without a Xing/VBRI header libmpg123 guesses from
        header = _mp3_length_header(p)       # the file's size and its first frame's bit rate
        return (frames, f"its {header} header") if header else (None, "")
    return frames, "its STREAMINFO header" if fmt == "FLAC" else "its header"


def _wav_declared(path: Path) -> tuple[int | None, str]:
    """Samples per channel a RIFF/WAVE file's data chunk declares (its size over the fmt
    chunk's block alignment)."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None, ""                      # RF64 and others: libsndfile's own checks
    k, align = 12, 0
    while k + 8 <= len(head):
        chunk, size = head[k:k + 4], int.from_bytes(head[k + 4:k + 8], "little")
        if chunk == b"fmt " and k + 22 <= len(head):
            align = int.from_bytes(head[k + 20:k + 22], "little")
        elif chunk == b"data":
            if size in (0, 0xFFFFFFFF) or not align:
                return None, ""              # written while streaming: no length declared
            return size // align, "its data chunk"
        k += 8 + size + (size & 1)
    return None, ""


def _mp3_length_header(path: Path) -> str:
    """Which header of an MPEG audio file counts its frames: ``"Xing"``, ``"Info"`` (LAME's
    name for a constant bit rate's Xing header), ``"VBRI"`` (Fraunhofer's), or ``""`` (none;
    a Xing header without the frame count counts as none)."""
    with open(path, "rb") as fh:
        head = fh.read(10)
        start = 0
        if len(head) == 10 and head[:3] == b"ID3":   # ID3v2: a synchsafe size, maybe a footer
            size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | head[9] & 0x7F
            start = 10 + size + (10 if head[5] & 0x10 else 0)
        fh.seek(start)
        buf = fh.read(1 << 14)
    k = buf.find(b"\xff")
    while 0 <= k < len(buf) - 40:
        b1, b2, b3 = buf[k + 1], buf[k + 2], buf[k + 3]
        version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
        if b1 & 0xE0 == 0xE0 and version != 1 and layer != 0 and b2 >> 4 not in (0, 15) \
                and (b2 >> 2) & 3 != 3:      # the first frame header
            if layer != 1:                   # layer I or II: no such headers
                return ""
            mono = b3 >> 6 == 3
            side = (17 if mono else 32) if version == 3 else (9 if mono else 17)
            at = k + 4 + side + (0 if b1 & 1 else 2)   # protection bit 0: a 16-bit CRC follows
            tag = buf[at:at + 4]
            if tag in (b"Xing", b"Info"):
                return tag.decode() if int.from_bytes(buf[at + 4:at + 8], "big") & 1 else ""
            return "VBRI" if buf[k + 36:k + 40] == b"VBRI" else ""
        k = buf.find(b"\xff", k + 1)
    return ""


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


#: Per container (soundfile's format name): how to tell from its structure that a file is
#: complete, for containers that declare no length to compare with (an Ogg stream's length is
#: read from its last page).  Declared lengths are compared in :func:`integrity`.
CONTAINER_CHECKS = {"OGG": _ogg_complete}


def integrity(path: str | os.PathLike, n_decoded: int) -> str:
    """Why a decoded file looks cut short or damaged, or ``""``.

    The decoded length is checked against the length the file declares: FLAC's STREAMINFO,
    an MP3's Xing/Info/VBRI header (an MP3 without one declares nothing: libmpg123 estimates its
    length from the file's size), a WAV's data chunk; and each container in
    :data:`CONTAINER_CHECKS` by its own structure (an Ogg stream's last page is complete and
    marks the end of the stream, since its length is read from that page).  Any shortfall is
    reported, with whether it is within the tolerance that :func:`decode` grants
    (:data:`TRUNCATION_TOLERANCE`, :data:`TRUNCATION_TOLERANCE_SECONDS`).

    Parameters
    ----------
    path : str or PathLike
    n_decoded : int
        Samples per channel that decoding gave, at the file's own rate.

    Returns
    -------
    str
        The reasons, ``"; "``-separated; ``""`` when the file looks complete.
    """
    import soundfile as sf  # heavy: ~0.1 s (libsndfile through cffi), not at import mirdeconv

    p = Path(path)
    try:
        with _c_stderr_silenced():
            info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError):
        return "its header cannot be read"
    return "; ".join(_judge(p, info.format, info.frames, info.samplerate, n_decoded).reasons)


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
    import librosa  # heavy: its functions pull scipy and numba (seconds)

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
