"""A request is a value (issue 31): a feature selection read once, a memory plan made once
per (track, layer), by the command line and by the batch job; a request is frozen and runs
as the keywords do."""

from __future__ import annotations

import dataclasses
import json
from unittest import mock

import numpy as np
import pytest
import soundfile as sf

import mirdeconv
import mirdeconv.engine.request as request_mod
from mirdeconv.batch import BatchSettings, run_batch
from mirdeconv.cli import main
from mirdeconv.engine import deconvolve, deconvolve_request, memory, resolve_request
from mirdeconv.engine.request import Selection, selection
from mirdeconv.errors import FeatureIndexError, InvalidOptionError
from mirdeconv.loading import sidecar_path
from mirdeconv.representations import LinearSpectrogram

from .conftest import tone_track

REP = LinearSpectrogram(sr=8000, n_fft=128, hop_length=64)        # 65 bins, 125 frames/s


@pytest.fixture(scope="module")
def setup(tmp_path_factory, keras):
    d = tmp_path_factory.mktemp("request")
    keras.utils.set_random_seed(3)
    L = keras.layers
    inp = keras.Input((65, None, 1))
    x = L.MaxPooling2D(2, name="p1")(L.Conv2D(4, 3, padding="same", activation="relu",
                                              name="c1")(inp))
    x = L.MaxPooling2D(2, name="p2")(L.Conv2D(3, 3, padding="same", activation="relu",
                                              name="c2")(x))
    keras.Model(inp, x).save(d / "net.keras")
    sidecar_path(d / "net.keras").write_text(json.dumps({"representation": REP.to_dict()}))
    sf.write(d / "long.wav", tone_track(8000, 6.0, seed=1), 8000)    # 751 frames > the probe
    sf.write(d / "short.wav", tone_track(8000, 2.0, seed=2), 8000)
    return d


@pytest.fixture
def counted():
    """Calls of the feature selection's reader and parser, of the memory plan and its probe."""
    request_mod._read.cache_clear()            # (what another test read is not read again)
    with mock.patch.object(request_mod, "feature_ranges", wraps=request_mod.feature_ranges) as fr, \
            mock.patch.object(request_mod, "parse_features",
                              wraps=request_mod.parse_features) as pf, \
            mock.patch.object(request_mod, "plan_memory", wraps=request_mod.plan_memory) as pm, \
            mock.patch.object(memory, "_probe_bytes", wraps=memory._probe_bytes) as probe:
        yield {"read": fr, "parse": pf, "plan": pm, "probe": probe}


def test_cli_deconvolve_reads_the_selection_once_and_plans_once(setup, tmp_path, counted, capsys):
    rc = main(["deconvolve", str(setup / "net.keras"), str(setup / "long.wav"), "--layer", "c2",
               "--features", "0-1,2", "--out", str(tmp_path / "out")])
    assert rc == 0
    assert counted["read"].call_count == 1 and counted["parse"].call_count == 0
    assert counted["plan"].call_count == 1 and counted["probe"].call_count == 1
    err = capsys.readouterr().err
    assert "memory: ~" in err and "per piece (1 chunk)" in err     # the plan it follows
    assert len(list((tmp_path / "out" / "long" / "c2").glob("f*.npy"))) == 3


def test_batch_reads_the_selection_once_and_plans_once_per_track_and_layer(setup, tmp_path,
                                                                           counted):
    settings = BatchSettings(layers=("p1", "p2"), features="0-2", analyse=False)
    tracks = [setup / "long.wav", setup / "short.wav"]
    s = run_batch(setup / "net.keras", tracks, tmp_path / "out", settings, progress=True)
    assert s.exit_code == 0 and s.n_layers_done == 4
    assert counted["read"].call_count == 1 and counted["parse"].call_count == 0
    assert counted["plan"].call_count == 4          # 2 tracks x 2 layers
    assert counted["probe"].call_count == 2         # the long track's (the short one: no probe)


def test_a_request_is_frozen_and_runs_as_the_keywords_do(setup):
    model = mirdeconv.load_model(setup / "net.keras")
    y = tone_track(8000, 6.0, seed=1)
    req = resolve_request(model, y, 8000, layer="c2", features="0-2")
    assert req.features == (0, 1, 2) and req.layer.name == "c2" and req.plan.n_pieces >= 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.features = (0,)
    a = deconvolve_request(req)
    b = deconvolve(model, y, 8000, layer="c2", features=[0, 1, 2])
    np.testing.assert_array_equal(a.masks, b.masks)
    assert a.features == b.features == [0, 1, 2] and a.mode == b.mode


def test_a_selection_is_read_once_and_checked_against_the_layer():
    assert selection("0-2,5").indices(8) == (0, 1, 2, 5)
    assert selection("all").indices(3) == selection(None).indices(3) == (0, 1, 2)
    assert selection(4).indices(8) == (4,) and selection(iter([1, 3])).indices(8) == (1, 3)
    assert selection(Selection(ranges=((1, 2),))).indices(4) == (1, 2)
    with pytest.raises(FeatureIndexError, match="feature index 99999999999999 is out"):
        selection("0-99999999999999").indices(8)     # checked before any range is built
    with pytest.raises(FeatureIndexError, match="feature index 8 is out of range"):
        selection("3,8").indices(8)
    for bad in ("0-", "x", ""):
        with pytest.raises(InvalidOptionError):
            selection(bad)
    with pytest.raises(InvalidOptionError):
        selection([True]).indices(8)
