"""The attribution methods of class explanations: rows of one table, one engine.

Every method is the engine's backward pass from a class output (:mod:`mirdeconv.engine`)
with one rule at the non-linearities, run on some inputs made from each patch, the
gradients averaged over those inputs and multiplied by a weight:

======================  ==========  =========================================  ===========
method                  rule        inputs per patch                           weight
======================  ==========  =========================================  ===========
deconvnet               deconvnet   x                                          1
guided                  guided      x                                          1
saliency                saliency    x                                          1
gradient_x_input        saliency    x                                          x
integrated_gradients    saliency    b + (k + 1/2) / m (x - b), k = 0 .. m-1    x - b
smoothgrad              saliency    x + N(0, (s (max x - min x))^2), m times   1
======================  ==========  =========================================  ===========

``b`` is the baseline: the model input of digital silence.  Integrated gradients
(Sundararajan et al., ICML 2017) take the midpoint rule over ``m = steps`` points;
SmoothGrad (Smilkov et al., 2017) ``m = samples`` noisy copies with noise level ``s``, the
noise of patch ``i``, copy ``k`` drawn from ``numpy.random.default_rng([seed, i, k])`` (so
it does not depend on how the work is batched).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidOptionError

__all__ = ["Settings", "Attribution", "ATTRIBUTIONS", "attribution"]


@dataclass(frozen=True)
class Settings:
    """Integrated gradients' ``steps``; SmoothGrad's ``samples``, ``noise`` (a fraction of
    each patch's value range) and ``seed``."""

    steps: int = 32
    samples: int = 16
    noise: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "samples"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise InvalidOptionError(f"{name} must be a positive integer; got {v!r}")
        if not np.isfinite(self.noise) or self.noise < 0:
            raise InvalidOptionError(f"noise must be a non-negative number; got {self.noise!r}")


#: ``(x, b, items, k, settings) -> inputs``: the k-th input of each patch (arrays (B, ...);
#: ``items`` and ``k`` (B,) the patch and input indices).
Inputs = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Settings], np.ndarray]


def _as_is(x: np.ndarray, b: np.ndarray, items: np.ndarray, k: np.ndarray, s: Settings
           ) -> np.ndarray:
    return x


def _path(x: np.ndarray, b: np.ndarray, items: np.ndarray, k: np.ndarray, s: Settings
          ) -> np.ndarray:
    alpha = ((k + 0.5) / s.steps).reshape((-1,) + (1,) * (x.ndim - 1)).astype(np.float32)
    return b + alpha * (x - b)


def _noisy(x: np.ndarray, b: np.ndarray, items: np.ndarray, k: np.ndarray, s: Settings
           ) -> np.ndarray:
    out = np.empty_like(x)
    for j, (i, kk) in enumerate(zip(items, k)):
        sigma = s.noise * float(x[j].max() - x[j].min())
        noise = np.random.default_rng([s.seed, int(i), int(kk)]).standard_normal(x[j].shape)
        out[j] = x[j] + (sigma * noise).astype(np.float32)
    return out


@dataclass(frozen=True)
class Attribution:
    """One method: the engine's ``rule``, how many ``count(settings)`` inputs per patch and
    which (``inputs``), and the ``weight(x, b)`` that multiplies the mean gradient."""

    name: str
    rule: str
    description: str
    count: Callable[[Settings], int] = lambda s: 1
    inputs: Inputs = _as_is
    weight: Callable[[np.ndarray, np.ndarray], np.ndarray | float] = lambda x, b: 1.0


#: Method name -> its row.
ATTRIBUTIONS: dict[str, Attribution] = {a.name: a for a in (
    Attribution("deconvnet", "deconvnet", "the backward signal rectified (Zeiler & Fergus)"),
    Attribution("guided", "guided", "guided backprop (Springenberg et al.)"),
    Attribution("saliency", "saliency", "the plain gradient (Simonyan et al.)"),
    Attribution("gradient_x_input", "saliency", "the gradient times the input",
                weight=lambda x, b: x),
    Attribution("integrated_gradients", "saliency",
                "the gradient along the path from silence to the track, times their difference "
                "(Sundararajan et al.)", count=lambda s: s.steps, inputs=_path,
                weight=lambda x, b: x - b),
    Attribution("smoothgrad", "saliency", "the gradient averaged over noisy copies (Smilkov et al.)",
                count=lambda s: s.samples, inputs=_noisy),
)}


def attribution(name: str) -> Attribution:
    """The row of ``name``; an :class:`InvalidOptionError` naming the methods otherwise."""
    if name not in ATTRIBUTIONS:
        raise InvalidOptionError(f"method must be one of {', '.join(ATTRIBUTIONS)}; got {name!r}")
    return ATTRIBUTIONS[name]
