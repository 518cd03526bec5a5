"""Auralisation: turn a deconvolved feature back into sound.

Choi et al. 2016's rule: the deconvolution is a mask in the model input's domain; put it
on the STFT grid, multiply it with the track's original complex STFT (so the original
phase is kept) and invert with the same window and hop.

* Linear-STFT models (``LinearSpectrogram`` without compression): the mask is already on
  the STFT grid; this is Choi's rule exactly.
* Mel models: each STFT bin takes the weighted mean of the mel bands that cover it (the
  mel filterbank, transposed and normalised so that a constant mask stays constant).
  Bins no mel band covers (below ``fmin``, above ``fmax``) are silent: the model never
  heard them.
* Log-compressed inputs (``compression="db"`` or ``"log10"``): the deconvolution lives in
  the compressed domain, so it can be read two ways:

  - ``reading="mask"`` (Choi): the deconvolved values multiply the STFT as they are: loud
    where the feature's deconvolution is large, whatever the compression;
  - ``reading="magnitude"``: the deconvolution is read as a (compressed) spectrogram, the
    compression is inverted (``(10**v - 1) / C`` for log10, ``10**(v / 10)`` for dB) to a
    magnitude, and that magnitude is played with the original phase.

* Signs: deconvnet masks can be negative.  ``sign="signed"`` keeps them (Choi: a negative
  value flips the phase), ``"positive"`` keeps only the positive part, ``"absolute"`` takes
  absolute values.
* Sample rate: when the track's rate is higher than the model's, ``output_sr="track"``
  (default) interpolates the mask onto the STFT of the track at its own rate, so the
  output keeps the original's quality (frequencies above the model's Nyquist are silent);
  ``output_sr="model"`` plays it at the model's rate.
"""

from __future__ import annotations

import os
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InvalidOptionError, OutputError
from .representations import Analysis, MelSpectrogram, Representation

if TYPE_CHECKING:  # pragma: no cover
    from .engine import DeconvResult

__all__ = [
    "READINGS", "SIGNS", "NORMALIZATIONS", "OUTPUT_RATES",
    "apply_sign", "stft_domain_mask", "auralise_masks", "normalise", "write_audio",
    "Auralisation",
]

READINGS = ("mask", "magnitude")
SIGNS = ("signed", "positive", "absolute")
NORMALIZATIONS = ("peak", "loudness", "none")
OUTPUT_RATES = ("track", "model")
#: Peak level of ``normalize="peak"`` (-0.09 dBFS) and the ceiling of ``"loudness"``.
PEAK = 0.99
#: Target of ``normalize="loudness"``, in LUFS (EBU R128).
TARGET_LUFS = -23.0
#: Size (bins, frames) of the spectrogram thumbnails kept for pictures.
THUMBNAIL = (64, 128)


