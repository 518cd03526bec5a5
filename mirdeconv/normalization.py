"""How a model's input is normalised before the network: one table, name -> normalisation.

Models trained on normalised inputs see the representation's frames through one of these
(:attr:`mirdeconv.model.FrozenModel.input_normalization`).  A normalisation of each patch
(Essentia's ``TensorNormalize`` in ``TensorflowPredictTempoCNN``; CREPE's frames) forces
the track through the model in patches; one of the whole track (Schreiber's ``tempocnn``
package: one mean and standard deviation, or one maximum, for all of a track's windows)
is applied to the frames once, before they are cut.  The engine deconvolves with respect
to the normalised input, as the network sees it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import InvalidOptionError

__all__ = ["Normalization", "INPUT_NORMALIZATIONS", "get_normalization", "standardize", "divide_by_max"]


def standardize(x: np.ndarray) -> np.ndarray:
    """Each item of ``x`` (n, frames, bands) to zero mean and unit standard deviation
    (an item with no variance is left as it is)."""
    x = np.asarray(x, np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True, dtype=np.float64)
    std = x.std(axis=(1, 2), keepdims=True, dtype=np.float64)
    ok = std > 0
    return np.where(ok, (x - mean) / np.where(ok, std, 1), x).astype(np.float32)


def divide_by_max(x: np.ndarray) -> np.ndarray:
    """Each item of ``x`` (n, frames, bands) divided by its maximum (when positive)."""
    x = np.asarray(x, np.float32)
    peak = x.max(axis=(1, 2), keepdims=True)
    return np.where(peak > 0, x / np.where(peak > 0, peak, 1), x).astype(np.float32)


@dataclass(frozen=True)
class Normalization:
    """One way of normalising a model's input.

    Attributes
    ----------
    name : str
    per_patch : bool
        Applied to each patch (the model then always takes patches), else to the track.
    apply : callable
        ``(n, frames, bands) -> (n, frames, bands)``, each item on its own.
    description : str
    """

    name: str
    per_patch: bool
    apply: Callable[[np.ndarray], np.ndarray]
    description: str


def _identity(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32)


#: Every input normalisation, by name.
INPUT_NORMALIZATIONS: dict[str, Normalization] = {n.name: n for n in (
    Normalization("none", False, _identity, "the frames as the representation gives them"),
    Normalization("patch", True, standardize,
                  "each patch to zero mean and unit variance (Essentia's TempoCNN, CREPE)"),
    Normalization("track", False, standardize,
                  "the whole track to zero mean and unit variance (tempocnn's std_normalizer)"),
    Normalization("track-max", False, divide_by_max,
                  "the whole track divided by its maximum (tempocnn's max_normalizer)"),
)}


def get_normalization(name: str) -> Normalization:
    """The normalisation called ``name``.

    Raises
    ------
    InvalidOptionError
        Naming the known ones.
    """
    if name not in INPUT_NORMALIZATIONS:
        raise InvalidOptionError(f"unknown input normalization {name!r}; "
                                 f"known: {', '.join(INPUT_NORMALIZATIONS)}")
    return INPUT_NORMALIZATIONS[name]
