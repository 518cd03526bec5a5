"""Cascading model randomisation (Adebayo et al., "Sanity checks for saliency maps", NeurIPS
2018, §4.1): the model's learned layers are re-initialised from the top down, one depth
more at each step (:func:`mirdeconv.sanity.randomise.cascade`), the explanation recomputed
on the same track, and compared with the trained model's (:mod:`.similarity`).

An explanation that explains the model changes when its weights do.  A method *passes* when
the rank correlation of its magnitudes with the trained model's map is below
:data:`PASS_BELOW` at every step, from the first (only the top layer re-initialised: for a
class explanation, the layer that tells the tags apart) to the last (every layer).  It fails
when some step stays at or above it: the map then shows mostly the input, or the
architecture, not what the model learned.

* :func:`explanation_cascade`: the class explanations of :func:`mirdeconv.explain`, for the
  trained model's top tag (or a given one), one row per method;
* :func:`deconvolution_cascade`: the deconvolution of feature maps of one layer (the trained
  model's most active features), re-initialising the layers at and below it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine import check_model, deconvolve, forget, track_input
from ..explanations import ATTRIBUTIONS, ExplainOptions, Settings, explain
from ..explanations.api import has_silence
from ..model import FrozenModel
from ..options import METHODS
from ..progress import Progress, ProgressArg
from ..representations import TrackInput
from .activity import features_or_top, layer_subject
from .randomise import ParameterLayer, cascade, parameter_layers, randomised
from .similarity import rank_correlation, ssim

__all__ = ["Cascade", "explanation_cascade", "deconvolution_cascade", "PASS_BELOW",
           "EXPLANATION_METHODS", "DECONVOLUTION_METHODS", "CASCADE_SETTINGS", "gradcam_layer",
           "usable_methods"]

#: Rank correlation (of magnitudes) with the trained model's map below which a method passes
#: (at every step of the cascade).
PASS_BELOW = 0.5


class TableRows(Sequence[str]):
    """The names of a table's rows, read when used (a row added after ``import`` is in it):
    the default of the cascades' ``methods``."""

    def __init__(self, table: Mapping[str, Any]) -> None:
        self._table = table

    def __getitem__(self, index: Any) -> Any:
        return tuple(self._table)[index]

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    def __repr__(self) -> str:
        return repr(tuple(self._table))


#: Every class-explanation method: the rows of :data:`mirdeconv.explanations.ATTRIBUTIONS`.
EXPLANATION_METHODS: Sequence[str] = TableRows(ATTRIBUTIONS)
#: Every deconvolution method: the rows of :data:`mirdeconv.options.METHODS`.
DECONVOLUTION_METHODS: Sequence[str] = TableRows(METHODS)
#: Integrated gradients' steps and SmoothGrad's copies in a cascade (each step recomputes
#: every method: fewer than :func:`mirdeconv.explain`'s defaults).
CASCADE_SETTINGS = Settings(steps=16, copies=8)


