"""Pictures of spectrograms and masks (librosa.display on matplotlib's Agg canvas)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .representations import MelSpectrogram, Representation

__all__ = ["mask_figure", "save_figure"]


def _specshow(ax: Any, data: np.ndarray, rep: Representation, **kw: Any) -> Any:
    import librosa.display

    y_axis = "mel" if isinstance(rep, MelSpectrogram) else "log"
    extra = {}
    if isinstance(rep, MelSpectrogram):
        extra = {"fmin": rep.fmin, "fmax": rep.fmax or rep.sr / 2, "htk": rep.htk}
    return librosa.display.specshow(
        data.T, sr=rep.sr, hop_length=rep.hop_length, x_axis="time", y_axis=y_axis, ax=ax,
        **extra, **kw,
    )


def mask_figure(
    features: np.ndarray, mask: np.ndarray, rep: Representation, title: str = ""
) -> Any:
    """The model input beside a deconvolved mask, on the same time axis.

    Parameters
    ----------
    features : np.ndarray, shape (n_frames, n_bands)
        The model input of the track.
    mask : np.ndarray, shape (n_frames, n_bands)
        A feature's deconvolution (signed; shown with a diverging colour map around 0).
    rep : Representation
        Gives the time and frequency axes.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.6), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, sharex=True, sharey=True)
    shown, label = features, "input"
    if getattr(rep, "compression", None) is None:  # raw magnitudes: people read decibels
        import librosa

        shown = librosa.amplitude_to_db(np.maximum(features, 0), ref=np.max, top_db=80.0)
        label = "input (dB)"
    img = _specshow(ax1, shown, rep, cmap="magma")
    fig.colorbar(img, ax=ax1)
    ax1.set_title(label)
    lim = float(np.percentile(np.abs(mask), 99.5)) or float(np.abs(mask).max()) or 1.0
    img = _specshow(ax2, mask, rep, cmap="coolwarm", vmin=-lim, vmax=lim)
    fig.colorbar(img, ax=ax2)
    ax2.set_title("deconvolution")
    if title:
        fig.suptitle(title)
    return fig


def save_figure(fig: Any, path: Any, dpi: int = 80) -> None:
    """Write a figure as PNG atomically."""
    from ._io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
