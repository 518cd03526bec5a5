"""Tensor and node names in frozen graphs, node attributes, and the sets of operation types
the graph tracing and the engine share (derived from :mod:`.operations`, where each
operation is declared once)."""

from __future__ import annotations

from typing import Any

from .operations import (
    BINARY_OPS,
    BN_OPS,
    CONV_OPS,
    ELEMENTWISE_OPS,
    NONLINEAR_OPS,
    PASS_OPS,
    POOL_OPS,
    SHAPE_OPS,
    TIME_AGNOSTIC_OPS,
    UNARY_OPS,
)

__all__ = ["SHAPE_OPS", "CONV_OPS", "POOL_OPS", "NONLINEAR_OPS", "ELEMENTWISE_OPS", "PASS_OPS",
           "BN_OPS", "TIME_AGNOSTIC_OPS", "UNARY_OPS", "BINARY_OPS", "node_name", "tensor_name",
           "attr"]


def node_name(tensor: str) -> str:
    """``'scope/op:1'`` -> ``'scope/op'`` (also strips a control-input ``^``)."""
    return tensor.lstrip("^").split(":")[0]


def tensor_name(name: str) -> str:
    """``'scope/op'`` -> ``'scope/op:0'``; names with an index are kept."""
    return name if ":" in name else f"{name}:0"


def attr(node: Any, key: str) -> Any:
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
