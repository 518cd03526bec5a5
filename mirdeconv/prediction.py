"""A model's class activations for a track, patch by patch."""

from __future__ import annotations

import numpy as np

from .engine import check_model, model_input, run_graph
from .model import FrozenModel

__all__ = ["predict", "top_tags", "tempo", "TOP"]

#: How many tags people are shown by default.
TOP = 5


def predict(model: FrozenModel, audio: np.ndarray, sr: float) -> tuple[np.ndarray, list[str], str]:
    """Class activations of a track, patch by patch.

    Models with a runtime of their own (Essentia models: ``TensorflowPredict*``) run through
    it; others through their frozen graph, on patches of the model's input length as the
    engine cuts them.

    Parameters
    ----------
    model : FrozenModel
    audio : np.ndarray, shape (n_samples,)
        Mono track.
    sr : float
        Its sample rate in Hz.

    Returns
    -------
    activations : np.ndarray, shape (n_patches, n_classes)
    labels : list of str
    how : str
        Which runtime computed them, for people.
    """
    model = check_model(model)
    native = model.native_predict(audio, sr)
    if native is not None:
        return native
    frames = model.representation.prepare(audio, sr).frames
    x, _ = model_input(model, frames, whole=model.input_length is None)
    act = run_graph(model, x).reshape(len(x), -1)
    labels = list(model.labels or [str(i) for i in range(act.shape[-1])])
    return act, labels, "the frozen graph"


def top_tags(activations: np.ndarray, labels: list[str], top: int = TOP) -> list[tuple[str, float]]:
    """The ``top`` labels by mean activation over the patches, with their means."""
    mean = np.asarray(activations).mean(axis=0)
    return [(labels[k], float(mean[k])) for k in np.argsort(-mean)[:top]]


def tempo(activations: np.ndarray, labels: list[str]) -> float:
    """The global tempo in BPM of a tempo model's output (the class with the largest mean
    probability over the patches, as Essentia's ``TempoCNN`` gives its global tempo)."""
    return float(labels[int(np.asarray(activations).mean(axis=0).argmax())])
