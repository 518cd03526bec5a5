"""The sanity check of one model on one track, as one report: run it, write it, read it, and
keep it on disk per model and track.

:func:`sanity_check` runs the three checks of :mod:`mirdeconv.sanity` on (an excerpt of) a
track: the cascading randomisation of the class explanations (when the model has class
outputs), of the deconvolution of its deepest feature layer, and the selectivity of the
auralisations of its first and deepest layers.  :func:`save_report` writes
``sanity.json``, ``sanity.md`` (the tables) and ``sanity.png`` (similarity against the
randomised layers, one line per method, as Adebayo et al.'s figures), atomically.
:func:`cached_sanity_check` keeps the report under the cache folder, keyed by the model's
graph digest, the excerpt's samples and the settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import validate
from ..engine import check_model
from ..errors import InvalidOptionError, MirdeconvError
from ..explanations.targets import OUTPUTS, explained_output
from ..model import FrozenModel
from ..options import check_number
from ..progress import ProgressArg
from ..store import file_lock, prepare_folder, save_json
from .activity import features_or_top
from .cascade import (
    CASCADE_SETTINGS,
    DECONVOLUTION_METHODS,
    EXPLANATION_METHODS,
    PASS_BELOW,
    Cascade,
    deconvolution_cascade,
    explanation_cascade,
    usable_methods,
)
from .feedback import FEEDBACK_SOUND, Selectivity, selectivity
from .randomise import cascade, parameter_layers

__all__ = ["SanityReport", "sanity_check", "save_report", "load_report", "cached_sanity_check",
           "DEFAULT_SECONDS", "excerpt", "cache_key", "report_folder", "REPORT_VERSION"]

#: The excerpt checked (from the track's start), in seconds.
DEFAULT_SECONDS = 30.0


@dataclass
class SanityReport:
    """The sanity checks of one model on one track.

    Attributes
    ----------
    model_name, model_digest : str
        The model, and its graph's content digest.
    track : str
        The track's name.
    seconds : float
        The excerpt's length.
    settings : dict
        How the checks ran.
    explanations, deconvolution : Cascade or None
        The cascading randomisations (``explanations`` None for a model without class
        outputs).
    selectivity : list of Selectivity
        One per layer.
    """

    model_name: str
    model_digest: str
    track: str
    seconds: float
    settings: dict[str, Any]
    explanations: Cascade | None
    deconvolution: Cascade | None
    selectivity: list[Selectivity] = field(default_factory=list)

    def cascades(self) -> list[Cascade]:
        return [c for c in (self.explanations, self.deconvolution) if c is not None]

    def verdicts(self) -> dict[str, dict[str, bool]]:
        """``{"explanation": {method: passes}, "deconvolution": {...}}``."""
        return {c.kind: c.passes() for c in self.cascades()}

    def to_dict(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "model_digest": self.model_digest,
                "track": self.track, "seconds": self.seconds, "settings": self.settings,
                "pass_below": PASS_BELOW,
                "explanations": None if self.explanations is None else self.explanations.to_dict(),
                "deconvolution": None if self.deconvolution is None
                else self.deconvolution.to_dict(),
                "selectivity": [s.to_dict() for s in self.selectivity]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SanityReport:
        def cascade(c: dict | None) -> Cascade | None:
            return None if c is None else Cascade.from_dict(c)

        return cls(d["model_name"], d["model_digest"], d["track"], float(d["seconds"]),
                   dict(d["settings"]), cascade(d["explanations"]), cascade(d["deconvolution"]),
                   [Selectivity.from_dict(s) for s in d["selectivity"]])

    def markdown(self) -> str:
        """The report as Markdown tables."""
        lines = [f"# Sanity checks: {self.model_name}", "",
                 f"Track: {self.track} (the first {self.seconds:g} s).  A method passes when the "
                 f"rank correlation (ρ) of its map's magnitudes with the trained model's is "
                 f"below {PASS_BELOW} at every step, from the top layer re-initialised to "
                 f"every layer.", ""]
        for c in self.cascades():
            lines += [f"## Cascading randomisation: {c.kind}s ({c.subject})", "",
                      "| method | ρ, top layer random | ρ, all random | signed ρ | SSIM | "
                      "first below | passes | s |", "|---|---:|---:|---:|---:|---|---|---:|"]
            for r in c.table():
                lines.append(
                    f"| {r['method']} | {r['spearman_top_random']:.2f} | "
                    f"{r['spearman_all_random']:.2f} | {r['spearman_signed_all_random']:.2f} | "
                    f"{r['ssim_all_random']:.2f} | {r['first_below'] or '—'} | "
                    f"{'yes' if r['passes'] else 'no'} | {r['seconds']:.1f} |")
            lines += [f"| {m} | skipped: {why} |||||||" for m, why in c.skipped.items()]
            lines += ["", "Steps (top first): " + " → ".join(c.steps), ""]
        if self.selectivity:
            lines += ["## Selectivity of the auralisations", "",
                      "| layer | method | features | median ratio | ratio > 1 | rank 1 | "
                      "median rank (of responding) |", "|---|---|---:|---:|---:|---:|---:|"]
            for s in self.selectivity:
                m = s.summary()
                lines.append(f"| {m['layer']} | {m['method']} | {m['n_features']} | "
                             f"{m['median_ratio']:.2f} | {100 * m['selective_share']:.0f} % | "
                             f"{100 * m['rank1_share']:.0f} % | {m['median_rank']:.0f} of "
                             f"{m['n_responding']} |")
            lines.append("")
        return "\n".join(lines)


def sanity_check(
    model: FrozenModel,
    audio: np.ndarray,
    sr: int,
    *,
    track_name: str = "",
    seconds: float | None = DEFAULT_SECONDS,
    methods: Sequence[str] = EXPLANATION_METHODS,
    tag: str | int | None = None,
    layer: str | int | None = None,
    top: int = 8,
    selectivity_layers: Sequence[str | int] | None = None,
    selectivity_top: int = 16,
    seed: int = 0,
    progress: ProgressArg = False,
    features: int | None = None,
    selectivity_features: int | None = None,
) -> SanityReport:
    """Run every sanity check of a model on (the start of) a track.

    Parameters
    ----------
    model : FrozenModel
    audio : np.ndarray, shape (n_samples,)
    sr : int
        Sample rate in Hz.
    track_name : str
    seconds : float or None
        The excerpt checked, from the start (None: the whole track).
    methods : sequence of str
        The class explanations' methods.
    tag : str or int, optional
        The explained tag (default: the top tag).
    layer : str or int, optional
        The deconvolved layer (default: the deepest).
    top : int
        How many of its most active features are deconvolved.
    selectivity_layers : sequence, optional
        Layers whose auralisations are fed back (default: the first and the deepest).
    selectivity_top : int
        How many of each layer's most active features.
    seed : int
        The re-initialisation's seed.
    progress : bool or callable
        Passed to each check in turn.
    features, selectivity_features : int, optional
        Deprecated names of ``top`` and ``selectivity_top`` (a DeprecationWarning).

    Returns
    -------
    SanityReport
    """
    if features is not None:
        top = features_or_top(features, top, "sanity_check")
    if selectivity_features is not None:
        selectivity_top = features_or_top(selectivity_features, selectivity_top, "sanity_check",
                                          "selectivity_features", "selectivity_top")
    model = check_model(model)
    check_number("most_active", top, "top (how many of the most active)")
    check_number("most_active", selectivity_top, "selectivity_top")
    check_number("seed", seed)
    if seconds is not None:
        check_number("seconds", seconds)
        seconds = seconds or None                     # 0: the whole track
    unknown = [m for m in methods if m not in EXPLANATION_METHODS]
    if unknown or not methods:
        raise InvalidOptionError(f"unknown explanation method(s) {unknown or methods}; use "
                                 f"some of {', '.join(EXPLANATION_METHODS)}")
    audio = excerpt(audio, sr, seconds)
    layer_name = model.layer(-1 if layer is None else layer).name
    sel_layers = ([model.layers[0].name, model.layers[-1].name] if selectivity_layers is None
                  else [model.layer(x).name for x in selectivity_layers])
    track = model.representation.prepare(audio, sr)
    output = _class_output(model)
    sel_layers = list(dict.fromkeys(sel_layers))
    stage = _stages(progress, [
        0 if output is None else
        (1 + len(cascade(parameter_layers(model)))) * len(usable_methods(model, methods)[0]),
        (1 + len(cascade(parameter_layers(model, model.layer(layer_name).tensor))))
        * len(DECONVOLUTION_METHODS),
        *(min(selectivity_top, model.layer(x).n_features) for x in sel_layers)])
    expl = None
    if output is not None:
        expl = explanation_cascade(model, track=track, tag=tag, methods=methods, output=output,
                                   seed=seed, progress=stage[0])
    deconv = deconvolution_cascade(model, track=track, layer=layer_name, top=top,
                                   seed=seed, progress=stage[1])
    sel = [selectivity(model, audio, sr, layer=x, top=selectivity_top, track=track,
                       progress=stage[2 + i]) for i, x in enumerate(sel_layers)]
    settings = {"methods": list(methods), "output": output, "tag": tag, "layer": layer_name,
                "top": top,
                "selectivity_layers": sel_layers, "selectivity_top": selectivity_top,
                "seed": seed, "explanation_settings": dataclasses.asdict(CASCADE_SETTINGS)}
    return SanityReport(model.name, model.graph.content_digest(), track_name,
                        len(audio) / float(sr), settings, expl, deconv, sel)


def _class_output(model: FrozenModel) -> str | None:
    """What a class explanation of ``model`` explains: its logits, else (an output without a
    sigmoid or softmax) the output itself; None: no class output."""
    for output in OUTPUTS:
        try:
            explained_output(model, output)
            return output
        except MirdeconvError:
            continue
    return None


def _stages(progress: ProgressArg, totals: list[int]) -> list[ProgressArg]:
    """One progress argument per stage: a callable ``progress(done, total)`` sees the stages
    as one count over their ``totals``; True or False go to every stage as they are."""
    if not callable(progress):
        return [progress] * len(totals)
    grand = max(1, sum(totals))
    starts = np.cumsum([0, *totals[:-1]])
    return [lambda done, _total, s=int(s), n=n: progress(min(s + done, s + n), grand)
            for s, n in zip(starts, totals)]


def save_report(report: SanityReport, folder: str | os.PathLike, *, png: bool = True
                ) -> list[Path]:
    """Write ``sanity.png`` (with ``png``), ``sanity.md`` and, last, ``sanity.json`` into
    ``folder``, each atomically.

    Returns
    -------
    list of Path
    """
    from ..store import atomic_path

    out = prepare_folder(folder)
    files = []
    if png:
        from ..plot import save_figure

        save_figure(cascade_figure(report), out / "sanity.png")
        files.append(out / "sanity.png")
    with atomic_path(out / "sanity.md") as tmp:
        tmp.write_text(report.markdown())
    files.append(out / "sanity.md")
    # last: its presence says the report is whole (cached_sanity_check reads it so)
    files.append(save_json(out / "sanity.json", _strict(report.to_dict())))
    return files


def _strict(obj: Any) -> Any:
    """``obj`` with every non-finite float made None (strict JSON: browsers read it)."""
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def load_report(path: str | os.PathLike) -> SanityReport:
    """Read a report from its ``sanity.json`` (or the folder holding it)."""
    p = Path(path)
    p = p / "sanity.json" if p.is_dir() else p
    return SanityReport.from_dict(json.loads(p.read_text()))


def cascade_figure(report: SanityReport) -> Any:
    """Rank correlation with the trained model's map against the layers randomised, one panel
    per cascade, one line per method (a matplotlib Figure)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    cascades = report.cascades()
    fig = Figure(figsize=(6.0 * len(cascades), 4.2), layout="constrained")
    for ax, c in zip(np.atleast_1d(fig.subplots(1, len(cascades))), cascades):
        for i, m in enumerate(c.methods):
            ax.plot(range(len(c.steps)), c.spearman[i], marker="o", label=m)
        ax.axhline(PASS_BELOW, color="grey", linestyle="--", linewidth=1)
        ax.set_xticks(range(len(c.steps)), c.steps, rotation=40, ha="right", fontsize=8)
        ax.set_ylim(-0.1, 1.05)
        ax.set_ylabel("Spearman ρ of |map| with the trained model's")
        ax.set_xlabel("layers re-initialised, cumulatively from the top")
        ax.set_title(f"{c.kind}s: {c.subject}", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"{report.model_name}: cascading randomisation")
    return fig