@dataclass
class Cascade:
    """The similarity of explanations to the trained model's as its layers are randomised.

    Attributes
    ----------
    kind : {"explanation", "deconvolution"}
    model_name : str
    subject : str
        What was explained (``tag "rock"``; ``layer midend_2, features 3, 17``).
    methods : list of str
    steps : list of str
        ``"trained"``, then the layers re-initialised at each step, top first (a step's
        layers joined by ``+``; every later step keeps the earlier ones randomised).
    spearman, spearman_signed, ssim : np.ndarray, shape (n_methods, n_steps)
        Rank correlation of the magnitudes, of the signed values, and SSIM of the
        magnitudes, with the trained model's map, averaged over the tags or features
        (the ``"trained"`` column is 1).
    seconds : np.ndarray, shape (n_methods,)
        Time spent computing each method's maps, every step included.
    skipped : dict
        Methods left out, with why.
    """

    kind: str
    model_name: str
    subject: str
    methods: list[str]
    steps: list[str]
    spearman: np.ndarray
    spearman_signed: np.ndarray
    ssim: np.ndarray
    seconds: np.ndarray
    skipped: dict[str, str] = field(default_factory=dict)

    def passes(self) -> dict[str, bool]:
        """Per method: the rank correlation is below :data:`PASS_BELOW` at every randomised
        step.  A step whose maps are all constant (NaN) fails; a randomised map made constant
        against a trained one that is not counts as ρ 0
        (:func:`mirdeconv.sanity.similarity.rank_correlation`)."""
        return {m: bool(np.all(self.spearman[i, 1:] < PASS_BELOW)) and len(self.steps) > 1
                for i, m in enumerate(self.methods)}

    def first_below(self) -> dict[str, str | None]:
        """Per method: the first step whose rank correlation is below :data:`PASS_BELOW`."""
        out: dict[str, str | None] = {}
        for i, m in enumerate(self.methods):
            below = np.flatnonzero(self.spearman[i] < PASS_BELOW)
            out[m] = self.steps[below[0]] if below.size else None
        return out

    def table(self) -> list[dict[str, Any]]:
        """One row per method: the final figures, pass or fail, where it first fell below."""
        passes, first = self.passes(), self.first_below()
        return [{"method": m, "spearman_all_random": float(self.spearman[i, -1]),
                 "spearman_signed_all_random": float(self.spearman_signed[i, -1]),
                 "ssim_all_random": float(self.ssim[i, -1]),
                 "spearman_top_random": float(self.spearman[i, 1]) if len(self.steps) > 1
                 else float("nan"),
                 "first_below": first[m], "passes": passes[m], "seconds": float(self.seconds[i])}
                for i, m in enumerate(self.methods)]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "model_name": self.model_name, "subject": self.subject,
                "methods": self.methods, "steps": self.steps,
                "spearman": self.spearman.tolist(), "spearman_signed": self.spearman_signed.tolist(),
                "ssim": self.ssim.tolist(), "seconds": self.seconds.tolist(),
                "skipped": self.skipped, "pass_below": PASS_BELOW, "table": self.table()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cascade:
        arrays = {k: np.asarray(d[k], np.float64)
                  for k in ("spearman", "spearman_signed", "ssim", "seconds")}
        return cls(d["kind"], d["model_name"], d["subject"], list(d["methods"]), list(d["steps"]),
                   skipped=dict(d.get("skipped", {})), **arrays)


def explanation_cascade(
    model: FrozenModel,
    audio: np.ndarray | None = None,
    sr: float | None = None,
    *,
    tag: str | int | None = None,
    methods: Sequence[str] = EXPLANATION_METHODS,
    output: str = ExplainOptions.output,
    layer: str | int | None = None,
    settings: Settings = CASCADE_SETTINGS,
    seed: int = 0,
    track: TrackInput | None = None,
    progress: ProgressArg = False,
) -> Cascade:
    """Cascading randomisation of the class explanations of :func:`mirdeconv.explain`.

    Parameters
    ----------
    model : FrozenModel
        A model with class outputs.
    audio, sr : np.ndarray (n_samples,), float
        The track (or ``track``: a prepared one).
    tag : str or int, optional
        The explained tag (default: the trained model's top tag; kept for every step).
    methods : sequence of str
        Rows of :data:`mirdeconv.explanations.ATTRIBUTIONS`.  Integrated gradients are left
        out (in ``skipped``) for a model that normalises by the track's statistics.
    output : {"logit", "probability"}
        What is explained (:func:`mirdeconv.explain`).
    layer : str or int, optional
        Grad-CAM's layer (default: :func:`gradcam_layer`).
    settings : Settings
        Integrated gradients' steps, SmoothGrad's copies, noise and seed.
    seed : int
        The re-initialisation's seed (:func:`mirdeconv.sanity.randomise.randomised`).
    progress : bool or callable

    Returns
    -------
    Cascade
    """
    model = check_model(model)
    track = track_input(model, audio, sr, track)
    methods, skipped = usable_methods(model, methods)
    cam_layer = gradcam_layer(model) if layer is None else model.layer(layer).name
    kept: dict[str, Any] = {"tag": tag}

    def compute(m: FrozenModel, method: str) -> np.ndarray:
        expl = explain(m, track=track, tag=kept["tag"], method=method, output=output,
                       steps=settings.steps,
                       copies=settings.copies, noise=settings.noise, seed=settings.seed,
                       layer=cam_layer)             # ignored by a method that takes none
        kept["tag"], kept["name"] = expl.indices[0], expl.tags[0]
        return expl.masks

    groups = cascade(parameter_layers(model))
    out = _run(model, groups, compute, methods, seed, progress, "sanity: explanations")
    return Cascade("explanation", model.name, f'tag "{kept.get("name", tag)}"', methods,
                   *out, skipped=skipped)


