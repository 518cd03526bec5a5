"""The Streamlit page: pick a model, a layer, features and a track; see and hear them.

The pickers of the options (method, target, the auralisation's reading, sign, output rate and
normalisation) are generated from :mod:`mirdeconv.options`, and the options objects are the
cache keys.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import streamlit as st

from .. import backend
from ..errors import MirdeconvError
from ..options import UPLOAD_LIMIT_MB, DeconvOptions, SoundOptions, choices, environment
from . import logic
from .atlas_view import atlas_view
from .model_view import ModelView, model_view, view_kept
from .tags_view import tags_view

UPLOAD_CHOICE = "upload a model ..."


@st.cache_resource(show_spinner="Loading the model ...", max_entries=4)
def _model(model_id: str):
    return logic.open_model(model_id)


@st.cache_resource(show_spinner="Opening the model ...", max_entries=8)
def _view(model_id: str):
    """The model's name, layers and representation (kept on disk: no TensorFlow until the
    model itself is needed)."""
    return model_view(model_id, lambda: _model(model_id))


@st.cache_data(show_spinner=False, max_entries=8)
def _demo(name: str):
    return logic.demo_audio(name)


@st.cache_data(show_spinner=False, max_entries=8)
def _upload(data: bytes, filename: str):
    return logic.decode_upload(data, filename)


_LAYERS: OrderedDict = OrderedDict()   # (model, track content, layer, options) -> result
_LAYERS_LOCK = threading.Lock()
_LAYERS_MAX = 6


def _layer(view, model_id: str, track_key: str, y: np.ndarray, sr: int, layer: str,
           opts: DeconvOptions, progress=None, features: tuple[int, ...] | None = None):
    """Some features of a layer (None: all of them), computed once per key (a small LRU
    shared by sessions: the key holds the track's content hash, so nobody sees a result of a
    track they lack); taken from the whole layer's result when that is there."""
    whole = (model_id, track_key, layer, opts, None)
    key = whole[:-1] + (features,)
    with _LAYERS_LOCK:
        for k in (whole, key):
            if k in _LAYERS:
                _LAYERS.move_to_end(k)
                res = _LAYERS[k]
                return res if k == key else res.select(list(features))
    if track_key.startswith("upload-"):
        result = logic.layer_result(view.model, y, sr, layer, opts, progress,
                                    features="all" if features is None else list(features))
    else:     # a demo track: kept on disk between runs of the app, so a fresh server is quick
        result = logic.demo_layer_result(view, track_key, y, sr, layer, opts, progress,
                                         features)
    with _LAYERS_LOCK:
        _LAYERS[key] = result
        while len(_LAYERS) > _LAYERS_MAX:
            _LAYERS.popitem(last=False)
    return result


@st.cache_data(show_spinner=False, max_entries=32)
def _sound(model_id: str, track_key: str, layer: str, opts: DeconvOptions, feature: int,
           sound: SoundOptions, _result, _y, sr: int):
    audio, out_sr, _ = logic.feature_sound(_result, feature, _y, sr, sound)
    fig = logic.feature_figure(_result, feature, audio, out_sr)
    return logic.wav_bytes(audio, out_sr), logic.figure_png(fig)


@st.cache_resource(show_spinner="Auralising the layer ...", max_entries=2)
def _layer_sound(model_id: str, track_key: str, layer: str, opts: DeconvOptions,
                 sound: SoundOptions, _result, _y, sr: int):
    """The layer's auralisation (kept as an object: the players and the zip share it)."""
    aur = logic.layer_auralisation(_result, _y, sr, sound)
    return aur, logic.layer_sounds(aur)


@st.cache_data(show_spinner="Describing the features ...", max_entries=16)
def _descriptors(model_id: str, track_key: str, layer: str, opts: DeconvOptions,
                 sound: SoundOptions, features: tuple[int, ...] | None, _result, _y, sr: int):
    """The descriptors of some features (None: all), one row each, in order."""
    part = _result if features is None else _result.select(
        [_result.features.index(k) for k in features])
    return logic.layer_descriptors(part, _y, sr, sound)


@st.cache_data(show_spinner=False, max_entries=8)
def _predictions(model_id: str, track_key: str, _y, sr: int, _model):
    return logic.predictions(_model, _y, sr)


def _descriptor_table(rows):
    """The shown descriptors of some features, rounded, with readable column names."""
    cols = ["feature", "label", *logic.SHOWN_DESCRIPTORS]
    return rows[cols].rename(columns=logic.SHOWN_DESCRIPTORS).round(3)


