"""An explanation made audible, and its complement ("everything the explanation removes").

The explanation's mask (positive part by default, :data:`mirdeconv.options.SIGNS`) is
scaled to [0, 1] by its largest value, or, with ``top_percent``, kept as 1 on the strongest
``top_percent`` % of its positive values and 0 elsewhere; the complement is one minus its
positive part.
Both multiply the track's STFT as the auralisation of a feature does
(:func:`mirdeconv.auralisation.auralise_masks`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..auralisation import apply_sign, auralise_masks
from ..errors import InvalidOptionError
from ..options import SoundOptions
from .api import Explanation

__all__ = ["EXPLANATION_SOUND", "check_top_percent", "unit_masks", "explanation_sound"]

#: Sound options of class explanations: the positive part of the mask.
EXPLANATION_SOUND = SoundOptions(sign="positive")


def check_top_percent(top_percent: object) -> float:
    """``top_percent`` as a float in (0, 100], or an :class:`InvalidOptionError`."""
    try:
        value = float(top_percent)                # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(top_percent, bool) or not 0 < value <= 100:
        raise InvalidOptionError(f"top_percent must be in (0, 100]; got {top_percent!r}")
    return value


def unit_masks(masks: np.ndarray, sign: str = EXPLANATION_SOUND.sign,
               top_percent: float | None = None) -> np.ndarray:
    """Masks (T, n_frames, n_bands) -> masks in [0, 1] (``signed``: [-1, 1]).

    Raises
    ------
    InvalidOptionError
        ``top_percent`` outside (0, 100].
    """
    m = apply_sign(np.asarray(masks, np.float32), sign)
    if top_percent is not None:
        top_percent = check_top_percent(top_percent)
        out = np.zeros_like(m)
        for t, mt in enumerate(m):
            pos = mt[mt > 0]
            if pos.size:
                out[t] = mt >= np.percentile(pos, 100.0 - top_percent)
        return out
    peak = np.abs(m).reshape(len(m), -1).max(axis=1, initial=0.0)
    return m / np.where(peak > 0, peak, 1.0)[:, None, None]


def explanation_sound(expl: Explanation, *, sound: SoundOptions = EXPLANATION_SOUND,
                      top_percent: float | None = None, audio: np.ndarray | None = None,
                      sr: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """The explanation's sound and its complement's.

    Parameters
    ----------
    expl : Explanation
    sound : SoundOptions
        Sign (default: positive), output rate, normalisation.
    top_percent : float, optional
        Keep only the strongest part of the mask (a binary mask).
    audio, sr : np.ndarray (n_samples,), int, optional
        The track at its own rate (for ``sound.output_sr == "track"``).

    Returns
    -------
    kept : np.ndarray, float32, shape (n_tags, n_samples)
    removed : np.ndarray, float32, shape (n_tags, n_samples)
    sr : int
    """
    m = unit_masks(expl.masks, sound.sign, top_percent)
    plain = dataclasses.replace(sound, sign="signed", reading="mask")
    both = np.concatenate([m, 1.0 - np.maximum(m, 0.0)])     # a signed mask's complement too
    out, out_sr, _ = auralise_masks(both, expl.track, audio=audio, sr=sr, sound=plain)
    return out[:len(m)], out[len(m):], out_sr
