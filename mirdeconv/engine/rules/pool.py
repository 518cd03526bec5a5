"""Rules of the poolings: max-pools undone with the forward pass's switches, average pools
with their exact transpose."""

from __future__ import annotations

from typing import Any

from ...errors import UnsupportedGraphError
from ..step import Context, Step, merge, per_feature, saved_input, saved_shape, split
from ..table import register

__all__ = []


def _pool_attrs(ctx: Context, step: Step) -> tuple[list[int], list[int], str]:
    g, node = ctx.graph, step.node
    window_inputs = step.operation.params.get("window_inputs")
    if window_inputs:                     # MaxPoolV2: ksize and strides are inputs
        ksize = [int(v) for v in g.const_value(step.inputs[window_inputs[0]])]
        strides = [int(v) for v in g.const_value(step.inputs[window_inputs[1]])]
    else:
        ksize, strides = g.attr(node, "ksize"), g.attr(node, "strides")
    if (g.attr(node, "data_format") or "NHWC") != "NHWC":
        raise UnsupportedGraphError(f"{node.name}: data_format must be NHWC")
    return ksize, strides, g.attr(node, "padding")


@register("max_pool")
def max_pool(ctx: Context, step: Step) -> None:
    ksize, strides, padding = _pool_attrs(ctx, step)
    rectify = step.node.name in ctx.rectify_before_unpool
    if ksize[0] == ksize[3] == strides[0] == strides[3] == 1:      # windows in H x W only
        step.pool_geometry = (ksize[1], ksize[2], strides[1], strides[2], padding)
    if list(ksize) == list(strides) and ksize[0] == 1 and ksize[3] == 1:
        step.save = [_switches(ctx.tf, step, ksize, strides, padding)]
        step.rule = _unpool_rule(ctx.tf, ksize[1], ksize[2], rectify)
        step.compact_rule = _compact_unpool_rule(ctx.tf, ksize[1], ksize[2])
        step.compact_pool = True
    else:
        step.save = [saved_input(step, 0), lambda env, t=step.output: env[t]]
        step.rule = _overlapping_rule(ctx.tf, ksize, strides, padding, rectify)


def _switches(tf: Any, step: Step, ksize: list, strides: list, padding: str) -> Any:
    """Non-overlapping windows: the switches are a 0/1 mask of the input's shape, made once by
    TensorFlow's own MaxPoolGrad (first maximum on ties), stored as (N*Ho, kh, Wo, kw*C) so
    that unpooling is ONE broadcast multiply; plus the geometry (H, W, pad top, pad left)."""
    x_t, out = step.inputs[0], step.output
    kh, kw = ksize[1], ksize[2]

    def save(env: dict) -> tuple:
        x, y = env[x_t], env[out]
        mask = tf.raw_ops.MaxPoolGrad(orig_input=x, orig_output=y, grad=tf.ones_like(y),
                                      ksize=ksize, strides=strides, padding=padding)
        s, xs = tf.shape(y), tf.shape(x)
        ho, wo = s[1] * kh, s[2] * kw
        pt = tf.maximum(ho - xs[1], 0) // 2 if padding == "SAME" else 0
        pl = tf.maximum(wo - xs[2], 0) // 2 if padding == "SAME" else 0
        # the covered region [-pt, ho - pt) x [-pl, wo - pl) of the input
        mask = tf.pad(mask, [[0, 0], [pt, tf.maximum(ho - pt - xs[1], 0)],
                             [pl, tf.maximum(wo - pl - xs[2], 0)], [0, 0]])
        mask = mask[:, :ho, :wo]
        mask6 = tf.reshape(mask, tf.stack([s[0] * s[1], kh, s[2], kw * s[3]]))
        return mask6, tf.stack([xs[1], xs[2], pt, pl])

    return save


def _crop(tf: Any, u: Any, geo: Any) -> Any:
    """The pool's covered region (F, N, ho, wo, ...) cut back to the input's (H, W)."""
    H, W, pt, pl = geo[0], geo[1], geo[2], geo[3]
    u = u[:, :, pt:pt + H, pl:pl + W]
    pad = [[0, 0], [0, 0], [0, H - tf.shape(u)[2]], [0, W - tf.shape(u)[3]]]
    return tf.pad(u, pad + [[0, 0]] * (u.shape.rank - 4))


def _unpool_rule(tf: Any, kh: int, kw: int, rectify: bool) -> Any:
    def rule(g: Any, sv: list, F: Any) -> list:
        mask6, geo = sv[0]
        if rectify:  # relu(unpool(g)) == unpool(relu(g)): rectify the small tensor
            g = tf.nn.relu(g)
        s = tf.shape(g)                       # F, N, Ho, Wo, C
        # (F, N*Ho, 1, Wo, kw*C) * (N*Ho, kh, Wo, kw*C): TensorFlow broadcasts up to
        # rank 5, so the kw copies are tiled into the channel axis (pooled size only)
        gt = tf.tile(tf.reshape(g, tf.stack([s[0], s[1] * s[2], s[3], s[4]])), [1, 1, 1, kw])
        up = gt[:, :, None] * mask6
        up = tf.reshape(up, tf.stack([s[0], s[1], s[2] * kh, s[3] * kw, s[4]]))
        exact = tf.logical_and(tf.equal(s[2] * kh, geo[0]), tf.equal(s[3] * kw, geo[1]))
        return [tf.cond(exact, lambda: up, lambda: _crop(tf, up, geo))]

    return rule


def _compact_unpool_rule(tf: Any, kh: int, kw: int) -> Any:
    def rule(g: Any, sv: list, feats: Any) -> Any:
        mask6, geo = sv[0]
        s = tf.shape(g)                       # F, N, Ho, Wo
        C = tf.shape(mask6)[3] // kw
        mask = tf.reshape(mask6, tf.stack([s[1], s[2] * kh, s[3] * kw, C]))
        m = tf.reshape(per_feature(tf, mask, feats), tf.stack([s[0], s[1] * s[2], kh, s[3], kw]))
        up = tf.reshape(g, tf.stack([s[0], s[1] * s[2], 1, s[3], 1])) * m
        up = tf.reshape(up, tf.stack([s[0], s[1], s[2] * kh, s[3] * kw]))
        return _crop(tf, up, geo)

    return rule


def _overlapping_rule(tf: Any, ksize: list, strides: list, padding: str, rectify: bool) -> Any:
    def rule(g: Any, sv: list, F: Any) -> list:
        x, y = sv
        if rectify:
            g = tf.nn.relu(g)
        reps = tf.concat([[F], tf.ones([x.shape.rank - 1], tf.int32)], 0)
        dx = tf.raw_ops.MaxPoolGrad(orig_input=tf.tile(x, reps), orig_output=tf.tile(y, reps),
                                    grad=merge(tf, g), ksize=ksize, strides=strides,
                                    padding=padding)
        return [split(tf, dx, F)]

    return rule


@register("avg_pool")
def avg_pool(ctx: Context, step: Step) -> None:
    tf, g, node = ctx.tf, ctx.graph, step.node
    ksize, strides, padding = g.attr(node, "ksize"), g.attr(node, "strides"), g.attr(node, "padding")
    step.save = [saved_shape(ctx, step)]

    def rule(g: Any, sv: list, F: Any) -> list:
        gm = merge(tf, g)
        shape = tf.concat([tf.shape(gm)[:1], sv[0][1:]], 0)
        dx = tf.raw_ops.AvgPoolGrad(orig_input_shape=shape, grad=gm, ksize=ksize,
                                    strides=strides, padding=padding)
        return [split(tf, dx, F)]

    step.rule = rule
