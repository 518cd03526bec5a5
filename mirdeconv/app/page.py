"""The Streamlit page: pick a model, a layer, features and a track; see and hear them."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict

import numpy as np
import streamlit as st

from ..errors import MirdeconvError
from . import logic

ALLOW_MODEL_UPLOAD = os.environ.get("MIRDECONV_ALLOW_MODEL_UPLOAD") == "1"


@st.cache_resource(show_spinner="Loading the model ...", max_entries=4)
def _model(model_id: str):
    return logic.open_model(model_id)


@st.cache_data(show_spinner=False, max_entries=8)
def _demo(name: str):
    return logic.demo_audio(name)


@st.cache_data(show_spinner=False, max_entries=8)
def _upload(data: bytes, filename: str):
    return logic.decode_upload(data, filename)


_LAYERS: OrderedDict = OrderedDict()   # (model, track content, layer, method, target) -> result
_LAYERS_LOCK = threading.Lock()
_LAYERS_MAX = 6


def _layer(model, model_id: str, track_key: str, y: np.ndarray, sr: int, layer: str,
           method: str, target: str, progress=None):
    """Every feature of a layer, computed once per key (a small LRU shared by sessions: the
    key holds the track's content hash, so nobody sees a result of a track they lack)."""
    key = (model_id, track_key, layer, method, target)
    with _LAYERS_LOCK:
        if key in _LAYERS:
            _LAYERS.move_to_end(key)
            return _LAYERS[key]
    result = logic.layer_result(model, y, sr, layer, method, target, progress)
    with _LAYERS_LOCK:
        _LAYERS[key] = result
        while len(_LAYERS) > _LAYERS_MAX:
            _LAYERS.popitem(last=False)
    return result


@st.cache_data(show_spinner=False, max_entries=32)
def _sound(model_id: str, track_key: str, layer: str, method: str, target: str, feature: int,
           reading: str, sign: str, output_sr: str, normalize: str, _result, _y, sr: int):
    audio, out_sr, _ = logic.feature_sound(_result, feature, _y, sr, reading=reading, sign=sign,
                                           output_sr=output_sr, normalize=normalize)
    fig = logic.feature_figure(_result, feature, audio, out_sr)
    return logic.wav_bytes(audio, out_sr), logic.figure_png(fig)


@st.cache_data(show_spinner=False, max_entries=4)
def _layer_sounds(model_id: str, track_key: str, layer: str, method: str, target: str,
                  reading: str, sign: str, output_sr: str, normalize: str, _result, _y, sr: int):
    return logic.layer_sounds(_result, _y, sr, reading=reading, sign=sign, output_sr=output_sr,
                              normalize=normalize)


@st.cache_data(show_spinner="Describing every feature ...", max_entries=8)
def _descriptors(model_id: str, track_key: str, layer: str, method: str, target: str,
                 reading: str, sign: str, _result, _y, sr: int):
    return logic.layer_descriptors(_result, _y, sr, reading=reading, sign=sign)


def _descriptor_table(rows):
    """The shown descriptors of some features, rounded, with readable column names."""
    cols = ["feature", "label", *logic.SHOWN_DESCRIPTORS]
    return rows[cols].rename(columns=logic.SHOWN_DESCRIPTORS).round(3)


@st.cache_data(show_spinner=False, max_entries=8)
def _predictions(model_id: str, track_key: str, _y, sr: int, _model):
    return logic.predictions(_model, _y, sr)


def _session_dir() -> str:
    """A temporary folder of this browser session (uploaded models), removed with it."""
    import tempfile

    if "tmpdir" not in st.session_state:
        st.session_state["tmpdir"] = tempfile.TemporaryDirectory(prefix="mirdeconv-session-")
    return st.session_state["tmpdir"].name


def _uploaded_model(sb):
    """An uploaded ``.keras`` (with a representation preset) or ``.pb`` + its ``.json``."""
    from pathlib import Path

    from ..representations import presets

    files = sb.file_uploader("Model files (.keras, or .pb + .json)", type=["keras", "pb", "json"],
                             accept_multiple_files=True, key="model_files")
    if not files:
        st.info("Upload a model to start.")
        st.stop()
    folder = Path(_session_dir())
    paths = []
    for f in files:  # only the base name of each upload is used, inside this session's folder
        p = folder / Path(f.name).name
        p.write_bytes(f.getvalue())
        paths.append(p)
    main = next((p for p in paths if p.suffix in (".keras", ".pb")), None)
    if main is None:
        raise MirdeconvError("upload the .keras or .pb file itself, not only a .json")
    rep = None
    if main.suffix == ".keras":
        rep = sb.selectbox("Input representation", list(presets()), key="model_rep")
    key = "upload-" + hashlib.sha256(main.read_bytes()).hexdigest()[:16] + (rep or "")
    if key not in st.session_state:
        st.session_state[key] = logic.open_model(str(main), representation=rep)
    return key, st.session_state[key]


def run() -> None:
    """Draw the page."""
    st.set_page_config(page_title="mirdeconv", layout="wide")
    st.title("mirdeconv: what does each feature map hear?")
    sb = st.sidebar

    # -- model ------------------------------------------------------------------------------
    choices = logic.model_choices()
    if ALLOW_MODEL_UPLOAD:
        choices.append("upload a model ...")
    model_id = sb.selectbox("Model", choices, index=0, key="model")
    try:
        if model_id == "upload a model ...":
            model_id, model = _uploaded_model(sb)
        else:
            model = _model(model_id)
    except MirdeconvError as exc:
        st.error(f"The model {model_id} could not be loaded: {exc}")
        st.stop()

    layers = model.layers
    spf = model.representation.seconds_per_frame
    labels = [f"{li.name} ({li.n_features} features, receptive field "
              f"{li.receptive_field[0] * spf:.2f} s)" for li in layers]
    li_index = sb.selectbox("Layer", range(len(layers)), format_func=lambda i: labels[i],
                            index=min(2, len(layers) - 1), key="layer")
    layer = layers[li_index]

    # -- track --------------------------------------------------------------------------------
    tracks = list(logic.DEMO_TRACKS)
    uploaded = sb.file_uploader("Upload a track", type=logic.UPLOAD_TYPES, key="upload")
    if uploaded is not None:
        tracks.insert(0, f"upload: {uploaded.name}")
    track = sb.selectbox("Track", tracks, key="track")
    try:
        if track.startswith("upload: ") and uploaded is not None:
            data = uploaded.getvalue()
            y, sr = _upload(data, uploaded.name)
            track_key = "upload-" + hashlib.sha256(data).hexdigest()[:16]
        else:
            y, sr = _demo(track)
            track_key = track
    except MirdeconvError as exc:
        st.error(f"The track could not be used: {exc}")
        st.stop()

    # -- method and features ------------------------------------------------------------------
    method = sb.selectbox("Method", ["deconvnet", "guided", "saliency"], key="method")
    target = sb.radio("Target", ["map", "max"], format_func=lambda t: {
        "map": "whole feature map", "max": "strongest unit"}[t], key="target", horizontal=True)
    with sb.expander("Auralisation"):
        reading = st.selectbox("Reading", ["mask", "magnitude"], key="reading")
        sign = st.selectbox("Sign", ["signed", "positive", "absolute"], key="sign")
        output_sr = st.selectbox("Output rate", ["track", "model"], key="output_sr")
        normalize = st.selectbox("Normalise", ["peak", "loudness", "none"], key="normalize")

    bar = st.progress(0.0, text=f"Deconvolving {layer.name} ...")
    try:
        result = _layer(model, model_id, track_key, y, sr, layer.name, method, target,
                        progress=lambda done, total: bar.progress(done / total))
    except MirdeconvError as exc:
        bar.empty()
        st.error(f"{layer.name} cannot be deconvolved for this track: {exc}")
        st.stop()
    bar.empty()

    mode = sb.radio("Features", ["one", "several", "the 8 most active"], key="fmode")
    if mode == "one":
        feats = [sb.number_input("Feature", 0, layer.n_features - 1, 0, key="feature")]
    elif mode == "several":
        feats = sb.multiselect("Features", list(range(layer.n_features)), default=[0, 1],
                               key="features")
    else:
        feats = logic.most_active(result, 8)

    tab_feature, tab_layer = st.tabs(["Features", "Layer"])
    sound = dict(reading=reading, sign=sign, output_sr=output_sr, normalize=normalize)
    desc = _descriptors(model_id, track_key, layer.name, method, target, reading, sign, result,
                        y, sr)
    onset_note = ("Onset F-measures compare with onsets librosa detected on this track "
                  "(it has no annotations).")
    with tab_feature:
        st.caption(f"{model.name} / {layer.name} / {method}, {target}  ({result.mode})")
        st.audio(logic.wav_bytes(y, sr))
        st.caption("original")
        for k in feats:
            i = result.features.index(int(k))
            if result.dead[i]:
                st.warning(f"Feature {k} never fires on this track (dead): its sound is silence.")
            wav, png = _sound(model_id, track_key, layer.name, method, target, int(k), reading,
                              sign, output_sr, normalize, result, y, sr)
            st.subheader(f"Feature {k}  (max activation {result.activation_max[i]:.3g}, "
                         f"{100 * result.fraction_active[i]:.0f} % active)")
            row = desc.iloc[[i]]
            st.markdown(f"**What it detects:** {row['label'].iloc[0]}")
            st.image(png, width="stretch")
            st.audio(wav)
            st.dataframe(_descriptor_table(row), hide_index=True)
        st.caption(onset_note)
        try:
            preds = _predictions(model_id, track_key, y, sr, model)
            st.write("Top predictions: " + ", ".join(f"{t} {s:.2f}" for t, s in preds))
        except MirdeconvError as exc:
            st.info(f"No predictions: {exc}")

    with tab_layer:
        wavs, grid = _layer_sounds(model_id, track_key, layer.name, method, target, reading,
                                   sign, output_sr, normalize, result, y, sr)
        order = np.argsort(-result.activation_max, kind="stable")
        st.caption(f"All {layer.n_features} features of {layer.name}, most active first; "
                   f"{int(result.dead.sum())} dead.")
        st.image(grid, width="stretch")
        st.markdown("**Labels** (a feature can carry several)")
        st.bar_chart(desc["tags"].explode().value_counts(), horizontal=True)
        st.dataframe(_descriptor_table(desc.iloc[order]), hide_index=True)
        st.caption(onset_note)
        cols = st.columns(4)
        for j, i in enumerate(order):
            k = result.features[i]
            with cols[j % 4]:
                if result.dead[i]:
                    st.markdown(f"feature {k}: **dead**")
                else:
                    st.markdown(f"feature {k}: max {result.activation_max[i]:.3g}  \n"
                                f"*{desc['primary'].iloc[i]}*")
                    st.audio(wavs[i])
        if st.button("Prepare the whole layer as a zip", key="zip"):
            data = logic.layer_zip(result, y, sr, **sound)
            st.download_button("Download zip", data, file_name=f"{layer.name}.zip",
                               mime="application/zip", key="download")
