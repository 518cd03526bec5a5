"""Keras models from memory, .keras and legacy .h5 files; no code from files is run."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mirdeconv
from mirdeconv.errors import ModelLoadError, NoFeatureLayersError, UnsafeModelError
from mirdeconv.representations import MelSpectrogram

from .conftest import tone_track

REP = MelSpectrogram(sr=16000, n_fft=512, hop_length=256, n_mels=32, compression="log10")


def small(keras, lam=False):
    L = keras.layers
    inp = keras.Input((32, 40, 1))               # bands x frames: NFTC
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    if lam:
        x = L.Lambda(lambda t: t * 2.0, name="double")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    return keras.Model(inp, L.Dense(2)(L.Flatten()(x)), name="small")


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_saved_model_loads_and_deconvolves_like_memory(keras, tmp_path, suffix):
    keras.utils.set_random_seed(1)
    m = small(keras)
    path = tmp_path / f"net{suffix}"
    m.save(path)
    y = tone_track(16000, 2.0)
    from_file = mirdeconv.load_model(path, representation=REP)
    in_memory = mirdeconv.load_model(m, representation=REP)
    assert from_file.input_axes == "NFTC" and from_file.input_length == 40
    assert [li.name for li in from_file.layers] == ["conv", "pool"]
    a = mirdeconv.deconvolve(from_file, y, 16000, layer="pool")
    b = mirdeconv.deconvolve(in_memory, y, 16000, layer="pool")
    np.testing.assert_allclose(a.masks, b.masks, atol=1e-6 * np.abs(b.masks).max())
    assert from_file.identity()["graph_sha256"] == in_memory.identity()["graph_sha256"]


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_layer_is_refused_with_opt_in_message(keras, tmp_path, suffix):
    path = tmp_path / f"lam{suffix}"
    small(keras, lam=True).save(path)
    with pytest.raises(UnsafeModelError, match=r"Lambda layer 'double'.*allow_unsafe=True"):
        mirdeconv.load_model(path, representation=REP)


def test_lambda_opt_in_loads(keras, tmp_path):
    path = tmp_path / "lam.keras"
    small(keras, lam=True).save(path)
    fm = mirdeconv.load_model(path, representation=REP, allow_unsafe=True)
    assert "pool" in [li.name for li in fm.layers]


def test_in_memory_lambda_is_the_users_own_code(keras):
    fm = mirdeconv.load_model(small(keras, lam=True), representation=REP)
    assert "pool" in [li.name for li in fm.layers]


def test_sidecar_description(keras, tmp_path):
    path = tmp_path / "net.keras"
    small(keras).save(path)
    (tmp_path / "net.mirdeconv.json").write_text(json.dumps(
        {"representation": REP.to_dict(), "input_axes": "NFTC", "labels": ["a", "b"]}))
    fm = mirdeconv.load_model(path)
    assert fm.representation == REP and fm.labels == ["a", "b"]


@pytest.mark.parametrize("name,content,msg", [
    ("x.keras", b"PK\x03\x04 not really a zip", "not a Keras model file"),
    ("x.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 100, "not a Keras HDF5 model file"),
    ("x.pb", bytes(range(256)) * 4, "not a TensorFlow frozen graph"),
    ("x.onnx", b"whatever", "x.onnx is not a valid ONNX model"),
    ("x.pt", b"whatever", "x.pt is not a TorchScript file: a PyTorch checkpoint"),
    ("x.caffemodel", b"whatever", r"expected \.keras, \.h5, \.hdf5, \.pb, \.onnx or \.pt"),
])
def test_files_that_are_not_models(tmp_path, name, content, msg):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(ModelLoadError, match=msg):
        mirdeconv.load_model(p, representation=REP)


def test_weights_only_h5(keras, tmp_path):
    p = tmp_path / "w.weights.h5"
    small(keras).save_weights(p)
    with pytest.raises(ModelLoadError, match="weights-only HDF5"):
        mirdeconv.load_model(p, representation=REP)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelLoadError, match="model file not found"):
        mirdeconv.load_model(tmp_path / "none.keras", representation=REP)


def test_model_without_convolution(keras):
    L = keras.layers
    inp = keras.Input((32, 40, 1))
    m = keras.Model(inp, L.Dense(3)(L.Flatten()(inp)))
    with pytest.raises(NoFeatureLayersError, match="no convolutional layer"):
        mirdeconv.load_model(m, representation=REP)


def test_representation_required_and_axes_checked(keras):
    with pytest.raises(ModelLoadError, match="needs its input representation"):
        mirdeconv.load_model(small(keras))
    wrong = MelSpectrogram(n_mels=64)
    with pytest.raises(ModelLoadError, match="cannot tell the time axis"):
        mirdeconv.load_model(small(keras), representation=wrong)


def test_subclassed_model_is_refused(keras):
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.c = keras.layers.Conv2D(2, 3)

        def call(self, x):
            return self.c(x)

    with pytest.raises(ModelLoadError, match="subclassed"):
        mirdeconv.load_model(Net(), representation=REP)


@pytest.mark.parametrize("name", ["none", "track", "track-max", "patch"])
def test_input_normalizations(keras, name):
    """The whole track is normalised once before it is cut (its patches share one mean and
    standard deviation, or one maximum); "patch" standardises each patch on its own."""
    from mirdeconv.engine import model_input

    m = mirdeconv.load_model(small(keras), representation=REP, input_normalization=name)
    frames = REP.prepare(tone_track(16000, 3.0), 16000).frames         # (188, 32)
    x, patching = model_input(m, frames, whole=False)
    patches = m.from_input(x)                                            # (n, 40, 32)
    first = patches[0]
    want = {"none": frames[:40], "track": (frames[:40] - frames.mean()) / frames.std(),
            "track-max": frames[:40] / frames.max(),
            "patch": (frames[:40] - frames[:40].mean()) / frames[:40].std()}[name]
    np.testing.assert_allclose(first, want, rtol=1e-4, atol=1e-5)
    assert len(patches) == len(patching.starts) > 1


def test_an_unknown_normalization_is_refused(keras):
    from mirdeconv.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError, match="unknown input normalization 'global'; known: "
                                                 "none, patch, track, track-max"):
        mirdeconv.load_model(small(keras), representation=REP, input_normalization="global")
