"""Reading and validating tracks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import soundfile as sf

from mirdeconv import audio
from mirdeconv.errors import (
    AudioFileNotFoundError,
    InvalidAudioError,
    SilentAudioError,
    TruncatedAudioError,
    TruncationWarning,
    UnsupportedAudioError,
)

from .conftest import tone_track


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
    with pytest.warns(TruncationWarning, match=f"half.{fmt} is cut short"):
        part, _ = load(half, allow_truncated=True)
    assert 0.3 * len(y) < len(part) < 0.7 * len(y)


# --- truncation judged, not guessed (issue 30) -------------------------------------------------
def test_a_flac_cut_in_half_is_truncated_not_unsupported(tmp_path):
    """libsndfile's FLAC decoder loses sync at the cut: that is a TruncatedAudioError naming
    the file and the cause, and allow_truncated keeps the blocks decoded before it."""
    y = (0.3 * np.random.default_rng(2).standard_normal(22050 * 8)).astype(np.float32)
    whole = tmp_path / "whole.flac"
    sf.write(whole, y, 22050, format="FLAC")
    half = tmp_path / "half.flac"
    half.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
    with pytest.raises(TruncatedAudioError) as err:
        audio.load(half)
    msg = str(err.value)
    assert msg.startswith("half.flac is truncated or damaged: ") and "\n" not in msg
    assert "STREAMINFO" in msg and "decoder fails" in msg and "--allow-truncated" in msg
    with pytest.warns(TruncationWarning, match="half.flac is cut short"):
        part, sr = audio.load(half, allow_truncated=True)
    assert sr == 22050 and 0.30 * len(y) < len(part) < 0.55 * len(y)
    np.testing.assert_array_equal(part[:1000], sf.read(whole, dtype="float32")[0][:1000])
    with pytest.warns(TruncationWarning):
        d = audio.decode(half, allow_truncated=True)
    assert d.truncated and d.declared_samples == len(y)
    assert d.shortfall_seconds == pytest.approx((len(y) - len(d.y)) / 22050)


def _mp3_frames(data: bytes) -> list[int]:
    """Offsets of the MPEG-1/2/2.5 layer III frames of an MP3 without tags (the first is the
    Xing/Info frame), by their headers' bit rate, sample rate and padding."""
    kbps = {3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
            2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}
    rates = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
    offsets, k = [], 0
    while k + 4 <= len(data):
        h = int.from_bytes(data[k:k + 4], "big")
        assert h >> 21 == 0x7FF and (h >> 17) & 3 == 1, f"no layer III frame header at byte {k}"
        version = (h >> 19) & 3
        bitrate = kbps[3 if version == 3 else 2][(h >> 12) & 15] * 1000
        rate = rates[version][(h >> 10) & 3]
        offsets.append(k)
        k += (144 if version == 3 else 72) * bitrate // rate + ((h >> 9) & 1)
    return offsets


def _mp3(path, seconds: float, sr: int = 16000):
    """Music-like audio encoded as MP3 with a Xing/Info header: by soundfile (libsndfile >= 1.1
    encodes with LAME), else by Debian's lame command; skip when neither can."""
    if "MP3" not in sf.available_formats():
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} reads no MP3 (it needs >= 1.1 with mpg123)")
    y = tone_track(sr, seconds, seed=3)
    try:
        sf.write(path, y, sr, format="MP3")
        return path
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        why = f"soundfile cannot write MP3 here ({exc})"
    lame = shutil.which("lame")
    if lame is None:
        pytest.skip(f"{why}, and Debian's lame is not installed")
    wav = path.with_suffix(".wav")
    sf.write(wav, y, sr, subtype="PCM_16")
    subprocess.run([lame, "--quiet", str(wav), str(path)], check=True)
    return path


def _cut_mp3(whole, cut, seconds: float):
    """``cut``: ``whole`` without the MP3 frames that hold its last ``seconds``, cut at a frame
    boundary (so its Xing header counts them still); how many samples were cut."""
    data = whole.read_bytes()
    frames = _mp3_frames(data)
    per_frame = sf.info(whole).frames / (len(frames) - 1)        # ~576 at 16 kHz (MPEG-2)
    drop = int(round(seconds * sf.info(whole).samplerate / per_frame))
    cut.write_bytes(data[:frames[-drop]])
    return drop * per_frame


@pytest.fixture(scope="module")
def long_mp3(tmp_path_factory):
    return _mp3(tmp_path_factory.mktemp("mp3") / "long.mp3", 100.0)


def test_an_mp3_a_little_short_of_its_xing_count_is_accepted_with_a_warning(long_mp3, tmp_path):
    """Its last ~1.2 % of frames cut (1.2 s of 100 s: more than 1 s, within 2 %): accepted,
    with a TruncationWarning naming the file and the shortfall; decode() flags it."""
    cut = tmp_path / "short.mp3"
    removed = _cut_mp3(long_mp3, cut, 1.2)
    with pytest.warns(TruncationWarning, match=r"short\.mp3 is cut short: .* Xing header .*"
                                               r"\(1\.\d\d s, 1\.\d % short, within the 2 % or 1 s"):
        y, sr = audio.load(cut)
    assert sr == 16000 and len(y) > 0.97 * 1_600_000
    with pytest.warns(TruncationWarning):
        d = audio.decode(cut)
    assert d.truncated is True and d.declared_samples == sf.info(long_mp3).frames
    assert d.shortfall_seconds == pytest.approx(removed / 16000, abs=0.08)
    assert d.shortfall_seconds == pytest.approx((d.declared_samples - len(d.y)) / 16000)
    assert "Xing" in d.reason or "Info" in d.reason
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        whole = audio.decode(long_mp3)                       # complete: no warning, no flag
    assert not whole.truncated and whole.shortfall_seconds == 0.0 and whole.reason == ""
    assert whole.declared_samples == sf.info(long_mp3).frames == len(whole.y)


