"""What the app's Tags view computes, without Streamlit: the track's top tags, a tag's
explanation (picture, sound and complement), its faithfulness figures, and the model's
sanity check (kept on disk per model and track)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidOptionError
from ..explanations import (
    ExplainOptions,
    Explanation,
    audio_faithfulness,
    explain,
    explanation_sound,
    faithfulness,
)
from ..explanations.targets import explained_output
from ..plot import mask_figure
from ..prediction import predict
from ..sanity import SanityReport
from ..sanity.report import cached_sanity_check, report_folder
from .logic import figure_png, wav_bytes

__all__ = ["top_tags", "tag_explanation", "explanation_media", "faithfulness_figures",
           "sanity_folder", "sanity_report", "TOP_TAGS", "FAITHFULNESS_STEPS", "APP_SANITY"]

TOP_TAGS = 5
#: Shares of the bins deleted or inserted for the deletion and insertion curves.
FAITHFULNESS_STEPS = 10
#: The sanity check the app runs: every explanation method on the track's first 30 s.
APP_SANITY: dict[str, Any] = {"seconds": 30.0}


def top_tags(model: Any, y: np.ndarray, sr: int, n: int = TOP_TAGS) -> list[tuple[int, str, float]]:
    """The ``n`` classes with the highest mean probability over the track's patches, as
    (class index, label, probability), strongest first.

    Raises
    ------
    UnsupportedGraphError
        The model has no class output.
    """
    explained_output(model, "logit")               # a class output to explain, or the reason
    act, labels, _ = predict(model, y, sr)
    mean = np.asarray(act, np.float64).mean(axis=0)
    order = np.argsort(-mean, kind="stable")[:n]
    return [(int(i), labels[i] if i < len(labels) else str(i), float(mean[i])) for i in order]


def tag_explanation(model: Any, y: np.ndarray, sr: int, tag: int, options: ExplainOptions
                    ) -> Explanation:
    """One tag's explanation (a method that takes a layer at ``options.layer``; the others
    ignore it)."""
    return explain(model, y, sr, tag=tag, options=options)


def explanation_media(expl: Explanation) -> tuple[bytes, bytes, bytes]:
    """The input beside the explanation (PNG), the explanation's sound and its complement's
    (WAV, each at peak 0.99)."""
    fig = mask_figure(expl.track.frames, expl.masks[0], expl.track.representation,
                      f"{expl.model_name}: {expl.tags[0]} ({expl.output} {expl.scores[0]:.3g}, "
                      f"probability {expl.probabilities[0]:.2f})", mask_title=expl.method)
    kept, removed, sr = explanation_sound(expl)
    return figure_png(fig), wav_bytes(kept[0], sr), wav_bytes(removed[0], sr)


def faithfulness_figures(model: Any, expl: Explanation) -> dict[str, Any]:
    """The explanation's faithfulness: L-MAC's figures in the input domain and through the
    re-synthesised audio, the deletion and insertion curves (or why the input domain's cannot
    be measured).

    Returns
    -------
    dict
        ``"table"``: rows (domain, p, masked in, masked out, AI, AD, AG, FF, Fid-In, deletion,
        deletion (random), insertion, insertion (random)); ``"curves"``: a dict of columns
        (fraction, deletion, random deletion, insertion, random insertion) or None;
        ``"note"``: why the input domain is missing, or "".
    """
    rows, curves, note = [], None, ""
    try:
        f = faithfulness(model, expl, steps=FAITHFULNESS_STEPS)
        r = f.table()[0]
        rows.append({"domain": "model input", **_lmac_row(r), "deletion": r["deletion"],
                     "deletion (random)": r["deletion_random"], "insertion": r["insertion"],
                     "insertion (random)": r["insertion_random"]})
        curves = {"fraction of bins": f.fractions, "deletion": f.deletion[0],
                  "deletion, random order": f.deletion_random[0], "insertion": f.insertion[0],
                  "insertion, random order": f.insertion_random[0]}
    except InvalidOptionError as exc:
        note = str(exc)
    for r in audio_faithfulness(model, expl):
        rows.append({"domain": "re-synthesised audio", **_lmac_row(r)})
    return {"table": rows, "curves": curves, "note": note}


def _lmac_row(r: dict[str, Any]) -> dict[str, Any]:
    return {"p": r["p"], "masked in": r["p_in"], "masked out": r["p_out"], "AI": r["AI"],
            "AD": r["AD"], "AG": r["AG"], "FF": r["FF"], "Fid-In": bool(r["Fid-In"])}


def sanity_folder(model: Any, y: np.ndarray, sr: int) -> Path:
    """Where the app keeps the model's sanity check of this track (complete when it holds
    ``sanity.json``)."""
    return report_folder(model, y, sr, **APP_SANITY)


def sanity_report(model: Any, y: np.ndarray, sr: int, track_name: str, progress: Any = None
                  ) -> tuple[SanityReport, bytes]:
    """The sanity check (read from the disk when it ran before) and its figure (PNG)."""
    report, folder = cached_sanity_check(model, y, sr, progress=progress or False,
                                         track_name=track_name, **APP_SANITY)
    return report, (folder / "sanity.png").read_bytes()
