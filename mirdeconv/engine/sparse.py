"""The fused first layer as a sparse matrix: a pool over a whole axis above a tall kernel.

Below a non-overlapping max-pool, through channel-by-channel steps, to a stride-1
convolution into few channels, the backward pass is, for one track, a fixed linear map from
the pooled signal to the convolution's input (:mod:`.fused`): each pooled unit (cell,
channel) sends its value, through its switch, to the kernel's taps placed there.  When the
pool is large and the kernel tall (musicnn's temporal branches: a 128 x 1 kernel, its 51
maps each pooled over all 96 bands), the per-cell weights of :mod:`.fused` are mostly zeros
(the kernel placed at one band of 96) and the dense transposed convolution runs through 96
bands of zeros into one channel.  The map itself has only ``kernel taps`` non-zeros per
pooled unit: the forward pass writes it as a sparse matrix (rows: pooled units, in order;
columns: the input's positions), and each backward pass is one sparse-dense product of it
(transposed) with the features' pooled signals (TensorFlow's CSR matrix product), the floor
of this step's work: one multiply-add per kernel tap, pooled unit and feature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .rules.conv import pads
from .step import CellsMajor, Context, Step

__all__ = ["sparse_map", "sparse_rule"]


def sparse_map(ctx: Context, pool: Step, conv: Step, w: np.ndarray, padding: str,
               derivs: list[Callable[[dict], Any]]) -> Callable[[dict], Any]:
    """``env -> (indices (nnz, 2) int64, values (nnz,), shape (2,) int64, input shape)``: the
    map's transpose in canonical (row-major) order, rows the pooled units ``(n, i, j, c)``,
    columns the convolution input's flat positions ``(n, r, q, ci)``, values the kernel's
    taps times the derivatives at the switch (methods with the derivative).

    Parameters
    ----------
    w : np.ndarray, shape (kc_h, kc_w, cin, C)
        The convolution's kernel.
    derivs : list of callable
        ``env -> f'(x)`` of the non-linearities between the convolution and the pool (empty
        for methods without the derivative).
    """
    tf = ctx.tf
    kp_h, kp_w, _ = pool.pool_geometry
    kc_h, kc_w, cin, C = (int(d) for d in w.shape)
    switches = pool.save[0]
    conv_in, conv_out = conv.inputs[0], conv.output
    # tap (a, b, ci): its row and column offsets and its weight per channel, (taps,), (taps, C)
    a, b, ci = (v.ravel() for v in np.meshgrid(np.arange(kc_h), np.arange(kc_w), np.arange(cin),
                                               indexing="ij"))
    taps = np.asarray(w, np.float32).reshape(-1, C)

    def save(env: dict) -> tuple:
        mask6, geo = switches(env)
        ys, xs = tf.shape(env[conv_out]), tf.shape(env[conv_in])
        n, n_ho, n_wo = ys[0], tf.shape(mask6)[0] // ys[0], tf.shape(mask6)[2]
        m = tf.reshape(mask6, tf.stack([n, n_ho, kp_h, n_wo, kp_w, C]))
        m = tf.transpose(m, [0, 1, 3, 5, 2, 4])                     # n, i, j, c, kp_h, kp_w
        # the switch's offset in its window (one-hot: a weighted sum finds it exactly)
        offset = tf.reshape(tf.range(kp_h * kp_w, dtype=m.dtype), [kp_h, kp_w])
        o = tf.cast(tf.reduce_sum(m * offset, axis=[4, 5]), tf.int32)  # n, i, j, c
        H, W = xs[1], xs[2]
        pc_t, pc_l = pads(tf, padding, [], H, W, ys[1], ys[2], kc_h, kc_w)
        top = tf.range(n_ho)[None, :, None, None] * kp_h + o // kp_w - geo[2] - pc_t
        left = tf.range(n_wo)[None, None, :, None] * kp_w + o % kp_w - geo[3] - pc_l
        r = tf.reshape(top, [-1, 1]) + a                              # units, taps
        q = tf.reshape(left, [-1, 1]) + b
        batch = tf.reshape(tf.broadcast_to(tf.range(n)[:, None, None, None], tf.shape(o)), [-1, 1])
        col = ((tf.cast(batch * H, tf.int64) + tf.cast(r, tf.int64)) * tf.cast(W, tf.int64)
               + tf.cast(q, tf.int64)) * cin + ci
        val = tf.tile(tf.constant(taps.T), tf.stack([tf.size(o) // C, 1]))   # units, taps
        if derivs:                     # f'(x) at the switch, gathered from the window
            d = None
            for f in derivs:
                d = f(env) if d is None else d * f(env)
            d = _at_switch(tf, d, m, geo, kp_h, kp_w, n_ho, n_wo, n, C)
            val = val * tf.reshape(d, [-1, 1])
        # taps outside the input (its padding) stay as explicit zeros at a clamped column:
        # every row keeps its taps, in order, and no entry is gathered out
        keep = (r >= 0) & (r < H) & (q >= 0) & (q < W)
        val = tf.where(keep, val, tf.zeros_like(val))
        col = tf.clip_by_value(col, 0, tf.cast(n * H * W * cin, tf.int64) - 1)
        row = tf.broadcast_to(tf.range(tf.size(o, tf.int64), dtype=tf.int64)[:, None], tf.shape(col))
        indices = tf.reshape(tf.stack([row, col], axis=2), [-1, 2])
        shape = tf.stack([tf.size(o, tf.int64), tf.cast(n * H * W * cin, tf.int64)])
        return indices, tf.reshape(val, [-1]), shape, tf.stack([n, H, W])

    return save


def _at_switch(tf: Any, d: Any, m: Any, geo: Any, kp_h: int, kp_w: int, n_ho: Any, n_wo: Any,
               n: Any, C: int) -> Any:
    """The values of ``d`` (N, H, W, C) at the switches: (n, i, j, c)."""
    ho, wo = n_ho * kp_h, n_wo * kp_w
    ds = tf.shape(d)
    d = tf.pad(d, [[0, 0], [geo[2], tf.maximum(ho - geo[2] - ds[1], 0)],
                   [geo[3], tf.maximum(wo - geo[3] - ds[2], 0)], [0, 0]])[:, :ho, :wo]
    d = tf.transpose(tf.reshape(d, tf.stack([n, n_ho, kp_h, n_wo, kp_w, C])), [0, 1, 3, 5, 2, 4])
    return tf.reduce_sum(d * m, axis=[4, 5])


def sparse_rule(tf: Any, kinds: list[str], cin: int) -> Callable:
    """The backward rule: the pooled signal through the chain's per-channel operations
    (``kinds``, as :func:`mirdeconv.engine.fused._channel_ops` lists them), then one CSR
    product with the saved map: ``(F, N, H, W, cin)``."""

    def rule(g: Any, sv: list, F: Any) -> list:
        (indices, values, shape, geo), scales = sv[0], list(sv[1:])
        if isinstance(g, CellsMajor):         # (N, Ho, Wo, F, C)
            t = tf.transpose(g.t, [0, 1, 2, 4, 3])
        else:                                 # (F, N, Ho, Wo, C)
            t = tf.transpose(g, [1, 2, 3, 4, 0])
        k = 0
        for kind in kinds:                    # on (N, Ho, Wo, C, F)
            if kind == "relu":
                t = tf.nn.relu(t)
            else:
                c = tf.reshape(tf.cast(scales[k], t.dtype), [-1, 1])
                t = t * c if kind == "scale" else t / c
                k += 1
        nf = tf.shape(t)[-1]
        dtype = t.dtype
        gm = tf.reshape(tf.cast(t, tf.float32), tf.stack([-1, nf]))       # units, F
        mat = tf.raw_ops.SparseTensorToCSRSparseMatrix(
            indices=indices, values=tf.cast(values, tf.float32), dense_shape=shape)
        out = tf.raw_ops.SparseMatrixMatMul(a=mat, b=gm, transpose_a=True)   # positions, F
        out = tf.reshape(tf.transpose(out), tf.stack([nf, geo[0], geo[1], geo[2], cin]))
        return [tf.cast(out, dtype)]

    return rule
