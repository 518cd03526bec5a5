"""A quiet terminal: no TensorFlow, absl or CUDA log line reaches the user of the command line
unless asked for (``--verbose``, ``MIRDECONV_VERBOSE=1``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from .conftest import tone_track

pytestmark = pytest.mark.slow

#: What TensorFlow, absl, CUDA and oneDNN print: "I0000 00:00:... port.cc:153] oneDNN custom
#: operations are on", "E0000 ... cuInit", "WARNING: All log messages before absl::InitializeLog()",
#: "WARNING:tensorflow:5 out of the last ... retracing".
MARKERS = ("I0000", "W0000", "E0000", "absl::", "WARNING:tensorflow", "cuda", "oneDNN",
           "cuInit", "TF_ENABLE_ONEDNN_OPTS")
MULDJORD = Path("/usr/share/games/fretsonfire/data/songs/muldjord/chaos_god/song.ogg")


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    """A real recording when Debian's fretsonfire-songs-muldjord is installed (.ci/run installs
    it), else 20 s of synthetic music as OGG."""
    if MULDJORD.is_file():
        return MULDJORD
    path = tmp_path_factory.mktemp("song") / "song.ogg"
    sf.write(path, tone_track(22050, 20.0), 22050, format="OGG")
    return path


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "MIRDECONV_VERBOSE")}
    return subprocess.run([sys.executable, "-m", "mirdeconv.cli", *args], capture_output=True,
                          text=True, timeout=600, env={**clean, **env})


def _log_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(m in line for m in MARKERS)]


def test_predict_and_layers_print_no_tensorflow_log_lines(zoo_cache, song):
    r = _run("predict", "mtt-vgg", str(song))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr == "" and _log_lines(r.stdout) == []
    assert r.stdout.startswith(f"mtt-vgg on {song}") and "through Essentia" in r.stdout
    assert len(r.stdout.splitlines()) == 6                 # the heading and the 5 top tags
    r = _run("layers", "mtt-musicnn")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr == "" and _log_lines(r.stdout) == []
    assert "timbral_7x38" in r.stdout and "midend_3" in r.stdout


def test_verbose_lets_them_through(zoo_cache, song):
    r = _run("predict", "mtt-vgg", str(song), "--verbose")
    assert r.returncode == 0 and _log_lines(r.stderr)
    r = _run("layers", "mtt-musicnn", MIRDECONV_VERBOSE="1")
    assert r.returncode == 0 and _log_lines(r.stderr)


def test_an_error_is_one_clear_line(tmp_path):
    r = _run("layers", str(tmp_path / "nothing.keras"))
    assert r.returncode == 2
    assert r.stderr.strip() == f"mirdeconv: error: model file not found: {tmp_path / 'nothing.keras'}"
