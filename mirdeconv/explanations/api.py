"""``explain``: which parts of a track made a model say a tag, on the track's own grid.

The track goes through the model as its predictions do: whole (a model that takes any
length), or in the model's patches, whose outputs the track-level prediction averages (as
Essentia's predictors and :func:`mirdeconv.predict` do).  The explanation is of that
average: each patch's attribution, divided by the number of patches, is added at the
patch's frames (overlaps add up, as the average's gradient does), so that for the
gradient it equals the gradient of the track-level output with respect to the track's
frames (the padded end of the last patch left out).

Memory is bounded by the work's shape, not by the track's length (one budget,
:attr:`mirdeconv.options.DeconvOptions.budget`): one patch is measured first (its forward
pass and one tag's backward pass, :func:`mirdeconv.engine.memory.probe_bytes`), and the
patches go through the model in batches, the tags backward in groups, that hold at most an
eighth of the budget (:func:`plan_explanation`); a long track's STFT and audio are spilled
to memory maps (:func:`mirdeconv.engine.memory.spill_track`), and so are the tags' masks when
they pass 1/64 of the budget (:func:`mirdeconv.engine.memory.mask_array`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..engine import Program, check_model, compiled_tensor, release_pages, run_graph, spill_track, track_input
from ..engine.memory import FORWARD_SHARE, PROBE_FRAMES, mask_array, probe_bytes, size_text
from ..engine.patches import Patching, normalize_track, patch_input, plan_patches
from ..errors import InvalidOptionError, MemoryBudgetError
from ..graph import LayerInfo
from ..graph.operations import SOFTMAX
from ..model import FrozenModel
from ..options import DeconvOptions, resolve
from ..progress import Progress, ProgressArg
from ..representations import TrackInput
from .methods import Attribution, Batch, Settings
from .options import ExplainOptions
from .targets import ExplainedOutput, explained_output, tag_indices

__all__ = ["Explanation", "ExplanationPlan", "explain", "plan_explanation", "track_inputs",
           "patch_outputs", "patch_fill", "has_silence", "silence_frame", "BATCH_FRAMES",
           "BATCH_ITEMS", "TAGS_PER_PASS"]

#: Tags whose backward passes run together at most (fewer when they do not fit the plan).
TAGS_PER_PASS = 4

#: Input frames that go through the model together in its plain forward pass
#: (:func:`patch_outputs`), at most :data:`BATCH_ITEMS` items; the attributions' batches are
#: sized by the memory plan (:func:`plan_explanation`), at most :data:`BATCH_ITEMS` items too.
#: Every batch of a compiled pass has the same size (the last one padded): TensorFlow 2.21's
#: oneDNN convolution has aborted the process when one compiled forward pass met a third
#: batch size (``Check failed: dtype() == expected_dtype``).
BATCH_FRAMES = 1024
BATCH_ITEMS = 16

_DEFAULTS = ExplainOptions()


@dataclass(frozen=True)
class ExplanationPlan:
    """How an explanation's work goes through the model under the memory budget.

    Attributes
    ----------
    budget : int
        Bytes (:attr:`DeconvOptions.budget`).
    forward_bytes : int
        What one item's forward pass holds (a patch, or one of its inputs for integrated
        gradients and SmoothGrad; the whole track for a model that takes any length).
    backward_bytes : int
        What one tag's backward pass over one item holds besides.
    items : int
        Items per batch (every batch the same size).
    tags : int
        Tags whose backward passes run together.
    """

    budget: int
    forward_bytes: int
    backward_bytes: int
    items: int
    tags: int

    @property
    def piece_bytes(self) -> int:
        """What one batch holds: its forward pass and its tags' backward passes."""
        return self.items * (self.forward_bytes + self.tags * self.backward_bytes)

    def describe(self) -> str:
        """One line: the estimate before the work starts."""
        return (f"memory: ~{size_text(self.piece_bytes)} per batch ({self.items} item"
                f"{'s' if self.items != 1 else ''}, {self.tags} tag{'s' if self.tags != 1 else ''}"
                f" at once); budget {size_text(self.budget)}")


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
        A method whose row reports completeness (integrated gradients):
        ``|sum(attributions) - (score - baseline score)|`` relative to ``|score - baseline
        score|``, per tag.
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
    method: str = _DEFAULTS.method,
    output: str = _DEFAULTS.output,
    steps: int = _DEFAULTS.steps,
    copies: int = _DEFAULTS.copies,
    noise: float = _DEFAULTS.noise,
    seed: int = _DEFAULTS.seed,
    layer: str | int | None = None,
    track: TrackInput | None = None,
    memory: int | str | None = None,
    progress: ProgressArg = False,
    options: ExplainOptions | None = None,
    samples: int | None = None,
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
        A row of :data:`mirdeconv.explanations.ATTRIBUTIONS` (default ``"saliency"``).
    output : {"logit", "probability"}
        The output's logit (before its sigmoid or softmax) or the probability itself.
    steps : int
        Points on the path from silence (integrated gradients).
    copies, noise, seed : int, float, int
        Noisy copies of each patch, their noise (a fraction of each patch's value range) and
        the random seed (SmoothGrad).
    layer : str or int, optional
        The layer of a method that takes one (a name or position in ``model.layers``;
        required by ``gradcam``); the other methods ignore it.
    track : TrackInput, optional
        A precomputed ``model.representation.prepare(audio, sr)``.
    memory : int or str, optional
        The memory budget in bytes, or a size such as ``"2G"`` (default: ``MIRDECONV_MEMORY``
        or :data:`mirdeconv.options.DEFAULT_MEMORY`): batches of patches and groups of tags
        are sized to an eighth of it (:func:`plan_explanation`).
    progress : bool or callable
        True for a tqdm bar, or ``callable(done, total)`` after every batch.
    options : ExplainOptions, optional
        ``method``, ``output``, ``steps``, ``copies``, ``noise``, ``seed`` and ``layer`` in
        one object (then not as keywords as well).
    samples : int, optional
        Deprecated name of ``copies`` (a DeprecationWarning).

    Returns
    -------
    Explanation
        ``masks`` has shape ``(n_tags, n_frames, n_bands)`` (a memory map when they pass
        1/64 of the budget).

    Raises
    ------
    InvalidOptionError
        An unknown method, output or tag; bad settings.
    MemoryBudgetError
        One item's forward pass and one tag's backward pass do not fit in the budget.
    UnsupportedGraphError
        The model has no class output, or an operation on the way the engine has no rule for.
    AudioError
        Unusable audio.
    """
    if samples is not None:
        warnings.warn("explain(samples=) is now copies= (SmoothGrad's noisy copies)",
                      DeprecationWarning, stacklevel=2)
        copies = samples
    opts = resolve(ExplainOptions, options, {
        "method": method, "output": output, "steps": steps, "copies": copies, "noise": noise,
        "seed": seed, "layer": layer})
    method, output, row, settings = opts.method, opts.output, opts.row, opts.settings
    model = check_model(model)
    budget = DeconvOptions(memory=memory).budget
    explained = explained_output(model, output)
    idx = None if tag is None else tag_indices(model, tag, explained.n_classes)
    info = _layer(model, row, opts.layer)
    if row.baseline and not has_silence(model):
        raise InvalidOptionError(
            f"{row.name} starts from digital silence, which has no fixed value for {model.name}: "
            "it normalises its input by the track's or each patch's own statistics")
    track = spill_track(track_input(model, audio, sr, track), budget)
    frames, base, patching = track_inputs(model, track)
    prog = compiled_tensor(model, explained.tensor, 1, row.backward_method, "float32")
    plan = plan_explanation(prog, model, frames, patching, 1 if idx is None else len(idx), budget,
                            row.count(settings))
    if idx is None:
        _, probs = _scores(model, explained, frames, patching, list(range(explained.n_classes)),
                           items=plan.items)
        idx = [int(np.argmax(probs))]
    masks = mask_array((len(idx), *frames.shape), budget)
    total = np.zeros(len(idx), np.float64)
    n_batches = -(-len(patching.starts) * row.count(settings) // plan.items)
    bar = Progress(progress, n_batches * -(-len(idx) // plan.tags), f"{model.name} ({method})",
                   "batch")
    with bar:
        for t0 in range(0, len(idx), plan.tags):
            sel = slice(t0, t0 + plan.tags)
            job = Batch(model, prog, frames, base, np.array(idx[sel]), explained.n_classes,
                        settings, info)
            total[sel] = _attribute(row, job, patching, masks[sel], bar, plan.items)
    release_pages(masks)
    scores, probs = _scores(model, explained, frames, patching, idx, items=plan.items)
    base_scores = completeness = None
    if row.completeness:
        base_scores, _ = _scores(model, explained, base, patching, idx, fill=patch_fill(model, frames),
                                 items=plan.items)
        delta = scores.astype(np.float64) - base_scores
        completeness = (np.abs(total - delta) / np.maximum(np.abs(delta), 1e-12)).astype(np.float32)
    labels = list(model.labels or [])
    names = [labels[i] if i < len(labels) else str(i) for i in idx]
    return Explanation(masks, names, idx, scores, probs, base_scores, completeness, method, output,
                       settings, len(patching.starts), track, model.name)


def plan_explanation(prog: Program, model: FrozenModel, frames: np.ndarray, patching: Patching,
                     n_tags: int, budget: int, per_patch: int = 1) -> ExplanationPlan:
    """Items per batch and tags per backward pass, measured on one patch (one forward pass):
    a batch's forward pass and its tags' backward passes hold at most ``budget /
    FORWARD_SHARE`` (at least one item and one tag); every batch the same size.

    Parameters
    ----------
    prog : Program
        The compiled program from the explained output.
    model : FrozenModel
    frames : np.ndarray, float32, shape (n_frames, n_bands)
        The track's frames, normalised as the model asks (:func:`track_inputs`).
    patching : Patching
    n_tags : int
        Tags explained.
    budget : int
        Bytes.
    per_patch : int
        Inputs per patch (integrated gradients' steps, SmoothGrad's copies).

    Returns
    -------
    ExplanationPlan

    Raises
    ------
    MemoryBudgetError
        One item and one tag need more than the whole budget.
    """
    if model.input_length is None and patching.length > PROBE_FRAMES:    # one item: the track
        part = Patching([0], PROBE_FRAMES, PROBE_FRAMES)              # measured on its start
        scale = patching.length / PROBE_FRAMES
        forward, backward = (int(v * scale) for v in
                             probe_bytes(prog, patch_input(model, frames, part, [0])))
    else:
        forward, backward = probe_bytes(prog, patch_input(model, frames, patching, [0]))
    share = budget // FORWARD_SHARE
    tags = max(1, min(n_tags, TAGS_PER_PASS))
    while tags > 1 and forward + tags * backward > share:
        tags -= 1
    n_work = len(patching.starts) * per_patch
    items = int(max(1, min(BATCH_ITEMS, n_work, share // max(1, forward + tags * backward))))
    plan = ExplanationPlan(budget, forward, backward, items, tags)
    if plan.piece_bytes > budget:
        raise MemoryBudgetError(
            f"one patch of {model.name} and one tag need ~{size_text(plan.piece_bytes)}, more than the "
            f"memory budget of {size_text(budget)}; give a larger memory (or MIRDECONV_MEMORY)")
    return plan


def _attribute(row: Attribution, job: Batch, patching: Patching, masks: np.ndarray,
               bar: Progress, size: int) -> np.ndarray:
    """Add the attributions of ``job.tags`` into ``masks`` (T, n_frames, n_bands), batch by
    batch of ``size`` items (every batch the same size, the last padded with seeds of zero);
    returns their sums over every patch's whole input, (T,)."""
    model, n_items, per_patch = job.model, len(patching.starts), row.count(job.settings)
    n_work = len(patching.starts) * per_patch
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
        release_pages(masks)                     # (a memory map's: back to its file)
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
    """The layer of a method that takes one (None for the others, which ignore it)."""
    if not row.layer:
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
                  fill: float | None = None, items: int | None = None) -> np.ndarray:
    """A class output ``tensor`` for every patch of ``frames`` (the plain forward pass; a
    last patch that passes the end padded with ``fill``, default the frames' minimum):
    float64, shape (n_patches, n_classes).  ``items``: patches per forward pass (default
    :data:`BATCH_FRAMES` frames' worth, at most :data:`BATCH_ITEMS`; every pass the same
    size)."""
    size, n = items or _batch_size(patching), len(patching.starts)
    acts = []
    for a in range(0, n, size):
        items = [min(i, n - 1) for i in range(a, a + size)]     # padded with the last
        act = run_graph(model, patch_input(model, frames, patching, items, fill=fill), tensor)
        acts.append(np.asarray(act, np.float64).reshape(size, -1)[:n - a])
    return np.concatenate(acts)


def _scores(model: FrozenModel, explained: ExplainedOutput, frames: np.ndarray,
            patching: Patching, idx: list[int], fill: float | None = None,
            items: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The explained output and the probability of each tag, averaged over the patches
    (``items`` patches per forward pass)."""
    act = patch_outputs(model, explained.tensor, frames, patching, fill, items)
    prob = act if explained.output == "probability" else _squash(model, explained, act)
    return (act[:, idx].mean(axis=0).astype(np.float32),
            prob[:, idx].mean(axis=0).astype(np.float32))


def _squash(model: FrozenModel, explained: ExplainedOutput, logits: np.ndarray) -> np.ndarray:
    """The output's sigmoid or softmax of ``logits`` (patches, classes)."""
    if explained.squash == SOFTMAX:
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-logits))
