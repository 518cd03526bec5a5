"""One options object per concern: choices, defaults and validation in one place; the
command line's flags and help generated from them; the environment read in one place."""

from __future__ import annotations

import dataclasses
import inspect
import time
from pathlib import Path

import pytest

import mirdeconv
from mirdeconv import options
from mirdeconv.cli import build_parser
from mirdeconv.errors import FeatureIndexError, InvalidOptionError
from mirdeconv.options import METHODS, DeconvOptions, SoundOptions, environment, parse_features, parse_size


def test_methods_are_data():
    """Deconvnet, guided backprop and saliency differ only in two flags (as in captum)."""
    assert {m.name: (m.rectify, m.derivative) for m in METHODS.values()} == {
        "deconvnet": (True, False), "guided": (True, True), "saliency": (False, True)}
    assert [m.formula for m in METHODS.values()] == ["relu(g)", "relu(g) * f'(x)", "g * f'(x)"]
    assert DeconvOptions(method="guided").method_row is METHODS["guided"]


@pytest.mark.parametrize("cls,field,bad", [
    (DeconvOptions, "method", "lrp"), (DeconvOptions, "target", "mean"),
    (DeconvOptions, "mode", "fast"), (DeconvOptions, "precision", "float16"),
    (SoundOptions, "reading", "power"), (SoundOptions, "sign", "clip"),
    (SoundOptions, "output_sr", "44100"), (SoundOptions, "normalize", "rms"),
    (SoundOptions, "format", "mp3"),
])
def test_every_choice_is_validated_with_its_choices(cls, field, bad):
    table = next(f for f in dataclasses.fields(cls) if f.name == field).metadata["choices"]
    with pytest.raises(InvalidOptionError, match=f"{field} must be one of {', '.join(table)}; got '{bad}'"):
        cls(**{field: bad})


def test_memory_budget_one_default_everywhere(monkeypatch):
    monkeypatch.delenv("MIRDECONV_MEMORY", raising=False)
    ram = options.machine_memory()
    assert DeconvOptions().budget == options.DEFAULT_MEMORY == options.default_memory(ram)
    if ram and ram >= 20 << 30:
        assert options.DEFAULT_MEMORY == 4 << 30                       # these machines (24 GB)
    assert options.default_memory(8 << 30) == 1536 << 20               # a fifth, 256 MiB steps
    assert options.default_memory(1 << 30) == 512 << 20                # at least 512 MiB
    assert options.default_memory(64 << 30) == 4 << 30                 # at most 4 GiB
    monkeypatch.setenv("MIRDECONV_MEMORY", "512M")
    assert DeconvOptions().budget == 512 << 20
    assert DeconvOptions(memory=1 << 30).budget == 1 << 30          # given beats the environment
    assert DeconvOptions(memory="1G") == DeconvOptions(memory=1 << 30)
    with pytest.raises(InvalidOptionError, match="memory must be a positive number of bytes"):
        DeconvOptions(memory=0)
    monkeypatch.setenv("MIRDECONV_MEMORY", "lots")
    with pytest.raises(InvalidOptionError, match="MIRDECONV_MEMORY: cannot read the size 'lots'"):
        _ = DeconvOptions().budget


def test_parse_size():
    assert parse_size("2G") == parse_size("2GiB") == parse_size("2 gb") == 2 << 30
    assert parse_size("1.5k") == 1536 and parse_size(4096) == 4096
    for bad in ("", "-1G", "0", "two"):
        with pytest.raises(InvalidOptionError):
            parse_size(bad)


def test_the_public_functions_show_their_real_signatures():
    for fn in (mirdeconv.deconvolve, mirdeconv.auralise, mirdeconv.analyse):
        params = inspect.signature(fn).parameters
        assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), fn
        assert params["method"].default == "deconvnet" and params["options"].default is None
    sig = inspect.signature(mirdeconv.auralise).parameters
    assert sig["normalize"].default == "peak" and sig["sound"].default is None
    assert mirdeconv.auralise.__module__ == "mirdeconv.auralisation"     # a function, not a module


def test_options_and_keywords_do_not_contradict(keras):
    from mirdeconv.representations import LinearSpectrogram

    from .conftest import tone_track

    inp = keras.Input((33, 20, 1))
    x = keras.layers.MaxPooling2D(2, name="p")(keras.layers.Conv2D(2, 3, padding="same",
                                                                    activation="relu")(inp))
    m = mirdeconv.load_model(keras.Model(inp, x),
                             representation=LinearSpectrogram(sr=8000, n_fft=64, hop_length=32))
    y = tone_track(8000, 1.0)
    a = mirdeconv.deconvolve(m, y, 8000, layer="p", options=DeconvOptions(method="guided"))
    b = mirdeconv.deconvolve(m, y, 8000, layer="p", method="guided")
    assert a.options == b.options and a.method == "guided"
    assert (a.masks == b.masks).all()
    with pytest.raises(InvalidOptionError, match="give target either as keyword or in the DeconvOptions"):
        mirdeconv.deconvolve(m, y, 8000, layer="p", target="max", options=DeconvOptions())
    with pytest.raises(InvalidOptionError, match="expected a model opened with mirdeconv.load_model"):
        mirdeconv.deconvolve("net.keras", y, 8000, layer="p")