#: :func:`sanity_check`'s deprecated keywords and their new names.
DEPRECATED_SETTINGS = {"features": "top", "selectivity_features": "selectivity_top"}

#: Bumped when what a report holds, or how it is computed, changes (old reports are then
#: recomputed, not read).
REPORT_VERSION = 2


def cache_key(model: FrozenModel, audio: np.ndarray, sr: int, settings: dict[str, Any]) -> str:
    """The report's key: the model (its graph, input, representation, normalisation, layers
    and labels), the excerpt's samples, every setting of :func:`sanity_check` (defaults
    filled in) and what the checks hold fixed (:data:`REPORT_VERSION`, the cascade's
    explanation settings, the deconvolution methods, the auralisation fed back)."""
    import inspect

    params = inspect.signature(sanity_check).parameters
    resolved = {k: p.default for k, p in params.items()
                if p.default is not inspect.Parameter.empty
                and k not in ("track_name", "progress", *DEPRECATED_SETTINGS)}
    for old, new in DEPRECATED_SETTINGS.items():        # the same report under the old name
        if old in settings:
            settings = {**{k: v for k, v in settings.items() if k != old}, new: settings[old]}
    resolved.update(settings)
    what = {"version": REPORT_VERSION, "sr": int(sr), "settings": resolved,
            "cascade": dataclasses.asdict(CASCADE_SETTINGS), "deconvolution": list(DECONVOLUTION_METHODS),
            "feedback": dataclasses.asdict(FEEDBACK_SOUND), "model": {
                **model.identity(), "layers": model.layer_tensors, "labels": model.labels,
                "output": model.output_tensor, "normalization": model.input_normalization}}
    h = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(audio, np.float32).tobytes())
    return h.hexdigest()[:24]


