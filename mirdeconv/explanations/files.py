"""An explanation written to a folder: per tag its mask (.npy), a picture of the input
beside it (.png), its sound and its complement's (.wav), and ``explanation.json`` (the
scores, the settings and, for integrated gradients, the completeness).  Every file is
written atomically (:mod:`mirdeconv.store`)."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import numpy as np

from ..options import SoundOptions
from ..store import prepare_folder, save_json, save_npy, write_audio
from .api import Explanation
from .sound import EXPLANATION_SOUND, explanation_sound

__all__ = ["tag_file", "save_explanation"]


def tag_file(index: int, tag: str, suffix: str) -> str:
    """``007_female_vocal.wav``: the class index, then the tag in safe characters."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", tag).strip("_") or "tag"
    return f"{index:03d}_{slug}{suffix}"


def save_explanation(expl: Explanation, folder: str | os.PathLike, *,
                     sound: SoundOptions = EXPLANATION_SOUND, top_percent: float | None = None,
                     audio: np.ndarray | None = None, sr: int | None = None, png: bool = True,
                     figures: list[dict] | None = None) -> list[Path]:
    """Write ``expl`` into ``folder`` (created); ``figures``: its faithfulness table
    (:meth:`mirdeconv.explanations.Faithfulness.table`), kept in ``explanation.json``.

    Returns
    -------
    list of Path
        The files written.
    """
    from ..plot import mask_figure, save_figure

    out = prepare_folder(folder)
    kept, removed, out_sr = explanation_sound(expl, sound=sound, top_percent=top_percent,
                                              audio=audio, sr=sr)
    files = []
    for t, (i, tag) in enumerate(zip(expl.indices, expl.tags)):
        files.append(save_npy(out / tag_file(i, tag, ".npy"), expl.masks[t]))
        files.append(write_audio(out / tag_file(i, tag, ".wav"), kept[t], out_sr))
        files.append(write_audio(out / tag_file(i, tag, "_complement.wav"), removed[t], out_sr))
        if png:
            fig = mask_figure(expl.track.frames, expl.masks[t], expl.track.representation,
                              f"{expl.model_name}: {tag} ({expl.output} "
                              f"{expl.scores[t]:.3g}, probability {expl.probabilities[t]:.2f})",
                              mask_title=expl.method)
            save_figure(fig, out / tag_file(i, tag, ".png"))
            files.append(out / tag_file(i, tag, ".png"))
    files.append(save_json(out / "explanation.json", {
        "model": expl.model_name, "method": expl.method, "output": expl.output,
        "settings": dataclasses.asdict(expl.settings), "n_patches": expl.n_patches,
        "top_percent": top_percent, "sound": dataclasses.asdict(sound), "sr": out_sr,
        "tags": [{"tag": tag, "index": i, "score": float(expl.scores[t]),
                  "probability": float(expl.probabilities[t]),
                  "baseline_score": None if expl.baseline_scores is None
                  else float(expl.baseline_scores[t]),
                  "completeness_error": None if expl.completeness is None
                  else float(expl.completeness[t]),
                  "files": [tag_file(i, tag, s) for s in
                            (".npy", ".wav", "_complement.wav") + ((".png",) if png else ())]}
                 for t, (i, tag) in enumerate(zip(expl.indices, expl.tags))],
        "faithfulness": figures}))
    return files