def deconvolution_cascade(
    model: FrozenModel,
    audio: np.ndarray | None = None,
    sr: float | None = None,
    *,
    layer: str | int,
    features: Sequence[int] | None = None,
    top: int = 8,
    methods: Sequence[str] = DECONVOLUTION_METHODS,
    seed: int = 0,
    track: TrackInput | None = None,
    progress: ProgressArg = False,
) -> Cascade:
    """Cascading randomisation of the deconvolution of one layer's feature maps: the layers at
    and below it re-initialised from the top down (those above do not change it).

    Parameters
    ----------
    model : FrozenModel
    audio, sr : np.ndarray (n_samples,), float
    layer : str or int
    features : sequence of int, optional
        Feature indices (default: the ``top`` most active).  An int is the deprecated
        spelling of ``top`` (a DeprecationWarning).
    top : int
        How many of the trained model's most active features on the track (by their maps'
        peaks), when ``features`` is not given.
    methods : sequence of str
        Rows of :data:`mirdeconv.options.METHODS`.
    seed : int
    track : TrackInput, optional
    progress : bool or callable

    Returns
    -------
    Cascade
    """
    chosen = features_or_top(features, top, "deconvolution_cascade")
    sub = layer_subject(model, audio, sr, track, layer, chosen)
    model, track, info, feats = sub.model, sub.track, sub.layer, sub.features

    def compute(m: FrozenModel, method: str) -> np.ndarray:
        return deconvolve(m, track=track, layer=info.name, features=feats, method=method).masks

    groups = cascade(parameter_layers(model, info.tensor))
    out = _run(model, groups, compute, list(methods), seed, progress, "sanity: deconvolution")
    subject = f"layer {info.name}, features {', '.join(map(str, feats))}"
    return Cascade("deconvolution", model.name, subject, list(methods), *out)


def gradcam_layer(model: FrozenModel, cells: int = 8) -> str:
    """Grad-CAM's default layer: the model's deepest feature layer with at least ``cells``
    units on its time x frequency grid for one patch (a coarser one makes a map of a few
    blocks; Choi's ``pool5`` has one)."""
    for info in reversed(model.layers):
        grid = np.prod([n for a, n in zip(info.axes, info.shape) if a in "TF"])
        if grid >= cells:
            return info.name
    return model.layers[0].name


def usable_methods(model: FrozenModel, methods: Sequence[str]
                   ) -> tuple[list[str], dict[str, str]]:
    """The methods that can explain ``model``, and those left out with why."""
    for m in methods:
        if m not in ATTRIBUTIONS:
            from ..explanations.methods import attribution

            attribution(m)                                   # raises, naming the methods
    skipped = {m: "starts from digital silence, which this model's input normalisation moves"
               for m in methods if ATTRIBUTIONS[m].baseline and not has_silence(model)}
    return [m for m in methods if m not in skipped], skipped


def _run(model: FrozenModel, groups: list[list[ParameterLayer]],
         compute: Callable[[FrozenModel, str], np.ndarray], methods: list[str], seed: int,
         progress: ProgressArg, desc: str
         ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each method on the trained model, then on the model randomised one group deeper at
    each step; the similarities (n_methods, 1 + n_groups) and seconds (n_methods,).

    One method at a time, and each randomised model's compiled programs dropped as soon as
    its map is made (and the trained model's after its maps): memory holds the programs of
    one method of two models, not of every method (mtt-musicnn: 13 GB before)."""
    n = 1 + len(groups)
    rho, signed, sim = (np.ones((len(methods), n)) for _ in range(3))
    seconds = np.zeros(len(methods))
    models = [model] + [randomised(model, [pl for g in groups[:k] for pl in g], seed)
                        for k in range(1, n)]
    bar = Progress(progress, n * len(methods), desc, "map")
    with bar:
        for i, method in enumerate(methods):
            t0 = time.perf_counter()
            trained = compute(model, method)
            seconds[i] += time.perf_counter() - t0
            bar.update(1)
            for k in range(1, n):
                mk = models[k]
                t0 = time.perf_counter()
                maps = compute(mk, method)
                seconds[i] += time.perf_counter() - t0
                forget(mk)
                pairs = list(zip(trained, maps))
                rho[i, k] = _mean([rank_correlation(a, b) for a, b in pairs])
                signed[i, k] = _mean([rank_correlation(a, b, absolute=False) for a, b in pairs])
                sim[i, k] = _mean([ssim(a, b) for a, b in pairs])
                bar.update(1)
            forget(model)
    steps = ["trained"] + ["+".join(_short(pl.name) for pl in g) for g in groups]
    return steps, rho, signed, sim, seconds


def _mean(values: list[float]) -> float:
    """The mean of the finite values (NaN if none)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _short(node: str) -> str:
    """A weighted op's layer name: its node without the model's scope and the op's own name
    (``model/conv2d_5/Conv2D`` -> ``conv2d_5``)."""
    parts = node.split("/")
    return parts[-2] if len(parts) >= 2 else node
