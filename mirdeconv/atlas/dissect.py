"""Network-Dissection labels from annotations (Bau et al., "Network Dissection", CVPR 2017,
in time instead of space): for every feature, the agreement between where it responds
most and where a concept is annotated.

* **Concepts**, from a JAMS file beside a track (``song.jams`` for ``song.wav``): ``onset``
  (namespace ``onset``) and ``drum hit`` (``tag_open`` values ``drum:...``), each an
  instant widened to :data:`INSTANT` seconds; ``low note`` and ``note`` (``note_midi``
  below or from MIDI :data:`LOW_NOTE`, about 196 Hz), and ``chord`` (``chord`` segments
  other than ``N``), each its segment.
* **Where a feature responds most**: its units (the map maximised over frequency, as in
  :mod:`mirdeconv.atlas.summary`) above the feature's :data:`QUANTILE` quantile over every
  annotated track; the quantile comes from histograms (log-spaced bins) merged over the
  tracks, so it needs no track's values kept.
* **Agreement**: a unit (the span of the layer's stride around its centre) is in a concept
  when it overlaps one of its segments.  IoU = (units active and in the concept) / (units
  active or in the concept), both counts summed over every annotated track (Network
  Dissection's dataset-wide IoU).  The feature's label is its best concept, with that IoU.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .summary import moment_batches

__all__ = ["concepts_of", "histograms", "overlaps", "thresholds", "labels_table", "CONCEPTS",
           "QUANTILE", "INSTANT", "LOW_NOTE", "EDGES"]

CONCEPTS = ("onset", "drum hit", "low note", "note", "chord")
QUANTILE = 0.95
INSTANT = 0.05
LOW_NOTE = 55
#: Histogram bin edges of activations: log-spaced magnitudes on either side of zero, open
#: at both ends (batch-norm and ELU layers respond below zero too).
_POS = np.logspace(-6, 6, 481)
EDGES = np.concatenate([[-np.inf], -_POS[::-1], [0.0], _POS, [np.inf]])


def concepts_of(path: str) -> dict[str, list[tuple[float, float]]] | None:
    """The concepts annotated for an audio file (None: no JAMS file beside it).  A concept
    whose namespace the file does not annotate is left out (its absence is unknown, not
    "none here"), so it counts only on the tracks that annotate it."""
    jam_path = Path(path).with_suffix(".jams")
    if not jam_path.is_file():
        return None
    import jams  # heavy: ~1 s or more (jsonschema, sortedcontainers, ...); only annotated tracks

    jam = jams.load(str(jam_path), validate=False)
    spaces = {a.namespace for a in jam.annotations}
    tags = any(str(o.value).startswith("drum:") for a in jam.annotations
               if a.namespace == "tag_open" for o in a.data)
    given = {"onset": "onset" in spaces, "drum hit": tags, "low note": "note_midi" in spaces,
             "note": "note_midi" in spaces, "chord": "chord" in spaces}
    out: dict[str, list[tuple[float, float]]] = {c: [] for c in CONCEPTS if given[c]}
    for ann in jam.annotations:
        for obs in ann.data:
            t, d, v = float(obs.time), float(obs.duration), obs.value
            if ann.namespace == "onset":
                out["onset"].append((t, t + INSTANT))
            elif ann.namespace == "tag_open" and str(v).startswith("drum:"):
                out["drum hit"].append((t, t + INSTANT))
            elif ann.namespace == "note_midi":
                out["low note" if float(v) < LOW_NOTE else "note"].append((t, t + d))
            elif ann.namespace == "chord" and str(v) != "N":
                out["chord"].append((t, t + d))
    return out


def histograms(model: Any, audio: np.ndarray, sr: int, layers: Sequence[str]) -> dict:
    """Per layer, each feature's histogram of unit activations over :data:`EDGES`:
    ``{layer: (n_features, n_bins) int64}`` (merged by adding)."""
    prepared = model.representation.prepare(audio, sr)
    out = {}
    for name in layers:
        info = model.layer(name)
        h = np.zeros((info.n_features, len(EDGES) - 1), np.int64)
        for _, values in moment_batches(model, prepared.frames, info):   # a batch at a time
            h += np.stack([np.histogram(v, EDGES)[0] for v in values])
        out[name] = h
    return out


def add(a: dict, b: dict) -> dict:
    """Two histogram dicts added."""
    return {k: a.get(k, 0) + b.get(k, 0) for k in set(a) | set(b)}


def thresholds(hist: dict, quantile: float = QUANTILE) -> dict:
    """Each feature's activation at ``quantile`` (the upper edge of the bin reaching it):
    ``{layer: (n_features,)}``."""
    out = {}
    for layer, h in hist.items():
        cum = np.cumsum(h, axis=1) / np.maximum(h.sum(axis=1, keepdims=True), 1)
        idx = np.argmax(cum >= quantile, axis=1)
        out[layer] = EDGES[np.minimum(idx + 1, len(EDGES) - 2)]   # a finite upper edge
    return out


def overlaps(model: Any, audio: np.ndarray, sr: int, concepts: dict, limits: dict) -> dict:
    """Per (layer, concept): the counts of units active and in the concept, and active or in
    it, per feature: ``{(layer, concept): (2, n_features) int64}`` (merged by adding)."""
    prepared = model.representation.prepare(audio, sr)
    spf = model.representation.seconds_per_frame
    out = {}
    for layer, thr in limits.items():
        info = model.layer(layer)
        half = (info.stride[0] or 1) * spf / 2
        for key in ((layer, c) for c in concepts):
            out[key] = np.zeros((2, info.n_features), np.int64)
        for times, values in moment_batches(model, prepared.frames, info):  # a batch at a time
            t = times * spf
            active = values > thr[:, None]                              # features, units
            for concept, spans in concepts.items():
                inside = np.zeros(len(t), bool)
                for s, e in spans:
                    inside |= (t + half > s) & (t - half < e)
                out[(layer, concept)] += np.stack([(active & inside).sum(axis=1),
                                                   (active | inside).sum(axis=1)])
    return out


def labels_table(counts: dict) -> pd.DataFrame:
    """Per feature: every concept's IoU, and its label (the best concept; none when no
    concept overlaps it at all) with its IoU."""
    rows = []
    for (layer, concept), c in counts.items():
        iou = c[0] / np.maximum(c[1], 1)
        rows += [{"layer": layer, "unit": f, "concept": concept, "iou": float(v)}
                 for f, v in enumerate(iou)]
    table = pd.DataFrame(rows, columns=["layer", "unit", "concept", "iou"])
    if table.empty:
        return table.assign(label=pd.Series(dtype=object), label_iou=pd.Series(dtype=float))
    best = (table[table["iou"] > 0].sort_values(["layer", "unit", "iou", "concept"],
                              ascending=[True, True, False, True], kind="mergesort")
            .groupby(["layer", "unit"], sort=True).head(1)
            .rename(columns={"concept": "label", "iou": "label_iou"})[
                ["layer", "unit", "label", "label_iou"]])
    return table.merge(best, on=["layer", "unit"], how="left").sort_values(
        ["layer", "unit", "concept"], kind="mergesort").reset_index(drop=True)
