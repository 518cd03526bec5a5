"""What is known about a track: reference onsets and the notes played."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AudioError
from ..probes import Probe

__all__ = ["Reference"]


@dataclass
class Reference:
    """What is known about a track.

    Attributes
    ----------
    onsets : np.ndarray, shape (n_onsets,)
        Reference onset times in seconds.
    pitch_classes : np.ndarray, shape (12,) or None
        Duration-weighted pitch classes of the notes played (C first), or None if unknown.
    onsets_from : str
        ``"annotations"`` (given) or ``"librosa"`` (detected on the original track).
    """

    onsets: np.ndarray
    pitch_classes: np.ndarray | None = None
    onsets_from: str = "annotations"

    @classmethod
    def from_probe(cls, probe: Probe) -> Reference:
        """The probe's own ground truth."""
        pcs = probe.pitch_classes() if len(probe.notes) else None
        return cls(np.asarray(probe.onsets, float), pcs, "annotations")

    @classmethod
    def detect(cls, y: np.ndarray, sr: int) -> Reference:
        """Onsets found by librosa's onset detector on the original track (no notes)."""
        import librosa

        on = librosa.onset.onset_detect(y=np.asarray(y, np.float32), sr=int(sr), units="time")
        return cls(np.asarray(on, float), None, "librosa")

    @classmethod
    def from_jams(cls, path: str | os.PathLike) -> Reference:
        """Onsets (namespace ``onset``) and notes (``note_midi``) of a JAMS file."""
        import jams

        try:
            j = jams.load(str(path), validate=False)
        except Exception as exc:  # noqa: BLE001 - jams raises many kinds
            raise AudioError(f"cannot read annotations {path}: {exc}") from None
        onsets = [float(o.time) for a in j.search(namespace="onset") for o in a.data]
        prof = np.zeros(12)
        for a in j.search(namespace="note_midi"):
            for o in a.data:
                prof[int(round(float(o.value))) % 12] += float(o.duration)
        return cls(np.sort(np.asarray(onsets, float)),
                   prof / prof.sum() if prof.sum() > 0 else None, "annotations")

    @classmethod
    def for_track(cls, path: str | os.PathLike | None, y: np.ndarray, sr: int) -> Reference:
        """``TRACK.jams`` beside the audio when there is one, else onsets detected by librosa."""
        if path is not None:
            side = Path(path).with_suffix(".jams")
            if side.is_file():
                return cls.from_jams(side)
        return cls.detect(y, sr)
