"""ONNX graphs made ready for the converter: layer names, layer outputs, a free batch axis,
recurrent layers as plain operations.

Everything here rewrites an ``onnx.ModelProto`` into one that computes the same function
(checked after conversion against ONNX Runtime, :mod:`.onnx_model`):

* :func:`layer_names`: readable names for the outputs worth deconvolving, from the PyTorch
  module path the exporter recorded (``layer3.relu``, ``layers.0.bn``);
* :func:`expose`: those outputs added to the graph's outputs, so the converted graph keeps a
  tensor for each;
* :func:`free_batch`: an input exported with a fixed batch of one takes any batch (the engine
  runs a track's patches, and a layer's features, as one batch);
* :func:`unroll_recurrent`: ``GRU`` as the matrix products and gates it is made of, one time
  step after another, so the converted graph holds no loop and any batch fits it.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from typing import Any

import numpy as np

from .. import backend
from ..errors import ModelLoadError, message_of

__all__ = ["FEATURE_OPS", "layer_names", "expose", "free_batch", "unroll_recurrent",
           "static_shape", "fold_constants", "prune"]

#: ONNX operations whose outputs are offered as feature layers (those with a time and a
#: channel axis after a convolution; :class:`mirdeconv.model.FrozenModel` keeps those).
FEATURE_OPS = frozenset({
    "Conv", "Relu", "LeakyRelu", "Elu", "Selu", "PRelu", "Sigmoid", "HardSigmoid", "HardSwish",
    "Gelu", "Softplus", "Mish", "Tanh", "BatchNormalization", "InstanceNormalization",
    "LayerNormalization", "GroupNormalization", "MaxPool", "AveragePool", "Add", "Mul",
    "Concat", "ReduceMax", "ReduceMean",
})


def fold_constants(model: Any) -> None:
    """Compute what depends on constants only (a scale reshaped to ``[1, C, 1, 1]``, a GRU's
    weights unsqueezed) and keep it as constants, in place (onnxscript's constant folding):
    the converter mistakes some of those operations' layouts."""
    try:
        backend.onnx_optimizer().fold_constants(model)
    except Exception as exc:  # noqa: BLE001 - the optimizer's errors on graphs it does not read
        raise ModelLoadError(f"the ONNX graph's constants cannot be folded: {message_of(exc)}") from exc


def static_shape(value_info: Any) -> list[int | str | None]:
    """An ONNX value's shape: ints, names of symbolic dimensions, None where unknown."""
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims]


def _scope_name(node: Any) -> tuple[str, str] | None:
    """(module path, operation name) from the torch.export-based exporter's metadata."""
    meta = {p.key: p.value for p in node.metadata_props}
    raw = meta.get("pkg.torch.onnx.name_scopes")
    if not raw:
        return None
    try:
        scopes = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if not isinstance(scopes, list) or not scopes:
        return None
    return (str(scopes[-2]) if len(scopes) > 2 else ""), str(scopes[-1])


def _path_name(node: Any) -> tuple[str, str]:
    """(module path, operation name) from a node's own name: the TorchScript exporter's
    ``/layer1/relu/Relu`` gives ("layer1.relu", "Relu"); any other name is its own."""
    parts = [p for p in node.name.split("/") if p]
    if node.name.startswith("/") and parts:
        return ".".join(parts[:-1]), parts[-1]
    return "", node.name or node.output[0]


def layer_names(model: Any, ranks: dict[str, int]) -> dict[str, str]:
    """Readable names of the outputs offered as layers, in graph order.

    A node is named by the PyTorch module that made it, from the metadata of the
    torch.export-based exporter or the node names of the TorchScript one: a module's last
    offered operation (its output) takes the module's path (``layer1.relu``, ``se``), the
    others inside it the path and their own name (``se.relu``); operations outside any module
    their own name, numbered in order (``cat``, ``add``, ``add_1``).  Where one call was
    exported as several operations (``F.silu``: a sigmoid, then a product), only the last is
    offered.  Any other ONNX file: the node's name.

    Parameters
    ----------
    model : onnx.ModelProto
    ranks : dict
        Tensor name -> rank (from shape inference); outputs of rank < 3 have no time and
        channel axes and are skipped.

    Returns
    -------
    dict
        Layer name -> ONNX tensor name.
    """
    constants = {i.name for i in model.graph.initializer} | {
        n.output[0] for n in model.graph.node if n.op_type == "Constant"}
    found: list[tuple[str, str, str]] = []
    for node in model.graph.node:
        if node.op_type not in FEATURE_OPS or not node.output or ranks.get(node.output[0], 0) < 3:
            continue
        if node.op_type in ("Add", "Mul") and any(i in constants for i in node.input):
            continue                    # a bias or a scale, not a residual sum or a gate
        path, op = _scope_name(node) or _path_name(node)
        found = [f for f in found if f[:2] != (path, op)] + [(path, op, node.output[0])]
    last = {path: tensor for path, _, tensor in found}
    counts: Counter[tuple[str, str]] = Counter()
    names: dict[str, str] = {}
    for path, op, tensor in found:
        if path and last[path] == tensor:
            name = path
        else:
            base = re.sub(r"_\d+$", "", op)
            k = counts[(path, base)]
            counts[(path, base)] += 1
            name = ".".join(s for s in (path, base if not k else f"{base}_{k}") if s)
        while name in names:
            name += "'"
        names[name] = tensor
    return names


