"""The app's page logic with streamlit.testing (AppTest), and its computations."""

from __future__ import annotations

import numpy as np
import pytest

from mirdeconv.app import logic
from mirdeconv.errors import SilentAudioError, UnsupportedAudioError

from .conftest import ROOT, tone_track


@pytest.fixture
def app(zoo_cache):
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=600)


def _texts(at) -> list[str]:
    return [m.value for m in at.subheader] + [c.value for c in at.caption]


@pytest.mark.slow
def test_app_opens_with_a_result_and_pickers_change_it(app):
    at = app.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="model").value == logic.DEFAULT_MODEL
    first = _texts(at)
    assert any(t.startswith("Feature 0") for t in first)
    assert any("mtt-vgg / 3CNN / deconvnet, map" in t for t in first)
    detects = [m.value for m in at.markdown if m.value.startswith("**What it detects:**")]
    assert len(detects) == 1 and len(detects[0]) > len("**What it detects:** ")
    table = at.dataframe[0].value                                   # the feature's descriptors
    assert list(table["feature"]) == [0] and "onset F" in table.columns
    assert len(at.dataframe) == 1                                   # the layer waits ...
    at.toggle(key="whole_layer").set_value(True).run()              # ... until asked for
    layer_table = at.dataframe[1].value                             # every feature of the layer
    assert len(layer_table) == 128 and layer_table["label"].map(len).min() > 0
    assert any("librosa detected" in c.value for c in at.caption)
    at.selectbox(key="layer").set_value(0).run()
    assert any("mtt-vgg / 1CNN" in t for t in _texts(at)) and not at.exception
    at.number_input(key="feature").set_value(7).run()
    assert any(t.startswith("Feature 7") for t in _texts(at))
    at.radio(key="fmode").set_value("the 8 most active").run()
    assert sum(t.startswith("Feature ") for t in _texts(at)) == 8 and not at.exception
    at.selectbox(key="method").set_value("guided").run()
    assert any("1CNN / guided, map" in t for t in _texts(at)) and not at.exception


@pytest.mark.slow
def test_a_model_that_fails_to_load_shows_an_error(app, monkeypatch):
    monkeypatch.delenv("MIRDECONV_CHOI2016_WEIGHTS", raising=False)
    at = app.run()
    at.selectbox(key="model").set_value("choi2016:music_tagger_cnn").run()
    assert not at.exception
    assert any("could not be loaded" in e.value and "MIRDECONV_CHOI2016_WEIGHTS" in e.value
               for e in at.error)
    at.selectbox(key="model").set_value(logic.DEFAULT_MODEL).run()   # and the app goes on
    assert not at.error and not at.exception


def test_one_upload_limit():
    import tomllib

    from mirdeconv.options import UPLOAD_LIMIT_MB

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == UPLOAD_LIMIT_MB


def test_uploads_are_decoded_or_refused_clearly(tmp_path):
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, tone_track(22050, 2.0), 22050, format="FLAC")
    y, sr = logic.decode_upload(buf.getvalue(), "song.flac")
    assert sr == 22050 and y.shape == (44100,)
    with pytest.raises(UnsupportedAudioError, match="cannot decode song.ogg"):
        logic.decode_upload(b"OggS" + bytes(500), "song.ogg")
    with pytest.raises(UnsupportedAudioError, match="upload a wav, flac, ogg, mp3 file"):
        logic.decode_upload(b"x", "notes.txt")
    silent = io.BytesIO()
    sf.write(silent, np.zeros(8000, np.float32), 8000, format="WAV")
    with pytest.raises(SilentAudioError, match="quiet.wav: audio is silent"):
        logic.decode_upload(silent.getvalue(), "quiet.wav")
    import tempfile
    from pathlib import Path

    assert not list(Path(tempfile.gettempdir()).glob("mirdeconv-upload-*"))  # removed at once


def _stft_net(keras, n_features: int, seed: int):
    """A conv + pool net ("p", ``n_features`` features) on Choi's STFT, and a 3-s tone."""
    import mirdeconv
    from mirdeconv.representations import choi2016_stft

    keras.utils.set_random_seed(seed)
    L = keras.layers
    inp = keras.Input((257, 64, 1))
    x = L.MaxPooling2D(2, name="p")(L.Conv2D(n_features, 3, padding="same",
                                             activation="relu")(inp))
    return (mirdeconv.load_model(keras.Model(inp, x), representation=choi2016_stft()),
            tone_track(11025, 3.0))


