"""Labels from descriptors: what a feature detects, with its evidence.

The label rules are a table (:data:`LABEL_RULES`): each says when a tag applies (a threshold of
:data:`THRESHOLDS` on a descriptor) and how to put its evidence in words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import renamed
from .context import HIGH_HZ, LOW_HZ

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["THRESHOLDS", "LABEL_RULES", "label", "add_labels"]

#: Label thresholds (see :func:`label`).
THRESHOLDS: dict[str, float] = {
    "onset_f": 0.7,             # onset detector: F-measure at least this ...
    "attack_lift": 1.2,         # ... and this much more of its energy at the onsets
    "band_share": 0.6,          # low / high band: this share of the energy in the band
    "percussive_share": 0.7,    # percussive: this share in the percussive part
    "harmonic_share": 0.7,      # harmonic: this share in the harmonic part
    "pitch_correlation": 0.7,   # follows the notes: pitch-class correlation at least this
    "invariant": 0.8,           # X-invariant: invariance at least this
    "specific": 0.4,            # X-specific: invariance at most this
    "texture_sparsity": 0.35,   # texture: no other label and sparsity below this
}

Value = Callable[[str], float]


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


#: What a feature detects: (tag, applies(value, thresholds), evidence(value)), in order.
LABEL_RULES: list[tuple[str, Callable[[Value, dict], bool], Callable[[Value], str]]] = [
    ("onset detector",
     lambda v, t: v("onset_f") >= t["onset_f"] and v("attack_lift") >= t["attack_lift"],
     lambda v: f"onset detector: F = {v('onset_f'):.2f}, {v('attack_lift'):.1f}x the energy "
               "at onsets"),
    ("low band", lambda v, t: v("low_share") >= t["band_share"],
     lambda v: f"low band / bass: {_pct(v('low_share'))} of energy below {LOW_HZ:.0f} Hz"),
    ("high band", lambda v, t: v("high_share") >= t["band_share"],
     lambda v: f"high band: {_pct(v('high_share'))} of energy above {HIGH_HZ / 1000:g} kHz"),
    ("percussive", lambda v, t: v("percussive_share") >= t["percussive_share"],
     lambda v: f"percussive: {_pct(v('percussive_share'))} of energy in the percussive part"),
    ("harmonic", lambda v, t: v("harmonic_share") >= t["harmonic_share"],
     lambda v: f"harmonic: {_pct(v('harmonic_share'))} of energy in the harmonic part"),
    ("follows the notes", lambda v, t: v("pitch_correlation") >= t["pitch_correlation"],
     lambda v: f"follows the notes: pitch-class r = {v('pitch_correlation'):.2f}"),
]
#: The factors of the probe set's invariance study.
FACTORS = ("key", "chord", "instrument")


def _invariance_tags(v: Value, t: dict) -> list[tuple[str, str]]:
    parts = []
    for factor in FACTORS:
        x = v(f"invariance_{factor}")
        if x >= t["invariant"]:
            parts.append((f"{factor}-invariant", f"{factor}-invariant ({x:.2f})"))
        elif x <= t["specific"]:
            parts.append((f"{factor}-specific", f"{factor}-specific (invariance {x:.2f})"))
    return parts


def _fallback(v: Value, t: dict) -> tuple[str, str]:
    s = v("temporal_sparsity")
    passes = _pct(v("energy_ratio"))
    if s < t["texture_sparsity"]:
        return "texture", f"texture: active throughout (sparsity {s:.2f}), passes {passes} of the track"
    return "unspecific", f"unspecific: sparsity {s:.2f}, passes {passes} of the track"


def label(row: dict[str, Any] | Any, thresholds: dict[str, float] | None = None) -> tuple[str, list[str]]:
    """A short label with its evidence, and the list of tags, from a feature's descriptors.

    Rules, in this order (thresholds from :data:`THRESHOLDS`):

    * ``dead``: never active;
    * ``onset detector``: ``onset_f >= 0.7`` and ``attack_lift >= 1.2``;
    * ``low band / bass``: ``low_share >= 0.6`` (energy below 200 Hz);
      ``high band``: ``high_share >= 0.6`` (above 2 kHz);
    * ``percussive``: ``percussive_share >= 0.7``; ``harmonic``: ``harmonic_share >= 0.7``;
    * ``follows the notes``: ``pitch_correlation >= 0.7``;
    * ``key-``, ``chord-``, ``instrument-invariant``: invariance >= 0.8;
      ``...-specific``: invariance <= 0.4 (only where the probe set measured it);
    * ``texture``: none of the detector/band/part/pitch tags and ``temporal_sparsity < 0.35``;
    * otherwise ``unspecific``.

    Returns
    -------
    (str, list of str)
        E.g. ``("onset detector: F = 0.83; percussive: 88 % of energy in the percussive part",
        ["onset detector", "percussive"])``.
    """
    t = {**THRESHOLDS, **(thresholds or {})}
    if not isinstance(row, dict):
        row = dict(row._asdict()) if hasattr(row, "_asdict") else dict(row)

    def v(k: str) -> float:
        x = row.get(k, float("nan"))
        return float(x) if x is not None else float("nan")

    dead = row.get("dead", False)
    if dead is True or (isinstance(dead, np.bool_) and dead):
        return "dead: never active", ["dead"]
    parts = [(tag, evidence(v)) for tag, applies, evidence in LABEL_RULES if applies(v, t)]
    main = bool(parts)
    parts += _invariance_tags(v, t)
    if not main:
        parts.insert(0, _fallback(v, t))
    return "; ".join(p[1] for p in parts), [p[0] for p in parts]


def add_labels(df: pd.DataFrame, thresholds: dict[str, float] | None = None) -> pd.DataFrame:
    """Add ``label`` (text with evidence), ``tags`` (list) and ``primary`` (the first tag)
    columns to a descriptor table."""
    labels = [label(r, thresholds) for r in df.to_dict("records")]
    df = df.copy()
    df["label"] = [lab for lab, _ in labels]
    df["tags"] = [tags for _, tags in labels]
    df["primary"] = [tags[0] for _, tags in labels]
    return df


#: ``RULES``: the deprecated name of :data:`LABEL_RULES` (``rule`` alone is a backward rule).
__getattr__ = renamed(__name__, {"RULES": "LABEL_RULES"}, globals())
