"""Auralisation: quality with numbers, readings, signs, rates, normalisation, files, API."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile as sf

import mirdeconv
from mirdeconv.auralisation import auralise_masks, normalize
from mirdeconv.errors import InvalidOptionError, OutputError
from mirdeconv.options import SoundOptions
from mirdeconv.representations import LinearSpectrogram, choi2016_stft, musicnn
from mirdeconv.store import write_audio

from .conftest import tone_track

RAW = SoundOptions(normalize="none")   # the auralisation as computed, unnormalised
SR = 11025


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    err = np.sum((ref - est) ** 2)
    return np.inf if err == 0 else 10 * np.log10(np.sum(ref ** 2) / err)


def noise(sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(int(sr * seconds))).astype(np.float32)


def band_energy_share(y: np.ndarray, sr: int, lo: float, hi: float) -> float:
    P = np.abs(librosa.stft(y, n_fft=2048, hop_length=512)) ** 2
    f = librosa.fft_frequencies(sr=sr, n_fft=2048)
    return float(P[(f >= lo) & (f <= hi)].sum() / P.sum())


def test_all_ones_mask_gives_back_the_input():
    rep = choi2016_stft()
    y = tone_track(sr=SR, seconds=4.0)
    a = rep.prepare(y, SR)
    out, sr, _ = auralise_masks(np.ones((1, *a.frames.shape)), a, sound=RAW)
    assert sr == SR and out.shape == (1, y.size)
    assert snr_db(y, out[0]) >= 40.0


def test_band_mask_keeps_the_band():
    rep = choi2016_stft()
    y = noise(SR, 4.0)
    a = rep.prepare(y, SR)
    freqs = np.arange(rep.n_bins) * SR / rep.n_fft
    m = np.zeros((1, *a.frames.shape), np.float32)
    m[0][:, (freqs >= 1000) & (freqs <= 2000)] = 1.0
    out, _, _ = auralise_masks(m, a, sound=RAW)
    assert band_energy_share(out[0], SR, 950, 2050) >= 0.95


def test_time_mask_keeps_the_span():
    rep = choi2016_stft()
    y = noise(SR, 4.0)
    a = rep.prepare(y, SR)
    m = np.zeros((1, *a.frames.shape), np.float32)
    m[0, 60:90] = 1.0
    out, _, _ = auralise_masks(m, a, sound=RAW)
    hop = rep.hop_length
    inside = out[0][(60 - 1) * hop:(90 + 1) * hop]
    assert np.sum(inside ** 2) / np.sum(out[0] ** 2) >= 0.95


def test_mel_mask_on_a_mel_model():
    rep = musicnn()
    y = noise(16000, 4.0)
    a = rep.prepare(y, 16000)
    ones, _, _ = auralise_masks(np.ones((1, *a.frames.shape)), a, sound=RAW)
    assert snr_db(y, ones[0]) >= 40.0                    # a constant mel mask stays constant
    edges = librosa.mel_frequencies(98, fmin=0, fmax=8000)  # band k spans edges[k]..edges[k+2]
    m = np.zeros((1, *a.frames.shape), np.float32)
    m[0][:, 40:50] = 1.0
    out, _, _ = auralise_masks(m, a, sound=RAW)
    assert band_energy_share(out[0], 16000, edges[40], edges[51]) >= 0.95


def test_silent_feature_gives_silence():
    rep = choi2016_stft()
    a = rep.prepare(tone_track(sr=SR, seconds=2.0), SR)
    for how in ("peak", "loudness", "none"):
        out, _, thumbs = auralise_masks(np.zeros((2, *a.frames.shape)), a, sound=SoundOptions(normalize=how))
        assert np.isfinite(out).all() and not out.any()
        assert np.isfinite(thumbs).all()


@pytest.mark.parametrize("compression", ["db", "log10"])
def test_magnitude_reading_inverts_the_compression(compression):
    rep = LinearSpectrogram(sr=SR, n_fft=512, hop_length=256, compression=compression,
                            top_db=None, log_c=100.0)
    y = tone_track(sr=SR, seconds=3.0)
    a = rep.prepare(y, SR)
    # the deconvolution read as a spectrogram: the input itself comes back
    out, _, _ = auralise_masks(a.frames[None], a, sound=RAW.replace(reading="magnitude"))
    assert snr_db(y, out[0]) >= 40.0
    # read as a mask instead, the compressed values weight the STFT: something else entirely
    other, _, _ = auralise_masks(a.frames[None], a, sound=RAW.replace(reading="mask"))
    assert snr_db(y, other[0]) < 10.0


@pytest.mark.parametrize("compression", ["db", "log10"])
def test_magnitude_reading_of_a_huge_deconvolution_stays_finite(compression):
    """A deep deconvnet mask is not bounded by the input's range (Choi's conv3: values in the
    thousands); read as a compressed spectrogram it overflowed to inf, and inf times the
    filterbank's zeros made NaN audio.  It is capped 60 dB above the track's loudest bin."""
    rep = musicnn() if compression == "log10" else LinearSpectrogram(
        sr=SR, n_fft=512, hop_length=256, compression="db", top_db=None)
    y = tone_track(sr=rep.sr, seconds=3.0)
    a = rep.prepare(y, rep.sr)
    huge = np.full((1, *a.frames.shape), 5e3, np.float32)
    huge[0, ::7] = -5e3
    out, _, thumbs = auralise_masks(huge, a, sound=RAW.replace(reading="magnitude"))
    assert np.isfinite(out).all() and np.isfinite(thumbs).all() and np.abs(out).max() > 0
    peak, _, _ = auralise_masks(huge, a, sound=SoundOptions(reading="magnitude"))
    assert np.abs(peak).max() == pytest.approx(0.99, rel=1e-3)


def test_signs():
    rep = choi2016_stft()
    y = tone_track(sr=SR, seconds=2.0)
    a = rep.prepare(y, SR)
    neg = -np.ones((1, *a.frames.shape), np.float32)
    signed, _, _ = auralise_masks(neg, a, sound=RAW.replace(sign="signed"))
    positive, _, _ = auralise_masks(neg, a, sound=RAW.replace(sign="positive"))
    absolute, _, _ = auralise_masks(neg, a, sound=RAW.replace(sign="absolute"))
    assert snr_db(-y, signed[0]) >= 40.0                # a negative mask flips the phase
    assert not positive.any()
    assert snr_db(y, absolute[0]) >= 40.0
    with pytest.raises(InvalidOptionError, match="sign must be one of signed, positive, absolute"):
        auralise_masks(neg, a, sound=SoundOptions(sign="clip"))
    with pytest.raises(InvalidOptionError, match="normalize must be one of peak, loudness, none"):
        mirdeconv.auralise(None, y, SR, layer=0, normalize="loud")


def test_output_at_the_tracks_rate():
    rep = choi2016_stft()                                # the model hears 0 - 5512 Hz
    y = noise(22050, 3.0)
    a = rep.prepare(y, 22050)
    ones = np.ones((1, *a.frames.shape), np.float32)
    hi, sr_hi, _ = auralise_masks(ones, a, audio=y, sr=22050, sound=RAW)
    lo, sr_lo, _ = auralise_masks(ones, a, audio=y, sr=22050, sound=RAW.replace(output_sr="model"))
    assert (sr_hi, hi.shape[1]) == (22050, y.size) and (sr_lo, lo.shape[1]) == (11025, 33075)
    # full rate: the input below the model's Nyquist, nothing above it
    S = librosa.stft(y, n_fft=1024, hop_length=512)
    S[np.fft.rfftfreq(1024, 1 / 22050) > 11025 / 2] = 0
    ref = librosa.istft(S, hop_length=512, length=y.size)
    assert snr_db(ref, hi[0]) >= 30.0
    assert band_energy_share(hi[0], 22050, 5600, 11025) < 1e-3
    # a time span on the model's grid stays in place on the track's grid
    span = np.zeros_like(ones)
    span[0, 40:70] = 1.0                                   # frames of 256 / 11025 s
    out, _, _ = auralise_masks(span, a, audio=y, sr=22050, sound=RAW)
    t0, t1 = 39 * 256 / 11025, 71 * 256 / 11025
    inside = out[0][int(t0 * 22050):int(t1 * 22050)]
    assert np.sum(inside ** 2) / np.sum(out[0] ** 2) >= 0.95


def test_normalisation():
    y = np.stack([0.1 * noise(SR, 5.0, 1), np.zeros(5 * SR, np.float32)])
    peak = normalize(y, SR, "peak")
    assert np.max(np.abs(peak[0])) == pytest.approx(0.99, abs=1e-6) and not peak[1].any()
    loud = normalize(y, SR, "loudness")
    import pyloudnorm

    assert pyloudnorm.Meter(SR).integrated_loudness(loud[0].astype(np.float64)) == \
        pytest.approx(-23.0, abs=0.5)
    assert np.array_equal(normalize(y, SR, "none"), y)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_write_audio(tmp_path, suffix):
    y = 0.5 * noise(SR, 1.0)
    p = write_audio(tmp_path / f"x{suffix}", y, SR)
    back, sr = sf.read(p, dtype="float32")
    assert sr == SR and np.abs(back - y).max() <= 1.0 / 32767 + 1e-6
    assert [q.name for q in tmp_path.iterdir()] == [f"x{suffix}"]   # no temporary left
    with pytest.raises(OutputError, match=".wav or .flac"):
        write_audio(tmp_path / "x.mp3", y, SR)


def test_api_auralise_and_save(keras, tmp_path):
    keras.utils.set_random_seed(4)
    L = keras.layers
    inp = keras.Input((257, 64, 1))
    x = L.MaxPooling2D(2, name="p1")(L.Conv2D(6, 3, padding="same", activation="relu",
                                              name="c1")(inp))
    model = mirdeconv.load_model(keras.Model(inp, x), representation=choi2016_stft())
    y = tone_track(sr=22050, seconds=3.0)
    res = mirdeconv.auralise(model, y, 22050, layer="p1", features="0-3", format="flac")
    assert res.audio.shape == (4, y.size) and res.sr == 22050
    assert res.thumbnails.shape == (4, 64, 128) and res.features == [0, 1, 2, 3]
    alive = ~res.deconvolution.dead
    assert np.allclose(np.abs(res.audio[alive]).max(axis=1), 0.99)
    assert res.sound == mirdeconv.SoundOptions(format="flac")
    files = res.save(tmp_path / "out")
    assert sorted(p.name for p in files) == ["f000.flac", "f001.flac", "f002.flac", "f003.flac",
                                             "grid.png"]
    back, sr = sf.read(tmp_path / "out" / "f002.flac")
    assert sr == 22050 and back.shape == (y.size,)


@pytest.mark.parametrize("center,pad_mode", [(True, "constant"), (True, "reflect"),
                                             (False, "constant")])
@pytest.mark.parametrize("n,n_fft,hop", [(16000 * 7 + 123, 512, 256), (44100 * 3 + 7, 1412, 706),
                                         (5000, 512, 128)])
def test_block_by_block_inversion_equals_librosa(monkeypatch, center, pad_mode, n, n_fft, hop):
    """The STFT of a stretch of frames and the inverse of (mask x STFT) in blocks of 64
    frames (every block shorter than many windows) equal librosa's one-call results."""
    import librosa
    import scipy.signal

    from mirdeconv import inversion

    monkeypatch.setattr(inversion, "BLOCK_FRAMES", 64)
    rng = np.random.default_rng(n)
    y = rng.standard_normal(n).astype(np.float32)
    win = scipy.signal.get_window("hann", n_fft, fftbins=True)
    grid = {"n_fft": n_fft, "hop_length": hop, "win_length": None}
    S = librosa.stft(y.astype(np.float64), window=win, center=center, pad_mode=pad_mode,
                     **grid).astype(np.complex64)
    whole = inversion.stft_frames(y, 0, S.shape[1], grid, win, center, pad_mode)
    np.testing.assert_allclose(whole, S, rtol=0, atol=1e-5 * np.abs(S).max())
    e = min(50, S.shape[1])
    np.testing.assert_allclose(inversion.stft_frames(y, 3, e, grid, win, center, pad_mode),
                               S[:, 3:e], rtol=0, atol=1e-5 * np.abs(S).max())
    M = rng.standard_normal((2, *S.shape)).astype(np.float32)
    ref = librosa.istft(M * S[None], window=win, center=center, length=n, **grid)
    out, coarse = inversion.invert_blocks(S.shape[1], n, grid, win, center,
                                          lambda a, b: M[:, :, a:b], lambda a, b: S[:, a:b], (4, 3))
    assert S.shape[1] > 2 * 64 or n == 5000
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    np.testing.assert_allclose(coarse, np.abs(M[:, ::4, ::3]) * np.abs(S[::4, ::3]), rtol=1e-6)
