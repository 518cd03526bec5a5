"""Operation types and names in frozen graphs: the sets the graph tracing and the engine share."""

from __future__ import annotations

from typing import Any

__all__ = ["SHAPE_OPS", "CONV_OPS", "POOL_OPS", "NONLINEAR_OPS", "ELEMENTWISE_OPS", "PASS_OPS",
           "BN_OPS", "TIME_AGNOSTIC_OPS", "UNARY_OPS", "BINARY_OPS", "node_name", "tensor_name",
           "attr"]

#: Operations that never make a gradient path (they read shapes, not values).
SHAPE_OPS = {"Shape", "ShapeN", "Size", "Rank"}
CONV_OPS = {"Conv2D", "DepthwiseConv2dNative", "Conv3D"}
POOL_OPS = {"MaxPool", "MaxPoolV2", "AvgPool"}
NONLINEAR_OPS = {"Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Softplus", "Sigmoid", "Tanh"}
#: Element-wise functions of one tensor (the parts of composite activations such as GELU,
#: swish, mish, hard-swish; see :mod:`.patterns`).
UNARY_OPS = NONLINEAR_OPS | {"Neg", "Abs", "Exp", "Expm1", "Log", "Log1p", "Sqrt", "Rsqrt",
                             "Square", "Reciprocal", "Erf", "Erfc", "Softsign", "Sign", "Cast"}
#: Element-wise functions of two tensors (with broadcasting).
BINARY_OPS = {"BiasAdd", "Add", "AddV2", "Sub", "Mul", "RealDiv", "Maximum", "Minimum", "Pow",
              "SquaredDifference"}
ELEMENTWISE_OPS = UNARY_OPS | BINARY_OPS
PASS_OPS = {"Identity", "Snapshot", "CheckNumerics", "PreventGradient", "StopGradient",
            "IdentityN", "EnsureShape"}
BN_OPS = {"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"}
#: Operations that treat every time step alike, so a longer input just gives a longer output.
TIME_AGNOSTIC_OPS = (CONV_OPS | POOL_OPS | NONLINEAR_OPS | ELEMENTWISE_OPS | PASS_OPS | BN_OPS
                     | {"Pad", "PadV2", "MirrorPad", "ConcatV2", "Squeeze", "ExpandDims",
                        "Transpose", "Split", "SplitV", "GatherV2", "BatchMatMul",
                        "BatchMatMulV2", "BatchMatMulV3"})


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
