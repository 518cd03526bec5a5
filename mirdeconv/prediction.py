"""A model's class activations for a track, patch by patch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .engine import check_model, model_input, run_graph
from .model import FrozenModel

__all__ = ["predict", "top_tags", "tempo", "pitch", "summary", "SUMMARIES", "TOP"]

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


def pitch(activations: np.ndarray, labels: list[str], threshold: float = 0.5) -> np.ndarray:
    """Per frame the pitch in Hz of a pitch model's output (CREPE: the activation-weighted
    average, in cents, of the 9 bins around the strongest, as CREPE's own decoding); NaN where
    the strongest activation is below ``threshold`` (no pitch)."""
    act = np.asarray(activations, np.float64)
    cents = 1200 * np.log2(np.asarray(labels, np.float64) / 10.0)
    out = np.full(len(act), np.nan)
    for t, a in enumerate(act):
        k = int(a.argmax())
        if a[k] < threshold:
            continue
        lo, hi = max(0, k - 4), min(len(a), k + 5)
        w = a[lo:hi]
        out[t] = 10 * 2 ** ((w @ cents[lo:hi]) / w.sum() / 1200)
    return out


def tempo(activations: np.ndarray, labels: list[str]) -> float:
    """The global tempo in BPM of a tempo model's output (the class with the largest mean
    probability over the patches, as Essentia's ``TempoCNN`` gives its global tempo)."""
    return float(labels[int(np.asarray(activations).mean(axis=0).argmax())])


def _tags(act: np.ndarray, labels: list[str], top: int) -> list[tuple[str, str]]:
    return [(tag, f"{score:.3f}") for tag, score in top_tags(act, labels, top)]


def _tempo(act: np.ndarray, labels: list[str], top: int) -> list[tuple[str, str]]:
    return [("tempo", f"{tempo(act, labels):g} BPM")]


def _pitch(act: np.ndarray, labels: list[str], top: int) -> list[tuple[str, str]]:
    f0 = pitch(act, labels)
    voiced = f0[np.isfinite(f0)]
    if not len(voiced):
        return [("pitch", f"none (no voiced frame of {len(f0)})")]
    return [("pitch", f"{np.median(voiced):.1f} Hz (median of {len(voiced)} voiced frames "
                      f"of {len(f0)})")]


#: What a model's output says, per task: (activations, labels, top) -> (name, value) pairs.
SUMMARIES: dict[str, Callable[[np.ndarray, list[str], int], list[tuple[str, str]]]] = {
    "tags": _tags, "tempo": _tempo, "pitch": _pitch,
}


def summary(activations: np.ndarray, labels: list[str], task: str = "tags",
            top: int = TOP) -> list[tuple[str, str]]:
    """What a model's output says, for people: its ``top`` tags with their mean activations,
    its tempo (BPM) or its pitch (Hz), as (name, value) pairs."""
    return SUMMARIES.get(task, _tags)(activations, labels, top)
