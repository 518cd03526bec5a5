"""ONNX models: a ``.onnx`` file or an ``onnx.ModelProto`` in memory.

The ONNX graph is converted into a TensorFlow graph by `onnx2tf
<https://github.com/PINTO0309/onnx2tf>`_ (a maintained converter; it turns PyTorch's
channels-first layout into TensorFlow's channels-last one, which is the layout TensorFlow
runs convolutions in on a CPU), frozen, and then canonicalised like every other graph, so
the engine has one code path for all models.  Before the conversion (:mod:`.onnx_prep`) the
outputs worth deconvolving are named after the PyTorch modules that made them and kept as
outputs, the batch axis is freed, and recurrent layers are unrolled; after it, the converted
graph is checked against ONNX Runtime on the same input (a converter that got a graph wrong
is refused, naming the difference, rather than explained).

Opening an ONNX file never executes code from it: ONNX is a protobuf of operations and
constants.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import backend
from ..errors import ModelLoadError, UnsupportedGraphError
from ..graph import FrozenGraph, node_name, tensor_name
from ..model import FrozenModel
from ..representations import Representation
from .base import ModelAdapter
from .onnx_prep import expose, free_batch, layer_names, static_shape, unroll_recurrent

__all__ = ["OnnxAdapter", "from_onnx", "read_onnx", "ONNX_AXES", "converted_axes"]

#: Input layouts of an ONNX model (PyTorch's, channels first, or channels last) and the
#: layout of the converted TensorFlow graph's input (:data:`mirdeconv.model.INPUT_AXES`).
ONNX_AXES: dict[str, str] = {
    "NCFT": "NFTC", "NCTF": "NTFC", "NCT": "NTC",     # channels first: moved last
    "NFTC": "NFTC", "NTFC": "NTFC", "NTC": "NTC",     # channels last: kept
    "NFT": "NTF", "NTF": "NFT",                       # rank 3: axis 1 is the conv's channel axis
    "NT": "NT",
}

#: Largest difference (relative to the output's range) allowed between the converted graph
#: and ONNX Runtime on the same input.
AGREEMENT = 1e-3


def converted_axes(axes: str) -> str:
    """The converted graph's input layout for an ONNX input layout.

    Raises
    ------
    ModelLoadError
        An unknown layout, naming the known ones.
    """
    if axes not in ONNX_AXES:
        raise ModelLoadError(f"input_axes {axes!r} is not an ONNX input layout mirdeconv reads; "
                             f"use one of {', '.join(ONNX_AXES)} (N batch, C channel, F bands, "
                             "T frames or samples)")
    return ONNX_AXES[axes]


def read_onnx(path: str | os.PathLike) -> Any:
    """Read and check an ONNX file.

    Raises
    ------
    ModelLoadError
        Missing, unreadable, or not a valid ONNX model.
    """
    onnx = backend.onnx()
    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"model file not found: {p}")
    try:
        model = onnx.load(os.fspath(p))
        onnx.checker.check_model(model)
    except Exception as exc:  # DecodeError, ValidationError, OSError for external data
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{p.name} is not a valid ONNX model: {first[:300]}") from None
    return model


def _graph_input(model: Any) -> Any:
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ModelLoadError(f"the ONNX model has {len(inputs)} inputs "
                             f"({', '.join(i.name for i in inputs)}); mirdeconv needs one")
    return inputs[0]


def guess_axes(shape: list, rep: Representation) -> str:
    """The ONNX input layout from the input's shape and the representation's bands: the one
    layout of :data:`ONNX_AXES` whose band axis has the representation's bands, whose channel
    axis has one channel and whose time axis does not look like bands.

    Raises
    ------
    ModelLoadError
        When no layout, or several, fit (the message asks for ``input_axes``).
    """
    waveform = getattr(rep, "kind", "") == "waveform"

    def fits(axes: str) -> bool:
        if len(axes) != len(shape) or waveform == ("F" in axes):
            return False
        size = dict(zip(axes, shape))
        known = {a: n for a, n in size.items() if isinstance(n, int) and n > 0}
        return (known.get("F", rep.n_bands) == rep.n_bands and known.get("C", 1) == 1
                and (waveform or known.get("T") != rep.n_bands))

    found = [a for a in ONNX_AXES if fits(a)]
    if len(found) != 1:
        raise ModelLoadError(
            f"cannot tell the axes of the ONNX input {tuple(shape)} for {rep.describe()}: pass "
            f"input_axes= (one of {', '.join(ONNX_AXES)}; PyTorch's spectrogram nets take NCFT)")
    return found[0]


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _converter_failure(log: str, exc: BaseException) -> UnsupportedGraphError:
    """The converter's failure as an error that names the ONNX operation and node."""
    clean = re.sub(r"\x1b\[[0-9;]*m", "", log)
    op = re.findall(r"onnx_op_type:\s*(\S+)", clean)
    name = re.findall(r"onnx_op_name:\s*(\S+)", clean)
    where = f" at {op[-1]} node {name[-1]!r}" if op and name else ""
    msg = str(exc).strip() or _first_line(clean) or type(exc).__name__
    return UnsupportedGraphError(
        f"the ONNX-to-TensorFlow converter (onnx2tf) cannot convert this graph{where}: "
        f"{msg.splitlines()[0][:300]}")


