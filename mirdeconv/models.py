"""``load_model``: one call for every kind of model source."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .adapters import FrozenModel, builtin_adapters
from .errors import ModelLoadError
from .representations import Representation, from_dict, presets

__all__ = ["load_model", "sidecar_path", "resolve_representation", "predict"]

SIDECAR_SUFFIX = ".mirdeconv.json"


def sidecar_path(path: str | os.PathLike) -> Path:
    """Where a model file's mirdeconv description lives: ``NAME.mirdeconv.json`` beside it."""
    p = Path(path)
    return p.with_name(p.stem + SIDECAR_SUFFIX)


def resolve_representation(spec: Representation | str | dict | None) -> Representation | None:
    """A representation from an object, a preset name, a dict, or a JSON file path."""
    if spec is None or isinstance(spec, Representation):
        return spec
    if isinstance(spec, dict):
        return from_dict(spec)
    names = presets()
    if spec in names:
        return names[spec]()
    p = Path(spec)
    if p.suffix == ".json" and p.is_file():
        try:
            return from_dict(json.loads(p.read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ModelLoadError(f"cannot read representation {p}: {exc}") from None
    raise ModelLoadError(
        f"unknown representation {spec!r}: use a preset ({', '.join(names)}) or a JSON file"
    )


def load_model(source: Any, *, representation: Any = None, **options: Any) -> FrozenModel:
    """Open a model for deconvolution.

    Parameters
    ----------
    source : keras.Model, FrozenModel, str or PathLike
        An in-memory Keras model, a ``.keras`` / ``.h5`` file, an Essentia model (``.pb``
        with its ``.json`` beside it, or a bare ``.pb``), a zoo name (``"mtt-musicnn"``), or
        a plugin model id (``"choi2016:music_tagger_cnn"``; see :mod:`mirdeconv.registry`).
    representation : Representation, str or dict, optional
        The model's input representation (an object, a preset name such as
        ``"choi2016-stft"`` or ``"musicnn"``, a dict, or a JSON file).  For files it may
        also come from ``NAME.mirdeconv.json`` beside the model.
    **options
        Passed to the adapter: ``input_axes``, ``labels``, ``name``, ``allow_unsafe``, ...

    Returns
    -------
    FrozenModel

    Raises
    ------
    ModelLoadError, UnsafeModelError, NoFeatureLayersError
    """
    if isinstance(source, FrozenModel):
        return source
    from .registry import is_model_id
    from .registry import load as load_plugin_model
    from .zoo import is_zoo_name

    if is_model_id(source):  # "plugin:model"
        loaded = load_plugin_model(source, **options)
        return loaded if isinstance(loaded, FrozenModel) else load_model(
            loaded, representation=representation)

    rep = resolve_representation(representation)
    if isinstance(source, (str, os.PathLike)) and not is_zoo_name(source):
        p = Path(source)
        if not p.exists():
            raise ModelLoadError(f"model file not found: {p}")
        side = sidecar_path(p)
        if side.is_file():
            try:
                desc = json.loads(side.read_text())
            except json.JSONDecodeError as exc:
                raise ModelLoadError(f"unreadable model description {side}: {exc}") from None
            if rep is None and "representation" in desc:
                rep = resolve_representation(desc["representation"])
            for key in ("input_axes", "labels", "input", "input_length", "output", "name"):
                if key in desc:
                    options.setdefault(key, desc[key])
    for adapter in builtin_adapters():
        if adapter.guess_can_open(source):
            return adapter.open(source, representation=rep, **options)
    if isinstance(source, (str, os.PathLike)):
        raise ModelLoadError(
            f"{source}: not a model file mirdeconv can open (expected .keras, .h5, .hdf5 or .pb, "
            "or a zoo name)"
        )
    raise ModelLoadError(f"cannot open a model from a {type(source).__name__}")


def predict(model: FrozenModel, audio: Any, sr: float) -> tuple[Any, list[str], str]:
    """Class activations of a track, patch by patch.

    Essentia models run through Essentia's own ``TensorflowPredict*``; other models through
    their frozen graph (patches of the model's input length, as the engine cuts them).

    Returns
    -------
    activations : np.ndarray, shape (n_patches, n_classes)
    labels : list of str
    how : str
        Which runtime computed them, for people.
    """
    if hasattr(model, "predict"):
        act, labels = model.predict(audio, sr)
        return act, labels, f"Essentia {model.algorithm}"
    from .engine import _model_input

    frames = model.representation.analyse(audio, sr).features
    x, _, _ = _model_input(model, frames, whole=model.input_length is None)
    act = model.predict_graph(x).reshape(len(x), -1)
    labels = list(model.labels or [str(i) for i in range(act.shape[-1])])
    return act, labels, "the frozen graph"
