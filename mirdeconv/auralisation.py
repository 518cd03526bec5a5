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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .engine import DeconvResult, deconv_options, deconvolve, read_block, release_pages
from .engine.memory import track_zeros
from .errors import renamed
from .inversion import BLOCK_FRAMES, invert_blocks, stft_frames
from .model import FrozenModel
from .options import NORMALIZATIONS, SIGNS, DeconvOptions, SoundOptions, check_choice, resolve
from .progress import ProgressArg
from .representations import MelSpectrogram, Representation, TrackInput, Waveform
from .store import feature_file, prepare_folder, write_audio

__all__ = [
    "apply_sign", "stft_domain_mask", "signals", "auralise_masks", "normalize",
    "stft_window", "Auralisation", "auralise", "auralise_result", "features_per_group",
]

#: Peak level of ``normalize="peak"`` (-0.09 dBFS) and the ceiling of ``"loudness"``.
PEAK = 0.99
#: Target of ``normalize="loudness"``, in LUFS (EBU R128).
TARGET_LUFS = -23.0
#: Size (bins, frames) of the spectrogram thumbnails kept for pictures.
THUMBNAIL = (64, 128)


def apply_sign(mask: np.ndarray, sign: str = SoundOptions.sign) -> np.ndarray:
    """``signed``: as is; ``positive``: negative values to 0; ``absolute``: absolute values."""
    check_choice("sign", sign, SIGNS)
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


#: ``reading="magnitude"``: the largest magnitude a deconvolution read as a spectrogram may
#: take, as a multiple of the track's loudest STFT bin (+60 dB).
MAGNITUDE_CAP = 1e3


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


def stft_domain_mask(masks: np.ndarray, track: TrackInput, sound: SoundOptions = SoundOptions(),
                     frames: slice | None = None, peak: float | None = None) -> np.ndarray:
    """Masks in the model input's domain -> masks on the track's STFT grid (model rate).

    Parameters
    ----------
    masks : np.ndarray, shape (n_features, n_frames, n_bands)
    track : TrackInput
        The track seen through the model's representation.
    sound : SoundOptions
        Its ``reading`` and ``sign`` apply.
    frames : slice, optional
        The track's frames ``masks`` cover (default: all of them).
    peak : float, optional
        The track's largest STFT magnitude (``reading="magnitude"``; default: computed).

    Returns
    -------
    np.ndarray, float32, shape (n_features, 1 + n_fft // 2, n_frames)
        Multiplies ``track.stft``.  For a waveform model (the mask is a signal) the ratio of
        the signal's STFT to the track's, complex: times ``track.stft`` it is the signal's.
    """
    rep = track.representation
    if isinstance(rep, Waveform):
        return _waveform_ratio(masks, track, sound)
    m = apply_sign(np.asarray(masks, np.float32), sound.sign)
    T = _bands_to_bins(rep)
    if sound.reading == "magnitude":
        peak = max(stft_peak(track) if peak is None else peak, 1e-12)
        with np.errstate(over="ignore"):          # a deep deconvolution is not bounded
            mag = _invert_compression(m.astype(np.float64), rep)      # (F, frames, bands)
        mag = np.minimum(mag, MAGNITUDE_CAP * peak)   # inf times the filterbank's 0s: NaN
        mag = mag if T is None else mag @ T.T.astype(np.float64)       # (F, frames, bins)
        orig = np.abs(read_block(track.stft, np.s_[:, frames or slice(None)])).T.astype(
            np.float64)                                                 # (frames, bins)
        out = mag / np.maximum(orig, 1e-3 * peak)
        return np.ascontiguousarray(np.swapaxes(out, 1, 2), dtype=np.float32)
    out = m if T is None else m @ T.T                                   # (F, frames, bins)
    return np.ascontiguousarray(np.swapaxes(out, 1, 2), dtype=np.float32)


def stft_peak(track: TrackInput) -> float:
    """The largest magnitude of the track's STFT (computed block by block)."""
    S = track.stft
    return max((float(np.abs(read_block(S, np.s_[:, t:t + BLOCK_FRAMES])).max(initial=0.0))
                for t in range(0, S.shape[1], BLOCK_FRAMES)), default=0.0)