def _convert(model: Any, onnx_axes: str, input_name: str) -> Any:
    """The converter's Keras model of ``model`` (its log kept off the terminal)."""
    onnx2tf = backend.onnx2tf()
    keep = [input_name] if _keeps_layout(onnx_axes) else None
    out, err = io.StringIO(), io.StringIO()
    with tempfile.TemporaryDirectory(prefix="mirdeconv-onnx2tf-") as tmp:
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                return onnx2tf.convert(
                    onnx_graph=model, output_folder_path=tmp, non_verbose=True,
                    disable_model_save=True, not_use_onnxsim=True,
                    keep_nwc_or_nhwc_or_ndhwc_input_names=keep,
                    verbosity="error")
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the converter exits on errors
            raise _converter_failure(out.getvalue() + err.getvalue(), exc) from exc


def _keeps_layout(onnx_axes: str) -> bool:
    """A channels-last ONNX input keeps its layout through the converter."""
    return onnx_axes in ("NFTC", "NTFC", "NTC")


def _freeze(km: Any, in_shape: tuple) -> Any:
    """The converted Keras model as a concrete function of a batch of any size, variables
    as constants."""
    tf = backend.tensorflow()
    spec = tf.TensorSpec([None, *in_shape[1:]], tf.float32)
    fn = tf.function(lambda x: km(x, training=False))
    try:
        return backend.convert_variables_to_constants(fn.get_concrete_function(spec))
    except Exception as exc:  # noqa: BLE001 - TensorFlow's errors for graphs it cannot trace
        raise UnsupportedGraphError(
            f"the converted graph cannot be frozen for a batch of any size: "
            f"{_first_line(str(exc))[:300]}") from exc


def _check_against_runtime(model: Any, input_name: str, onnx_shape: list, frozen: Any,
                           tf_axes: str, onnx_axes: str, name: str) -> float | None:
    """Run the prepared ONNX graph in ONNX Runtime and the frozen graph on the same random
    batch of two; the largest difference of the first output relative to its range.

    Returns
    -------
    float or None
        None when ONNX Runtime is not installed.

    Raises
    ------
    ModelLoadError
        They differ by more than :data:`AGREEMENT`.
    """
    ort = backend.onnxruntime()
    if ort is None:
        return None
    tf = backend.tensorflow()
    dims = [2] + [d if isinstance(d, int) and d > 0 else 64 for d in onnx_shape[1:]]
    x = np.random.default_rng(0).standard_normal(dims).astype(np.float32)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    first = model.graph.output[0].name
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        ref = np.asarray(sess.run([first], {input_name: x})[0])
    except Exception:  # noqa: BLE001 - a graph ONNX Runtime cannot run is not checked
        return None
    perm = [onnx_axes.index(a) for a in tf_axes]
    try:
        got = np.asarray(frozen(tf.constant(np.transpose(x, perm)))[0])
    except tf.errors.OpError as exc:
        raise ModelLoadError(
            f"{name}: the converted graph does not take a batch of two ({_first_line(str(exc))}"
            "). The ONNX file fixes its batch size somewhere inside the graph: export it with "
            "a free batch axis (torch.onnx.export(..., dynamic_shapes=({0: "
            "torch.export.Dim('batch')},)), or dynamic_axes={'input': {0: 'batch'}} with "
            "dynamo=False), or pass the torch.nn.Module to mirdeconv.load_model") from exc
    if got.ndim == ref.ndim >= 3 and got.shape != ref.shape:
        got = np.moveaxis(got, -1, 1)                 # a channels-last output of a conv net
    if got.shape != ref.shape:
        got = got.reshape(ref.shape) if got.size == ref.size else got
    if got.shape != ref.shape:
        raise ModelLoadError(f"{name}: the converted graph's output has shape {got.shape}, "
                             f"ONNX Runtime's {ref.shape}")
    scale = max(float(np.abs(ref).max()), 1e-6)
    diff = float(np.abs(got - ref).max()) / scale
    if not np.isfinite(diff) or diff > AGREEMENT:
        raise ModelLoadError(
            f"{name}: the converted graph differs from ONNX Runtime by {diff:.2g} of the "
            f"output's range on the same input (allowed {AGREEMENT:g}); the converter "
            "(onnx2tf) got this graph wrong")
    return diff


