"""Rules of the operations that move values around: reshapes, transposes, padding, slicing,
concatenation, and reductions."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import UnsupportedGraphError
from ..step import Context, Step, saved_input, saved_shape
from ..table import register, unsupported

__all__ = []


@register("reshape")
def reshape(ctx: Context, step: Step) -> None:
    tf = ctx.tf
    step.save = [saved_shape(ctx, step)]
    step.rule = lambda g, sv, F: [tf.reshape(g, tf.concat([[F], sv[0]], 0))]


@register("transpose")
def transpose(ctx: Context, step: Step) -> None:
    tf = ctx.tf
    perm = ctx.graph.const_value(step.inputs[1])
    if perm is None or int(perm[0]) != 0:
        raise UnsupportedGraphError(f"{step.node.name}: a transpose that moves the batch axis")
    inv = [0] + [1 + int(p) for p in np.argsort(perm)]
    step.rule = lambda g, sv, F: [tf.transpose(g, inv)]


@register("pad")
def pad(ctx: Context, step: Step) -> None:
    tf = ctx.tf
    step.save = [saved_shape(ctx, step), saved_input(step, 1)]

    def rule(g: Any, sv: list, F: Any) -> list:
        shape, pads = sv
        begin = tf.concat([[0], tf.cast(pads[:, 0], tf.int32)], 0)
        return [tf.slice(g, begin, tf.concat([[F], shape], 0))]

    step.rule = rule


@register("mirror_pad")
def mirror_pad(ctx: Context, step: Step) -> None:
    tf = ctx.tf
    mode = ctx.graph.attr(step.node, "mode")
    step.save = [saved_shape(ctx, step), saved_input(step, 1)]

    def rule(g: Any, sv: list, F: Any) -> list:
        pads = tf.concat([[[0, 0]], tf.cast(sv[1], tf.int32)], 0)
        return [tf.raw_ops.MirrorPadGrad(input=g, paddings=pads, mode=mode)]

    step.rule = rule


@register("concat")
def concat(ctx: Context, step: Step) -> None:
    tf = ctx.tf
    n = len(step.inputs) - 1
    const_axis = ctx.graph.const_value(step.inputs[-1])
    if const_axis is None:
        unsupported(ctx, step)
    axis = int(np.asarray(const_axis))
    step.save = [lambda env, t=t: tf.shape(env[t]) for t in step.inputs[:n]]

    def rule(g: Any, sv: list, F: Any) -> list:
        ax = axis % (g.shape.rank - 1)
        parts = tf.split(g, tf.stack([s[ax] for s in sv]), axis=ax + 1)
        return [parts[k] for k in step.var_inputs]

    step.rule = rule


_SLICE_MASKS = ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")


@register("strided_slice")
def strided_slice(ctx: Context, step: Step) -> None:
    tf = ctx.tf
    masks = {k: ctx.graph.attr(step.node, k) or 0 for k in _SLICE_MASKS}
    step.save = [saved_shape(ctx, step)] + [saved_input(step, k) for k in (1, 2, 3)]

    def rule(g: Any, sv: list, F: Any) -> list:
        shape, b, e, s = sv
        one = tf.ones([1], b.dtype)   # the features axis in front: taken whole
        dx = tf.raw_ops.StridedSliceGrad(
            shape=tf.cast(tf.concat([[F], shape], 0), b.dtype), begin=tf.concat([one * 0, b], 0),
            end=tf.concat([one, e], 0), strides=tf.concat([one, s], 0), dy=g,
            begin_mask=(masks["begin_mask"] << 1) | 1, end_mask=(masks["end_mask"] << 1) | 1,
            ellipsis_mask=masks["ellipsis_mask"] << 1, new_axis_mask=masks["new_axis_mask"] << 1,
            shrink_axis_mask=masks["shrink_axis_mask"] << 1)
        return [dx]

    step.rule = rule


@register("gather")
def gather(ctx: Context, step: Step) -> None:
    """Items taken along an axis by constant indices (``x[:, t]``, ``x[:, -1]``, ``x[:, [0,
    2]]``): the signal goes back to the items it came from (summed where an item was taken
    twice)."""
    tf = ctx.tf
    idx, axis = ctx.graph.const_value(step.inputs[1]), ctx.graph.const_value(step.inputs[2])
    if step.var_inputs != [0] or idx is None or axis is None or np.ndim(idx) > 1 or \
            (ctx.graph.attr(step.node, "batch_dims") or 0):
        unsupported(ctx, step)
    axis, scalar, flat = int(axis), np.ndim(idx) == 0, np.ravel(idx).astype(np.int64)
    step.save = [saved_shape(ctx, step)]

    def rule(g: Any, sv: list, F: Any) -> list:
        shape = sv[0]
        rank = g.shape.rank - 1 + (1 if scalar else 0)          # the input's rank
        ax = axis if axis >= 0 else axis + rank
        if ax <= 0:
            raise UnsupportedGraphError(f"{step.node.name}: a gather along the batch axis")
        if scalar:
            g = tf.expand_dims(g, ax + 1)
        n = tf.cast(shape[ax], tf.int64)
        perm = [ax + 1] + [k for k in range(rank + 1) if k != ax + 1]
        summed = tf.math.unsorted_segment_sum(tf.transpose(g, perm),
                                              tf.math.floormod(tf.constant(flat), n), n)
        return [tf.transpose(summed, np.argsort(perm).tolist())]

    step.rule = rule


@register("reduce")
def reduce(ctx: Context, step: Step) -> None:
    """Sum and Mean spread the signal evenly; Max and Min send it to the extremes (ties share
    it equally, as TensorFlow's own gradient does); which one: the declaration's ``reduce``."""
    tf, how = ctx.tf, step.operation.params["reduce"]
    red = ctx.graph.const_value(step.inputs[1])
    if red is None:
        unsupported(ctx, step)
    keep = bool(ctx.graph.attr(step.node, "keep_dims"))
    x_t = step.inputs[0]
    red_list = [int(r) for r in np.ravel(red)]

    def weights(env: dict) -> Any:
        x = env[x_t]
        axes = [r % x.shape.rank for r in red_list]
        if how in ("max", "min"):
            extreme = tf.reduce_max if how == "max" else tf.reduce_min
            ind = tf.cast(tf.equal(x, extreme(x, axis=axes, keepdims=True)), x.dtype)
            return ind / tf.reduce_sum(ind, axis=axes, keepdims=True)
        w = tf.ones_like(x)
        if how == "mean":
            w = w / tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes)), x.dtype)
        return w

    step.save = [weights]

    def rule(g: Any, sv: list, F: Any) -> list:
        w = sv[0]
        if not keep:
            for a in sorted(r % w.shape.rank for r in red_list):
                g = tf.expand_dims(g, a + 1)
        return [g * w]

    step.rule = rule


@register("split")
def split(ctx: Context, step: Step) -> None:
    """The outputs' signals concatenated back (zeros for an output that has none); the axis
    and the value are the inputs the declaration's ``axis_input`` and ``value_input`` name."""
    tf, g_, params = ctx.tf, ctx.graph, step.operation.params
    axis_t, value_k = step.inputs[params["axis_input"]], params["value_input"]
    step.n_outputs = int(g_.attr(step.node, "num_split"))
    if step.var_inputs != [value_k]:
        unsupported(ctx, step)
    axis = g_.const_value(axis_t)
    if axis is None:
        unsupported(ctx, step)
    axis = int(np.asarray(axis))
    if step.n_outputs == 1:          # one part: the tensor itself
        step.rule = lambda g, sv, F: [g]
        step.compact_rule = lambda g, sv, feats: g
        step.channelwise = True
        return
    outs = step.outputs
    step.save = [lambda env, t=t: tf.shape(env[t]) for t in outs]

    def rule(gs: list, sv: list, F: Any) -> list:
        like = next(g for g in gs if g is not None)
        ax = axis % (like.shape.rank - 1)
        parts = [g if g is not None else tf.zeros(tf.concat([tf.shape(like)[:1], shape], 0),
                                                  like.dtype) for g, shape in zip(gs, sv)]
        return [tf.concat(parts, axis=ax + 1)]

    step.rule = rule


@register("tile")
def tile(ctx: Context, step: Step) -> None:
    """The sum over the copies: (F, m0 * d0, m1 * d1, ...) -> (F, d0, d1, ...)."""
    tf = ctx.tf
    if step.var_inputs != [0]:
        unsupported(ctx, step)
    step.save = [saved_shape(ctx, step), saved_input(step, 1)]

    def rule(g: Any, sv: list, F: Any) -> list:
        shape, reps = tf.cast(sv[0], tf.int32), tf.cast(sv[1], tf.int32)
        split = tf.reshape(tf.stack([reps, shape], axis=1), [-1])       # m0, d0, m1, d1, ...
        t = tf.reshape(g, tf.concat([[F], split], 0))
        rank = tf.size(shape)
        return [tf.reduce_sum(t, axis=1 + 2 * tf.range(rank))]

    step.rule = rule