def expose(model: Any, tensors: list[str]) -> list[str]:
    """Add ``tensors`` to the graph's outputs (those not there yet); returns every output,
    in order."""
    onnx = backend.onnx()
    have = [o.name for o in model.graph.output]
    for t in tensors:
        if t not in have:
            model.graph.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
            have.append(t)
    return have


def _initializers(model: Any) -> dict[str, Any]:
    return {i.name: i for i in model.graph.initializer}


def free_batch(model: Any, input_name: str) -> int | None:
    """Let the input take any batch.  When it was exported with a fixed batch, its batch
    axis becomes symbolic, and a constant ``Reshape`` target that fixes the same batch in
    front (``x.flatten(1)`` exported as a reshape to ``[1, 64]``) takes any batch instead
    (``[-1, 64]``).  A batch fixed elsewhere in the graph is found when the converted graph
    is checked on a batch of two (:func:`.onnx_model.from_onnx`).

    Returns
    -------
    int or None
        The batch it was exported with (None: it was free already).
    """
    onnx = backend.onnx()
    inp = next(i for i in model.graph.input if i.name == input_name)
    dim0 = inp.type.tensor_type.shape.dim[0]
    if not dim0.HasField("dim_value"):
        return None
    fixed = int(dim0.dim_value)
    dim0.ClearField("dim_value")
    dim0.dim_param = "batch"
    for out in model.graph.output:
        dims = out.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == fixed:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
    del model.graph.value_info[:]
    inits = _initializers(model)
    consts = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant"}
    for node in model.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or \
                _constant_of(model, node.input[0]) is not None:   # a constant's own reshape
            continue
        target = node.input[1]
        if target in inits:
            shape = onnx.numpy_helper.to_array(inits[target])
        elif target in consts:
            shape = onnx.numpy_helper.to_array(consts[target].attribute[0].t)
        else:
            continue
        allowzero = any(a.name == "allowzero" and a.i for a in node.attribute)
        if shape.ndim == 1 and shape.size and shape[0] == fixed:
            if -1 in shape[1:] and allowzero:
                continue                                   # neither -1 nor 0 can stand for it
            new = shape.copy()
            new[0] = -1 if -1 not in shape[1:] else 0      # any batch (0: copy the input's)
            name = f"{target}__batch_free_{node.output[0]}"
            model.graph.initializer.append(onnx.numpy_helper.from_array(new.astype(np.int64), name))
            node.input[1] = name
    return fixed


# -- recurrent layers ---------------------------------------------------------------------------
class _Builder:
    """Adds nodes and constants to a graph under one prefix."""

    def __init__(self, model: Any, prefix: str) -> None:
        self.onnx = backend.onnx()
        self.model, self.prefix, self.count = model, re.sub(r"\W", "_", prefix), 0
        self.nodes: list[Any] = []
        opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=13)
        self.axes_input = opset >= 13

    def _name(self, what: str) -> str:
        self.count += 1
        return f"{self.prefix}/{what}_{self.count}"

    def const(self, value: np.ndarray, what: str = "const") -> str:
        name = self._name(what)
        self.model.graph.initializer.append(self.onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        out = output or self._name(op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [out], name=self._name(op_type),
                                                     **attrs))
        return out

    def axes_op(self, op_type: str, x: str, axes: list[int], output: str | None = None) -> str:
        if self.axes_input:
            return self.op(op_type, [x, self.const(np.asarray(axes, np.int64), "axes")], output)
        return self.op(op_type, [x], output, axes=axes)

    def split(self, x: str, size: int) -> list[str]:
        """``x``'s last axis cut in three parts of ``size`` (a GRU's gates)."""
        return [self.op("Slice", [x, self.const(np.asarray([k * size], np.int64), "start"),
                                  self.const(np.asarray([(k + 1) * size], np.int64), "end"),
                                  self.const(np.asarray([-1], np.int64), "axis")])
                for k in range(3)]

    def step(self, x: str, axis: int, t: int) -> str:
        """``x[t]`` along ``axis`` (a Slice and a Squeeze)."""
        s = self.op("Slice", [x, self.const(np.asarray([t], np.int64), "start"),
                              self.const(np.asarray([t + 1], np.int64), "end"),
                              self.const(np.asarray([axis], np.int64), "axis")])
        return self.axes_op("Squeeze", s, [axis])