def test_most_active_and_zip(keras):
    import io
    import zipfile

    import mirdeconv

    m, y = _stft_net(keras, 6, seed=1)
    res = logic.layer_result(m, y, 11025, "p", mirdeconv.DeconvOptions())
    top = logic.most_active(res, 3)
    assert top == [int(k) for k in np.argsort(-res.activation_max, kind="stable")[:3]]
    desc = logic.layer_descriptors(res, y, 11025)
    assert list(desc["feature"]) == res.features and set(desc["onsets_from"]) == {"librosa"}
    from mirdeconv.analysis import label

    assert [label(r)[0] for r in desc.to_dict("records")] == list(desc["label"])
    assert set(logic.SHOWN_DESCRIPTORS) <= set(desc.columns)
    aur = logic.layer_auralisation(res, y, 11025)
    wavs, grid = logic.layer_sounds(aur)
    assert len(wavs) == 6 and grid.startswith(b"\x89PNG")
    data = logic.layer_zip(aur)                       # the same sound, not auralised again
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert sorted(zf.namelist()) == sorted(["p/grid.png", "p/index.csv"] +
                                           [f"p/f{k:03d}.wav" for k in range(6)])
    assert zf.read("p/f003.wav") == wavs[3]
    rows = zf.read("p/index.csv").decode().splitlines()
    assert rows[0].startswith("feature,dead") and rows[4].endswith(",p/f003.wav")


