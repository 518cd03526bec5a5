"""``load_model``: one call for every kind of model source.

A source goes to a plugin (``"plugin:model"`` ids, :mod:`mirdeconv.registry`) or to the
first adapter that says it can open it (:mod:`mirdeconv.adapters`); a model file's
``NAME.mirdeconv.json`` beside it supplies options not given.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

from . import registry
from .adapters import ModelAdapter, get_adapter, guess_adapter
from .errors import InvalidOptionError, ModelLoadError
from .model import FrozenModel
from .representations import Representation, from_dict, presets
from .zoo import ZOO, is_zoo_name

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


#: What ``NAME.mirdeconv.json`` may say about a model file (each used by the adapters that
#: take it).
SIDECAR_KEYS = ("input_axes", "labels", "input", "input_length", "output", "name")


def _sidecar(path: Path) -> dict[str, Any]:
    """``NAME.mirdeconv.json`` beside a model file, or {}."""
    side = sidecar_path(path)
    if not side.is_file():
        return {}
    try:
        return json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"unreadable model description {side}: {exc}") from None


def _adapter_options(adapter: ModelAdapter, options: dict[str, Any], sidecar: dict[str, Any]
                     ) -> dict[str, Any]:
    """The options for ``adapter``: those given (each must be one it takes: a parameter of
    its ``open``), then the sidecar's that it takes and that were not given."""
    unknown = sorted(set(options) - set(adapter.options))
    if unknown:
        hints = [f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(
            k, adapter.options, n=1)) else "" for k in unknown]
        raise InvalidOptionError(
            f"the {adapter.name} adapter takes no option "
            + ", ".join(f"{k!r}{h}" for k, h in zip(unknown, hints))
            + f"; it takes {', '.join(adapter.options) or 'none'} (and load_model's own "
              "representation, adapter)")
    extra = {k: v for k, v in sidecar.items() if k in SIDECAR_KEYS and k in adapter.options}
    return {**extra, **options}


def _did_you_mean(name: str) -> str:
    """``"; did you mean 'mtt-vgg'?"`` for a name close to a zoo name or a plugin model id
    (``""`` when none is)."""
    known = [*ZOO, *registry.models()]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.75)
    return f"; did you mean {' or '.join(map(repr, close))}? (`mirdeconv models` lists them)" if close else ""


def load_model(source: Any, *, representation: Any = None,
               adapter: str | type[ModelAdapter] | ModelAdapter | None = None,
               **options: Any) -> FrozenModel:
    """Open a model for deconvolution.

    Parameters
    ----------
    source : keras.Model, torch.nn.Module, onnx.ModelProto, FrozenModel, str or PathLike
        An in-memory Keras model, a ``.keras`` / ``.h5`` file, an Essentia model (``.pb``
        with its ``.json`` beside it, or a bare ``.pb``), a PyTorch module (exported to ONNX
        by mirdeconv: give ``example_input=`` or ``input_axes=`` and ``input_length=``), an
        ONNX model or ``.onnx`` file, a TorchScript ``.pt`` file, a zoo name
        (``"mtt-musicnn"``), or a plugin model id (``"choi2016:music_tagger_cnn"``; see
        :mod:`mirdeconv.registry`).
    representation : Representation, str or dict, optional
        The model's input representation (an object, a preset name such as
        ``"choi2016-stft"`` or ``"musicnn"``, a dict, or a JSON file).  For files it may
        also come from ``NAME.mirdeconv.json`` beside the model.
    adapter : str or ModelAdapter subclass, optional
        The adapter to open it with: a name (``"keras"``, ``"essentia"``, ``"pb"``,
        ``"onnx"``, ``"pytorch"``, or one an installed package adds; see
        :func:`mirdeconv.adapters.list_adapters`), or an adapter class, registered or not
        (:func:`mirdeconv.adapters.get_adapter`); default: the first that recognises the
        source.
    **options
        Passed to the adapter (``input_axes``, ``labels``, ``name``, ``allow_unsafe``,
        ``input``, ``output``, ``algorithm``, ``example_input``, ...: the parameters of its
        ``open``) or to the plugin's loader.

    Returns
    -------
    FrozenModel

    Raises
    ------
    ModelLoadError, UnsafeModelError, NoFeatureLayersError
    InvalidOptionError
        An option the adapter does not take (the message lists those it takes), or an
        ``adapter`` that is neither a name nor an adapter class.
    """
    if isinstance(source, FrozenModel):
        return source
    if adapter is None and registry.is_model_id(source):  # "plugin:model"
        loaded = registry.load(source, **options)
        return loaded if isinstance(loaded, FrozenModel) else load_model(
            loaded, representation=representation)
    rep = resolve_representation(representation)
    sidecar: dict[str, Any] = {}
    if isinstance(source, str | os.PathLike) and not is_zoo_name(source):
        p = Path(source)
        if not p.exists():
            raise ModelLoadError(f"model file not found: {p}{_did_you_mean(str(source))}")
        sidecar = _sidecar(p)
        if rep is None and "representation" in sidecar:
            rep = resolve_representation(sidecar["representation"])
    chosen = get_adapter(adapter) if adapter is not None else guess_adapter(source)
    if chosen is not None:
        return chosen.open(source, representation=rep,
                           **_adapter_options(chosen, options, sidecar))
    if isinstance(source, str | os.PathLike):
        raise ModelLoadError(
            f"{source}: not a model file mirdeconv can open (expected .keras, .h5, .hdf5, .pb, "
            ".onnx or .pt (TorchScript), or a zoo name)")
    raise ModelLoadError(f"cannot open a model from a {type(source).__name__}")
