"""mirdeconv: see and hear what every feature map of a music CNN responds to.

Zeiler-Fergus deconvolution of feature maps back into the input spectrogram, and its
auralisation, as in Choi, Fazekas & Sandler, "Explaining Deep Convolutional Neural Networks
on Music Classification" (2016); and a computational analysis of what each feature detects.

>>> import mirdeconv
>>> model = mirdeconv.load_model("net.keras", representation="choi2016-stft")  # doctest: +SKIP
>>> y, sr = mirdeconv.audio.load("song.wav")                                     # doctest: +SKIP
>>> res = mirdeconv.deconvolve(model, y, sr, layer="pool3", features="0-63")     # doctest: +SKIP
>>> res.masks.shape  # (features, frames, bands)                                 # doctest: +SKIP
>>> sound = mirdeconv.auralise(model, y, sr, layer="pool3", features="0-7")      # doctest: +SKIP
>>> table = mirdeconv.analyse(model, layers=["pool1"]).per_feature               # doctest: +SKIP

Importing mirdeconv does not import TensorFlow; that happens on first use, through
:mod:`mirdeconv.backend`, which also keeps Essentia and TensorFlow in a safe order.
"""

from __future__ import annotations

from . import audio, errors, options, representations
from .analysis import AnalysisResult, analyse
from .auralisation import Auralisation, auralise
from .engine import DeconvResult, deconvolve
from .errors import (
    AudioError,
    AudioFileNotFoundError,
    AudioTooShortError,
    BackendError,
    EssentiaImportOrderError,
    FeatureIndexError,
    InvalidAudioError,
    InvalidOptionError,
    MirdeconvError,
    ModelError,
    ModelLoadError,
    NoFeatureLayersError,
    OutputError,
    SilentAudioError,
    UnknownLayerError,
    UnsafeModelError,
    UnsupportedAudioError,
    UnsupportedGraphError,
)
from .explanations import ExplainOptions, Explanation, explain
from .loading import load_model
from .model import FrozenModel
from .options import DeconvOptions, SoundOptions
from .prediction import predict

__version__ = "0.1.0"
__all__ = [
    "load_model", "deconvolve", "auralise", "analyse", "explain", "predict", "FrozenModel",
    "DeconvResult", "Explanation",
    "Auralisation", "AnalysisResult", "DeconvOptions", "SoundOptions", "ExplainOptions", "audio", "errors",
    "options", "representations", "MirdeconvError", "AudioError", "AudioFileNotFoundError",
    "UnsupportedAudioError", "InvalidAudioError", "SilentAudioError", "AudioTooShortError",
    "ModelError", "ModelLoadError", "UnsafeModelError", "NoFeatureLayersError",
    "UnknownLayerError", "FeatureIndexError", "UnsupportedGraphError", "InvalidOptionError",
    "OutputError", "BackendError", "EssentiaImportOrderError", "__version__",
]