def _attrs(node: Any) -> dict[str, Any]:
    onnx = backend.onnx()
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _gru(b: _Builder, node: Any, W: np.ndarray, R: np.ndarray, B: np.ndarray | None,
         h0: str | None, seq: int) -> None:
    """One forward GRU (ONNX's equations, both ``linear_before_reset`` readings) over ``seq``
    steps, written into ``node``'s outputs."""
    a = _attrs(node)
    H, layout = int(a["hidden_size"]), int(a.get("layout", 0))
    lbr = int(a.get("linear_before_reset", 0))
    B = np.zeros(6 * H, np.float32) if B is None else B
    # the input's projection for every step at once (one matrix product), the recurrent
    # one per step (one Gemm; the converter checks each MatMul it converts, slowly)
    W_all = b.const(np.ascontiguousarray(W.T), "W")                           # (in, 3H): z, r, h
    b_x = b.const(B[:3 * H] + np.concatenate([B[3 * H:5 * H], np.zeros(H, B.dtype)]), "bx")
    R_all = b.const(np.ascontiguousarray(R.T), "R")                           # (H, 3H)
    b_h = b.const(np.concatenate([np.zeros(2 * H, B.dtype), B[5 * H:]]), "bh")
    Rh, rbh = b.const(np.ascontiguousarray(R[2 * H:].T), "Rh"), b.const(B[5 * H:], "rbh")
    one = b.const(np.asarray(1.0, np.float32), "one")
    source, x_axis = node.input[0], 1 if layout else 0
    swapped = _batch_first(b, source) if not layout else None
    if swapped is not None:           # (seq, batch, in) made from (batch, seq, in): use that
        source, x_axis = swapped, 1
    gates_x = b.op("Add", [b.op("MatMul", [source, W_all]), b_x])             # (.., 3H)
    h = h0
    outs: list[str] = []
    for t in range(seq):
        zx, rx, nx = b.split(b.step(gates_x, x_axis, t), H)                   # (batch, H) each
        if h is None:                                                          # h = 0
            z, r = b.op("Sigmoid", [zx]), b.op("Sigmoid", [rx])
            rec = b.op("Mul", [r, rbh]) if lbr else rbh
        else:
            zh, rh, nh = b.split(b.op("Gemm", [h, R_all, b_h]), H)
            z, r = b.op("Sigmoid", [b.op("Add", [zx, zh])]), b.op("Sigmoid", [b.op("Add", [rx, rh])])
            rec = (b.op("Mul", [r, nh]) if lbr                          # nh = Rh h + Rbh
                   else b.op("Gemm", [b.op("Mul", [r, h]), Rh, rbh]))
        n = b.op("Tanh", [b.op("Add", [nx, rec])])
        new = b.op("Mul", [b.op("Sub", [one, z]), n])
        h = new if h is None else b.op("Add", [new, b.op("Mul", [z, h])])
        outs.append(h)
    y_out = node.output[0] if node.output and node.output[0] else None
    yh_out = node.output[1] if len(node.output) > 1 and node.output[1] else None
    squeezed = _direction_dropped(b.model, y_out, layout) if y_out else None
    if squeezed is not None:   # (seq, batch, H) or (batch, seq, H) straight where it is wanted
        target, t = squeezed.output[0], 1 if layout else 0
        back = _swapped_back(b.model, target) if not layout else None
        if back is not None:   # ... and swapped back to (batch, seq, H): made so at once
            target, t = back.output[0], 1
            b.model.graph.node.remove(back)
        b.op("Concat", [b.axes_op("Unsqueeze", o, [t]) for o in outs], target, axis=t)
        b.model.graph.node.remove(squeezed)
    if y_out:  # Y: (seq, 1, batch, H), or (batch, seq, 1, H) with layout 1 (pruned if unused)
        steps = [b.axes_op("Unsqueeze", o, [1, 2] if layout else [0, 1]) for o in outs]
        b.op("Concat", steps, y_out, axis=1 if layout else 0)
    if yh_out:  # Y_h: (1, batch, H), or (batch, 1, H)
        b.axes_op("Unsqueeze", h, [1] if layout else [0], yh_out)


