"""How faithful an explanation is to the model: its inputs masked in and out, fed back.

The explanation's mask ``m`` (:func:`mirdeconv.explanations.unit_masks`: the positive part
scaled to [0, 1], or a binary top-``top_percent`` mask) keeps the track's values, in the
model input's domain, where it is 1 and puts digital silence ``b`` where it is 0:
``x_in = b + m (x - b)`` (masked in), ``x_out = b + (1 - m)(x - b)`` (masked out).  The
probabilities are the track-level ones (averaged over the patches).  Per tag, with
``p = p(x)`` and ``o = p(x_in)`` (Paissan et al., "Listenable Maps for Audio Classifiers",
ICML 2024, their §5 and their sources):

* ``AI``, average increase: 100 if ``o > p`` else 0 (averaged over cases, a percentage);
* ``AD``, average drop: ``100 relu(p - o) / p``;
* ``AG``, average gain: ``100 relu(o - p) / (1 - p)``;
* ``FF``, faithfulness on spectra: ``p - p(x_out)``;
* ``Fid-In``, input fidelity: 1 when the model's top class on ``x_in`` is its top class on
  ``x``.

Deletion and insertion (Petsiuk et al., "RISE", BMVC 2018; as Xplique's ``Deletion`` and
``Insertion``): the track's bins (frames x bands) in the explanation's order, strongest
first, are set to silence (deletion, from ``x``) or restored (insertion, from silence) in
``steps`` equal shares; the tag's probability after each share gives a curve over the
fraction 0 .. 1 whose area (trapezoid rule) is the figure: a faithful explanation's
deletion area is small and its insertion area large, against the same curves for a
random order of the bins (``default_rng(seed)``).

:func:`audio_faithfulness` takes L-MAC's figures through re-synthesised audio instead: the
explanation's sound (masked in) and its complement's (masked out), as the listener hears
them, prepared again by the model's representation and fed through the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidOptionError
from ..model import FrozenModel
from ..options import SoundOptions, check_number
from .api import Explanation, has_silence, patch_fill, patch_outputs, track_inputs
from .sound import explanation_sound, unit_masks
from .targets import explained_output

__all__ = ["Faithfulness", "faithfulness", "audio_faithfulness", "FIGURES", "AUDIO_DOMAIN_SOUND"]

#: How the explanation becomes the audio that :func:`audio_faithfulness` feeds back: its
#: positive part, at the model's rate, at the track's level (no normalisation).
AUDIO_DOMAIN_SOUND = SoundOptions(sign="positive", output_sr="model", normalize="none")

#: The figures of :class:`Faithfulness`, with what a faithful explanation makes of them.
FIGURES = {
    "AI": "higher", "AD": "lower", "AG": "higher", "FF": "higher", "Fid-In": "higher",
    "deletion": "lower", "insertion": "higher",
}


@dataclass
class Faithfulness:
    """The faithfulness figures of one explanation, per tag (arrays of shape (n_tags,)
    unless said otherwise).

    Attributes
    ----------
    tags : list of str
    p, p_in, p_out : np.ndarray
        The tag's probability on the track, masked in, masked out.
    ai, ad, ag, ff : np.ndarray
        L-MAC's figures (see the module).
    fid_in : np.ndarray of bool
    fractions : np.ndarray, shape (steps + 1,)
    deletion, insertion, deletion_random, insertion_random : np.ndarray, shape (n_tags, steps + 1)
        The curves.
    deletion_area, insertion_area, deletion_random_area, insertion_random_area : np.ndarray
    """

    tags: list[str]
    p: np.ndarray
    p_in: np.ndarray
    p_out: np.ndarray
    ai: np.ndarray
    ad: np.ndarray
    ag: np.ndarray
    ff: np.ndarray
    fid_in: np.ndarray
    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_random: np.ndarray
    insertion_random: np.ndarray

    @staticmethod
    def _area(curves: np.ndarray, fractions: np.ndarray) -> np.ndarray:
        return ((curves[..., 1:] + curves[..., :-1]) / 2 * np.diff(fractions)).sum(axis=-1)

    @property
    def deletion_area(self) -> np.ndarray:
        return self._area(self.deletion, self.fractions)

    @property
    def insertion_area(self) -> np.ndarray:
        return self._area(self.insertion, self.fractions)

    @property
    def deletion_random_area(self) -> np.ndarray:
        return self._area(self.deletion_random, self.fractions)

    @property
    def insertion_random_area(self) -> np.ndarray:
        return self._area(self.insertion_random, self.fractions)

    def table(self) -> list[dict]:
        """One row per tag: every figure, for people and data frames."""
        return [{"tag": t, "p": float(self.p[i]), "p_in": float(self.p_in[i]),
                 "p_out": float(self.p_out[i]), "AI": float(self.ai[i]), "AD": float(self.ad[i]),
                 "AG": float(self.ag[i]), "FF": float(self.ff[i]), "Fid-In": bool(self.fid_in[i]),
                 "deletion": float(self.deletion_area[i]),
                 "deletion_random": float(self.deletion_random_area[i]),
                 "insertion": float(self.insertion_area[i]),
                 "insertion_random": float(self.insertion_random_area[i])}
                for i, t in enumerate(self.tags)]


def faithfulness(model: FrozenModel, expl: Explanation, *, steps: int = 20,
                 top_percent: float | None = None, seed: int = 0) -> Faithfulness:
    """Faithfulness figures of ``expl`` (see the module), on the model itself.

    Parameters
    ----------
    model : FrozenModel
        The model ``expl`` explains.
    expl : Explanation
    steps : int
        Shares of the bins deleted or inserted (the curves have ``steps + 1`` points).
    top_percent : float, optional
        Mask with the strongest ``top_percent`` % of the explanation (binary) instead of the
        scaled positive part.
    seed : int
        Of the random order.

    Raises
    ------
    InvalidOptionError
        ``steps`` not a positive integer; ``expl`` of another model; a model whose output is
        no probability, or whose input has no fixed silence.
    """
    check_number("steps", steps)
    if expl.model_name != model.name:
        raise InvalidOptionError(f"the explanation is of {expl.model_name}, not of {model.name}")
    explained = explained_output(model, "probability")
    if not explained.squash:
        raise InvalidOptionError(f"{model.name}'s output is no sigmoid or softmax: the figures "
                                 "need probabilities")
    if not has_silence(model):
        raise InvalidOptionError(f"{model.name} normalises its input by the track's or each "
                                 "patch's statistics: silence has no fixed value to mask with")
    x, b, patching = track_inputs(model, expl.track)
    fill = patch_fill(model, x)

    def probs(frames: np.ndarray) -> np.ndarray:
        return patch_outputs(model, explained.tensor, frames.astype(np.float32), patching,
                             fill).mean(axis=0)

    idx = expl.indices
    full = probs(x)
    m = unit_masks(expl.masks, "positive", top_percent)                 # T, frames, bands
    p_in = np.array([probs(b + m[t] * (x - b)) for t in range(len(idx))])    # T, classes
    p_out = np.array([probs(b + (1 - m[t]) * (x - b)) for t in range(len(idx))])
    p, o = full[idx], p_in[np.arange(len(idx)), idx]
    lmac = _lmac(full, p_in, p_out, idx)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    rng = np.random.default_rng(seed)
    curves = {k: np.zeros((len(idx), steps + 1)) for k in
              ("deletion", "insertion", "deletion_random", "insertion_random")}
    for t, c in enumerate(idx):
        orders = {"": np.argsort(-expl.masks[t].ravel(), kind="stable"),
                  "_random": rng.permutation(x.size)}
        for suffix, order in orders.items():
            for j, f in enumerate(fractions):
                chosen = np.zeros(x.size, bool)
                chosen[order[:int(round(f * x.size))]] = True
                chosen = chosen.reshape(x.shape)
                curves["deletion" + suffix][t, j] = probs(np.where(chosen, b, x))[c]
                curves["insertion" + suffix][t, j] = probs(np.where(chosen, x, b))[c]
    return Faithfulness(list(expl.tags), p.astype(np.float32), o.astype(np.float32),
                        p_out[np.arange(len(idx)), idx].astype(np.float32), lmac["AI"],
                        lmac["AD"], lmac["AG"], lmac["FF"].astype(np.float32), lmac["Fid-In"],
                        fractions, **curves)


def _lmac(full: np.ndarray, p_in: np.ndarray, p_out: np.ndarray, idx: list[int]
          ) -> dict[str, np.ndarray]:
    """L-MAC's figures per tag from the class probabilities of the track ``full``
    (n_classes,), masked in and out ``p_in``, ``p_out`` (n_tags, n_classes)."""
    rows = np.arange(len(idx))
    p, o = full[idx], p_in[rows, idx]
    return {"AI": np.where(o > p, 100.0, 0.0),
            "AD": 100 * np.maximum(p - o, 0) / np.maximum(p, 1e-12),
            "AG": 100 * np.maximum(o - p, 0) / np.maximum(1 - p, 1e-12),
            "FF": p - p_out[rows, idx], "Fid-In": p_in.argmax(axis=1) == full.argmax()}


def audio_faithfulness(model: FrozenModel, expl: Explanation, *,
                       top_percent: float | None = None) -> list[dict]:
    """L-MAC's figures through re-synthesised audio: the explanation's sound and its
    complement's (:func:`mirdeconv.explanations.explanation_sound`, at the model's rate and
    level) go through the model's representation and the model, as a listener's copy of
    them would.  Unlike :func:`faithfulness` this needs no fixed silence, so it also
    measures models that normalise their input.

    Returns
    -------
    list of dict
        One row per tag: ``tag``, ``p``, ``p_in``, ``p_out``, ``AI``, ``AD``, ``AG``,
        ``FF``, ``Fid-In``.

    Raises
    ------
    InvalidOptionError
        ``expl`` of another model; a model whose output is no probability.
    """
    if expl.model_name != model.name:
        raise InvalidOptionError(f"the explanation is of {expl.model_name}, not of {model.name}")
    explained = explained_output(model, "probability")
    if not explained.squash:
        raise InvalidOptionError(f"{model.name}'s output is no sigmoid or softmax: the figures "
                                 "need probabilities")
    kept, removed, sr = explanation_sound(expl, sound=AUDIO_DOMAIN_SOUND, top_percent=top_percent)

    def probs(y: np.ndarray) -> np.ndarray:
        frames, _, patching = track_inputs(model, model.representation.prepare(y, sr))
        return patch_outputs(model, explained.tensor, frames, patching,
                             patch_fill(model, frames)).mean(axis=0)

    idx = expl.indices
    full = probs(expl.track.audio)
    p_in, p_out = (np.array([probs(y) for y in ys]) for ys in (kept, removed))
    lmac = _lmac(full, p_in, p_out, idx)
    return [{"tag": t, "p": float(full[c]), "p_in": float(p_in[i, c]),
             "p_out": float(p_out[i, c]), **{k: v[i].item() for k, v in lmac.items()}}
            for i, (t, c) in enumerate(zip(expl.tags, idx))]
