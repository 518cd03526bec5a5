"""The canonical form every frozen graph takes before the engine sees it.

One small rewrite each, applied in the order of :data:`REWRITES`:

* :func:`inline_functions`: calls of the graph's own functions (``PartitionedCall``) become
  the functions' bodies;
* :func:`drop_control_edges`: control inputs order execution; they carry no value, and
  following them pulls unrelated parts (an RNN's loop, every variable read) into a cut;
* :func:`inference_flags`: a boolean placeholder that is not the model's input (a training
  switch such as ``is_training``) becomes the constant False; a ``PlaceholderWithDefault``
  takes its default;
* :func:`fold_constants`: every sub-graph with no placeholder above it is evaluated once and
  becomes a constant (kernels reached through ExpandDims, Transpose, Split, Cast, Mul ...);
* :func:`resolve_conds`: ``tf.cond`` branches with a constant predicate: every Switch
  forwards its value to its live output, every Merge is its one live input
  (:mod:`.conds`), and what only the dead branches used goes;
* :func:`fuse_dilations`: ``SpaceToBatchND -> Conv2D -> BatchToSpaceND`` (how TensorFlow
  writes a dilated convolution) becomes one Conv2D with ``dilations``.

The result computes the same values as the original for the model's input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import backend
from .conds import make_const, resolve_constant_conds
from .operations import EXPAND_DIMS, IDENTITY, SQUEEZE, Kind, operation
from .ops import node_name

__all__ = ["REWRITES", "canonicalise", "inline_functions", "drop_control_edges", "inference_flags",
           "fold_constants", "resolve_conds", "fuse_dilations"]

@dataclass(frozen=True)
class Context:
    """What the rewrites know besides the graph.

    Attributes
    ----------
    inputs : list of str
        The placeholders the model is fed through (never folded).
    probe : dict
        Input tensor -> an input of the model's nominal shape, to evaluate what depends
        only on shapes (the paddings of a dilated convolution on an input of free length).
    """

    inputs: list[str]
    probe: dict[str, np.ndarray] = field(default_factory=dict)


#: Operations never evaluated ahead of time (their value comes from the input, from state, or
#: from chance), besides every stateful operation.
_NOT_FOLDED = {"Placeholder", "PlaceholderWithDefault", "Switch", "Merge", "Enter", "Exit",
               "NextIteration", "LoopCond"}


def _copy(tf: Any, graph_def: Any) -> Any:
    out = tf.compat.v1.GraphDef()
    out.CopyFrom(graph_def)
    return out


def drop_control_edges(graph_def: Any, ctx: Context) -> Any:
    """Every ``^control`` input removed."""
    tf = backend.tensorflow()
    out = _copy(tf, graph_def)
    for node in out.node:
        data = [i for i in node.input if not i.startswith("^")]
        if len(data) != len(node.input):
            del node.input[:]
            node.input.extend(data)
    return out


_CALLS = ("PartitionedCall", "StatefulPartitionedCall")


def inline_functions(graph_def: Any, ctx: Context) -> Any:
    """Calls of the graph's own functions (``PartitionedCall``; Keras writes some layers,
    such as grouped convolutions, as functions) replaced by the functions' bodies."""
    tf = backend.tensorflow()
    out = _copy(tf, graph_def)
    functions = {f.signature.name: f for f in out.library.function}
    for _ in range(16):                       # functions that call functions
        calls = [n for n in out.node if n.op in _CALLS and n.attr["f"].func.name in functions]
        if not calls:
            break
        for call in calls:
            _inline(tf, out, call, functions[call.attr["f"].func.name])
    return out