def _is_swap(node: Any) -> bool:
    """A Transpose of a rank-3 tensor's first two axes (batch-first <-> seq-first)."""
    perm = [list(a.ints) for a in node.attribute if a.name == "perm"]
    return node.op_type == "Transpose" and perm == [[1, 0, 2]]


def _batch_first(b: _Builder, x: str) -> str | None:
    """A seq-first GRU input (seq, batch, in) that a Transpose made from a tensor with the
    batch in front (PyTorch's ``batch_first=True``, a permute before it): the same sequence
    batch-first (batch, seq, in), so the steps are sliced with the batch kept in front."""
    node = next((n for n in b.model.graph.node if x in n.output), None)
    perm = [list(a.ints) for a in node.attribute if a.name == "perm"] if node is not None else []
    if node is None or node.op_type != "Transpose" or not perm or len(perm[0]) != 3 or perm[0][1] != 0:
        return None
    order = [0, perm[0][0], perm[0][2]]
    return node.input[0] if order == [0, 1, 2] else b.op("Transpose", [node.input[0]], perm=order)


def _swapped_back(model: Any, y: str) -> Any | None:
    """The Transpose that turns a seq-first sequence back to batch-first, its only use."""
    users = [n for n in model.graph.node if y in n.input]
    return users[0] if len(users) == 1 and _is_swap(users[0]) else None


def _direction_dropped(model: Any, y: str, layout: int) -> Any | None:
    """The node that drops a one-directional recurrent layer's direction axis from ``Y``:
    a ``Squeeze`` of that axis (seq, batch, H; or batch, seq, H with layout 1), or the
    ``Transpose`` to (seq, batch, 1, H) then ``Reshape`` to (seq, batch, H) that PyTorch's
    exporter writes.  None when ``Y`` is used otherwise."""
    users = [n for n in model.graph.node if y in n.input]
    if len(users) != 1:
        return None
    user = users[0]
    if user.op_type == "Squeeze":
        axes = ([a.ints for a in user.attribute if a.name == "axes"] or [None])[0]
        if axes is None and len(user.input) > 1:
            axes = _constant_of(model, user.input[1])
        return user if axes is not None and [int(a) % 4 for a in np.ravel(axes)] == [2 if layout else 1] \
            else None
    perm = [a.ints for a in user.attribute if a.name == "perm"]
    if layout or user.op_type != "Transpose" or not perm or list(perm[0]) != [0, 2, 1, 3]:
        return None
    after = [n for n in model.graph.node if user.output[0] in n.input]
    reshapes = [n for n in after if n.op_type == "Reshape" and n.input[0] == user.output[0]]
    if len(reshapes) != 1 or any(n.op_type not in ("Reshape", "Shape") for n in after):
        return None
    target = _constant_of(model, reshapes[0].input[1])
    if target is not None and len(target) != 3:
        return None
    return reshapes[0]


def prune(model: Any) -> int:
    """Remove the nodes and constants nothing uses (nor the graph's outputs); returns how
    many nodes."""
    live = {o.name for o in model.graph.output}
    keep = []
    for node in reversed(model.graph.node):
        if any(o in live for o in node.output):
            keep.append(node)
            live.update(i for i in node.input if i)
    dropped = len(model.graph.node) - len(keep)
    if dropped:
        del model.graph.node[:]
        model.graph.node.extend(reversed(keep))
        inits = [i for i in model.graph.initializer if i.name in live]
        del model.graph.initializer[:]
        model.graph.initializer.extend(inits)
    return dropped


#: Operations that move or repeat values without changing them (a zero stays zero).
_VALUE_KEEPING = ("Slice", "Expand", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity",
                  "Cast", "Tile")


def _is_zero(model: Any, name: str) -> bool:
    """Whether a tensor is zeros whatever the input (an initial state the exporter makes
    with ``Expand(0, shape)`` for any batch)."""
    for _ in range(16):
        value = _constant_of(model, name)
        if value is not None:
            return not np.any(value)
        node = next((n for n in model.graph.node if name in n.output), None)
        if node is None:
            return False
        if node.op_type == "ConstantOfShape":
            fill = [a for a in node.attribute if a.name == "value"]
            return not fill or not np.any(backend.onnx().numpy_helper.to_array(fill[0].t))
        if node.op_type not in _VALUE_KEEPING:
            return False
        name = node.input[0]
    return False


