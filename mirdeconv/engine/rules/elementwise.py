"""Rules of the element-wise operations: pass-throughs, non-linearities, arithmetic, batch norm.

Which operation takes which rule, and each non-linearity's derivative, are in the
operations' declarations (:mod:`mirdeconv.graph.operations`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import UnsupportedGraphError
from ...graph.operations import COMPOSITE, NONLINEAR, PASS
from ..step import Context, Step, per_channel, per_feature
from ..table import register, unsupported

__all__ = []


@register(PASS)
def passthrough(ctx: Context, step: Step) -> None:
    step.rule = lambda g, sv, F: [g]
    step.compact_rule = lambda g, sv, feats: g
    step.channelwise = True


@register("stop")
def stop_gradient(ctx: Context, step: Step) -> None:
    step.rule = lambda g, sv, F: [None]


# -- non-linearities ------------------------------------------------------------------------
@register(NONLINEAR)
def nonlinear(ctx: Context, step: Step) -> None:
    """The method's rule (:class:`mirdeconv.options.Method`): ``relu(g)`` when it rectifies
    (skipped when the max-pool after the non-linearity rectified already), times ``f'(x)``
    (the declaration's ``derivative``) when it uses the derivative."""
    tf, method = ctx.tf, ctx.method
    deriv = step.operation.derivative
    if deriv is None:
        raise UnsupportedGraphError(f"{step.node.name}: {step.op} is declared a non-linearity "
                                    "without a derivative")
    alpha = ctx.graph.attr(step.node, "alpha")
    x_t, out = step.inputs[0], step.output

    def identity(g: Any) -> Any:
        return g

    rect_full = tf.nn.relu if method.rectify else identity
    rect = identity if step.node.name in ctx.rectified_by_pool else rect_full
    _method_rule(ctx, step, lambda env: deriv(tf, env[x_t], env[out], alpha), rect, rect_full)


def _method_rule(ctx: Context, step: Step, derivative: Any, rect: Any, rect_full: Any) -> None:
    """A non-linearity's step under the method: ``rect(g)``, times ``f'(x)`` (``derivative``,
    from the forward pass) when the method uses it; ``rect_full`` on the compact path."""
    tf = ctx.tf
    step.derivative = derivative
    step.channelwise, step.channel_op = True, ("nonlinear", None)
    if ctx.method.derivative:
        step.save = [step.derivative]
        step.rule = lambda g, sv, F: [rect(g) * sv[0]]
        step.compact_rule = lambda g, sv, feats: rect_full(g) * per_feature(tf, sv[0], feats)
    else:
        step.rule = lambda g, sv, F: [rect(g)]
        step.compact_rule = lambda g, sv, feats: rect_full(g)


@register(COMPOSITE)
def composite(ctx: Context, step: Step) -> None:
    """A composite activation ``y = f(x)`` (GELU, swish, mish, PReLU ...), or an element-wise
    function declared without a rule of its own (Erf, Exp, Softsign, Square ...), as one
    non-linearity: the method's rule with ``f'(x)`` from TensorFlow's own gradient of the
    element-wise operations (``d sum(y) / dx`` is ``f'(x)`` for an element-wise ``f``)."""
    tf = ctx.tf
    x_t, out = step.inputs[0], step.output
    rect = tf.nn.relu if ctx.method.rectify else (lambda g: g)
    _method_rule(ctx, step, lambda env: tf.gradients(env[out], env[x_t])[0], rect, rect)


# -- arithmetic -------------------------------------------------------------------------------
def unbroadcast(tf: Any, g: Any, shape: Any) -> Any:
    """Sum g (F, N', ...) down to ``shape`` (a forward tensor's shape, batch included)."""
    gs = tf.shape(g)[1:]
    rank_g = g.shape.rank - 1
    shape = tf.cast(shape, tf.int32)
    n = tf.size(shape)
    full = tf.concat([tf.ones([rank_g - n], tf.int32), shape], 0)
    red, _ = tf.raw_ops.BroadcastGradientArgs(s0=full, s1=gs)     # the axes ``full`` was broadcast on
    g = tf.reduce_sum(g, axis=red + 1, keepdims=True)
    return tf.reshape(g, tf.concat([tf.shape(g)[:1], shape], 0))


@register("negate")
def neg(ctx: Context, step: Step) -> None:
    step.rule = lambda g, sv, F: [-g]


@register("bias_add")
def bias_add(ctx: Context, step: Step) -> None:
    if step.var_inputs != [0]:
        unsupported(ctx, step)
    step.rule = lambda g, sv, F: [g]
    step.compact_rule = lambda g, sv, feats: g
    step.channelwise = True


@dataclass(frozen=True)
class _Binary:
    """How a binary operation's signal reaches its operands.

    ``grad(g, k, values)``: operand k's gradient; ``values``: the rule needs the operands'
    values; ``scale``: with the input first and a per-channel constant second, the channel's
    signal is ``"scale"``-d or ``"divide"``-d by the constant (None: passed on);
    ``second_may_vary``: the second operand may depend on the input.
    """

    grad: Callable[[Any, int, list], Any]
    values: bool = False
    scale: str | None = None
    second_may_vary: bool = True


#: Backward family -> how its signal reaches the operands.
_BINARY: dict[str, _Binary] = {
    "add": _Binary(lambda g, k, vals: g),
    "subtract": _Binary(lambda g, k, vals: g if k == 0 else -g),
    "multiply": _Binary(lambda g, k, vals: g * vals[1 - k], values=True, scale="scale"),
    "divide": _Binary(lambda g, k, vals: g / vals[1], values=True, scale="divide",
                      second_may_vary=False),   # the numerator only
}
_SCALE = {"scale": lambda g, c: g * c, "divide": lambda g, c: g / c}


def _per_channel_constant(ctx: Context, step: Step) -> bool:
    c = ctx.graph.const_value(step.inputs[1])
    return c is not None and not (c.ndim > 1 and any(d != 1 for d in c.shape[:-1]))


@register(*_BINARY)
def binary(ctx: Context, step: Step) -> None:
    """Add, Sub, Mul, RealDiv with broadcasting: the product rule, summed down to each
    operand's shape."""
    tf, var, kind = ctx.tf, step.var_inputs, _BINARY[step.operation.backward]
    if 1 in var and not kind.second_may_vary:
        unsupported(ctx, step)
    step.save = [lambda env, t=t: tf.shape(env[t]) for t in step.inputs]
    if kind.values:
        step.save += [lambda env, t=t: env[t] for t in step.inputs]

    def rule(g: Any, sv: list, F: Any) -> list:
        shapes, vals = sv[:2], sv[2:]
        return [unbroadcast(tf, kind.grad(g, k, vals), shapes[k]) for k in var]

    step.rule = rule
    if var != [0]:
        return
    if kind.scale is None:                       # a constant added: the signal passes on
        step.compact_rule = lambda g, sv, feats: g
        step.channelwise = True
    elif _per_channel_constant(ctx, step):       # scaled per channel by a constant
        apply, c_t = _SCALE[kind.scale], step.inputs[1]
        step.compact_rule = lambda g, sv, feats: apply(g, per_channel(tf, sv[3], feats))
        step.channelwise = True
        step.channel_op = (kind.scale, lambda env: env[c_t])


@register("batch_norm")
def batch_norm(ctx: Context, step: Step) -> None:
    """Batch norm in inference: a per-channel scale ``gamma / sqrt(var + eps)``."""
    tf, graph = ctx.tf, ctx.graph
    if graph.attr(step.node, "is_training"):
        raise UnsupportedGraphError(
            f"{step.node.name}: batch normalisation in training mode; export the model for "
            "inference (is_training=False)"
        )
    if step.var_inputs != [0]:
        unsupported(ctx, step)
    eps = graph.attr(step.node, "epsilon") or 1e-3
    ins = step.inputs

    def scale(env: dict) -> Any:
        return env[ins[1]] * tf.math.rsqrt(env[ins[4]] + eps)

    step.save = [scale]
    step.rule = lambda g, sv, F: [g * sv[0]]
    step.compact_rule = lambda g, sv, feats: g * per_channel(tf, sv[0], feats)
    step.channelwise, step.channel_op = True, ("scale", scale)


@register("softmax")
def softmax(ctx: Context, step: Step) -> None:
    """A class output's softmax over its last axis: the exact vector-Jacobian product
    ``y * (g - sum(g * y))`` for every method (it normalises; it does not rectify)."""
    tf, out = ctx.tf, step.output
    step.save = [lambda env: env[out]]
    step.rule = lambda g, sv, F: [sv[0] * (g - tf.reduce_sum(g * sv[0], axis=-1, keepdims=True))]
