"""Choi et al. 2016's "vggnet5" and deterministic demo tracks, for the demo and benchmarks.

vggnet5 (docs/method.md §1.2): STFT magnitude input (257 bins at 11025 Hz, 173 frames = 4 s),
five blocks of [3x3 'same' conv, 64 maps -> ReLU -> 2x2 max-pool]; map sizes
257x173 -> 128x86 -> 64x43 -> 32x21 -> 16x10 -> 8x5.  Weights here are random with a
fixed seed: the net shows the engine's workings, not trained features.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backend
from .representations import choi2016_stft

__all__ = ["vggnet5", "demo_track"]


def vggnet5(seed: int = 2016, n_frames: int = 173, n_classes: int = 10) -> Any:
    """Choi et al. 2016's 5-layer convnet with random weights (fixed seed).

    Layers ``conv1`` ... ``conv5`` and ``pool1`` ... ``pool5`` (64 maps each); the head
    (global max pooling, dense softmax over ``n_classes``) is only there to be a classifier.
    """
    keras = backend.keras()
    keras.utils.set_random_seed(seed)
    L = keras.layers
    inp = L.Input((choi2016_stft().n_bands, n_frames, 1), name="stft")
    x = inp
    for i in range(5):
        x = L.Conv2D(64, 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        x = L.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = L.GlobalMaxPooling2D(name="global_max")(x)
    out = L.Dense(n_classes, activation="softmax", name="genre")(x)
    return keras.Model(inp, out, name="vggnet5")


def _note(f0: float, t: np.ndarray, harmonics: int = 6, decay: float = 2.0) -> np.ndarray:
    y = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, harmonics + 1))
    return y * np.exp(-decay * t)


def demo_track(sr: int = 11025, seconds: float = 8.0, kind: str = "mix",
               seed: int = 0, tempo: float = 120.0) -> np.ndarray:
    """A deterministic test track: drums (kick, snare, hi-hat), a bass line and chords.

    Parameters
    ----------
    sr : int
        Sample rate in Hz.
    seconds : float
        Duration.
    kind : {"mix", "drums", "bass", "chords"}
        Which parts to include.
    seed : int
        Seed of the noise in the drums.
    tempo : float
        Beats per minute.

    Returns
    -------
    np.ndarray, float32, shape (int(sr * seconds),)
        Peak-normalised to 0.8.
    """
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    y = np.zeros(n)
    beat = 60.0 / tempo
    parts = {"drums", "bass", "chords"} if kind == "mix" else {kind}

    def add(sig: np.ndarray, start: float, gain: float) -> None:
        i = int(start * sr)
        if i < n:
            m = min(n - i, sig.size)
            y[i:i + m] += gain * sig[:m]

    t = np.arange(int(sr * 2 * beat)) / sr
    n_beats = int(seconds / beat) + 1
    if "drums" in parts:
        kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 12)
        snare = rng.standard_normal(t.size) * np.exp(-t * 25)
        hat_noise = np.diff(rng.standard_normal(t.size + 1))
        hat = hat_noise * np.exp(-t * 80)
        for b in range(n_beats):
            add(kick if b % 2 == 0 else snare, b * beat, 0.9 if b % 2 == 0 else 0.5)
            add(hat, (b + 0.5) * beat, 0.25)
    if "bass" in parts:
        for b, f0 in zip(range(n_beats), [55.0, 55.0, 73.4, 82.4] * n_beats):
            add(_note(f0, t[: int(sr * beat)], harmonics=3, decay=1.5), b * beat, 0.6)
    if "chords" in parts:
        chords = [(220.0, 277.2, 329.6), (293.7, 370.0, 440.0), (246.9, 311.1, 370.0),
                  (196.0, 246.9, 293.7)]
        for i in range(int(seconds / (2 * beat)) + 1):
            tc = np.arange(int(sr * 2 * beat)) / sr
            sig = sum(_note(f, tc, harmonics=5, decay=0.8) for f in chords[i % 4])
            add(sig, i * 2 * beat, 0.25)
    peak = np.max(np.abs(y)) or 1.0
    return (0.8 * y / peak).astype(np.float32)
