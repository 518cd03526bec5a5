"""Frozen TensorFlow graphs: load, walk, cut at a layer, follow axes and receptive fields.

Every model in mirdeconv ends as a :class:`FrozenGraph`: a ``GraphDef`` whose variables are
constants, with a named input.  Rooms: :mod:`.operations` (one declaration per operation
type: its kind, backward and axes families, whether it is time-agnostic), :mod:`.ops`
(tensor and node names, the sets of operation types derived from the declarations),
:mod:`.frozen` (the graph itself), :mod:`.axes` (axes and receptive fields of every tensor,
one rule per kind of operation), :mod:`.conds` (``tf.cond`` branches resolved when their
predicate is a constant).
"""

from .axes import AXIS_FAMILIES, AXIS_RULES, LayerInfo, TensorInfo, axis_rule, trace_axes
from .frozen import FrozenGraph
from .operations import OPERATIONS, Kind, Operation, declare, operation, withdraw
from .ops import (
    BN_OPS,
    CONV_OPS,
    ELEMENTWISE_OPS,
    NONLINEAR_OPS,
    PASS_OPS,
    POOL_OPS,
    SHAPE_OPS,
    TIME_AGNOSTIC_OPS,
    node_name,
    tensor_name,
)

__all__ = ["FrozenGraph", "TensorInfo", "LayerInfo", "trace_axes", "AXIS_RULES", "axis_rule",
           "tensor_name", "node_name", "SHAPE_OPS", "CONV_OPS", "POOL_OPS", "NONLINEAR_OPS",
           "ELEMENTWISE_OPS", "PASS_OPS", "BN_OPS", "TIME_AGNOSTIC_OPS", "AXIS_FAMILIES",
           "OPERATIONS", "Operation", "Kind", "operation", "declare", "withdraw"]
