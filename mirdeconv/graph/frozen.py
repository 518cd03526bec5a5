"""Frozen TensorFlow graphs: read one, walk it, cut it at a tensor, fingerprint it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from .. import backend
from ..errors import ModelLoadError, UnsupportedGraphError
from .operations import ALIAS_OPS, KERNEL_OPS, SHAPE_OPS
from .ops import attr, node_name, tensor_name

__all__ = ["FrozenGraph"]


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
        """Read an attribute of a node (see :func:`mirdeconv.graph.ops.attr`)."""
        return attr(node, key)

    def placeholders(self) -> list[str]:
        """Names of the graph's Placeholder nodes."""
        return [n.name for n in self.graph_def.node if n.op in ("Placeholder",)]

    def sinks(self) -> list[str]:
        """Names of the nodes whose outputs no node reads (the graph's outputs), constants,
        placeholders and no-ops left out."""
        read = {node_name(i) for n in self.graph_def.node for i in n.input}
        return [n.name for n in self.graph_def.node if n.name not in read
                and n.op not in ("Const", "Placeholder", "NoOp", "VarHandleOp")]

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
            if node.op not in KERNEL_OPS or len(node.input) < 2:
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
        while node is not None and node.op in ALIAS_OPS and seen < 100:
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

    def depends_on(self, order: list[str], input_tensor: str, fixed: set[str] = frozenset()
                   ) -> set[str]:
        """Nodes of ``order`` whose values depend on the input's values (not just its shape);
        the nodes in ``fixed`` count as constants (statistics held fixed)."""
        src = node_name(input_tensor)
        var = {src}
        for name in order:
            node = self.nodes[name]
            if name == src or node.op in SHAPE_OPS or name in fixed:
                continue
            if any(node_name(i) in var for i in node.input if not i.startswith("^")):
                var.add(name)
        return var

    def static_shapes(self, outputs: list[str], input_tensor: str, input_shape: tuple | None
                      ) -> dict[str, tuple | None]:
        """Static shapes of every tensor ``outputs`` need, as TensorFlow infers them when the
        input has ``input_shape`` (None: the placeholder's own, unknown dimensions as None).

        Raises
        ------
        ValueError, tensorflow.errors.InvalidArgumentError
            The graph does not accept such an input.
        """
        tf = backend.tensorflow()
        gd = self.subgraph_def(outputs)
        if input_shape is None:
            dims = self.attr(self.node(input_tensor), "shape")
            input_shape = tuple(dims) if dims is not None else None
        g = tf.Graph()
        with g.as_default():
            x = tf.compat.v1.placeholder(tf.float32, input_shape)
            tf.graph_util.import_graph_def(gd, input_map={tensor_name(input_tensor): x}, name="m")
        shapes: dict[str, tuple | None] = {}
        for op in g.get_operations():
            if op.name.startswith("m/"):
                for i, t in enumerate(op.outputs):
                    shapes[f"{op.name[2:]}:{i}"] = (tuple(t.shape.as_list())
                                                    if t.shape.rank is not None else None)
        shapes[tensor_name(input_tensor)] = input_shape
        return shapes

    def subgraph_def(self, outputs: list[str]) -> Any:
        """A GraphDef with only what ``outputs`` need."""
        tf = backend.tensorflow()
        keep = set(self.ancestors(outputs))
        gd = tf.compat.v1.GraphDef()
        gd.versions.CopyFrom(self.graph_def.versions)
        gd.library.CopyFrom(self.graph_def.library)
        gd.node.extend(n for n in self.graph_def.node if n.name in keep)
        return gd
