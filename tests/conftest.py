"""Shared fixtures: the ../shared test models, small Keras nets, synthetic tracks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MIRDECONV_SHARED", ROOT.parent / "shared"))
REQUIRE_SHARED = os.environ.get("MIRDECONV_REQUIRE_SHARED") == "1"


def shared_file(rel: str) -> Path:
    """A file from ../shared; skip (or fail when MIRDECONV_REQUIRE_SHARED=1) when absent."""
    p = SHARED / rel
    if not p.is_file():
        msg = f"shared test file {p} is absent (the ../shared folder ships beside the repo in CI)"
        if REQUIRE_SHARED:
            pytest.fail(msg)
        pytest.skip(msg)
    return p


def debian_file(path: str | Path, package: str) -> Path:
    """A file a Debian package installs (.ci/run installs it); skip (or fail when
    MIRDECONV_REQUIRE_SHARED=1) when absent."""
    p = Path(path)
    if not p.is_file():
        msg = f"{p} is absent (Debian's {package}; .ci/run installs it)"
        if REQUIRE_SHARED:
            pytest.fail(msg)
        pytest.skip(msg)
    return p


#: A real rock recording with its stems (Debian's fretsonfire-songs-muldjord).
MULDJORD = Path("/usr/share/games/fretsonfire/data/songs/muldjord")


def tone_track(sr: int = 16000, seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    """Deterministic music-like test audio: harmonic notes, a noise burst pattern, clicks."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    y = np.zeros_like(t)
    for k, f0 in enumerate((220.0, 277.2, 329.6, 440.0)):
        env = np.exp(-3.0 * ((t - 0.9 * k) % 1.0))
        for h in range(1, 6):
            y += 0.08 / h * env * np.sin(2 * np.pi * f0 * h * t + h)
    y += 0.02 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 2 * t) > 0.6)
    clicks = np.zeros_like(t)
    clicks[:: sr // 4] = 0.8
    y += np.convolve(clicks, np.exp(-np.arange(200) / 20.0), mode="same")
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


@pytest.fixture(scope="session")
def keras():
    from mirdeconv import backend

    return backend.keras()


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory):
    """All four zoo models converted ONCE per session, from the registry, in a fresh cache."""
    from mirdeconv import zoo

    cache = tmp_path_factory.mktemp("zoo-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("MIRDECONV_CACHE", str(cache))
    paths = {name: zoo.fetch(name) for name in zoo.ZOO}
    yield cache, paths
    mp.undo()


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run the tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def mapped_rss():
    """``f(path)``: resident bytes of this process's memory mappings of ``path``
    (/proc/self/smaps), to check that a memory map's pages were given back."""
    def rss(path: str) -> int:
        total, inside = 0, False
        for line in open("/proc/self/smaps"):
            words = line.split()
            if "-" in words[0] and len(words) >= 5:             # a mapping's header
                inside = path in line
            elif inside and line.startswith("Rss:"):
                total += int(words[1]) * 1024
        return total
    return rss
