"""``explain``: which parts of a track made a model say a tag, on the track's own grid.

The track goes through the model as its predictions do: whole (a model that takes any
length), or in the model's patches, whose outputs the track-level prediction averages (as
Essentia's predictors and :func:`mirdeconv.predict` do).  The explanation is of that
average: each patch's attribution, divided by the number of patches, is added at the
patch's frames (overlaps add up, as the average's gradient does), so that for the
gradient it equals the gradient of the track-level output with respect to the track's
frames (the padded end of the last patch left out).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..engine import check_model, compiled_tensor, run_graph, track_input
from ..engine.patches import Patching, normalize_track, patch_input, plan_patches
from ..errors import InvalidOptionError
from ..graph import LayerInfo
from ..model import FrozenModel
from ..progress import Progress, ProgressArg
from ..representations import TrackInput
from .methods import Attribution, Batch, Settings, attribution
from .targets import OutputTarget, output_target, tag_indices

__all__ = ["Explanation", "explain", "track_inputs", "patch_outputs", "patch_fill", "has_silence",
           "silence_frame", "BATCH_FRAMES", "BATCH_ITEMS", "TAGS_PER_PASS"]

#: Tags whose backward passes run together (memory grows with them).
TAGS_PER_PASS = 4

#: Input frames that go through the model together (patches x inputs per patch), at most
#: :data:`BATCH_ITEMS` items.  Every batch of a model has the same size (the last one
#: padded): TensorFlow 2.21's oneDNN convolution has aborted the process when one compiled
#: forward pass met a third batch size (``Check failed: dtype() == expected_dtype``).
#: Memory grows with it (mtt-musicnn, one tag, 30 s: 8192 frames 8.1 GB, 1024 frames 4.2 GB,
#: no slower).
BATCH_FRAMES = 1024
BATCH_ITEMS = 16


@dataclass
class Explanation:
    """Class explanations of one track.

    Attributes
    ----------
    masks : np.ndarray, float32, shape (n_tags, n_frames, n_bands)
        Each tag's attribution on the track's frames, in the model input's domain.
    tags : list of str
        The tags' labels.
    indices : list of int
        Their classes in the model's output.
    scores : np.ndarray, float32, shape (n_tags,)
        The explained output (``output``) averaged over the patches.
    probabilities : np.ndarray, float32, shape (n_tags,)
        The model's output (after its sigmoid or softmax), averaged over the patches.
    baseline_scores : np.ndarray or None
        ``scores`` for digital silence (integrated gradients).
    completeness : np.ndarray or None
        Integrated gradients: ``|sum(attributions) - (score - baseline score)|`` relative to
        ``|score - baseline score|``, per tag.
    method, output : str
    settings : Settings
    n_patches : int
    track : TrackInput
    model_name : str
    """

    masks: np.ndarray
    tags: list[str]
    indices: list[int]
    scores: np.ndarray
    probabilities: np.ndarray
    baseline_scores: np.ndarray | None
    completeness: np.ndarray | None
    method: str
    output: str
    settings: Settings
    n_patches: int
    track: TrackInput = field(repr=False)
    model_name: str = ""


def explain(
    model: FrozenModel,
    audio: np.ndarray | None = None,
    sr: float | None = None,
    *,
    tag: str | int | Sequence[str | int] | None = None,
    method: str = "saliency",
    output: str = "logit",
    steps: int = Settings.steps,
    samples: int = Settings.samples,
    noise: float = Settings.noise,
    seed: int = Settings.seed,
    layer: str | int | None = None,
    track: TrackInput | None = None,
    progress: ProgressArg = False,
) -> Explanation:
    """Explain a model's output for some tags: which bins of which frames raised it.

    Parameters
    ----------
    model : FrozenModel
        A model with class outputs (``model.output_tensor``, labels in ``model.labels``).
    audio : np.ndarray, shape (n_samples,)
        Mono track (any rate; resampled to the model's).
    sr : float
        Its sample rate in Hz.
    tag : str, int or list of them, optional
        Labels (case-insensitive) or class indices (default: the class the model gives the
        highest mean probability).
    method : str
        A row of :data:`mirdeconv.explanations.ATTRIBUTIONS`.
    output : {"logit", "probability"}
        The output's logit (before its sigmoid or softmax) or the probability itself.
    steps : int
        Integrated gradients' points on the path from silence.
    samples, noise, seed : int, float, int
        SmoothGrad's noisy copies, their noise (a fraction of each patch's value range) and
        the random seed.
    layer : str or int, optional
        Grad-CAM's layer (a name or position in ``model.layers``; required by ``gradcam``).
    track : TrackInput, optional
        A precomputed ``model.representation.prepare(audio, sr)``.
    progress : bool or callable
        True for a tqdm bar, or ``callable(done, total)`` after every batch.

    Returns
    -------
    Explanation
        ``masks`` has shape ``(n_tags, n_frames, n_bands)``.

    Raises
    ------
    InvalidOptionError
        An unknown method, output or tag; bad settings.
    UnsupportedGraphError
        The model has no class output, or an operation on the way the engine has no rule for.
    AudioError
        Unusable audio.
    """
    model = check_model(model)
    row = attribution(method)
    settings = Settings(steps, samples, noise, seed)
    target = output_target(model, output)
    idx = None if tag is None else tag_indices(model, tag, target.n_classes)
    info = _layer(model, row, layer)
    if row.baseline and not has_silence(model):
        raise InvalidOptionError(
            f"{row.name} starts from digital silence, which has no fixed value for {model.name}: "
            "it normalises its input by the track's or each patch's own statistics")
    track = track_input(model, audio, sr, track)
    frames, base, patching = track_inputs(model, track)
    prog = compiled_tensor(model, target.tensor, 1, row.rule, "float32")
    if idx is None:
        _, probs = _scores(model, target, frames, patching, list(range(target.n_classes)))
        idx = [int(np.argmax(probs))]
    masks = np.zeros((len(idx), *frames.shape), np.float32)
    total = np.zeros(len(idx), np.float64)
    n_batches = -(-len(patching.starts) * row.count(settings) // _batch_size(patching))
    bar = Progress(progress, n_batches * -(-len(idx) // TAGS_PER_PASS), f"{model.name} ({method})",
                   "batch")
    with bar:
        for t0 in range(0, len(idx), TAGS_PER_PASS):
            sel = slice(t0, t0 + TAGS_PER_PASS)
            job = Batch(model, prog, frames, base, np.array(idx[sel]), target.n_classes,
                        settings, info)
            total[sel] = _attribute(row, job, patching, masks[sel], bar)
    scores, probs = _scores(model, target, frames, patching, idx)
    base_scores = completeness = None
    if row.name == "integrated_gradients":
        base_scores, _ = _scores(model, target, base, patching, idx, fill=patch_fill(model, frames))
        delta = scores.astype(np.float64) - base_scores
        completeness = (np.abs(total - delta) / np.maximum(np.abs(delta), 1e-12)).astype(np.float32)
    labels = list(model.labels or [])
    names = [labels[i] if i < len(labels) else str(i) for i in idx]
    return Explanation(masks, names, idx, scores, probs, base_scores, completeness, method, output,
                       settings, len(patching.starts), track, model.name)


def _attribute(row: Attribution, job: Batch, patching: Patching, masks: np.ndarray,
               bar: Progress) -> np.ndarray:
    """Add the attributions of ``job.tags`` into ``masks`` (T, n_frames, n_bands), batch by
    batch (every batch the same size, the last padded with seeds of zero); returns their
    sums over every patch's whole input, (T,)."""
    model, n_items, per_patch = job.model, len(patching.starts), row.count(job.settings)
    size, n_work = _batch_size(patching), len(patching.starts) * per_patch
    fill = patch_fill(model, job.frames)               # the baseline's patches padded as the track's
    total = np.zeros(len(job.tags), np.float64)
    for b0 in range(0, n_work, size):
        w = np.minimum(np.arange(b0, b0 + size), n_work - 1)
        items, k = w // per_patch, w % per_patch
        seeds = np.zeros((len(job.tags), size, job.n_classes), np.float32)
        seeds[np.arange(len(job.tags)), :, job.tags] = 1.0 / (n_items * per_patch)
        seeds[:, min(size, n_work - b0):] = 0.0
        bt = dataclasses.replace(job, x=patch_input(model, job.frames, patching, items),
                                 b=patch_input(model, job.base, patching, items, fill=fill),
                                 items=items, k=k, seeds=seeds)
        g = row.contribution(row, bt)                                         # T, B, *input
        total += g.reshape(len(job.tags), -1).sum(axis=1)
        _add_patches(masks, model.from_input(g), patching, items)
        bar.update(1)
    return total