def test_an_mp3_cut_by_a_fifth_is_refused(long_mp3, tmp_path):
    cut = tmp_path / "fifth.mp3"
    _cut_mp3(long_mp3, cut, 20.0)
    with pytest.raises(TruncatedAudioError, match=r"fifth\.mp3 is truncated or damaged: .*Xing header"
                                                  r".*more than the 2 % or 1 s tolerated.*--allow-truncated"):
        audio.decode(cut)
    with pytest.warns(TruncationWarning, match="allow_truncated"):
        d = audio.decode(cut, allow_truncated=True)
    assert d.truncated and d.shortfall_seconds == pytest.approx(20.0, abs=0.1)
    assert len(d.y) == pytest.approx(0.8 * 1_600_000, rel=0.01)


@pytest.mark.parametrize("seconds,cut,accepted", [
    (100.0, 1.9, True),      # 1.9 %: within 2 % (2 s), though more than 1 s
    (100.0, 2.6, False),     # 2.6 %: more than 2 % and more than 1 s
    (20.0, 0.8, True),       # 4 %: more than 2 %, but within 1 s
    (20.0, 1.4, False),      # 7 %, 1.4 s: more than both
])
def test_the_tolerance_is_2_percent_or_1_second_whichever_allows_more(
        long_mp3, tmp_path, seconds, cut, accepted):
    whole = long_mp3 if seconds == 100.0 else _mp3(tmp_path / "whole.mp3", seconds)
    short = tmp_path / "short.mp3"
    _cut_mp3(whole, short, cut)
    if accepted:
        with pytest.warns(TruncationWarning, match="within the 2 % or 1 s tolerated"):
            assert audio.decode(short).truncated
    else:
        with pytest.raises(TruncatedAudioError, match="more than the 2 % or 1 s tolerated"):
            audio.decode(short)


def test_a_garbage_mp3_says_what_it_is(tmp_path):
    """libsndfile says "File does not exist or is not a regular file (possibly a pipe?)" when
    libmpg123 finds no MPEG stream: the message says what the file is instead, on one line."""
    if "MP3" not in sf.available_formats():
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} reads no MP3")
    p = tmp_path / "x.mp3"
    p.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(UnsupportedAudioError) as err:
        audio.load(p)
    msg = str(err.value)
    assert not isinstance(err.value, TruncatedAudioError)
    assert "possibly a pipe" not in msg and "does not exist" not in msg and "\n" not in msg
    assert "x.mp3 is not an MP3 (MPEG audio) stream that can be decoded" in msg
    html = tmp_path / "page.mp3"                     # a download that went wrong
    html.write_text("<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n")
    with pytest.raises(UnsupportedAudioError, match="page.mp3 is not an MP3 .*it starts with an HTML page"):
        audio.load(html)


def test_c_decoders_write_nothing_to_the_terminal(long_mp3, tmp_path):
    """libmpg123 writes "Note: Illegal Audio-MPEG-Header ..." for a garbage file and "Warning:
    Xing stream size off ..." for a cut one straight to file descriptor 2: none of it gets
    through (fd 2 is /dev/null around the decoding, then restored), unless MIRDECONV_VERBOSE."""
    garbage = tmp_path / "x.mp3"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    half = tmp_path / "half.mp3"
    _cut_mp3(long_mp3, half, 50.0)
    script = textwrap.dedent("""
        import os, sys, warnings
        warnings.simplefilter("ignore")
        import mirdeconv.audio
        from mirdeconv.errors import UnsupportedAudioError
        for path in sys.argv[1:]:
            for allow in (False, True):
                try:
                    mirdeconv.audio.load(path, allow_truncated=allow)
                except UnsupportedAudioError:
                    pass
            mirdeconv.audio.integrity(path, 1)
        os.write(2, b"fd 2 is back")
    """)
    env = {k: v for k, v in os.environ.items() if k != "MIRDECONV_VERBOSE"}
    quiet = subprocess.run([sys.executable, "-c", script, str(garbage), str(half)],
                           capture_output=True, text=True, timeout=120, env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "fd 2 is back"
    loud = subprocess.run([sys.executable, "-c", script, str(garbage), str(half)],
                          capture_output=True, text=True, timeout=120, env={**env, "MIRDECONV_VERBOSE": "1"})
    assert loud.returncode == 0 and loud.stderr != "fd 2 is back", \
        "libmpg123 printed nothing even when let through: the quiet run above proves nothing"


def test_decoding_in_threads_gives_fd_2_back(long_mp3, tmp_path):
    """Threads decoding at once share one redirection of fd 2: the last one restores it."""
    from concurrent.futures import ThreadPoolExecutor

    short = tmp_path / "short.mp3"
    _cut_mp3(long_mp3, short, 0.5)
    before = os.fstat(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        with ThreadPoolExecutor(4) as pool:
            done = list(pool.map(lambda _: audio.decode(short, sr=8000).truncated, range(8)))
    after = os.fstat(2)
    assert all(done) and (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