def _inferred(model: Any) -> Any:
    """``model`` with the shapes of its tensors inferred (what the converter reads)."""
    onnx = backend.onnx()
    try:
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - ONNX's inference errors
        raise ModelLoadError(f"the ONNX graph's shapes cannot be inferred: {_first_line(str(exc))}"
                             ) from exc


def _shapes(model: Any) -> dict[str, list]:
    g = model.graph
    return {v.name: static_shape(v) for v in [*g.value_info, *g.input, *g.output]}


def _real_tensor(graph_def: Any, tensor: str) -> str:
    """Through the Identity nodes a function's outputs are, to the tensor computed."""
    nodes = {n.name: n for n in graph_def.node}
    node = nodes.get(node_name(tensor))
    while node is not None and node.op == "Identity" and node.input:
        tensor = tensor_name(node.input[0])
        node = nodes.get(node_name(tensor))
    return tensor


def from_onnx(
    model: Any,
    representation: Representation,
    *,
    input_axes: str | None = None,
    labels: list[str] | None = None,
    name: str | None = None,
    layers: list[str] | None = None,
    output: str | None = None,
    input_length: int | None = None,
    task: str = "tags",
    input_normalization: str = "none",
    source: str = "",
    family: str = "onnx",
) -> FrozenModel:
    """Convert an ONNX model into a :class:`FrozenModel`.

    Parameters
    ----------
    model : onnx.ModelProto
        Not modified (a copy is prepared).
    representation : Representation
        How audio becomes the model's input.
    input_axes : str, optional
        The ONNX input's layout, a key of :data:`ONNX_AXES` (PyTorch spectrogram nets:
        ``"NCFT"``, batch, channel, mel bands, frames); guessed from the input's shape and
        the representation's bands when omitted.
    labels : list of str, optional
        Class labels of the output.
    name : str, optional
        Defaults to the graph's name.
    layers : list of str, optional
        Layer names (as :func:`.onnx_prep.layer_names` gives them) to offer; default:
        every convolution and what follows it with a time axis.
    output : str, optional
        The ONNX output holding the predictions (default: the first).
    input_length : int, optional
        Frames per patch, for a model with a free input length that was trained on patches.
    task, input_normalization
        As for :class:`~mirdeconv.model.FrozenModel`.

    Raises
    ------
    ModelLoadError
        Bad input layout, several inputs, a converted graph that differs from ONNX Runtime.
    UnsupportedGraphError
        The converter cannot convert an operation (named).
    """
    onnx = backend.onnx()
    prepared = onnx.ModelProto()
    prepared.CopyFrom(model)
    graph_input = _graph_input(prepared)
    in_name = graph_input.name
    onnx_shape = static_shape(graph_input)
    axes = input_axes or guess_axes(onnx_shape, representation)
    tf_axes = converted_axes(axes)
    if len(axes) != len(onnx_shape):
        raise ModelLoadError(f"input_axes {axes!r} has {len(axes)} axes, the ONNX input "
                             f"{tuple(onnx_shape)} {len(onnx_shape)}")
    size = {a: n for a, n in zip(axes, onnx_shape) if isinstance(n, int) and n > 0}
    if size.get("C", 1) != 1 or size.get("F", representation.n_bands) != representation.n_bands:
        raise ModelLoadError(
            f"the ONNX input {tuple(onnx_shape)} (input_axes {axes}) does not take one channel "
            f"of {representation.n_bands} bands: {representation.describe()}")
    outputs = [o.name for o in prepared.graph.output]
    if output is not None and output not in outputs:
        raise ModelLoadError(f"the ONNX model has no output {output!r}; its outputs: "
                             + ", ".join(outputs))
    if output is not None:                       # the predictions first
        order = [output] + [o for o in outputs if o != output]
        keep = {o.name: o for o in prepared.graph.output}
        del prepared.graph.output[:]
        prepared.graph.output.extend(keep[o] for o in order)
    free_batch(prepared, in_name)
    prepared = _inferred(prepared)
    if unroll_recurrent(prepared, _shapes(prepared)):
        prepared = _inferred(prepared)
    named = layer_names(prepared, {k: len(v) for k, v in _shapes(prepared).items()})
    if layers is not None:
        missing = sorted(set(layers) - set(named))
        if missing:
            raise ModelLoadError(f"no such layers: {missing}; the model's layers: {', '.join(named)}")
        named = {k: v for k, v in named.items() if k in layers}
    checked = onnx.ModelProto()
    checked.CopyFrom(prepared)
    out_names = expose(prepared, list(named.values()))
    km = _convert(prepared, axes, in_name)
    tf_in = tuple(km.inputs[0].shape)
    if len(tf_in) != len(tf_axes):
        raise ModelLoadError(f"the converted input {tf_in} does not fit input_axes {axes!r}")
    frozen = _freeze(km, tf_in)
    tag = name or (model.graph.name or "onnx-model")
    _check_against_runtime(checked, in_name, onnx_shape, frozen, tf_axes, axes, tag)
    gd = frozen.graph.as_graph_def()
    tensors = dict(zip(km.output_names, (t.name for t in frozen.outputs)))
    layer_tensors = {k: _real_tensor(gd, tensors[v]) for k, v in named.items() if v in tensors}
    t_len = tf_in[tf_axes.index("T")]
    return FrozenModel(
        name=tag, graph=FrozenGraph(gd), input_tensor=frozen.inputs[0].name, input_axes=tf_axes,
        representation=representation, input_length=input_length or t_len, labels=labels,
        layer_tensors=layer_tensors, output_tensor=_real_tensor(gd, tensors[out_names[0]]),
        task=task, input_normalization=input_normalization, family=family,
        source=source or f"<onnx.ModelProto {tag}>",
    )


class OnnxAdapter(ModelAdapter):
    """Opens ``.onnx`` files and ``onnx.ModelProto`` objects (the ``torch`` extra)."""

    name = "onnx"
    priority = 30
    description = "ONNX models (.onnx files; PyTorch exports), converted by onnx2tf"
    options = ("input_axes", "labels", "name", "layers", "output", "input_length", "task",
               "input_normalization")

    def guess_can_open(self, source: Any) -> bool:
        if isinstance(source, str | os.PathLike):
            return Path(source).suffix.lower() == ".onnx"
        onnx = sys.modules.get("onnx")
        return onnx is not None and isinstance(source, onnx.ModelProto)

    def open(self, source: Any, *, representation: Representation | None = None,
             **options: Any) -> FrozenModel:
        if representation is None:
            raise ModelLoadError(
                "an ONNX model needs its input representation: pass representation=... (a "
                "preset such as 'won2020', a dict or a JSON file), or -r on the command line, "
                "or write NAME.mirdeconv.json beside the model file")
        if isinstance(source, str | os.PathLike):
            options.setdefault("name", Path(source).stem)
            return from_onnx(read_onnx(source), representation, source=os.fspath(source),
                             **options)
        return from_onnx(source, representation, **options)
