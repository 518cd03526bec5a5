"""``load_model``: one call for every kind of model source.

A source goes to a plugin (``"plugin:model"`` ids, :mod:`mirdeconv.registry`) or to the
first adapter that says it can open it (:mod:`mirdeconv.adapters`); a model file's
``NAME.mirdeconv.json`` beside it supplies options not given.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from . import registry
from .adapters import get_adapter, guess_adapter
from .errors import ModelLoadError
from .model import FrozenModel
from .representations import Representation, from_dict, presets
from .zoo import is_zoo_name

__all__ = ["load_model", "sidecar_path", "resolve_representation"]

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


def _sidecar_options(path: Path, options: dict[str, Any]) -> Representation | None:
    """Options from ``NAME.mirdeconv.json`` beside a model file (those not given already)."""
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        desc = json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"unreadable model description {side}: {exc}") from None
    for key in ("input_axes", "labels", "input", "input_length", "output", "name"):
        if key in desc:
            options.setdefault(key, desc[key])
    return resolve_representation(desc["representation"]) if "representation" in desc else None


def load_model(source: Any, *, representation: Any = None, adapter: str | None = None,
               **options: Any) -> FrozenModel:
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
    adapter : str, optional
        The adapter to open it with (``"keras"``, ``"essentia"``, ``"pb"``, or one an
        installed package adds; see :func:`mirdeconv.adapters.list_adapters`); default: the
        first that recognises the source.
    **options
        Passed to the adapter (``input_axes``, ``labels``, ``name``, ``allow_unsafe``,
        ``input``, ``output``, ``algorithm``, ...) or to the plugin's loader.

    Returns
    -------
    FrozenModel

    Raises
    ------
    ModelLoadError, UnsafeModelError, NoFeatureLayersError
    """
    if isinstance(source, FrozenModel):
        return source
    if adapter is None and registry.is_model_id(source):  # "plugin:model"
        loaded = registry.load(source, **options)
        return loaded if isinstance(loaded, FrozenModel) else load_model(
            loaded, representation=representation)
    rep = resolve_representation(representation)
    if isinstance(source, str | os.PathLike) and not is_zoo_name(source):
        p = Path(source)
        if not p.exists():
            raise ModelLoadError(f"model file not found: {p}")
        side_rep = _sidecar_options(p, options)
        rep = rep if rep is not None else side_rep
    chosen = get_adapter(adapter) if adapter is not None else guess_adapter(source)
    if chosen is not None:
        return chosen.open(source, representation=rep, **options)
    if isinstance(source, str | os.PathLike):
        raise ModelLoadError(
            f"{source}: not a model file mirdeconv can open (expected .keras, .h5, .hdf5 or .pb, "
            "or a zoo name)")
    raise ModelLoadError(f"cannot open a model from a {type(source).__name__}")
