"""One registry mechanism for the model adapters and the plugins (issue 31): one read of the
installed packages for both entry-point groups, one refresh, an adapter given by name or by
class, an adapter's options read from its ``open`` signature."""

from __future__ import annotations

import importlib.metadata
import sys

import pytest

import mirdeconv
from mirdeconv import adapters, entrypoints, registry
from mirdeconv.adapters import ModelAdapter, open_options
from mirdeconv.adapters.keras import KerasAdapter
from mirdeconv.errors import InvalidOptionError, ModelLoadError


class Opened:
    """What the test adapters' ``open`` returns: the call, for the test to read."""

    def __init__(self, adapter, source, **options):
        self.adapter, self.source, self.options = adapter, source, options


class GainAdapter(ModelAdapter):
    """An adapter nobody registered, with one option of its own."""

    name = "gain"

    def guess_can_open(self, source):
        return False

    def open(self, source, *, representation=None, gain=1.0):
        return Opened(self, source, representation=representation, gain=gain)


class GainAndBiasAdapter(GainAdapter):
    """A new keyword in ``open`` is a new option: nothing else to keep up to date."""

    name = "gain_bias"

    def open(self, source, *, representation=None, gain=1.0, bias=0.0, **rest):
        return Opened(self, source, gain=gain, bias=bias, **rest)


@pytest.fixture
def fresh():
    """Forget every discovery before and after (the test may change what is installed)."""
    entrypoints.refresh()
    yield
    entrypoints.refresh()


def test_one_discovery_for_both_groups(monkeypatch, fresh):
    """The installed packages are read once for adapters and plugins; each entry point is
    loaded once, however often either registry is asked."""
    reads, loads = [], []
    # the class of the entry points as this Python reads them (another package imported in
    # the same run may hand out its own EntryPoint class)
    point = type(entrypoints.entry_points()["mirdeconv.adapters"][0])
    entrypoints.refresh()
    distributions, load = importlib.metadata.distributions, point.load
    monkeypatch.setattr(importlib.metadata, "distributions",
                        lambda *a, **k: reads.append(1) or distributions(*a, **k))

    def counted(ep):
        loads.append((ep.group, ep.name))
        return load(ep)

    monkeypatch.setattr(point, "load", counted)
    for _ in range(3):
        assert "keras" in adapters.list_adapters() and adapters.adapter_errors() == {}
        assert "musicnn" in {i.name for i in registry.discover()}
        assert adapters.get_adapter("pb").name == "pb"
        assert "choi2016:music_tagger_cnn" in registry.models()
    assert len(reads) == 1
    assert sorted(loads) == sorted(set(loads))                        # each once
    assert {g for g, _ in loads} == {"mirdeconv.adapters", "mirdeconv.plugins"}
    assert {n for g, n in loads if g == "mirdeconv.adapters"} == {
        "keras", "essentia", "pb", "onnx", "pytorch"}
    adapters.refresh_adapters()                # one refresh reads both groups again
    registry.discover()
    assert len(reads) == 2
    assert sorted(loads) == sorted(2 * sorted(set(loads)))


ADAPTER_PACKAGE = '''
from mirdeconv.adapters import ModelAdapter


class LateAdapter(ModelAdapter):
    name = "late"
    priority = 5

    def guess_can_open(self, source):
        return str(source).endswith(".late")

    def open(self, source, *, representation=None, scale=1):
        return ("late", str(source)[-6:], scale)
'''


def test_refresh_finds_a_newly_installed_adapter(tmp_path, monkeypatch, fresh):
    site = tmp_path / "site"
    info = site / "late_adapter-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: late-adapter\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[mirdeconv.adapters]\nlate = late_adapter:LateAdapter\n")
    (site / "late_adapter.py").write_text(ADAPTER_PACKAGE)
    assert "late" not in adapters.list_adapters()
    monkeypatch.syspath_prepend(str(site))
    try:
        assert "late" not in adapters.list_adapters()              # discovery is cached ...
        registry.refresh()                                         # ... one refresh for both
        assert list(adapters.list_adapters())[0] == "late"        # the lowest priority first
        (tmp_path / "net.late").write_text("")
        assert mirdeconv.load_model(tmp_path / "net.late", scale=3) == ("late", "t.late", 3)
        with pytest.raises(InvalidOptionError, match=r"the late adapter takes no option 'scal' "
                                                     r"\(did you mean 'scale'\?\); it takes scale"):
            mirdeconv.load_model(tmp_path / "net.late", scal=3)
    finally:
        monkeypatch.undo()
        sys.modules.pop("late_adapter", None)
        adapters.refresh_adapters()
    assert "late" not in adapters.list_adapters()


def test_an_adapter_class_is_accepted():
    """``adapter=`` takes a class, registered or not, or an instance, as xarray's engine=."""
    opened = mirdeconv.load_model({"weights": 1}, adapter=GainAdapter, gain=2.0)
    assert isinstance(opened, Opened) and isinstance(opened.adapter, GainAdapter)
    assert opened.source == {"weights": 1} and opened.options["gain"] == 2.0
    mine = GainAdapter()
    assert mirdeconv.load_model(object(), adapter=mine).adapter is mine
    assert adapters.get_adapter(KerasAdapter) is adapters.list_adapters()["keras"]  # the registered one
    assert adapters.get_adapter("keras") is adapters.list_adapters()["keras"]
    with pytest.raises(InvalidOptionError, match="adapter= takes an adapter's name or a "
                                                 "mirdeconv.adapters.ModelAdapter subclass, not int"):
        mirdeconv.load_model(object(), adapter=3)
    with pytest.raises(InvalidOptionError, match="cannot use adapter class ModelAdapter"):
        mirdeconv.load_model(object(), adapter=ModelAdapter)      # abstract


def test_options_come_from_the_open_signature():
    assert open_options(GainAdapter) == GainAdapter().options == ("gain",)
    assert GainAndBiasAdapter().options == ("gain", "bias")           # **rest adds none
    opened = mirdeconv.load_model(object(), adapter=GainAndBiasAdapter, bias=0.5)
    assert opened.options == {"gain": 1.0, "bias": 0.5}
    with pytest.raises(InvalidOptionError, match=r"the gain_bias adapter takes no option 'bais' "
                                                 r"\(did you mean 'bias'\?\), 'zoom'; it takes "
                                                 r"gain, bias \(and load_model's own"):
        mirdeconv.load_model(object(), adapter=GainAndBiasAdapter, bais=0.5, zoom=2)
    # mirdeconv's own adapters: what each open takes, nothing hand-kept beside it
    assert adapters.get_adapter("keras").options[:3] == ("allow_unsafe", "input_axes", "labels")
    assert "example_input" in adapters.get_adapter("pytorch").options
    assert adapters.get_adapter("pb").options == adapters.get_adapter("essentia").options
    assert "metadata" in adapters.get_adapter("pb").options


def test_unknown_names_get_the_closest():
    with pytest.raises(ModelLoadError, match=r"no model adapter named 'kears' \(did you mean "
                                             r"'keras'\?\); adapters: keras, essentia"):
        mirdeconv.load_model(object(), adapter="kears")
    with pytest.raises(ModelLoadError, match=r"no plugin named 'musicn' \(did you mean "
                                             r"'musicnn'\?\); plugins: "):
        mirdeconv.load_model("musicn:mtt-vgg")