def test_feature_selection_is_checked_before_any_range_is_built():
    t0 = time.perf_counter()
    with pytest.raises(FeatureIndexError, match="feature index 99999999999999999999 is out of range"):
        parse_features("0-99999999999999999999", 64)
    with pytest.raises(FeatureIndexError, match="feature index 300000000 is out of range"):
        parse_features("0-300000000", 64)
    assert time.perf_counter() - t0 < 1.0        # nothing was materialised
    with pytest.raises(InvalidOptionError, match="cannot read '3-1' in the feature selection '3-1'"):
        parse_features("3-1", 8)


def test_cli_flags_and_help_come_from_the_tables(capsys):
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices
    for command, classes in (("deconvolve", [DeconvOptions]), ("auralise", [DeconvOptions, SoundOptions])):
        flags = {a.dest: a for a in sub[command]._actions}
        for cls in classes:
            for f in dataclasses.fields(cls):
                table = f.metadata.get("choices")
                assert flags[f.name].default == f.default
                if table is not None:
                    assert flags[f.name].choices == list(table)
    with pytest.raises(SystemExit):
        parser.parse_args(["auralise", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "guided: guided backprop (Springenberg et al.)" in text
    assert "50 % overlap" in text and "loudness: -23 LUFS" in text
    args = parser.parse_args(["auralise", "m.keras", "t.wav", "-o", "out", "--memory", "1G",
                              "--sign", "absolute"])
    from mirdeconv.cli import options_from_args

    assert options_from_args(DeconvOptions, args) == DeconvOptions(memory=1 << 30)
    assert options_from_args(SoundOptions, args) == SoundOptions(sign="absolute")


def test_environment_is_read_in_one_place(tmp_path):
    env = environment({"MIRDECONV_CACHE": str(tmp_path), "MIRDECONV_PLUGIN_PATH": f"{tmp_path}:/x",
                       "MIRDECONV_ALLOW_MODEL_UPLOAD": "1", "MIRDECONV_VERBOSE": "yes",
                       "MIRDECONV_MEMORY": "3G", "MIRDECONV_MUSICNN_WHEEL": ""})
    assert env.cache == tmp_path and env.plugin_path == (tmp_path, Path("/x"))
    assert env.allow_model_upload and env.verbose and env.memory == "3G"
    assert env.musicnn_wheel is None
    assert environment({}) == options.Environment()


def test_only_options_reads_the_environment():
    """No other module of the library reads os.environ or getenv."""
    import re

    root = Path(mirdeconv.__file__).parent
    read = re.compile(r"os\.environ(\.get\(|\[)|getenv")
    readers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if read.search(p.read_text()))
    assert readers == ["options.py"]


def test_a_bad_memory_variable_is_refused_only_where_it_is_used(monkeypatch, capsys, keras):
    from mirdeconv.cli import main
    from mirdeconv.representations import LinearSpectrogram

    from .conftest import tone_track

    monkeypatch.setenv("MIRDECONV_MEMORY", "lots")
    assert main(["zoo", "list"]) == 0                      # nothing here needs a budget
    inp = keras.Input((33, 20, 1))
    x = keras.layers.MaxPooling2D(2, name="p")(keras.layers.Conv2D(2, 3, padding="same")(inp))
    rep = LinearSpectrogram(sr=8000, n_fft=64, hop_length=32)
    m = mirdeconv.load_model(keras.Model(inp, x), representation=rep)
    with pytest.raises(InvalidOptionError, match="cannot read the size 'lots'"):
        mirdeconv.deconvolve(m, tone_track(8000, 1.0), 8000, layer="p")


def test_unknown_model_options_and_foreign_tracks_are_refused(keras):
    from mirdeconv.representations import LinearSpectrogram, choi2016_stft

    from .conftest import tone_track

    inp = keras.Input((33, 20, 1))
    x = keras.layers.MaxPooling2D(2, name="p")(keras.layers.Conv2D(2, 3, padding="same")(inp))
    rep = LinearSpectrogram(sr=8000, n_fft=64, hop_length=32)
    with pytest.raises(InvalidOptionError, match="the keras adapter takes no option 'lables' "
                                                 r"\(did you mean 'labels'\?\); it takes allow_unsafe"):
        mirdeconv.load_model(keras.Model(inp, x), representation=rep, lables=["a"])
    m = mirdeconv.load_model(keras.Model(inp, x), representation=rep)
    assert len(repr(m)) < 1000 and "input_axes='NFTC'" in repr(m)     # not the whole graph
    other = choi2016_stft().prepare(tone_track(11025, 1.0), 11025)
    with pytest.raises(InvalidOptionError, match="the track was prepared with stft 257 bands"):
        mirdeconv.deconvolve(m, layer="p", track=other)
