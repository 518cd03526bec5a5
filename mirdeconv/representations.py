"""Input representations: mono audio -> a model's input spectrogram (+ the STFT it came from).

Each representation is a small, serialisable description (a frozen dataclass)
of how a model's input is computed.  :meth:`Representation.prepare` resamples a
track to the representation's sample rate and returns a :class:`TrackInput`:
the model input's frames ``(n_frames, n_bands)`` (time first, float32) and the
complex STFT ``(1 + n_fft // 2, n_frames)`` that it was computed from, so that
a mask in the input's domain can later be put back onto the STFT (auralisation).

Everything is librosa/numpy; nothing here imports TensorFlow.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from .audio import resample, validate
from .errors import InvalidOptionError

__all__ = [
    "Representation",
    "LinearSpectrogram",
    "MelSpectrogram",
    "TrackInput",
    "choi2016_stft",
    "choi2016_mel",
    "musicnn",
    "vggish",
    "tempocnn",
    "tempocnn_librosa",
    "crepe",
    "won2020",
    "Waveform",
    "from_dict",
    "presets",
]

_COMPRESSIONS = (None, "db", "log10", "log")
#: Frames of the STFT computed at once (its float64 buffers stay a few tens of MB).
STFT_BLOCK = 4096


@dataclass(frozen=True)
class TrackInput:
    """A track seen through a representation: what the model takes, and what it came from.

    Attributes
    ----------
    frames : np.ndarray, float32, shape (n_frames, n_bands)
        The model input, time first.
    stft : np.ndarray, complex64, shape (1 + n_fft // 2, n_frames)
        The complex STFT the frames were computed from.
    audio : np.ndarray, float32, shape (n_samples,)
        The track at ``sr``.
    sr : int
        Sample rate of ``audio`` and ``stft`` in Hz.
    representation : Representation
        What produced it.
    """

    frames: np.ndarray
    stft: np.ndarray
    audio: np.ndarray
    sr: int
    representation: Representation = field(repr=False)

    @property
    def n_frames(self) -> int:
        """Number of frames (time steps)."""
        return int(self.frames.shape[0])

    @property
    def duration(self) -> float:
        """Duration of ``audio`` in seconds."""
        return self.audio.shape[0] / self.sr


@dataclass(frozen=True)
class Representation:
    """Base class: STFT settings shared by every representation.

    Parameters
    ----------
    sr : int
        Sample rate in Hz the model expects; tracks are resampled to it.
    n_fft : int
        FFT size in samples.
    hop_length : int
        Hop between frames in samples.
    win_length : int or None
        Window length in samples (``None``: ``n_fft``).
    window : str
        Window name for ``scipy.signal.get_window`` (e.g. ``"hann"``).
    window_symmetric : bool
        Use the symmetric window (``fftbins=False``, as Essentia does) instead of
        the periodic one (librosa's default).
    center : bool
        Frame ``t`` is centred at sample ``t * hop_length`` (padding both ends).
    pad_mode : str
        How to pad when ``center`` (``"constant"`` = zeros).
    """

    kind: ClassVar[str] = "base"

    sr: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    win_length: int | None = None
    window: str = "hann"
    window_symmetric: bool = False
    center: bool = True
    pad_mode: str = "constant"

    def __post_init__(self) -> None:
        for key in ("sr", "n_fft", "hop_length"):
            value = getattr(self, key)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise InvalidOptionError(f"{key} must be a positive integer, got {value!r}")
        if self.win_length is not None and not 0 < self.win_length <= self.n_fft:
            raise InvalidOptionError(
                f"win_length must be in 1..n_fft ({self.n_fft}), got {self.win_length!r}"
            )

    # -- signal processing ------------------------------------------------------
    @property
    def n_bins(self) -> int:
        """Number of STFT bins, ``1 + n_fft // 2``."""
        return 1 + self.n_fft // 2

    @property
    def n_bands(self) -> int:
        """Number of bands (frequency rows) of the model input."""
        return self.n_bins

    @property
    def seconds_per_frame(self) -> float:
        """Hop in seconds."""
        return self.hop_length / self.sr

    def window_array(self) -> np.ndarray:
        """The analysis window, shape ``(win_length,)``."""
        import scipy.signal

        n = self.win_length or self.n_fft
        return scipy.signal.get_window(self.window, n, fftbins=not self.window_symmetric)

    def stft(self, y: np.ndarray) -> np.ndarray:
        """Complex STFT, shape ``(1 + n_fft // 2, n_frames)``, complex64 (computed in float64)."""
        import warnings

        import librosa

        with warnings.catch_warnings():  # a too-short track gets a clearer error downstream
            warnings.filterwarnings("ignore", message="n_fft=.* is too large")
            return self._stft(librosa, y)

    def _stft(self, librosa: Any, y: np.ndarray) -> np.ndarray:
        """Blocks of :data:`STFT_BLOCK` frames, each in float64 from its own stretch of the
        (padded) signal, into one complex64 array: the same frames as one call, in memory
        bounded by the block, not the track."""
        y = np.asarray(y, dtype=np.float32)
        if self.center:              # along the last axis (signals may come stacked)
            pad = [(0, 0)] * (y.ndim - 1) + [(self.n_fft // 2, self.n_fft // 2)]
            y = np.pad(y, pad, mode=self.pad_mode)
        if y.shape[-1] < self.n_fft:      # too short: librosa's own error or warning
            return librosa.stft(np.asarray(y, np.float64), n_fft=self.n_fft,
                                hop_length=self.hop_length, win_length=self.win_length,
                                window=self.window_array(), center=False).astype(np.complex64)
        n_frames = 1 + (y.shape[-1] - self.n_fft) // self.hop_length
        out = np.empty((*y.shape[:-1], 1 + self.n_fft // 2, n_frames), np.complex64)
        window = self.window_array()
        for t0 in range(0, n_frames, STFT_BLOCK):
            t1 = min(n_frames, t0 + STFT_BLOCK)
            seg = y[..., t0 * self.hop_length:(t1 - 1) * self.hop_length + self.n_fft]
            out[..., t0:t1] = librosa.stft(seg.astype(np.float64), n_fft=self.n_fft,
                                         hop_length=self.hop_length, win_length=self.win_length,
                                         window=window, center=False)
        return out

    def frames_from_stft(self, stft: np.ndarray) -> np.ndarray:
        """Model input from a complex STFT: ``(n_bins, n_frames) -> (n_frames, n_bands)``."""
        raise NotImplementedError

    def prepare(self, y: np.ndarray, sr: float) -> TrackInput:
        """Resample ``y`` to :attr:`sr` and compute the model input and its STFT.

        Parameters
        ----------
        y : np.ndarray, shape (n_samples,)
            Mono audio.
        sr : float
            Its sample rate in Hz.

        Returns
        -------
        TrackInput
        """
        y = validate(y, sr)
        y = resample(y, sr, self.sr)
        S = self.stft(y)
        frames = self.frames_from_stft(S).astype(np.float32, copy=False)
        return TrackInput(frames=frames, stft=S, audio=y, sr=self.sr, representation=self)

    def silence(self, frames: np.ndarray) -> float:
        """What pads a patch: the track's minimum (silence in any compression)."""
        return float(frames.min())

    def n_frames_for(self, n_samples: int) -> int:
        """Number of frames the STFT gives for ``n_samples`` samples at :attr:`sr`."""
        if self.center:
            return 1 + n_samples // self.hop_length
        return max(0, 1 + (n_samples - self.n_fft) // self.hop_length)

    # -- description -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (``kind`` + parameters)."""
        return {"kind": self.kind, **asdict(self)}

    def describe(self) -> str:
        """One line for people."""
        return (f"{self.kind} {self.n_bands} bands, {self.sr} Hz, n_fft {self.n_fft}, "
                f"hop {self.hop_length}")


def _compress(x: np.ndarray, rep: LinearSpectrogram | MelSpectrogram) -> np.ndarray:
    """Apply a representation's compression to a non-negative spectrogram."""
    if rep.compression is None:
        return x
    if rep.compression == "log10":
        return np.log10(1.0 + rep.log_c * x)
    if rep.compression == "log":
        return np.log(x + rep.log_offset)
    import librosa

    # any exponent: back to a power spectrogram, then 10 log10 (librosa.power_to_db)
    return librosa.power_to_db(
        x if rep.power == 2.0 else x ** (2.0 / rep.power),
        ref=rep.ref ** (2.0 / rep.power), amin=rep.amin, top_db=rep.top_db,
    )


def _check_compression(rep: LinearSpectrogram | MelSpectrogram) -> None:
    if rep.compression not in _COMPRESSIONS:
        raise InvalidOptionError(
            f"compression must be one of {_COMPRESSIONS}, got {rep.compression!r}"
        )
    if rep.power <= 0:
        raise InvalidOptionError(f"power must be > 0, got {rep.power!r}")


@dataclass(frozen=True)
class LinearSpectrogram(Representation):
    """Linear-frequency STFT magnitude (Choi et al. 2016's deconvolution demo).

    Parameters
    ----------
    power : float
        Exponent of the magnitude (1: magnitude, 2: power).
    compression : {None, "db", "log10", "log"}
        None: ``|S| ** power``; ``"db"``: decibels (``ref``, ``amin``, ``top_db``);
        ``"log10"``: ``log10(1 + log_c * |S| ** power)``; ``"log"``: natural
        ``log(|S| ** power + log_offset)`` (VGGish).
    """

    kind: ClassVar[str] = "stft"

    power: float = 1.0
    compression: str | None = None
    log_c: float = 10000.0
    log_offset: float = 0.01
    ref: float = 1.0
    amin: float = 1e-10
    top_db: float | None = 80.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_compression(self)

    def frames_from_stft(self, stft: np.ndarray) -> np.ndarray:
        x = np.abs(stft) ** self.power
        return _compress(x, self).T


@dataclass(frozen=True)
class MelSpectrogram(Representation):
    """Mel spectrogram, with optional dB or ``log10(1 + C x)`` compression.

    Parameters
    ----------
    n_mels : int
        Number of mel bands.
    fmin, fmax : float
        Frequency range of the filterbank in Hz (``fmax=None``: ``sr / 2``).
    htk : bool
        HTK mel scale instead of Slaney's.
    norm : {"slaney", None, "unit_max"}
        Filter normalisation: librosa's ``norm`` ("slaney": unit area; None: triangles of
        apex 1), or ``"unit_max"`` (Essentia's name for apex 1; essentia only).
    mel_impl : {"librosa", "essentia"}
        How the filterbank is built: librosa's ``filters.mel`` (float64), or a float32
        replica of Essentia's ``MelBands`` (mel edges accumulated in float32, bins from
        ceil to floor of the band edges), which matches Essentia's own input algorithms
        ~5x closer at the filters' tails.
    mel_weighting : {"linear", "warping"}
        Essentia only: triangles linear in Hz (``"linear"``) or in mel (``"warping"``).
    square : bool
        Square the mel spectrogram before compression (Choi et al. 2016 applied
        ``logamplitude`` to librosa's power mel spectrogram squared).
    power : float
        Exponent of the STFT magnitude before the filterbank (2: power).
    compression, log_c, ref, amin, top_db
        As for :class:`LinearSpectrogram`.
    """

    kind: ClassVar[str] = "mel"

    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    htk: bool = False
    norm: str | None = "slaney"
    mel_impl: str = "librosa"
    mel_weighting: str = "linear"
    square: bool = False
    power: float = 2.0
    compression: str | None = "db"
    log_c: float = 10000.0
    log_offset: float = 0.01
    ref: float = 1.0
    amin: float = 1e-10
    top_db: float | None = 80.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_compression(self)
        if not isinstance(self.n_mels, (int, np.integer)) or self.n_mels <= 0:
            raise InvalidOptionError(f"n_mels must be a positive integer, got {self.n_mels!r}")
        if self.mel_impl not in ("librosa", "essentia"):
            raise InvalidOptionError(f"mel_impl must be 'librosa' or 'essentia', got {self.mel_impl!r}")
        if self.mel_impl == "essentia" and self.norm not in ("slaney", "unit_max"):
            raise InvalidOptionError("mel_impl='essentia' normalises with norm='slaney' "
                                     "(unit_tri) or 'unit_max'")
        if self.mel_impl == "librosa" and (self.norm == "unit_max"
                                           or self.mel_weighting != "linear"):
            raise InvalidOptionError("norm='unit_max' and mel_weighting='warping' need "
                                     "mel_impl='essentia'")
        if self.mel_weighting not in ("linear", "warping"):
            raise InvalidOptionError(f"mel_weighting must be 'linear' or 'warping', got "
                                     f"{self.mel_weighting!r}")

    @property
    def n_bands(self) -> int:
        return int(self.n_mels)

    def filterbank(self) -> np.ndarray:
        """Mel filterbank, shape ``(n_mels, 1 + n_fft // 2)``."""
        if self.mel_impl == "essentia":
            return _essentia_filterbank(
                self.sr, self.n_bins, self.n_mels, float(self.fmin),
                float(self.fmax if self.fmax is not None else self.sr / 2), self.htk,
                self.mel_weighting, self.norm)
        import librosa

        return librosa.filters.mel(
            sr=self.sr,
            n_fft=self.n_fft,
            n_mels=self.n_mels,
            fmin=self.fmin,
            fmax=self.fmax,
            htk=self.htk,
            norm=self.norm,
        ).astype(np.float32)

    def frames_from_stft(self, stft: np.ndarray) -> np.ndarray:
        fb = self.filterbank().astype(np.float64)
        x = np.empty((len(fb), stft.shape[1]), np.float64)
        for t0 in range(0, stft.shape[1], STFT_BLOCK):     # float64 buffers of one block
            block = stft[:, t0:t0 + STFT_BLOCK].astype(np.complex128)
            x[:, t0:t0 + STFT_BLOCK] = fb @ (np.abs(block) ** self.power)
        if self.square:
            x = x * x
        return _compress(x, self).T


@functools.lru_cache(maxsize=16)
def _essentia_filterbank(sr: int, n_bins: int, n_mels: int, fmin: float, fmax: float,
                         htk: bool = False, weighting: str = "linear",
                         normalize: str = "slaney") -> np.ndarray:
    """A mel filterbank computed the way Essentia's MelBands/TriangularBands do, in float32.

    Band edges: mel(fmin) + k * step, accumulated in float32 and mapped back to Hz (Slaney
    or HTK mel); weights over the bins from ceil(f_lo / df) to floor(f_hi / df), linear in
    Hz (``weighting="linear"``) or in mel (``"warping"``); each triangle divided by half its
    width in the weighting's unit (``"slaney"``, Essentia's unit_tri), or left with an apex
    of 1 (``"unit_max"``).
    """
    f32 = np.float32
    f_sp = f32(200.0 / 3.0)
    log_step = f32(np.log(6.4) / 27.0)

    def slaney(h: np.float32) -> np.float32:
        if h < f32(1000.0):
            return f32(h / f_sp)
        return f32(f32(15.0) + f32(np.log(f32(h / f32(1000.0)))) / log_step)

    def slaney_inv(m: np.float32) -> np.float32:
        if m < f32(15.0):
            return f32(m * f_sp)
        return f32(f32(1000.0) * f32(np.exp(f32(log_step * f32(m - f32(15.0))))))

    def htk_mel(h: np.float32) -> np.float32:
        return f32(f32(2595.0) * f32(np.log10(f32(f32(1.0) + f32(h / f32(700.0))))))

    def htk_inv(m: np.float32) -> np.float32:
        return f32(f32(700.0) * f32(f32(np.power(f32(10.0), f32(m / f32(2595.0)))) - f32(1.0)))

    warp, unwarp = (htk_mel, htk_inv) if htk else (slaney, slaney_inv)
    lo, hi = warp(f32(fmin)), warp(f32(fmax))
    step = f32((hi - lo) / f32(n_mels + 1))
    edges = np.empty(n_mels + 2, f32)
    m = lo
    for i in range(n_mels + 2):
        edges[i] = unwarp(m)
        m = f32(m + step)
    df = f32(f32(sr / 2.0) / f32(n_bins - 1))
    w_of = np.vectorize(warp, otypes=[f32]) if weighting == "warping" else (lambda v: v)
    fb = np.zeros((n_mels, n_bins), f32)
    for i in range(n_mels):
        f0, f1, f2 = edges[i], edges[i + 1], edges[i + 2]
        w0, w1, w2 = (w_of(np.array([f0, f1, f2], f32))).astype(f32)
        s1, s2 = f32(w1 - w0), f32(w2 - w1)
        j = np.arange(int(np.ceil(f32(f0 / df))), min(int(np.floor(f32(f2 / df))), n_bins - 1) + 1)
        b = (j.astype(f32) * df).astype(f32)
        wb = np.asarray(w_of(b), f32)
        up = ((wb - w0) / s1).astype(f32)
        down = ((w2 - wb) / s2).astype(f32)
        tri = np.where(b < f1, up, down).astype(f32)
        if normalize != "unit_max":  # unit_max: the triangle's apex is 1 (as built)
            tri = tri / f32(f32(s1 + s2) / f32(2.0))
        fb[i, j] = tri
    return fb


@dataclass(frozen=True)
class Waveform(Representation):
    """The samples themselves (raw-waveform models: sample-level CNNs, CREPE).

    The model's time axis is the samples: ``frames`` of a :class:`TrackInput` is the
    waveform, shape ``(n_samples, 1)`` (one "band"), and a deconvolution is a waveform too,
    so a feature's auralisation *is* its deconvolved signal.  A model that takes frames of
    the signal (CREPE: 1024 samples every 10 ms) goes through the engine as patches of
    ``frame`` samples ``hop`` apart, the signal padded with ``frame // 2`` zeros at both
    ends when ``center`` (CREPE's framing), each frame standardised when
    ``normalize_frames``; the patches' masks add up (each frame is one application of the
    model).  ``n_fft`` and ``hop_length`` are those of the STFT kept for pictures and for
    the analysis' descriptors.

    Parameters
    ----------
    frame : int or None
        Samples per frame the model takes (None: the model takes the signal in patches of
        its own input length, or whole).
    hop : int or None
        Samples between frames (with ``frame``).
    normalize_frames : bool
        Each frame to zero mean and unit standard deviation before the network (CREPE).
    """

    kind: ClassVar[str] = "waveform"
    #: Samples of the input probed when a model's input length is free.
    nominal_frames: ClassVar[int] = 16384

    n_fft: int = 1024
    hop_length: int = 256
    frame: int | None = None
    hop: int | None = None
    normalize_frames: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.frame is None) != (self.hop is None):
            raise InvalidOptionError("give a waveform's frame and hop together, or neither")
        for key in ("frame", "hop"):
            v = getattr(self, key)
            if v is not None and (not isinstance(v, int | np.integer) or v <= 0):
                raise InvalidOptionError(f"{key} must be a positive integer, got {v!r}")

    @property
    def n_bands(self) -> int:
        return 1

    @property
    def seconds_per_frame(self) -> float:
        """One "frame" of the model's time axis is one sample."""
        return 1.0 / self.sr

    @property
    def pad(self) -> int:
        """Zeros before the signal in ``frames`` (CREPE's centred frames)."""
        return self.frame // 2 if self.frame and self.center else 0

    def prepare(self, y: np.ndarray, sr: float) -> TrackInput:
        """Resample; ``frames`` is the (padded) waveform ``(n_samples + 2 * pad, 1)``."""
        y = validate(y, sr)
        y = resample(y, sr, self.sr)
        frames = np.pad(y, self.pad)[:, None].astype(np.float32)
        return TrackInput(frames=frames, stft=self.stft(y), audio=y, sr=self.sr,
                          representation=self)

    def silence(self, frames: np.ndarray) -> float:
        """What pads a patch: zero."""
        return 0.0

    def signal(self, masks: np.ndarray, n_samples: int) -> np.ndarray:
        """Masks on ``frames`` ``(F, n_samples + 2 * pad, 1)`` -> signals ``(F, n_samples)``."""
        return np.asarray(masks)[:, self.pad:self.pad + n_samples, 0]

    def describe(self) -> str:
        framing = f", frames of {self.frame} every {self.hop}" if self.frame else ""
        return f"waveform, {self.sr} Hz{framing}"


_KINDS: dict[str, type[Representation]] = {
    cls.kind: cls for cls in (LinearSpectrogram, MelSpectrogram, Waveform)
}


def from_dict(d: dict[str, Any]) -> Representation:
    """Rebuild a representation from :meth:`Representation.to_dict`'s output."""
    d = dict(d)
    kind = d.pop("kind", None)
    if kind not in _KINDS:
        raise InvalidOptionError(f"unknown representation kind {kind!r}; known: {sorted(_KINDS)}")
    return _KINDS[kind](**d)


# --- presets ---------------------------------------------------------------------
def choi2016_stft() -> LinearSpectrogram:
    """Choi et al. 2016's deconvolution demo: STFT magnitude, 11025 Hz, n_fft 512 (Hann), hop 256.

    257 bins; 4 s of audio give 173 frames.
    """
    return LinearSpectrogram(sr=11025, n_fft=512, hop_length=256, power=1.0, compression=None)


def choi2016_mel() -> MelSpectrogram:
    """Choi et al. 2016's MusicTaggerCNN input.

    12 kHz, 96 mel bands (librosa's defaults: Slaney, 0-6000 Hz), n_fft 512, hop 256; the
    power mel spectrogram squared, then 10 log10 with ref 1.0 and an 80 dB floor (old
    librosa's ``logamplitude(melgram ** 2, ref_power=1.0)``).  29.12 s = 1366 frames.
    """
    return MelSpectrogram(
        sr=12000, n_fft=512, hop_length=256, n_mels=96, power=2.0, square=True,
        compression="db", ref=1.0, top_db=80.0,
    )


def musicnn() -> MelSpectrogram:
    """Essentia's ``TensorflowInputMusiCNN`` (musicnn, vgg, effnet-discogs, MAEST inputs).

    16 kHz, frame 512 with a symmetric Hann window, hop 256, power spectrum, 96 Slaney
    mel bands 0-8000 Hz (Slaney norm, built like Essentia's MelBands: ``mel_impl="essentia"``),
    ``log10(1 + 10000 * mel)``.
    """
    return MelSpectrogram(
        sr=16000, n_fft=512, hop_length=256, window="hann", window_symmetric=True,
        center=True, pad_mode="constant", n_mels=96, fmin=0.0, fmax=8000.0, htk=False,
        norm="slaney", mel_impl="essentia", power=2.0, compression="log10", log_c=10000.0,
    )


def vggish() -> MelSpectrogram:
    """Essentia's ``TensorflowInputVGGish`` (VGGish / AudioSet models).

    16 kHz, 400-sample Hann window zero-padded to a 512-point magnitude spectrum, hop 160
    (10 ms), 64 HTK mel bands 125-7500 Hz with triangles linear in mel, each of peak 1
    (Essentia's MelBands ``weighting="warping"``, ``normalize="unit_max"``), then
    ``log(mel + 0.01)``.  Models take patches of 96 frames.
    """
    return MelSpectrogram(
        sr=16000, n_fft=512, win_length=400, hop_length=160, window="hann",
        window_symmetric=True, n_mels=64, fmin=125.0, fmax=7500.0, htk=True, norm="unit_max",
        mel_impl="essentia", mel_weighting="warping", power=1.0, compression="log",
        log_offset=0.01)


def tempocnn() -> MelSpectrogram:
    """Essentia's ``TensorflowInputTempoCNN`` (Schreiber & Mueller's tempo models).

    11025 Hz, frame 1024 (Hann), hop 512, magnitude spectrum, 40 Slaney mel bands 20-5000 Hz
    (unit_tri), no compression.  Models take patches of 256 frames, each standardised
    (zero mean, unit variance) before the network.
    """
    return MelSpectrogram(
        sr=11025, n_fft=1024, hop_length=512, window="hann", window_symmetric=True,
        n_mels=40, fmin=20.0, fmax=5000.0, htk=False, norm="slaney", mel_impl="essentia",
        power=1.0, compression=None)


def tempocnn_librosa() -> MelSpectrogram:
    """Schreiber's own TempoCNN features (the ``tempocnn`` package's ``read_features``):
    ``librosa.feature.melspectrogram(y, sr=11025, n_fft=1024, hop_length=512, power=1,
    n_mels=40, fmin=20, fmax=5000)``: periodic Hann, centred frames, 40 Slaney mel bands of
    the magnitude, no compression.  His models standardise (or divide by the maximum) the
    whole track, not each patch: see :mod:`mirdeconv.normalization`."""
    return MelSpectrogram(sr=11025, n_fft=1024, hop_length=512, n_mels=40, fmin=20.0,
                          fmax=5000.0, power=1.0, compression=None)


def won2020() -> MelSpectrogram:
    """Won et al. 2020's front end (their PyTorch taggers, ``won2020:*``): torchaudio's
    ``MelSpectrogram(sample_rate=16000, n_fft=512, f_min=0, f_max=8000, n_mels=96)`` then
    ``AmplitudeToDB()``: 16 kHz, periodic Hann window 512, hop 256, frames centred with
    reflect padding, power spectrum, 96 HTK mel bands without filter normalisation,
    ``10 log10(max(x, 1e-10))`` without a floor.  3 s = 188 frames, 29 s = 1813."""
    return MelSpectrogram(
        sr=16000, n_fft=512, hop_length=256, window="hann", window_symmetric=False,
        center=True, pad_mode="reflect", n_mels=96, fmin=0.0, fmax=8000.0, htk=True,
        norm=None, power=2.0, compression="db", ref=1.0, amin=1e-10, top_db=None)


def crepe() -> Waveform:
    """CREPE's input (Kim et al. 2018; Essentia's ``TensorflowPredictCREPE``): 16 kHz,
    frames of 1024 samples every 10 ms (160 samples), centred (512 zeros before and after
    the signal), each standardised.  Checked against Essentia's own predictions (6e-7)."""
    return Waveform(sr=16000, frame=1024, hop=160, normalize_frames=True, n_fft=1024,
                    hop_length=160)


def presets() -> dict[str, Any]:
    """Named presets: name -> function returning the representation."""
    return {"choi2016-stft": choi2016_stft, "choi2016-mel": choi2016_mel, "musicnn": musicnn,
            "vggish": vggish, "tempocnn": tempocnn, "tempocnn-librosa": tempocnn_librosa,
            "crepe": crepe, "won2020": won2020}
