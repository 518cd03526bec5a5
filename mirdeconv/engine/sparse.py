"""The fused first layer as a sparse matrix: a pool over a whole axis above a tall kernel.

Below a max-pool, through channel-by-channel steps, to a stride-1 convolution into few
channels, the backward pass is, for one track, a fixed linear map from the pooled signal to
the convolution's input (:mod:`.fused`): each pooled unit (cell, channel) sends its value,
through its switch, to the kernel's taps placed there.  When the pool is large and the
kernel tall (musicnn's temporal branches: a 128 x 1 kernel, its 51 maps each pooled over
all 96 bands), the per-cell weights of :mod:`.cells` are mostly zeros (the kernel placed at
one band of 96) and the dense transposed convolution runs through 96 bands of zeros into
one channel.  The map itself has only ``kernel taps`` non-zeros per pooled unit: the
forward pass writes it as a sparse matrix (rows: pooled units, in order; columns: the
input's positions), and each backward pass is one sparse-dense product of it (transposed)
with the features' pooled signals (TensorFlow's CSR matrix product), the floor of this
step's work: one multiply-add per kernel tap, pooled unit and feature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .rules.conv import pads
from .step import Context, Step
from .switches import FirstLayer, at_switches, collisions, pooled_signal, window_switches

__all__ = ["sparse_map", "sparse_rule"]


def sparse_map(ctx: Context, pool: Step, conv: Step, w: np.ndarray, padding: str,
               derivs: list[Callable[[dict], Any]], s: FirstLayer) -> Callable[[dict], Any]:
    """``env -> ((indices (nnz, 2) int64, values (nnz,), shape (2,) int64, input shape),
    merge)``: the map's transpose in canonical (row-major) order, rows the pooled units
    ``(n, i, j, c)``, columns the convolution input's flat positions ``(n, r, q, ci)``, values
    the kernel's taps times the derivatives at the switch (``derivs``: ``env -> f'(x)`` of the
    chain's non-linearities, for methods with the derivative); the windows' collisions
    (:func:`mirdeconv.engine.switches.collisions`).

    Parameters
    ----------
    w : np.ndarray, shape (kc_h, kc_w, cin, C)
        The convolution's kernel.
    """
    tf = ctx.tf
    C = int(w.shape[3])
    switches = window_switches(tf, pool, s)
    conv_in, conv_out = conv.inputs[0], conv.output
    # tap (a, b, ci): its row and column offsets and its weight per channel, (taps,), (taps, C)
    a, b, ci = (v.ravel() for v in np.meshgrid(np.arange(s.kc_h), np.arange(s.kc_w),
                                               np.arange(s.cin), indexing="ij"))
    taps = np.asarray(w, np.float32).reshape(-1, C)

    def save(env: dict) -> tuple:
        y, x, _ = switches(env)
        xs, cs = tf.shape(env[conv_in]), tf.shape(env[conv_out])
        n, H, W = xs[0], xs[1], xs[2]
        pc_t, pc_l = pads(tf, padding, [], H, W, cs[1], cs[2], s.kc_h, s.kc_w)
        r = tf.reshape(y - pc_t, [-1, 1]) + a                       # units, taps
        q = tf.reshape(x - pc_l, [-1, 1]) + b
        batch = tf.reshape(tf.broadcast_to(tf.range(n)[:, None, None, None], tf.shape(y)), [-1, 1])
        col = ((tf.cast(batch * H, tf.int64) + tf.cast(r, tf.int64)) * tf.cast(W, tf.int64)
               + tf.cast(q, tf.int64)) * s.cin + ci
        val = tf.tile(tf.constant(taps.T), tf.stack([tf.size(y) // C, 1]))   # units, taps
        if derivs:
            d = derivs[0](env)
            for f in derivs[1:]:
                d = d * f(env)
            val = val * tf.reshape(at_switches(tf, d, y, x), [-1, 1])
        # taps outside the input (its padding) stay as explicit zeros at a clamped column:
        # every row keeps its taps, in order, and no entry is gathered out
        keep = (r >= 0) & (r < H) & (q >= 0) & (q < W)
        val = tf.where(keep, val, tf.zeros_like(val))
        col = tf.clip_by_value(col, 0, tf.cast(n * H * W * s.cin, tf.int64) - 1)
        row = tf.broadcast_to(tf.range(tf.size(y, tf.int64), dtype=tf.int64)[:, None], tf.shape(col))
        indices = tf.reshape(tf.stack([row, col], axis=2), [-1, 2])
        shape = tf.stack([tf.size(y, tf.int64), tf.cast(n * H * W * s.cin, tf.int64)])
        return (indices, tf.reshape(val, [-1]), shape, tf.stack([n, H, W])), collisions(tf, y, x, s)

    return save


def sparse_rule(tf: Any, kinds: list[str], s: FirstLayer) -> Callable:
    """The backward rule of :func:`sparse_map`: the pooled signal made ready
    (:func:`mirdeconv.engine.switches.pooled_signal`), then one CSR product with the saved
    map: ``(F, N, H, W, cin)``."""

    def rule(g: Any, sv: list, F: Any) -> list:
        ((indices, values, shape, geo), merge), scales = sv[0], list(sv[1:])
        t = pooled_signal(tf, g, merge, kinds, scales, s)          # N, Ho, Wo, F, C
        t = tf.transpose(t, [0, 1, 2, 4, 3])
        nf = tf.shape(t)[-1]
        dtype = t.dtype
        gm = tf.reshape(tf.cast(t, tf.float32), tf.stack([-1, nf]))       # units, F
        mat = tf.raw_ops.SparseTensorToCSRSparseMatrix(
            indices=indices, values=tf.cast(values, tf.float32), dense_shape=shape)
        out = tf.raw_ops.SparseMatrixMatMul(a=mat, b=gm, transpose_a=True)   # positions, F
        out = tf.reshape(tf.transpose(out), tf.stack([nf, geo[0], geo[1], geo[2], s.cin]))
        return [tf.cast(out, dtype)]

    return rule
