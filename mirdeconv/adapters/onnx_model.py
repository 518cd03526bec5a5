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
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .. import backend
from ..errors import MissingExtraError, ModelLoadError, UnsupportedGraphError, message_of
from ..graph import FrozenGraph, node_name, tensor_name
from ..model import FrozenModel
from ..representations import Representation
from .base import ModelAdapter, freeze, needs_representation
from .onnx_prep import (
    expose,
    fold_constants,
    free_batch,
    layer_names,
    static_shape,
    unroll_recurrent,
)

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
        raise ModelLoadError(f"{p.name} is not a valid ONNX model: {message_of(exc)}") from None
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


def _last_said(log: str) -> str:
    """The converter's last words: the last non-empty line of its log, colour codes gone."""
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", log).splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def _converter_failure(log: str, exc: BaseException) -> UnsupportedGraphError:
    """The converter's failure as an error that names the ONNX operation and node."""
    clean = re.sub(r"\x1b\[[0-9;]*m", "", log)
    op = re.findall(r"onnx_op_type:\s*(\S+)", clean)
    name = re.findall(r"onnx_op_name:\s*(\S+)", clean)
    where = f" at {op[-1]} node {name[-1]!r}" if op and name else ""
    said = message_of(exc) if not isinstance(exc, SystemExit) else ""   # SystemExit says "1"
    return UnsupportedGraphError(
        f"the ONNX-to-TensorFlow converter (onnx2tf) cannot convert this graph{where}: "
        f"{said or _last_said(clean) or type(exc).__name__}")


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


def _aligned(got: np.ndarray, ref: np.ndarray) -> np.ndarray | None:
    """The converted graph's tensor in ONNX's layout (the converter moves a conv net's
    channels last), or None when no reading of it has ONNX Runtime's shape."""
    readings = [got] + ([np.moveaxis(got, -1, 1)] if got.ndim >= 3 else [])
    fits = [r for r in readings if r.shape == ref.shape]
    if not fits:
        return got.reshape(ref.shape) if got.size == ref.size and got.ndim != ref.ndim else None
    return min(fits, key=lambda r: float(np.abs(r - ref).max()))


_FIXED_BATCH = (
    "The ONNX file fixes its batch size somewhere inside the graph: export it with a free "
    "batch axis (torch.onnx.export(..., dynamic_shapes=({0: torch.export.Dim('batch')},)), or "
    "dynamic_axes={'input': {0: 'batch'}} with dynamo=False), or pass the torch.nn.Module to "
    "mirdeconv.load_model")


def _ort_runner(ort: Any, model: Any) -> Any:
    """``run(outputs, feeds)`` in ONNX Runtime (made on first use)."""
    session: list = []

    def run(outputs: list[str], feeds: dict) -> list:
        if not session:
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            session.append(ort.InferenceSession(model.SerializeToString(), opts,
                                                providers=["CPUExecutionProvider"]))
        return session[0].run(outputs, feeds)

    return run


def _reference_runner(model: Any) -> Any:
    """``run(outputs, feeds)`` in ONNX's reference evaluator (the operators' specification,
    in numpy: slow, but it runs what ONNX Runtime lacks, such as a batch-first GRU)."""
    def run(outputs: list[str], feeds: dict) -> list:
        return backend.onnx().reference.ReferenceEvaluator(model).run(outputs, feeds)

    return run


def _check_against_runtime(model: Any, fixed: int | None, input_name: str, onnx_shape: list,
                           frozen: Any, pairs: list[tuple[str, int]], tf_axes: str,
                           onnx_axes: str, name: str) -> float | None:
    """Run the ONNX graph as it came in ONNX Runtime (item by item when its batch is fixed)
    and the frozen graph on the same random batch of two; the largest difference, over the
    predictions and every layer offered, relative to each tensor's range.  So the
    converter's work and mirdeconv's own (the freed batch, the unrolled GRUs) are both
    checked.

    Parameters
    ----------
    model : onnx.ModelProto
        The graph as it came, with the offered layers among its outputs.
    fixed : int or None
        The batch it was exported with (None: free).
    pairs : list of (ONNX tensor, index of the frozen function's output)

    Returns
    -------
    float or None
        None when ONNX Runtime cannot run the graph (an operation it does not know); a
        warning says so.

    Raises
    ------
    MissingExtraError
        ONNX Runtime is not installed (it comes with the ``torch`` extra).
    ModelLoadError
        They differ by more than :data:`AGREEMENT`, or the graph does not take a batch of two.
    """
    ort = backend.onnxruntime()
    if ort is None:
        raise MissingExtraError(f"checking a converted ONNX model needs onnxruntime: {backend.TORCH_EXTRA}")
    tf = backend.tensorflow()
    dims = [2] + [d if isinstance(d, int) and d > 0 else 64 for d in onnx_shape[1:]]
    x = np.random.default_rng(0).standard_normal(dims).astype(np.float32)
    items = [x] if fixed is None else [x[k:k + 1] for k in range(len(x))]
    wanted = [t for t, _ in pairs]
    refs = None
    for runner in (_ort_runner(ort, model), _reference_runner(model)):
        try:
            runs = [runner(wanted, {input_name: item}) for item in items]
            refs = [np.concatenate([np.asarray(r[j]) for r in runs]) for j in range(len(pairs))]
            break
        except Exception as exc:  # noqa: BLE001 - the runtimes' errors for operations they lack
            why = message_of(exc)
    if refs is None:
        warnings.warn(f"{name}: the converted graph is not checked: neither ONNX Runtime nor "
                      f"ONNX's reference evaluator can run the file ({why})", stacklevel=4)
        return None
    perm = [onnx_axes.index(a) for a in tf_axes]
    try:
        outs = frozen(tf.constant(np.transpose(x, perm)))
    except tf.errors.OpError as exc:
        raise ModelLoadError(f"{name}: the converted graph does not take a batch of two "
                             f"({message_of(exc)}). {_FIXED_BATCH}") from exc
    worst = 0.0
    for (tensor, k), ref in zip(pairs, refs):
        ref = np.asarray(ref)
        got = _aligned(np.asarray(outs[k]), ref)
        if got is None:
            raise ModelLoadError(
                f"{name}: the converted graph's {tensor} has shape {tuple(np.shape(outs[k]))} "
                f"for a batch of two, ONNX Runtime's {ref.shape}"
                + (f": it does not take a batch of two. {_FIXED_BATCH}" if fixed else ""))
        diff = float(np.abs(got - ref).max()) / max(float(np.abs(ref).max()), 1e-6)
        if not np.isfinite(diff) or diff > AGREEMENT:
            raise ModelLoadError(
                f"{name}: the converted graph differs from ONNX Runtime by {diff:.2g} of the "
                f"range of {tensor} on the same input (allowed {AGREEMENT:g}); the converter "
                "(onnx2tf) got this graph wrong")
        worst = max(worst, diff)
    return worst