def _pick(container: Any, cls: type, only: tuple[str, ...]) -> Any:
    """One picker per option of an options class, from its table of choices."""
    values = {}
    for c in choices(cls, only):
        keys = list(c.table)
        values[c.name] = container.selectbox(
            c.label, keys, index=keys.index(c.default), key=c.name,
            format_func=lambda k, names=c.names: names.get(k, k),
            help="\n".join(f"- **{k}**: {getattr(v, 'description', v)}" for k, v in c.table.items()))
    return cls(**values)


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
        st.session_state[key] = ModelView.of(logic.open_model(str(main), representation=rep))
    return key, st.session_state[key]


def _pick_model(sb):
    choices = logic.model_choices()
    if environment().allow_model_upload:
        choices.append(UPLOAD_CHOICE)
    model_id = sb.selectbox("Model", choices, index=0, key="model")
    try:
        if model_id == UPLOAD_CHOICE:
            return _uploaded_model(sb)
        if not view_kept(model_id):          # its first use on this machine: say what happens
            return model_id, _prepare(model_id)
        return model_id, _view(model_id)
    except MirdeconvError as exc:
        st.error(f"The model {model_id} could not be loaded: {exc}")
        st.stop()


def _prepare(model_id: str) -> ModelView:
    """A model's first opening, step by step in a status box: a zoo model converted from the
    musicnn package (once, into the cache), the model opened, its layers kept."""
    from ..zoo import converted, fetch, is_zoo_name

    with st.status(f"Preparing {model_id} (once) ...", expanded=True) as box:
        if is_zoo_name(model_id) and not converted(model_id):
            fetch(model_id, progress=lambda step: box.write(step + " ..."))
        box.write("opening the model (TensorFlow starts) ...")
        view = _view(model_id)
        box.update(label=f"{model_id} is ready: next time it opens at once", state="complete",
                   expanded=False)
    return view


def _pick_layer(sb, model):
    layers = model.layers
    spf = model.representation.seconds_per_frame
    # short enough for the sidebar's picker (it cuts longer ones off); the rest below it
    labels = [f"{li.name} · {li.n_features} · {li.receptive_field[0] * spf:.2f} s" for li in layers]
    i = sb.selectbox("Layer", range(len(layers)), format_func=lambda i: labels[i],
                     index=min(2, len(layers) - 1), key="layer",
                     help="a layer · its features · its receptive field in time")
    li = layers[i]
    sb.caption(f"{li.name}: {li.n_features} features, receptive field "
               f"{li.receptive_field[0] * spf:.2f} s")
    return li


def _select_upload() -> None:
    """A new upload becomes the track shown."""
    f = st.session_state.get("upload")
    if f is not None:
        st.session_state["track"] = f"upload: {f.name}"


def _pick_track(sb):
    tracks = list(logic.DEMO_TRACKS)
    uploaded = sb.file_uploader("Upload a track", type=logic.UPLOAD_TYPES, key="upload",
                                help=f"up to {UPLOAD_LIMIT_MB} MB and "
                                     f"{logic.upload_minutes():g} minutes",
                                on_change=_select_upload)
    if uploaded is not None:
        tracks.insert(0, f"upload: {uploaded.name}")
    track = sb.selectbox("Track", tracks, key="track")
    try:
        if track.startswith("upload: ") and uploaded is not None:
            data = uploaded.getvalue()
            y, sr = _upload(data, uploaded.name)
            return y, sr, "upload-" + hashlib.sha256(data).hexdigest()[:16]
        y, sr = _demo(track)
        return y, sr, track
    except MirdeconvError as exc:
        st.error(f"The track could not be used: {exc}")
        st.stop()


def _pick_features(sb, layer) -> tuple[int, ...] | None:
    """The features asked for (None: the 8 most active, which takes the whole layer)."""
    mode = sb.radio("Features", ["one", "several", "the 8 most active"], key="fmode")
    if mode == "one":
        return (int(sb.number_input("Feature", 0, layer.n_features - 1, 0, key="feature")),)
    if mode == "several":
        return tuple(int(k) for k in sb.multiselect(
            "Features", list(range(layer.n_features)), default=[0, 1], key="features"))
    return None


ONSET_NOTE = ("Onset F-measures compare with onsets librosa detected on this track "
              "(it has no annotations).")


