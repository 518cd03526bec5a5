"""The atlas' second pass: for every winner, its excerpt as sound, and for a feature's
winner the feature's deconvolution on that excerpt (a picture beside the input) and its
auralisation; computed only for the winners, one task per track (its audio read once).

Each feature's winner is also described by the analysis' descriptors (onset F-measure on
the excerpt's detected onsets, percussive share, bands, ...); :func:`feature_descriptors`
aggregates them per feature.

Files, below the atlas' ``files/<generation>/`` folder (``NNN``: feature or class, ``R``:
rank)::

    features/<layer>/fNNN/R_excerpt.wav, R.wav (the auralisation), R.png
    tags/NNN_<label>/R_excerpt.wav
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..analysis import DESCRIPTORS, Reference, TrackContext, describe
from ..audio import load
from ..auralisation import auralise_result
from ..engine import deconvolve
from ..engine.memory import read_block, spill
from ..errors import MirdeconvError
from ..plot import mask_figure, save_figure
from ..store import write_audio

__all__ = ["winner_files", "feature_descriptors", "FILE_COLUMNS"]

FILE_COLUMNS = ["excerpt_path", "audio_path", "png_path", "error"]


def _folder(row: Any, labels: list[str]) -> str:
    if row.kind == "feature":
        return f"features/{re.sub(r'[^A-Za-z0-9_.-]+', '_', row.layer)}/f{int(row.unit):03d}"
    label = labels[int(row.unit)] if int(row.unit) < len(labels) else ""
    return f"tags/{int(row.unit):03d}_{re.sub(r'[^A-Za-z0-9]+', '_', label).strip('_') or 'tag'}"


def winner_files(model: Any, path: str, rows: pd.DataFrame, out: str) -> pd.DataFrame:
    """Write the files of one track's winners (``rows`` of the atlas' table).

    Returns
    -------
    pandas.DataFrame
        ``rows`` with :data:`FILE_COLUMNS` (paths relative to ``out``; ``error``: why a
        winner has no deconvolution, e.g. an excerpt shorter than the layer's receptive
        field, else "").
    """
    y, sr = load(path)
    y = spill(y)          # a long track's samples in a memory map: each excerpt read alone
    labels = list(model.labels or [])
    done = []
    for row in rows.itertuples(index=False):
        rel = _folder(row, labels)
        folder = Path(out) / rel
        folder.mkdir(parents=True, exist_ok=True)
        a, b = int(round(row.start * sr)), int(round(row.end * sr))
        clip = read_block(y, np.s_[a:b])
        excerpt = f"{rel}/{int(row.rank)}_excerpt.wav"
        write_audio(Path(out) / excerpt, clip, sr)
        sound = png = error = ""
        values = dict.fromkeys(DESCRIPTORS, np.nan)
        if row.kind == "feature":
            try:
                res = deconvolve(model, clip, sr, layer=row.layer, features=[int(row.unit)])
                ctx = TrackContext(res.track, Reference.detect(clip, sr))
                values = describe(res, ctx).iloc[0][list(DESCRIPTORS)].to_dict()
                aur = auralise_result(res, clip, sr)
                sound = f"{rel}/{int(row.rank)}.wav"
                write_audio(Path(out) / sound, aur.audio[0], aur.sr)
                png = f"{rel}/{int(row.rank)}.png"
                fig = mask_figure(res.track.frames, res.masks[0], res.track.representation,
                                  f"{row.layer} feature {int(row.unit)}: {row.track} "
                                  f"{row.start:.1f}-{row.end:.1f} s (peak {row.activation:.3g})")
                save_figure(fig, Path(out) / png)
            except MirdeconvError as exc:
                error = str(exc)
        done.append((excerpt, sound, png, error, values))
    out = rows.assign(**{c: [d[i] for d in done] for i, c in enumerate(FILE_COLUMNS)})
    return out.assign(**{k: [float(d[4][k]) for d in done] for k in DESCRIPTORS})


def feature_descriptors(table: pd.DataFrame) -> pd.DataFrame:
    """Each feature's descriptors over its winners (the analysis' descriptors of its
    deconvolution on each excerpt, :mod:`mirdeconv.analysis`): their mean, and how many
    winners had one (``n``)."""
    feats = table[table["kind"] == "feature"]
    cols = [c for c in DESCRIPTORS if c in feats.columns]
    grouped = feats.groupby(["layer", "unit"], sort=True)
    out = grouped[cols].mean()
    out.insert(0, "n", grouped[cols[0]].count() if cols else 0)
    return out.reset_index()
