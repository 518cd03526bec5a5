"""Reading and validating tracks."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from mirdeconv import audio
from mirdeconv.errors import (
    AudioFileNotFoundError,
    InvalidAudioError,
    SilentAudioError,
    UnsupportedAudioError,
)


def sine(sr=22050, seconds=1.0, f=440.0):
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)


@pytest.mark.parametrize("fmt,ext", [("WAV", "wav"), ("FLAC", "flac"), ("OGG", "ogg")])
def test_load_formats_and_resample(tmp_path, fmt, ext):
    y = sine()
    p = tmp_path / f"a.{ext}"
    sf.write(p, np.stack([y, 0.5 * y], axis=1), 22050, format=fmt)  # stereo
    z, sr = audio.load(p, sr=11025)
    assert sr == 11025 and z.ndim == 1 and z.dtype == np.float32
    assert abs(z.size - 11025) <= 1
    # mono mix of (y, y/2) = 0.75 y; energy kept through resampling (lossy ogg: loosely)
    rms = np.sqrt(np.mean(z[1000:-1000] ** 2))
    assert rms == pytest.approx(0.75 * 0.5 / np.sqrt(2), rel=0.05)


def test_missing_file(tmp_path):
    with pytest.raises(AudioFileNotFoundError, match="not found"):
        audio.load(tmp_path / "nope.wav")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    with pytest.raises(UnsupportedAudioError, match="empty"):
        audio.load(p)


def test_corrupt_file(tmp_path):
    p = tmp_path / "bad.wav"
    p.write_bytes(b"RIFF" + bytes(range(256)) * 8)
    with pytest.raises(UnsupportedAudioError, match="cannot decode bad.wav"):
        audio.load(p)


def test_unsupported_format(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("this is not audio\n" * 100)
    with pytest.raises(UnsupportedAudioError, match="not a supported or intact audio file"):
        audio.load(p)


def test_file_without_samples(tmp_path):
    p = tmp_path / "zero.wav"
    sf.write(p, np.zeros((0, 1), np.float32), 8000)
    with pytest.raises(InvalidAudioError, match="no samples"):
        audio.load(p)


def test_silence(tmp_path):
    p = tmp_path / "silence.wav"
    sf.write(p, np.zeros(8000, np.float32), 8000)
    with pytest.raises(SilentAudioError, match="silent"):
        audio.load(p)


def test_nan_and_inf():
    y = sine()
    y[10], y[20] = np.nan, np.inf
    with pytest.raises(InvalidAudioError, match="2 NaN or infinite samples"):
        audio.validate(y, 22050)


@pytest.mark.parametrize("bad,msg", [
    (np.zeros((2, 100), np.float32) + 0.1, "mono"),
    (np.array([], np.float32), "empty"),
    ([0.1, 0.2], "numpy array"),
    (np.array(["a", "b"]), "numbers"),
])
def test_validate_shapes(bad, msg):
    with pytest.raises(InvalidAudioError, match=msg):
        audio.validate(bad, 22050)


def test_bad_sample_rate():
    with pytest.raises(InvalidAudioError, match="sample rate"):
        audio.validate(sine(), 0)


@pytest.mark.parametrize("fmt", ["wav", "mp3", "ogg"])
def test_a_file_cut_in_half_is_refused(tmp_path, fmt):
    """Each container's own evidence: a WAV's data chunk, an MP3's header length, an Ogg
    stream's last page; with allow_truncated what decodes comes back."""
    from mirdeconv.audio import integrity, load
    from mirdeconv.errors import TruncatedAudioError

    y = (0.3 * np.random.default_rng(1).standard_normal(22050 * 8)).astype(np.float32)
    whole = tmp_path / f"whole.{fmt}"
    sf.write(whole, y, 22050)
    assert load(whole)[0].shape[0] >= len(y) - 2048 and integrity(whole, len(y)) == ""
    half = tmp_path / f"half.{fmt}"
    half.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
    with pytest.raises(TruncatedAudioError, match=f"half.{fmt} is truncated or damaged: .*"
                                                  "--allow-truncated"):
        load(half)
    part, _ = load(half, allow_truncated=True)
    assert 0.3 * len(y) < len(part) < 0.7 * len(y)