def patch_fill(model: FrozenModel, frames: np.ndarray) -> float:
    """What pads the track's last patch (and so the baseline's): the representation's
    silence for the track (its minimum; a waveform's zero)."""
    return float(model.representation.silence(frames))


def track_inputs(model: FrozenModel, track: TrackInput) -> tuple[np.ndarray, np.ndarray, Patching]:
    """The track's frames normalised as the model asks, float32 (n_frames, n_bands); digital
    silence (the baseline), one frame (n_bands,) that broadcasts over them; the patches the
    model takes."""
    frames = normalize_track(model, track.frames)
    n = frames.shape[0]
    patching = Patching([0], n, n) if model.input_length is None else plan_patches(model, n)
    return frames, silence_frame(model), patching


def has_silence(model: FrozenModel) -> bool:
    """Digital silence has one value in the model's input domain: the model normalises
    nothing by the track's or the patch's own statistics."""
    return model.input_normalization in (None, "none") and not model.standardizes


def silence_frame(model: FrozenModel) -> np.ndarray:
    """Digital silence through the model's representation: one frame, float32 (n_bands,)
    (a waveform's: zero).  For a model that normalises its input by the track's or the
    patch's statistics (:func:`has_silence` false) this is the unnormalised value."""
    rep = model.representation
    if rep.kind == "waveform":
        return np.zeros(rep.n_bands, np.float32)
    one = rep.frames_from_stft(np.zeros((rep.n_bins, 1), np.complex64))[0]
    return np.where(np.isfinite(one), one, 0.0).astype(np.float32)


