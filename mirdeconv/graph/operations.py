"""The operations: one declaration per TensorFlow operation type, in one table.

Each row of :data:`OPERATIONS` says everything mirdeconv knows about one operation type:

* its **kind** (:class:`Kind`: a convolution, a max-pool, a non-linearity ...), which the
  engine's fast paths and the graph's patterns read instead of its name;
* its **backward** rule family: a name the engine maps to a rule function through one table
  keyed by family (:data:`mirdeconv.engine.table.FAMILIES`, filled by
  ``@mirdeconv.engine.register("family")`` in ``engine/rules/``), or None (no rule: the
  engine refuses the operation, naming it);
* its **axes** rule family: a name :mod:`.axes` maps to how the operation moves axis
  labels and receptive fields (:data:`mirdeconv.graph.axes.AXIS_FAMILIES`);
* whether it is **time-agnostic** (treats every time step alike, so a longer input only
  gives a longer output);
* its **derivative** ``f'(x)`` when it is a non-linearity, and small **params** its rules
  read (where a window's size is, which reduction it is ...).

Everything else is derived from the rows: the sets :data:`NONLINEAR_OPS`,
:data:`TIME_AGNOSTIC_OPS` ... (kept for the modules that import them) and the op -> rule
views :data:`mirdeconv.engine.RULES` and :data:`mirdeconv.graph.AXIS_RULES`.  No other
module of mirdeconv's graph and engine names an operation type.  Adding an operation that
an existing family covers is one row here (see ``docs/design.md``, "Adding an operation")::

    declare(Operation("Softplus", Kind.NONLINEAR, backward=NONLINEAR, time_agnostic=True,
                      derivative=lambda tf, x, y, alpha: tf.sigmoid(x)))

An operation without a row gets :func:`operation`'s default row: its own name as its
backward and axes family (so ``@register("ReverseV2")`` alone makes an undeclared
``ReverseV2`` work), no kind, not time-agnostic.

This module imports nothing of mirdeconv: it lies below both the graph and the engine.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["Kind", "Operation", "OPERATIONS", "operation", "declare", "withdraw",
           "NONLINEAR", "COMPOSITE", "PASS", "SAME",
           "SHAPE_OPS", "CONV_OPS", "POOL_OPS", "NONLINEAR_OPS", "UNARY_OPS", "BINARY_OPS",
           "ELEMENTWISE_OPS", "PASS_OPS", "BN_OPS", "TIME_AGNOSTIC_OPS", "ALIAS_OPS",
           "KERNEL_OPS", "WEIGHT_OPS", "SINGLE_STEP_OPS",
           "IDENTITY", "SQUEEZE", "EXPAND_DIMS", "MEAN", "SUB", "SQUARE", "SQUARED_DIFFERENCE"]


class Kind(enum.Enum):
    """What an operation is, for the code that needs more than its rules."""

    CONVOLUTION = "convolution"              # Conv2D: a kernel over height and width
    DEPTHWISE_CONVOLUTION = "depthwise convolution"
    CONVOLUTION_3D = "3-d convolution"
    MAX_POOL = "max-pool"
    AVG_POOL = "average pool"
    NONLINEAR = "non-linearity"              # y = f(x) with a derivative of its own
    UNARY = "element-wise, one operand"
    BINARY = "element-wise, two operands"
    PASS = "pass-through"
    BATCH_NORM = "batch normalisation"
    SHAPE_READ = "reads a shape"             # never on a gradient path
    LAYOUT = "moves values"                  # reshapes, pads, slices, concatenations
    REDUCE = "reduction"
    MATMUL = "matrix product"
    SOFTMAX = "softmax"
    UNDECLARED = "undeclared"


#: Kinds that are convolutions (:data:`CONV_OPS`), poolings, element-wise.
CONVOLUTIONS = frozenset({Kind.CONVOLUTION, Kind.DEPTHWISE_CONVOLUTION, Kind.CONVOLUTION_3D})
POOLINGS = frozenset({Kind.MAX_POOL, Kind.AVG_POOL})
ELEMENTWISE = frozenset({Kind.NONLINEAR, Kind.UNARY, Kind.BINARY})

#: Backward families the declarations name specially: a non-linearity under the method's
#: rule with the row's derivative; an element-wise function as one non-linearity with
#: TensorFlow's derivative (also every composite activation); the signal passed on.
NONLINEAR, COMPOSITE, PASS = "nonlinear", "composite", "pass"
#: The axes family of operations that keep their input's labels.
SAME = "same"

Derivative = Callable[[Any, Any, Any, Any], Any]


@dataclass(frozen=True)
class Operation:
    """One operation type: everything the graph and the engine know about it.

    Attributes
    ----------
    name : str
        TensorFlow's operation type (``NodeDef.op``).
    kind : Kind
    backward : str or None
        Its backward rule family (a key of :data:`mirdeconv.engine.table.FAMILIES`); None:
        the engine cannot deconvolve through it.
    axes : str
        Its axes rule family (a key of :data:`mirdeconv.graph.axes.AXIS_FAMILIES`).
    time_agnostic : bool
        It treats every time step alike.
    derivative : callable or None
        ``(tf, x, y, alpha) -> f'(x)`` from the forward input ``x``, output ``y`` and the
        node's ``alpha`` attribute (non-linearities).
    alias : bool
        Its output IS its input (followed when looking for a constant or a tensor's source).
    weighted : bool
        Input 1 is a learned kernel (the sanity checks re-initialise it).
    neutral : mapping of int to float
        Constant operands (by input position) that belong to the weighted operation before
        it, each with the value that makes it do nothing (the sanity checks' cascade).
    params : mapping
        What its rules read besides the node's attributes (see each family's rule).
    """

    name: str
    kind: Kind
    backward: str | None = None
    axes: str = SAME
    time_agnostic: bool = False
    derivative: Derivative | None = None
    alias: bool = False
    weighted: bool = False
    neutral: Mapping[int, float] = field(default_factory=lambda: MappingProxyType({}))
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def is_convolution(self) -> bool:
        return self.kind in CONVOLUTIONS

    @property
    def is_pool(self) -> bool:
        return self.kind in POOLINGS

    @property
    def elementwise(self) -> bool:
        return self.kind in ELEMENTWISE


def _frozen(d: Mapping) -> Mapping:
    return MappingProxyType(dict(d))


def _row(name: str, kind: Kind, backward: str | None, *, agnostic: bool = True,
         axes: str = SAME, neutral: Mapping[int, float] | None = None,
         params: Mapping[str, Any] | None = None, **facts: Any) -> Operation:
    return Operation(name, kind, backward, axes, agnostic, neutral=_frozen(neutral or {}),
                     params=_frozen(params or {}), **facts)


def _selu(tf: Any, x: Any, y: Any, alpha: Any) -> Any:
    scale, a = 1.0507009873554805, 1.6732632423543772
    return tf.where(x > 0, scale * tf.ones_like(x), y + scale * a)


def _leaky(tf: Any, x: Any, y: Any, alpha: Any) -> Any:
    slope = tf.cast(alpha if alpha is not None else 0.2, x.dtype)
    return tf.where(x > 0, tf.ones_like(x), slope * tf.ones_like(x))


_BN_NEUTRAL = {1: 1.0, 2: 0.0, 3: 0.0, 4: 1.0}
_NL, _UN, _BIN = Kind.NONLINEAR, Kind.UNARY, Kind.BINARY

#: The declarations, one row per operation type.
_DECLARED: tuple[Operation, ...] = (
    # shapes: never a gradient path
    *(_row(n, Kind.SHAPE_READ, None, agnostic=False) for n in ("Shape", "ShapeN", "Size", "Rank")),
    # convolutions and poolings: sliding windows
    _row("Conv2D", Kind.CONVOLUTION, "convolution", axes="window", weighted=True),
    _row("DepthwiseConv2dNative", Kind.DEPTHWISE_CONVOLUTION, "depthwise_convolution",
         axes="window", weighted=True),
    _row("Conv3D", Kind.CONVOLUTION_3D, None, axes="window", weighted=True),
    _row("MaxPool", Kind.MAX_POOL, "max_pool", axes="window"),
    _row("MaxPoolV2", Kind.MAX_POOL, "max_pool", axes="window",
         params={"window_inputs": (1, 2)}),          # ksize and strides are inputs 1 and 2
    _row("AvgPool", Kind.AVG_POOL, "avg_pool", axes="window"),
    # non-linearities, each with its derivative
    _row("Relu", _NL, NONLINEAR, derivative=lambda tf, x, y, a: tf.cast(x > 0, x.dtype)),
    _row("Relu6", _NL, NONLINEAR,
         derivative=lambda tf, x, y, a: tf.cast((x > 0) & (x < 6), x.dtype)),
    _row("Elu", _NL, NONLINEAR, derivative=lambda tf, x, y, a: tf.where(x > 0, tf.ones_like(x), y + 1.0)),
    _row("Selu", _NL, NONLINEAR, derivative=_selu),
    _row("LeakyRelu", _NL, NONLINEAR, derivative=_leaky),
    _row("Softplus", _NL, NONLINEAR, derivative=lambda tf, x, y, a: tf.sigmoid(x)),
    _row("Sigmoid", _NL, NONLINEAR, derivative=lambda tf, x, y, a: y * (1.0 - y)),
    _row("Tanh", _NL, NONLINEAR, derivative=lambda tf, x, y, a: 1.0 - y * y),
    # other element-wise functions of one tensor (parts of composite activations: GELU,
    # swish, mish, hard-swish ...); alone, each a non-linearity with TensorFlow's derivative
    _row("Neg", _UN, "negate"),
    _row("Cast", _UN, PASS),
    *(_row(n, _UN, COMPOSITE) for n in ("Abs", "Exp", "Expm1", "Log", "Log1p", "Sqrt", "Rsqrt",
                                        "Square", "Reciprocal", "Erf", "Erfc", "Softsign", "Sign")),
    # element-wise functions of two tensors (with broadcasting)
    _row("BiasAdd", _BIN, "bias_add", neutral={1: 0.0}),
    _row("Add", _BIN, "add", neutral={0: 0.0, 1: 0.0}),
    _row("AddV2", _BIN, "add", neutral={0: 0.0, 1: 0.0}),
    _row("Sub", _BIN, "subtract", neutral={1: 0.0}),
    _row("Mul", _BIN, "multiply", neutral={0: 1.0, 1: 1.0}),
    _row("RealDiv", _BIN, "divide"),
    *(_row(n, _BIN, None) for n in ("Maximum", "Minimum", "Pow", "SquaredDifference")),
    # pass-throughs
    _row("Identity", Kind.PASS, PASS, alias=True),
    _row("Snapshot", Kind.PASS, PASS, alias=True),
    *(_row(n, Kind.PASS, PASS) for n in ("CheckNumerics", "PreventGradient", "IdentityN",
                                         "EnsureShape")),
    _row("StopGradient", Kind.PASS, "stop"),
    # batch normalisation in inference: a per-channel scale
    *(_row(n, Kind.BATCH_NORM, "batch_norm", neutral=_BN_NEUTRAL)
      for n in ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")),
    # moving values around
    _row("Reshape", Kind.LAYOUT, "reshape", agnostic=False, axes="reshape"),
    _row("Squeeze", Kind.LAYOUT, "reshape", axes="squeeze"),
    _row("ExpandDims", Kind.LAYOUT, "reshape", axes="expand_dims"),
    _row("Transpose", Kind.LAYOUT, "transpose", axes="transpose"),
    _row("Pad", Kind.LAYOUT, "pad"),
    _row("PadV2", Kind.LAYOUT, "pad"),
    _row("MirrorPad", Kind.LAYOUT, "mirror_pad"),
    _row("ConcatV2", Kind.LAYOUT, "concat"),
    _row("StridedSlice", Kind.LAYOUT, "strided_slice", agnostic=False),
    _row("GatherV2", Kind.LAYOUT, "gather", axes="gather"),
    _row("Split", Kind.LAYOUT, "split", axes="split", params={"axis_input": 0, "value_input": 1}),
    _row("SplitV", Kind.LAYOUT, "split", axes="split", params={"axis_input": 2, "value_input": 0}),
    _row("Tile", Kind.LAYOUT, "tile", agnostic=False),
    # reductions
    *(_row(n, Kind.REDUCE, "reduce", agnostic=False, axes="reduce", params={"reduce": r})
      for n, r in (("Max", "max"), ("Min", "min"), ("Mean", "mean"), ("Sum", "sum"))),
    # matrix products with a fixed second operand
    _row("MatMul", Kind.MATMUL, "matmul", agnostic=False, axes="matmul", weighted=True,
         params={"transpose": ("transpose_a", "transpose_b")}),
    _row("BatchMatMul", Kind.MATMUL, "matmul", axes="batch_matmul",
         params={"transpose": ("adj_x", "adj_y")}),
    _row("BatchMatMulV2", Kind.MATMUL, "matmul", axes="batch_matmul", weighted=True,
         params={"transpose": ("adj_x", "adj_y")}),
    _row("BatchMatMulV3", Kind.MATMUL, "matmul", axes="batch_matmul",
         params={"transpose": ("adj_x", "adj_y")}),
    # a class output's softmax
    _row("Softmax", Kind.SOFTMAX, "softmax", agnostic=False),
)

#: Operation type -> its declaration (change it with :func:`declare` / :func:`withdraw`,
#: which keep the derived sets below current).
OPERATIONS: dict[str, Operation] = {}

# Derived from the rows (filled in place by _derive, so imported references stay current).
SHAPE_OPS: set[str] = set()
CONV_OPS: set[str] = set()
POOL_OPS: set[str] = set()
NONLINEAR_OPS: set[str] = set()
#: Element-wise functions of one tensor (non-linearities included).
UNARY_OPS: set[str] = set()
#: Element-wise functions of two tensors.
BINARY_OPS: set[str] = set()
ELEMENTWISE_OPS: set[str] = set()
PASS_OPS: set[str] = set()
BN_OPS: set[str] = set()
#: Operations that treat every time step alike, so a longer input just gives a longer output.
TIME_AGNOSTIC_OPS: set[str] = set()
#: Operations whose output is their input (Identity chains).
ALIAS_OPS: set[str] = set()
#: Operations whose input 1 is a learned kernel.
WEIGHT_OPS: set[str] = set()
#: Convolutions whose kernel (input 1) the forward pass feeds as a tensor; TensorFlow's
#: fused convolution (made by its grappler, never declared for the engine) included.
KERNEL_OPS: set[str] = set()
#: Element-wise operations the engine treats as one step of their own when they stand
#: alone (a region of only these, not combining its input with itself, is no composite
#: activation).
SINGLE_STEP_OPS: set[str] = set()

_GRAPPLER_FUSED_CONV = "_FusedConv2D"


def _derive() -> None:
    rows = OPERATIONS.values()

    def fill(target: set[str], keep: Callable[[Operation], bool]) -> None:
        target.clear()
        target.update(r.name for r in rows if keep(r))

    fill(SHAPE_OPS, lambda r: r.kind is Kind.SHAPE_READ)
    fill(CONV_OPS, lambda r: r.is_convolution)
    fill(POOL_OPS, lambda r: r.is_pool)
    fill(NONLINEAR_OPS, lambda r: r.kind is Kind.NONLINEAR)
    fill(UNARY_OPS, lambda r: r.kind in (Kind.NONLINEAR, Kind.UNARY))
    fill(BINARY_OPS, lambda r: r.kind is Kind.BINARY)
    fill(ELEMENTWISE_OPS, lambda r: r.elementwise)
    fill(PASS_OPS, lambda r: r.kind is Kind.PASS)
    fill(BN_OPS, lambda r: r.kind is Kind.BATCH_NORM)
    fill(TIME_AGNOSTIC_OPS, lambda r: r.time_agnostic)
    fill(ALIAS_OPS, lambda r: r.alias)
    fill(WEIGHT_OPS, lambda r: r.weighted)
    fill(KERNEL_OPS, lambda r: r.kind in (Kind.CONVOLUTION, Kind.DEPTHWISE_CONVOLUTION))
    KERNEL_OPS.add(_GRAPPLER_FUSED_CONV)
    fill(SINGLE_STEP_OPS, lambda r: r.elementwise and r.backward not in (None, COMPOSITE, PASS))


def declare(*rows: Operation) -> None:
    """Add (or replace) the declarations of operation types."""
    for r in rows:
        OPERATIONS[r.name] = r
    _derive()


def withdraw(name: str) -> Operation:
    """Remove an operation type's declaration (it gets the default row again)."""
    row = OPERATIONS.pop(name)
    _derive()
    return row


def operation(name: str) -> Operation:
    """The declaration of an operation type; an undeclared one gets a default row whose
    backward and axes families are its own name (a rule registered under that name)."""
    row = OPERATIONS.get(name)
    if row is None:
        return Operation(name, Kind.UNDECLARED, backward=name, axes=name)
    return row


declare(*_DECLARED)

#: Names that the graph's rewriting and pattern code builds or matches.
IDENTITY, SQUEEZE, EXPAND_DIMS = "Identity", "Squeeze", "ExpandDims"
MEAN, SUB, SQUARE, SQUARED_DIFFERENCE = "Mean", "Sub", "Square", "SquaredDifference"
#: Names matched by rooms above the graph: a class output's squashing functions (the
#: explanations' logits), musicnn's ``Conv2D -> BiasAdd -> Relu`` (the Essentia adapter's
#: readable layer names).
SIGMOID, SOFTMAX, CONV2D, BIAS_ADD, RELU = "Sigmoid", "Softmax", "Conv2D", "BiasAdd", "Relu"
assert {IDENTITY, SQUEEZE, EXPAND_DIMS, MEAN, SUB, SQUARE, SQUARED_DIFFERENCE} <= set(OPERATIONS)
assert {SIGMOID, SOFTMAX, CONV2D, BIAS_ADD, RELU} <= set(OPERATIONS)