@pytest.mark.slow
def test_operator_can_allow_model_uploads(zoo_cache, monkeypatch):
    """With MIRDECONV_ALLOW_MODEL_UPLOAD=1 the model picker offers an upload; without a file
    the page asks for one (AppTest cannot upload files; the loading path is load_model's)."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MIRDECONV_ALLOW_MODEL_UPLOAD", "1")
    import importlib

    import mirdeconv.app.page as page

    importlib.reload(page)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=600).run()
    assert "upload a model ..." in at.selectbox(key="model").options
    at.selectbox(key="model").set_value("upload a model ...").run()
    assert not at.exception and any("Upload a model" in i.value for i in at.info)
    monkeypatch.delenv("MIRDECONV_ALLOW_MODEL_UPLOAD")
    importlib.reload(page)


def test_uploads_are_limited_by_duration(tmp_path, monkeypatch):
    """Checked from the header before decoding; the limit comes from MIRDECONV_UPLOAD_MINUTES
    (default 10) and the message names it."""
    import io

    import soundfile as sf

    from mirdeconv.errors import AudioTooLongError, InvalidOptionError

    buf = io.BytesIO()
    sf.write(buf, tone_track(8000, 6.0), 8000, format="WAV")
    assert logic.upload_minutes() == 10.0
    assert logic.decode_upload(buf.getvalue(), "six.wav")[0].shape == (48000,)
    monkeypatch.setenv("MIRDECONV_UPLOAD_MINUTES", "0.05")          # 3 s
    with pytest.raises(AudioTooLongError, match=r"six.wav is 0.1 minutes long; the app takes "
                                                r"tracks up to 0.05 minutes"):
        logic.decode_upload(buf.getvalue(), "six.wav")
    monkeypatch.setenv("MIRDECONV_UPLOAD_MINUTES", "ten")
    with pytest.raises(InvalidOptionError, match="MIRDECONV_UPLOAD_MINUTES must be a positive"):
        logic.upload_minutes()


def test_demo_results_are_kept_on_disk_between_runs(keras, tmp_path, monkeypatch):
    """A demo track's result is written once as plain arrays (no pickles) and read back the
    next time (a fresh server) equal, without deconvolving again and without opening the
    model (its view comes from the disk too); other features, options or tracks are other
    entries."""
    from mirdeconv.app.model_view import model_view

    monkeypatch.setenv("MIRDECONV_CACHE", str(tmp_path))
    m, y = _stft_net(keras, 5, seed=2)
    first = logic.demo_layer_result(model_view("test:net", lambda: m), "demo: a tone", y, 11025,
                                    "p", features=(1, 3))
    files = list((tmp_path / "app-results").glob("*.npz"))
    assert len(files) == 1 and not np.load(files[0], allow_pickle=False)["masks"].dtype.hasobject

    def no_work(*a, **k):
        raise AssertionError("deconvolved again")

    def no_model():
        raise AssertionError("opened the model")

    monkeypatch.setattr(logic, "deconvolve", no_work)
    view = model_view("test:net", no_model)                # a fresh server: from the disk
    assert view.layers == m.layers and view.name == m.name
    assert view.digest == m.graph.content_digest() and view.representation == m.representation
    again = logic.demo_layer_result(view, "demo: a tone", y, 11025, "p", features=(1, 3))
    assert again.features == [1, 3] and again.layer == first.layer and again.mode == first.mode
    for k in ("masks", "dead", "activation_max", "activations", "dead_reason"):
        np.testing.assert_array_equal(getattr(again, k), getattr(first, k))
    with pytest.raises(AssertionError, match="opened the model"):
        logic.demo_layer_result(view, "demo: a tone", y, 11025, "p", features=(2,))


def test_a_kept_model_view_that_is_no_longer_true_is_replaced(keras, tmp_path, monkeypatch):
    """The view is checked once the model itself is open: a model that changed under the
    same id (a plugin's file replaced) replaces it in memory and on disk, once (the page
    redraws once), also when the disk cannot be written."""
    from mirdeconv.app.model_view import model_view

    monkeypatch.setenv("MIRDECONV_CACHE", str(tmp_path))
    m, _ = _stft_net(keras, 5, seed=2)
    other, _ = _stft_net(keras, 3, seed=4)
    same = model_view("test:net", lambda: m)
    assert same.model is m and not same.redraw()
    stale = model_view("test:net", lambda: other)
    assert stale.layers == m.layers and stale.model is other
    assert stale.layers == other.layers and stale.digest == other.graph.content_digest()
    assert stale.redraw() and not stale.redraw()
    assert model_view("test:net", lambda: other).layers == other.layers     # on disk too
    import mirdeconv.store

    def read_only(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(mirdeconv.store, "atomic_path", read_only)
    view = model_view("test:net", lambda: m)           # stale again, and the disk read-only
    assert view.model is m and view.layers == m.layers and view.redraw()
    assert not view.redraw()                            # no endless redraws
    assert model_view("test:net", lambda: m).layers == other.layers    # the disk kept the old


@pytest.mark.slow
def test_tags_view_explains_a_tag_and_runs_the_sanity_check(app, monkeypatch):
    """The Tags tab: the track's top tags, one explained (picture, the explanation's and its
    complement's players, the faithfulness table in both domains), another method, and the
    sanity check one click away, read back from the disk on the second click."""
    from mirdeconv.app import tags
    from mirdeconv.zoo import cache_dir as zoo_cache_dir

    monkeypatch.setattr(tags, "APP_SANITY", {"seconds": 6.0, "methods": ["saliency", "guided"],
                                             "top": 2, "selectivity_top": 2})
    at = app.run()
    at.toggle(key="tags_on").set_value(True).run()
    assert not at.exception and not at.error
    options = at.selectbox(key="tag").options
    assert len(options) == tags.TOP_TAGS and all("(" in o for o in options)
    caption = next(c.value for c in at.caption if "averaged over" in c.value)
    assert caption.startswith("mtt-vgg: ") and "saliency" in caption
    table = at.dataframe[-1].value                           # the faithfulness table
    assert list(table["domain"]) == ["model input", "re-synthesised audio"]
    assert {"AI", "AD", "AG", "FF", "Fid-In", "deletion", "insertion (random)"} <= set(table.columns)
    assert ((table["p"] > 0) & (table["p"] < 1)).all()
    assert any("Its complement" in m.value for m in at.markdown)
    at.selectbox(key="tag").set_value(1).run()
    second = options[1].rsplit(" (", 1)[0]
    assert any(c.value.startswith(f"mtt-vgg: {second}, logit") for c in at.caption)
    at.selectbox(key="xmethod").set_value("gradcam").run()      # at the sidebar's layer
    assert any("gradcam at 3CNN" in c.value for c in at.caption) and not at.exception
    assert at.button(key="sanity").label.startswith("Run the sanity check")
    at.button(key="sanity").click().run()
    assert not at.exception and not at.error
    from mirdeconv.sanity import load_report

    reports = sorted((zoo_cache_dir() / "sanity").glob("*/sanity.json"),
                     key=lambda p: p.stat().st_mtime)
    assert reports and (reports[-1].parent / "sanity.png").is_file()    # kept on disk, whole
    passes = load_report(reports[-1]).verdicts()["explanation"]
    ok = ", ".join(m for m in ("saliency", "guided") if passes[m]) or "none"
    verdicts = [m.value for m in at.markdown if m.value.startswith("**Explanations:**")]
    assert len(verdicts) == 1 and verdicts[0].startswith(f"**Explanations:** pass: {ok}; fail:")
    assert any("## Selectivity of the auralisations" in m.value for m in at.markdown)
    at.run()
    assert at.button(key="sanity").label.startswith("Show the sanity check (kept")


def test_explain_pickers_come_from_the_method_table(monkeypatch):
    """The Tags view's method and output pickers are generated from ExplainOptions: a method
    added as one row of ATTRIBUTIONS is offered; the default is ExplainOptions'; the sidebar's
    layer is kept only by a method that takes one."""
    from streamlit.testing.v1 import AppTest

    from mirdeconv.explanations import ATTRIBUTIONS, Attribution, ExplainOptions

    monkeypatch.setitem(ATTRIBUTIONS, "doubled", Attribution(
        "doubled", "saliency", "twice the plain gradient (a test's row)", weight=lambda x, b: 2.0))

    def page():
        import streamlit as st

        from mirdeconv.app.tags_view import explain_pickers

        opts = explain_pickers(st.columns(2), "3CNN")
        st.caption(f"{opts.method} {opts.output} {opts.layer}")

    at = AppTest.from_function(page).run()
    assert not at.exception
    assert at.selectbox(key="xmethod").options == list(ATTRIBUTIONS)
    assert "doubled" in at.selectbox(key="xmethod").options
    assert at.selectbox(key="xmethod").value == ExplainOptions().method
    assert at.radio(key="xoutput").options == ["logit", "probability"]
    assert at.caption[0].value == "saliency logit None"        # saliency takes no layer
    at.selectbox(key="xmethod").set_value("gradcam").run()
    assert at.caption[0].value == "gradcam logit 3CNN"
    at.selectbox(key="xmethod").set_value("doubled").run()
    at.radio(key="xoutput").set_value("probability").run()
    assert at.caption[0].value == "doubled probability None" and not at.exception