def _feature_view(ctx: dict, feats: list[int]) -> None:
    result = ctx["result"]
    positions = [result.features.index(int(k)) for k in feats]
    desc = _descriptors(*ctx["key"], ctx["sound"], tuple(int(k) for k in feats), result,
                        ctx["y"], ctx["sr"])
    st.caption(f"{ctx['model'].name} / {ctx['layer'].name} / {ctx['opts'].method}, "
               f"{ctx['opts'].target}  ({result.mode})")
    st.audio(logic.wav_bytes(ctx["y"], ctx["sr"]))
    st.caption("original")
    for j, (k, i) in enumerate(zip(feats, positions)):
        if result.dead[i]:
            st.warning(f"Feature {k} never fires on this track (dead: its map is "
                       f"{result.dead_reason[i]}).")
        wav, png = _sound(*ctx["key"], int(k), ctx["sound"], result, ctx["y"], ctx["sr"])
        st.subheader(f"Feature {k}  (max activation {result.activation_max[i]:.3g}, "
                     f"{100 * result.fraction_active[i]:.0f} % active)")
        row = desc.iloc[[j]]
        st.markdown(f"**What it detects:** {row['label'].iloc[0]}")
        st.image(png, width="stretch")
        st.audio(wav)
        st.dataframe(_descriptor_table(row), hide_index=True)
    st.caption(ONSET_NOTE)
    view = ctx["model"]
    try:
        preds = _predictions(ctx["key"][0], ctx["track_key"], ctx["y"], ctx["sr"], view.model)
        st.write("Predictions: " + ", ".join(f"{t} {s}" for t, s in preds))
    except MirdeconvError as exc:
        st.info(f"No predictions: {exc}")
    if view.redraw():            # the model changed since its view was kept
        st.rerun()


def _layer_view(ctx: dict) -> None:
    """Every feature of the layer, heard and described: on demand (it is the page's slowest
    part, so the first page does not wait for it)."""
    layer = ctx["layer"]
    if not st.toggle(f"Auralise and describe all {layer.n_features} features of {layer.name}",
                     key="whole_layer"):
        st.caption("The layer's grid of spectrograms, its labels and every feature's sound "
                   "appear here when switched on.")
        return
    result = _deconvolved(ctx, None)
    desc = _descriptors(*ctx["key"], ctx["sound"], None, result, ctx["y"], ctx["sr"])
    aur, (wavs, grid) = _layer_sound(*ctx["key"], ctx["sound"], result, ctx["y"], ctx["sr"])
    order = aur.most_active_first()
    st.caption(f"All {layer.n_features} features of {layer.name}, most active first; "
               f"{int(result.dead.sum())} dead.")
    st.image(grid, width="stretch")
    st.markdown("**Labels** (a feature can carry several)")
    st.bar_chart(desc["tags"].explode().value_counts(), horizontal=True)
    st.dataframe(_descriptor_table(desc.iloc[order]), hide_index=True)
    st.caption(ONSET_NOTE)
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
        st.download_button("Download zip", logic.layer_zip(aur), file_name=f"{layer.name}.zip",
                           mime="application/zip", key="download")


def _deconvolved(ctx: dict, features: tuple[int, ...] | None):
    """The layer's result for some features (None: all), with a progress bar; an error
    message (and the page stops) when the track cannot go through the layer."""
    layer = ctx["layer"]
    bar = st.progress(0.0, text=f"Deconvolving {layer.name} ...")
    try:
        result = _layer(ctx["model"], ctx["key"][0], ctx["track_key"], ctx["y"], ctx["sr"],
                        layer.name, ctx["opts"], features=features,
                        progress=lambda done, total: bar.progress(done / total))
    except MirdeconvError as exc:
        bar.empty()
        if ctx["model"].redraw():    # the model changed since its view was kept
            st.rerun()
        st.error(f"{layer.name} cannot be deconvolved for this track: {exc}")
        st.stop()
    bar.empty()
    return result


def run() -> None:
    """Draw the page."""
    backend.quiet_mode()
    st.set_page_config(page_title="mirdeconv", layout="wide")
    st.title("mirdeconv: what does each feature map hear?")
    sb = st.sidebar
    model_id, model = _pick_model(sb)
    layer = _pick_layer(sb, model)
    y, sr, track_key = _pick_track(sb)
    opts = _pick(sb, DeconvOptions, only=("method", "target"))
    with sb.expander("Auralisation"):
        sound = _pick(st, SoundOptions, only=("reading", "sign", "output_sr", "normalize"))
    wanted = _pick_features(sb, layer)
    if wanted == ():
        st.info("Pick one or more features in the sidebar.")
        st.stop()
    ctx = {"model_id": model_id, "model": model, "layer": layer, "y": y, "sr": sr,
           "track_key": track_key, "opts": opts, "sound": sound,
           "key": (f"{model_id}@{model.digest}", track_key, layer.name, opts)}
    result = _deconvolved(ctx, wanted)
    feats = list(wanted) if wanted is not None else logic.most_active(result, 8)
    ctx["result"] = result
    tab_feature, tab_layer, tab_tags, tab_atlas = st.tabs(["Features", "Layer", "Tags", "Atlas"])
    with tab_feature:
        _feature_view(ctx, feats)
    with tab_layer:
        _layer_view(ctx)
    with tab_tags:
        tags_view(ctx)
    with tab_atlas:
        atlas_view()
