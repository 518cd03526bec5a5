"""A 30-minute track in bounded memory: the whole-track path goes in chunks extended by the
receptive field (equal to one piece: tests/test_engine.py), the STFT and mel frames in
blocks, pictures thinned; peak RSS measured in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from mirdeconv.demo import demo_track

#: The issue's target for a 30-minute track through mtt-vgg's 3CNN, 4 features.
PEAK_GB = 2.5


@pytest.mark.slow
def test_a_30_minute_track_stays_under_the_memory_target(zoo_cache, tmp_path):
    y = np.tile(demo_track(sr=16000, seconds=60.0, kind="mix"), 30)
    sf.write(tmp_path / "set.flac", y, 16000)
    # VmHWM: the peak of this process's own memory since exec (ru_maxrss would keep the
    # parent's high-water mark, inherited at fork: the whole pytest session's)
    code = ("import json, re, sys; from mirdeconv.cli import main; rc = main(sys.argv[1:]); "
            "kb = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
            "print(json.dumps({'rc': rc, 'peak': int(kb) * 1024}))")
    r = subprocess.run([sys.executable, "-c", code, "deconvolve", "musicnn:mtt-vgg",
                        str(tmp_path / "set.flac"), "--layer", "3CNN", "--features", "0-3",
                        "--out", str(tmp_path / "out")], capture_output=True, text=True,
                       timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["rc"] == 0
    assert got["peak"] < PEAK_GB * 1e9, f"peak RSS {got['peak'] / 1e9:.2f} GB"
    mask = np.load(tmp_path / "out" / "set" / "3CNN" / "f000.npy", mmap_mode="r")
    assert mask.shape == (112501, 96)                         # 30 min at hop 256, 16 kHz
