"""The attribution methods of class explanations: rows of one table, one engine.

Every method is the engine's backward pass from a class output (:mod:`mirdeconv.engine`)
with one deconvolution method at the non-linearities (its ``backward_method``, a row of
:data:`mirdeconv.options.METHODS`), run on some inputs made from each patch, the gradients
averaged over those inputs and multiplied by a weight:

======================  ==========  =========================================  ===========
method                  backward    inputs per patch                           weight
======================  ==========  =========================================  ===========
deconvnet               deconvnet   x                                          1
guided                  guided      x                                          1
saliency                saliency    x                                          1
gradient_x_input        saliency    x                                          x
integrated_gradients    saliency    b + (k + 1/2) / m (x - b), k = 0 .. m-1    x - b
smoothgrad              saliency    x + N(0, (s (max x - min x))^2), m times   1
======================  ==========  =========================================  ===========

and ``gradcam`` (Selvaraju et al., ICCV 2017) at a chosen layer ``A``: the gradient there,
averaged over the layer's time and frequency into one weight per map, ``relu(sum_k
alpha_k A_k)``, resized bilinearly (half-pixel centres) from the layer's time x frequency
grid to the patch's (a layer without a frequency axis: the same value in every band).

``b`` is the baseline: the model input of digital silence.  Integrated gradients
(Sundararajan et al., ICML 2017) take the midpoint rule over ``m = steps`` points;
SmoothGrad (Smilkov et al., 2017) ``m = copies`` noisy copies with noise level ``s``, the
noise of patch ``i``, copy ``k`` drawn from ``numpy.random.default_rng([seed, i, k])`` (so
it does not depend on how the work is batched).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import Program, run_graph
from ..errors import InvalidOptionError
from ..graph import LayerInfo
from ..model import FrozenModel
from ..options import check_number

__all__ = ["Settings", "Batch", "Attribution", "ATTRIBUTIONS", "attribution",
           "bilinear_weights"]


@dataclass(frozen=True, init=False)
class Settings:
    """The numbers the rows read: integrated gradients' ``steps``; SmoothGrad's ``copies``
    (its noisy copies: :attr:`ExplainOptions.copies <mirdeconv.explanations.ExplainOptions>`;
    formerly ``samples``, a word kept for audio samples), ``noise`` (a fraction of each
    patch's value range) and ``seed`` (:attr:`mirdeconv.explanations.ExplainOptions.settings`)."""

    steps: int = 32
    copies: int = 16
    noise: float = 0.15
    seed: int = 0

    def __init__(self, steps: int = 32, copies: int = 16, noise: float = 0.15, seed: int = 0,
                 *, samples: int | None = None) -> None:
        if samples is not None:           # the old name of copies, for one release
            warnings.warn("Settings(samples=) is now Settings(copies=)", DeprecationWarning,
                          stacklevel=2)
            copies = samples
        for name, value in (("steps", steps), ("copies", copies), ("noise", noise),
                            ("seed", seed)):
            check_number(name, value)
            object.__setattr__(self, name, value)

    @property
    def samples(self) -> int:
        """Deprecated name of :attr:`copies` (a DeprecationWarning)."""
        warnings.warn("Settings.samples is now Settings.copies", DeprecationWarning, stacklevel=2)
        return self.copies

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Settings:
        """The settings as written in ``explanation.json`` (``dataclasses.asdict``), also
        those written before ``samples`` was called ``copies``."""
        d = dict(d)
        if "samples" in d:
            d.setdefault("copies", d.pop("samples"))
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


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
class Batch:
    """One batch of the work on some tags: the track's (normalised) ``frames``, the
    baseline's ``base`` frame, the classes ``tags`` (T,) and the output's ``n_classes``; then
    per batch the patches ``x`` (B, *input) and their baselines ``b``, which patch
    (``items``) and which of its inputs (``k``) each is, and the ``seeds`` (T, B, classes)
    of the ``program`` from the explained output; the Grad-CAM ``layer``."""

    model: FrozenModel
    program: Program
    frames: np.ndarray
    base: np.ndarray
    tags: np.ndarray
    n_classes: int
    settings: Settings
    layer: LayerInfo | None
    x: np.ndarray | None = None
    b: np.ndarray | None = None
    items: np.ndarray | None = None
    k: np.ndarray | None = None
    seeds: np.ndarray | None = None


def _gradient(row: Attribution, bt: Batch) -> np.ndarray:
    """The seeds' input gradients at the row's inputs, times its weight: (T, B, *input)."""
    _, saved, _, _ = bt.program.forward(row.inputs(bt.x, bt.b, bt.items, bt.k, bt.settings))
    return bt.program.backward_seeds(saved, bt.seeds) * row.weight(bt.x, bt.b)


@dataclass(frozen=True)
class Attribution:
    """One method: the engine's ``backward_method`` (a deconvolution method of
    :data:`mirdeconv.options.METHODS`: how its backward pass treats the non-linearities), how
    many ``count(settings)`` inputs per patch and which (``inputs``), the ``weight(x, b)``
    that multiplies the mean gradient, and the batch's ``contribution`` (T, B, *input) made
    of them.

    What the front ends and :func:`mirdeconv.explain` read (never a method's name):
    ``layer``: it takes a layer (the others ignore one); ``baseline``: it starts from
    digital silence; ``completeness``: it reports how far its attributions' sum is from the
    output's difference to the baseline (as captum's ``has_convergence_delta()``; needs
    ``baseline``); ``uses``: the settings of :class:`mirdeconv.explanations.ExplainOptions`
    it reads (``"steps"``, ``"copies"``, ``"noise"``, ``"seed"``).
    """

    name: str
    backward_method: str
    description: str
    count: Callable[[Settings], int] = lambda s: 1
    inputs: Inputs = _as_is
    weight: Callable[[np.ndarray, np.ndarray], np.ndarray | float] = lambda x, b: 1.0
    contribution: Callable[[Any, Batch], np.ndarray] = _gradient
    layer: bool = False
    baseline: bool = False
    completeness: bool = False
    uses: tuple[str, ...] = ()

    @property
    def rule(self) -> str:
        """Deprecated name of :attr:`backward_method` (a DeprecationWarning)."""
        warnings.warn("Attribution.rule is now Attribution.backward_method",
                      DeprecationWarning, stacklevel=2)
        return self.backward_method

    def __post_init__(self) -> None:
        if self.completeness and not self.baseline:
            raise ValueError(f"{self.name}: completeness is measured against the baseline")


def bilinear_weights(n_out: int, n_in: int) -> np.ndarray:
    """The matrix (n_out, n_in) of a bilinear resize with half-pixel centres (edges held)."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    w = np.zeros((n_out, n_in))
    np.add.at(w, (np.arange(n_out), lo), 1 - (pos - lo))
    np.add.at(w, (np.arange(n_out), hi), pos - lo)
    return w


def _gradcam(row: Attribution, bt: Batch) -> np.ndarray:
    """Grad-CAM of the batch's patches at ``bt.layer``, on the input's grid (T, B, *input)."""
    info = bt.layer
    A = run_graph(bt.model, bt.x, info.tensor)                                 # B, *layer
    _, saved, _, _ = bt.program.forward(bt.x)
    dA = bt.program.backward_to(saved, bt.seeds, info.tensor)                  # T, B, *layer
    order = [info.feature_axis] + [info.axes.index(a) for a in "TF" if a in info.axes]
    ones = [i for i, a in enumerate(info.axes) if a == "1"]                   # size-1 axes
    A = np.transpose(A, [0] + order + ones)
    A = A.reshape(A.shape[:len(order) + 1])                                    # B, C, T(, F)
    dA = np.transpose(dA, [0, 1] + [o + 1 for o in order + ones])
    dA = dA.reshape(dA.shape[:len(order) + 2])                                 # T, B, C, T(, F)
    alpha = dA.reshape(dA.shape[:3] + (-1,)).mean(axis=-1)                    # T, B, C
    cam = np.maximum(np.einsum("tbc,bc...->tb...", alpha, A), 0.0)             # T, B, T'(, F')
    length, bands = bt.model.from_input(bt.x[:1]).shape[1:3]
    cam = np.einsum("ti,...ij->...tj", bilinear_weights(length, cam.shape[2]),
                    cam if cam.ndim == 4 else cam[..., None])
    fw = bilinear_weights(bands, cam.shape[-1])
    cam = cam @ fw.T                                                           # T, B, length, bands
    return bt.model.to_input(cam.astype(np.float32))


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
                weight=lambda x, b: x - b, baseline=True, completeness=True, uses=("steps",)),
    Attribution("smoothgrad", "saliency", "the gradient averaged over noisy copies (Smilkov et al.)",
                count=lambda s: s.copies, inputs=_noisy, uses=("copies", "noise", "seed")),
    Attribution("gradcam", "saliency", "the layer's maps weighted by their mean gradient "
                "(Selvaraju et al.), resized to the input", contribution=_gradcam, layer=True),
)}


def attribution(name: str) -> Attribution:
    """The row of ``name``; an :class:`InvalidOptionError` naming the methods otherwise."""
    if name not in ATTRIBUTIONS:
        raise InvalidOptionError(f"method must be one of {', '.join(ATTRIBUTIONS)}; got {name!r}")
    return ATTRIBUTIONS[name]