def report_folder(model: FrozenModel, audio: np.ndarray, sr: int, *,
                  cache: str | os.PathLike | None = None, **settings: Any) -> Path:
    """Where :func:`cached_sanity_check` keeps the report of these settings (it may not exist
    yet; it is complete when it holds ``sanity.json``)."""
    from ..zoo import cache_dir

    part = excerpt(audio, sr, settings.get("seconds", DEFAULT_SECONDS))
    return Path(cache or cache_dir() / "sanity") / cache_key(model, part, sr, settings)


def excerpt(audio: np.ndarray, sr: int, seconds: float | None) -> np.ndarray:
    """The first ``seconds`` of a track (None: all of it), validated."""
    audio = validate(audio, sr)
    return audio if seconds is None else audio[:max(1, int(round(seconds * sr)))]


def cached_sanity_check(model: FrozenModel, audio: np.ndarray, sr: int, *,
                        cache: str | os.PathLike | None = None, refresh: bool = False,
                        track_name: str = "", progress: ProgressArg = False,
                        **settings: Any) -> tuple[SanityReport, Path]:
    """:func:`sanity_check`, read from ``cache`` (default: ``<mirdeconv cache>/sanity``) when it
    has run before on the same model, excerpt and settings; else run and saved there (one
    process at a time per report: another waits for it and reads it).

    Returns
    -------
    (SanityReport, Path)
        The report and its folder.
    """
    folder = report_folder(model, audio, sr, cache=cache, **settings)
    done = folder / "sanity.json"
    if not refresh and done.is_file():
        return load_report(folder), folder
    with file_lock(folder.parent / f".{folder.name}.lock", owner=f"pid {os.getpid()}"):
        if refresh or not done.is_file():
            report = sanity_check(model, audio, sr, track_name=track_name, progress=progress,
                                  **settings)
            save_report(report, folder)
    return load_report(folder), folder
