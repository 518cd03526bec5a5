"""The house: new operations enter through the rule table, new model families through the
adapter registry (built-ins and entry points), and the engine keeps no state on models."""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest

import mirdeconv
from mirdeconv import adapters, engine
from mirdeconv.cli import main
from mirdeconv.errors import ModelLoadError, UnsupportedGraphError
from mirdeconv.representations import LinearSpectrogram

from .conftest import tone_track
from .references import saliency_of_unit

REP = LinearSpectrogram(sr=8000, n_fft=64, hop_length=32)   # 33 bins


def _flip_net(keras):
    keras.utils.set_random_seed(3)
    L = keras.layers
    inp = keras.Input((33, None, 1))
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="c")(inp)
    x = keras.ops.flip(x, axis=1)                       # a ReverseV2 along frequency
    return keras.Model(inp, L.MaxPooling2D(2, name="p")(x))


def test_a_new_operation_is_one_function_and_one_table_entry(keras):
    """ReverseV2 has no rule: refused with its name; one registered function makes it work."""
    net = _flip_net(keras)
    y = tone_track(8000, 1.0)
    with pytest.raises(UnsupportedGraphError, match="operation ReverseV2 .* cannot deconvolve"):
        mirdeconv.deconvolve(mirdeconv.load_model(net, representation=REP), y, 8000, layer="p")

    @engine.register("ReverseV2")
    def reverse(ctx, step):
        axes = [int(a) + 1 for a in np.ravel(ctx.graph.const_value(step.inputs[1]))]  # after F
        step.rule = lambda g, sv, F: [ctx.tf.reverse(g, axes)]

    try:
        m = mirdeconv.load_model(net, representation=REP)
        res = mirdeconv.deconvolve(m, y, 8000, layer="p", method="saliency", features=[1])
        want = saliency_of_unit(net, m, res, 1)
        np.testing.assert_allclose(res.masks[0], want, atol=1e-5 * np.abs(want).max())
    finally:
        engine.RULES.pop("ReverseV2")


def test_the_engine_keeps_its_programs_off_the_model(keras):
    """The model description holds no compiled state; the engine's cache lets it go, after a
    deconvolution and after a prediction through the graph."""
    import weakref

    from mirdeconv.engine import cache

    keras.utils.set_random_seed(5)
    inp = keras.Input((33, None, 1))
    x = keras.layers.MaxPooling2D(2, name="q")(
        keras.layers.Conv2D(2, 3, padding="same", activation="relu")(inp))
    out = keras.layers.Dense(3, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(x))
    m = mirdeconv.load_model(keras.Model(inp, out), representation=REP)
    y = tone_track(8000, 1.0)
    mirdeconv.deconvolve(m, y, 8000, layer="q")
    act, labels, how = mirdeconv.predict(m, y, 8000)
    assert act.shape == (1, 3) and how == "the frozen graph"
    assert not any(k.startswith("_prog") for k in vars(m))
    assert cache.cached_count(m) == 2            # the layer's program and the prediction's graph
    n = len(cache._PROGRAMS)
    ref = weakref.ref(m)
    del m
    gc.collect()
    assert ref() is None and len(cache._PROGRAMS) == n - 1     # its programs went with it


TINY_ADAPTER = '''
import keras
import mirdeconv
from mirdeconv.adapters import ModelAdapter
from mirdeconv.representations import LinearSpectrogram


class TinyAdapter(ModelAdapter):
    """Opens "*.tiny" files: the number of maps of a one-layer net, in text."""

    name = "tiny"
    priority = 50

    def guess_can_open(self, source):
        return str(source).endswith(".tiny")

    def open(self, source, **options):
        maps = int(open(source).read())
        inp = keras.Input((33, 40, 1))
        x = keras.layers.Conv2D(maps, 3, padding="same", activation="relu", name="c")(inp)
        net = keras.Model(inp, keras.layers.MaxPooling2D(2, name="p")(x))
        return mirdeconv.load_model(net, representation=LinearSpectrogram(sr=8000, n_fft=64,
                                    hop_length=32), name="tiny")
'''


def test_an_adapter_from_an_entry_point(tmp_path, monkeypatch, keras, capsys):
    site = tmp_path / "site"
    info = site / "tiny_adapter-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-adapter\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[mirdeconv.adapters]\ntiny = tiny_adapter:TinyAdapter\nbroken = tiny_adapter:Missing\n")
    (site / "tiny_adapter.py").write_text(TINY_ADAPTER)
    monkeypatch.syspath_prepend(str(site))
    try:
        found = adapters.refresh_adapters()
        assert list(found) == ["keras", "essentia", "pytorch", "onnx", "tiny", "pb"]
        assert "broken" in adapters.adapter_errors()
        (tmp_path / "net.tiny").write_text("5")
        m = mirdeconv.load_model(tmp_path / "net.tiny")
        assert m.name == "tiny" and m.layer("p").n_features == 5
        with pytest.raises(ModelLoadError, match="no model adapter named 'caffe'; adapters: keras, "
                                                 "essentia, pytorch, onnx, tiny, pb"):
            mirdeconv.load_model(tmp_path / "net.tiny", adapter="caffe")
        assert main(["plugins"]) == 0
        out = capsys.readouterr().out
        assert "adapters: keras, essentia, pytorch, onnx, tiny, pb" in out and "adapter broken: error" in out
    finally:
        monkeypatch.undo()
        sys.modules.pop("tiny_adapter", None)
        adapters.refresh_adapters()
    assert "tiny" not in adapters.list_adapters()


def test_the_adapter_can_be_named(tmp_path):
    """A bare graph beside a JSON opens as Essentia's by default; adapter="pb" ignores the JSON."""
    from .conftest import shared_file

    pb = shared_file("models/essentia/genre_dortmund_musicnn_msd.pb")
    bare = mirdeconv.load_model(pb)
    assert bare.family == "pb" and bare.algorithm == "TensorflowPredictMusiCNN"
    assert mirdeconv.load_model(pb, adapter="essentia").family == "essentia"


def test_every_package_is_in_the_wheel_list():
    """pyproject.toml lists the packages (plugins/ is installed under another name)."""
    import tomllib

    from .conftest import ROOT

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "mirdeconv").rglob("__init__.py")}
    found |= {"mirdeconv_plugins" + "".join("." + x for x in p.parent.relative_to(ROOT / "plugins").parts)
              for p in (ROOT / "plugins").rglob("__init__.py")}
    assert listed == found


def test_no_name_hides_a_module():
    """A package's attribute of a submodule's name is that submodule (``mirdeconv.auralise``
    was a module made callable; functions now have names of their own)."""
    import importlib
    import pkgutil

    for pkg_name in ("mirdeconv", "mirdeconv.engine", "mirdeconv.engine.rules", "mirdeconv.analysis",
                     "mirdeconv.graph", "mirdeconv.adapters", "mirdeconv.app", "mirdeconv.cli",
                     "mirdeconv.explanations", "mirdeconv.sanity"):
        pkg = importlib.import_module(pkg_name)
        for info in pkgutil.iter_modules(pkg.__path__):
            if info.name in ("main", "__main__"):   # scripts: they run when imported
                continue
            module = importlib.import_module(f"{pkg_name}.{info.name}")
            assert getattr(pkg, info.name) is module, f"{pkg_name}.{info.name}"
