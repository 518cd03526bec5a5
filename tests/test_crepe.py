"""CREPE, Essentia's official graph (../shared/models/essentia/crepe-tiny-1.pb): a raw-waveform
model that takes frames of 1024 samples every 10 ms.  Its input equals Essentia's, so its
predictions are Essentia's; its pitch through `mirdeconv predict`; the deconvolution of a
first-layer feature is a waveform whose spectrum follows a sine sweep."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile as sf

import mirdeconv
from mirdeconv import backend
from mirdeconv.cli import main
from mirdeconv.engine import model_input, run_graph
from mirdeconv.representations import Waveform, crepe

from .conftest import shared_file

pytestmark = pytest.mark.slow

SR = 16000


@pytest.fixture(scope="module")
def model():
    return mirdeconv.load_model(shared_file("models/essentia/crepe-tiny-1.pb"))


def tone(f: float, seconds: float = 2.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def sweep(f0: float = 100.0, f1: float = 4000.0, seconds: float = 4.0):
    """An exponential sine sweep and its instantaneous frequency at any time (s)."""
    t = np.arange(int(seconds * SR)) / SR
    k = np.log(f1 / f0) / seconds
    y = 0.5 * np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)
    return y.astype(np.float32), lambda s: f0 * np.exp(k * np.clip(s, 0, seconds))


def test_loads_as_a_framed_waveform_model(model):
    assert model.algorithm == "TensorflowPredictCREPE" and model.task == "pitch"
    assert model.representation == crepe() and isinstance(model.representation, Waveform)
    assert model.input_axes == "NT" and model.input_length == 1024
    assert model.output_tensor == "Identity:0" and len(model.labels) == 360
    assert abs(float(model.labels[0]) - 31.70) < 0.01          # bin 0: 1997.38 cents
    alias = mirdeconv.load_model(shared_file("models/essentia/crepe-tiny-1.pb"),
                                 algorithm="PitchCREPE", output="model/classifier/Sigmoid")
    assert alias.algorithm == "TensorflowPredictCREPE"


def test_predictions_equal_essentias(model):
    y = tone(440.0)
    act, labels = model.predict(y, SR)                    # Essentia's TensorflowPredictCREPE
    x, _ = model_input(model, model.representation.prepare(y, SR).frames, whole=False)
    ours = run_graph(model, x).reshape(len(x), -1)
    assert ours.shape == act.shape == (201, 360)          # 2 s every 10 ms, centred
    assert np.abs(ours - act).max() <= 1e-5
    es = backend.essentia_standard()
    _, freq, _, _ = es.PitchCREPE(graphFilename=str(model.source),
                                  output="model/classifier/Sigmoid")(y)
    assert abs(1200 * np.log2(np.median(freq) / 440.0)) < 20


@pytest.mark.parametrize("f", [220.0, 440.0])
def test_pitch_through_the_cli(model, f, tmp_path, capsys):
    sf.write(tmp_path / "tone.wav", tone(f, sr=44100), 44100)       # resampled to 16 kHz
    assert main(["predict", str(model.source), str(tmp_path / "tone.wav")]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.split()[:1] == ["pitch"])
    hz = float(line.split()[1])
    assert abs(1200 * np.log2(hz / f)) < 20, line


def test_a_first_layer_feature_follows_a_sweep(model):
    y, inst = sweep()
    aur = mirdeconv.auralise(model, y, SR, layer="model/conv1/Relu", features="all",
                             normalize="none")
    assert aur.sr == SR and aur.audio.shape == (128, len(y))
    res = aur.deconvolution
    # the auralisation of a waveform model is its deconvolved signal, cut to the track
    pad = model.representation.pad
    assert aur.sound.sign == "signed"
    np.testing.assert_array_equal(aur.audio, res.masks[:, pad:pad + len(y), 0])
    S = np.abs(librosa.stft(aur.audio, n_fft=1024, hop_length=256)) ** 2   # F, bins, frames
    freqs = librosa.fft_frequencies(sr=SR, n_fft=1024)
    want = inst(librosa.frames_to_time(np.arange(S.shape[-1]), sr=SR, hop_length=256))
    near = np.abs(1200 * np.log2(np.maximum(freqs[:, None], 1) / want[None])) < 200
    top = aur.most_active_first()[:8]
    shares = [(S[f] * near).sum() / S[f].sum() for f in top]
    active = [(S[f].sum(0) > 0.1 * S[f].sum(0).max()).mean() for f in top]
    assert min(shares) > 0.75 and np.median(shares) > 0.95, shares   # energy on the sweep
    assert max(active) < 0.25, active                     # each only while the sweep is in its band
    centre = [want[S[f].sum(0).argmax()] for f in top]
    assert len({round(np.log2(c) * 12) for c in centre}) >= 6      # tuned to different bands


def test_waveform_models_in_the_batch_job_and_analysis(model, tmp_path):
    from mirdeconv.batch import BatchSettings, run_batch

    y, _ = sweep(seconds=2.0)
    sf.write(tmp_path / "sweep.wav", y, SR)
    summary = run_batch(str(model.source), [str(tmp_path / "sweep.wav")], tmp_path / "out",
                        BatchSettings(layers=("model/conv1/Relu",), features="0-3"))
    assert not summary.failures and summary.n_files > 0
    import pandas as pd

    index = pd.read_parquet(summary.out / "index.parquet")
    assert len(index) == 4 and index["label"].notna().all()
    wav, sr = sf.read(summary.out / index["audio_path"].iloc[0])
    assert sr == SR and len(wav) == len(y)
    assert np.isfinite(index["energy_ratio"]).all() and (index["energy_ratio"] > 0).all()


def test_the_app_shows_and_plays_a_waveform_model(model):
    """The app's logic on CREPE: its pitch, a layer's features with labels, a feature's
    figure and sound (the deconvolved signal itself), the layer's sounds and zip."""
    import io
    import zipfile

    from mirdeconv.app import logic

    y = tone(440.0, seconds=1.0)
    assert logic.predictions(model, y, SR)[0][0] == "pitch"
    res = logic.layer_result(model, y, SR, "model/conv1/Relu")
    assert res.masks.shape == (128, len(y) + 1024, 1)
    table = logic.layer_descriptors(res, y, SR)
    assert len(table) == 128 and table["label"].notna().all()
    f = logic.most_active(res, 1)[0]
    audio, sr, thumb = logic.feature_sound(res, f, y, SR)
    assert sr == SR and audio.shape == y.shape and np.abs(audio).max() > 0
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.fft.rfftfreq(len(audio), 1 / SR)[spectrum.argmax()] - 440) < 5   # the tone
    assert logic.figure_png(logic.feature_figure(res, f, audio, sr)).startswith(b"\x89PNG")
    sounds, png = logic.layer_sounds(logic.layer_auralisation(res, y, SR))
    assert len(sounds) == 128 and png.startswith(b"\x89PNG")
    names = zipfile.ZipFile(io.BytesIO(logic.layer_zip(logic.layer_auralisation(res, y, SR)))
                            ).namelist()
    assert "model/conv1/Relu/index.csv" in names
    assert sum(n.endswith(".wav") for n in names) == 128