def _waveform_ratio(masks: np.ndarray, track: TrackInput, sound: SoundOptions) -> np.ndarray:
    """STFT(signal) / STFT(track) of a waveform model's masks (0 where the track is silent)."""
    rep = track.representation
    Y = rep.stft(signals(masks, track, sound))                       # (F, bins, frames)
    X = track.stft[None]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(np.abs(X) > 0, Y / np.where(np.abs(X) > 0, X, 1), 0)
    return out.astype(np.complex64)


def signals(masks: np.ndarray, track: TrackInput, sound: SoundOptions) -> np.ndarray:
    """A waveform model's masks as signals (F, n_samples), the sign rule applied."""
    return apply_sign(track.representation.signal(masks, len(track.audio)).astype(np.float32),
                      sound.sign)


def _track_grid(rep: Representation, sr_track: int) -> dict[str, Any]:
    """STFT settings at the track's own rate that span the same time and frequency per frame."""
    ratio = sr_track / rep.sr
    n_fft = int(2 * round(rep.n_fft * ratio / 2))
    hop = max(1, int(round(rep.hop_length * ratio)))
    win = None if rep.win_length is None else int(round(rep.win_length * ratio))
    return {"n_fft": n_fft, "hop_length": hop, "win_length": win}


def _time_weights(rep: Representation, sr_track: int, grid: dict, f0: int, f1: int,
                  n_model: int) -> tuple[np.ndarray, np.ndarray]:
    """For track frames f0 .. f1-1: the model frame before each (index) and the weight of the
    one after it, linear in seconds."""
    t_model = np.arange(n_model) * rep.hop_length / rep.sr
    t_track = np.arange(f0, f1) * grid["hop_length"] / sr_track
    ti = np.clip(np.searchsorted(t_model, t_track) - 1, 0, max(n_model - 2, 0))
    if n_model < 2:
        return ti, np.zeros(len(ti))
    return ti, np.clip((t_track - t_model[ti]) / (t_model[ti + 1] - t_model[ti]), 0, 1)


#: Track frames interpolated at once by :func:`_interpolate_mask` (its float64 temporaries are
#: a few times (features x bins x frames)).
INTERPOLATE_FRAMES = 1024