def _constant_of(model: Any, name: str, depth: int = 8) -> np.ndarray | None:
    """The value of a tensor that depends on constants only (an initializer, a Constant, or
    a few operations on them, such as the Unsqueeze an exporter puts on a GRU's weights),
    evaluated with ONNX's reference evaluator; None when it depends on the input."""
    onnx = backend.onnx()
    if not name or depth < 0:
        return None
    inits = _initializers(model)
    if name in inits:
        return onnx.numpy_helper.to_array(inits[name])
    node = next((n for n in model.graph.node if name in n.output), None)
    if node is None:
        return None
    if node.op_type == "Constant":
        return onnx.numpy_helper.to_array(node.attribute[0].t)
    values = [_constant_of(model, i, depth - 1) if i else None for i in node.input]
    if any(v is None for i, v in zip(node.input, values) if i):
        return None
    feeds = {i: v for i, v in zip(node.input, values) if i}
    try:
        evaluator = onnx.reference.ReferenceEvaluator(node)
        return np.asarray(evaluator.run(None, feeds)[list(node.output).index(name)])
    except Exception:  # noqa: BLE001 - an operation the reference evaluator does not know
        return None


def _unexpanded(model: Any, name: str) -> str:
    """A constant's name where ``name`` is that constant expanded to the batch (broadcasting
    gives the same); else ``name``."""
    node = next((n for n in model.graph.node if name in n.output), None)
    if node is not None and node.op_type == "Expand" and _constant_of(model, node.input[0]) is not None:
        return node.input[0]
    return name


def unroll_recurrent(model: Any, shapes: dict[str, list]) -> int:
    """Replace every ``GRU`` by its equations, step by step.

    Supported: the forward direction, the default activations (sigmoid, tanh), no clip, no
    ``sequence_lens``, both layouts and both ``linear_before_reset`` readings, an initial
    state that is absent, zero, or a tensor; a sequence whose length is fixed.

    Parameters
    ----------
    model : onnx.ModelProto
        Rewritten in place.
    shapes : dict
        Tensor name -> shape (from shape inference).

    Returns
    -------
    int
        How many recurrent layers were unrolled.

    Raises
    ------
    ModelLoadError
        A recurrent layer this cannot unroll, naming it and why; LSTM and RNN layers.
    """
    done = 0
    for node in list(model.graph.node):
        if node.op_type in ("LSTM", "RNN"):
            raise ModelLoadError(
                f"{node.op_type} layer {node.name!r}: recurrent layers other than GRU are not "
                "supported yet (the convolutional layers before it can be opened by cutting "
                "the model before it)")
        if node.op_type != "GRU":
            continue
        a = _attrs(node)
        problems = []
        if a.get("direction", b"forward") not in (b"forward", "forward"):
            problems.append(f"direction {a['direction']!r}")
        if "clip" in a:
            problems.append("clip")
        acts = [x.decode() if isinstance(x, bytes) else x for x in a.get("activations", [])]
        if acts and [x.lower() for x in acts] != ["sigmoid", "tanh"]:
            problems.append(f"activations {acts}")
        if len(node.input) > 4 and node.input[4]:
            problems.append("sequence_lens")
        W, R = _constant_of(model, node.input[1]), _constant_of(model, node.input[2])
        B = _constant_of(model, node.input[3]) if len(node.input) > 3 and node.input[3] else None
        if W is None or R is None or (B is None and len(node.input) > 3 and node.input[3]):
            problems.append("weights or biases that are not constants")
        layout = int(a.get("layout", 0))
        seq = (shapes.get(node.input[0]) or [None, None])[1 if layout else 0]
        if not isinstance(seq, int):
            problems.append("a sequence whose length is not fixed")
        if problems:
            raise ModelLoadError(f"GRU layer {node.name!r} cannot be opened: "
                                 + ", ".join(problems))
        h0_name = node.input[5] if len(node.input) > 5 else ""
        b = _Builder(model, node.name or node.output[0])
        h0 = None
        if h0_name and not _is_zero(model, h0_name):
            source = _unexpanded(model, h0_name)      # a constant broadcast to the batch
            value = _constant_of(model, source)
            h0 = (b.const(np.take(value, 0, axis=1 if layout else 0), "h0") if value is not None
                  else b.axes_op("Squeeze", source, [1 if layout else 0]))
        _gru(b, node, W[0], R[0], None if B is None else B[0], h0, int(seq))
        at = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        for k, new in enumerate(b.nodes):
            model.graph.node.insert(at + k, new)
        done += 1
    if done:
        prune(model)
        del model.graph.value_info[:]
    return done
