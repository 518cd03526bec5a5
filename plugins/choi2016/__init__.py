"""First-party plugin: Choi, Fazekas & Sandler's MusicTaggerCNN (ISMIR 2016) as ``choi2016:music_tagger_cnn``.

"Automatic tagging using deep convolutional neural networks", ISMIR 2016.  The network is
rebuilt in Keras 3 to match the released Keras 1 weights (not the repository's later code):

* input: 96 mel bands x 1366 frames (29.12 s at 12 kHz), ``representations.choi2016_mel()``;
* batch normalisation over the TIME axis at the input (``bn_0_freq``, 1366 parameters);
* conv1..conv5: 32, 128, 128, 192, 256 maps, 3x3 'same', each -> batch norm (channels) ->
  ELU -> max-pool (2,4), (2,4), (2,4), (3,5), (4,4) (frequency, time);
* flatten -> dense 50, sigmoid; the 50 Million Song Dataset tags below.

The weights file (MIT licence, Copyright (c) 2016 Keunwoo Choi) is
``music_tagger_cnn_weights_tensorflow.h5`` from https://github.com/keunwoochoi/music-auto_tagging-keras
(folder ``data/``).  Give its path as ``weights=`` or in ``MIRDECONV_CHOI2016_WEIGHTS``.
It is read with h5py: kernels are stored as (out, in, rows, cols) ("th" ordering) and are
already the TensorFlow (correlation) version of the Theano-trained ones; batch norms store
``running_mean`` and ``running_std``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import mirdeconv
from mirdeconv import backend
from mirdeconv.errors import ModelLoadError
from mirdeconv.options import env_value
from mirdeconv.registry import ModelSpec, Plugin
from mirdeconv.representations import choi2016_mel

TAGS = [
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s",
    "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock",
    "60s", "rnb", "indie pop", "sad", "House", "happy",
]
MAPS = (32, 128, 128, 192, 256)
POOLS = ((2, 4), (2, 4), (2, 4), (3, 5), (4, 4))
N_MELS, N_FRAMES = 96, 1366
#: Keras 1's BatchNormalization epsilon.
EPSILON = 1e-6
WEIGHTS_ENV = "MIRDECONV_CHOI2016_WEIGHTS"
WEIGHTS_URL = ("https://github.com/keunwoochoi/music-auto_tagging-keras/blob/master/data/"
               "music_tagger_cnn_weights_tensorflow.h5")


def build(bn_reading: str = "std"):
    """MusicTaggerCNN in Keras 3, channels last: input (96 bands, 1366 frames, 1)."""
    keras = backend.keras()
    L = keras.layers
    eps = 1e-12 if bn_reading == "std" else EPSILON   # "std": epsilon folded into the stats
    inp = keras.Input((N_MELS, N_FRAMES, 1), name="melgram")
    x = L.BatchNormalization(axis=2, epsilon=eps, name="bn_0_freq")(inp)
    for i, (maps, pool) in enumerate(zip(MAPS, POOLS), start=1):
        x = L.Conv2D(maps, 3, padding="same", name=f"conv{i}")(x)
        x = L.BatchNormalization(axis=3, epsilon=eps, name=f"bn{i}")(x)
        x = L.ELU(name=f"elu{i}")(x)
        x = L.MaxPooling2D(pool, name=f"pool{i}")(x)
    x = L.Flatten(name="flatten")(x)
    out = L.Dense(len(TAGS), activation="sigmoid", name="output")(x)
    return keras.Model(inp, out, name="music_tagger_cnn")


def _read(f, group: str, name: str, shape: tuple) -> np.ndarray:
    key = f"{group}/{group}_{name}:0"
    if key not in f:
        raise ModelLoadError(f"{f.filename}: not MusicTaggerCNN weights (no {key})")
    try:
        value = f[key][()]
    except OSError as exc:
        raise ModelLoadError(f"{f.filename}: unreadable (truncated?) at {key}: {exc}") from None
    if value.shape != shape:
        raise ModelLoadError(f"{f.filename}: {key} has shape {value.shape}, expected {shape}")
    return value.astype(np.float32)


def load_weights(model, path: str | os.PathLike, bn_reading: str = "std") -> None:
    """Put the Keras 1 HDF5 weights into :func:`build`'s model.

    ``bn_reading``: Keras 1.0 divided by ``running_std + epsilon`` ("std"); Keras 1.1-1.2
    kept the *variance* under that name ("variance").
    """
    import h5py

    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"MusicTaggerCNN weights not found: {p} (the public file: "
                             f"{WEIGHTS_URL})")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise ModelLoadError(f"{p} is not an HDF5 weights file (truncated or corrupt?): "
                             f"{exc}") from None
    with f:
        def bn(group: str, n: int) -> list[np.ndarray]:
            gamma, beta = _read(f, group, "gamma", (n,)), _read(f, group, "beta", (n,))
            mean, std = _read(f, group, "running_mean", (n,)), _read(f, group, "running_std", (n,))
            var = (std + EPSILON) ** 2 if bn_reading == "std" else std
            return [gamma, beta, mean, var]

        model.get_layer("bn_0_freq").set_weights(bn("bn_0_freq", N_FRAMES))
        cin = 1
        for i, maps in enumerate(MAPS, start=1):
            w = _read(f, f"conv{i}", "W", (maps, cin, 3, 3))
            b = _read(f, f"conv{i}", "b", (maps,))
            model.get_layer(f"conv{i}").set_weights([w.transpose(2, 3, 1, 0), b])
            model.get_layer(f"bn{i}").set_weights(bn(f"bn{i}", maps))
            cin = maps
        model.get_layer("output").set_weights([_read(f, "output", "W", (MAPS[-1], len(TAGS))),
                                               _read(f, "output", "b", (len(TAGS),))])


def load(weights: str | os.PathLike | None = None, bn_reading: str = "std"):
    """MusicTaggerCNN with the released weights, as a mirdeconv model."""
    if bn_reading not in ("std", "variance"):
        raise ModelLoadError(f"bn_reading must be 'std' or 'variance', got {bn_reading!r}")
    path = weights or env_value("CHOI2016_WEIGHTS")
    if not path:
        raise ModelLoadError(
            f"MusicTaggerCNN needs its weights file: pass weights=... or set {WEIGHTS_ENV} "
            f"(the public file: {WEIGHTS_URL})")
    net = build(bn_reading)
    load_weights(net, path, bn_reading)
    return mirdeconv.load_model(net, representation=choi2016_mel(), input_axes="NFTC",
                                labels=TAGS, name="music_tagger_cnn",
                                layers=[f"{k}{i}" for i in range(1, 6) for k in ("conv", "pool")])


PLUGIN = Plugin(
    name="choi2016",
    description="Choi, Fazekas & Sandler, ISMIR 2016",
    models=[ModelSpec("music_tagger_cnn", load,
                      "MusicTaggerCNN: 5 conv layers, 50 MSD tags (Choi et al. 2016)")],
)