def _interpolate_mask(mask_of: Any, rep: Representation, sr_track: int, grid: dict,
                      f0: int, f1: int, n_model: int) -> np.ndarray:
    """Track frames f0 .. f1-1 of a mask on the model's grid -> (F, bins_track, f1 - f0) on the
    track's, float32, linear in Hz and seconds; ``mask_of(m0, m1)`` gives the model frames
    m0 .. m1-1 as (F, bins_model, m1 - m0).  Computed in float64, :data:`INTERPOLATE_FRAMES`
    frames at a time."""
    ti, tw = _time_weights(rep, sr_track, grid, f0, f1, n_model)
    m0, m1 = int(ti.min()), min(n_model, int(ti.max()) + 2)
    mask = mask_of(m0, m1)
    f_model = np.arange(mask.shape[1]) * rep.sr / rep.n_fft
    f_track = np.arange(grid["n_fft"] // 2 + 1) * sr_track / grid["n_fft"]
    # frequency: interpolate inside the model's band, silence above its Nyquist
    fi = np.clip(np.searchsorted(f_model, f_track) - 1, 0, len(f_model) - 2)
    fw = np.clip((f_track - f_model[fi]) / (f_model[fi + 1] - f_model[fi]), 0, 1)
    out = np.empty((len(mask), len(f_track), f1 - f0), np.float32)
    for a in range(0, f1 - f0, INTERPOLATE_FRAMES):
        b = min(f1 - f0, a + INTERPOLATE_FRAMES)
        if n_model > 1:
            i, w = ti[a:b], tw[a:b]
            m = mask[:, :, i - m0] * (1 - w) + mask[:, :, np.minimum(i + 1, n_model - 1) - m0] * w
        else:
            m = np.repeat(mask, b - a, axis=2)
        out[:, :, a:b] = m[:, fi, :] * (1 - fw)[None, :, None] + m[:, fi + 1, :] * fw[None, :, None]
    out[:, f_track > rep.sr / 2] = 0.0
    return out


#: Samples of a row that :func:`normalize` reads or scales at once.
NORMALIZE_BLOCK = 1 << 20


def _row_peak(row: np.ndarray) -> float:
    """``max(|row|)`` (NaN if any sample is not finite), block by block (no copy of the
    row)."""
    peak = 0.0
    for a in range(0, len(row), NORMALIZE_BLOCK):
        block = row[a:a + NORMALIZE_BLOCK]
        hi, lo = float(np.max(block)), float(np.min(block))
        if not (np.isfinite(hi) and np.isfinite(lo)):
            return float("nan")
        peak = max(peak, hi, -lo)
    return peak


def normalize(audio: np.ndarray, sr: int, how: str = SoundOptions.normalize, copy: bool = True
              ) -> np.ndarray:
    """Normalise each row of ``audio`` (n_signals, n_samples).

    ``peak``: to a peak of 0.99; ``loudness``: to -23 LUFS (ITU-R BS.1770 with pyloudnorm),
    lowered if needed so that no sample exceeds 0.99; ``none``: unchanged.  Silent rows stay
    silent.  ``copy=False``: in place when ``audio`` is float32 (a memory map, say
    :func:`mirdeconv.engine.memory.track_zeros`'s, is read and scaled block by block, its
    pages given back).
    """
    check_choice("normalize", how, NORMALIZATIONS)
    out = np.array(audio, dtype=np.float32, copy=True) if copy else \
        audio if isinstance(audio, np.ndarray) and audio.dtype == np.float32 else \
        np.asarray(audio, dtype=np.float32)
    if how == "none":
        return out
    meter = None
    for i in range(len(out)):
        row = out[i]
        peak = _row_peak(row) if row.size else 0.0
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
        for a in range(0, len(row), NORMALIZE_BLOCK):    # in place: a long track's row is ~300 MB
            out[i, a:a + NORMALIZE_BLOCK] *= gain
    release_pages(out)
    return out


#: What one chunk of features may hold while it is turned into sound (a float32 mask and
#: its complex product with the STFT, about 20 bytes per STFT bin and frame and feature).
CHUNK_BYTES = 512 << 20
#: Bytes per output sample per feature that turning a group of features into sound and
#: describing it holds: the sound (float32) and its normalised copy, the STFT-domain mask
#: and product, and the descriptors' float64 spectra of the whole signal.
GROUP_BYTES_PER_SAMPLE = 48


def features_per_group(n_samples: int, limit: int = 16) -> int:
    """Features turned into sound (and described, and written) together: as many as keep
    their buffers within :data:`CHUNK_BYTES`, at least one, at most ``limit``."""
    return int(max(1, min(limit, CHUNK_BYTES // max(1, n_samples * GROUP_BYTES_PER_SAMPLE))))


def auralise_masks(
    masks: np.ndarray,
    track: TrackInput,
    *,
    audio: np.ndarray | None = None,
    sr: int | None = None,
    sound: SoundOptions = SoundOptions(),
    thumbnail: tuple[int, int] = THUMBNAIL,
    chunk: int = 8,
    budget: int | None = None,
) -> tuple[np.ndarray, int, np.ndarray]:
    """Masks in the model input's domain -> audio.

    Parameters
    ----------
    masks : np.ndarray, shape (n_features, n_frames, n_bands)
    track : TrackInput
        The track through the model's representation (its STFT is at the model's rate).
    audio, sr : np.ndarray (n_samples,), int, optional
        The track at its own rate, for ``sound.output_sr == "track"``.
    sound : SoundOptions
        Reading, sign, output rate, normalisation (see the module documentation).
    thumbnail : (int, int)
        Size (bins, frames) of the returned spectrogram thumbnails.
    chunk : int
        Features inverted together at most (fewer when one block's STFT-domain buffers,
        :data:`mirdeconv.inversion.BLOCK_FRAMES` frames of each, would pass
        :data:`CHUNK_BYTES`); the track goes block by block (:mod:`mirdeconv.inversion`).
    budget : int, optional
        The memory budget in bytes (default: :attr:`DeconvOptions.budget`'s): sounds that pass
        ``budget / TRACK_SHARE`` are written into a memory map whose pages go back block by
        block (:func:`mirdeconv.engine.memory.track_zeros`).

    Returns
    -------
    audio : np.ndarray, float32, shape (n_features, n_samples)
        (a :class:`mirdeconv.engine.memory.SpilledArray` when it passes that share)
    sr : int
        Sample rate of ``audio``.
    thumbnails : np.ndarray, float32, shape (n_features, *thumbnail)
        Each output's spectrogram in dB (low frequencies in row 0), block maxima; for pictures.
    """
    rep = track.representation
    track_rate = (sound.output_sr == "track" and audio is not None and sr is not None
                  and int(sr) > rep.sr)
    if isinstance(rep, Waveform):
        return _waveform_sound(masks, track, sr if track_rate else None, sound, thumbnail)
    n_model, peak = track.stft.shape[1], None
    if sound.reading == "magnitude":
        peak = stft_peak(track)

    def model_mask(sel: slice) -> Any:
        return lambda f0, f1: stft_domain_mask(masks[sel, f0:f1], track, sound,
                                               frames=slice(f0, f1), peak=peak)

    if track_rate:
        grid = _track_grid(rep, int(sr))
        window = stft_window(rep, grid)
        y = audio if isinstance(audio, np.ndarray) and audio.dtype == np.float32 else \
            np.asarray(audio, np.float32)       # (a spilled track stays a memory map)
        out_sr, n = int(sr), len(y)
        off = grid["n_fft"] // 2 if rep.center else 0
        n_frames = 1 + (n + 2 * off - grid["n_fft"]) // grid["hop_length"]

        def stft_of(f0: int, f1: int) -> np.ndarray:
            return stft_frames(y, f0, f1, grid, window, rep.center, rep.pad_mode)

        def mask_of(sel: slice) -> Any:
            return lambda f0, f1: _interpolate_mask(model_mask(sel), rep, out_sr, grid, f0, f1,
                                                    n_model)
    else:
        grid = {"n_fft": rep.n_fft, "hop_length": rep.hop_length, "win_length": rep.win_length}
        window = stft_window(rep, grid)
        S = track.stft
        out_sr, n, n_frames = rep.sr, len(track.audio), n_model

        def stft_of(f0: int, f1: int) -> np.ndarray:
            return read_block(S, np.s_[:, f0:f1]).astype(np.complex64, copy=False)

        mask_of = model_mask
    n_bins = grid["n_fft"] // 2 + 1
    chunk = max(1, min(chunk, CHUNK_BYTES // max(1, BLOCK_FRAMES * n_bins * 20)))
    step = (max(1, n_bins // (2 * thumbnail[0])), max(1, n_frames // (2 * thumbnail[1])))
    out = track_zeros((len(masks), n), np.float32,
                      DeconvOptions().budget if budget is None else budget)
    thumbs = np.empty((len(masks), *thumbnail), np.float32)
    for c0 in range(0, len(masks), chunk):
        sel = slice(c0, min(len(masks), c0 + chunk))
        _, coarse = invert_blocks(n_frames, n, grid, window, rep.center, mask_of(sel),
                                  stft_of, step, out=out[sel])
        for i, m in enumerate(coarse):
            thumbs[c0 + i] = _thumbnail_db(m, thumbnail)
    return normalize(out, out_sr, sound.normalize, copy=False), out_sr, thumbs


def _waveform_sound(masks: np.ndarray, track: TrackInput, sr: int | None, sound: SoundOptions,
                    thumbnail: tuple[int, int]) -> tuple[np.ndarray, int, np.ndarray]:
    """A waveform model's masks are the sound: cut to the track (and resampled to its own rate
    when asked), normalised; thumbnails from their STFTs."""
    from .audio import resample

    rep = track.representation
    out = signals(masks, track, sound)
    out_sr = rep.sr
    if sr is not None:
        out = np.stack([resample(a, rep.sr, sr) for a in out]) if len(out) else out
        out_sr = int(sr)
    spec = np.abs(rep.stft(out)) if len(out) else np.zeros((0, rep.n_bins, 1))
    thumbs = np.stack([_thumbnail_db(s, thumbnail) for s in spec]) if len(out) else \
        np.zeros((0, *thumbnail), np.float32)
    return normalize(out, out_sr, sound.normalize), out_sr, thumbs.astype(np.float32)


def _thumbnail_db(spec: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(bins, frames) magnitude -> (rows, cols) dB image of block maxima, row 0 = lowest bins."""
    h, w = shape
    bi = np.minimum(np.linspace(0, spec.shape[0], h + 1).astype(int)[:-1], spec.shape[0] - 1)
    ti = np.minimum(np.linspace(0, spec.shape[1], w + 1).astype(int)[:-1], spec.shape[1] - 1)
    small = np.maximum.reduceat(np.maximum.reduceat(spec, bi, axis=0), ti, axis=1)
    return 20.0 * np.log10(np.maximum(small, 1e-10))


def stft_window(rep: Representation, grid: dict) -> np.ndarray:
    """The representation's analysis window for an STFT grid (``n_fft``, ``win_length``)."""
    import scipy.signal

    n = grid["win_length"] or grid["n_fft"]
    return scipy.signal.get_window(rep.window, n, fftbins=not rep.window_symmetric)


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
    sound : SoundOptions
        How they were made.
    """

    audio: np.ndarray
    sr: int
    features: list[int]
    thumbnails: np.ndarray
    deconvolution: DeconvResult
    sound: SoundOptions = field(default_factory=SoundOptions)

    def most_active_first(self) -> np.ndarray:
        """Positions of the features, by decreasing activation maximum."""
        return np.argsort(-self.deconvolution.activation_max, kind="stable")

    def grid(self, path: str | os.PathLike, *, order: np.ndarray | None = None,
             title: str | None = None) -> Path:
        """The layer's features as one PNG of small spectrograms (dead ones marked), in
        ``order`` (positions; default: as computed)."""
        from .plot import feature_grid

        d = self.deconvolution
        idx = np.arange(len(self.features)) if order is None else np.asarray(order)
        return Path(feature_grid(
            self.thumbnails[idx], [self.features[i] for i in idx], d.dead[idx],
            d.activation_max[idx], path,
            title=title or f"{d.model} / {d.layer.name} / {d.method}, {d.target}"))

    def save(self, folder: str | os.PathLike, *, png: bool = True) -> list[Path]:
        """Write ``f{k:03d}.wav`` (or ``.flac``, as ``sound.format``) per feature, and the
        layer's ``grid.png``.

        Returns
        -------
        list of Path
            The files written.
        """
        folder = prepare_folder(folder)
        written = [write_audio(folder / feature_file(k, self.sound.format), a, self.sr)
                   for k, a in zip(self.features, self.audio)]
        if png:
            written.append(self.grid(folder / "grid.png"))
        return written


def auralise(
    model: FrozenModel,
    audio: np.ndarray,
    sr: int,
    *,
    layer: str | int,
    features: Any = None,
    method: str = DeconvOptions.method,
    target: str = DeconvOptions.target,
    mode: str = DeconvOptions.mode,
    precision: str = DeconvOptions.precision,
    memory: int | str | None = None,
    reading: str = SoundOptions.reading,
    sign: str = SoundOptions.sign,
    output_sr: str = SoundOptions.output_sr,
    normalize: str = SoundOptions.normalize,
    format: str = SoundOptions.format,  # noqa: A002 - the file format
    options: DeconvOptions | None = None,
    sound: SoundOptions | None = None,
    progress: ProgressArg = False,
) -> Auralisation:
    """Deconvolve features of a layer and turn each into sound.

    Parameters
    ----------
    model : FrozenModel
        From :func:`mirdeconv.load_model`.
    audio : np.ndarray, shape (n_samples,)
        Mono track.
    sr : int
        Its sample rate in Hz.
    layer, features, method, target, mode, precision, memory
        As for :func:`mirdeconv.deconvolve`.
    reading, sign, output_sr, normalize, format
        See the module documentation (:class:`mirdeconv.options.SoundOptions`).
    options : DeconvOptions, optional
        ``method`` ... ``memory`` in one object.
    sound : SoundOptions, optional
        ``reading`` ... ``format`` in one object.
    progress : bool or callable
        As for :func:`mirdeconv.deconvolve`.

    Returns
    -------
    Auralisation
    """
    from .audio import validate

    opts = deconv_options(options, method, target, mode, precision, memory)
    snd = resolve(SoundOptions, sound, {"reading": reading, "sign": sign, "output_sr": output_sr,
                                        "normalize": normalize, "format": format})
    audio = validate(audio, sr)
    res = deconvolve(model, audio, sr, layer=layer, features=features, options=opts,
                     progress=progress)
    return auralise_result(res, audio, int(sr), snd)


def auralise_result(result: DeconvResult, audio: np.ndarray | None = None, sr: int | None = None,
                    sound: SoundOptions = SoundOptions()) -> Auralisation:
    """The auralisation of a deconvolution (``audio``, ``sr``: the track at its own rate, for
    ``sound.output_sr == "track"``)."""
    y, out_sr, thumbs = auralise_masks(result.masks, result.track, audio=audio, sr=sr,
                                       sound=sound, budget=result.options.budget)
    return Auralisation(audio=y, sr=out_sr, features=result.features, thumbnails=thumbs,
                        deconvolution=result, sound=sound)


#: ``normalise`` is the old, British spelling of :func:`normalize` (deprecated).
__getattr__ = renamed(__name__, {"normalise": "normalize"}, globals())
