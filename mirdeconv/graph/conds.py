"""``tf.cond`` branches resolved when their predicate is a constant.

TF1 graphs exported for training keep their mode switches (``is_training`` and the like):
``Switch`` sends a value to one of two branches, ``Merge`` takes whichever branch is alive.
With the predicate a known constant (after :mod:`.canonical` set the switch to False and
folded the constants), every ``Switch`` forwards its value to the live output and every
``Merge`` is its one live input, so both disappear, with everything only the dead branches
used (dropout's ``RandomUniform``, training-mode batch statistics).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from .frozen import FrozenGraph
from .ops import node_name

__all__ = ["resolve_constant_conds", "make_const"]


def _tensor(i: str) -> str:
    nm, _, port = i.lstrip("^").partition(":")
    return f"{nm}:{port or 0}"


def _liveness(order: list[str], nodes: dict[str, Any], predicates: dict[str, bool]
              ) -> tuple[dict[str, str], set[str]]:
    """Where each Switch/Merge output really comes from, and the nodes of dead branches."""
    alias: dict[str, str] = {}
    dead: set[str] = set()
    dead_nodes: set[str] = set()
    resolved: set[str] = set()        # Merges of resolved conds
    for x in order:
        n = nodes[x]
        ins = [alias.get(_tensor(i), _tensor(i)) for i in n.input if not i.startswith("^")]
        if n.op == "Switch" and node_name(n.input[1]) in predicates:
            live = int(predicates[node_name(n.input[1])])   # output 1 when the predicate holds
            if ins[0] in dead:
                dead_nodes.add(x)
                dead.update({f"{x}:0", f"{x}:1"})
            else:
                alias[f"{x}:{live}"] = ins[0]
                dead.add(f"{x}:{1 - live}")
        elif n.op == "Merge" and any(t in dead for t in ins):
            live = [t for t in ins if t not in dead]
            if len(live) != 1:
                raise ValueError(f"cannot resolve {x}: {len(live)} live inputs")
            alias[f"{x}:0"] = live[0]
            resolved.add(x)
        elif any(t in dead for t in ins):
            dead_nodes.add(x)
            dead.update(f"{x}:{k}" for k in range(8))
    return alias, dead_nodes | resolved


def resolve_constant_conds(graph_def: Any) -> Any:
    """A copy of ``graph_def`` where every ``tf.cond`` whose predicate is a constant is
    resolved: Switch and Merge gone, the live branch wired through, the dead one dropped.

    Raises
    ------
    ValueError
        A Merge with no live input, or more than one.
    """
    tf = backend.tensorflow()
    graph = FrozenGraph(graph_def)
    nodes = graph.nodes
    order = graph.ancestors(list(nodes))
    predicates = {}
    for n in graph_def.node:
        if n.op == "Switch":
            value = graph.const_value(n.input[1])
            if value is not None and np.asarray(value).size == 1:
                predicates[node_name(n.input[1])] = bool(np.asarray(value).ravel()[0])
    alias, gone = _liveness(order, nodes, predicates)
    gone |= {x for x in order
             if nodes[x].op == "Switch" and node_name(nodes[x].input[1]) in predicates}
    out = tf.compat.v1.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    for x in order:
        if x in gone:
            continue
        new = out.node.add()
        new.CopyFrom(nodes[x])
        del new.input[:]
        for i in nodes[x].input:
            if i.startswith("^"):
                if node_name(i) not in gone:
                    new.input.append(i)
                continue
            t = _tensor(i)
            while t in alias:
                t = alias[t]
            nm, port = t.split(":")
            new.input.append(nm if port == "0" else t)
    return out


def make_const(tf: Any, node: Any, value: Any) -> None:
    """Turn ``node`` into a Const holding ``value``."""
    node.op = "Const"
    node.ClearField("attr")
    node.ClearField("input")
    proto = tf.make_tensor_proto(value)
    node.attr["dtype"].type = proto.dtype
    node.attr["value"].tensor.CopyFrom(proto)