def _inferred(model: Any) -> Any:
    """``model`` with the shapes of its tensors inferred (what the converter reads)."""
    onnx = backend.onnx()
    try:
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - ONNX's inference errors
        raise ModelLoadError(f"the ONNX graph's shapes cannot be inferred: {message_of(exc)}") from exc


def _shapes(model: Any) -> dict[str, list]:
    g = model.graph
    return {v.name: static_shape(v) for v in [*g.value_info, *g.input, *g.output]}


def converted_name(onnx_name: str) -> str:
    """The name onnx2tf gives an ONNX tensor among its outputs (``:`` is not allowed there)."""
    return onnx_name.replace(":", "__")


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
    reference = onnx.ModelProto()
    reference.CopyFrom(prepared)                 # the graph as it came, for ONNX Runtime
    fold_constants(prepared)
    fixed = free_batch(prepared, in_name)
    prepared = _inferred(prepared)
    named = layer_names(prepared, {k: len(v) for k, v in _shapes(prepared).items()})
    if layers is not None:
        missing = sorted(set(layers) - set(named))
        if missing:
            raise ModelLoadError(f"no such layers: {missing}; the model's layers: {', '.join(named)}")
        named = {k: v for k, v in named.items() if k in layers}
    out_names = expose(prepared, list(named.values()))
    expose(reference, list(named.values()))
    if unroll_recurrent(prepared, _shapes(prepared)):
        prepared = _inferred(prepared)
    km = _convert(prepared, axes, in_name)
    tf_in = tuple(km.inputs[0].shape)
    if len(tf_in) != len(tf_axes):
        raise ModelLoadError(f"the converted input {tf_in} does not fit input_axes {axes!r}")
    tag = name or (model.graph.name or "onnx-model")
    frozen = freeze(km, tf_in, f"the converted graph of {tag}")
    position = {converted_name(t): k for k, t in enumerate(km.output_names)}
    missing = [t for t in out_names if converted_name(t) not in position]
    if missing:
        raise UnsupportedGraphError(f"{tag}: the converter lost the tensors {missing[:5]}")
    pairs = [(t, position[converted_name(t)]) for t in out_names]
    _check_against_runtime(reference, fixed, in_name, onnx_shape, frozen, pairs, tf_axes, axes, tag)
    gd = frozen.graph.as_graph_def()
    tensors = {t: frozen.outputs[k].name for t, k in pairs}
    layer_tensors = {k: _real_tensor(gd, tensors[v]) for k, v in named.items()}
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
    def guess_can_open(self, source: Any) -> bool:
        if isinstance(source, str | os.PathLike):
            return Path(source).suffix.lower() == ".onnx"
        onnx = sys.modules.get("onnx")
        return onnx is not None and isinstance(source, onnx.ModelProto)

    def open(self, source: Any, *, representation: Representation | None = None,
             input_axes: str | None = None, labels: list[str] | None = None,
             name: str | None = None, layers: list[str] | None = None,
             output: str | None = None, input_length: int | None = None, task: str = "tags",
             input_normalization: str = "none") -> FrozenModel:
        """Open an ``onnx.ModelProto`` or an ``.onnx`` file (the options as for
        :func:`from_onnx`)."""
        rep = needs_representation(representation, "an ONNX model")
        options = dict(input_axes=input_axes, labels=labels, layers=layers, output=output,
                       input_length=input_length, task=task,
                       input_normalization=input_normalization)
        if isinstance(source, str | os.PathLike):
            return from_onnx(read_onnx(source), rep, source=os.fspath(source),
                             name=Path(source).stem if name is None else name, **options)
        return from_onnx(source, rep, name=name, **options)