def _inline(tf: Any, graph_def: Any, call: Any, fdef: Any) -> None:
    body, flat = backend.function_graph_def(fdef)
    prefix = f"{call.name}/_inlined/"
    args = {a.name: call.input[k] for k, a in enumerate(fdef.signature.input_arg)}

    def rename(t: str) -> str:
        ctrl = t.startswith("^")
        name, _, port = t.lstrip("^").partition(":")
        new = args.get(name) if name in args else prefix + name + (f":{port}" if port else "")
        return ("^" + node_name(new)) if ctrl else new

    for node in body.node:
        if node.name in args:               # the input arguments: the call's own inputs
            continue
        new = graph_def.node.add()
        new.CopyFrom(node)
        new.name = prefix + node.name
        del new.input[:]
        new.input.extend(rename(i) for i in node.input)
    outputs = [rename(flat.get(fdef.ret[a.name], fdef.ret[a.name]))
               for a in fdef.signature.output_arg]
    kept = [n for n in graph_def.node if n.name != call.name]
    del graph_def.node[:]
    graph_def.node.extend(kept)
    for n in graph_def.node:
        for k, i in enumerate(n.input):
            name, _, port = i.lstrip("^").partition(":")
            if name == call.name and not i.startswith("^"):
                n.input[k] = outputs[int(port or 0)]


def inference_flags(graph_def: Any, ctx: Context) -> Any:
    """Boolean placeholders other than the inputs -> False; ``PlaceholderWithDefault`` -> its
    default."""
    tf = backend.tensorflow()
    out = _copy(tf, graph_def)
    keep = {node_name(i) for i in ctx.inputs}
    for node in out.node:
        if node.name in keep:
            continue
        if node.op == "Placeholder" and node.attr["dtype"].type == tf.bool.as_datatype_enum:
            make_const(tf, node, False)
        elif node.op == "PlaceholderWithDefault":
            node.op = IDENTITY
            for key in [k for k in node.attr if k != "dtype"]:
                del node.attr[key]
            node.attr["T"].type = node.attr["dtype"].type
            del node.attr["dtype"]
    return out


def _constant_nodes(graph_def: Any) -> set[str]:
    """Nodes whose value does not depend on any placeholder, state or chance."""
    nodes = {n.name: n for n in graph_def.node}
    const: set[str] = set()
    state: dict[str, int] = {}

    def visit(name: str) -> bool:
        stack = [(name, False)]
        while stack:
            x, done = stack.pop()
            n = nodes[x]
            if done:
                ins = [node_name(i) for i in n.input]
                ok = (n.op == "Const" or (n.op not in _NOT_FOLDED and not backend.op_is_stateful(n.op)
                                          and bool(ins) and all(i in const for i in ins)))
                if ok:
                    const.add(x)
                state[x] = 2
                continue
            if state.get(x):
                continue
            state[x] = 1
            stack.append((x, True))
            stack.extend((node_name(i), False) for i in n.input if not state.get(node_name(i)))
        return name in const

    for n in graph_def.node:
        visit(n.name)
    return const


def fold_constants(graph_def: Any, ctx: Context) -> Any:
    """Evaluate every constant tensor that a non-constant node reads, once, and make it a
    Const; constant nodes nothing reads any more are dropped."""
    tf = backend.tensorflow()
    const = _constant_nodes(graph_def)
    nodes = {n.name: n for n in graph_def.node}
    wanted: dict[str, None] = {}
    for n in graph_def.node:
        if n.name in const:
            continue
        for i in n.input:
            src = node_name(i)
            if src in const and nodes[src].op != "Const":
                name, _, port = i.partition(":")
                wanted[f"{name}:{port or 0}"] = None
    out = _copy(tf, graph_def)
    if wanted:
        values = _evaluate(tf, graph_def, list(wanted))
        _replace(tf, out, values)
    return _prune(tf, out, const, ctx.inputs)


def _evaluate(tf: Any, graph_def: Any, tensors: list[str], feed: dict | None = None
              ) -> dict[str, np.ndarray]:
    """The values of ``tensors`` that hold numbers (not TensorFlow's resource or variant
    handles, which have no constant form)."""
    g = tf.Graph()
    with g.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    held = [t for t in tensors
            if g.get_tensor_by_name(t).dtype.base_dtype not in (tf.resource, tf.variant)]
    if not held:
        return {}
    with tf.compat.v1.Session(graph=g) as sess:
        return dict(zip(held, sess.run(held, feed_dict=feed or None)))


