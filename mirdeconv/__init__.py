"""mirdeconv: see and hear what every feature map of a music CNN responds to.

Zeiler-Fergus deconvolution of feature maps back into the input spectrogram, as in
Choi, Fazekas & Sandler, "Explaining Deep Convolutional Neural Networks on Music
Classification" (2016).

>>> import mirdeconv
>>> model = mirdeconv.load_model("net.keras", representation="choi2016-stft")  # doctest: +SKIP
>>> y, sr = mirdeconv.audio.load("song.wav")                                     # doctest: +SKIP
>>> res = mirdeconv.deconvolve(model, y, sr, layer="pool3", features="0-63")     # doctest: +SKIP
>>> res.masks.shape  # (features, frames, bands)                                 # doctest: +SKIP

``mirdeconv.auralise(model, y, sr, layer=..., features=...)`` turns features into sound
(the module :mod:`mirdeconv.auralise` is callable).

Importing mirdeconv does not import TensorFlow; that happens on first use, through
:mod:`mirdeconv.backend`, which also keeps Essentia and TensorFlow in a safe order.
"""

from __future__ import annotations

from typing import Any

from . import audio, auralise, errors, representations
from .errors import MirdeconvError

__version__ = "0.1.0"
__all__ = ["load_model", "deconvolve", "auralise", "audio", "errors", "representations",
           "MirdeconvError", "__version__"]


def load_model(source: Any, **kwargs: Any) -> Any:
    """Open a model; see :func:`mirdeconv.models.load_model`."""
    from .models import load_model as _load

    return _load(source, **kwargs)


def deconvolve(model: Any, audio: Any = None, sr: Any = None, **kwargs: Any) -> Any:
    """Deconvolve features of a layer; see :func:`mirdeconv.engine.deconvolve`."""
    from .engine import deconvolve as _deconvolve

    if not hasattr(model, "layers") or not hasattr(model, "program"):
        model = load_model(model, **{k: kwargs.pop(k) for k in ("representation",)
                                     if k in kwargs})
    return _deconvolve(model, audio, sr, **kwargs)

