"""Keras models: a ``keras.Model`` in memory, a ``.keras`` file or a legacy ``.h5`` file.

The model is frozen into a TensorFlow graph whose outputs are every feature layer
(addressed by its Keras name) and the model's own output.  Loading a file never
executes code stored in it: the file's configuration is read first and a model with
``Lambda`` layers is refused unless the caller opts in with ``allow_unsafe=True``;
Keras' own ``safe_mode`` stays on otherwise.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

from .. import backend
from ..errors import ModelLoadError, NoFeatureLayersError, UnsafeModelError
from ..graph import FrozenGraph
from ..model import FrozenModel
from ..representations import Representation
from .base import ModelAdapter, freeze, needs_representation

__all__ = ["KerasAdapter", "from_keras", "load_keras"]

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
#: Keras layer types whose outputs are offered as feature layers (when they come after a conv).
_FEATURE_LAYER_TYPES = (
    "Conv1D", "Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Activation", "ReLU", "ELU",
    "LeakyReLU", "PReLU", "BatchNormalization", "MaxPooling1D", "MaxPooling2D",
    "AveragePooling1D", "AveragePooling2D", "Concatenate", "Add", "Multiply", "Dropout",
    "ZeroPadding2D", "Permute", "Reshape",
)


def _find_unsafe(config: Any, path: str = "") -> list[str]:
    """Names of layers in a Keras config that would run code from the file."""
    found: list[str] = []
    if isinstance(config, dict):
        cls = config.get("class_name")
        if cls in ("Lambda", "TFOpLambda") or (cls == "Function" and "code" in json.dumps(config)):
            name = (config.get("config") or {}).get("name", "?")
            found.append(f"{cls} layer {name!r}")
        for v in config.values():
            found.extend(_find_unsafe(v, path))
    elif isinstance(config, list):
        for v in config:
            found.extend(_find_unsafe(v, path))
    return found


def _read_config(path: Path) -> Any:
    """The model configuration stored in a .keras (zip) or .h5 file, without loading the model."""
    if path.suffix == ".keras":
        try:
            with zipfile.ZipFile(path) as zf:
                return json.loads(zf.read("config.json"))
        except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as exc:
            raise ModelLoadError(f"{path} is not a Keras model file (.keras zip): {exc}") from None
    import h5py  # optional here: only legacy .h5 files need it (an import of ~0.1 s)

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError as exc:
        raise ModelLoadError(f"{path} is not a Keras HDF5 model file: {exc}") from None
    if raw is None:
        raise ModelLoadError(
            f"{path} holds no model configuration: it is a weights-only HDF5 file. Build the "
            "model in code and load the weights into it, then pass the keras.Model"
        )
    if isinstance(raw, bytes):
        raw = raw.decode()
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path}: unreadable model configuration ({exc})") from None


def load_keras(path: str | os.PathLike, *, allow_unsafe: bool = False) -> Any:
    """Load a Keras model file without executing code from it.

    Parameters
    ----------
    path : str or PathLike
        A ``.keras`` or legacy ``.h5`` / ``.hdf5`` file.
    allow_unsafe : bool
        Let Lambda layers be deserialised (their code runs): only for files you trust.

    Raises
    ------
    ModelLoadError
        Missing file, or not a Keras model.
    UnsafeModelError
        The model holds Lambda layers and ``allow_unsafe`` is False.
    """
    keras = backend.keras()
    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"model file not found: {p}")
    if p.suffix not in KERAS_SUFFIXES:
        raise ModelLoadError(f"{p}: not a Keras model file (expected {', '.join(KERAS_SUFFIXES)})")
    unsafe = _find_unsafe(_read_config(p))
    if unsafe and not allow_unsafe:
        raise UnsafeModelError(
            f"{p.name} holds {', '.join(unsafe)}: loading it would execute code stored in the "
            "file. If you trust the file, opt in with allow_unsafe=True "
            "(mirdeconv.load_model(path, allow_unsafe=True), or --allow-unsafe on the command line)"
        )
    try:
        return keras.models.load_model(p, compile=False, safe_mode=not allow_unsafe)
    except Exception as exc:  # Keras raises many types for broken files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load Keras model {p.name}: {first[:300]}") from None


def _guess_input_axes(shape: tuple, rep: Representation) -> str:
    dims = list(shape[1:])
    if getattr(rep, "kind", "") == "waveform":   # samples, and a channel axis of size 1
        if len(dims) == 1 or (len(dims) == 2 and dims[1] == 1):
            return "NT" if len(dims) == 1 else "NTC"
        raise ModelLoadError(f"the model input {tuple(shape)} is not a waveform (batch, samples[, 1])")
    chan = len(dims) == 3
    if chan:
        if dims[-1] not in (1, None):
            raise ModelLoadError(
                f"the model input {tuple(shape)} has {dims[-1]} channels; mirdeconv feeds one "
                "spectrogram channel"
            )
        dims = dims[:2]
    if len(dims) != 2:
        raise ModelLoadError(
            f"the model input {tuple(shape)} is not a spectrogram (batch, time, bands[, 1])"
        )
    nb = rep.n_bands
    if dims[1] == nb and dims[0] != nb:
        axes = "NTF"
    elif dims[0] == nb and dims[1] != nb:
        axes = "NFT"
    else:
        raise ModelLoadError(
            f"cannot tell the time axis from the frequency axis of input {tuple(shape)} with "
            f"{nb} bands in the representation; pass input_axes='NTF' or 'NFT' (+ 'C')"
        )
    return axes + ("C" if chan else "")


def _feature_outputs(model: Any, layers: list[str] | None) -> list[tuple[str, Any]]:
    """(name, symbolic output) of the layers offered: those named, or every convolution and
    the layers after it with a time axis.

    Raises
    ------
    ModelLoadError, NoFeatureLayersError
    """
    candidates = []
    for lyr in model.layers:
        if layers is not None and lyr.name not in layers:
            continue
        if layers is None and type(lyr).__name__ not in _FEATURE_LAYER_TYPES:
            continue
        try:
            out = lyr.output
        except (AttributeError, ValueError):
            continue
        if isinstance(out, (list, tuple)) or len(out.shape) < 3:
            continue
        candidates.append((lyr.name, out))
    if layers is not None:
        missing = set(layers) - {n for n, _ in candidates}
        if missing:
            raise ModelLoadError(f"no such layers with a feature output: {sorted(missing)}")
    if not any(type(lyr).__name__ in ("Conv1D", "Conv2D", "SeparableConv2D", "DepthwiseConv2D")
               for lyr in model.layers):
        raise NoFeatureLayersError(f"model {model.name!r} has no convolutional layer")
    return candidates


def from_keras(
    model: Any,
    representation: Representation,
    *,
    input_axes: str | None = None,
    labels: list[str] | None = None,
    name: str | None = None,
    layers: list[str] | None = None,
    source: str = "",
    input_length: int | None = None,
    task: str = "tags",
    input_normalization: str = "none",
) -> FrozenModel:
    """Freeze an in-memory ``keras.Model`` into a :class:`FrozenModel`.

    Parameters
    ----------
    model : keras.Model
        A functional or sequential model with one spectrogram input.
    representation : Representation
        How audio becomes the model's input.
    input_axes : str, optional
        ``"NTF"``, ``"NFT"``, ``"NTFC"`` or ``"NFTC"``; guessed from the input shape
        and the representation's number of bands when omitted.
    labels : list of str, optional
        Class labels of the output.
    name : str, optional
        Defaults to the Keras model's name.
    layers : list of str, optional
        Keras layer names to offer; default: every convolution and the layers after it
        that keep a time axis.
    input_length : int, optional
        Frames per input patch, for a model whose input length is free but that was trained
        on patches (TempoCNN: 256); default: the input's own length, if fixed.
    task : {"tags", "tempo", "pitch"}
        What the output says (its labels are tags, BPM or Hz).
    input_normalization : str
        How the input is normalised before the network
        (:data:`mirdeconv.normalization.INPUT_NORMALIZATIONS`).
    """
    keras = backend.keras()
    if not isinstance(model, keras.Model):
        raise ModelLoadError(f"expected a keras.Model, got {type(model).__name__}")
    try:
        inputs = model.inputs
        outputs = model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise ModelLoadError(
            f"model {model.name!r} has no symbolic inputs/outputs (a subclassed model?); build "
            "it with the functional or Sequential API and an Input layer"
        )
    if len(inputs) != 1:
        raise ModelLoadError(f"model {model.name!r} has {len(inputs)} inputs; mirdeconv needs one")
    in_shape = tuple(inputs[0].shape)
    axes = input_axes or _guess_input_axes(in_shape, representation)

    candidates = _feature_outputs(model, layers)
    probe = keras.Model(model.inputs, [o for _, o in candidates] + list(outputs))
    frozen = freeze(probe, in_shape, f"model {model.name!r}")
    gd = frozen.graph.as_graph_def()
    in_name = frozen.inputs[0].name
    out_names = [t.name for t in frozen.outputs]
    layer_tensors = {n: out_names[i] for i, (n, _) in enumerate(candidates)}
    t_axis = axes.index("T")
    length = input_length or (in_shape[t_axis] if in_shape[t_axis] is not None else None)
    return FrozenModel(
        name=name or model.name, graph=FrozenGraph(gd), input_tensor=in_name, input_axes=axes,
        representation=representation, input_length=length, labels=labels,
        layer_tensors=layer_tensors, output_tensor=out_names[len(candidates)],
        task=task, input_normalization=input_normalization, family="keras",
        source=source or f"<keras.Model {model.name}>",
    )


class KerasAdapter(ModelAdapter):
    """Opens ``keras.Model`` objects and ``.keras`` / ``.h5`` files."""

    name = "keras"
    priority = 10
    description = "Keras models: keras.Model in memory, .keras and legacy .h5 files"
    def guess_can_open(self, source: Any) -> bool:
        if isinstance(source, (str, os.PathLike)):
            return Path(source).suffix.lower() in KERAS_SUFFIXES
        keras_mod = sys.modules.get("keras")
        return keras_mod is not None and isinstance(source, keras_mod.Model)

    def open(
        self,
        source: Any,
        *,
        representation: Representation | None = None,
        allow_unsafe: bool = False,
        input_axes: str | None = None,
        labels: list[str] | None = None,
        name: str | None = None,
        layers: list[str] | None = None,
        input_length: int | None = None,
        task: str = "tags",
        input_normalization: str = "none",
    ) -> FrozenModel:
        """Open a ``keras.Model`` or a ``.keras`` / ``.h5`` file (the options as for
        :func:`from_keras`; ``allow_unsafe`` as for :func:`load_keras`)."""
        if isinstance(source, str | os.PathLike):
            model = load_keras(source, allow_unsafe=allow_unsafe)
            name = Path(source).stem if name is None else name
            where = os.fspath(source)
        else:
            model, where = source, ""
        rep = needs_representation(representation, "a Keras model")
        return from_keras(model, rep, source=where, input_axes=input_axes, labels=labels,
                          name=name, layers=layers, input_length=input_length, task=task,
                          input_normalization=input_normalization)
