"""What the ways of the fused first layer share (:mod:`.fused`): the shape of the pool and
the convolution, the switch of every pooling window, the derivatives there, and the pooled
signal made ready for the map below it.

A max-pool's window sends its gradient to its switch: one position of the pool's input
(TensorFlow's first maximum on ties; ``MaxPoolWithArgmax`` picks the same one as
``MaxPoolGrad``).  Windows that overlap (musicnn's vgg: 4 x 1 windows every 2 x 2) may pick
the same position; below them the gradient is rectified at that position, after the
windows' values are added (``relu(g1 + g2)``, not ``relu(g1) + relu(g2)``), so their
values are merged into the first of them before the chain's non-linearity is applied at
pooled size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .step import CellsMajor, Step

__all__ = ["FirstLayer", "window_switches", "at_switches", "collisions", "pooled_signal"]


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class FirstLayer:
    """A max-pool of ``kp_h x kp_w`` windows every ``s_h x s_w`` over a stride-1
    convolution with a ``kc_h x kc_w`` kernel from ``cin`` channels."""

    kp_h: int
    kp_w: int
    s_h: int
    s_w: int
    kc_h: int
    kc_w: int
    cin: int

    @property
    def overlaps(self) -> bool:
        """Neighbouring windows share positions."""
        return self.kp_h > self.s_h or self.kp_w > self.s_w

    @property
    def deltas(self) -> tuple[int, int]:
        """Pooling windows (window strides) a kernel placed in a window reaches, per axis."""
        return _ceil(self.kp_h + self.kc_h - 1, self.s_h), _ceil(self.kp_w + self.kc_w - 1, self.s_w)

    @property
    def taps(self) -> int:
        """Per pooled cell and channel, the values of the kernel placed at any switch."""
        nd_h, nd_w = self.deltas
        return nd_h * nd_w * self.s_h * self.s_w * self.cin

    @property
    def kernel(self) -> int:
        """The kernel's taps per output channel."""
        return self.kc_h * self.kc_w * self.cin

    @property
    def dense(self) -> int:
        """Per pooled cell and channel, the dense transposed convolution's multiply-adds (over
        the positions the cell stands for)."""
        return self.s_h * self.s_w * self.kernel

    @property
    def neighbours(self) -> list[tuple[int, int]]:
        """Window offsets ``(dh, dw)`` after ``(0, 0)`` in scan order whose windows can share
        a position with it."""
        nh, nw = _ceil(self.kp_h, self.s_h), _ceil(self.kp_w, self.s_w)
        return [(dh, dw) for dh in range(nh) for dw in range(1 - nw, nw) if (dh, dw) > (0, 0)]


def window_switches(tf: Any, pool: Step, s: FirstLayer) -> Callable[[dict], tuple]:
    """``env -> (y, x, geo)``: the row and column of every window's switch in the pool's
    input, int32 ``(N, Ho, Wo, C)``, and ``geo = [H, W, pad top, pad left]`` of the pool (window
    ``(i, j)`` starts at ``(i * s_h - pad top, j * s_w - pad left)``)."""
    x_t, padding = pool.inputs[0], pool.pool_geometry[4]

    def position(inp: Any, dtype: Any) -> tuple:
        _, am = tf.raw_ops.MaxPoolWithArgmax(
            input=inp, ksize=[1, s.kp_h, s.kp_w, 1], strides=[1, s.s_h, s.s_w, 1],
            padding=padding, Targmax=dtype, include_batch_in_index=False)   # (y*W + x)*C + c
        xs = tf.shape(inp, out_type=dtype)
        pos = am // xs[3]
        return tf.cast(pos // xs[2], tf.int32), tf.cast(pos % xs[2], tf.int32)

    def switches(env: dict) -> tuple:
        inp = env[x_t]
        y, x = tf.cond(tf.size(inp, tf.int64) < 2 ** 31,   # an item's index fits in int32
                       lambda: position(inp, tf.int32), lambda: position(inp, tf.int64))
        xs, ys = tf.shape(inp), tf.shape(y)
        H, W = xs[1], xs[2]
        if padding == "SAME":
            pt = tf.maximum((ys[1] - 1) * s.s_h + s.kp_h - H, 0) // 2
            pl = tf.maximum((ys[2] - 1) * s.s_w + s.kp_w - W, 0) // 2
        else:
            pt = pl = tf.constant(0)
        return y, x, tf.stack([H, W, pt, pl])

    return switches


def at_switches(tf: Any, d: Any, y: Any, x: Any) -> Any:
    """The values of ``d`` (N, H, W, C) at the switches ``y, x`` (N, Ho, Wo, C)."""
    ds = tf.shape(d)
    n = tf.range(ds[0])[:, None, None, None]
    c = tf.range(ds[3])[None, None, None, :]
    flat = ((n * ds[1] + y) * ds[2] + x) * ds[3] + c
    return tf.gather(tf.reshape(d, [-1]), flat)


def _shift(tf: Any, t: Any, dh: int, dw: int) -> Any:
    """``t[:, i + dh, j + dw]`` over the axes 1 and 2 (zero outside)."""
    s = tf.shape(t)
    pad = [[0, 0], [max(-dh, 0), max(dh, 0)], [max(-dw, 0), max(dw, 0)]]
    t = tf.pad(t, pad + [[0, 0]] * (t.shape.rank - 3))
    return t[:, max(dh, 0):max(dh, 0) + s[1], max(dw, 0):max(dw, 0) + s[2]]


def collisions(tf: Any, y: Any, x: Any, s: FirstLayer) -> tuple:
    """For overlapping windows: ``(first, [same_d for each neighbour d])``, float32
    (N, Ho, Wo, C): the window is the first (in scan order) to pick its switch; the window
    ``d`` further on picks the same one.  ``()`` when no windows overlap."""
    if not s.overlaps:
        return ()
    pos = tf.stack([y, x], axis=-1)
    inside = tf.ones_like(y, tf.float32)

    def same(dh: int, dw: int) -> Any:        # the window d further on has the same switch
        other = _shift(tf, pos, dh, dw)
        eq = tf.cast(tf.reduce_all(tf.equal(other, pos), axis=-1), tf.float32)
        return eq * _shift(tf, inside, dh, dw)

    later = [same(dh, dw) for dh, dw in s.neighbours]
    # first: no earlier window (at -d) has the same switch
    first = inside
    for (dh, dw), eq in zip(s.neighbours, later):
        first = first * (1.0 - _shift(tf, eq, -dh, -dw))
    return (first, later)


def pooled_signal(tf: Any, g: Any, merge: tuple, kinds: list[str], scales: list, s: FirstLayer
                  ) -> Any:
    """The pooled signal, cells-major ``(N, Ho, Wo, F, C)``: windows sharing a switch merged
    into the first (:func:`collisions`), then the chain's per-channel operations (``kinds``
    in backward order, ``"relu"``, ``"scale"`` or ``"divide"`` by the next of ``scales``)."""
    t = g.t if isinstance(g, CellsMajor) else tf.transpose(g, [1, 2, 3, 0, 4])
    if merge:
        first, later = merge
        acc = t
        for (dh, dw), eq in zip(s.neighbours, later):
            acc = acc + _shift(tf, t, dh, dw) * tf.cast(eq[:, :, :, None], t.dtype)
        t = acc * tf.cast(first[:, :, :, None], t.dtype)
    k = 0
    for kind in kinds:
        if kind == "relu":
            t = tf.nn.relu(t)
        else:
            c = tf.cast(tf.reshape(scales[k], [-1]), t.dtype)
            t = t * c if kind == "scale" else t / c
            k += 1
    return t
