"""What the app computes, without Streamlit: models, tracks, deconvolutions, pictures, sound."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis import Reference, TrackContext, add_labels, describe
from ..audio import load
from ..auralisation import Auralisation, auralise_masks, auralise_result
from ..demo import demo_track
from ..engine import DeconvResult, deconvolve
from ..errors import AudioError, AudioTooLongError, UnsupportedAudioError
from ..loading import load_model
from ..options import DeconvOptions, SoundOptions, environment
from ..plot import pictures, specshow, thin
from ..prediction import TOP, predict, summary
from ..registry import models
from ..representations import LinearSpectrogram
from ..store import pcm16
from .model_view import ModelView

__all__ = ["DEMO_TRACKS", "DEFAULT_MODEL", "model_choices", "open_model", "demo_audio",
           "decode_upload", "layer_result", "layer_descriptors", "feature_sound",
           "feature_figure", "most_active", "predictions", "layer_auralisation", "layer_sounds",
           "layer_zip", "wav_bytes", "UPLOAD_TYPES"]

#: Built-in tracks, synthesised on first use: name -> (kind, seconds).
DEMO_TRACKS = {"demo: drums, bass and chords": ("mix", 30.0), "demo: drums": ("drums", 30.0),
               "demo: bass": ("bass", 30.0), "demo: chords": ("chords", 30.0)}
DEMO_SR = 22050
DEFAULT_MODEL = "musicnn:mtt-vgg"
UPLOAD_TYPES = ["wav", "flac", "ogg", "mp3"]
#: Frames a panel of the feature figure shows at most.
APP_COLUMNS = 320


def model_choices() -> list[str]:
    """Every model id the registry lists whose requirements are met (a folder of weights
    configured, an extra installed), the zoo plugin first."""
    ids = [i for i, (_, spec) in models().items() if not spec.unmet()]
    return sorted(ids, key=lambda i: (not i.startswith("musicnn:"), i != DEFAULT_MODEL, i))


def open_model(model_id: str, **options: Any) -> Any:
    """A model by registry id, zoo name or path (see :func:`mirdeconv.load_model`)."""
    return load_model(model_id, **options)


def demo_audio(name: str) -> tuple[np.ndarray, int]:
    """A built-in demo track (deterministic), at 22050 Hz."""
    kind, seconds = DEMO_TRACKS[name]
    return demo_track(sr=DEMO_SR, seconds=seconds, kind=kind), DEMO_SR


def decode_upload(data: bytes, filename: str, max_minutes: float | None = None
                  ) -> tuple[np.ndarray, int]:
    """Decode an uploaded audio file; the temporary copy is removed at once.

    ``max_minutes`` (default ``MIRDECONV_UPLOAD_MINUTES`` or
    :data:`mirdeconv.options.UPLOAD_LIMIT_MINUTES`) is checked from the file's header,
    before it is decoded.

    Raises
    ------
    AudioError
        (UnsupportedAudioError, InvalidAudioError, SilentAudioError, AudioTooLongError)
        naming the file.
    """
    suffix = Path(filename).suffix.lower()
    if suffix.lstrip(".") not in UPLOAD_TYPES:
        raise UnsupportedAudioError(f"{filename}: upload a {', '.join(UPLOAD_TYPES)} file")
    fd, tmp = tempfile.mkstemp(prefix="mirdeconv-upload-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            _check_duration(tmp, filename, max_minutes)
            return load(tmp)
        except AudioError as exc:  # name the user's file, not the temporary copy
            raise type(exc)(str(exc).replace(tmp, filename).replace(Path(tmp).name, filename)) \
                from None
    finally:
        os.unlink(tmp)


def upload_minutes() -> float:
    """The longest track the app takes as an upload, in minutes."""
    return environment().upload_minutes


def _check_duration(path: str, filename: str, max_minutes: float | None) -> None:
    import soundfile as sf

    limit = upload_minutes() if max_minutes is None else max_minutes
    try:
        seconds = sf.info(path).duration
    except (sf.LibsndfileError, RuntimeError):
        return                       # load() names what is wrong with the file
    if seconds > 60 * limit:
        raise AudioTooLongError(f"{filename} is {seconds / 60:.1f} minutes long; the app takes "
                                f"tracks up to {limit:g} minutes (MIRDECONV_UPLOAD_MINUTES); "
                                "use mirdeconv auralise on the command line for longer ones")


def layer_result(model: Any, y: np.ndarray, sr: int, layer: str,
                 options: DeconvOptions = DeconvOptions(), progress: Any = None,
                 features: Any = "all") -> DeconvResult:
    """Features of a layer deconvolved (default: all of them, in one engine call)."""
    return deconvolve(model, y, sr, layer=layer, features=features, options=options,
                      progress=progress or False)


#: Demo tracks' results kept between runs of the app, at most this many (oldest go first).
DEMO_RESULTS_KEPT = 64
#: The arrays of a result that are kept (the rest comes back from the model and the track).
_RESULT_ARRAYS = ("masks", "features", "dead", "activation_max", "activation_mean",
                  "fraction_active", "activations", "dead_reason")


def demo_layer_result(view: ModelView, track_name: str, y: np.ndarray, sr: int, layer: str,
                      options: DeconvOptions = DeconvOptions(), progress: Any = None,
                      features: tuple[int, ...] | None = None) -> DeconvResult:
    """:func:`layer_result` of a demo track, kept on disk between runs of the app (plain
    ``.npz`` arrays, no pickles; keyed by the model's graph digest, the track, the layer, the
    options and the features), so that a fresh server's first page does not wait for it:
    read back, it needs only the model's view (no TensorFlow); computed, the model itself."""
    import hashlib
    import json

    from ..store import atomic_path
    from ..zoo import cache_dir

    def kept(digest: str) -> Path:
        key = hashlib.sha256(json.dumps(
            [digest, view.representation.to_dict(), track_name, len(y), int(sr), layer,
             options.key(), features], sort_keys=True).encode()).hexdigest()[:32]
        return cache_dir() / "app-results" / f"{key}.npz"

    path = kept(view.digest)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in _RESULT_ARRAYS}
            mode = str(z["mode"])
        return DeconvResult(**{**arrays, "features": arrays["features"].tolist()},
                            layer=view.layer(layer), options=options, mode=mode,
                            track=view.representation.prepare(y, sr), model=view.name)
    except (OSError, KeyError, ValueError):
        pass
    model = view.model                          # opened and checked: the digest is its own
    path = kept(view.digest)
    result = layer_result(model, y, sr, layer, options, progress,
                          features="all" if features is None else list(features))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, mode=np.array(result.mode),
                         **{k: np.asarray(getattr(result, k)) for k in _RESULT_ARRAYS})
        old = sorted(path.parent.glob("*.npz"), key=lambda p: p.stat().st_mtime)
        for p in old[:-DEMO_RESULTS_KEPT]:
            p.unlink(missing_ok=True)
    except OSError:          # a read-only cache: the app works without it
        pass
    return result