def _replace(tf: Any, graph_def: Any, values: dict[str, np.ndarray]) -> None:
    """Single-output nodes become Consts in place; other outputs get a Const of their own."""
    ports: dict[str, set[str]] = {}
    for t in values:
        name, _, port = t.partition(":")
        ports.setdefault(name, set()).add(port)
    by_name = {n.name: n for n in graph_def.node}
    renamed: dict[str, str] = {}
    for name, used in ports.items():
        if used == {"0"}:
            make_const(tf, by_name[name], values[f"{name}:0"])
            continue
        for port in used:
            new = graph_def.node.add()
            new.name = f"{name}/_folded_{port}"
            make_const(tf, new, values[f"{name}:{port}"])
            renamed[f"{name}:{port}"] = new.name
    if renamed:
        for n in graph_def.node:
            for k, i in enumerate(n.input):
                name, _, port = i.partition(":")
                key = f"{name}:{port or 0}"
                if key in renamed:
                    n.input[k] = renamed[key]


def _prune(tf: Any, graph_def: Any, const: set[str], inputs: list[str]) -> Any:
    """Drop constant nodes (and the graph's NoOps) that nothing reads."""
    keep = {node_name(i) for i in inputs}
    nodes = list(graph_def.node)
    while True:
        read = {node_name(i) for n in nodes for i in n.input}
        drop = {n.name for n in nodes if n.name not in read and n.name not in keep
                and (n.name in const or n.op in ("Const", "NoOp"))}
        if not drop:
            break
        nodes = [n for n in nodes if n.name not in drop]
    out = tf.compat.v1.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    out.node.extend(nodes)
    return out


def resolve_conds(graph_def: Any, ctx: Context) -> Any:
    """``tf.cond`` on constant predicates resolved (see :mod:`.conds`)."""
    if not any(n.op in ("Switch", "Merge") for n in graph_def.node):
        return graph_def
    return resolve_constant_conds(graph_def)


@dataclass
class _Dilated:
    """``SpaceToBatchND -> [ExpandDims] -> convolution -> [Squeeze] -> BatchToSpaceND``."""

    s2b: Any
    expand: Any | None
    conv: Any
    squeeze: Any | None
    b2s: Any

    def spatial_axes(self, graph: Any) -> list[int] | None:
        """The convolution's axes (of its 4-D input) that the blocks of SpaceToBatch cover."""
        if self.expand is None:
            return [1, 2]
        dim = int(np.ravel(_const(self.expand.input[1], graph))[0]) if _const(
            self.expand.input[1], graph) is not None else None
        return {1: [2], 2: [1], -2: [1], -3: [2]}.get(dim)


def _const(t: str, graph: Any) -> np.ndarray | None:
    node = graph.get(node_name(t))
    if node is None or node.op != "Const":
        return None
    return backend.tensorflow().make_ndarray(node.attr["value"].tensor)


#: Convolutions TensorFlow's ``with_space_to_batch`` wraps for a dilation.
_DILATABLE = (Kind.CONVOLUTION, Kind.DEPTHWISE_CONVOLUTION)


def _dilated_chains(graph_def: Any) -> list[_Dilated]:
    """Dilated convolutions as TensorFlow writes them, each tensor on the way read once."""
    nodes = {n.name: n for n in graph_def.node}
    readers: dict[str, int] = {}
    for n in graph_def.node:
        for i in n.input:
            readers[node_name(i)] = readers.get(node_name(i), 0) + 1

    def below(name: str, op: str) -> tuple[Any | None, Any | None]:
        """(an optional ``op`` node read once, the node under it)."""
        node = nodes.get(name)
        if node is not None and node.op == op and readers.get(node.name) == 1:
            return node, nodes.get(node_name(node.input[0]))
        return None, node

    out = []
    for b2s in (n for n in graph_def.node if n.op == "BatchToSpaceND"):
        squeeze, conv = below(node_name(b2s.input[0]), SQUEEZE)
        if conv is None or operation(conv.op).kind not in _DILATABLE \
                or readers.get(conv.name) != 1 or conv.attr["padding"].s.decode() != "VALID":
            continue
        expand, s2b = below(node_name(conv.input[0]), EXPAND_DIMS)
        if s2b is not None and s2b.op == "SpaceToBatchND" and readers.get(s2b.name) == 1 \
                and (expand is None) == (squeeze is None):
            out.append(_Dilated(s2b, expand, conv, squeeze, b2s))
    return out


