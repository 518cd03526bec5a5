"""Essentia's other input algorithms: VGGish and TempoCNN, against Essentia itself."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mirdeconv
from mirdeconv import backend
from mirdeconv.engine import run_graph
from mirdeconv.representations import tempocnn, vggish

from .conftest import tone_track

CASES = {  # algorithm: (representation, essentia input, frame, hop, sample rate)
    "vggish": (vggish, "TensorflowInputVGGish", 400, 160, 16000),
    "tempocnn": (tempocnn, "TensorflowInputTempoCNN", 1024, 512, 11025),
}


def essentia_frames(kind: str, y: np.ndarray) -> np.ndarray:
    _, algo, frame, hop, _ = CASES[kind]
    es = backend.essentia_standard()
    inp = getattr(es, algo)()
    return np.array([inp(f) for f in es.FrameGenerator(y, frameSize=frame, hopSize=hop,
                                                         startFromZero=False)])


@pytest.mark.parametrize("kind", list(CASES))
def test_representation_equals_essentia_frame_by_frame(kind):
    make, _, _, hop, sr = CASES[kind]
    y = tone_track(sr, 5.0, seed=3)
    ours = make().prepare(y, sr).frames
    theirs = essentia_frames(kind, y)
    n = len(ours)
    assert n == 1 + y.size // hop and len(theirs) >= n
    err = np.abs(theirs[:n] - ours).max(axis=1)
    assert err.max() <= 1e-4, f"frame {err.argmax()}: {err.max():.2e}"


def _write_essentia_model(keras, tmp_path, kind):
    """A small conv net with the algorithm's input, frozen to NAME.pb + NAME.json."""
    L = keras.layers
    keras.utils.set_random_seed(5)
    if kind == "vggish":
        inp = keras.Input((96, 64), name="mel")
        x = L.Reshape((96, 64, 1))(inp)
        algorithm, sr, axes = "TensorflowPredictVGGish", 16000, "NTF"
    else:
        inp = keras.Input((40, 256, 1), name="mel")
        x = inp
        algorithm, sr, axes = "TensorflowPredictTempoCNN", 11025, "NFTC"
    x = L.MaxPooling2D(2, name="pool")(L.Conv2D(8, 3, padding="same", activation="relu",
                                                name="conv")(x))
    out = L.Dense(4, activation="sigmoid", name="head")(L.GlobalAveragePooling2D()(x))
    rep = vggish() if kind == "vggish" else tempocnn()
    fm = mirdeconv.load_model(keras.Model(inp, out), representation=rep, input_axes=axes)
    pb = tmp_path / f"{kind}.pb"
    pb.write_bytes(fm.graph.graph_def.SerializeToString())
    inp_name, out_name = fm.input_tensor.split(":")[0], fm.output_tensor.split(":")[0]
    pb.with_suffix(".json").write_text(json.dumps({
        "name": kind, "classes": ["a", "b", "c", "d"],
        "schema": {"inputs": [{"name": inp_name, "type": "float"}],
                   "outputs": [{"name": out_name, "output_purpose": "predictions"}]},
        "inference": {"sample_rate": sr, "algorithm": algorithm}}))
    return pb


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(CASES))
def test_vggish_and_tempocnn_models_through_essentia(keras, tmp_path, kind):
    pb = _write_essentia_model(keras, tmp_path, kind)
    m = mirdeconv.load_model(pb)
    _, _, _, _, sr = CASES[kind]
    assert m.representation == CASES[kind][0]()
    assert m.input_length == (96 if kind == "vggish" else 256)
    names = [li.name for li in m.layers]            # not musicnn: layers by node name
    assert [n.rsplit("/", 1)[-1] for n in names][-3:] == ["convolution", "Relu", "MaxPool2d"]
    assert {li.n_features for li in m.layers} == {8}
    assert (m.input_normalization == "patch") == (kind == "tempocnn")
    y = tone_track(sr, 12.0)
    act, labels = m.predict(y, sr)                      # Essentia's own predictor
    assert labels == ["a", "b", "c", "d"] and act.shape[1] == 4
    frames = essentia_frames(kind, y)
    L, hop = m.input_length, (93 if kind == "vggish" else 128)
    patches = np.stack([frames[s:s + L] for s in range(0, len(frames) - L + 1, hop)])
    if kind == "tempocnn":                               # Essentia standardises each patch
        patches = (patches - patches.mean(axis=(1, 2), keepdims=True)) / \
            patches.std(axis=(1, 2), keepdims=True)
    ours = run_graph(m, m.to_input(patches))
    assert ours.shape == act.shape
    assert np.abs(ours - act).max() <= 1e-5
    res = mirdeconv.deconvolve(m, y, sr, layer=names[-1], features="0-3")
    assert res.mode == "patches" and res.masks.shape[1:] == m.representation.prepare(
        y, sr).frames.shape
    assert np.isfinite(res.masks).all()
