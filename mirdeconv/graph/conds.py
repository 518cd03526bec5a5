"""``tf.cond`` branches resolved when their predicate is a constant.

TF1 graphs exported for training keep their mode switches (``is_training`` and the like):
``Switch`` sends a value to one of two branches, ``Merge`` takes whichever branch is alive.
With the predicate a known constant, every ``Switch`` forwards its value to the live output
and every ``Merge`` is its one live input, so both disappear, with everything only the dead
branches used (dropout's ``RandomUniform``, training-mode batch statistics).
"""

from __future__ import annotations

from typing import Any

from .. import backend
from .frozen import FrozenGraph
from .ops import node_name

__all__ = ["resolve_false_conds", "make_const"]


def _tensor(i: str) -> str:
    nm, _, port = i.lstrip("^").partition(":")
    return f"{nm}:{port or 0}"


def _liveness(order: list[str], nodes: dict[str, Any], falses: set[str]
              ) -> tuple[dict[str, str], set[str]]:
    """Where each Switch/Merge output really comes from, and the nodes of dead branches."""
    alias: dict[str, str] = {}
    dead: set[str] = set()
    dead_nodes: set[str] = set()
    for x in order:
        n = nodes[x]
        ins = [alias.get(_tensor(i), _tensor(i)) for i in n.input if not i.startswith("^")]
        if n.op == "Switch" and node_name(n.input[1]) in falses:
            if ins[0] in dead:
                dead_nodes.add(x)
                dead.update({f"{x}:0", f"{x}:1"})
            else:  # predicate False: output 0 carries the data, output 1 is dead
                alias[f"{x}:0"] = ins[0]
                dead.add(f"{x}:1")
        elif n.op == "Merge":
            live = [t for t in ins if t not in dead]
            if len(live) != 1:
                raise ValueError(f"cannot resolve {x}: {len(live)} live inputs")
            alias[f"{x}:0"] = live[0]
        elif any(t in dead for t in ins):
            dead_nodes.add(x)
            dead.update(f"{x}:{k}" for k in range(8))
    return alias, dead_nodes


def resolve_false_conds(graph_def: Any, outputs: list[str], flags: set[str]) -> Any:
    """A copy of ``graph_def`` with the boolean placeholders ``flags`` set to constant False
    (with the Identity chains that forward them) and every ``tf.cond`` on them resolved.

    Raises
    ------
    ValueError
        A Merge with no live input, or more than one.
    """
    tf = backend.tensorflow()
    graph = FrozenGraph(graph_def)
    nodes = graph.nodes
    order = graph.ancestors(outputs)
    falses = set(flags)
    for x in order:  # Identity chains of a flag are the flag too
        if nodes[x].op == "Identity" and node_name(nodes[x].input[0]) in falses:
            falses.add(x)
    alias, dead_nodes = _liveness(order, nodes, falses)
    gone = dead_nodes | {x for x in order if nodes[x].op in ("Switch", "Merge")}
    out = tf.compat.v1.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    for x in order:
        if x in gone:
            continue
        new = out.node.add()
        new.CopyFrom(nodes[x])
        if x in flags:
            make_const(tf, new, False)
            continue
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