def test_frames_in_bounded_batches_add_up_to_one_pass(model):
    """A framed waveform model's patches (one per 10 ms) go through the graph a batch at a
    time under a small budget; their masks add up to the one-pass result."""
    from mirdeconv.engine import memory_plan

    y, _ = sweep(seconds=3.0)
    track = model.representation.prepare(y, SR)
    opts = mirdeconv.DeconvOptions(memory="64M")
    plan = memory_plan(model, track, layer="model/conv2/Relu", features="0-3", options=opts)
    assert plan.unit == "patch" and plan.n_patches == 301 and plan.n_pieces >= 4
    assert plan.piece_bytes <= 16 << 20                     # a quarter of the budget
    parts = mirdeconv.deconvolve(model, track=track, layer="model/conv2/Relu", features="0-3",
                                 options=opts)
    one = mirdeconv.deconvolve(model, track=track, layer="model/conv2/Relu", features="0-3",
                               memory="16G")
    np.testing.assert_allclose(parts.masks, one.masks, rtol=0, atol=1e-5 * np.abs(one.masks).max())
    np.testing.assert_allclose(parts.activation_max, one.activation_max, rtol=1e-5)
    np.testing.assert_allclose(parts.activations, one.activations, rtol=0,
                               atol=1e-5 * np.abs(one.activations).max())
