"""Input representations against librosa and against Essentia's own input algorithm."""

from __future__ import annotations

import dataclasses

import librosa
import numpy as np
import pytest
import scipy.signal

from mirdeconv import representations as R
from mirdeconv.errors import InvalidOptionError

from .conftest import tone_track


def test_choi2016_stft_shapes():
    rep = R.choi2016_stft()
    y = tone_track(sr=11025, seconds=4.0)
    a = rep.prepare(y, 11025)
    assert a.frames.shape == (173, 257)          # 4 s -> 173 frames x 257 bins
    assert a.stft.shape == (257, 173) and a.stft.dtype == np.complex64
    np.testing.assert_allclose(a.frames, np.abs(a.stft).T, rtol=1e-6)


def test_mel_equals_librosa_with_resampling():
    rep = R.MelSpectrogram(sr=16000, n_fft=1024, hop_length=320, n_mels=64, fmin=30,
                           fmax=7000, compression=None, power=2.0)
    y44 = tone_track(sr=44100, seconds=2.0)
    a = rep.prepare(y44, 44100)
    y16 = librosa.resample(y44, orig_sr=44100, target_sr=16000, res_type="soxr_hq")
    ref = librosa.feature.melspectrogram(y=y16.astype(np.float64), sr=16000, n_fft=1024,
                                         hop_length=320, n_mels=64, fmin=30, fmax=7000,
                                         pad_mode="constant").T
    assert a.sr == 16000 and a.frames.shape == ref.shape == (101, 64)
    np.testing.assert_allclose(a.frames, ref, rtol=1e-4, atol=1e-6 * ref.max())


@pytest.mark.parametrize("compression", ["db", "log10"])
def test_compressions(compression):
    base = R.MelSpectrogram(sr=12000, n_fft=512, hop_length=256, n_mels=96, compression=None)
    rep = R.MelSpectrogram(sr=12000, n_fft=512, hop_length=256, n_mels=96,
                           compression=compression, log_c=100.0, top_db=80.0)
    y = tone_track(sr=12000, seconds=2.0)
    raw = base.prepare(y, 12000).frames
    got = rep.prepare(y, 12000).frames
    ref = (librosa.power_to_db(raw, ref=1.0, top_db=80.0) if compression == "db"
           else np.log10(1 + 100.0 * raw))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    if compression == "db":
        assert got.max() - got.min() <= 80.0 + 1e-3


def test_musicnn_preset_with_librosa_filters_equals_librosa_recipe():
    """docs/method.md §4.3: the librosa call that TensorflowInputMusiCNN equals."""
    y = tone_track(sr=16000, seconds=3.0)
    got = dataclasses.replace(R.musicnn(), mel_impl="librosa").prepare(y, 16000).frames
    S = librosa.feature.melspectrogram(
        y=y.astype(np.float64), sr=16000, n_fft=512, hop_length=256, n_mels=96, power=2,
        window=scipy.signal.get_window("hann", 512, fftbins=False), center=True,
        pad_mode="constant")
    np.testing.assert_allclose(got, np.log10(1 + 1e4 * S).T, atol=1e-5)


def test_musicnn_preset_equals_essentia_frame_by_frame():
    from mirdeconv import backend

    es = backend.essentia_standard()
    y = tone_track(sr=16000, seconds=5.0, seed=3)
    ours = R.musicnn().prepare(y, 16000).frames
    inp = es.TensorflowInputMusiCNN()
    frames = [inp(f) for f in es.FrameGenerator(y, frameSize=512, hopSize=256,
                                                  startFromZero=False)]
    theirs = np.array(frames)
    n = min(len(theirs), len(ours))
    assert n == len(ours) == 1 + y.size // 256  # every frame compared
    err = np.abs(theirs[:n] - ours[:n]).max(axis=1)
    assert err.max() <= 1e-4, f"worst frame {err.argmax()}: {err.max():.2e}"


def test_essentia_filterbank_replica_equals_essentia_melbands():
    from mirdeconv import backend

    es = backend.essentia_standard()
    rep = R.musicnn()
    mb = es.MelBands(inputSize=257, numberBands=96, sampleRate=16000, lowFrequencyBound=0,
                     highFrequencyBound=8000, warpingFormula="slaneyMel", weighting="linear",
                     normalize="unit_tri", type="power")
    theirs = np.stack([mb(np.eye(257, dtype=np.float32)[k]) for k in range(257)], axis=1)
    ours = rep.filterbank()
    assert np.abs(ours - theirs).max() < 2e-7
    # librosa's float64 filters differ more at the triangles' tails
    librosa_fb = dataclasses.replace(rep, mel_impl="librosa").filterbank()
    assert np.abs(librosa_fb - theirs).max() > 2 * np.abs(ours - theirs).max()


def test_round_trip_and_presets():
    for name, make in R.presets().items():
        rep = make()
        assert R.from_dict(rep.to_dict()) == rep, name
    assert R.presets()["choi2016-mel"]().n_bands == 96


@pytest.mark.parametrize("kwargs,msg", [
    ({"compression": "sqrt"}, "compression"),
    ({"n_fft": 0}, "n_fft"),
    ({"n_mels": -3}, "n_mels"),
    ({"win_length": 4096, "n_fft": 512}, "win_length"),
])
def test_invalid_options(kwargs, msg):
    with pytest.raises(InvalidOptionError, match=msg):
        R.MelSpectrogram(**kwargs)


def test_from_dict_unknown_kind():
    with pytest.raises(InvalidOptionError, match="unknown representation kind"):
        R.from_dict({"kind": "cqt"})