def fuse_dilations(graph_def: Any, ctx: Context) -> Any:
    """``SpaceToBatchND -> Conv2D/DepthwiseConv2dNative -> BatchToSpaceND`` (TensorFlow's
    ``with_space_to_batch``) -> one convolution with ``dilations``.  The paddings minus the
    crops are the base padding of the dilated kernel (what is added beyond it only aligns
    the input to the block and is cropped again): zero means 'VALID', the dilated kernel's
    half-widths 'SAME'.  Paddings that depend on the input's length are evaluated on the
    probe input."""
    tf = backend.tensorflow()
    out = _copy(tf, graph_def)
    chains = _dilated_chains(out)
    if not chains:
        return out
    wanted = [_port0(t) for c in chains for t in (c.s2b.input[1], c.s2b.input[2], c.b2s.input[1],
                                                   c.b2s.input[2], c.conv.input[1])]
    try:
        values = _evaluate(tf, out, list(dict.fromkeys(wanted)), dict(ctx.probe))
    except Exception:  # noqa: BLE001 - a graph that needs more than the probe: left as it is
        return out
    by_name = {n.name: n for n in out.node}
    fused: set[str] = set()
    for c in chains:
        rate = values[_port0(c.s2b.input[1])]
        axes = c.spatial_axes(by_name)
        if axes is None or not np.array_equal(rate, values[_port0(c.b2s.input[1])]) \
                or rate.shape != (len(axes),):
            continue
        base = values[_port0(c.s2b.input[2])] - values[_port0(c.b2s.input[2])]
        kernel = values[_port0(c.conv.input[1])]
        padding = _padding_of(base, [kernel.shape[a - 1] for a in axes], rate)
        if padding is None:
            continue
        dilations = [1, 1, 1, 1]
        for a, r in zip(axes, rate):
            dilations[a] = int(r)
        (c.expand or c.conv).input[0] = c.s2b.input[0]
        c.conv.attr["dilations"].list.ClearField("i")
        c.conv.attr["dilations"].list.i.extend(dilations)
        c.conv.attr["padding"].s = padding.encode()
        _rewire(out, c.b2s.name, (c.squeeze or c.conv).name)
        fused.update({c.s2b.name, c.b2s.name})
    if fused:
        kept = [n for n in out.node if n.name not in fused]
        del out.node[:]
        out.node.extend(kept)
    return _prune(tf, out, set(), ctx.inputs)


def _port0(t: str) -> str:
    name, _, port = t.lstrip("^").partition(":")
    return f"{name}:{port or 0}"


def _padding_of(base: np.ndarray, kernel: list, rate: np.ndarray) -> str | None:
    """'VALID' for no base padding, 'SAME' for the dilated kernel's half-widths."""
    if not np.any(base):
        return "VALID"
    for ax in range(len(rate)):
        total = (int(kernel[ax]) - 1) * int(rate[ax])
        if int(base[ax][0]) != total // 2 or int(base[ax][1]) != total - total // 2:
            return None
    return "SAME"


def _rewire(graph_def: Any, old: str, new: str) -> None:
    for n in graph_def.node:
        for k, i in enumerate(n.input):
            name, _, port = i.partition(":")
            if name == old:
                n.input[k] = new if not port or port == "0" else f"{new}:{port}"


#: The rewrites, in order: (name, function(graph_def, context) -> graph_def).
REWRITES: list[tuple[str, Callable[[Any, Context], Any]]] = [
    ("inline functions", inline_functions),
    ("drop control edges", drop_control_edges),
    ("inference flags", inference_flags),
    ("fold constants", fold_constants),
    ("resolve tf.cond", resolve_conds),
    ("fold constants again", fold_constants),
    ("fuse dilations", fuse_dilations),
]


def canonicalise(graph_def: Any, inputs: list[str], probe: dict[str, np.ndarray] | None = None
                 ) -> Any:
    """``graph_def`` in canonical form (every rewrite of :data:`REWRITES`).

    Parameters
    ----------
    graph_def : GraphDef
    inputs : list of str
        The placeholders the model is fed through.
    probe : dict, optional
        Input tensor -> an input of the model's nominal shape (see :class:`Context`).
    """
    ctx = Context(list(inputs), dict(probe or {}))
    for _, rewrite in REWRITES:
        graph_def = rewrite(graph_def, ctx)
    return graph_def