#: Descriptor columns the app shows, in order, with their captions.
SHOWN_DESCRIPTORS = {
    "onset_f": "onset F", "attack_lift": "attack lift", "percussive_share": "percussive",
    "harmonic_share": "harmonic", "centroid_hz": "centroid Hz", "low_share": "< 200 Hz",
    "high_share": "> 2 kHz", "temporal_sparsity": "sparsity", "energy_ratio": "passes",
    "sdr_percussive": "SDR perc dB", "sdr_harmonic": "SDR harm dB",
}


def layer_descriptors(result: DeconvResult, y: np.ndarray, sr: int,
                      sound: SoundOptions = SoundOptions()) -> Any:
    """Every feature's descriptors and label on this track (:mod:`mirdeconv.analysis`; the
    reference onsets are detected by librosa on the track), one row per feature in
    ``result.features`` order."""
    ctx = TrackContext(result.track, Reference.detect(y, sr))
    return add_labels(describe(result, ctx, sound=sound))


def most_active(result: Any, n: int = 8) -> list[int]:
    """The ``n`` features with the highest activation maximum."""
    order = np.argsort(-result.activation_max, kind="stable")
    return [result.features[i] for i in order[:n]]


def feature_sound(result: DeconvResult, feature: int, y: np.ndarray, sr: int,
                  sound: SoundOptions = SoundOptions()) -> tuple[np.ndarray, int, np.ndarray]:
    """One feature's auralisation: (audio, sr, spectrogram thumbnail in dB)."""
    audio, out_sr, thumbs = auralise_masks(result.mask(feature)[None], result.track, audio=y,
                                           sr=sr, sound=sound)
    return audio[0], out_sr, thumbs[0]


