"""TempoCNN, Essentia's official graph (../shared/models/essentia/deeptemp_k16.pb): kernels
that reach the convolutions through Transpose and Split, an input of free length cut into
256-frame standardised patches, JSONs as Essentia publishes them, predictions equal to
Essentia's own, a tempo (its layers against tf.gradients: test_real_graphs.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import mirdeconv
from mirdeconv import backend
from mirdeconv.cli import main
from mirdeconv.engine import run_graph
from mirdeconv.representations import tempocnn

from .conftest import shared_file

pytestmark = pytest.mark.slow

SR = 11025
#: Essentia's TempoCNN JSON (2020) as published: no "inference", a 2-D input shape.
PUBLISHED = {
    "name": "TempoCNN deeptemp k16", "type": "tempo estimation", "version": "1",
    "classes": [str(bpm) for bpm in range(30, 286)],
    "schema": {"inputs": [{"name": "input", "type": "float", "shape": [256, 40]}],
               "outputs": [{"name": "output", "op": "Softmax", "shape": [256],
                            "output_purpose": "predictions"}]},
}


def drums(bpm: float, seconds: float = 24.0, sr: int = SR) -> np.ndarray:
    """Kick on every beat, hi-hat on every off-beat, snare on 2 and 4."""
    rng = np.random.default_rng(int(bpm))
    n = int(seconds * sr)
    y = np.zeros(n, np.float32)
    beat = 60.0 / bpm
    t = np.arange(int(0.15 * sr)) / sr
    kick = np.sin(2 * np.pi * 60 * t * (1 + 2 * np.exp(-t * 40))) * np.exp(-t * 25)
    snare = rng.standard_normal(t.size) * np.exp(-t * 30) * 0.5
    hat = rng.standard_normal(t.size) * np.exp(-t * 120) * 0.2
    k = 0
    while k * beat / 2 < seconds - 0.2:
        s = int(k * beat / 2 * sr)
        if k % 2 == 0:
            y[s:s + t.size] += kick if (k // 2) % 2 == 0 else kick + snare
        y[s:s + t.size] += hat
        k += 1
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The graph with its JSON beside it (a copy in a temporary folder)."""
    folder = tmp_path_factory.mktemp("tempocnn")
    pb = folder / "deeptemp-k16-3.pb"
    shutil.copy(shared_file("models/essentia/deeptemp_k16.pb"), pb)
    pb.with_suffix(".json").write_text(json.dumps(PUBLISHED))
    return pb


@pytest.fixture(scope="module")
def model(published):
    return mirdeconv.load_model(published)


def test_loads_as_essentia_publishes_it(model, published, tmp_path):
    assert model.algorithm == "TensorflowPredictTempoCNN" and model.task == "tempo"
    assert model.representation == tempocnn() and model.input_axes == "NFTC"
    assert model.input_length == 256 and model.input_normalization == "patch"
    assert model.labels[0] == "30" and model.labels[-1] == "285" and len(model.labels) == 256
    assert model.output_tensor == "output:0"
    # the algorithm named as Essentia's own code names it, and the bare graph
    alias = tmp_path / "alias.pb"
    shutil.copy(published, alias)
    alias.with_suffix(".json").write_text(json.dumps({**PUBLISHED, "inference": {
        "sample_rate": SR, "algorithm": "TempoCNN"}}))
    assert mirdeconv.load_model(alias).algorithm == "TensorflowPredictTempoCNN"
    bare = mirdeconv.load_model(shared_file("models/essentia/deeptemp_k16.pb"), output="output")
    assert bare.input_length == 256 and bare.labels == model.labels


def test_layers_and_receptive_fields(model):
    layers = model.layers
    convs = [li for li in layers if li.op == "Conv2D"]
    assert len(convs) == 13 and [li.n_features for li in convs][:2] == [16, 16]
    assert convs[0].receptive_field == (5, 1)             # 1 x 5 along time, one band
    assert all(li.time_agnostic for li in convs)           # fully convolutional along time
    rfs = [li.receptive_field[0] for li in convs]
    assert rfs == sorted(rfs) and rfs[-1] == 256            # capped by the 256-frame patch


def _essentia_patches(y: np.ndarray) -> np.ndarray:
    """Essentia's TensorflowInputTempoCNN frames, its 256-frame patches (hop 128), each
    standardised as Essentia's TensorNormalize does."""
    es = backend.essentia_standard()
    inp = es.TensorflowInputTempoCNN()
    frames = np.array([inp(f) for f in es.FrameGenerator(y, frameSize=1024, hopSize=512,
                                                           startFromZero=False)])
    p = np.stack([frames[s:s + 256] for s in range(0, len(frames) - 256 + 1, 128)])
    return ((p - p.mean(axis=(1, 2), keepdims=True)) / p.std(axis=(1, 2), keepdims=True)
            ).astype(np.float32)


def test_predictions_equal_essentias(model):
    y = drums(120.0)
    act, labels = model.predict(y, SR)                   # Essentia's TensorflowPredictTempoCNN
    ours = run_graph(model, model.to_input(_essentia_patches(y)))
    assert ours.shape == act.shape == (len(act), 256)
    assert np.abs(ours - act).max() <= 1e-5
    assert labels == model.labels


@pytest.mark.parametrize("bpm", [90.0, 120.0, 150.0])
def test_the_tempo_of_a_drum_track(model, bpm, tmp_path, capsys):
    act, labels, how = mirdeconv.predict(model, drums(bpm), SR)
    from mirdeconv.prediction import tempo

    assert abs(tempo(act, labels) - bpm) <= 0.04 * bpm
    import soundfile as sf

    sf.write(tmp_path / "d.wav", drums(bpm), SR)
    assert main(["predict", str(model.source), str(tmp_path / "d.wav")]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.split()[:1] == ["tempo"])
    assert line.endswith(" BPM")
    shown = float(line.split()[1])
    assert abs(shown - bpm) <= 0.04 * bpm


def test_cli_algorithm_and_output_flags(capsys):
    pb = shared_file("models/essentia/deeptemp_k16.pb")
    assert main(["layers", str(pb), "--algorithm", "TempoCNN", "--output", "output"]) == 0
    out = capsys.readouterr().out
    assert "256 frames per patch" in out and "convolution_12" in out
    assert main(["layers", str(pb), "--algorithm", "PitchYin"]) == 2
    assert "input algorithm 'PitchYin' is not supported yet" in capsys.readouterr().err
