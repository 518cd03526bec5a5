"""A model's learned layers, and the same model with some of them re-initialised.

A *parameter layer* is one weighted operation (a convolution or a matrix product, with a
constant kernel) and the constants of the element-wise operations that follow it up to the
next weighted one: its bias, its batch norm's scale, offset and statistics (as a
``FusedBatchNorm`` or folded into a ``Mul`` and an ``Add``).  Constants before the first
weighted operation (an input normalisation) belong to no layer and are never randomised.

:func:`randomised` re-initialises layers the way Keras builds them (Adebayo et al., "Sanity
checks for saliency maps", NeurIPS 2018, re-initialise with the layers' initialisers):
kernels Glorot-uniform (``limit = sqrt(6 / (fan_in + fan_out))``), biases and shifts zero,
scales one, moving means zero, moving variances one (a batch norm folded into a ``Mul``
and an ``Add`` becomes the identity).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import backend
from ..graph import FrozenGraph, node_name
from ..graph.operations import ALIAS_OPS, WEIGHT_OPS, operation
from ..model import FrozenModel

__all__ = ["ParameterLayer", "parameter_layers", "cascade", "randomised", "WEIGHT_OPS"]

# WEIGHT_OPS (operations whose input 1 is a learned kernel, ``weighted`` in their
# declarations) and each operation's ``neutral`` constants (the operands that belong to the
# weighted operation before it, with the value each is re-initialised to) come from
# :mod:`mirdeconv.graph.operations`.


@dataclass(frozen=True)
class ParameterLayer:
    """One learned layer of a graph.

    Attributes
    ----------
    name : str
        The weighted operation's node.
    op : str
        Its type (``Conv2D``, ``MatMul`` ...).
    kernel : str
        The Const node of its kernel.
    depth : int
        Weighted operations on the longest path from the input to it, itself included (the
        parallel branches of a front end share a depth).
    constants : tuple of (str, float)
        The Const nodes of the operations after it, each with its re-initialised value.
    """

    name: str
    op: str
    kernel: str
    depth: int
    constants: tuple[tuple[str, float], ...] = ()


def _const_node(graph: FrozenGraph, tensor: str) -> str | None:
    """The Const node behind ``tensor`` (through Identity chains), if it is a float constant."""
    node = graph.nodes.get(node_name(tensor))
    for _ in range(100):
        if node is None or node.op not in ALIAS_OPS:
            break
        node = graph.nodes.get(node_name(node.input[0]))
    if node is None or node.op != "Const":
        return None
    value = graph.const_value(node.name)
    return node.name if value is not None and value.dtype.kind == "f" else None


def parameter_layers(model: FrozenModel, tensor: str | None = None) -> list[ParameterLayer]:
    """The learned layers the model's ``tensor`` (default: its output) depends on, by depth
    (input first).

    Each float constant of an element-wise operation (bias, batch norm, a folded batch
    norm's ``Mul`` and ``Add``) belongs to the weighted operation it follows on the path from
    the input: through reshapes, pads and the like, and after a merge of branches (a
    concatenation, a residual sum) to the deepest of the merged branches' layers.

    Parameters
    ----------
    model : FrozenModel
    tensor : str, optional
        A tensor of the graph (a feature layer's, or the output).

    Returns
    -------
    list of ParameterLayer
    """
    g = model.graph
    order = g.ancestors([tensor or model.output_tensor or g.sinks()[-1]])
    live = g.depends_on(order, model.input_tensor)         # what the input's values reach
    owner: dict[str, int | None] = {}
    found: list[dict] = []
    for name in order:
        if name not in live:
            continue
        node = g.nodes[name]
        inputs = g.data_inputs(node)
        consts = {i: _const_node(g, t) for i, t in enumerate(inputs)}
        if node.op in WEIGHT_OPS and len(inputs) > 1 and consts.get(1):
            depth = 1 + max((found[owner[node_name(t)]]["depth"] for t in inputs
                             if owner.get(node_name(t)) is not None), default=0)
            found.append({"name": name, "op": node.op, "kernel": consts[1], "constants": [],
                          "depth": depth})
            owner[name] = len(found) - 1
            continue
        owners = [owner[node_name(t)] for t in inputs
                  if node_name(t) in live and owner.get(node_name(t)) is not None]
        mine = max(owners, key=lambda k: (found[k]["depth"], k), default=None)
        owner[name] = mine
        if mine is None:                                   # before the first weighted op
            continue
        taken = {c for f in found for c, _ in f["constants"]}
        for i, value in operation(node.op).neutral.items():
            c = consts.get(i)
            if c and g.const_value(c).size > 1 and c not in taken:
                found[mine]["constants"].append((c, value))
    found.sort(key=lambda f: f["depth"])                     # stable: graph order within a depth
    return [ParameterLayer(f["name"], f["op"], f["kernel"], f["depth"], tuple(f["constants"]))
            for f in found]


def cascade(layers: list[ParameterLayer]) -> list[list[ParameterLayer]]:
    """The layers grouped by depth, deepest first: step ``k`` of a cascading randomisation
    re-initialises the groups ``0 .. k`` of this list."""
    depths = sorted({pl.depth for pl in layers}, reverse=True)
    return [[pl for pl in layers if pl.depth == d] for d in depths]


def _glorot(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Keras's Glorot-uniform values for a kernel of ``shape`` (last axis: outputs)."""
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = np.sqrt(6.0 / max(1, fan_in + fan_out))
    return rng.uniform(-limit, limit, shape)


def randomised(model: FrozenModel, layers: list[ParameterLayer], seed: int = 0) -> FrozenModel:
    """The model with ``layers`` re-initialised (see the module); the rest unchanged.

    Parameters
    ----------
    model : FrozenModel
    layers : list of ParameterLayer
        From :func:`parameter_layers`.
    seed : int
        Layer ``k`` of ``parameter_layers(model)`` draws its kernel from
        ``default_rng([seed, k])``, whichever other layers are randomised with it.

    Returns
    -------
    FrozenModel
        A new model (a copy of the graph), named ``"<name> (<n> layers randomised)"``.
    """
    tf = backend.tensorflow()
    g = model.graph
    position = {pl.name: k for k, pl in enumerate(parameter_layers(model))}
    values: dict[str, np.ndarray] = {}
    for pl in layers:
        kernel = g.const_value(pl.kernel)
        rng = np.random.default_rng([seed, position.get(pl.name, len(position))])
        values[pl.kernel] = _glorot(kernel.shape, rng).astype(kernel.dtype)
        for const, fill in pl.constants:
            old = g.const_value(const)
            values[const] = np.full(old.shape, fill, old.dtype)
    gd = tf.compat.v1.GraphDef()
    gd.CopyFrom(g.graph_def)
    for node in gd.node:
        if node.name in values:
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(values[node.name]))
    return dataclasses.replace(model, graph=FrozenGraph(gd), _layers=None,
                               name=f"{model.name} ({len(layers)} layers randomised)")