def feature_figure(result: Any, feature: int, audio: np.ndarray, sr: int) -> Any:
    """Input spectrogram, mask and auralisation side by side on one time axis, and the
    feature's activation over time below."""
    import librosa
    from matplotlib.figure import Figure

    i = result.features.index(feature)
    feats, m, rep = pictures(result.track.frames, result.masks[i], result.track.representation)
    fig = Figure(figsize=(13, 5.2), layout="constrained")
    axes = fig.subplot_mosaic([["input", "mask", "sound"], ["act", "act", "act"]],
                              height_ratios=[3, 1])
    if getattr(rep, "compression", None) is None:
        feats = librosa.amplitude_to_db(np.maximum(feats, 0), ref=np.max, top_db=80.0)
    feats, thin_rep = thin(feats, rep, APP_COLUMNS)
    img = specshow(axes["input"], feats, thin_rep, cmap="magma")
    fig.colorbar(img, ax=axes["input"])
    axes["input"].set_title("input")
    lim = float(np.percentile(np.abs(m), 99.5)) or float(np.abs(m).max()) or 1.0
    m_thin, _ = thin(m, rep, APP_COLUMNS, signed=True)
    img = specshow(axes["mask"], m_thin, thin_rep, cmap="coolwarm", vmin=-lim, vmax=lim)
    fig.colorbar(img, ax=axes["mask"])
    axes["mask"].set_title(f"deconvolution of feature {feature}")
    S = librosa.amplitude_to_db(np.abs(librosa.stft(audio, n_fft=1024, hop_length=512)),
                                ref=np.max, top_db=80.0)
    S, s_rep = thin(S.T, LinearSpectrogram(sr=sr, n_fft=1024, hop_length=512), APP_COLUMNS)
    img = librosa.display.specshow(S.T, sr=sr, hop_length=s_rep.hop_length, x_axis="time", y_axis="log",
                                   ax=axes["sound"], cmap="magma")
    fig.colorbar(img, ax=axes["sound"])
    axes["sound"].set_title("auralisation (dB)")
    act = result.activations[i]
    t = np.arange(len(act)) * result.layer.stride[0] * result.track.representation.seconds_per_frame
    axes["act"].plot(t, act, lw=0.8)
    axes["act"].set_xlim(0, result.track.duration)
    axes["act"].set_xlabel("time (s)")
    axes["act"].set_ylabel("activation")
    return fig


def figure_png(fig: Any, dpi: int = 72) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def wav_bytes(audio: np.ndarray, sr: int) -> bytes:
    """16-bit WAV in memory (for the audio players), quantised as the files are."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, pcm16(audio), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def predictions(model: Any, y: np.ndarray, sr: int, top: int = TOP) -> list[tuple[str, str]]:
    """What the model says of the track: its top tags, tempo or pitch (Essentia's runtime for
    Essentia models), as (name, value) pairs."""
    act, labels, _ = predict(model, y, sr)
    return summary(act, labels, model.task, top)


def layer_auralisation(result: DeconvResult, y: np.ndarray, sr: int,
                       sound: SoundOptions = SoundOptions()) -> Auralisation:
    """Every feature of the layer as sound, once (the layer view and its zip share it)."""
    return auralise_result(result, y, sr, sound)


def layer_sounds(aur: Auralisation) -> tuple[list[bytes], bytes]:
    """Every feature's auralisation as WAV bytes (in ``features`` order) and the layer's grid
    PNG with the features sorted by activation, most active first."""
    d = aur.deconvolution
    with tempfile.TemporaryDirectory(prefix="mirdeconv-grid-") as tmp:
        png = aur.grid(Path(tmp) / "grid.png", order=aur.most_active_first(),
                       title=f"{d.model} / {d.layer.name}, most active first").read_bytes()
    return [wav_bytes(a, aur.sr) for a in aur.audio], png


def layer_zip(aur: Auralisation) -> bytes:
    """Every feature's auralisation, the layer's grid PNG (as :meth:`Auralisation.save`
    writes them) and an index (CSV), zipped under the layer's name."""
    d = aur.deconvolution
    layer = d.layer.name
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="mirdeconv-zip-") as tmp, \
            zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        files = aur.save(Path(tmp))
        for f in files:
            zf.write(f, f"{layer}/{f.name}")
        rows = ["feature,dead,activation_max,activation_mean,fraction_active,audio"]
        for i, (k, f) in enumerate(zip(d.features, files)):
            rows.append(f"{k},{bool(d.dead[i])},{d.activation_max[i]:.6g},"
                        f"{d.activation_mean[i]:.6g},{d.fraction_active[i]:.6g},{layer}/{f.name}")
        zf.writestr(f"{layer}/index.csv", "\n".join(rows) + "\n")
    return buf.getvalue()
