"""Patterns of operations that mean one thing: composite activations, normalisation statistics.

TensorFlow writes many activations as several element-wise operations (GELU as
``0.5 x erfc(-x / sqrt 2)``, swish as ``x sigmoid(x)``, mish as ``x tanh(softplus(x))``,
hard-swish as ``x relu6(x + 3) / 6``, PReLU as ``relu(x) - alpha relu(-x)``) and layer or
group normalisation as moments of the input.  The engine wants to see the first as ONE
non-linearity ``y = f(x)`` (so that every method's rule applies at it) and the second as
statistics held fixed in the backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from .frozen import FrozenGraph
from .operations import MEAN, SINGLE_STEP_OPS, SQUARE, SQUARED_DIFFERENCE, SUB, Kind, operation
from .ops import node_name, tensor_name

__all__ = ["Composite", "composite_activations", "normalization_statistics"]


@dataclass(frozen=True)
class Composite:
    """An element-wise function ``y = f(x)`` written as several operations.

    Attributes
    ----------
    source : str
        The tensor ``x``.
    sink : str
        The node whose output is ``y``.
    nodes : frozenset of str
        Every node of the pattern (the sink included).
    """

    source: str
    sink: str
    nodes: frozenset[str]


def _readers(graph: FrozenGraph, order: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in order:
        for t in graph.data_inputs(graph.nodes[name]):
            out.setdefault(t, []).append(name)
    return out


def _grow(graph: FrozenGraph, source: str, var: set[str], readers: dict[str, list[str]],
          taken: set[str]) -> set[str]:
    """Every element-wise node that reads only ``source``, constants, or nodes already in."""
    region: set[str] = set()
    frontier = list(readers.get(source, []))
    while frontier:
        name = frontier.pop()
        node = graph.nodes[name]
        if name in region or name in taken or not operation(node.op).elementwise:
            continue
        ins = [t for t in graph.data_inputs(node) if node_name(t) in var]
        if not all(t == source or node_name(t) in region for t in ins):
            continue
        region.add(name)
        frontier.extend(readers.get(tensor_name(name), []))
    return region


def _composite(graph: FrozenGraph, source: str, region: set[str], var: set[str],
               readers: dict[str, list[str]]) -> Composite | None:
    """The region as one function when it has one output and is more than a single step."""
    sinks = [n for n in region if any(r not in region for r in readers.get(tensor_name(n), []))
             or not readers.get(tensor_name(n))]
    if len(sinks) != 1:
        return None
    # shrink to what the sink needs
    need, stack = set(), [sinks[0]]
    while stack:
        n = stack.pop()
        if n in need:
            continue
        need.add(n)
        stack.extend(node_name(t) for t in graph.data_inputs(graph.nodes[n]) if node_name(t) in region)
    if any(r not in need for n in need - {sinks[0]} for r in readers.get(tensor_name(n), [])):
        return None
    ops = [graph.nodes[n].op for n in need]
    combines = any(operation(graph.nodes[n].op).kind is Kind.BINARY and sum(
        node_name(t) in var for t in graph.data_inputs(graph.nodes[n])) > 1 for n in need)
    if len(need) < 2 or not (combines or any(op not in SINGLE_STEP_OPS for op in ops)):
        return None
    return Composite(source, sinks[0], frozenset(need))


def composite_activations(graph: FrozenGraph, order: list[str], var: set[str],
                          keep: set[str] = frozenset()) -> list[Composite]:
    """The composite activations between the input and a layer.

    Parameters
    ----------
    graph : FrozenGraph
    order : list of str
        The nodes of the cut, inputs first.
    var : set of str
        The nodes that depend on the input.
    keep : set of str
        Tensors that must stay visible (the layer itself): no pattern hides them.

    Returns
    -------
    list of Composite
        Patterns that do not overlap: a region of element-wise operations fed by one tensor
        ``x`` (and constants) with one output, that combines ``x`` with itself (a product or a
        sum of two branches of it) or holds an operation the engine has no single rule for.
    """
    readers = _readers(graph, order)
    taken: set[str] = set()
    found: list[Composite] = []
    for name in order:
        if name not in var or operation(graph.nodes[name].op).kind is Kind.PASS:
            continue
        source = tensor_name(name)
        region = _grow(graph, source, var, readers, taken)
        comp = _composite(graph, source, region, var, readers) if region else None
        if comp is None or any(tensor_name(n) in keep for n in comp.nodes - {comp.sink}):
            continue
        found.append(comp)
        taken |= comp.nodes
    return found


def normalization_statistics(graph: FrozenGraph, order: list[str], var: set[str]) -> set[str]:
    """The nodes that compute moments of a tensor to normalise it with (layer, group and
    instance normalisation, ``tf.nn.moments``): a ``Mean`` (kept dims) subtracted from the
    tensor it averages, and the ``Mean`` of the squared deviations from it, with the
    operations only they use.  The engine holds them fixed in the backward pass."""
    readers = _readers(graph, order)
    stats: set[str] = set()
    for name in order:
        node = graph.nodes[name]
        if node.op != MEAN or name not in var or not graph.attr(node, "keep_dims"):
            continue
        x = graph.data_inputs(node)[0]
        mean = tensor_name(name)
        users = [graph.nodes[r] for r in readers.get(mean, [])]
        aliases = {mean} | {tensor_name(u.name) for u in users if operation(u.op).kind is Kind.PASS}
        deviations = [r for r in readers.get(x, [])
                      if graph.nodes[r].op in (SUB, SQUARED_DIFFERENCE)
                      and any(t in aliases for t in graph.data_inputs(graph.nodes[r]))]
        if not deviations:
            continue
        stats.add(name)
        stats |= {u.name for u in users if operation(u.op).kind is Kind.PASS}
        for d in deviations:
            sq = [d] if graph.nodes[d].op == SQUARED_DIFFERENCE else [
                r for r in readers.get(tensor_name(d), []) if graph.nodes[r].op == SQUARE]
            for s in sq:
                for r in readers.get(tensor_name(s), []):
                    if graph.nodes[r].op == MEAN and graph.attr(graph.nodes[r], "keep_dims"):
                        stats |= {s, r}
    return stats
