"""Frozen TensorFlow graphs: load, cut at a layer, follow axes and receptive fields.

Every model in mirdeconv ends as a :class:`FrozenGraph`: a ``GraphDef`` whose
variables are constants, with a named input.  This module reads such graphs
and works out, for any tensor that depends on the input, which of its axes are
batch / time / frequency / features and its receptive field in input frames and
bins, by walking the operations between the input and that tensor.

Axis labels used throughout: ``N`` batch, ``T`` time, ``F`` frequency,
``C`` features (channels made by a convolution), ``1`` any other axis
(unit axes, the input's own channel axis).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from . import backend
from .errors import ModelLoadError, UnsupportedGraphError

__all__ = ["FrozenGraph", "TensorInfo", "LayerInfo", "tensor_name", "node_name"]

#: Operations that never make a gradient path (they read shapes, not values).
SHAPE_OPS = {"Shape", "ShapeN", "Size", "Rank"}
CONV_OPS = {"Conv2D", "DepthwiseConv2dNative", "Conv3D"}
POOL_OPS = {"MaxPool", "MaxPoolV2", "AvgPool"}
NONLINEAR_OPS = {"Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Softplus", "Sigmoid", "Tanh"}
ELEMENTWISE_OPS = {"BiasAdd", "Add", "AddV2", "Sub", "Mul", "RealDiv", "Neg"}
PASS_OPS = {"Identity", "Snapshot", "CheckNumerics", "PreventGradient", "StopGradient",
            "IdentityN", "EnsureShape"}
BN_OPS = {"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"}
#: Operations that treat every time step alike, so a longer input just gives a longer output.
TIME_AGNOSTIC_OPS = (CONV_OPS | POOL_OPS | NONLINEAR_OPS | ELEMENTWISE_OPS | PASS_OPS | BN_OPS
                     | {"Pad", "PadV2", "MirrorPad", "ConcatV2", "Squeeze", "ExpandDims",
                        "Transpose"})


def node_name(tensor: str) -> str:
    """``'scope/op:1'`` -> ``'scope/op'`` (also strips a control-input ``^``)."""
    return tensor.lstrip("^").split(":")[0]


def tensor_name(name: str) -> str:
    """``'scope/op'`` -> ``'scope/op:0'``; names with an index are kept."""
    return name if ":" in name else f"{name}:0"


def _attr(node: Any, key: str) -> Any:
    """A NodeDef attribute as a Python value (ints, lists of ints, strings, bools, floats)."""
    if key not in node.attr:
        return None
    a = node.attr[key]
    kind = a.WhichOneof("value")
    if kind == "list":
        lst = a.list
        return list(lst.i) or list(lst.f) or [s.decode() for s in lst.s] or []
    if kind == "s":
        return a.s.decode()
    if kind in ("i", "f", "b"):
        return getattr(a, kind)
    if kind == "shape":
        if a.shape.unknown_rank:
            return None
        return [d.size if d.size >= 0 else None for d in a.shape.dim]
    if kind == "type":
        return a.type
    return a


@dataclass(frozen=True)
class TensorInfo:
    """What the graph analysis knows about one tensor that depends on the input.

    Attributes
    ----------
    axes : str
        One label per axis (``N``, ``T``, ``F``, ``C``, ``1``, or ``?`` when lost).
    rf : dict
        Receptive field per input axis label: ``{"T": (size, jump), "F": (size, jump)}``,
        sizes in input frames / bins, jump = input frames / bins between neighbouring units.
    time_agnostic : bool
        Every operation between the input and this tensor treats time steps alike
        (the graph up to here is fully convolutional along time).
    after_conv : bool
        A convolution lies between the input and this tensor.
    """

    axes: str
    rf: dict[str, tuple[int, int]]
    time_agnostic: bool
    after_conv: bool


@dataclass(frozen=True)
class LayerInfo:
    """A feature layer offered for deconvolution.

    Attributes
    ----------
    name : str
        The name people use (a Keras layer name, or a readable name for a graph node).
    tensor : str
        The tensor in the frozen graph (``'node:0'``).
    n_features : int
        Number of feature maps.
    axes : str
        Axis labels of the tensor, batch first (e.g. ``"NFTC"``).
    shape : tuple of int
        Shape of the tensor for one input patch of the model's nominal size.
    receptive_field : tuple of (int, int or None)
        Receptive field in input (frames, bins); bins is None when the frequency axis is gone.
    stride : tuple of (int, int or None)
        Input frames / bins between neighbouring units.
    time_agnostic : bool
        Fully convolutional along time up to here (whole tracks can go through at once).
    op : str
        The graph operation that produces the tensor.
    """

    name: str
    tensor: str
    n_features: int
    axes: str
    shape: tuple[int, ...]
    receptive_field: tuple[int, int | None]
    stride: tuple[int, int | None]
    time_agnostic: bool
    op: str = ""
    description: str = ""

    @property
    def time_axis(self) -> int:
        """Index of the time axis in the tensor (batch is axis 0)."""
        return self.axes.index("T")

    @property
    def feature_axis(self) -> int:
        """Index of the features axis in the tensor."""
        return self.axes.index("C")

    @property
    def freq_axis(self) -> int | None:
        """Index of the frequency axis, or None when the layer has none left."""
        return self.axes.index("F") if "F" in self.axes else None

    def receptive_field_seconds(self, seconds_per_frame: float) -> float:
        """Receptive field along time in seconds."""
        return self.receptive_field[0] * seconds_per_frame


@dataclass
class FrozenGraph:
    """A frozen TensorFlow graph (``GraphDef``) with helpers to read it.

    Parameters
    ----------
    graph_def : tensorflow GraphDef
        Variables already folded into constants.
    """

    graph_def: Any
    _const_cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> FrozenGraph:
        """Read a binary frozen graph (``.pb``).

        Raises
        ------
        ModelLoadError
            When the file does not exist or is not a GraphDef.
        """
        tf = backend.tensorflow()
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ModelLoadError(f"model file not found: {path}")
        data = open(path, "rb").read()
        gd = tf.compat.v1.GraphDef()
        try:
            gd.ParseFromString(data)
        except Exception as exc:  # protobuf DecodeError and friends
            raise ModelLoadError(f"{path} is not a TensorFlow frozen graph (.pb): {exc}") from exc
        if not gd.node:
            raise ModelLoadError(f"{path} is not a TensorFlow frozen graph: it holds no operations")
        return cls(gd)

    @cached_property
    def nodes(self) -> dict[str, Any]:
        """Node name -> NodeDef."""
        return {n.name: n for n in self.graph_def.node}

    def node(self, name: str) -> Any:
        """The NodeDef of a node or tensor name."""
        try:
            return self.nodes[node_name(name)]
        except KeyError:
            raise UnsupportedGraphError(f"the graph has no node {node_name(name)!r}") from None

    def data_inputs(self, node: Any) -> list[str]:
        """Tensor names a node reads (control inputs dropped)."""
        return [tensor_name(i) for i in node.input if not i.startswith("^")]

    def attr(self, node: Any, key: str) -> Any:
        """Read an attribute of a node (see :func:`_attr`)."""
        return _attr(node, key)

    def placeholders(self) -> list[str]:
        """Names of the graph's Placeholder nodes."""
        return [n.name for n in self.graph_def.node if n.op in ("Placeholder",)]

    def conv_kernels(self, graph_def: Any) -> dict[str, Any]:
        """``input_map`` entries that feed the constant kernels of the convolutions in
        ``graph_def`` as captured tensors instead of Const nodes.

        TensorFlow's oneDNN convolution caches a constant kernel, and with a kernel as tall as
        its input (a full-height filter: output height 1) that cache aborts the whole process
        (``Check failed: dtype() == expected_dtype``, TF 2.21).  A kernel that is not a
        Const is never cached; the forward pass loses nothing measurable.
        """
        tf = backend.tensorflow()
        out: dict[str, Any] = {}
        for node in graph_def.node:
            if node.op not in ("Conv2D", "DepthwiseConv2dNative", "_FusedConv2D") or len(node.input) < 2:
                continue
            name = tensor_name(node.input[1])
            value = self.const_value(name)
            if value is not None:
                key = ("kernel", name)
                if key not in self._const_cache:
                    self._const_cache[key] = tf.constant(value)
                out[name] = self._const_cache[key]
        return out

    def const_value(self, tensor: str) -> np.ndarray | None:
        """Value of a constant tensor (following Identity chains), or None if it is not constant."""
        name = node_name(tensor)
        if name in self._const_cache:
            return self._const_cache[name]
        node = self.nodes.get(name)
        seen = 0
        while node is not None and node.op in ("Identity", "Snapshot") and seen < 100:
            node = self.nodes.get(node_name(node.input[0]))
            seen += 1
        if node is None or node.op != "Const":
            return None
        tf = backend.tensorflow()
        value = tf.make_ndarray(node.attr["value"].tensor)
        self._const_cache[name] = value
        return value

    def content_digest(self) -> str:
        """SHA-256 of the graph's operations, attributes, constants and wiring, blind to node
        names and node order (the same model traced twice, or saved and reloaded, gets the
        same digest): every node is hashed with the hashes of its inputs (a Merkle DAG)."""
        import hashlib

        memo: dict[str, bytes] = {}
        for name in self.ancestors([n.name for n in self.graph_def.node]):
            n = self.nodes[name]
            h = hashlib.sha256(n.op.encode())
            for i in n.input:
                h.update(memo.get(node_name(i), b"?") + i.lstrip("^").partition(":")[2].encode()
                         + (b"^" if i.startswith("^") else b""))
            for key in sorted(n.attr):
                if not key.startswith("_"):
                    h.update(key.encode() + n.attr[key].SerializeToString(deterministic=True))
            memo[name] = h.digest()
        return hashlib.sha256(b"".join(sorted(memo.values()))).hexdigest()

    # -- structure ------------------------------------------------------------------
    def ancestors(self, tensors: list[str]) -> list[str]:
        """Nodes needed to compute ``tensors``, in topological order (inputs first)."""
        order: list[str] = []
        state: dict[str, int] = {}
        for t in tensors:
            stack = [(node_name(t), False)]
            while stack:
                name, done = stack.pop()
                if done:
                    if state.get(name) != 2:
                        state[name] = 2
                        order.append(name)
                    continue
                if state.get(name):
                    continue
                state[name] = 1
                stack.append((name, True))
                node = self.node(name)
                for i in node.input:
                    dep = node_name(i)
                    if not state.get(dep):
                        stack.append((dep, False))
        return order

    def depends_on(self, order: list[str], input_tensor: str) -> set[str]:
        """Nodes of ``order`` whose values depend on the input's values (not just its shape)."""
        src = node_name(input_tensor)
        var = {src}
        for name in order:
            node = self.nodes[name]
            if name == src or node.op in SHAPE_OPS:
                continue
            if any(node_name(i) in var for i in node.input if not i.startswith("^")):
                var.add(name)
        return var

    def subgraph_def(self, outputs: list[str]) -> Any:
        """A GraphDef with only what ``outputs`` need."""
        tf = backend.tensorflow()
        keep = set(self.ancestors(outputs))
        gd = tf.compat.v1.GraphDef()
        gd.versions.CopyFrom(self.graph_def.versions)
        gd.library.CopyFrom(self.graph_def.library)
        gd.node.extend(n for n in self.graph_def.node if n.name in keep)
        return gd

    # -- axes and receptive fields ----------------------------------------------------------
    def trace_axes(
        self, input_tensor: str, input_axes: str, shapes: dict[str, tuple[int, ...]]
    ) -> dict[str, TensorInfo]:
        """Follow axis labels and receptive fields from the input to every dependent tensor.

        Parameters
        ----------
        input_tensor : str
            The input tensor's name.
        input_axes : str
            Labels of the input's axes, batch first (e.g. ``"NTF"`` or ``"NFTC"``; a
            trailing ``C`` on the input means its own channel axis and is relabelled ``1``).
        shapes : dict
            Tensor name -> static shape for one nominal input (from a probe run).

        Returns
        -------
        dict
            Tensor name -> :class:`TensorInfo`, for every tensor that depends on the input.
        """
        src = tensor_name(input_tensor)
        axes0 = input_axes.replace("C", "1")
        info: dict[str, TensorInfo] = {
            src: TensorInfo(axes0, {"T": (1, 1), "F": (1, 1)}, True, False)
        }
        order = self.ancestors(list(shapes))
        for name in order:
            node = self.nodes[name]
            ins = [t for t in self.data_inputs(node) if t in info]
            if not ins or node.op in SHAPE_OPS or name == node_name(src):
                continue
            first = info[ins[0]]
            out = tensor_name(name)
            out_shape = shapes.get(out)
            in_shape = shapes.get(ins[0])
            try:
                info[out] = self._propagate(node, ins, info, first, in_shape, out_shape, shapes)
            except _Lost:
                info[out] = TensorInfo("?" * len(out_shape or ()), first.rf, False,
                                       first.after_conv)
        return info

    def _propagate(self, node, ins, info, first, in_shape, out_shape, shapes) -> TensorInfo:
        op = node.op
        agn = all(info[t].time_agnostic for t in ins) and op in TIME_AGNOSTIC_OPS
        if agn and op in ELEMENTWISE_OPS and "T" in first.axes and out_shape is not None:
            # a constant that differs along time (e.g. batch norm over the time axis) ties
            # the graph to its input length
            t_out = first.axes.index("T") + len(out_shape) - len(first.axes)
            for t in self.data_inputs(node):
                cs = shapes.get(t) if t not in info else None
                if cs is None:
                    continue
                k = t_out - (len(out_shape) - len(cs))
                if 0 <= k < len(cs) and cs[k] not in (1, None):
                    agn = False
        after = any(info[t].after_conv for t in ins)
        rf = {k: v for k, v in first.rf.items()}
        for t in ins[1:]:  # merge branches: the widest receptive field
            for k, (s, j) in info[t].rf.items():
                s0, j0 = rf.get(k, (s, j))
                rf[k] = (max(s0, s), max(j0, j))
        axes = list(first.axes)
        if out_shape is None or in_shape is None:
            raise _Lost
        if op in CONV_OPS or op in POOL_OPS:
            if op in CONV_OPS:
                w = self.const_value(node.input[1])
                if w is None:
                    raise UnsupportedGraphError(f"{node.name}: convolution kernel is not constant")
                ksize = [1, *w.shape[:-2], 1]
                after = True
            else:
                ksize = self.attr(node, "ksize") or [1, 1, 1, 1]
            strides = self.attr(node, "strides") or [1] * len(in_shape)
            dil = self.attr(node, "dilations") or [1] * len(in_shape)
            fmt = self.attr(node, "data_format") or "NHWC"
            if fmt not in ("NHWC", "NDHWC"):
                raise UnsupportedGraphError(f"{node.name}: data_format {fmt} is not supported (NHWC only)")
            for ax in range(1, len(in_shape) - 1):
                lab = axes[ax]
                if lab in ("T", "F"):
                    s, j = rf[lab]
                    k = (ksize[ax] - 1) * dil[ax] + 1
                    rf[lab] = (s + (k - 1) * j, j * strides[ax])
                if out_shape[ax] == 1 and in_shape[ax] != 1 and lab not in ("T",):
                    axes[ax] = "1"
            if op in CONV_OPS:
                axes[-1] = "C"
        elif op == "Squeeze":
            dims = self.attr(node, "squeeze_dims") or [i for i, d in enumerate(in_shape) if d == 1]
            dims = {d % len(in_shape) for d in dims}
            axes = [a for i, a in enumerate(axes) if i not in dims]
        elif op == "ExpandDims":
            d = int(np.asarray(self.const_value(node.input[1])).ravel()[0])
            d = d % (len(in_shape) + 1)
            axes.insert(d, "1")
        elif op == "Transpose":
            perm = self.const_value(node.input[1])
            if perm is None:
                raise _Lost
            axes = [axes[int(p)] for p in perm]
        elif op == "ConcatV2":
            pass
        elif op == "Reshape":
            axes = self._reshape_axes(axes, in_shape, out_shape)
            agn = False
        elif op in ("Max", "Mean", "Sum", "Min"):
            red = self.const_value(node.input[1])
            if red is None:
                raise _Lost
            red = {int(r) % len(in_shape) for r in np.ravel(red)}
            keep = bool(self.attr(node, "keep_dims"))
            if keep:
                axes = ["1" if i in red else a for i, a in enumerate(axes)]
            else:
                axes = [a for i, a in enumerate(axes) if i not in red]
            if "T" in {first.axes[i] for i in red}:
                agn = False
        elif op in ("MatMul",):
            axes = ["N", "C"]
            agn = False
        elif op in TIME_AGNOSTIC_OPS or op in ("StridedSlice", "Slice", "Cast"):
            if len(out_shape) != len(axes):
                raise _Lost
        else:
            agn = False
            if len(out_shape) != len(axes):
                raise _Lost
        if len(axes) != len(out_shape):
            raise _Lost
        return TensorInfo("".join(axes), rf, agn, after)

    @staticmethod
    def _reshape_axes(axes: list[str], in_shape, out_shape) -> list[str]:
        """Labels after a reshape that only adds or removes unit axes; otherwise lost."""
        core_in = [(a, d) for a, d in zip(axes, in_shape) if d != 1 or a == "N"]
        core_out = [d for d in out_shape]
        out: list[str] = []
        it = iter(core_in)
        pending = next(it, None)
        for d in core_out:
            if pending is not None and d == pending[1]:
                out.append(pending[0])
                pending = next(it, None)
            elif d == 1:
                out.append("1")
            else:
                raise _Lost
        if pending is not None:
            raise _Lost
        return out


class _Lost(Exception):
    """Axis labels cannot be followed through an operation."""
