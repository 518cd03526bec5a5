"""The fused first layer as per-cell weights (:mod:`.fused`): one batched matmul at pooled size.

For one track the map from a max-pool's pooled signal, through the channelwise steps below
it, to the input of the first convolution is linear and the same for every feature: each
pooled unit (cell, channel) sends its value, through its switch, to the kernel's taps placed
there.  The forward pass folds switches x derivatives x kernel into per-cell weights ``B``
(cells, C, taps): each cell's weights are the kernel placed at its switch, gathered from the
kernel placed at every offset of a window (:func:`placed_kernel`).  The backward pass is one
batched matmul over cells at pooled size, a few shifted sums at pooled size, and one
reshuffle that lays the sub-positions out on the input grid.  The windows may overlap or
leave gaps (musicnn's vgg: 4 x 1 windows every 2 x 2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .rules.conv import pads
from .step import Context, Step, split
from .switches import FirstLayer, at_switches, collisions, pooled_signal, window_switches

__all__ = ["placed_kernel", "cell_weights", "cells_rule"]


def placed_kernel(w: np.ndarray, s: FirstLayer) -> np.ndarray:
    """The kernel placed at every switch offset of a pooling window, float32
    ``(kp_h * kp_w, C, nd_h * nd_w * s_h * s_w * cin)``: offset ``(y, x)`` puts tap
    ``(a, b)`` at position ``(y + a, x + b)`` from the window's start, laid out as
    ``(delta_h, delta_w, sub_h, sub_w, cin)`` with ``y + a = s_h * delta_h + sub_h`` (so that
    the backward pass sums delta-shifted groups at pooled size).

    Parameters
    ----------
    w : np.ndarray, shape (kc_h, kc_w, cin, C)
        The convolution's kernel.
    """
    kc_h, kc_w, cin, C = w.shape
    nd_h, nd_w = s.deltas
    out = np.zeros((s.kp_h, s.kp_w, C, nd_h, nd_w, s.s_h, s.s_w, cin), np.float32)
    wt = np.transpose(np.asarray(w, np.float32), (0, 1, 3, 2))          # (kc_h, kc_w, C, cin)
    for y in range(s.kp_h):
        for a in range(kc_h):
            dh, sh = divmod(y + a, s.s_h)
            for x in range(s.kp_w):
                for b in range(kc_w):
                    dw, sw = divmod(x + b, s.s_w)
                    out[y, x, :, dh, dw, sh, sw, :] = wt[a, b]
    return out.reshape(s.kp_h * s.kp_w, C, -1)


def cell_weights(ctx: Context, pool: Step, conv: Step, w: np.ndarray, padding: str,
                 derivs: list[Callable[[dict], Any]], s: FirstLayer) -> Callable[[dict], Any]:
    """``env -> (B (cells, C, taps), geometry, merge)``: per cell and channel, the kernel
    placed at the switch times the derivatives there (``derivs``: ``env -> f'(x)`` of the
    chain's non-linearities, for methods with the derivative); the input's ``[H, W, top,
    left]`` offset of the cells' grid; the windows' collisions (:func:`collisions`)."""
    tf = ctx.tf
    placed = placed_kernel(w, s)
    switches = window_switches(tf, pool, s)
    conv_in, conv_out, w_t = conv.inputs[0], conv.output, conv.inputs[1]
    n_off, C = placed.shape[0], placed.shape[1]
    placed = placed.reshape(n_off * C, -1)                    # (offset * C + c, taps)

    def weights(env: dict) -> tuple:
        y, x, geo = switches(env)
        ys = tf.shape(y)
        oy = y - (tf.range(ys[1])[None, :, None, None] * s.s_h - geo[2])
        ox = x - (tf.range(ys[2])[None, None, :, None] * s.s_w - geo[3])
        index = (oy * s.kp_w + ox) * C + tf.range(C)
        kernel = tf.cast(tf.constant(placed), env[w_t].dtype)
        B = tf.gather(kernel, tf.reshape(index, [-1, C]))    # cells, C, taps
        if derivs:                  # the derivatives at the switch (without them: one)
            d = derivs[0](env)
            for f in derivs[1:]:
                d = d * f(env)
            B = B * tf.reshape(at_switches(tf, d, y, x), [-1, C, 1])
        xs, cs = tf.shape(env[conv_in]), tf.shape(env[conv_out])
        pc_t, pc_l = pads(tf, padding, [], xs[1], xs[2], cs[1], cs[2], s.kc_h, s.kc_w)
        return B, tf.stack([xs[1], xs[2], geo[2] + pc_t, geo[3] + pc_l]), collisions(tf, y, x, s)

    return weights


def cells_rule(tf: Any, kinds: list[str], s: FirstLayer) -> Callable:
    """The backward rule of :func:`cell_weights`: ``(F, N, H, W, cin)``."""
    nd_h, nd_w = s.deltas

    def rule(g: Any, sv: list, F: Any) -> list:
        (B, geo, merge), scales = sv[0], list(sv[1:])
        t = pooled_signal(tf, g, merge, kinds, scales, s)          # N, Ho, Wo, F, C
        n, ho, wo, nf = (tf.shape(t)[i] for i in range(4))
        Y = tf.matmul(tf.reshape(t, tf.stack([n * ho * wo, nf, -1])), B)  # cells, F, taps
        Y = tf.reshape(Y, tf.stack([n, ho, wo, nf, nd_h, nd_w, s.s_h * s.s_w * s.cin]))
        # taps o = s * delta + sub: sum the delta-shifted groups at pooled resolution ...
        acc = None
        for dy in range(nd_h):
            for dxx in range(nd_w):
                part = tf.pad(Y[:, :, :, :, dy, dxx], [[0, 0], [dy, nd_h - 1 - dy],
                                                        [dxx, nd_w - 1 - dxx], [0, 0], [0, 0]])
                acc = part if acc is None else acc + part
        # ... then lay the sub-positions out on the input grid: (N, Hc, Wc, F, ...) -> (F, N, H, W)
        hc, wc = ho + nd_h - 1, wo + nd_w - 1
        acc = tf.reshape(acc, tf.stack([n, hc, wc, nf, s.s_h, s.s_w, s.cin]))
        acc = tf.transpose(acc, [3, 0, 1, 4, 2, 5, 6])
        dx = tf.reshape(acc, tf.stack([nf * n, hc * s.s_h, wc * s.s_w, s.cin]))
        H, W, pt, pl = geo[0], geo[1], geo[2], geo[3]
        dx = dx[:, pt:pt + H, pl:pl + W]
        dx = tf.pad(dx, [[0, 0], [0, H - tf.shape(dx)[1]], [0, W - tf.shape(dx)[2]], [0, 0]])
        return [split(tf, dx, F)]

    return rule
