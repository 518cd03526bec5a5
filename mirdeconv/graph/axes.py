"""Axes and receptive fields: which axis of every tensor is batch, time, frequency or
features, and how much of the input each unit sees.

:func:`trace_axes` walks the operations from the input to the tensors asked for, and each
operation type moves the labels and receptive fields with the rule of its axes family (its
row in :data:`mirdeconv.graph.operations.OPERATIONS`; one small function per family in
:data:`AXIS_FAMILIES`, registered with :func:`axis_rule`); the ``same`` family keeps the
labels (the output's rank must be the input's), and an operation that is not declared
time-agnostic ties the graph to its input length.

Axis labels: ``N`` batch, ``T`` time, ``F`` frequency, ``C`` features (channels made by a
convolution), ``1`` any other axis (unit axes, the input's own channel axis), ``?`` lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UnsupportedGraphError
from .frozen import FrozenGraph
from .operations import OPERATIONS, SAME, Kind, operation
from .ops import node_name, tensor_name

__all__ = ["TensorInfo", "LayerInfo", "AXIS_FAMILIES", "AXIS_RULES", "axis_rule", "trace_axes"]


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


class _Lost(Exception):
    """Axis labels cannot be followed through an operation."""


@dataclass
class Trace:
    """One operation's step of the walk: its input's labels and receptive fields, which its
    axis rule turns into its output's.

    Attributes
    ----------
    graph : FrozenGraph
    node : NodeDef
    axes : list of str
        Labels (of the first input on entry; of the output when the rule is done).
    rf : dict
        Receptive field per input axis label, ``{"T": (size, jump), ...}``.
    time_agnostic : bool
        Still fully convolutional along time after this operation.
    after_conv : bool
    in_shape, out_shape : tuple
        Static shapes of the first input and of the output.
    """

    graph: FrozenGraph
    node: Any
    axes: list[str]
    rf: dict[str, tuple[int, int]]
    time_agnostic: bool
    after_conv: bool
    in_shape: tuple
    out_shape: tuple

    def lost(self) -> None:
        raise _Lost


AxisRule = Callable[[Trace], None]
#: Axes family (an operation's ``axes`` in its declaration) -> how it moves axis labels and
#: receptive fields.
AXIS_FAMILIES: dict[str, AxisRule] = {}


def axis_rule(*families: str) -> Callable[[AxisRule], AxisRule]:
    """Decorator: the function is the axis rule of these axes families (an undeclared
    operation's family is its own name)."""

    def add(fn: AxisRule) -> AxisRule:
        for family in families:
            if family in OPERATIONS:
                raise ValueError(f"{family} is a declared operation (axes family "
                                 f"{OPERATIONS[family].axes}): change its declaration in "
                                 "mirdeconv.graph.operations, or register its family")
            AXIS_FAMILIES[family] = fn
        return fn

    return add


def _rule_of(op: str) -> AxisRule:
    return AXIS_FAMILIES.get(operation(op).axes, _same_labels)


class _AxisRules(MutableMapping):
    """Operation type -> its axis rule, read through its declaration (a view: the rules live
    in :data:`AXIS_FAMILIES`; setting an item sets the rule of the operation's family)."""

    def __getitem__(self, op: str) -> AxisRule:
        if op not in OPERATIONS and op not in AXIS_FAMILIES:
            raise KeyError(op)
        return _rule_of(op)

    def __setitem__(self, op: str, fn: AxisRule) -> None:
        AXIS_FAMILIES[operation(op).axes] = fn

    def __delitem__(self, op: str) -> None:
        if op in OPERATIONS:
            raise KeyError(f"{op} is declared; withdraw its declaration instead")
        del AXIS_FAMILIES[op]

    def __iter__(self) -> Iterator[str]:
        yield from OPERATIONS
        named = {r.axes for r in OPERATIONS.values()}
        yield from (f for f in AXIS_FAMILIES if f not in named and f not in OPERATIONS)

    def __len__(self) -> int:
        return sum(1 for _ in self)


#: Operation type -> how it moves axis labels and receptive fields (derived from the
#: declarations and :data:`AXIS_FAMILIES`).
AXIS_RULES: MutableMapping[str, AxisRule] = _AxisRules()


@axis_rule("window")
def _window(t: Trace) -> None:
    """A sliding window: the receptive field grows by the window, the jump by the stride;
    an axis the window covers whole becomes ``1``; a convolution's last axis is features."""
    g, node = t.graph, t.node
    conv = operation(node.op).is_convolution
    if conv:
        w = g.const_value(node.input[1])
        if w is None:
            raise UnsupportedGraphError(f"{node.name}: convolution kernel is not constant")
        ksize = [1, *w.shape[:-2], 1]
        t.after_conv = True
    else:
        ksize = g.attr(node, "ksize") or [1, 1, 1, 1]
    strides = g.attr(node, "strides") or [1] * len(t.in_shape)
    dil = g.attr(node, "dilations") or [1] * len(t.in_shape)
    fmt = g.attr(node, "data_format") or "NHWC"
    if fmt not in ("NHWC", "NDHWC"):
        raise UnsupportedGraphError(f"{node.name}: data_format {fmt} is not supported (NHWC only)")
    for ax in range(1, len(t.in_shape) - 1):
        lab = t.axes[ax]
        if lab in ("T", "F"):
            s, j = t.rf[lab]
            k = (ksize[ax] - 1) * dil[ax] + 1
            t.rf[lab] = (s + (k - 1) * j, j * strides[ax])
        if t.out_shape[ax] == 1 and t.in_shape[ax] != 1 and lab not in ("T",):
            t.axes[ax] = "1"
    if conv:
        t.axes[-1] = "C"


@axis_rule("squeeze")
def _squeeze(t: Trace) -> None:
    dims = t.graph.attr(t.node, "squeeze_dims") or [i for i, d in enumerate(t.in_shape) if d == 1]
    dims = {d % len(t.in_shape) for d in dims}
    t.axes = [a for i, a in enumerate(t.axes) if i not in dims]


@axis_rule("expand_dims")
def _expand_dims(t: Trace) -> None:
    d = int(np.asarray(t.graph.const_value(t.node.input[1])).ravel()[0])
    t.axes.insert(d % (len(t.in_shape) + 1), "1")


@axis_rule("transpose")
def _transpose(t: Trace) -> None:
    perm = t.graph.const_value(t.node.input[1])
    if perm is None:
        t.lost()
    t.axes = [t.axes[int(p)] for p in perm]


@axis_rule("reshape")
def _reshape(t: Trace) -> None:
    """A reshape that adds or removes unit axes, or splits an axis into several and merges
    them back (group normalisation's ``C -> (G, C / G)``), keeps the labels: the parts of a
    split axis all carry its label, and merged axes keep the one label among them.  Either
    way the graph is tied to its input length."""
    axes = _regroup(t.axes, list(t.in_shape), list(t.out_shape))
    if axes is None:
        t.lost()
    t.axes = axes
    t.time_agnostic = False


def _regroup(axes: list[str], dims_in: list, dims_out: list) -> list[str] | None:
    """Labels of a reshape's output from groups of input and output axes of equal size."""
    if any(d is None for d in dims_in + dims_out):
        return None
    out: list[str] = []
    i = j = 0
    while i < len(dims_in) or j < len(dims_out):
        if j < len(dims_out) and dims_out[j] == 1 and (i >= len(dims_in) or dims_in[i] != 1):
            out.append("1")
            j += 1
            continue
        if i < len(dims_in) and dims_in[i] == 1 and axes[i] != "N" and (
                j >= len(dims_out) or dims_out[j] != 1):
            i += 1
            continue
        if i >= len(dims_in) or j >= len(dims_out):
            return None
        gi, gj, pi, pj = [i], [j], dims_in[i], dims_out[j]
        while pi != pj:
            if pi < pj and gi[-1] + 1 < len(dims_in):
                gi.append(gi[-1] + 1)
                pi *= dims_in[gi[-1]]
            elif pj < pi and gj[-1] + 1 < len(dims_out):
                gj.append(gj[-1] + 1)
                pj *= dims_out[gj[-1]]
            else:
                return None
        labels = {axes[k] for k in gi if not (dims_in[k] == 1 and axes[k] != "N")} - {"1"}
        if len(labels) > 1:
            return None
        out.extend([labels.pop() if labels else "1"] * len(gj))
        i, j = gi[-1] + 1, gj[-1] + 1
    return out


@axis_rule("reduce")
def _reduce(t: Trace) -> None:
    red = t.graph.const_value(t.node.input[1])
    if red is None:
        t.lost()
    red = {int(r) % len(t.in_shape) for r in np.ravel(red)}
    if "T" in {t.axes[i] for i in red}:
        t.time_agnostic = False
    if t.graph.attr(t.node, "keep_dims"):
        t.axes = ["1" if i in red else a for i, a in enumerate(t.axes)]
    else:
        t.axes = [a for i, a in enumerate(t.axes) if i not in red]


@axis_rule("split")
def _split(t: Trace) -> None:
    """Parts along an axis: fully convolutional still, unless the time axis is cut (the
    axis is the input its declaration's ``axis_input`` names)."""
    g, node = t.graph, t.node
    axis = g.const_value(node.input[operation(node.op).params["axis_input"]])
    parts = g.attr(node, "num_split") or 1
    if axis is None or (parts > 1 and t.axes[int(np.asarray(axis)) % len(t.axes)] == "T"):
        t.time_agnostic = False


@axis_rule("matmul")
def _matmul(t: Trace) -> None:
    t.axes = ["N", "C"]
    t.time_agnostic = False


@axis_rule(SAME)
def _same_labels(t: Trace) -> None:
    """Every other operation: the labels stay (the rank must too)."""


def _time_varying_constant(graph: FrozenGraph, node: Any, first: TensorInfo, info: dict,
                           out_shape: tuple, shapes: dict) -> bool:
    """An element-wise operation with a constant that differs along time (e.g. batch norm
    over the time axis), which ties the graph to its input length."""
    t_out = first.axes.index("T") + len(out_shape) - len(first.axes)
    for t in graph.data_inputs(node):
        cs = shapes.get(t) if t not in info else None
        if cs is None:
            continue
        k = t_out - (len(out_shape) - len(cs))
        if 0 <= k < len(cs) and cs[k] not in (1, None):
            return True
    return False


@axis_rule("batch_matmul")
def _batch_matmul(t: Trace) -> None:
    """``x @ W`` at every position of ``x``: its last axis becomes the features (a
    contraction over any other axis loses the labels)."""
    if t.graph.attr(t.node, "adj_x") or len(t.in_shape) < 3:
        t.lost()
    t.axes[-1] = "C"


@axis_rule("gather")
def _gather(t: Trace) -> None:
    """Items picked along an axis by constant indices: the axis keeps its label (it is gone
    when one item is picked); picking along time ties the graph to its input length."""
    idx, axis = t.graph.const_value(t.node.input[1]), t.graph.const_value(t.node.input[2])
    if idx is None or axis is None or np.ndim(idx) > 1:
        t.lost()
    ax = int(axis) % len(t.in_shape)
    if t.axes[ax] == "T":
        t.time_agnostic = False
    if np.ndim(idx) == 0:
        del t.axes[ax]


def _propagate(graph: FrozenGraph, node: Any, ins: list[str], info: dict, shapes: dict
               ) -> TensorInfo:
    first = info[ins[0]]
    out_shape, in_shape = shapes.get(tensor_name(node.name)), shapes.get(ins[0])
    row = operation(node.op)
    agn = all(info[t].time_agnostic for t in ins) and row.time_agnostic
    if (agn and row.elementwise and "T" in first.axes and out_shape is not None
            and _time_varying_constant(graph, node, first, info, out_shape, shapes)):
        agn = False
    rf = dict(first.rf)
    for t in ins[1:]:  # merge branches: the widest receptive field
        for k, (s, j) in info[t].rf.items():
            s0, j0 = rf.get(k, (s, j))
            rf[k] = (max(s0, s), max(j0, j))
    if out_shape is None or in_shape is None:
        raise _Lost
    trace = Trace(graph, node, list(first.axes), rf, agn, any(info[t].after_conv for t in ins),
                  tuple(in_shape), tuple(out_shape))
    AXIS_FAMILIES.get(row.axes, _same_labels)(trace)
    if len(trace.axes) != len(out_shape):
        raise _Lost
    return TensorInfo("".join(trace.axes), trace.rf, trace.time_agnostic, trace.after_conv)


def trace_axes(graph: FrozenGraph, input_tensor: str, input_axes: str,
               shapes: dict[str, tuple[int, ...]]) -> dict[str, TensorInfo]:
    """Follow axis labels and receptive fields from the input to every dependent tensor.

    Parameters
    ----------
    graph : FrozenGraph
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
    info: dict[str, TensorInfo] = {
        src: TensorInfo(input_axes.replace("C", "1"), {"T": (1, 1), "F": (1, 1)}, True, False)
    }
    for name in graph.ancestors(list(shapes)):
        node = graph.nodes[name]
        ins = [t for t in graph.data_inputs(node) if t in info]
        if not ins or operation(node.op).kind is Kind.SHAPE_READ or name == node_name(src):
            continue
        try:
            info[tensor_name(name)] = _propagate(graph, node, ins, info, shapes)
        except _Lost:
            first = info[ins[0]]
            n_out = len(shapes.get(tensor_name(name)) or ())
            info[tensor_name(name)] = TensorInfo("?" * n_out, first.rf, False, first.after_conv)
    return info