def _layer(model: FrozenModel, row: Attribution, layer: str | int | None) -> LayerInfo | None:
    """Grad-CAM's layer (None for the other methods)."""
    if not row.layer:
        if layer is not None:
            raise InvalidOptionError(f"method {row.name} takes no layer (gradcam does)")
        return None
    if layer is None:
        raise InvalidOptionError(f"method {row.name} needs a layer: one of "
                                 f"{', '.join(x.name for x in model.layers)}")
    return model.layer(layer)


def _batch_size(patching: Patching) -> int:
    """Items per forward pass (every batch of a model the same)."""
    return max(1, min(BATCH_ITEMS, BATCH_FRAMES // patching.length))


def _add_patches(masks: np.ndarray, g: np.ndarray, patching: Patching, items: np.ndarray) -> None:
    """Add items' attributions ``g`` (T, B, length, bands) at their patches' frames."""
    n = masks.shape[1]
    for j, i in enumerate(items):
        s = patching.starts[i]
        stop = min(n, s + g.shape[2])
        masks[:, s:stop] += g[:, j, :stop - s]


def patch_outputs(model: FrozenModel, tensor: str, frames: np.ndarray, patching: Patching,
                  fill: float | None = None) -> np.ndarray:
    """A class output ``tensor`` for every patch of ``frames`` (the plain forward pass; a
    last patch that passes the end padded with ``fill``, default the frames' minimum):
    float64, shape (n_patches, n_classes)."""
    size, n = _batch_size(patching), len(patching.starts)
    acts = []
    for a in range(0, n, size):
        items = [min(i, n - 1) for i in range(a, a + size)]     # padded with the last
        act = run_graph(model, patch_input(model, frames, patching, items, fill=fill), tensor)
        acts.append(np.asarray(act, np.float64).reshape(size, -1)[:n - a])
    return np.concatenate(acts)


def _scores(model: FrozenModel, target: OutputTarget, frames: np.ndarray,
            patching: Patching, idx: list[int], fill: float | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """The explained output and the probability of each tag, averaged over the patches."""
    act = patch_outputs(model, target.tensor, frames, patching, fill)
    prob = act if target.output == "probability" else _squash(model, target, act)
    return (act[:, idx].mean(axis=0).astype(np.float32),
            prob[:, idx].mean(axis=0).astype(np.float32))


def _squash(model: FrozenModel, target: OutputTarget, logits: np.ndarray) -> np.ndarray:
    """The output's sigmoid or softmax of ``logits`` (patches, classes)."""
    if target.squash == "Softmax":
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-logits))
