"""Pictures of spectrograms and masks (librosa.display on matplotlib's Agg canvas)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .representations import MelSpectrogram, Representation

__all__ = ["specshow", "mask_figure", "save_figure", "feature_grid", "pictures", "thin"]

#: Frames a picture's time axis needs at most (a panel is a few hundred pixels wide).
PICTURE_COLUMNS = 800


def thin(data: np.ndarray, rep: Representation, columns: int = PICTURE_COLUMNS,
         signed: bool = False) -> tuple[np.ndarray, Representation]:
    """(frames, bins) -> at most ``columns`` frames, each the block's maximum (``signed``:
    the value of largest magnitude, sign kept), with the representation whose hop matches:
    drawing a 30-minute mask takes no more memory or time than a 30-second one.
    """
    from dataclasses import replace

    f = max(1, -(-data.shape[0] // columns))
    if f == 1:
        return data, rep
    n = data.shape[0] // f * f
    blocks = data[:n].reshape(-1, f, data.shape[1])
    if signed:
        pick = np.abs(blocks).argmax(axis=1)
        out = np.take_along_axis(blocks, pick[:, None], axis=1)[:, 0]
    else:
        out = blocks.max(axis=1)
    return out, replace(rep, hop_length=rep.hop_length * f)


def specshow(ax: Any, data: np.ndarray, rep: Representation, **kw: Any) -> Any:
    """``librosa.display.specshow`` of frames (n_frames, n_bands) on the representation's axes."""
    import librosa.display

    y_axis = "mel" if isinstance(rep, MelSpectrogram) else "log"
    extra = {}
    if isinstance(rep, MelSpectrogram):
        extra = {"fmin": rep.fmin, "fmax": rep.fmax or rep.sr / 2, "htk": rep.htk}
    return librosa.display.specshow(
        data.T, sr=rep.sr, hop_length=rep.hop_length, x_axis="time", y_axis=y_axis, ax=ax,
        **extra, **kw,
    )


def pictures(frames: np.ndarray, mask: np.ndarray, rep: Representation
             ) -> tuple[np.ndarray, np.ndarray, Representation]:
    """What to draw for a track's model input and a feature's mask: the frames and the mask
    themselves on the representation's axes; for a waveform model their spectrograms (the
    magnitude of the track's, the mask signal's), on a linear-frequency axis.

    Returns
    -------
    (input (n, bins), mask (n, bins), the representation to draw them with)
    """
    from .representations import LinearSpectrogram, Waveform

    if not isinstance(rep, Waveform):
        return frames, mask, rep
    axes = LinearSpectrogram(sr=rep.sr, n_fft=rep.n_fft, hop_length=rep.hop_length)
    n = len(frames) - 2 * rep.pad
    return (np.abs(rep.stft(rep.signal(frames[None], n)[0])).T,
            np.abs(rep.stft(rep.signal(mask[None], n)[0])).T, axes)


def mask_figure(
    frames: np.ndarray, mask: np.ndarray, rep: Representation, title: str = "",
    mask_title: str = "deconvolution",
) -> Any:
    """The model input beside a deconvolved mask, on the same time axis.

    Parameters
    ----------
    frames : np.ndarray, shape (n_frames, n_bands)
        The model input of the track.
    mask : np.ndarray, shape (n_frames, n_bands)
        A feature's deconvolution (signed; shown with a diverging colour map around 0).
    rep : Representation
        Gives the time and frequency axes.
    title : str
        Figure title.
    mask_title : str
        The mask's panel's title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    frames, mask, rep = pictures(frames, mask, rep)
    frames, thin_rep = thin(frames, rep)
    mask, _ = thin(mask, rep, signed=True)
    rep = thin_rep
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, sharex=True, sharey=True)
    shown, label = frames, "input"
    if getattr(rep, "compression", None) is None:  # raw magnitudes: people read decibels
        import librosa

        shown = librosa.amplitude_to_db(np.maximum(frames, 0), ref=np.max, top_db=80.0)
        label = "input (dB)"
    img = specshow(ax1, shown, rep, cmap="magma")
    fig.colorbar(img, ax=ax1)
    ax1.set_title(label)
    lim = float(np.percentile(np.abs(mask), 99.5)) or float(np.abs(mask).max()) or 1.0
    img = specshow(ax2, mask, rep, cmap="coolwarm", vmin=-lim, vmax=lim)
    fig.colorbar(img, ax=ax2)
    ax2.set_title(mask_title)
    if title:
        fig.suptitle(title)
    return fig


def save_figure(fig: Any, path: Any, dpi: int = 80) -> None:
    """Write a figure as PNG atomically."""
    from .store import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


def feature_grid(
    thumbnails: np.ndarray,
    features: list[int],
    dead: np.ndarray,
    activation_max: np.ndarray,
    path: Any,
    *,
    title: str = "",
) -> Any:
    """One PNG with every feature of a layer as a small spectrogram.

    Each tile is a feature's spectrogram in dB (low frequencies at the bottom, time to the
    right, 70 dB below the tile's own peak in black); dead features are left dark and
    labelled "dead".  Drawn straight into an image (a 64-tile matplotlib figure would take
    the batch job longer than the deconvolution).

    Parameters
    ----------
    thumbnails : np.ndarray, shape (n_features, rows, cols)
        Small spectrograms in dB, row 0 = lowest frequencies (from
        :func:`mirdeconv.auralisation.auralise_masks`).
    features : list of int
        Feature indices, for the labels.
    dead : np.ndarray of bool
    activation_max : np.ndarray
        Shown in each label.
    path : str or Path
        Where to write the PNG (atomically).
    """
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    from .store import atomic_path

    n = len(features)
    cols = max(1, int(np.ceil(np.sqrt(n * 2))))
    rows = int(np.ceil(n / cols))
    h, w = thumbnails.shape[1:]
    head, pad, top = 13, 4, 18 if title else 0
    canvas = np.ones((top + rows * (h + head + pad), cols * (w + pad), 4), np.float32)
    cmap = colormaps["magma"]
    for i, db in enumerate(thumbnails):
        r, c = divmod(i, cols)
        y0, x0 = top + r * (h + head + pad) + head, c * (w + pad)
        if dead[i] or db.max() <= -199.0:  # silent
            img = np.zeros((h, w))
        else:
            img = np.clip((db[::-1] - (db.max() - 70.0)) / 70.0, 0.0, 1.0)
        canvas[y0:y0 + h, x0:x0 + w] = cmap(img)
    im = Image.fromarray((canvas * 255).astype(np.uint8), "RGBA").convert("RGB")
    draw = ImageDraw.Draw(im)
    if title:
        draw.text((4, 3), title, fill=(0, 0, 0))
    for i, k in enumerate(features):
        r, c = divmod(i, cols)
        label = f"{k}: dead" if dead[i] else f"{k}: max {activation_max[i]:.3g}"
        draw.text((c * (w + pad) + 2, top + r * (h + head + pad)), label,
                  fill=(200, 40, 40) if dead[i] else (0, 0, 0))
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")
    return path