def _check(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise InvalidOptionError(
            f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")


def apply_sign(mask: np.ndarray, sign: str = "signed") -> np.ndarray:
    """``signed``: as is; ``positive``: negative values to 0; ``absolute``: absolute values."""
    _check("sign", sign, SIGNS)
    if sign == "positive":
        return np.maximum(mask, 0.0)
    if sign == "absolute":
        return np.abs(mask)
    return mask


def _bands_to_bins(rep: Representation) -> np.ndarray | None:
    """Matrix (n_bins, n_bands) that spreads band values onto STFT bins (None: identity).

    Each bin gets the weighted mean of the bands that cover it (weights: the filterbank),
    so a constant stays constant; bins inside the filterbank's range that no filter
    touches take their nearest covered neighbour; bins outside it get 0.
    """
    if not isinstance(rep, MelSpectrogram):
        return None
    fb = rep.filterbank().astype(np.float64)            # (n_mels, n_bins)
    w = fb.sum(axis=0)
    covered = np.flatnonzero(w > 0)
    T = np.zeros((fb.shape[1], fb.shape[0]))
    T[covered] = (fb[:, covered] / w[covered]).T
    freqs = np.arange(fb.shape[1]) * rep.sr / rep.n_fft
    fmax = rep.fmax if rep.fmax is not None else rep.sr / 2
    inside = (freqs >= rep.fmin) & (freqs <= fmax) & (w == 0)
    for k in np.flatnonzero(inside):
        T[k] = T[covered[np.argmin(np.abs(covered - k))]]
    return T.astype(np.float32)


def _invert_compression(values: np.ndarray, rep: Representation) -> np.ndarray:
    """Compressed spectrogram values -> linear magnitudes (the ``power``-th root)."""
    comp = getattr(rep, "compression", None)
    power = getattr(rep, "power", 1.0)
    if comp == "log10":
        lin = (np.power(10.0, values) - 1.0) / rep.log_c
    elif comp == "log":
        lin = np.exp(values) - rep.log_offset
    elif comp == "db":  # dB of a power spectrogram (of the spectrogram itself if power is 2)
        lin = (rep.ref ** (2.0 / power)) * np.power(10.0, values / 10.0)
        lin = np.maximum(lin, 0.0) ** (power / 2.0)
    else:
        lin = values
    if getattr(rep, "square", False):
        lin = np.sqrt(np.maximum(lin, 0.0))
    return np.maximum(lin, 0.0) ** (1.0 / power)


def stft_domain_mask(
    masks: np.ndarray, analysis: Analysis, *, reading: str = "mask", sign: str = "signed"
) -> np.ndarray:
    """Masks in the model input's domain -> masks on the track's STFT grid (model rate).

    Parameters
    ----------
    masks : np.ndarray, shape (n_features, n_frames, n_bands)
    analysis : Analysis
        The track seen through the model's representation.
    reading : {"mask", "magnitude"}
    sign : {"signed", "positive", "absolute"}

    Returns
    -------
    np.ndarray, float32, shape (n_features, 1 + n_fft // 2, n_frames)
        Multiplies ``analysis.stft``.
    """
    _check("reading", reading, READINGS)
    rep = analysis.representation
    m = apply_sign(np.asarray(masks, np.float32), sign)
    T = _bands_to_bins(rep)
    if reading == "magnitude":
        mag = _invert_compression(m.astype(np.float64), rep)          # (F, frames, bands)
        mag = mag if T is None else mag @ T.T.astype(np.float64)       # (F, frames, bins)
        orig = np.abs(analysis.stft).T.astype(np.float64)              # (frames, bins)
        floor = 1e-3 * max(float(orig.max()), 1e-12)
        out = mag / np.maximum(orig, floor)
        return np.ascontiguousarray(np.swapaxes(out, 1, 2), dtype=np.float32)
    out = m if T is None else m @ T.T                                   # (F, frames, bins)
    return np.ascontiguousarray(np.swapaxes(out, 1, 2), dtype=np.float32)


def _track_grid(rep: Representation, sr_track: int) -> dict[str, Any]:
    """STFT settings at the track's own rate that span the same time and frequency per frame."""
    ratio = sr_track / rep.sr
    n_fft = int(2 * round(rep.n_fft * ratio / 2))
    hop = max(1, int(round(rep.hop_length * ratio)))
    win = None if rep.win_length is None else int(round(rep.win_length * ratio))
    return {"n_fft": n_fft, "hop_length": hop, "win_length": win}


def _interpolate_mask(mask: np.ndarray, rep: Representation, sr_track: int, grid: dict,
                      n_frames_track: int) -> np.ndarray:
    """(F, bins_model, frames_model) -> (F, bins_track, frames_track), linear in Hz and seconds."""
    f_model = np.arange(mask.shape[1]) * rep.sr / rep.n_fft
    f_track = np.arange(grid["n_fft"] // 2 + 1) * sr_track / grid["n_fft"]
    t_model = np.arange(mask.shape[2]) * rep.hop_length / rep.sr
    t_track = np.arange(n_frames_track) * grid["hop_length"] / sr_track
    # frequency: interpolate inside the model's band, silence above its Nyquist
    fi = np.clip(np.searchsorted(f_model, f_track) - 1, 0, len(f_model) - 2)
    fw = np.clip((f_track - f_model[fi]) / (f_model[fi + 1] - f_model[fi]), 0, 1)
    ti = np.clip(np.searchsorted(t_model, t_track) - 1, 0, max(len(t_model) - 2, 0))
    if len(t_model) > 1:
        tw = np.clip((t_track - t_model[ti]) / (t_model[ti + 1] - t_model[ti]), 0, 1)
        m = mask[:, :, ti] * (1 - tw) + mask[:, :, np.minimum(ti + 1, len(t_model) - 1)] * tw
    else:
        m = np.repeat(mask, n_frames_track, axis=2)
    out = m[:, fi, :] * (1 - fw)[None, :, None] + m[:, fi + 1, :] * fw[None, :, None]
    out[:, f_track > rep.sr / 2] = 0.0
    return out.astype(np.float32)


def normalise(audio: np.ndarray, sr: int, how: str = "peak") -> np.ndarray:
    """Normalise each row of ``audio`` (n_signals, n_samples).

    ``peak``: to a peak of 0.99; ``loudness``: to -23 LUFS (ITU-R BS.1770 with pyloudnorm),
    lowered if needed so that no sample exceeds 0.99; ``none``: unchanged.  Silent rows stay
    silent.
    """
    _check("normalize", how, NORMALIZATIONS)
    out = np.array(audio, dtype=np.float32, copy=True)
    if how == "none":
        return out
    meter = None
    for i, row in enumerate(out):
        peak = float(np.max(np.abs(row))) if row.size else 0.0
        if peak == 0.0 or not np.isfinite(peak):
            out[i] = 0.0
            continue
        gain = PEAK / peak
        if how == "loudness":
            import pyloudnorm

            meter = meter or pyloudnorm.Meter(sr)
            try:
                lufs = meter.integrated_loudness(row.astype(np.float64))
            except ValueError:  # shorter than one 400 ms gating block
                lufs = -np.inf
            if np.isfinite(lufs):
                gain = min(gain, 10.0 ** ((TARGET_LUFS - lufs) / 20.0))
        out[i] = row * gain
    return out


def auralise_masks(
    masks: np.ndarray,
    analysis: Analysis,
    *,
    audio: np.ndarray | None = None,
    sr: int | None = None,
    reading: str = "mask",
    sign: str = "signed",
    output_sr: str = "track",
    normalize: str = "peak",
    thumbnail: tuple[int, int] = THUMBNAIL,
    chunk: int = 8,
) -> tuple[np.ndarray, int, np.ndarray]:
    """Masks in the model input's domain -> audio.

    Parameters
    ----------
    masks : np.ndarray, shape (n_features, n_frames, n_bands)
    analysis : Analysis
        The track through the model's representation (its STFT is at the model's rate).
    audio, sr : np.ndarray (n_samples,), int, optional
        The track at its own rate, for ``output_sr="track"``.
    reading, sign, output_sr, normalize
        See the module documentation.
    thumbnail : (int, int)
        Size (bins, frames) of the returned spectrogram thumbnails.
    chunk : int
        Features inverted together (small chunks keep the buffers warm in memory).

    Returns
    -------
    audio : np.ndarray, float32, shape (n_features, n_samples)
    sr : int
        Sample rate of ``audio``.
    thumbnails : np.ndarray, float32, shape (n_features, *thumbnail)
        Each output's spectrogram in dB (low frequencies in row 0), block maxima; for pictures.
    """
    import librosa

    _check("output_sr", output_sr, OUTPUT_RATES)
    _check("normalize", normalize, NORMALIZATIONS)
    rep = analysis.representation
    track_rate = output_sr == "track" and audio is not None and sr is not None and int(sr) > rep.sr
    if track_rate:
        grid = _track_grid(rep, int(sr))
        S = librosa.stft(np.asarray(audio, np.float64), window=_window(rep, grid),
                         center=rep.center, pad_mode=rep.pad_mode, **grid).astype(np.complex64)
        out_sr, n = int(sr), len(audio)
    else:
        grid = {"n_fft": rep.n_fft, "hop_length": rep.hop_length, "win_length": rep.win_length}
        S = analysis.stft.astype(np.complex64, copy=False)
        out_sr, n = rep.sr, len(analysis.audio)
    window = _window(rep, grid)
    absS = np.abs(S)
    out = np.empty((len(masks), n), np.float32)
    thumbs = np.empty((len(masks), *thumbnail), np.float32)
    for c0 in range(0, len(masks), chunk):
        M = stft_domain_mask(masks[c0:c0 + chunk], analysis, reading=reading, sign=sign)
        if track_rate:
            M = _interpolate_mask(M, rep, out_sr, grid, S.shape[1])
        out[c0:c0 + chunk] = librosa.istft(M * S, window=window, center=rep.center, length=n,
                                           **grid)
        # thumbnails from a strided subsample (about 2 values per pixel each way)
        sb = max(1, M.shape[1] // (2 * thumbnail[0]))
        st = max(1, M.shape[2] // (2 * thumbnail[1]))
        sub = np.abs(M[:, ::sb, ::st]) * absS[None, ::sb, ::st]
        for i, m in enumerate(sub):
            thumbs[c0 + i] = _thumbnail_db(m, thumbnail)
    return normalise(out, out_sr, normalize), out_sr, thumbs


def _thumbnail_db(spec: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(bins, frames) magnitude -> (rows, cols) dB image of block maxima, row 0 = lowest bins."""
    h, w = shape
    bi = np.minimum(np.linspace(0, spec.shape[0], h + 1).astype(int)[:-1], spec.shape[0] - 1)
    ti = np.minimum(np.linspace(0, spec.shape[1], w + 1).astype(int)[:-1], spec.shape[1] - 1)
    small = np.maximum.reduceat(np.maximum.reduceat(spec, bi, axis=0), ti, axis=1)
    return 20.0 * np.log10(np.maximum(small, 1e-10))


def _window(rep: Representation, grid: dict) -> np.ndarray:
    import scipy.signal

    n = grid["win_length"] or grid["n_fft"]
    return scipy.signal.get_window(rep.window, n, fftbins=not rep.window_symmetric)


def write_audio(path: str | os.PathLike, audio: np.ndarray, sr: int) -> Path:
    """Write one signal as WAV or FLAC (by suffix), 16-bit PCM, atomically.

    Raises
    ------
    OutputError
        Unsupported suffix, or the file cannot be written (e.g. the disk is full).
    """
    import soundfile as sf

    from ._io import atomic_path

    path = Path(path)
    fmt = {".wav": "WAV", ".flac": "FLAC"}.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(f"{path.name}: audio is written as .wav or .flac")
    try:
        # quantised here (rounded, clipped): libsndfile's own float conversion is 2x slower
        pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
        with atomic_path(path) as tmp:
            sf.write(tmp, pcm, sr, format=fmt, subtype="PCM_16")
    except (OSError, RuntimeError) as exc:
        raise OutputError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return path


@dataclass
class Auralisation:
    """Auralised features of one layer for one track.

    Attributes
    ----------
    audio : np.ndarray, float32, shape (n_features, n_samples)
        One signal per feature, at ``sr``.
    sr : int
        Sample rate in Hz.
    features : list of int
    thumbnails : np.ndarray, float32, shape (n_features, 64, 128)
        The auralisations' spectrograms in dB, small (for pictures).
    deconvolution : DeconvResult
        The masks and activation statistics they came from.
    settings : dict
        reading, sign, output_sr, normalize.
    """

    audio: np.ndarray
    sr: int
    features: list[int]
    thumbnails: np.ndarray
    deconvolution: DeconvResult
    settings: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: str | os.PathLike, *, format: str = "wav",  # noqa: A002
             png: bool = True) -> list[Path]:
        """Write ``f{k:03d}.wav`` (or ``.flac``) per feature, and a grid PNG of the layer.

        Returns
        -------
        list of Path
            The files written.
        """
        from ._io import prepare_folder
        from .plot import feature_grid

        if format not in ("wav", "flac"):
            raise InvalidOptionError(f"format must be 'wav' or 'flac'; got {format!r}")
        folder = prepare_folder(folder)
        written = [write_audio(folder / f"f{k:03d}.{format}", a, self.sr)
                   for k, a in zip(self.features, self.audio)]
        if png:
            d = self.deconvolution
            written.append(feature_grid(
                self.thumbnails, self.features, d.dead, d.activation_max, folder / "grid.png",
                title=f"{d.model} / {d.layer.name} / {d.method}, {d.target}"))
        return written


def auralise(model: Any, audio: np.ndarray, sr: int, *, layer: str | int, features: Any = None,
             method: str = "deconvnet", target: str = "map", reading: str = "mask",
             sign: str = "signed", output_sr: str = "track", normalize: str = "peak",
             **engine_options: Any) -> Auralisation:
    """Deconvolve features of a layer and turn each into sound.

    Parameters
    ----------
    model : FrozenModel, keras.Model or path
        A model (anything :func:`mirdeconv.load_model` opens; pass ``representation=``
        for Keras models).
    audio : np.ndarray, shape (n_samples,)
        Mono track.
    sr : int
        Its sample rate in Hz.
    layer, features, method, target
        As for :func:`mirdeconv.deconvolve`.
    reading, sign, output_sr, normalize
        See the module documentation.
    **engine_options
        ``mode``, ``memory``, ``progress``, ``precision`` for the engine.

    Returns
    -------
    Auralisation
    """
    from .audio import validate
    from .engine import deconvolve
    from .models import load_model

    if not (hasattr(model, "layers") and hasattr(model, "program")):
        model = load_model(model, **{k: engine_options.pop(k) for k in
                                     ("representation", "input_axes", "allow_unsafe")
                                     if k in engine_options})

    for name, value, choices in (("reading", reading, READINGS), ("sign", sign, SIGNS),
                                 ("output_sr", output_sr, OUTPUT_RATES),
                                 ("normalize", normalize, NORMALIZATIONS)):
        _check(name, value, choices)
    audio = validate(audio, sr)
    res = deconvolve(model, audio, sr, layer=layer, features=features, method=method,
                     target=target, **engine_options)
    y, out_sr, thumbs = auralise_masks(res.masks, res.analysis, audio=audio, sr=int(sr),
                                       reading=reading, sign=sign, output_sr=output_sr,
                                       normalize=normalize)
    return Auralisation(audio=y, sr=out_sr, features=res.features, thumbnails=thumbs,
                        deconvolution=res,
                        settings={"reading": reading, "sign": sign, "output_sr": output_sr,
                                  "normalize": normalize})



class _CallableModule(types.ModuleType):
    """``mirdeconv.auralise`` is both this module and its main function."""

    def __call__(self, *args: Any, **kwargs: Any) -> Auralisation:
        return auralise(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
