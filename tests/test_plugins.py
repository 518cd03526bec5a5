"""Model plugins: discovery (folders, entry points), failures, ids; the first-party plugins."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import mirdeconv
from mirdeconv import registry
from mirdeconv.cli import main
from mirdeconv.errors import ModelLoadError

from .conftest import ROOT, shared_file, tone_track

# The README's plugin example, verbatim in spirit: a user's own Keras model on mel input.
USER_PLUGIN = '''
import keras
import mirdeconv
from mirdeconv.registry import ModelSpec, Plugin
from mirdeconv.representations import MelSpectrogram

MEL = MelSpectrogram(sr=22050, n_fft=1024, hop_length=512, n_mels=64, compression="db")
TAGS = ["calm", "busy", "bright"]


def build():
    keras.utils.set_random_seed(0)
    inp = keras.Input((64, 128, 1))                    # bands x frames x 1
    x = inp
    for i, maps in enumerate((16, 32), start=1):
        x = keras.layers.Conv2D(maps, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="sigmoid")(x))


def load_tagger(**options):
    net = build()
    if "weights" in options:
        net.load_weights(options["weights"])
    return mirdeconv.load_model(net, representation=MEL, labels=TAGS, name="tagger")


PLUGIN = Plugin(name="mine", models=[ModelSpec("tagger", load_tagger, "my mel tagger")])
'''


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "mine.py").write_text(USER_PLUGIN)
    (folder / "broken.py").write_text("import numpy\nraise RuntimeError('no GPU here')\n")
    (folder / "empty.py").write_text("X = 1\n")
    monkeypatch.setenv("MIRDECONV_PLUGIN_PATH", str(folder))
    return folder


def test_folder_plugin_listed_loaded_deconvolved(plugin_path, capsys):
    infos = {i.name: i for i in registry.discover()}
    assert infos["mine"].status == "ok" and [s.name for s in infos["mine"].models] == ["tagger"]
    assert infos["broken"].status == "error" and "RuntimeError: no GPU here" in infos["broken"].error
    assert infos["empty"].status == "error" and "defines no PLUGIN" in infos["empty"].error
    assert infos["choi2016"].status == "ok" and infos["musicnn"].status == "ok"
    m = mirdeconv.load_model("mine:tagger")
    assert m.labels == ["calm", "busy", "bright"] and m.input_axes == "NFTC"
    assert [(li.name, li.n_features) for li in m.layers] == [
        ("conv1", 16), ("pool1", 16), ("conv2", 32), ("pool2", 32)]
    res = mirdeconv.deconvolve(m, tone_track(22050, 6.0), 22050, layer="pool2", features="0-3")
    assert res.masks.shape == (4, 259, 64) and np.isfinite(res.masks).all()
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "mine: ok" in out and "mine:tagger" in out and "broken: error" in out
    assert main(["models"]) == 0
    assert "mine:tagger" in capsys.readouterr().out


def test_plugin_errors_are_clear(plugin_path):
    with pytest.raises(ModelLoadError, match="plugin 'broken' failed to load: RuntimeError"):
        mirdeconv.load_model("broken:x")
    with pytest.raises(ModelLoadError, match="no plugin named 'nothere'"):
        mirdeconv.load_model("nothere:x")
    with pytest.raises(ModelLoadError, match="plugin 'mine' has no model 'other'; it has tagger"):
        mirdeconv.load_model("mine:other")


def test_duplicate_plugin_names_are_reported(plugin_path):
    shutil.copy(plugin_path / "mine.py", plugin_path / "mine_again.py")
    infos = [i for i in registry.discover() if i.name in ("mine", "mine_again")]
    assert [i.status for i in infos] == ["ok", "error"]
    assert "already loaded" in infos[1].error


def test_entry_point_plugin(tmp_path, monkeypatch):
    """A package installed with an entry point in the group ``mirdeconv.plugins``."""
    site = tmp_path / "site"
    (site / "mine_ep-1.0.dist-info").mkdir(parents=True)
    (site / "mine_ep-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mine-ep\nVersion: 1.0\n")
    (site / "mine_ep-1.0.dist-info" / "entry_points.txt").write_text(
        "[mirdeconv.plugins]\nmine_ep = mine_ep_module\n")
    (site / "mine_ep_module.py").write_text(USER_PLUGIN.replace('name="mine"', 'name="mine_ep"'))
    monkeypatch.syspath_prepend(str(site))
    assert "mine_ep" not in {i.name for i in registry.discover()}   # discovery is cached ...
    infos = {i.name: i for i in registry.refresh()}                  # ... until refreshed
    assert infos["mine_ep"].status == "ok"
    assert infos["mine_ep"].source == "entry point mine_ep = mine_ep_module"
    assert "mine_ep:tagger" in registry.models()
    sys.modules.pop("mine_ep_module", None)
    monkeypatch.undo()
    assert "mine_ep" not in {i.name for i in registry.refresh()}


def test_discovery_imports_each_plugin_once(tmp_path, monkeypatch):
    folder = tmp_path / "counted"
    folder.mkdir()
    log = tmp_path / "imports.log"
    (folder / "counted.py").write_text(
        f"open({str(log)!r}, 'a').write('x')\n" + USER_PLUGIN.replace('name="mine"', 'name="counted"'))
    monkeypatch.setenv("MIRDECONV_PLUGIN_PATH", str(folder))
    for _ in range(3):
        assert "counted:tagger" in registry.models()
    assert log.read_text() == "x"
    registry.refresh()
    assert log.read_text() == "xx"


@pytest.mark.slow
def test_musicnn_zoo_plugin(zoo_cache):
    m = mirdeconv.load_model("musicnn:mtt-vgg")
    assert m.name == "mtt-vgg" and [li.name for li in m.layers][0] == "1CNN"


# -- Choi et al. 2016 -------------------------------------------------------------------
@pytest.fixture(scope="module")
def choi_weights():
    return shared_file("models/choi2016/music_tagger_cnn_weights_tensorflow.h5")


@pytest.fixture(scope="module")
def choi(choi_weights):
    return mirdeconv.load_model("choi2016:music_tagger_cnn", weights=choi_weights)


def test_choi_layers(choi):
    convs = [(li.name, li.n_features) for li in choi.layers if li.name.startswith("conv")]
    assert convs == [("conv1", 32), ("conv2", 128), ("conv3", 128), ("conv4", 192),
                     ("conv5", 256)]
    assert choi.input_axes == "NFTC" and choi.input_length == 1366 and len(choi.labels) == 50
    assert choi.representation.sr == 12000 and choi.representation.n_bands == 96
    assert choi.layer("pool5").receptive_field[0] > choi.layer("pool4").receptive_field[0]


def test_choi_weights_env_and_errors(choi_weights, tmp_path, monkeypatch):
    monkeypatch.delenv("MIRDECONV_CHOI2016_WEIGHTS", raising=False)
    with pytest.raises(ModelLoadError, match="MIRDECONV_CHOI2016_WEIGHTS.*github.com/keunwoochoi"):
        mirdeconv.load_model("choi2016:music_tagger_cnn")
    wrong = shared_file("models/choi2016/music_tagger_crnn_weights_tensorflow.h5")
    with pytest.raises(ModelLoadError, match="not MusicTaggerCNN weights|has shape"):
        mirdeconv.load_model("choi2016:music_tagger_cnn", weights=wrong)
    cut = tmp_path / "cut.h5"
    data = choi_weights.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated"):
        mirdeconv.load_model("choi2016:music_tagger_cnn", weights=cut)
    monkeypatch.setenv("MIRDECONV_CHOI2016_WEIGHTS", str(choi_weights))
    assert mirdeconv.load_model("choi2016:music_tagger_cnn").name == "music_tagger_cnn"


@pytest.mark.slow
def test_choi_predictions_deterministic_and_graded(choi):
    from mirdeconv.demo import demo_track
    from mirdeconv.engine import model_input, run_graph

    y = demo_track(sr=12000, seconds=30.0, kind="drums")
    x, _ = model_input(choi, choi.representation.prepare(y, 12000).frames, whole=False)
    a, b = run_graph(choi, x), run_graph(choi, x)
    assert np.isfinite(a).all() and np.array_equal(a, b)
    p = a.mean(axis=0)
    # the running_std reading gives graded tags; reading it as a variance saturates them
    assert 0.3 < p.max() < 0.99 and choi.labels[int(p.argmax())] == "electronic"


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["conv1", "pool2", "conv3", "pool4", "conv5"])
def test_choi_every_layer_deconvolves_and_auralises(choi, layer):
    y = tone_track(22050, 30.0)
    res = mirdeconv.auralise(choi, y, 22050, layer=layer, features="0-3")
    assert res.audio.shape == (4, y.size) and np.isfinite(res.audio).all()
    d = res.deconvolution
    assert d.masks.shape == (4, 1 + int(30.0 * 12000) // 256, 96)
    alive = ~d.dead
    assert alive.any() and np.abs(d.masks[alive]).max() > 0


def test_first_party_plugins_come_through_their_entry_points():
    """plugins/ is installed as the package mirdeconv_plugins, registered like any plugin."""
    infos = {i.name: i for i in registry.discover()}
    assert infos["musicnn"].source == "entry point musicnn = mirdeconv_plugins.musicnn_zoo"
    assert infos["choi2016"].source == "entry point choi2016 = mirdeconv_plugins.choi2016"
    assert infos["tempocnn"].source == "entry point tempocnn = mirdeconv_plugins.tempocnn"
    assert len(infos["tempocnn"].models) == 24
    import mirdeconv_plugins

    assert Path(mirdeconv_plugins.__file__).parent == ROOT / "plugins"
